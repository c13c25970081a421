//! `trafficscope run` as a service: the API over HTTP against `stats`,
//! bad requests, kill -9 under write load, restarts that continue one
//! history.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pipeline::Dim;
use store::History;

fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("run-service")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.parent().unwrap()).unwrap();
    d
}

/// A running `trafficscope run` with its HTTP address.
struct Service {
    child: Child,
    addr: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Service {
    /// Starts `run ARGS --listen 127.0.0.1:0` and waits for its URL.
    // The child is waited for by Drop, also when this panics.
    #[allow(clippy::zombie_processes)]
    fn start(args: &[&str]) -> Service {
        let mut child = Command::new(bin())
            .arg("run")
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
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = String::new();
        loop {
            let l = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no URL from run; stderr so far:\n{seen}"));
            seen.push_str(&l);
            seen.push('\n');
            if let Some(rest) = l.split("serving http://").nth(1) {
                let addr = rest.split('/').next().unwrap().to_string();
                return Service {
                    child,
                    addr,
                    stderr: rx,
                };
            }
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("run never said {needle:?}"),
            }
        }
    }

    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        http_get(&self.addr, path)
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET (the test sends exactly what it is given).
fn http_get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{path}: {status} body is not JSON ({e}): {body}"));
    (status, json)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (len, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(len.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

#[test]
fn api_answers_what_stats_counts_and_refuses_bad_requests_with_400() {
    let cap = data_dir().join("pcap-apps/ndpi/web/reddit.pcap");
    let data = temp_dir("api");
    let svc = Service::start(&[
        "-r",
        cap.to_str().unwrap(),
        "--speed",
        "max",
        "--data",
        data.to_str().unwrap(),
    ]);
    svc.wait_for("input ended", Duration::from_secs(60));
    let stats = run(&["stats", "-r", cap.to_str().unwrap(), "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();

    // Totals over everything the store holds (the capture is from 2020s past).
    let (code, t) = svc.get("/api/v1/totals?from=0&to=2100-01-01T00:00:00Z");
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["packets"], s["packets"], "{t}");
    assert_eq!(t["bytes"], s["wire_bytes"], "{t}");
    // Series by protocol at 1 s over the capture's span add up to stats.
    let first = s["first_packet"].as_str().unwrap();
    let (code, series) = svc.get(&format!(
        "/api/v1/series?metric=bytes&by=protocol&from={first}&to=now&step=1s"
    ));
    assert_eq!(code, 200, "{series}");
    for (proto, c) in s["protocols"].as_object().unwrap() {
        let line = series["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["key"] == *proto)
            .unwrap_or_else(|| panic!("{proto} missing in {series}"));
        let sum: f64 = line["values"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_f64())
            .sum();
        assert_eq!(sum as u64, c["bytes"].as_u64().unwrap(), "{proto}");
    }
    // Summary counts what went in.
    let (code, sum) = svc.get("/api/v1/summary");
    assert_eq!(code, 200);
    assert_eq!(sum["totals"]["packets"], s["packets"], "{sum}");
    assert_eq!(sum["source_done"], true, "{sum}");
    let (code, flows) = svc.get("/api/v1/flows?from=0&to=2100-01-01T00:00:00Z&limit=1000");
    assert_eq!(code, 200, "{flows}");
    assert_eq!(
        flows["total"].as_u64(),
        s["flows"]["flows"].as_u64(),
        "{flows}"
    );

    // Bad requests: status, and the parameter named in the JSON error.
    let bad: &[(&str, u16, &str)] = &[
        ("/api/v1/series?metric=nope", 400, "metric"),
        ("/api/v1/series?by=colour", 400, "by"),
        ("/api/v1/series?from=yesterday", 400, "from"),
        ("/api/v1/series?to=2026-13-01T00:00:00Z", 400, "to"),
        ("/api/v1/series?from=now&to=now-1h", 400, "from"),
        ("/api/v1/series?step=0s", 400, "step"),
        ("/api/v1/series?step=-1s", 400, "step"),
        ("/api/v1/series?step=1ms&from=now-1h", 400, "step"),
        ("/api/v1/series?step=fast", 400, "step"),
        ("/api/v1/series?top=0", 400, "top"),
        ("/api/v1/series?top=1000000", 400, "top"),
        ("/api/v1/series?top=ten", 400, "top"),
        ("/api/v1/series?colour=red", 400, "colour"),
        ("/api/v1/series?metric=flows_active&by=class", 400, "by"),
        ("/api/v1/series?metric=packets&metric=bytes", 400, "metric"),
        ("/api/v1/totals?from=1e99", 400, "from"),
        ("/api/v1/totals?from=abc", 400, "from"),
        ("/api/v1/totals?to=2026-02-30T00:00:00Z", 400, "to"),
        ("/api/v1/totals?from=now-1x", 400, "from"),
        ("/api/v1/windows?from=now&to=now-1s", 400, "from"),
        ("/api/v1/windows?limit=5", 400, "limit"),
        ("/api/v1/hurst?series=icmp", 400, "series"),
        ("/api/v1/hurst?from=%ZZ", 400, "from"),
        ("/api/v1/flows?limit=100000", 400, "limit"),
        ("/api/v1/flows?limit=-1", 400, "limit"),
        ("/api/v1/flows?offset=x", 400, "offset"),
        ("/api/v1/flows?sort=colour", 400, "sort"),
        ("/api/v1/flows?order=sideways", 400, "order"),
        ("/api/v1/flows?port=70000", 400, "port"),
        ("/api/v1/flows?port=http", 400, "port"),
        ("/api/v1/flows?addr=300.1.1.1", 400, "addr"),
        ("/api/v1/flows?addr=example.com", 400, "addr"),
        ("/api/v1/flows?from=2020-01-01T00:00:00", 400, "from"),
        ("/api/v1/summary?verbose=1", 400, "verbose"),
    ];
    assert!(bad.len() >= 30);
    for (path, want, param) in bad {
        let (code, body) = svc.get(path);
        assert_eq!(code, *want, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
        assert_eq!(body["parameter"], *param, "{path}: {body}");
        assert!(body["accepted"].is_string(), "{path}: {body}");
    }
    let (code, _) = svc.get("/api/v1/nothing-here");
    assert_eq!(code, 404);
    assert!(svc.stop().success());
}

/// Sums of a series line, `None` values skipped.
fn line_sum(s: &store::Series, key: &str) -> f64 {
    s.lines
        .iter()
        .find(|l| l.key == key)
        .map_or(0.0, |l| l.values.iter().flatten().sum())
}

/// Per-second packets of the whole store (total line), with gaps as None.
fn per_second(h: &dyn History, from: u64, to: u64) -> Vec<(u64, Option<f64>)> {
    let s = h
        .series(&store::SeriesQuery {
            metric: store::Metric::Packets,
            dim: None,
            from_ns: from,
            to_ns: to,
            step_ns: 1_000_000_000,
            top: 10,
            filter: Vec::new(),
        })
        .unwrap();
    let line = &s.lines[0];
    s.times_ns
        .iter()
        .copied()
        .zip(line.values.iter().copied())
        .collect()
}

#[test]
fn kill_9_at_random_moments_never_loses_a_committed_second_or_counts_one_twice() {
    // A generated capture: 40 s of web, video and VoIP.
    let dir = temp_dir("crash");
    std::fs::create_dir_all(&dir).unwrap();
    let cap = dir.join("gen.pcap");
    let labels = dir.join("gen.labels.csv");
    let g = run(&[
        "generate",
        "--mix",
        "web=3,video=1,voip=2",
        "--users",
        "8",
        "--duration",
        "40s",
        "--seed",
        "7",
        "-w",
        cap.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
    ]);
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let base = [
        "run",
        "-r",
        cap.to_str().unwrap(),
        "--no-listen",
        "--labels",
        labels.to_str().unwrap(),
    ];
    // The reference: one uninterrupted run.
    let reference = dir.join("reference");
    let mut args = base.to_vec();
    args.extend(["--speed", "max", "--data", reference.to_str().unwrap()]);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = store::open_history(&reference).unwrap();
    let ref_secs = per_second(&want, 0, u64::MAX / 2);
    assert!(ref_secs.len() >= 40);

    let crashed = dir.join("crashed");
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| pipeline::unix_now_ns() % 1_000_000);
    eprintln!("kill -9 rounds with seed {seed} (CRASH_SEED={seed} repeats them)");
    let mut rng = seed;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng >> 33
    };
    for round in 0..20 {
        // 40 s of traffic at 16x: about 2.5 s of wall time; killed somewhere in it.
        let mut args = base.to_vec();
        args.extend(["--speed", "16", "--data", crashed.to_str().unwrap()]);
        let mut child = Command::new(bin())
            .args(&args[..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let after = Duration::from_millis(150 + next() % 2500);
        std::thread::sleep(after);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // The store opens; every second it holds equals the reference's.
        let got = store::open_history(&crashed)
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): store does not open: {e}"));
        let secs = per_second(&got, 0, u64::MAX / 2);
        let held: Vec<_> = secs.iter().filter(|(_, v)| v.is_some()).collect();
        for (t, v) in &held {
            let r = ref_secs.iter().find(|(rt, _)| rt == t).map(|(_, v)| *v);
            assert_eq!(
                r,
                Some(*v),
                "round {round} (seed {seed}), killed after {after:?}: second {t} holds {v:?}"
            );
        }
        // A prefix: no second missing before the last one held.
        if let (Some(first), Some(last)) = (held.first(), held.last()) {
            let n = ref_secs
                .iter()
                .filter(|(t, _)| *t >= first.0 && *t <= last.0)
                .count();
            assert_eq!(
                held.len(),
                n,
                "round {round} (seed {seed}): a hole in the history"
            );
        }
        eprintln!(
            "round {round}: killed after {after:?}, {} seconds committed",
            held.len()
        );
    }
    // A last uninterrupted run completes the history: equal to the reference.
    let mut args = base.to_vec();
    args.extend(["--speed", "max", "--data", crashed.to_str().unwrap()]);
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("continues"),
        "a restart says where history continues: {err}"
    );
    let got = store::open_history(&crashed).unwrap();
    assert_eq!(per_second(&got, 0, u64::MAX / 2), ref_secs);
    let (a, b) = (
        got.totals(0, u64::MAX / 2).unwrap(),
        want.totals(0, u64::MAX / 2).unwrap(),
    );
    assert_eq!(a.by_dim, b.by_dim);
    assert_eq!(
        got.windows(0, u64::MAX / 2).unwrap(),
        want.windows(0, u64::MAX / 2).unwrap()
    );
}

#[test]
fn a_restart_continues_one_history_with_the_stop_as_a_gap() {
    let data = temp_dir("restart");
    let gen = |secs: &str| {
        let out = run(&[
            "run",
            "--generate",
            "web=2,voip=1",
            "--users",
            "6",
            "--duration",
            secs,
            "--no-listen",
            "--data",
            data.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    };
    let t0 = pipeline::unix_now_ns();
    gen("6s");
    std::thread::sleep(Duration::from_secs(3));
    let second = gen("6s");
    assert!(second.contains("continues"), "{second}");
    let t1 = pipeline::unix_now_ns();
    let h = store::open_history(&data).unwrap();
    let secs = per_second(&h, t0 - t0 % 1_000_000_000, t1 + 1_000_000_000);
    let mut held: Vec<bool> = secs.iter().map(|(_, v)| v.is_some()).collect();
    // Before the first and after the last packet: not part of the history.
    while held.last() == Some(&false) {
        held.pop();
    }
    let start = held.iter().position(|h| *h).expect("history held");
    let held = &held[start..];
    // Held seconds, then a gap of about 3 s (None, not zero), then held again.
    let first_gap = held.iter().position(|h| !*h).expect("a gap");
    let resumed = first_gap + held[first_gap..].iter().position(|h| *h).expect("resumed");
    assert!(first_gap >= 2, "{held:?}");
    assert!(resumed - first_gap >= 2, "gap of the stop: {held:?}");
    assert!(held[resumed..].iter().all(|h| *h), "{held:?}");
    assert!(held.len() - resumed >= 2, "{held:?}");
    // The generator's traffic is classified with its ground truth.
    let t = h.totals(0, u64::MAX / 2).unwrap();
    let truth: u64 = t
        .by_dim
        .iter()
        .filter(|(d, k, _, _)| *d == Dim::TrueClass && k != "unlabelled")
        .map(|(_, _, p, _)| p)
        .sum();
    assert!(truth > 0 && truth <= t.packets);
    let w = h.windows(0, u64::MAX / 2).unwrap();
    assert!(w.iter().map(|w| w.hits).sum::<u64>() > 0, "{w:?}");
    let _ = line_sum;
}

/// A full disk: ingest goes on in memory, the API says the store is
/// failing, and once space returns the backlog is committed — no second of
/// the history is missing. Root only (a small tmpfs is mounted for it).
#[test]
fn a_full_disk_is_reported_and_the_backlog_committed_when_space_returns() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = temp_dir("full-disk");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: could not mount a tmpfs");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.clone());
    let data = dir.join("store");
    let svc = Service::start(&[
        "--generate",
        "web=3,video=1,voip=2",
        "--users",
        "10",
        "--data",
        data.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    // Fill what is left of the file system.
    let filler = dir.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let wait_for = |what: &str, cond: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, sum) = svc.get("/api/v1/summary");
            assert_eq!(code, 200);
            if cond(&sum) {
                return sum;
            }
            assert!(Instant::now() < deadline, "never {what}: {sum}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let failing = wait_for("failing", &|s| s["store"]["failing"] == true);
    assert!(failing["store"]["last_error"].is_string(), "{failing}");
    let (_, health) = svc.get("/api/v1/health");
    assert_eq!(health["status"], "degraded", "{health}");
    std::thread::sleep(Duration::from_secs(2));
    // Space returns: the backlog is committed and nothing was dropped.
    std::fs::remove_file(&filler).unwrap();
    let ok = wait_for("recovered", &|s| {
        s["store"]["failing"] == false && s["store"]["pending"] == 0
    });
    assert_eq!(ok["drops"]["store"], 0, "{ok}");
    assert!(svc.stop().success());
    let h = store::open_history(&data).unwrap();
    let secs = per_second(&h, 0, u64::MAX / 2);
    let held: Vec<bool> = secs.iter().map(|(_, v)| v.is_some()).collect();
    let first = held.iter().position(|h| *h).unwrap();
    let last = held.iter().rposition(|h| *h).unwrap();
    assert!(last - first >= 5, "{held:?}");
    assert!(
        held[first..=last].iter().all(|h| *h),
        "a second lost while the disk was full: {held:?}"
    );
}
