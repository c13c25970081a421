//! `trafficscope demo` end to end, through the real binary: the URL it
//! prints, the API behind it, its ground truth and its exit.
//!
//! - the plain demo (in-process generator): the first full evaluation
//!   window scores ≥ 0.95 against the generator's truth, web, video and
//!   VoIP all carry packets by true class, and after SIGINT it exits 0 with
//!   its temporary store gone;
//! - port 8080 taken: it serves elsewhere and says so;
//! - `--live loopback` and `--live netns` (root; skipped otherwise): packets
//!   captured from the interface, scored, the truth it scored with (the
//!   generator's plan, as rules) equal to the generator's own label rows
//!   for every flow of the store, and (netns) the namespace gone after
//!   SIGINT;
//! - `--live` without CAP_NET_RAW: a clear error that suggests plain `demo`.
//!
//! Every child is stopped by a guard if a test fails (SIGINT first, so a
//! namespace is removed, then SIGKILL).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use store::History;

/// From the start to the first full window, at most (the window is 5 s;
/// it closes at most 10 s after the start, and is on disk 0.5 s later).
const FIRST_WINDOW_WITHIN: Duration = Duration::from_secs(40);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// An empty directory for one test (its TMPDIR or its files).
fn test_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("demo")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Lines of a child's output as they come.
fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `trafficscope demo`; interrupted, then killed, on drop.
struct Demo {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: Vec<String>,
    /// Its TMPDIR: a temporary store goes here.
    tmp: PathBuf,
    started: Instant,
}

impl Demo {
    // The child is waited for by Drop, also when this panics.
    #[allow(clippy::zombie_processes)]
    fn start(name: &str, args: &[&str]) -> Demo {
        let tmp = test_dir(name).join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = Command::new(bin())
            .arg("demo")
            .args(args)
            .env("TMPDIR", &tmp)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines(child.stdout.take().unwrap());
        let err = lines(child.stderr.take().unwrap());
        Demo {
            child,
            out,
            err,
            stdout: Vec::new(),
            stderr: Vec::new(),
            tmp,
            started: Instant::now(),
        }
    }

