//! Writes the SVG and PNG plots of a report for one series file or for
//! synthetic fGn. Usage: cargo run -p selfsim --example plots_demo -- OUTDIR [FILE]
use selfsim::{analyze, read_values, synth_fgn, write_plots, AnalyzeConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).map(String::as_str).unwrap_or("plots");
    let (name, x) = match args.get(2) {
        Some(f) => (f.clone(), read_values(f).expect("readable series")),
        None => (
            "fGn H=0.8".to_string(),
            synth_fgn(0.8, 1 << 14, 1).expect("valid H"),
        ),
    };
    let cfg = AnalyzeConfig {
        name,
        ..Default::default()
    };
    let r = analyze(&x, &cfg);
    print!("{r}");
    for p in write_plots(&r, out, "demo").expect("writable directory") {
        println!("{}", p.display());
    }
}
