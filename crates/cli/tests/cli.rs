//! The binary's contract: exit codes, errors that locate the damage, output
//! of everything read before it, standard input.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// End offsets of the records of a little-endian classic pcap.
fn record_ends(b: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
        ends.push(off);
    }
    ends
}

#[test]
fn truncated_capture_prints_the_prefix_then_a_located_error_and_exits_1() {
    let full = std::fs::read(data_dir().join("pcap-apps/ndpi/web/chrome.pcap")).unwrap();
    let ends = record_ends(&full);
    let cut = ends[41] + 10; // inside record 43
    let p = temp("truncated.pcap", &full[..cut]);
    let out = run(&["packets", "-r", p.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(out.status.code(), Some(1));
    let rows = csv_rows(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 42, "every complete record is printed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated.pcap"), "{err}");
    assert!(err.contains(&format!("byte offset {}", ends[41])), "{err}");
    assert!(err.contains("packet 43"), "{err}");

    // Flows of the prefix are written out too.
    let out = run(&["flows", "-r", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let rows = csv_rows(&String::from_utf8_lossy(&out.stdout));
    let packets: u64 = rows
        .iter()
        .map(|r| {
            r["fwd_packets"].parse::<u64>().unwrap() + r["bwd_packets"].parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(packets, 42);
}

#[test]
fn exit_codes_and_messages() {
    let text = temp("notes.txt", b"just some notes\nsecond line\n");
    let out = run(&["stats", "-r", text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a capture file") && err.contains("text"),
        "{err}"
    );

    let out = run(&["stats", "-r", "/nonexistent/x.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));

    let out = run(&["stats", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["packets", "-r", "x.pcap", "--speed", "-3"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn standard_input_reads_like_the_file() {
    let path = data_dir().join("pcap-apps/ndpi/video/dazn.pcapng");
    let by_file = run(&["packets", "-r", path.to_str().unwrap(), "--format", "csv"]);
    let mut child = Command::new(bin())
        .args(["packets", "-r", "-", "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&path).unwrap())
        .unwrap();
    let by_stdin = child.wait_with_output().unwrap();
    assert!(by_stdin.status.success());
    assert_eq!(by_file.stdout, by_stdin.stdout);
}

#[test]
fn replay_speed_paces_by_capture_time() {
    // chrome.pcap spans 1.50 s of capture time: at --speed 4 it takes ≥ 0.37 s.
    let path = data_dir().join("pcap-apps/ndpi/web/chrome.pcap");
    let t = std::time::Instant::now();
    let out = run(&["stats", "-r", path.to_str().unwrap(), "--speed", "4"]);
    assert!(out.status.success());
    let took = t.elapsed().as_secs_f64();
    assert!(took >= 1.5035 / 4.0 - 0.01, "replay took {took:.3} s");
}

#[cfg(feature = "arrow")]
#[test]
fn arrow_export_holds_the_same_flows_as_csv() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;
    use arrow_array::Array;
    let path = data_dir().join("pcap-apps/ndpi/web/facebook.pcap");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("flows.arrow");
    let st = run(&[
        "flows",
        "-r",
        path.to_str().unwrap(),
        "--format",
        "arrow",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(st.status.success());
    let csv = run(&["flows", "-r", path.to_str().unwrap()]);
    let rows = csv_rows(&String::from_utf8_lossy(&csv.stdout));
    let reader =
        arrow_ipc::reader::FileReader::try_new(std::fs::File::open(&out).unwrap(), None).unwrap();
    let (mut n, mut with_tls, mut with_cert) = (0, 0, 0);
    for batch in reader {
        let batch = batch.unwrap();
        let ids = batch
            .column_by_name("id")
            .unwrap()
            .as_primitive::<UInt64Type>();
        let pk = batch
            .column_by_name("fwd_packets")
            .unwrap()
            .as_primitive::<UInt64Type>();
        let strings = [
            "tls_sni",
            "http_path",
            "http_content_type",
            "tls_cert_name",
            "protocols",
        ]
        .map(|c| (c, batch.column_by_name(c).unwrap().as_string::<i32>()));
        for i in 0..batch.num_rows() {
            let r = &rows[n];
            assert_eq!(ids.value(i).to_string(), r["id"]);
            assert_eq!(pk.value(i).to_string(), r["fwd_packets"]);
            for (c, col) in &strings {
                let s = if col.is_null(i) { "" } else { col.value(i) };
                assert_eq!(s, r[*c], "{c}");
                if *c == "protocols" && s.contains("tls") {
                    with_tls += 1;
                }
                if *c == "tls_cert_name" && !s.is_empty() {
                    with_cert += 1;
                }
            }
            n += 1;
        }
    }
    assert_eq!(n, rows.len());
    assert!(n > 0);
    assert!(with_tls > 0 && with_cert > 0, "{with_tls} {with_cert}");
}

/// (capture time in ns, frame length, captured length) of one frame.
type FrameRow = (u64, u32, u32);

/// Every frame of a capture as tshark reads it: the oracle for what rotated
/// files hold.
fn tshark_frames(path: &std::path::Path) -> Vec<FrameRow> {
    require_tool("tshark", "tshark");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (s, frac) = f[0].split_once('.').unwrap_or((f[0], "0"));
            let ns: u64 = format!("{frac:0<9}")[..9].parse().unwrap();
            (
                s.parse::<u64>().unwrap() * 1_000_000_000 + ns,
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// Files written by a rotating capture into `dir` with base name `base`, in
/// the order they were written (by first frame time).
fn rotated_files(dir: &std::path::Path, base: &str) -> Vec<(std::path::PathBuf, Vec<FrameRow>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(base))
        .map(|p| {
            let frames = tshark_frames(&p);
            (p, frames)
        })
        .collect();
    files.sort_by_key(|(_, f)| f.first().map(|x| x.0));
    files
}

/// Runs `capture -r SRC -w DIR/NAME ARGS…`, which must succeed, and returns
/// the files it wrote.
fn capture_rotated(
    src: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    args: &[&str],
) -> Vec<(std::path::PathBuf, Vec<FrameRow>)> {
    let base = dir.join(name);
    let mut all = vec![
        "capture",
        "-r",
        src.to_str().unwrap(),
        "-w",
        base.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rotated_files(dir, name)
}

#[test]
fn capture_rotates_by_size_and_by_capture_time_without_losing_frames() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rotate");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = data_dir().join("pcap-apps/ndpi/video/1kxun.pcap");
    let all = tshark_frames(&src);

    // By size: -C 0.5 (500,000 bytes), like tcpdump -C.
    let files = capture_rotated(&src, &dir, "size.pcap", &["-C", "0.5"]);
    assert!(
        files.len() >= 5,
        "2.5 MB at 0.5 MB a file gives at least 5 files, got {}",
        files.len()
    );
    let joined: Vec<_> = files.iter().flat_map(|(_, f)| f.clone()).collect();
    assert_eq!(joined, all, "the files together hold every frame, in order");
    for (i, (p, frames)) in files.iter().enumerate() {
        let size = std::fs::metadata(p).unwrap().len();
        let last = frames.last().unwrap();
        if i + 1 < files.len() {
            // A file is cut at the first frame that finds it over the limit.
            assert!(
                size >= 500_000,
                "{}: {size} bytes, under the limit",
                p.display()
            );
            assert!(
                size - 16 - (last.2 as u64) < 500_000,
                "{}: {size} bytes, should have been cut one frame earlier",
                p.display()
            );
        }
    }

    // By capture time: -G 0.25 on a 1.5 s capture.
    let src = data_dir().join("pcap-apps/ndpi/web/chrome.pcap");
    let all = tshark_frames(&src);
    let files = capture_rotated(&src, &dir, "time.pcapng", &["-G", "0.25"]);
    // The documented rule, applied to tshark's timestamps: a frame 0.25 s or
    // more after the first frame of the current file opens a new file.
    let mut expected: Vec<Vec<FrameRow>> = Vec::new();
    for &f in &all {
        match expected.last_mut() {
            Some(cur) if f.0 < cur[0].0 + 250_000_000 => cur.push(f),
            _ => expected.push(vec![f]),
        }
    }
    assert!(expected.len() >= 3, "the capture spans several periods");
    let got: Vec<Vec<FrameRow>> = files.into_iter().map(|(_, f)| f).collect();
    assert_eq!(got, expected, "files split at 0.25 s of capture time");

    // Ring of 3 files: only the last three remain and hold the tail, in order.
    let src = data_dir().join("pcap-apps/ndpi/video/1kxun.pcap");
    let all = tshark_frames(&src);
    let files = capture_rotated(&src, &dir, "ring.pcap", &["-C", "0.5", "-W", "3"]);
    assert_eq!(files.len(), 3);
    let joined: Vec<_> = files.iter().flat_map(|(_, f)| f.clone()).collect();
    assert_eq!(
        joined[..],
        all[all.len() - joined.len()..],
        "the ring holds the newest frames"
    );

    // Usage errors (exit 2): a ring without rotation, rotation to stdout.
    let base = dir.join("ring.pcap");
    let out = run(&[
        "capture",
        "-r",
        src.to_str().unwrap(),
        "-w",
        base.to_str().unwrap(),
        "-W",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["capture", "-r", src.to_str().unwrap(), "-w", "-", "-C", "1"]);
    assert_eq!(out.status.code(), Some(2));
}
