//! Times every estimator on N = 2^20 exact fGn (H = 0.8) on one core.
//! Usage: cargo run -p selfsim --release --example bench_estimators [-- --write PATH]
//! With --write the series is also written one value per line for the
//! Python peer benchmark (scripts/selfsim-bench-peers.sh).
use selfsim::estimators::*;
use selfsim::{analyze, synth_fgn, AnalyzeConfig};
use std::time::Instant;

/// CPU time of this thread in seconds: on a shared machine wall time also
/// counts the time other processes held the core.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Best of `reps` runs: wall-clock and thread CPU milliseconds.
fn time<T>(label: &str, reps: u32, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut out = None;
    for _ in 0..reps {
        let t = Instant::now();
        let c = thread_cpu();
        let v = f();
        best_cpu = best_cpu.min(thread_cpu() - c);
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    println!(
        "{label:<28} wall {:>8.1} ms   cpu {:>8.1} ms",
        best * 1e3,
        best_cpu * 1e3
    );
    (best, out.expect("reps >= 1"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = 1 << 20;
    let (_, x) = time("synth fGn (Davies-Harte)", 1, || {
        synth_fgn(0.8, n, 42).unwrap()
    });
    if let Some(i) = args.iter().position(|a| a == "--write") {
        let path = &args[i + 1];
        let text: String = x.iter().map(|v| format!("{v:.17e}\n")).collect();
        std::fs::write(path, text).expect("write series");
        println!("wrote {path}");
    }
    let reps = 5;
    let h = |r: Result<selfsim::Estimate, selfsim::SelfSimError>| r.unwrap().h;
    let rows: Vec<(&str, f64)> = vec![
        (
            "local-whittle (M=N^0.65)",
            h(time("local-whittle (M=N^0.65)", reps, || {
                local_whittle(&x, &Default::default())
            })
            .1),
        ),
        (
            "rs",
            h(time("rs", reps, || rescaled_range(&x, &Default::default())).1),
        ),
        (
            "dfa1",
            h(time("dfa1", reps, || dfa(&x, &Default::default())).1),
        ),
        (
            "dfa2",
            h(time("dfa2", reps, || {
                dfa(
                    &x,
                    &DfaConfig {
                        order: 2,
                        ..Default::default()
                    },
                )
            })
            .1),
        ),
        (
            "periodogram",
            h(time("periodogram", reps, || {
                periodogram_regression(&x, &Default::default())
            })
            .1),
        ),
        (
            "gph",
            h(time("gph", reps, || gph(&x, &Default::default())).1),
        ),
        (
            "aggvar",
            h(time("aggvar", reps, || {
                aggregated_variance(&x, &Default::default())
            })
            .1),
        ),
        (
            "absmom",
            h(time("absmom", reps, || abs_moment(&x, &Default::default())).1),
        ),
        (
            "wavelet (db3)",
            h(time("wavelet (db3)", reps, || {
                wavelet_abry_veitch(&x, &Default::default())
            })
            .1),
        ),
        (
            "whittle-fgn",
            h(time("whittle-fgn", reps, || whittle_fgn(&x, &Default::default())).1),
        ),
        (
            "whittle-farima",
            h(time("whittle-farima", reps, || {
                whittle_farima(&x, &Default::default())
            })
            .1),
        ),
    ];
    time("lw h-vs-m (40 points)", reps, || {
        local_whittle_h_vs_m(&x, 40).unwrap()
    });
    time("v statistic", reps, || {
        v_statistic(&x, &Default::default()).unwrap()
    });
    let cfg = AnalyzeConfig::default();
    time("analyze (all of the above)", reps, || analyze(&x, &cfg));
    println!("H estimates (true H = 0.8):");
    for (m, v) in rows {
        println!("  {m:<26} {v:.4}");
    }
}
