//! Differential test against tcpdump (libpcap's compiler and interpreter)
//! as the independent oracle: for every expression and every readable
//! capture of a supported link type, the packets our compiled program
//! accepts must be exactly those `tcpdump -r FILE -w - EXPR` writes out.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const SNAPLEN: u32 = 262_144;

/// Expressions compared on every capture. Together they cover every
/// primitive, qualifier and operator the crate supports.
const EXPRS: &[&str] = &[
    "",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "ip",
    "ip6",
    "arp or rarp",
    "port 53",
    "tcp port 443",
    "udp port 443 or 80",
    "src port 53",
    "dst port 80 or 443",
    "tcp dst port https or http",
    "port domain",
    "port ntp or port ssh",
    "portrange 1-1023",
    "udp src portrange 5000-65535",
    "sctp port 2905",
    "host 192.168.1.1 or 8.8.8.8",
    "src host 10.0.2.15",
    "net 192.168.0.0/16",
    "dst net 10.0.0.0 mask 255.0.0.0",
    "src net 172.16.0.0/12 or dst net 224.0.0.0/4",
    "net 192.168",
    "src and dst net 192.168.0.0/16",
    "src or dst net 10",
    "arp host 192.168.1.1 or rarp",
    "ip6 net fe80::/10",
    "net 2000::/3 and not src net 2001:db8::/32",
    "dst net ff00::/8 or host ::1",
    "ether dst ff:ff:ff:ff:ff:ff",
    "ether host 00:0c:29:00:00:01 or ether src 00:50:56:c0:00:08",
    "ether proto 0x86dd or ether proto \\arp",
    "ip proto 17 or ip6 proto 58",
    "proto 6 and ip proto \\tcp",
    "ip proto 300 or ip6 proto 0x106",
    "greater 1000",
    "less 100",
    "len > 1400 or len <= 64",
    "vlan",
    "vlan and tcp",
    "vlan and vlan and ip",
    "vlan 200 and vlan 2001 and arp or vlan 7",
    "broadcast or ip broadcast",
    "multicast and not ip multicast and not ip6 multicast",
    "inbound and udp or outbound and tcp",
    "ether proto 0x42 or ether proto 0x4",
    "vlan 100 or udp port 53",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "tcp[13] = 2",
    "tcp[13] & 0x12 = 0x12",
    "ip[8] < 64",
    "ip[6:2] & 0x1fff != 0 or ip[6] & 0x20 != 0",
    "ip[0] & 0xf > 5",
    "udp[4:2] > 100 and udp[8] & 0x80 = 0",
    "icmp[icmptype] = icmp-echo or icmp[icmptype] = icmp-echoreply",
    "icmp6[icmp6type] = icmp6-neighborsolicit or icmp6[0] >= 128",
    "tcp[((tcp[12] & 0xf0) >> 2)] = 0x16",
    "ip[2:2] - 20 > len - 100",
    "ether[0] & 1 != 0",
    "ip6[6] = 17 and ip6[7] > 60",
    "arp[6:2] = 1",
    "not tcp and not udp",
    "!(ip or ip6)",
    "tcp and (port 80 or port 443) and not src net 10.0.0.0/8",
    "ip and udp and dst port 53 || tcp && port 443",
    "udp or tcp and port 80",
    "host (192.168.1.1 or 10.0.0.1) and not port 22",
    "len % 7 = 3 or len / 3 * 3 = len and len ^ 1 != 0",
    "-(ip[0]) | 3 != 0 and ip[1] << 2 >= 8 and ip[2] >> 1 < 400",
    // Long enough to need `ja` trampolines (jumps over 255 instructions).
    "port 1 or port 2 or port 3 or port 4 or port 5 or port 6 or port 7 or port 8 \
     or port 9 or port 10 or port 11 or port 12 or port 13 or port 14 or port 15 \
     or port 16 or port 17 or port 18 or port 19 or port 20 or port 21 or port 22 \
     or port 23 or port 24 or port 25 or port 26 or port 27 or port 28 or port 29 \
     or port 30 or port 31 or port 32 or port 33 or port 34 or port 35 or port 36 \
     or port 37 or port 38 or port 39 or port 40 or port 53 or port 80 or port 443",
];

