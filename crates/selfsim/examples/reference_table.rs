//! H by every method on the reference traffic series (markdown table).
//! Usage: cargo run -p selfsim --release --example reference_table [DATA_DIR]
//! DATA_DIR defaults to /work/shared/data/lrd.
use selfsim::io::bin_events_secs;
use selfsim::{
    analyze, read_interarrivals, read_time_size, read_values, AnalyzeConfig, SeriesReport,
};
use std::path::Path;

const METHODS: [&str; 11] = [
    "rs",
    "periodogram",
    "gph",
    "local-whittle",
    "aggvar",
    "absmom",
    "dfa1",
    "dfa2",
    "wavelet",
    "whittle-fgn",
    "whittle-farima",
];

fn run(name: &str, x: &[f64], bin: Option<f64>) -> SeriesReport {
    let cfg = AnalyzeConfig {
        name: name.into(),
        bin_width_s: bin,
        h_vs_m_points: 0,
        ..Default::default()
    };
    analyze(x, &cfg)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("/work/shared/data/lrd");
    let d = Path::new(dir);
    let mut reports = Vec::new();

    let tl = read_time_size(d.join("bellcore/BC-pAug89-small.TL.gz")).expect("Bellcore .TL");
    let sizes = tl.sizes.as_deref();
    for w in [0.01, 0.1] {
        let b = bin_events_secs(&tl.times, sizes, w).expect("binning");
        reports.push(run(
            &format!("BC-pAug89 bytes/{}ms (.TL, 100,001 pkts)", w * 1e3),
            &b.bytes,
            Some(w),
        ));
    }
    let ia = read_interarrivals(d.join("bellcore/BC-pAug89.interarrivals.txt.gz"), 0.001340)
        .expect("Bellcore inter-arrivals");
    for w in [0.01, 0.1] {
        let b = bin_events_secs(&ia.times, None, w).expect("binning");
        reports.push(run(
            &format!("BC-pAug89 packets/{}ms (1M pkts)", w * 1e3),
            &b.packets,
            Some(w),
        ));
    }
    let dec = read_interarrivals(d.join("dec-pkt/DEC-PKT-1-UDP.interarrivals.txt.gz"), 0.0)
        .expect("DEC-PKT-1");
    for w in [0.01, 0.1] {
        let b = bin_events_secs(&dec.times, None, w).expect("binning");
        reports.push(run(
            &format!("DEC-PKT-1 UDP packets/{}ms", w * 1e3),
            &b.packets,
            Some(w),
        ));
    }
    let vbr = read_values(d.join("longmemo/videoVBR_1000.txt")).expect("videoVBR");
    reports.push(run("videoVBR (1000 frames)", &vbr, None));
    let nile = read_values(d.join("longmemo/NileMin_622-1284.txt")).expect("Nile");
    reports.push(run("Nile minima 622-1284", &nile, None));

    print!("| series | N | mean | σ/μ | peak/mean |");
    for m in METHODS {
        print!(" {m} |");
    }
    println!();
    println!("|{}", "---|".repeat(5 + METHODS.len()));
    for r in &reports {
        let s = r.summary.as_ref().expect("summary");
        print!(
            "| {} | {} | {:.1} | {:.2} | {:.1} |",
            r.name,
            r.n,
            s.mean,
            s.variability.unwrap_or(f64::NAN),
            s.peak_to_mean.unwrap_or(f64::NAN)
        );
        for m in METHODS {
            match r.get(m) {
                Some(e) => match e.std_err {
                    Some(se) => print!(" {:.3} ±{:.3} |", e.h, se),
                    None => print!(" {:.3} |", e.h),
                },
                None => print!(" – |"),
            }
        }
        println!();
    }
    println!();
    for r in &reports {
        for w in &r.warnings {
            println!("- {}: {w}", r.name);
        }
    }
}
