//! The readers on the real files in shared/data/lrd, checked against the
//! counts and sums stated in MANIFEST.md, plus bad-input errors.
use selfsim::io::bin_events_secs;
use selfsim::{
    read_csv_column, read_interarrivals, read_series_spec, read_time_size, read_values, InputError,
};
use std::path::PathBuf;

mod common;

fn data(rel: &str) -> Option<PathBuf> {
    let p = common::lrd_dir()?.join(rel);
    assert!(p.exists(), "{} missing from the data set", p.display());
    Some(p)
}

#[test]
fn bellcore_tl_and_interarrivals_agree_with_manifest() {
    let (Some(tl), Some(ia)) = (
        data("bellcore/BC-pAug89-small.TL.gz"),
        data("bellcore/BC-pAug89.interarrivals.txt.gz"),
    ) else {
        return;
    };
    let ev = read_time_size(&tl).unwrap();
    let sizes = ev.sizes.as_ref().unwrap();
    assert_eq!(ev.times.len(), 100_001);
    assert_eq!((ev.times[0], sizes[0]), (0.001340, 1090.0));
    assert_eq!(
        (*ev.times.last().unwrap(), *sizes.last().unwrap()),
        (252.082436, 1090.0)
    );
    assert!(sizes.iter().all(|s| (64.0..=1518.0).contains(s)));

    let arr = read_interarrivals(&ia, 0.001340).unwrap();
    assert_eq!(arr.times.len(), 1_000_000); // 999,999 gaps
    let total = arr.times.last().unwrap() - arr.times[0];
    assert!((total - 3142.820396).abs() < 1e-6, "sum {total}");
    assert!((arr.times.last().unwrap() - 3142.821736).abs() < 1e-6);
    // Reconstructed times reproduce the .TL timestamps (MANIFEST: within 3e-14 s).
    let worst = ev
        .times
        .iter()
        .zip(&arr.times)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-9, "max difference {worst}");

    // Binning: every packet lands in a bin; bytes add up.
    let b = bin_events_secs(&ev.times, Some(sizes), 0.01).unwrap();
    assert_eq!(b.packets.iter().sum::<f64>(), 100_001.0);
    assert_eq!(b.bytes.iter().sum::<f64>(), sizes.iter().sum::<f64>());
    assert_eq!(b.bytes.len(), ((252.082436 - 0.001340) / 0.01) as usize + 1);
}

#[test]
fn dec_pkt_video_nile_and_columns() {
    if let Some(p) = data("dec-pkt/DEC-PKT-1-UDP.interarrivals.txt.gz") {
        let ev = read_interarrivals(&p, 0.0).unwrap();
        assert_eq!(ev.times.len(), 829_758);
        assert!((ev.times.last().unwrap() - 3599.94).abs() < 0.01);
    }
    if let Some(p) = data("longmemo/videoVBR_1000.txt") {
        assert_eq!(read_values(&p).unwrap().len(), 1000);
    }
    if let Some(p) = data("longmemo/NileMin_622-1284.txt") {
        let x = read_series_spec(&p, "values").unwrap();
        assert_eq!((x.len(), x[0], x[1]), (663, 1157.0, 1088.0));
    }
    if let Some(p) = data("longmemo/ethernetTraffic_bellcore_4000.txt") {
        assert_eq!(read_values(&p).unwrap().len(), 4000);
    }
    if let Some(p) = data("tsdl-hurst/minimum.dat") {
        // Title line skipped, then 848 values in metres.
        let x = read_values(&p).unwrap();
        assert_eq!((x.len(), x[0]), (848, 11.57));
    }
    if let Some(p) = data("video/movietrace.data.gz") {
        let sizes = read_csv_column(&p, "4").unwrap();
        assert_eq!(sizes.len(), 53_997);
        assert_eq!(sizes[0], 536.0);
        let frames = read_series_spec(&p, "csv:1").unwrap();
        assert_eq!(frames.len(), 53_997);
    }
}

fn tmp(name: &str, content: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("selfsim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn parse_line(e: InputError) -> (PathBuf, usize, String) {
    match e {
        InputError::Parse { path, line, msg } => (path, line, msg),
        other => panic!("expected a parse error, got {other}"),
    }
}

#[test]
fn bad_files_give_errors_naming_file_and_line() {
    let p = tmp("unsorted.tl", b"0.1 100\n0.2 200\n0.15 50\n");
    let (path, line, msg) = parse_line(read_time_size(&p).unwrap_err());
    assert_eq!((path, line), (p.clone(), 3));
    assert!(msg.contains("unsorted"), "{msg}");
    let e = read_time_size(&p).unwrap_err().to_string();
    assert!(e.contains("unsorted.tl:3:"), "{e}");

    let p = tmp("neg.tl", b"0.1 100\n0.2 -5\n");
    assert!(parse_line(read_time_size(&p).unwrap_err())
        .2
        .contains("negative size"));
    let p = tmp("nan.txt", b"1\n2\nNaN\n");
    assert_eq!(parse_line(read_values(&p).unwrap_err()).1, 3);
    let p = tmp("word.txt", b"1\n2\nabc\n");
    assert_eq!(parse_line(read_values(&p).unwrap_err()).1, 3);
    let p = tmp("negia.txt", b"0.1\n-0.2\n");
    assert!(parse_line(read_interarrivals(&p, 0.0).unwrap_err())
        .2
        .contains("negative"));
    let p = tmp("empty.txt", b"\n# only a comment\n");
    assert!(matches!(read_values(&p), Err(InputError::Invalid { .. })));
    assert!(matches!(
        read_time_size(&p),
        Err(InputError::Invalid { .. })
    ));
    assert!(matches!(
        read_values("/nonexistent/x.txt"),
        Err(InputError::Io { .. })
    ));
    let p = tmp("cols.csv", b"t,bytes\n0,10\n1,20\n2\n");
    assert!(read_series_spec(&p, "csv:bytes")
        .unwrap_err()
        .to_string()
        .contains(":4:"));
    let p = tmp("cols2.csv", b"t,bytes\n0,10\n1,20\n");
    assert_eq!(read_series_spec(&p, "csv:bytes").unwrap(), vec![10.0, 20.0]);
    assert_eq!(read_series_spec(&p, "csv:2").unwrap(), vec![10.0, 20.0]);
    assert!(read_series_spec(&p, "csv:nope").is_err());
    assert!(read_series_spec(&p, "bogus").is_err());
    // Gzip detected by magic, not by name.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"1.5\n2.5\n").unwrap();
    let p = tmp("plain-name.txt", &gz.finish().unwrap());
    assert_eq!(read_values(&p).unwrap(), vec![1.5, 2.5]);
    // A corrupt gzip stream is an I/O error naming the file.
    let p = tmp("bad.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]);
    let e = read_values(&p).unwrap_err().to_string();
    assert!(e.contains("bad.gz"), "{e}");
}
