//! `run -w DIR` and `/api/v1/pcap`: the packets behind a chart, downloaded
//! from the service's ring of pcap files and compared packet for packet
//! with tshark reading the original capture; flows against their records
//! and tshark's five-tuple filter; the ring's bound on disk; 404 without a
//! ring, 400 naming each bad parameter, the token.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("run-pcap")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn capture(name: &str) -> PathBuf {
    data_dir().join("pcap-apps/ndpi").join(name)
}

/// A running `trafficscope run … --listen 127.0.0.1:0` and its address.
struct Service {
    child: Child,
    addr: String,
    stderr: std::sync::mpsc::Receiver<String>,
    token: Option<String>,
}

impl Service {
    /// Starts `run -r CAP --speed max ARGS` with its store in `dir`, and
    /// waits until the input has been read (every packet is then in the
    /// ring and every flow in the store).
    // The child is waited for by Drop, also when this panics.
    #[allow(clippy::zombie_processes)]
    fn replay(cap: &Path, dir: &Path, args: &[&str]) -> Service {
        let mut child = Command::new(bin())
            .args(["run", "-r", cap.to_str().unwrap(), "--speed", "max"])
            .args(["--data", dir.join("store").to_str().unwrap()])
            // The captures are years old: keep everything.
            .args(["--flow-retention", "36500d", "--bin-retention", "36500d"])
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let token = args
            .iter()
            .position(|a| *a == "--token")
            .map(|i| args[i + 1].to_string());
        let mut svc = Service {
            child,
            addr: String::new(),
            stderr: rx,
            token,
        };
        let url = svc.wait_for("serving http://");
        svc.addr = url
            .split("serving http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        svc.wait_for("input ended");
        svc
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = String::new();
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if l.contains(needle) => return l,
                Ok(l) => {
                    seen.push_str(&l);
                    seen.push('\n');
                }
                Err(_) => panic!("run never said {needle:?}; it said:\n{seen}"),
            }
        }
    }

    /// Waits until the summary says the ring's startup scan is done.
    fn wait_for_scan(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.json("/api/v1/summary")["pcap"]["scanning"] == false {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn get(&self, path: &str) -> Reply {
        http_get(&self.addr, path, self.token.as_deref())
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {}", self.status, self.text()))
    }
}

/// A plain HTTP/1.1 GET; the body de-chunked, as bytes.
fn http_get(addr: &str, path: &str, token: Option<&str>) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = s.windows(2).position(|w| w == b"\r\n").unwrap();
        let len = std::str::from_utf8(&s[..eol]).unwrap();
        let n = usize::from_str_radix(len.split(';').next().unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&s[eol + 2..eol + 2 + n]);
        s = &s[eol + 2 + n + 2..];
    }
}

/// Every frame of a capture: (time, wire length, bytes).
fn frames(name: &str, bytes: Vec<u8>) -> Vec<(u64, u32, Vec<u8>)> {
    let mut r = capture::CaptureReader::new(name, Box::new(std::io::Cursor::new(bytes)))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{name}: {e}")) {
        out.push((f.ts_ns, f.wire_len, f.data.to_vec()));
    }
    out
}

/// tshark's view of `file` with a display filter: one (epoch time, frame
/// length) per packet.
fn tshark(file: &Path, filter: &str) -> Vec<(String, u64)> {
    let out = Command::new("tshark")
        .args(["-n", "-r", file.to_str().unwrap(), "-Y", filter])
        .args(["-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark -Y {filter:?} on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (t, len) = l.split_once('\t').unwrap();
            (t.to_string(), len.parse().unwrap())
        })
        .collect()
}

