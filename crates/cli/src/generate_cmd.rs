//! `trafficscope generate`: labelled synthetic traffic (web, video, VoIP,
//! bulk, DNS) as a capture plus ground-truth labels, or live on loopback / a
//! network namespace.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use generate::{live::LiveNet, GenerateConfig};

use crate::Failure;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveMode {
    Loopback,
    Netns,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Classes and weights, e.g. web=3,video=1,voip=2 (classes: web, video,
    /// video-download, voip, voip-icmp, bulk, dns).
    #[arg(long, default_value = "web=3,video=1,voip=2")]
    pub mix: String,
    /// Simulated users, each with its own address and overlapping sessions.
    #[arg(long, default_value_t = 10)]
    pub users: u32,
    /// Length of the generated traffic, e.g. 60s, 10m.
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// Seed: the same seed gives bit-for-bit the same capture and labels.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Access link rate per user, e.g. 100M, 1G.
    #[arg(long = "link-rate", default_value = "100M")]
    pub link_rate: String,
    /// Use IPv6 addresses (2001:db8::/32, fd00::/8).
    #[arg(long)]
    pub ipv6: bool,
    /// Capture to write (.pcapng for pcapng, else pcap). Required offline;
    /// with --live, the run is recorded on its interface into FILE.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Ground-truth labels CSV (default: the capture's name with .labels.csv).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Also write per-packet labels (packet number → class) to this CSV.
    #[arg(long = "packet-labels", value_name = "FILE")]
    pub packet_labels: Option<PathBuf>,
    /// Run real servers and clients instead of writing a file: over
    /// loopback, or over a veth pair into a network namespace created for
    /// the run (root). Record with -w, or capture the printed interface.
    /// Prints how late scheduled sends were against the model (lag).
    #[arg(long, value_enum, value_name = "NET")]
    pub live: Option<LiveMode>,
}

fn config(args: &GenerateArgs) -> Result<GenerateConfig, Failure> {
    let usage = |e: generate::GenerateError| Failure::Usage(e.to_string());
    Ok(GenerateConfig {
        mix: generate::parse_mix(&args.mix).map_err(usage)?,
        users: args.users,
        duration_ns: generate::parse_duration(&args.duration).map_err(usage)?,
        seed: args.seed,
        link_rate_bps: generate::parse_rate(&args.link_rate).map_err(usage)?,
        ipv6: args.ipv6,
        pcap_name: args
            .write
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "live".into()),
        ..GenerateConfig::default()
    })
}

/// Configuration errors are usage errors (exit 2), the rest input errors.
fn failure(e: generate::GenerateError) -> Failure {
    match e {
        generate::GenerateError::UnknownClass { .. }
        | generate::GenerateError::BadMix { .. }
        | generate::GenerateError::RateAboveLink { .. } => Failure::Usage(e.to_string()),
        other => Failure::Input(other.into()),
    }
}

pub fn run(args: GenerateArgs) -> Result<(), Failure> {
    let cfg = config(&args)?;
    if let Some(mode) = args.live {
        // Checked before any file is created.
        cfg.validate().map_err(failure)?;
        let labels_path = args.labels.clone().unwrap_or_else(|| match &args.write {
            Some(w) => {
                let mut p = w.clone().into_os_string();
                p.push(".labels.csv");
                PathBuf::from(p)
            }
            None => PathBuf::from("live.labels.csv"),
        });
        let mut labels = std::io::BufWriter::new(
            std::fs::File::create(&labels_path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", labels_path.display()))?,
        );
        let net = match mode {
            LiveMode::Loopback => LiveNet::Loopback,
            LiveMode::Netns => LiveNet::Netns,
        };
        let mut ready = |iface: &str| {
            eprintln!(
                "trafficscope: live traffic on {iface} for {}, {} users{}",
                args.duration,
                cfg.users,
                match &args.write {
                    Some(w) => format!(", recording to {}", w.display()),
                    None => String::new(),
                }
            );
        };
        let opts = generate::live::LiveOptions {
            record: args.write.as_deref(),
            snaplen: 0,
            on_ready: Some(&mut ready),
            on_plan: None,
        };
        let s = generate::live::run_live_opts(&cfg, net, &mut labels, opts).map_err(failure)?;
        eprintln!(
            "trafficscope: live traffic done: {} flows, {} bytes served on {}; labels in {}",
            s.flows,
            s.bytes_served,
            s.interface,
            labels_path.display()
        );
        if let (Some(r), Some(w)) = (&s.recorded, &args.write) {
            eprintln!(
                "trafficscope: recorded {} packets to {} ({} dropped by kernel)",
                r.packets,
                w.display(),
                r.dropped
            );
        }
        eprintln!("trafficscope: {}", s.lag);
        return Ok(());
    }
    let Some(out) = &args.write else {
        return Err(Failure::Usage(
            "give -w FILE for the capture (or --live loopback|netns)".into(),
        ));
    };
    let labels = args.labels.clone().unwrap_or_else(|| {
        let mut p = out.clone().into_os_string();
        p.push(".labels.csv");
        PathBuf::from(p)
    });
    let s = generate::generate_to_files(&cfg, out, &labels, args.packet_labels.as_deref())
        .map_err(failure)?;
    let flows: Vec<String> = s.flows.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "trafficscope: wrote {} packets, {} bytes, {:.1} s of traffic to {}; flows: {}; labels in {}",
        s.packets,
        s.bytes,
        s.duration_ns() as f64 / 1e9,
        out.display(),
        flows.join(", "),
        labels.display()
    );
    Ok(())
}
