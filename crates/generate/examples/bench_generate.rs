//! Offline generation throughput: `cargo run -p generate --release --example bench_generate [-- USERS SECONDS [sink]]`
//! (`sink` skips the file run).
//!
//! Generates the default-like mix twice on one thread — into a sink that
//! discards bytes (generation + encoding cost) and into a pcap file in the
//! temp directory (plus writing) — and prints Gbit/s of frames written per
//! core and packets/s.
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::time::Instant;

struct Sink(u64);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// CPU time (user + system) of this process, seconds.
fn cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let users: u32 = a.get(1).map_or(Ok(40), |s| s.parse())?;
    let secs: u64 = a.get(2).map_or(Ok(60), |s| s.parse())?;
    let cfg = generate::GenerateConfig {
        mix: generate::parse_mix("web=4,video=2,video-download=1,voip=2,voip-icmp=1,bulk=1,dns=1")?,
        users,
        duration_ns: secs * 1_000_000_000,
        seed: 1,
        ..Default::default()
    };
    println!("mix web=4,video=2,video-download=1,voip=2,voip-icmp=1,bulk=1,dns=1, {users} users, {secs} s of traffic, link 100 Mbit/s each");
    // One thread: Gbit/s per core = bytes / CPU seconds; wall-clock rates too.
    let report = |what: &str, s: &generate::Summary, el: f64, cpu: f64| {
        println!(
            "{what:>5}: {} packets, {:.1} MB; wall {el:.2} s: {:.2} Gbit/s, {:.2} Mpackets/s ({:.0}x real time); CPU {cpu:.2} s: {:.2} Gbit/s per core, {:.2} Mpackets/s per core",
            s.packets,
            s.bytes as f64 / 1e6,
            s.bytes as f64 * 8.0 / el / 1e9,
            s.packets as f64 / el / 1e6,
            s.duration_ns() as f64 / 1e9 / el,
            s.bytes as f64 * 8.0 / cpu / 1e9,
            s.packets as f64 / cpu / 1e6,
        );
    };
    let mut cap = capture::CaptureWriter::new(Sink(0), capture::OutputFormat::Pcap, 0);
    let (t, c) = (Instant::now(), cpu_s());
    let s = generate::generate_offline(&cfg, &mut cap, &mut io::sink(), None::<&mut io::Sink>)?;
    report("sink", &s, t.elapsed().as_secs_f64(), cpu_s() - c);

    if a.get(3).is_some_and(|s| s == "sink") {
        return Ok(());
    }
    let path = std::env::temp_dir().join("bench_generate.pcap");
    let mut cap = capture::CaptureWriter::new(
        BufWriter::new(File::create(&path)?),
        capture::OutputFormat::Pcap,
        0,
    );
    let mut labels = BufWriter::new(File::create(path.with_extension("labels.csv"))?);
    let (t, c) = (Instant::now(), cpu_s());
    let s = generate::generate_offline(&cfg, &mut cap, &mut labels, None::<&mut io::Sink>)?;
    cap.into_inner()?.flush()?;
    report("file", &s, t.elapsed().as_secs_f64(), cpu_s() - c);
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(path.with_extension("labels.csv")).ok();
    Ok(())
}
