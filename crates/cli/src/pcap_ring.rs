//! `run -w DIR`: the packet ring's options and its lines on stderr. The
//! ring itself (rotation, index, downloads) is the `pcapring` crate.

use std::sync::Arc;

use clap::Args;
use pcapring::{Ring, RingConfig, RingWriter, WriterReport};

use crate::Failure;

/// Defaults: a file a minute or every 100 MB, 60 files (≤ 6 GB).
const DEFAULT_MB: f64 = 100.0;
const DEFAULT_SECS: f64 = 60.0;
const DEFAULT_FILES: u32 = 60;
/// Most files a ring may have (file names have six digits).
const MAX_FILES: u32 = 1_000_000;

#[derive(Args, Debug, Clone)]
pub struct RingArgs {
    /// Keep every packet read, as read, in a ring of pcap files in DIR
    /// (ring-000000.pcap, …; created 0700), for /api/v1/pcap downloads of
    /// the packets behind a chart, a flow or an address. Disk use is
    /// bounded: at most -W × -C MB (6 GB with the defaults, the last hour
    /// while traffic stays under 13 Mbit/s), the oldest file overwritten
    /// first. Files left in DIR by an earlier run are indexed and served
    /// too. Write errors are counted and reported, never fatal.
    #[arg(short = 'w', long = "write", value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// With -w: start a new ring file once one holds MB million bytes.
    #[arg(short = 'C', long = "rotate-size", value_name = "MB", default_value_t = DEFAULT_MB, requires = "dir")]
    pub size_mb: f64,
    /// With -w: start a new ring file every SECS seconds of capture time.
    #[arg(short = 'G', long = "rotate-seconds", value_name = "SECS", default_value_t = DEFAULT_SECS, requires = "dir")]
    pub seconds: f64,
    /// With -w: files in the ring.
    #[arg(short = 'W', long = "ring", value_name = "N", default_value_t = DEFAULT_FILES, requires = "dir")]
    pub files: u32,
}

impl RingArgs {
    fn config(&self) -> Result<Option<RingConfig>, Failure> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let positive = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Failure::Usage(format!(
                    "{what} must be a positive number, not {v}"
                )))
            }
        };
        positive(self.size_mb, "-C/--rotate-size")?;
        positive(self.seconds, "-G/--rotate-seconds")?;
        if !(1..=MAX_FILES).contains(&self.files) {
            return Err(Failure::Usage(format!(
                "-W/--ring must be from 1 to {MAX_FILES}, not {}",
                self.files
            )));
        }
        Ok(Some(RingConfig {
            dir: dir.clone(),
            size_limit: ((self.size_mb * 1e6) as u64).max(1),
            period_ns: ((self.seconds * 1e9) as u64).max(1),
            files: self.files,
        }))
    }

    /// Opens the ring when `-w` was given, saying so on stderr.
    pub fn open(&self) -> Result<Option<(Arc<Ring>, RingWriter)>, Failure> {
        let Some(cfg) = self.config()? else {
            return Ok(None);
        };
        let (ring, writer, report) =
            Ring::open(cfg.clone()).map_err(|e| Failure::Input(e.into()))?;
        eprintln!(
            "trafficscope: keeping packets in {}: {} files of {} s or {} MB, at most {:.1} GB{}",
            cfg.dir.display(),
            cfg.files,
            self.seconds,
            self.size_mb,
            cfg.bound_bytes() as f64 / 1e9,
            if report.found > 0 {
                format!(
                    "; {} files of an earlier run indexed in the background",
                    report.found
                )
            } else {
                String::new()
            }
        );
        if !report.removed.is_empty() {
            eprintln!(
                "trafficscope: removed {} ring files beyond -W {} ({} …) so the bound holds",
                report.removed.len(),
                cfg.files,
                report.removed[0]
            );
        }
        Ok(Some((ring, writer)))
    }
}

/// The ring's last line.
pub fn report(ring: &Ring, r: &WriterReport) {
    let mut line = format!(
        "trafficscope: packet ring: {} packets ({:.1} MB) written to {} files in {}",
        r.packets_written,
        r.bytes_written as f64 / 1e6,
        r.files_created,
        ring.dir().display()
    );
    if let Some((a, b)) = ring.extent() {
        line += &format!(
            "; it holds {} to {}",
            server::isotime::format_iso(a),
            server::isotime::format_iso(b)
        );
    }
    if r.write_errors > 0 {
        line += &format!(
            "; {} WRITE ERRORS, {} packets not kept (last: {})",
            r.write_errors,
            r.packets_lost,
            r.last_error.as_deref().unwrap_or("?")
        );
    }
    eprintln!("{line}");
}
