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

#[test]
fn capture_on_any_writes_linux_sll2_that_tshark_and_trafficscope_decode() {
    if !is_root() {
        eprintln!("skipped: live capture needs root or CAP_NET_RAW");
        return;
    }
    require_tool("tshark", "tshark");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-any.pcapng");
    let filter = format!("udp dst port {port}");
    let child = Command::new(bin())
        .args([
            "capture",
            "-i",
            "any",
            "-f",
            &filter,
            "-c",
            "5",
            "--duration",
            "5s",
            "-w",
        ])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sport = tx.local_addr().unwrap().port();
    for i in 0..5 {
        tx.send_to(&vec![5u8; 10 * (i + 1)], ("127.0.0.1", port))
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The oracle: tshark's reading of the cooked v2 header.
    let lo: u32 = std::fs::read_to_string("/sys/class/net/lo/ifindex")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&path)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "frame.protocols",
            "-e",
            "frame.len",
            "-e",
            "sll.etype",
            "-e",
            "sll.ifindex",
            "-e",
            "sll.pkttype",
            "-e",
            "sll.hatype",
            "-e",
            "sll.halen",
            "-e",
            "sll.src.eth",
            "-e",
            "udp.dstport",
        ])
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&t.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    // sll:ethertype, 20-byte header + 28 + payload, IPv4, lo, PACKET_HOST,
    // ARPHRD_LOOPBACK, 6-byte (all-zero) address.
    let want: Vec<String> = (0..5)
        .map(|i| {
            format!(
                "sll:ethertype:ip:udp:data,{},0x0800,{lo},0,772,6,00:00:00:00:00:00,{port}",
                48 + 10 * (i + 1)
            )
        })
        .collect();
    assert_eq!(lines, want);
    // And trafficscope reads its own file back.
    let o = run(&["flows", "-r", path.to_str().unwrap(), "--format", "csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = csv_rows(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["src_port"], sport.to_string());
    assert_eq!(rows[0]["dst_port"], port.to_string());
    assert_eq!(rows[0]["fwd_packets"], "5");
    let bytes: usize = (0..5).map(|i| 48 + 10 * (i + 1)).sum();
    assert_eq!(rows[0]["fwd_bytes"], bytes.to_string());
}

/// The records of a little-endian pcap file (micro- or nanosecond): (link
/// type, [(caplen, wire length, bytes)]).
fn pcap_records(path: &std::path::Path) -> (u32, Vec<(u32, u32, Vec<u8>)>) {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() >= 24, "{} too short", path.display());
    assert!(
        b[0..4] == [0xd4, 0xc3, 0xb2, 0xa1] || b[0..4] == [0x4d, 0x3c, 0xb2, 0xa1],
        "{}: not a little-endian pcap file",
        path.display()
    );
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let (cl, wl) = (u32_at(o + 8), u32_at(o + 12));
        out.push((cl, wl, b[o + 16..o + 16 + cl as usize].to_vec()));
        o += 16 + cl as usize;
    }
    (u32_at(20), out)
}

#[test]
fn capture_on_any_matches_tcpdump_byte_for_byte() {
    any_matches_tcpdump("LINUX_SLL2", 276, 20);
}

#[test]
fn capture_on_any_with_linux_sll_matches_tcpdump_y_linux_sll() {
    any_matches_tcpdump("LINUX_SLL", 113, 16);
}

/// `capture -i any -y TYPE` and `tcpdump -i any -y TYPE` write the same
/// records (link type `lt`, cooked header of `hdr` bytes).
fn any_matches_tcpdump(linktype: &str, lt: u32, hdr: u32) {
    if !is_root() {
        eprintln!("skipped: live capture needs root or CAP_NET_RAW");
        return;
    }
    require_tool("tcpdump", "tcpdump");
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    let rx6 = UdpSocket::bind(("::1", port)).ok();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (ours, theirs) = (
        dir.join(format!("any-ours-{lt}.pcap")),
        dir.join(format!("any-tcpdump-{lt}.pcap")),
    );
    let filter = format!("udp port {port}");
    let td = Command::new("tcpdump")
        .args(["-U", "-n", "-i", "any", "-y", linktype, "-s", "200", "-w"])
        .arg(&theirs)
        .arg(&filter)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ts = Command::new(bin())
        .args([
            "capture", "-i", "any", "-y", linktype, "-s", "200", "-f", &filter,
        ])
        .args(["--duration", "4s", "-w"])
        .arg(&ours)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..6 {
        // One longer than the snapshot length.
        let len = if i == 5 { 400 } else { 10 + 7 * i };
        tx.send_to(&vec![i as u8; len], ("127.0.0.1", port))
            .unwrap();
    }
    if rx6.is_some() {
        if let Ok(tx6) = UdpSocket::bind("[::1]:0") {
            tx6.send_to(b"six", ("::1", port)).unwrap();
        }
    }
    let out = ts.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: plain kill(2) of the tcpdump child started above.
    unsafe { libc::kill(td.id() as i32, libc::SIGINT) };
    let td_out = td.wait_with_output().unwrap();
    let (lt_ours, recs_ours) = pcap_records(&ours);
    let (lt_theirs, recs_theirs) = pcap_records(&theirs);
    assert_eq!(lt_theirs, lt, "tcpdump -y {linktype}");
    assert_eq!(lt_ours, lt);
    assert_eq!(
        recs_ours.len(),
        6 + usize::from(rx6.is_some()),
        "{}",
        String::from_utf8_lossy(&td_out.stderr)
    );
    // Same packets, same headers, same lengths, same snapshot cut.
    assert_eq!(recs_ours, recs_theirs);
    assert_eq!(recs_ours[5].0, 200);
    assert_eq!(recs_ours[5].1, hdr + 28 + 400);
}
