//! `trafficscope run` on a live interface, end to end: the generator's live
//! traffic in a network namespace, captured by `run -i any` into its store,
//! must be exactly what the generator recorded (less the kernel's drops
//! that `run` reports), flow by flow and per ground-truth class.
//!
//! Root only (a namespace, a veth pair, a packet socket); skipped otherwise.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use pipeline::Dim;
use store::History;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("run-live")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A child process whose stderr lines arrive on a channel; stopped on drop
/// (a failing test leaves nothing running).
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// On drop, let it end by itself this long before killing it.
    grace: Duration,
}

impl Proc {
    fn spawn(args: &[&str], grace: Duration) -> Proc {
        let mut child = Command::new(bin())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
            grace,
        }
    }

    /// Everything it wrote to stderr so far.
    fn stderr(&mut self) -> String {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("never said {needle:?}; stderr:\n{}", self.stderr()),
            }
        }
    }

    /// Waits for the exit (at most `within`), then collects the rest of stderr.
    fn wait(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // The reader thread ends at EOF: drain it fully.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(l);
                }
                return (st, self.seen.join("\n"));
            }
            if Instant::now() > deadline {
                panic!("did not exit within {within:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The generator handles no signal: it removes its namespace only
        // when it ends by itself (its run is bounded), so it gets time.
        let deadline = Instant::now() + self.grace;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A flow's identity: protocol and its two endpoints in a fixed order.
type Key = (String, (String, u16), (String, u16));

fn key(proto: &str, a: &str, pa: u16, b: &str, pb: u16) -> Key {
    let (x, y) = ordered_endpoints(a, pa, b, pb);
    (proto.to_string(), x, y)
}

/// Every flow of a store: key → [(packets, bytes)] in start order.
fn store_flows(dir: &Path) -> BTreeMap<Key, Vec<(u64, u64)>> {
    let h = store::open_history(dir).unwrap();
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
    assert_eq!(page.total as usize, page.flows.len());
    let mut out: BTreeMap<Key, Vec<(u64, u64)>> = BTreeMap::new();
    for f in &page.flows {
        let r = &f["record"];
        let proto = match r["protocol"].as_u64().unwrap() {
            6 => "TCP".to_string(),
            17 => "UDP".to_string(),
            1 => "ICMP".to_string(),
            p => p.to_string(),
        };
        let port = |k: &str| r[k].as_u64().unwrap() as u16;
        let k = key(
            &proto,
            r["src"].as_str().unwrap(),
            port("src_port"),
            r["dst"].as_str().unwrap(),
            port("dst_port"),
        );
        let p = r["fwd"]["packets"].as_u64().unwrap() + r["bwd"]["packets"].as_u64().unwrap();
        let b = r["fwd"]["bytes"].as_u64().unwrap() + r["bwd"]["bytes"].as_u64().unwrap();
        out.entry(k).or_default().push((p, b));
    }
    out
}

/// `N packets captured, M received by filter, D dropped by kernel` → (N, M, D).
fn kernel_counts(stderr: &str) -> (u64, u64, u64) {
    let l = stderr
        .lines()
        .find(|l| l.contains("dropped by kernel"))
        .unwrap_or_else(|| panic!("no kernel counters in:\n{stderr}"));
    let n: Vec<u64> = l
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(n.len(), 3, "{l}");
    (n[0], n[1], n[2])
}

/// Live end to end. How `run` is capturing before the traffic starts: the
/// generator names its veth pair only once it exists and starts traffic
/// right after saying so (its users start within the first 2 s of an 8 s
/// run, the first possibly at once), and `run -i IFACE` needs the
/// interface to exist. So `run` captures on `any` with the kernel filter
/// `net 10.213.0.0/16` (the namespaces' addresses) plus one loopback UDP
/// port used as a probe, and is known to be capturing *with that filter*
/// (installing a filter discards what came before it) once a probe packet
/// sent after it started shows up in its store. Only then does the
/// generator start (`generate --live netns --mix web=2,video=1,voip=2
/// --users 6 --duration 8s --labels L.csv -w REC.pcap`). `run` is stopped
/// with SIGTERM a second after the generator ended and must exit 0.
///
/// The oracle. The generator writes its labels as flows end, after `run`
/// started, and `run` reads labels only when it starts: the live `run`
/// cannot know the ground truth. So the recording REC.pcap (the generator
/// captures its own veth with a packet socket of its own) is counted again
/// offline with the labels: `run -r REC.pcap --speed max --no-listen
/// --labels L.csv`, a store whose `TrueClass` totals are the generator's
/// per-class packets. What is compared, for the flows of the generator's
/// /24 (its namespace; the probe flow and anything else are left out):
///
/// 1. flow by flow (protocol and the two endpoints → packets, bytes of
///    each flow in start order): with D = 0 kernel drops reported by the
///    live `run`, the same flows with the same packets, and bytes = the
///    recording's + 6 per packet (the 20-byte LINUX_SLL2 header of `any`
///    instead of the recording's 14-byte Ethernet header). With D > 0
///    (which packets were lost is unknown): no flow has more packets live
///    than recorded, and the recorded packets less the live ones are at
///    most D (drops may also hit packets outside flows, e.g. ARP);
/// 2. per ground-truth class: the live store's flow packets summed by the
///    class L.csv gives their five-tuple equal the offline store's
///    `TrueClass` totals, class by class (with D > 0: none above, at most
///    D missing in all);
/// 3. the live store's packet total equals the `N packets captured` that
///    `run` printed (what was captured is what was stored), and the offline
///    store's total equals what the generator says it recorded;
/// 4. all packets, flows or not (ARP): the live store's total less the
///    probe flow's packets equals the recorded packets that pass the same
///    filter (`stats -r REC.pcap -f 'net 10.213.0.0/16'`) (with D > 0: within D).
#[test]
fn live_run_stores_exactly_what_the_generator_sent() {
    if !is_root() {
        eprintln!("skipped: live capture in a network namespace needs root");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: the namespace mode needs iproute2's `ip`");
        return;
    }
    let t0 = Instant::now();
    let dir = temp_dir("netns");
    let (live, offline) = (dir.join("live"), dir.join("offline"));
    let (labels, rec) = (dir.join("L.csv"), dir.join("REC.pcap"));

    // The probe: UDP on loopback to a bound port (no ICMP error back).
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let probe_port = sink.local_addr().unwrap().port();
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let filter = format!("net 10.213.0.0/16 or (udp and host 127.0.0.1 and port {probe_port})");
    let mut svc = Proc::spawn(
        &[
            "run",
            "-i",
            "any",
            "-f",
            &filter,
            "--no-listen",
            "--data",
            live.to_str().unwrap(),
            // A bound in case the test dies before its SIGTERM.
            "--duration",
            "90s",
        ],
        Duration::ZERO,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_check = Instant::now();
    loop {
        assert!(
            Instant::now() < deadline,
            "run never captured the probe; stderr:\n{}",
            svc.stderr()
        );
        if let Ok(Some(st)) = svc.child.try_wait() {
            panic!("run exited early ({st}):\n{}", svc.stderr());
        }
        probe.send_to(b"probe", ("127.0.0.1", probe_port)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if last_check.elapsed() > Duration::from_millis(500) {
            last_check = Instant::now();
            let held = store::open_history(&live)
                .and_then(|h| h.totals(0, u64::MAX / 2))
                .map_or(0, |t| t.packets);
            if held > 0 {
                break;
            }
        }
    }
    eprintln!("run captures (probe stored) after {:?}", t0.elapsed());

    let mut gen = Proc::spawn(
        &[
            "generate",
            "--live",
            "netns",
            "--mix",
            "web=2,video=1,voip=2",
            "--users",
            "6",
            "--duration",
            "8s",
            "--labels",
            labels.to_str().unwrap(),
            "-w",
            rec.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    let ready = gen.wait_for("live traffic on", Duration::from_secs(20));
    let iface = ready
        .split("live traffic on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(iface.starts_with("tsgh"), "{ready}");
    let (st, gen_err) = gen.wait(Duration::from_secs(40));
    assert!(st.success(), "generate failed:\n{gen_err}");
    let recorded: u64 = gen_err
        .split("recorded ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no recorded count in:\n{gen_err}"));
    assert!(
        gen_err.contains("(0 dropped by kernel)"),
        "the recording itself dropped packets: the oracle is incomplete\n{gen_err}"
    );
    // The last packets reach run's ring before it is stopped.
    std::thread::sleep(Duration::from_secs(1));
    svc.signal(libc::SIGTERM);
    let (st, run_err) = svc.wait(Duration::from_secs(30));
    assert!(st.success(), "run did not exit 0 on SIGTERM:\n{run_err}");
    let (captured, _received, drops) = kernel_counts(&run_err);
    eprintln!(
        "live on {iface}: {captured} packets captured, {drops} dropped by kernel; \
         {recorded} recorded by the generator"
    );

    // The oracle: the recording, counted again offline with the labels.
    run_offline(&rec, &labels, &offline);

    // 3. Stored = captured (live), stored = recorded (offline).
    let live_h = store::open_history(&live).unwrap();
    let off_h = store::open_history(&offline).unwrap();
    let live_t = live_h.totals(0, u64::MAX / 2).unwrap();
    let off_t = off_h.totals(0, u64::MAX / 2).unwrap();
    assert_eq!(live_t.packets, captured, "live store vs run's count");
    assert_eq!(off_t.packets, recorded, "offline store vs the recording");

    // The generator's /24, from its labels' server address.
    let label_text = std::fs::read_to_string(&labels).unwrap();
    let rows = csv_rows(&label_text);
    assert!(rows.len() >= 6, "too few flows labelled: {label_text}");
    let server = &rows[0]["ip_b"];
    let net = format!("{}.", server.rsplit_once('.').unwrap().0);
    assert!(net.starts_with("10.213."), "{server}");
    let mut class_of: HashMap<Key, String> = HashMap::new();
    for r in &rows {
        let p = |k: &str| r[k].parse::<u16>().unwrap();
        let k = key(
            &r["proto"],
            &r["ip_a"],
            p("port_a"),
            &r["ip_b"],
            p("port_b"),
        );
        class_of.insert(k, r["class"].clone());
    }
    let ours = |m: BTreeMap<Key, Vec<(u64, u64)>>| -> BTreeMap<Key, Vec<(u64, u64)>> {
        m.into_iter()
            .filter(|(k, _)| k.1 .0.starts_with(&net) && k.2 .0.starts_with(&net))
            .collect()
    };
    let live_flows = ours(store_flows(&live));
    let off_flows = ours(store_flows(&offline));
    assert!(
        off_flows.len() >= rows.len(),
        "{} labelled flows, {} recorded",
        rows.len(),
        off_flows.len()
    );
    let total =
        |m: &BTreeMap<Key, Vec<(u64, u64)>>| -> u64 { m.values().flatten().map(|(p, _)| p).sum() };
    let (live_pkts, off_pkts) = (total(&live_flows), total(&off_flows));
    eprintln!(
        "{} flows live, {} recorded; {live_pkts} packets live, {off_pkts} recorded (namespace {net}0/24)",
        live_flows.len(),
        off_flows.len()
    );

    // 1. Flow by flow.
    if drops == 0 {
        assert_eq!(
            live_flows.keys().collect::<Vec<_>>(),
            off_flows.keys().collect::<Vec<_>>(),
            "different flows live and recorded"
        );
        for (k, off) in &off_flows {
            let got = &live_flows[k];
            let want: Vec<(u64, u64)> = off.iter().map(|(p, b)| (*p, b + 6 * p)).collect();
            assert_eq!(
                got, &want,
                "{k:?}: live (packets, bytes) vs recorded + 6 bytes of SLL2 per packet"
            );
        }
    } else {
        for (k, got) in &live_flows {
            let off = off_flows
                .get(k)
                .unwrap_or_else(|| panic!("{k:?} live but never recorded"));
            let (g, o): (u64, u64) = (got.iter().map(|x| x.0).sum(), off.iter().map(|x| x.0).sum());
            assert!(g <= o, "{k:?}: {g} packets live, {o} recorded");
        }
        // Drops may also have hit packets outside flows (ARP).
        assert!(
            off_pkts - live_pkts <= drops,
            "missing packets vs kernel drops"
        );
    }

    // 4. Every packet, in flows or not, less the probes.
    let probes: u64 = store_flows(&live)
        .iter()
        .filter(|(k, _)| k.1 .0 == "127.0.0.1" && k.2 .0 == "127.0.0.1")
        .flat_map(|(_, v)| v.iter().map(|x| x.0))
        .sum();
    let st = run(&[
        "stats",
        "-r",
        rec.to_str().unwrap(),
        "-f",
        "net 10.213.0.0/16",
        "--json",
    ]);
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let filtered = st["packets"].as_u64().unwrap();
    assert!(probes > 0);
    let live_gen = live_t.packets - probes;
    if drops == 0 {
        assert_eq!(
            live_gen, filtered,
            "live packets ({} less {probes} probes) vs recorded through the filter",
            live_t.packets
        );
    } else {
        // A dropped probe would make the sum exceed by that much.
        assert!(
            live_gen <= filtered && filtered <= live_gen + drops,
            "live packets ({} less {probes} probes), {drops} drops, {filtered} recorded through the filter",
            live_t.packets
        );
    }

    // 2. Per ground-truth class.
    let mut live_by_class: BTreeMap<String, u64> = BTreeMap::new();
    for (k, fl) in &live_flows {
        if let Some(c) = class_of.get(k) {
            *live_by_class.entry(c.clone()).or_default() += fl.iter().map(|x| x.0).sum::<u64>();
        }
    }
    let truth: BTreeMap<String, u64> = off_t
        .by_dim
        .iter()
        .filter(|(d, k, _, _)| *d == Dim::TrueClass && k != "unlabelled")
        .map(|(_, k, p, _)| (k.clone(), *p))
        .collect();
    eprintln!("per class: live {live_by_class:?}, truth {truth:?}");
    for c in ["web", "video", "voip"] {
        assert!(truth.get(c).copied().unwrap_or(0) > 0, "no {c}: {truth:?}");
    }
    if drops == 0 {
        assert_eq!(live_by_class, truth);
    } else {
        let missing: u64 = truth.values().sum::<u64>() - live_by_class.values().sum::<u64>();
        assert!(
            missing <= drops,
            "live {live_by_class:?} vs truth {truth:?}"
        );
        for (c, n) in &truth {
            assert!(live_by_class.get(c).copied().unwrap_or(0) <= *n, "{c}");
        }
    }
    eprintln!("done in {:?}", t0.elapsed());
}
