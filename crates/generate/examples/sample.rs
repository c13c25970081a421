//! Writes a sample capture and labels:
//! `cargo run -p generate --example sample -- MIX USERS DURATION OUT.pcap [SEED] [v6]`
use std::fs::File;
use std::io::BufWriter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: sample MIX USERS DURATION OUT.pcap [SEED] [v6]");
        std::process::exit(2);
    }
    let cfg = generate::GenerateConfig {
        mix: generate::parse_mix(&a[1])?,
        users: a[2].parse()?,
        duration_ns: generate::parse_duration(&a[3])?,
        seed: a.get(5).map_or(Ok(1), |s| s.parse())?,
        ipv6: a.get(6).is_some_and(|s| s == "v6"),
        pcap_name: a[4].rsplit('/').next().unwrap_or(&a[4]).to_string(),
        ..Default::default()
    };
    let out = &a[4];
    let mut cap = capture::CaptureWriter::new(
        BufWriter::new(File::create(out)?),
        capture::OutputFormat::from_path(out),
        0,
    );
    let mut labels = BufWriter::new(File::create(format!("{out}.labels.csv"))?);
    let mut pl = BufWriter::new(File::create(format!("{out}.packets.csv"))?);
    let t = std::time::Instant::now();
    let s = generate::generate_offline(&cfg, &mut cap, &mut labels, Some(&mut pl))?;
    eprintln!("{s:?} in {:?}", t.elapsed());
    Ok(())
}