    /// Everything it printed so far, for failure messages.
    fn outputs(&mut self) -> String {
        self.stdout.extend(self.out.try_iter());
        self.stderr.extend(self.err.try_iter());
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.join("\n"),
            self.stderr.join("\n")
        )
    }

    /// Waits for a line of standard output containing `needle`.
    fn wait_stdout(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        if let Some(l) = self.stdout.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            match self
                .out
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    self.stdout.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => {
                    let so_far = self.outputs();
                    panic!("demo never printed {needle:?} within {within:?}; {so_far}")
                }
            }
        }
    }

    /// The address in `open http://ADDR/ in a browser`.
    fn url(&mut self) -> String {
        let l = self.wait_stdout("open http://", Duration::from_secs(30));
        assert!(
            l.starts_with("trafficscope demo: open http://") && l.contains("in a browser"),
            "{l}"
        );
        l.split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap()
            .to_string()
    }

    /// The store directory it announced, and whether it is temporary.
    fn store(&mut self) -> (PathBuf, bool) {
        let l = self.wait_stdout("store in ", Duration::from_secs(30));
        let rest = l.split("store in ").nth(1).unwrap();
        let (path, note) = rest.split_once(" (").unwrap();
        (PathBuf::from(path), note.starts_with("temporary"))
    }

    /// SIGINT, then the exit status (within `within`) and all of stderr.
    fn interrupt(&mut self, within: Duration) -> (ExitStatus, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // The reader threads end at EOF: take everything.
                self.stderr.extend(self.err.iter());
                self.stdout.extend(self.out.iter());
                return (st, self.stderr.join("\n"));
            }
            if Instant::now() > deadline {
                let so_far = self.outputs();
                panic!("demo did not exit within {within:?} of SIGINT; {so_far}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGINT first: a live demo removes its namespace on the way out.
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// GET `path` on `addr`: the status and the JSON body (`null` if not JSON).
fn http_get(addr: &str, path: &str) -> (u16, Value) {
    try_get(addr, path).unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"))
}

fn try_get(addr: &str, path: &str) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let bad = || std::io::Error::other(format!("not an HTTP answer: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    Ok((status, json))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// Polls `path` until `pick` finds what it wants in a 200 answer, or the
/// deadline passes (then panics with the last answer).
fn poll<T>(
    d: &mut Demo,
    addr: &str,
    path: &str,
    deadline: Instant,
    what: &str,
    mut pick: impl FnMut(&Value) -> Option<T>,
) -> T {
    let mut last = (0, Value::Null);
    loop {
        if let Ok(r) = try_get(addr, path) {
            last = r;
        }
        if last.0 == 200 {
            if let Some(t) = pick(&last.1) {
                return t;
            }
        }
        if Instant::now() > deadline {
            let so_far = d.outputs();
            panic!(
                "no {what} by the deadline ({:?} after the start); last {path}: {} {}\n{so_far}",
                d.started.elapsed(),
                last.0,
                last.1
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The first evaluation window that starts after the service did (the one
/// before is partial) and has scored packets.
fn first_full_window(d: &mut Demo, addr: &str) -> Value {
    let (st, summary) = http_get(addr, "/api/v1/summary");
    assert_eq!(st, 200, "{summary}");
    let started = summary["started_ns"].as_u64().expect("started_ns");
    let deadline = d.started + FIRST_WINDOW_WITHIN;
    poll(
        d,
        addr,
        "/api/v1/windows?from=now-10m",
        deadline,
        "full evaluation window",
        |v| {
            v["windows"].as_array()?.iter().find_map(|w| {
                (w["start_ns"].as_u64()? >= started && w["accuracy"].is_f64()).then(|| w.clone())
            })
        },
    )
}

/// Packets by true class over the last 10 minutes, once `want` all have some.
fn true_class_packets(d: &mut Demo, addr: &str, want: &[&str]) -> HashMap<String, u64> {
    let deadline = d.started + FIRST_WINDOW_WITHIN;
    poll(
        d,
        addr,
        "/api/v1/totals?from=now-10m",
        deadline,
        "packets of every class by true class",
        |v| {
            let by: HashMap<String, u64> = v["by"]["true_class"]
                .as_array()?
                .iter()
                .map(|e| {
                    (
                        e["key"].as_str().unwrap_or("").to_string(),
                        e["packets"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            want.iter()
                .all(|c| by.get(*c).copied().unwrap_or(0) > 0)
                .then_some(by)
        },
    )
}

fn window_line(w: &Value) -> String {
    format!(
        "window {}: accuracy {:.4} ({} hits, {} misses, {} unknown, {} pending, {} unlabelled)",
        w["start"],
        w["accuracy"],
        w["hits"],
        w["misses"],
        w["unknown"],
        w["pending"],
        w["unlabelled"]
    )
}

/// The plain demo: URL, first window's accuracy, classes by true class,
/// SIGINT → exit 0 and the temporary store gone.
#[test]
fn demo_serves_scored_generator_traffic_and_cleans_up() {
    let mut d = Demo::start("plain", &["--listen", "127.0.0.1:0"]);
    let (store, temporary) = d.store();
    assert!(temporary, "{}", d.outputs());
    assert!(
        store.starts_with(&d.tmp),
        "{} is not in TMPDIR",
        store.display()
    );
    let addr = d.url();
    let t_url = d.started.elapsed();
    assert!(
        store.join("trafficscope.db").is_file(),
        "no store in {store:?}"
    );
    let w = first_full_window(&mut d, &addr);
    let t_window = d.started.elapsed();
    eprintln!(
        "{} (URL after {t_url:?}, window after {t_window:?})",
        window_line(&w)
    );
    let acc = w["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.95, "accuracy {acc} < 0.95: {w}");
    assert_eq!(w["unlabelled"].as_u64(), Some(0), "{w}");
    let by = true_class_packets(&mut d, &addr, &["web", "video", "voip"]);
    eprintln!("packets by true class: {by:?}");
    let (_, summary) = http_get(&addr, "/api/v1/summary");
    let source = summary["source"].as_str().unwrap_or("");
    assert!(source.starts_with("generator "), "{summary}");

    let (st, stderr) = d.interrupt(Duration::from_secs(30));
    assert!(st.success(), "exit {st} after SIGINT:\n{stderr}");
    assert!(!store.exists(), "{} left behind", store.display());
    let left: Vec<_> = std::fs::read_dir(&d.tmp).unwrap().collect();
    assert!(left.is_empty(), "TMPDIR not empty: {left:?}");
    eprintln!("done in {:?}", d.started.elapsed());
}

/// Port 8080 taken: another port, and a line saying so.
#[test]
fn demo_moves_off_a_busy_port_8080() {
    // Held for the test; if another program holds it, it is busy all the same.
    let hold = std::net::TcpListener::bind("127.0.0.1:8080");
    if hold.is_err() {
        eprintln!("port 8080 already in use by another program: fine for this test");
    }
    let mut d = Demo::start("busy-8080", &[]);
    let addr = d.url();
    assert_ne!(addr, "127.0.0.1:8080", "{}", d.outputs());
    let port = addr.rsplit(':').next().unwrap();
    let note = d.wait_stdout("port 8080 is", Duration::from_secs(1));
    assert!(
        note.contains("port 8080 is in use") && note.contains(&format!("port {port} instead")),
        "{note}"
    );
    let (st, summary) = http_get(&addr, "/api/v1/summary");
    assert_eq!(st, 200, "{summary}");
    let (st, stderr) = d.interrupt(Duration::from_secs(30));
    assert!(st.success(), "exit {st} after SIGINT:\n{stderr}");
    drop(hold);
}

/// A flow's protocol and its two endpoints in a fixed order.
type Key = (String, (String, u16), (String, u16));

/// Five-tuple → class, from the generator's label rows.
fn label_classes(csv: &str) -> HashMap<Key, String> {
    csv_rows(csv)
        .iter()
        .map(|r| {
            let p = |k: &str| r[k].parse::<u16>().unwrap();
            let (a, b) = ordered_endpoints(&r["ip_a"], p("port_a"), &r["ip_b"], p("port_b"));
            ((r["proto"].to_ascii_uppercase(), a, b), r["class"].clone())
        })
        .collect()
}

/// The ground truth the demo scored with (from the generator's plan, as
/// rules) must be what the generator's label rows say, flow by flow: every
/// flow of the store (all flushed at the exit) whose five-tuple has a row.
/// Returns how many were compared.
fn check_truth_against_labels(store_dir: &Path, labels: &Path) -> usize {
    let rows = label_classes(&std::fs::read_to_string(labels).unwrap());
    let h = store::open_history(store_dir).unwrap();
    let page = h
        .flows(&store::FlowQuery {
            from_ns: 0,
            to_ns: u64::MAX / 2,
            class: None,
            app: None,
            addr: None,
            port: None,
            sort: store::FlowSort::Start,
            descending: false,
            limit: 1_000_000,
            offset: 0,
        })
        .unwrap();
    let (mut same, mut without_row) = (0, 0);
    for f in &page.flows {
        let r = &f["record"];
        let proto = match r["protocol"].as_u64().unwrap() {
            6 => "TCP".to_string(),
            17 => "UDP".to_string(),
            1 => "ICMP".to_string(),
            p => p.to_string(),
        };
        let port = |k: &str| r[k].as_u64().unwrap() as u16;
        let (a, b) = ordered_endpoints(
            r["src"].as_str().unwrap(),
            port("src_port"),
            r["dst"].as_str().unwrap(),
            port("dst_port"),
        );
        match rows.get(&(proto, a, b)) {
            Some(class) => {
                assert_eq!(
                    f["true_class"].as_str(),
                    Some(class.as_str()),
                    "truth from the plan differs from the generator's label row: {f}"
                );
                same += 1;
            }
            // Still open at the stop: the generator had not ended it.
            None => without_row += 1,
        }
    }
    eprintln!(
        "truth = the generator's label row for all {same} flows that have one \
         ({without_row} flows without a row, {} rows)",
        rows.len()
    );
    same
}

/// `demo --live MODE` with its store and the generator's labels kept in `dir`.
fn start_live(name: &str, mode: &str) -> (Demo, PathBuf, PathBuf) {
    let dir = test_dir(name);
    let (labels, store) = (dir.join("labels.csv"), dir.join("store"));
    let mut d = Demo::start(
        &format!("{name}-run"),
        &[
            "--live",
            mode,
            "--listen",
            "127.0.0.1:0",
            "--labels",
            labels.to_str().unwrap(),
            "--data",
            store.to_str().unwrap(),
        ],
    );
    assert_eq!(d.store(), (store.clone(), false));
    (d, labels, store)
}

/// `--live loopback` (root): packets from `lo`, scored, truth = labels.
#[test]
fn demo_live_loopback_scores_captured_traffic() {
    if !is_root() {
        eprintln!("skipped: demo --live captures on lo, which needs root (or CAP_NET_RAW)");
        return;
    }
    let (mut d, labels, store) = start_live("live-loopback", "loopback");
    let addr = d.url();
    let w = first_full_window(&mut d, &addr);
    eprintln!(
        "live loopback: {} (after {:?})",
        window_line(&w),
        d.started.elapsed()
    );
    // Never a miss; the rest is pending (a flow's first packets; DNS
    // lookups never reach the first answer) and `unknown`: loopback's
    // 64 KB segments are unlike the wire the model learnt from, and the
    // demo's one or two large video flows sit near the threshold (p 0.48
    // video against 0.24 bulk on a recorded run), so a window they fill
    // swings between hits and `unknown`. Measured 0.93–0.97 on earlier
    // machines, 0.53–0.95 over nine first windows on 2026-12-07 (the same
    // recorded packets score the same with the classifier before and
    // after the table-snapshot change). The floor says the live path scores
    // a good share of what it captures; what it answers must be right
    // (wrong answers held to 5 % below).
    let acc = w["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.4, "accuracy {acc} < 0.4: {w}");
    let (hits, misses) = (w["hits"].as_u64().unwrap(), w["misses"].as_u64().unwrap());
    assert!(
        hits > 0 && misses * 20 <= hits + misses,
        "more than 5 % of answers wrong: {w}"
    );
    assert_eq!(w["unlabelled"].as_u64(), Some(0), "{w}");
    let (_, summary) = http_get(&addr, "/api/v1/summary");
    assert_eq!(
        summary["source"].as_str(),
        Some("interface lo"),
        "{summary}"
    );
    let by = true_class_packets(&mut d, &addr, &["web", "video", "voip"]);
    eprintln!("packets by true class: {by:?}");
    let (st, stderr) = d.interrupt(Duration::from_secs(30));
    assert!(st.success(), "exit {st} after SIGINT:\n{stderr}");
    assert!(
        stderr.contains("packets captured") && stderr.contains("dropped by kernel"),
        "no capture counters:\n{stderr}"
    );
    let same = check_truth_against_labels(&store, &labels);
    assert!(same >= 10, "too few flows to compare: {same}");
    eprintln!("done in {:?}", d.started.elapsed());
}

/// `--live netns` (root): captured on the veth, scored, truth = labels, and
/// the namespace and veth pair removed after SIGINT although the generator
/// was to run on.
#[test]
fn demo_live_netns_scores_and_removes_its_namespace() {
    if !is_root() {
        eprintln!("skipped: demo --live netns needs root");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: the namespace mode needs iproute2's `ip`");
        return;
    }
    let (mut d, labels, store) = start_live("live-netns", "netns");
    let addr = d.url();
    let w = first_full_window(&mut d, &addr);
    eprintln!(
        "live netns: {} (after {:?})",
        window_line(&w),
        d.started.elapsed()
    );
    let acc = w["accuracy"].as_f64().unwrap();
    // Measured 0.995–0.996 (wire-sized packets on the veth).
    assert!(acc >= 0.95, "accuracy {acc} < 0.95: {w}");
    let (_, summary) = http_get(&addr, "/api/v1/summary");
    let source = summary["source"].as_str().unwrap_or("").to_string();
    let iface = source
        .strip_prefix("interface ")
        .unwrap_or_else(|| panic!("source {source:?}"))
        .to_string();
    assert!(iface.starts_with("tsgh"), "{source}");
    let ns = format!("tsgen{}_", d.child.id());
    let netns_list = || {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(netns_list().contains(&ns), "{ns} not in {}", netns_list());
    let (st, stderr) = d.interrupt(Duration::from_secs(30));
    assert!(st.success(), "exit {st} after SIGINT:\n{stderr}");
    let link = Command::new("ip").args(["link", "show", &iface]).output();
    assert!(!link.unwrap().status.success(), "{iface} is still there");
    assert!(!netns_list().contains(&ns), "{ns} is still there");
    let same = check_truth_against_labels(&store, &labels);
    assert!(same >= 10, "too few flows to compare: {same}");
    eprintln!("done in {:?}", d.started.elapsed());
}

/// `--live` without CAP_NET_RAW: exit 1 with what is missing and what
/// to run instead, before anything starts.
#[test]
fn demo_live_without_capture_permission_says_what_to_do() {
    let mut cmd = if is_root() {
        if !have_tool("setpriv") {
            eprintln!("skipped: as root, dropping CAP_NET_RAW needs util-linux's setpriv");
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set=-net_raw", "--inh-caps=-net_raw", bin()]);
        c
    } else {
        // SAFETY: plain socket(2), closed at once.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd >= 0 {
            unsafe { libc::close(fd) };
            eprintln!("skipped: this user may capture (CAP_NET_RAW)");
            return;
        }
        Command::new(bin())
    };
    let t0 = Instant::now();
    let out = cmd
        .args(["demo", "--live", "loopback", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CAP_NET_RAW") && stderr.contains("plain `trafficscope demo`"),
        "{stderr}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
}