fn tcpdump() -> PathBuf {
    if let Some(p) = std::env::var_os("TCPDUMP") {
        return PathBuf::from(p);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join("tcpdump");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "tcpdump not found: it is the oracle for this test; run `apt-get install tcpdump` \
         (or set TCPDUMP=/path/to/tcpdump)"
    );
}

fn data_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("TRAFFICSCOPE_DATA") {
        return PathBuf::from(p);
    }
    // shared/ beside the repository (as in CI) or inside the checkout.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [root.join("../shared/data"), root.join("shared/data")];
    for d in &candidates {
        if d.join("pcap-edge").is_dir() {
            return d.canonicalize().unwrap_or_else(|_| d.clone());
        }
    }
    panic!(
        "test data not found at {} or {} (set TRAFFICSCOPE_DATA to the shared/data folder)",
        candidates[0].display(),
        candidates[1].display()
    );
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

struct TestFile {
    path: PathBuf,
    linktype: u32,
    packets: Vec<common::Packet>,
}

enum Oracle {
    Packets(Vec<(u32, Vec<u8>)>),
    RejectsAll,
    Error(String),
}

fn run_tcpdump(tcpdump: &Path, file: &Path, expr: &str) -> Oracle {
    run_tcpdump_opt(tcpdump, file, expr, true)
}

/// `optimize = false` runs tcpdump with `-O` (libpcap's optimiser off).
fn run_tcpdump_opt(tcpdump: &Path, file: &Path, expr: &str, optimize: bool) -> Oracle {
    let mut cmd = Command::new(tcpdump);
    if !optimize {
        cmd.arg("-O");
    }
    cmd.arg("-r").arg(file).arg("-w").arg("-");
    if !expr.is_empty() {
        cmd.arg("--").arg(expr);
    }
    let out = cmd.output().expect("running tcpdump");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        if stderr.contains("expression rejects all packets") {
            return Oracle::RejectsAll;
        }
        return Oracle::Error(stderr);
    }
    let cap = common::parse(&out.stdout).expect("tcpdump wrote a pcap");
    Oracle::Packets(
        cap.packets
            .into_iter()
            .map(|p| (p.orig_len, p.data))
            .collect(),
    )
}

/// Readable captures with one supported link type whose packets our
/// walker reads exactly as tcpdump does.
fn test_files(tcpdump: &Path) -> (Vec<TestFile>, Vec<String>) {
    let data = data_dir();
    let mut paths = Vec::new();
    walk(&data.join("pcap-apps/ndpi"), &mut paths);
    walk(&data.join("pcap-edge"), &mut paths);
    let supported = [0, 1, 101, 108, 113, 228, 229, 276];
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Some(cap) = common::parse(&bytes) else {
            continue;
        };
        let name = path
            .strip_prefix(&data)
            .unwrap_or(&path)
            .display()
            .to_string();
        let mut lts = cap.linktypes.clone();
        lts.dedup();
        if lts.len() != 1 {
            skipped.push(format!("{name}: link types {lts:?}"));
            continue;
        }
        if !supported.contains(&lts[0]) {
            skipped.push(format!("{name}: unsupported link type {}", lts[0]));
            continue;
        }
        if cap.packets.is_empty() {
            skipped.push(format!("{name}: no packets"));
            continue;
        }
        let mut packets = cap.packets;
        match run_tcpdump(tcpdump, &path, "") {
            Oracle::Packets(all) => {
                let mine: Vec<(u32, Vec<u8>)> = packets
                    .iter()
                    .map(|p| (p.orig_len, p.data.clone()))
                    .collect();
                if mine != all {
                    // libpcap clips records longer than the snapshot length
                    // (caplen > snaplen files); filter what tcpdump sees.
                    eprintln!(
                        "  note {name}: records differ from tcpdump's view (clipped to snaplen?); using tcpdump's records"
                    );
                    packets = all
                        .into_iter()
                        .map(|(orig_len, data)| common::Packet {
                            linktype: lts[0],
                            orig_len,
                            data,
                        })
                        .collect();
                }
            }
            _ => {
                skipped.push(format!("{name}: tcpdump cannot read it"));
                continue;
            }
        }
        files.push(TestFile {
            path,
            linktype: lts[0],
            packets,
        });
    }
    (files, skipped)
}

