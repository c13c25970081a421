//! The report, JSON, plots and the sliding window.
use selfsim::{analyze, synth_fgn, write_plots, AnalyzeConfig, SlidingHurst};

#[test]
fn report_json_and_plots() {
    let x = synth_fgn(0.8, 1 << 13, 21).unwrap();
    let cfg = AnalyzeConfig {
        name: "fgn".into(),
        bin_width_s: Some(0.1),
        ..Default::default()
    };
    let r = analyze(&x, &cfg);
    let text = r.to_string();
    for m in [
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
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(m)),
            "{m} missing:\n{text}"
        );
        let e = r.get(m).unwrap();
        assert!((e.h - 0.8).abs() < 0.2, "{m}: {}", e.h);
        // The plotted fit reproduces H for the slope-based methods.
        if let Some((slope, _)) = e.plot.fit {
            let implied = match m {
                "rs" | "dfa1" | "dfa2" => slope,
                "aggvar" => 1.0 + slope / 2.0,
                "absmom" => 1.0 + slope,
                "periodogram" | "local-whittle" => (1.0 - slope) / 2.0,
                "gph" => 0.5 - slope,
                "wavelet" => (slope + 1.0) / 2.0,
                _ => e.h,
            };
            assert!(
                (implied - e.h).abs() < 1e-9,
                "{m}: plot slope gives {implied}, H {}",
                e.h
            );
        }
    }
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(json["n"], 8192);
    assert_eq!(json["estimates"].as_array().unwrap().len(), 11);
    assert!(json["estimates"][3]["estimate"]["h"].as_f64().unwrap() > 0.6);
    let hvm = r.h_vs_m.as_ref().unwrap();
    assert!(hvm.x.len() > 10 && hvm.y.iter().all(|h| h.is_finite()));
    let v = r.v_statistic.as_ref().unwrap();
    // For H > 1/2 the V statistic rises with n.
    assert!(v.y.last().unwrap() > &v.y[0]);

    let dir = std::env::temp_dir().join(format!("selfsim-plots-{}", std::process::id()));
    let files = write_plots(&r, &dir, "fgn").unwrap();
    // Eight plots (series, pox, periodogram, variance-time, wavelet, DFA-1,
    // V statistic, H vs M), each as SVG followed by PNG.
    assert_eq!(files.len(), 16);
    for pair in files.chunks(2) {
        let (svg, png) = (&pair[0], &pair[1]);
        assert_eq!(svg.extension().unwrap(), "svg");
        assert_eq!(png.with_extension("svg"), *svg);
        let s = std::fs::read_to_string(svg).unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{}",
            svg.display()
        );
        assert!(!s.contains("NaN"), "{}", svg.display());
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (640, 420), "{}", png.display());
        // Not blank: the plotted points are there.
        let blue = buf[..info.buffer_size()]
            .chunks(3)
            .filter(|p| p[2] > 150 && p[0] < 120)
            .count();
        assert!(blue > 20, "{}: {blue} point pixels", png.display());
    }
    for kind in [
        "series",
        "rs-pox",
        "periodogram",
        "variance-time",
        "wavelet-logscale",
        "v-statistic",
        "lw-h-vs-m",
    ] {
        assert!(dir.join(format!("fgn-{kind}.png")).is_file(), "{kind}");
    }
}

#[test]
fn sliding_window_tracks_h_with_bounded_output_schedule() {
    let x = synth_fgn(0.8, 16384, 5).unwrap();
    let mut s = SlidingHurst::new(4096, 1024);
    let out: Vec<_> = x.iter().filter_map(|v| s.push(*v)).collect();
    assert_eq!(out.len(), (16384 - 4096) / 1024 + 1);
    assert_eq!(out[0].end_index, 4095);
    assert_eq!(out[1].end_index, 4095 + 1024);
    for w in &out {
        assert!((w.h_local_whittle.unwrap() - 0.8).abs() < 0.15);
        assert!((w.h_wavelet.unwrap() - 0.8).abs() < 0.15);
        assert!(w.burstiness.is_some() && w.errors.is_empty());
    }
    // A constant stretch gives messages, not NaN or a panic.
    let mut s = SlidingHurst::new(512, 512);
    let w = (0..512).filter_map(|_| s.push(1.0)).next().unwrap();
    assert!(w.h_local_whittle.is_none() && w.h_wavelet.is_none());
    assert_eq!(w.burstiness, Some(0.0));
    assert_eq!(w.errors.len(), 2);
}
