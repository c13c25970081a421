//! Bias and RMSE of every estimator on exact fGn (Davies-Harte).
//! Usage: cargo run -p selfsim --release --example accuracy_study [log2N] [seeds]
use selfsim::{analyze, synth_fgn, AnalyzeConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let log2n: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let seeds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let n = 1usize << log2n;
    let cfg = AnalyzeConfig {
        h_vs_m_points: 0,
        ..Default::default()
    };
    println!("N = 2^{log2n}, {seeds} seeds");
    println!("| method | H | bias | RMSE | mean s.e. |");
    println!("|---|---|---|---|---|");
    for &h in &[0.55, 0.65, 0.75, 0.85, 0.95] {
        let mut acc: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
        for seed in 0..seeds {
            let x = synth_fgn(h, n, 1000 + seed).expect("valid H");
            let r = analyze(&x, &cfg);
            for m in &r.estimates {
                let e = m.estimate.as_ref().expect("estimate");
                match acc.iter_mut().find(|a| a.0 == m.method) {
                    Some(a) => {
                        a.1.push(e.h);
                        a.2.push(e.std_err.unwrap_or(f64::NAN));
                    }
                    None => acc.push((
                        m.method.clone(),
                        vec![e.h],
                        vec![e.std_err.unwrap_or(f64::NAN)],
                    )),
                }
            }
        }
        for (m, hs, ses) in acc {
            let k = hs.len() as f64;
            let bias = hs.iter().map(|v| v - h).sum::<f64>() / k;
            let rmse = (hs.iter().map(|v| (v - h).powi(2)).sum::<f64>() / k).sqrt();
            let se = ses.iter().sum::<f64>() / k;
            println!("| {m} | {h} | {bias:+.4} | {rmse:.4} | {se:.4} |");
        }
    }
}