#[test]
fn matches_tcpdump_on_all_captures() {
    let tcpdump = tcpdump();
    let (files, skipped) = test_files(&tcpdump);
    eprintln!("{} captures used; {} skipped:", files.len(), skipped.len());
    for s in &skipped {
        eprintln!("  skipped {s}");
    }
    assert!(
        files.len() >= 60,
        "too few usable captures: {}",
        files.len()
    );
    let linktypes: std::collections::BTreeSet<u32> = files.iter().map(|f| f.linktype).collect();
    eprintln!("link types covered: {linktypes:?}");

    let exprs: Vec<String> = EXPRS.iter().map(|e| e.to_string()).collect();
    compare_with_tcpdump(&tcpdump, &exprs, &files);
}

/// Random combinations of primitives (fixed seed), compared with tcpdump
/// on the small edge-case captures: exercises `not`/`and`/`or` nesting,
/// abbreviations and `vlan` offset shifting in combination.
#[test]
fn random_compound_expressions_match_tcpdump() {
    let tcpdump = tcpdump();
    let (files, _) = test_files(&tcpdump);
    let files: Vec<TestFile> = files
        .into_iter()
        .filter(|f| f.path.to_string_lossy().contains("pcap-edge"))
        .collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let exprs: Vec<String> = (0..60).map(|_| random_expr(&mut rng, 3)).collect();
    compare_with_tcpdump(&tcpdump, &exprs, &files);
}

const ATOMS: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "ip",
    "ip6",
    "arp",
    "vlan",
    "port 53",
    "src port 80",
    "dst portrange 1-1024",
    "tcp port https",
    "port domain",
    "host 192.168.1.1",
    "src net 10.0.0.0/8",
    "dst net 172.16",
    "net fe80::/10",
    "dst net ff02::/16",
    "ether multicast",
    "ether proto 0x0800",
    "ip proto 17",
    "ip6 proto 58",
    "greater 200",
    "less 80",
    "tcp[13] & 2 != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-ack",
    "ip[8] < 64",
    "udp[4:2] > 100",
    "icmp[icmptype] = icmp-echo",
    "ether[0] & 1 = 1",
    "ip6[6] = 17",
    "ip[2:2] + 14 <= len",
    "ip[ip[0] & 0xf] != 0",
    "port 80 or 443",
];