/// Unix seconds with nine decimals: exact for the API and tshark alike.
fn secs(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// Writes a download to `dir/name` for tshark.
fn save(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn ring_files(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("ring-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_time_range_downloaded_is_what_tshark_reads_in_the_original() {
    require_tool("tshark", "tshark");
    let t0 = Instant::now();
    let cap = capture("video/netflix.pcap");
    let dir = temp_dir("range");
    let ring = dir.join("ring");
    let svc = Service::replay(
        &cap,
        &dir,
        &["-w", ring.to_str().unwrap(), "-G", "1", "-W", "1000"],
    );
    let original = frames("netflix.pcap", std::fs::read(&cap).unwrap());
    let (first, last) = (original[0].0, original.last().unwrap().0);

    // The ring holds every packet, and says so.
    let sum = svc.json("/api/v1/summary");
    let p = &sum["pcap"];
    assert_eq!(p["available"], true, "{p}");
    assert_eq!(p["first_ns"], first, "{p}");
    assert_eq!(p["last_ns"], last, "{p}");
    assert_eq!(p["packets"], original.len(), "{p}");
    assert_eq!(p["write_errors"], 0, "{p}");
    let files = ring_files(&ring);
    assert!(files.len() > 10, "-G 1 over 90 s: {files:?}");

    // A range cut at odd microseconds in the first and last thirds.
    let span = last - first;
    let (a, b) = (first + span / 3 + 123_457, first + 2 * span / 3 + 987_653);
    let r = svc.get(&format!("/api/v1/pcap?from={}&to={}", secs(a), secs(b)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.tcpdump.pcap")
    );
    let disp = r.header("content-disposition").unwrap();
    assert!(
        disp.starts_with("attachment; filename=\"trafficscope_2017") && disp.ends_with(".pcap\""),
        "{disp}"
    );
    assert_eq!(r.header("x-trafficscope-max-packets"), Some("1000000"));
    assert_eq!(r.header("x-trafficscope-max-bytes"), Some("1000000000"));
    let got = save(&dir, "range.pcap", &r.body);
    let oracle = tshark(
        &cap,
        &format!(
            "frame.time_epoch >= {} && frame.time_epoch < {}",
            secs(a),
            secs(b)
        ),
    );
    assert!(oracle.len() > 300, "{} packets in range", oracle.len());
    // tshark reads the download as it reads the original, packet for packet.
    assert_eq!(tshark(&got, "frame"), oracle);
    // And the bytes are the original's, record for record.
    let want: Vec<_> = original
        .iter()
        .filter(|f| f.0 >= a && f.0 < b)
        .cloned()
        .collect();
    assert_eq!(frames("download", r.body.clone()), want);
    let bytes: u64 = oracle.iter().map(|o| o.1).sum();
    eprintln!(
        "range [{}, {}): {} packets, {bytes} bytes, same as tshark ({:.1} s)",
        secs(a),
        secs(b),
        oracle.len(),
        t0.elapsed().as_secs_f64()
    );

    // All of it, and an empty stretch inside the ring: a valid, empty pcap.
    let r = svc.get(&format!(
        "/api/v1/pcap?from={}&to={}",
        secs(first),
        secs(last + 1)
    ));
    assert_eq!(frames("all", r.body).len(), original.len());
    let r = svc.get(&format!("/api/v1/pcap?from={}&to={}", secs(a), secs(a + 1)));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 24, "a pcap header only");
    // Address, port and protocol, against tshark's filter.
    let r = svc.get(&format!(
        "/api/v1/pcap?from={}&to={}&addr=192.168.1.1&port=53&proto=udp",
        secs(first),
        secs(last + 1)
    ));
    let got = save(&dir, "dns.pcap", &r.body);
    let oracle = tshark(&cap, "ip.addr == 192.168.1.1 && udp.port == 53");
    assert!(!oracle.is_empty());
    assert_eq!(tshark(&got, "frame"), oracle);
    // A tcpdump filter narrows it further.
    let r = svc.get(&format!(
        "/api/v1/pcap?from={}&to={}&proto=tcp&filter=tcp%5Btcpflags%5D+%26+tcp-syn+!%3D+0",
        secs(first),
        secs(last + 1)
    ));
    let got = save(&dir, "syn.pcap", &r.body);
    assert_eq!(tshark(&got, "frame"), tshark(&cap, "tcp.flags.syn == 1"));
    eprintln!("range checks: {:.1} s", t0.elapsed().as_secs_f64());
}

/// Downloads each flow from the flow listing of `cap`'s replay and
/// compares it with the record and with tshark on the five-tuple.
fn check_flows(cap: &Path, dir: &Path, want: &[(&str, usize)]) {
    let ring = dir.join("ring");
    let svc = Service::replay(cap, dir, &["-w", ring.to_str().unwrap(), "-G", "1"]);
    let list = svc.json("/api/v1/flows?from=0&to=2100-01-01T00:00:00Z&sort=bytes&limit=1000");
    let flows = list["flows"].as_array().unwrap();
    for (proto, n) in want {
        let picked: Vec<&serde_json::Value> = flows
            .iter()
            .map(|f| &f["record"])
            .filter(|r| match *proto {
                "tcp" => r["protocol"] == 6,
                "udp" => r["protocol"] == 17,
                _ => unreachable!(),
            })
            .take(*n)
            .collect();
        assert_eq!(picked.len(), *n, "{proto} flows in {}", cap.display());
        for r in picked {
            // Built from the record as a dashboard would: its fields, its
            // start and end as they are.
            let flow = format!(
                "{},{},{},{},{}",
                r["protocol"],
                r["src"].as_str().unwrap(),
                r["src_port"],
                r["dst"].as_str().unwrap(),
                r["dst_port"]
            );
            let path = format!(
                "/api/v1/pcap?flow={}&from={}&to={}",
                flow.replace(':', "%3A"),
                r["start"].as_str().unwrap(),
                r["end"].as_str().unwrap()
            );
            let reply = svc.get(&path);
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            let got = frames("flow", reply.body.clone());
            let packets =
                r["fwd"]["packets"].as_u64().unwrap() + r["bwd"]["packets"].as_u64().unwrap();
            let bytes = r["fwd"]["bytes"].as_u64().unwrap() + r["bwd"]["bytes"].as_u64().unwrap();
            let got_bytes: u64 = got.iter().map(|f| f.1 as u64).sum();
            assert_eq!(
                (got.len() as u64, got_bytes),
                (packets, bytes),
                "{flow}: {r}"
            );
            // tshark: the five-tuple either way within the record's span.
            let (ip, l4) = if r["ip_version"] == 6 {
                ("ipv6", *proto)
            } else {
                ("ip", *proto)
            };
            let (s, sp, d, dp) = (
                r["src"].as_str().unwrap(),
                &r["src_port"],
                r["dst"].as_str().unwrap(),
                &r["dst_port"],
            );
            let (start, end) = (
                r["start_ns"].as_u64().unwrap(),
                r["end_ns"].as_u64().unwrap(),
            );
            let filter = format!(
                "(({ip}.src == {s} && {l4}.srcport == {sp} && {ip}.dst == {d} && {l4}.dstport == {dp}) || \
                 ({ip}.src == {d} && {l4}.srcport == {dp} && {ip}.dst == {s} && {l4}.dstport == {sp})) && \
                 frame.time_epoch >= {} && frame.time_epoch <= {}",
                secs(start),
                secs(end)
            );
            let saved = save(dir, "flow.pcap", &reply.body);
            let oracle = tshark(cap, &filter);
            assert_eq!(tshark(&saved, "frame"), oracle, "{flow}");
            eprintln!(
                "{}: flow {flow}: {packets} packets, {bytes} bytes = record = tshark",
                cap.file_name().unwrap().to_string_lossy()
            );
        }
    }
}

#[test]
fn a_flow_downloaded_is_its_record_and_tshark_five_tuple() {
    require_tool("tshark", "tshark");
    let t0 = Instant::now();
    check_flows(
        &capture("video/netflix.pcap"),
        &temp_dir("flow-v4"),
        &[("tcp", 3), ("udp", 2)],
    );
    check_flows(
        &capture("web/http_ipv6.pcap"),
        &temp_dir("flow-v6"),
        &[("tcp", 2)],
    );
    eprintln!("flow checks: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn the_ring_stays_bounded_and_a_restart_serves_what_it_left() {
    require_tool("tshark", "tshark");
    let t0 = Instant::now();
    let cap = capture("video/netflix.pcap");
    let dir = temp_dir("bound");
    let ring = dir.join("ring");
    let r = ring.to_str().unwrap();
    // By size: 20 kB files, a ring of 4.
    let limit = 20_000u64;
    {
        let svc = Service::replay(&cap, &dir, &["-w", r, "-C", "0.02", "-W", "4"]);
        let files = ring_files(&ring);
        assert_eq!(files.len(), 4, "{files:?}");
        let largest = frames("netflix", std::fs::read(&cap).unwrap())
            .iter()
            .map(|f| f.2.len() as u64)
            .max()
            .unwrap();
        for (name, size) in &files {
            assert!(*size <= limit + 16 + largest, "{name}: {size} bytes");
        }
        let p = &svc.json("/api/v1/summary")["pcap"];
        assert!(p["written"]["files"].as_u64().unwrap() > 40, "{p}");
        assert_eq!(p["files"], 4, "{p}");
        // What is held: the newest packets, and exactly them.
        let (first, last) = (
            p["first_ns"].as_u64().unwrap(),
            p["last_ns"].as_u64().unwrap(),
        );
        let reply = svc.get(&format!(
            "/api/v1/pcap?from={}&to={}",
            secs(first),
            secs(last + 1)
        ));
        let got = save(&dir, "held.pcap", &reply.body);
        let oracle = tshark(&cap, &format!("frame.time_epoch >= {}", secs(first)));
        assert_eq!(tshark(&got, "frame"), oracle);
        // Older packets were overwritten: 404 saying what is held.
        let reply = svc.get(&format!("/api/v1/pcap?from=1484319030&to={}", secs(first)));
        assert_eq!(reply.status, 404, "{}", reply.text());
        assert!(reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("the ring holds packets from"));
    }
    // By time: a ring of 3 one-second files.
    let _ = std::fs::remove_dir_all(&ring);
    {
        let _svc = Service::replay(&cap, &dir, &["-w", r, "-G", "1", "-W", "3"]);
        assert_eq!(ring_files(&ring).len(), 3);
    }
    // A restart (here replaying the capture's first packet only) continues
    // the ring after its newest file: the earlier run's files are indexed
    // in the background and served.
    let before = ring_files(&ring);
    let svc = Service::replay(&cap, &dir, &["-w", r, "-G", "1", "-W", "3", "-c", "1"]);
    assert!(svc.wait_for_scan());
    let after = ring_files(&ring);
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(
        before.iter().filter(|b| after.contains(b)).count(),
        2,
        "one file replaced: {before:?} → {after:?}"
    );
    let p = &svc.json("/api/v1/summary")["pcap"];
    assert_eq!(p["files"], 3, "{p}");
    assert_eq!(p["first_ns"], 1_484_319_030_789_585_000u64, "{p}");
    let held_before = p["last_ns"].as_u64().unwrap() - 4_000_000_000;
    let reply = svc.get(&format!(
        "/api/v1/pcap?from={}&to=1484319200",
        secs(held_before)
    ));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let got = save(&dir, "restart.pcap", &reply.body);
    let oracle = tshark(&cap, &format!("frame.time_epoch >= {}", secs(held_before)));
    let old = tshark(&got, "frame");
    assert!(
        !old.is_empty() && oracle.ends_with(&old),
        "the earlier run's newest files are served"
    );
    eprintln!("bound checks: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn without_a_ring_404_bad_parameters_400_and_the_token_guards_it() {
    let t0 = Instant::now();
    let cap = capture("other/dns.pcap");
    let dir = temp_dir("errors");
    // No -w: 404 saying how to get a ring; the summary says there is none.
    {
        let svc = Service::replay(&cap, &dir, &[]);
        let r = svc.get("/api/v1/pcap?from=0&to=1");
        assert_eq!(r.status, 404);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            r.json()["error"].as_str().unwrap().contains("-w DIR"),
            "{}",
            r.text()
        );
        assert_eq!(svc.json("/api/v1/summary")["pcap"]["available"], false);
        let index = svc.json("/api/v1/");
        assert!(
            index["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["path"] == "/api/v1/pcap" && e["parameters"][2] == "flow"),
            "{index}"
        );
    }
    let cap = capture("video/netflix.pcap");
    let ring = dir.join("ring");
    let svc = Service::replay(
        &cap,
        &dir.join("2"),
        &["-w", ring.to_str().unwrap(), "--token", "s3cret"],
    );
    let bad: &[(&str, &str)] = &[
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2000&to=1000", "from"),
        ("from=0&to=1000000", "from"),
        ("flow=tcp,1.2.3.4,1,5.6.7.8", "flow"),
        ("flow=tpc,1.2.3.4,1,5.6.7.8,2", "flow"),
        ("flow=tcp,1.2.3.4,99999,5.6.7.8,2", "flow"),
        ("flow=udp,1.2.3.4,1,5.6.7.8,2&addr=1.2.3.4", "addr"),
        ("addr=1.2.3", "addr"),
        ("port=65536", "port"),
        ("port=http", "port"),
        ("proto=ipx", "proto"),
        ("filter=tcp+prot+80", "filter"),
        ("limit=5", "limit"),
        ("from=%ZZ", "from"),
    ];
    for (q, param) in bad {
        let path = format!("/api/v1/pcap?{q}");
        let r = svc.get(&path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let body = r.json();
        assert_eq!(body["parameter"], *param, "{path}: {body}");
        assert!(
            body["error"].is_string() && body["accepted"].is_string(),
            "{path}: {body}"
        );
    }
    // The token: none or a wrong one → 401, the right one → the file.
    let path = "/api/v1/pcap?from=1484319000&to=1484319200";
    assert_eq!(http_get(&svc.addr, path, None).status, 401);
    assert_eq!(http_get(&svc.addr, path, Some("wrong")).status, 401);
    let r = svc.get(path);
    assert_eq!(r.status, 200, "{}", r.text());
    let n = frames("netflix", std::fs::read(&cap).unwrap()).len();
    assert_eq!(frames("download", r.body).len(), n);
    eprintln!("error checks: {:.1} s", t0.elapsed().as_secs_f64());
}
