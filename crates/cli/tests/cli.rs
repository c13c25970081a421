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
    let mut n = 0;
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
        let sni = batch.column_by_name("tls_sni").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            let r = &rows[n];
            assert_eq!(ids.value(i).to_string(), r["id"]);
            assert_eq!(pk.value(i).to_string(), r["fwd_packets"]);
            let s = if sni.is_null(i) { "" } else { sni.value(i) };
            assert_eq!(s, r["tls_sni"]);
            n += 1;
        }
    }
    assert_eq!(n, rows.len());
    assert!(n > 0);
}