fn next(rng: &mut u64) -> u64 {
    // xorshift64*
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn random_expr(rng: &mut u64, depth: u32) -> String {
    let r = next(rng);
    if depth == 0 || r.is_multiple_of(5) {
        return ATOMS[(next(rng) % ATOMS.len() as u64) as usize].to_string();
    }
    let a = random_expr(rng, depth - 1);
    match r % 5 {
        1 => format!("{a} and {}", random_expr(rng, depth - 1)),
        2 => format!("{a} or {}", random_expr(rng, depth - 1)),
        3 => format!("not ({a})"),
        _ => format!("({a}) and not {}", random_expr(rng, depth - 1)),
    }
}

fn compare_with_tcpdump(tcpdump: &Path, exprs: &[String], files: &[TestFile]) {
    let jobs: Vec<(usize, usize)> = (0..exprs.len())
        .flat_map(|e| (0..files.len()).map(move |f| (e, f)))
        .collect();
    let workers = 2;
    type WorkerResult = (
        usize,
        Vec<String>,
        usize,
        Vec<(usize, usize, usize)>,
        Vec<String>,
    );
    let results: Vec<WorkerResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (jobs, files, tcpdump) = (&jobs, &files, &tcpdump);
                s.spawn(move || {
                    let mut failures = Vec::new();
                    let mut agreed = 0usize;
                    let mut packets = 0usize;
                    // (expression, accepted packets, captures where both reject the expression)
                    let mut stats = Vec::new();
                    let mut optimizer_only = Vec::new();
                    for &(e, f) in jobs.iter().skip(w).step_by(workers) {
                        let expr = exprs[e].as_str();
                        let file = &files[f];
                        let name = file.path.display();
                        let ours = filter::compile(expr, file.linktype, SNAPLEN);
                        let oracle = run_tcpdump(tcpdump, &file.path, expr);
                        let ok = match (&ours, oracle) {
                            (Ok(prog), Oracle::Packets(expected)) => {
                                let mut mine = Vec::new();
                                let mut idx = Vec::new();
                                for (i, p) in file.packets.iter().enumerate() {
                                    if prog.matches(&p.data, p.orig_len) {
                                        mine.push((p.orig_len, p.data.clone()));
                                        idx.push(i + 1);
                                    }
                                }
                                packets += file.packets.len();
                                stats.push((e, mine.len(), 0));
                                let unopt = filter::compile_unoptimized(expr, file.linktype, SNAPLEN)
                                    .expect("unoptimised compile");
                                let straight = file
                                    .packets
                                    .iter()
                                    .filter(|p| unopt.matches(&p.data, p.orig_len))
                                    .count();
                                if straight != mine.len() {
                                    failures.push(format!(
                                        "{name}: '{expr}': optimised program accepts {}, straightforward one {straight}",
                                        mine.len()
                                    ));
                                    false
                                } else if mine == expected {
                                    true
                                } else if matches!(
                                    run_tcpdump_opt(tcpdump, &file.path, expr, false),
                                    Oracle::Packets(unopt) if unopt == mine
                                ) {
                                    // libpcap's optimiser dropped a load that
                                    // is out of bounds on a truncated packet;
                                    // unoptimised libpcap rejects like us.
                                    optimizer_only.push(format!("{name}: '{expr}'"));
                                    true
                                } else {
                                    failures.push(format!(
                                        "{name}: '{expr}': we accept {} packets {:?}..., tcpdump {}",
                                        mine.len(),
                                        &idx[..idx.len().min(10)],
                                        expected.len()
                                    ));
                                    false
                                }
                            }
                            (Ok(prog), Oracle::RejectsAll) => {
                                let n = file.packets.iter().filter(|p| prog.matches(&p.data, p.orig_len)).count();
                                if n == 0 {
                                    true
                                } else {
                                    failures.push(format!(
                                        "{name}: '{expr}': tcpdump says it rejects all, we accept {n}"
                                    ));
                                    false
                                }
                            }
                            (Err(_), Oracle::Error(_)) => {
                                stats.push((e, 0, 1));
                                true
                            }
                            (Err(err), _) => {
                                failures.push(format!("{name}: '{expr}': we fail ({err}), tcpdump accepts"));
                                false
                            }
                            (Ok(_), Oracle::Error(msg)) => {
                                failures.push(format!("{name}: '{expr}': tcpdump fails ({}), we accept", msg.lines().last().unwrap_or("").trim()));
                                false
                            }
                        };
                        if ok {
                            agreed += 1;
                        }
                    }
                    (agreed, failures, packets, stats, optimizer_only)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let agreed: usize = results.iter().map(|r| r.0).sum();
    let packets: usize = results.iter().map(|r| r.2).sum();
    let failures: Vec<&String> = results.iter().flat_map(|r| &r.1).collect();
    let mut per_expr = vec![(0usize, 0usize); exprs.len()];
    for &(e, n, err) in results.iter().flat_map(|r| &r.3) {
        per_expr[e].0 += n;
        per_expr[e].1 += err;
    }
    for (e, (n, err)) in per_expr.iter().enumerate() {
        let short: String = exprs[e].as_str().chars().take(60).collect();
        eprintln!("  {n:>8} packets accepted, {err:>3} captures rejected by both: '{short}'");
    }
    eprintln!(
        "{agreed} of {} (expression, capture) pairs agree with tcpdump ({} expressions x {} captures, {packets} packet verdicts)",
        jobs.len(),
        exprs.len(),
        files.len()
    );
    let optimizer_only: Vec<&String> = results.iter().flat_map(|r| &r.4).collect();
    eprintln!(
        "{} of them agree only with unoptimised libpcap (tcpdump -O): its optimiser skipped an out-of-bounds load",
        optimizer_only.len()
    );
    for f in &optimizer_only {
        eprintln!("  optimiser-only difference: {f}");
    }
    for f in failures.iter().take(40) {
        eprintln!("MISMATCH {f}");
    }
    assert!(
        failures.is_empty(),
        "{} mismatches with tcpdump",
        failures.len()
    );
}

/// Expressions tcpdump rejects must be rejected here too.
#[test]
fn rejects_what_tcpdump_rejects() {
    let tcpdump = tcpdump();
    let file = data_dir().join("pcap-edge/tcpdump/dns_udp.pcap");
    let invalid = [
        "port",
        "host",
        "tcp port",
        "port 70000",
        "vlan 4096",
        "ip[1:3] = 1",
        "1.2.3.4",
        "tcp or 80",
        "(tcp",
        "tcp)",
        "ip proto 0x1ffffffff",
        "ether host 1:2:3",
        "net 10.0.0.1/8",
        "udp port http",
        "ip6 host 1.2.3.4",
        "ip host ::1",
        "portrange 1-",
        "and tcp",
        "tcp and",
        "len >",
        "ip[",
        "not",
        "ip port 80",
        "host 1.2.3.4/32",
        "tcp host 1.2.3.4",
        "len",
        "tcp[0] = ",
        "port 80 443",
        "src",
        "ether",
        "5 / 0 = 1",
    ];
    let mut bad = Vec::new();
    for e in invalid {
        let status = Command::new(&tcpdump)
            .arg("-r")
            .arg(&file)
            .arg("-d")
            .arg("--")
            .arg(e)
            .output()
            .expect("running tcpdump");
        assert!(
            !status.status.success(),
            "tcpdump unexpectedly accepts '{e}'"
        );
        match filter::compile(e, 1, SNAPLEN) {
            Ok(p) => bad.push(format!("'{e}' accepted:\n{p}")),
            Err(err) => {
                let msg = err.to_string();
                assert!(msg.starts_with("filter: "), "{msg}");
                assert!(msg.contains("column"), "no position in: {msg}");
            }
        }
    }
    assert!(bad.is_empty(), "accepted invalid expressions: {bad:#?}");
}

/// Link-type specific errors agree with tcpdump too.
#[test]
fn link_type_restrictions_match_tcpdump() {
    let tcpdump = tcpdump();
    let sll = data_dir().join("pcap-edge/tcpdump/forces2.pcap");
    for e in [
        "vlan",
        "ether host 01:02:03:04:05:06",
        "ether src 01:02:03:04:05:06",
    ] {
        let st = Command::new(&tcpdump)
            .arg("-r")
            .arg(&sll)
            .arg("-d")
            .arg("--")
            .arg(e)
            .output()
            .unwrap();
        assert!(!st.status.success());
        assert!(
            filter::compile(e, 113, SNAPLEN).is_err(),
            "{e} on LINUX_SLL"
        );
    }
}
