//! Live capture end to end: known traffic on loopback, captured by the binary,
//! must come out as exactly the flows that were sent, with no drops.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn live_flows_on_loopback_match_what_was_sent() {
    if !is_root() {
        eprintln!("skipped: live capture needs root or CAP_NET_RAW");
        return;
    }
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (sp, cp) = (
        server.local_addr().unwrap().port(),
        client.local_addr().unwrap().port(),
    );
    let filter = format!("udp and port {sp}");
    let child = Command::new(bin())
        .args([
            "flows",
            "-i",
            "lo",
            "-f",
            &filter,
            "--duration",
            "3s",
            "--format",
            "csv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the capture open its ring before sending.
    std::thread::sleep(Duration::from_millis(1000));
    let mut buf = [0u8; 2048];
    for i in 0..20 {
        client
            .send_to(&vec![b'q'; 100 + i], ("127.0.0.1", sp))
            .unwrap();
        let (_, from) = server.recv_from(&mut buf).unwrap();
        if i % 2 == 0 {
            server.send_to(&[b'r'; 300], from).unwrap();
            client.recv_from(&mut buf).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rows = csv_rows(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 1, "one flow expected: {rows:?}");
    let r = &rows[0];
    assert_eq!(r["src_port"], cp.to_string());
    assert_eq!(r["dst_port"], sp.to_string());
    assert_eq!(r["fwd_packets"], "20");
    assert_eq!(r["bwd_packets"], "10");
    // Ethernet 14 + IPv4 20 + UDP 8 + payload.
    let fwd_bytes: usize = (0..20).map(|i| 42 + 100 + i).sum();
    assert_eq!(r["fwd_bytes"], fwd_bytes.to_string());
    assert_eq!(r["bwd_bytes"], (10 * (42 + 300)).to_string());
    assert!(err.contains(" 0 dropped by kernel"), "{err}");
}

#[test]
fn capture_writes_a_file_tshark_reads_identically() {
    if !is_root() {
        eprintln!("skipped: live capture needs root or CAP_NET_RAW");
        return;
    }
    require_tool("tshark", "tshark");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("live.pcapng");
    let filter = format!("udp dst port {port}");
    let child = Command::new(bin())
        .args([
            "capture",
            "-i",
            "lo",
            "-f",
            &filter,
            "-c",
            "7",
            "--duration",
            "5s",
            "-w",
        ])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    for i in 0..7 {
        sock.send_to(&vec![7u8; 10 * (i + 1)], ("127.0.0.1", port))
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&path)
        .args(["-T", "fields", "-e", "frame.len", "-e", "udp.dstport"])
        .output()
        .unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&t.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = (0..7)
        .map(|i| format!("{}\t{port}", 42 + 10 * (i + 1)))
        .collect();
    assert_eq!(lines, want);
}
