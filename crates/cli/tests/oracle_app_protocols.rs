//! Application protocols of flows (the `protocols` column of `flows`)
//! against tshark's per-packet dissection on the nDPI captures
//! (`../shared/data/pcap-apps/ndpi/**`), and, for the protocols tshark has
//! no dissector for (TeamSpeak 3, WhatsApp), against nDPI's expected
//! outputs beside the captures. Skipped, with a note, when tshark or the
//! data are absent.
//!
//! A flow counts as tshark's X when one of its packets has X in
//! `frame.protocols` (default preferences and heuristics): stun, dtls,
//! bittorrent/bt-dht, mgcp, megaco, h225/q931 (our "h323"), iax2, rtmpt (our
//! "rtmp"), rtsp, skinny. Flows are keyed by five-tuple; our records of one
//! five-tuple are OR-ed (timeouts longer than any capture, as in
//! `oracle_tshark.rs`).
//!
//! trafficscope looks only at the first payload packets of a flow (8 once a
//! protocol is recognised, 32 before), without reassembly. Agreement is
//! therefore asserted on the flows where tshark names the protocol within
//! their first 8 payload packets ("in window"); flows where it appears only
//! later are counted and reported too. Measured (tshark 4.0): every flow
//! agrees, in window and anywhere — stun 83/83, bittorrent 24/24, h323 5/5,
//! mgcp 5/5, dtls 3/3, rtmp 2/2, iax2 1/1, megaco 1/1, and from
//! `pcap-ndpi-more` ([`MORE`]) skinny 3/3 and rtsp 1/1 (the one RTSP flow
//! in the data) — and no flow is recognised by us alone; the assertion
//! leaves 5 % of slack per protocol.
//! Worth knowing: rtmp.pcap also holds a C0+C1-looking handshake on TCP 6002
//! (GTP-tunnelled) that tshark shows as X11 by port; neither tool calls it
//! RTMP (1348 bytes, not 1537, and not port 1935). Classic STUN (RFC 3489,
//! no magic cookie; tshark's "classicstun", zoom.pcap and teams.pcap) is
//! neither compared nor recognised.
//!
//! nDPI (flows it names by payload inspection): TeamSpeak 2/2 — the TS3INIT1
//! flow by payload, the weblist heartbeats (UDP 2010 ↔ 2011) by the service
//! column, as designed (port only); WhatsApp 6/6. One more WhatsApp flow
//! nDPI names by address only (wa_video.pcap, 5222, the capture starts
//! mid-connection so there is no "WA" header): not compared.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

type Key = (String, String, u16, String, u16);

fn key(proto: &str, a: &str, pa: u16, b: &str, pb: u16) -> Key {
    let ((na, pa), (nb, pb)) = ordered_endpoints(a, pa, b, pb);
    (proto.into(), na, pa, nb, pb)
}

/// Our protocol name for a tshark protocol layer.
fn ours(layer: &str) -> Option<&'static str> {
    Some(match layer {
        "stun" => "stun",
        "dtls" => "dtls",
        "bittorrent" | "bt-dht" => "bittorrent",
        "mgcp" => "mgcp",
        "megaco" => "megaco",
        "h225" | "q931" => "h323",
        "iax2" => "iax2",
        "rtmpt" => "rtmp",
        "rtsp" => "rtsp",
        "skinny" => "skinny",
        _ => return None,
    })
}

/// The protocols compared with tshark.
const COMPARED: [&str; 10] = [
    "stun",
    "dtls",
    "bittorrent",
    "mgcp",
    "megaco",
    "h323",
    "iax2",
    "rtmp",
    "rtsp",
    "skinny",
];

/// Captures of `pcap-ndpi-more` compared as well: those holding a compared
/// protocol that the application captures lack (RTSP: VLC's SETUP to a
/// camera-style server on 8554, which tshark dissects by that port; Cisco
/// Skinny: IP phones and their call manager on port 2000).
const MORE: [&str; 3] = [
    "rtsp_setup_http.pcapng",
    "skinny.pcap",
    "sccp_hw_conf_register.pcapng",
];

/// Window of payload packets the assertion is made on.
const WINDOW: usize = 8;

#[derive(Default)]
struct Tshark {
    /// Protocols tshark names anywhere in the flow.
    any: HashMap<Key, HashSet<&'static str>>,
    /// Protocols tshark names within the first WINDOW payload packets.
    window: HashMap<Key, HashSet<&'static str>>,
}

fn tshark_flows(cap: &Path) -> Tshark {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(cap)
        .args(["-T", "fields", "-E", "separator=\t"])
        .args(
            [
                "ip.src",
                "ipv6.src",
                "ip.dst",
                "ipv6.dst",
                "tcp.srcport",
                "tcp.dstport",
                "udp.srcport",
                "udp.dstport",
                "tcp.len",
                "udp.length",
                "frame.protocols",
            ]
            .iter()
            .flat_map(|f| ["-e", f]),
        )
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = |s: &str| s.rsplit(',').next().unwrap_or("").to_string();
    let mut t = Tshark::default();
    let mut seen: HashMap<Key, usize> = HashMap::new();
    for line in text.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 11 || c[10].contains("icmp") {
            continue;
        }
        let src = last(if c[0].is_empty() { c[1] } else { c[0] });
        let dst = last(if c[2].is_empty() { c[3] } else { c[2] });
        let (proto, sp, dp, plen) = if !c[4].is_empty() {
            let len = last(c[8]).parse::<usize>().unwrap_or(0);
            ("tcp", last(c[4]), last(c[5]), len)
        } else if !c[6].is_empty() {
            let len = last(c[9]).parse::<usize>().unwrap_or(8);
            ("udp", last(c[6]), last(c[7]), len.saturating_sub(8))
        } else {
            continue;
        };
        let (Ok(sp), Ok(dp)) = (sp.parse::<u16>(), dp.parse::<u16>()) else {
            continue;
        };
        let k = key(proto, &src, sp, &dst, dp);
        let n = seen.entry(k.clone()).or_default();
        if plen > 0 {
            *n += 1;
        }
        let in_window = plen > 0 && *n <= WINDOW;
        for layer in c[10].split(':') {
            if let Some(p) = ours(layer) {
                t.any.entry(k.clone()).or_default().insert(p);
                if in_window {
                    t.window.entry(k.clone()).or_default().insert(p);
                }
            }
        }
    }
    t
}

/// Our flows: five-tuple → the protocol names (and the service and the
/// server name, as "service:NAME" and "sni:NAME" entries).
fn our_flows(cap: &Path) -> HashMap<Key, HashSet<String>> {
    let flows = flows_without_timeouts(cap, "csv");
    let mut m: HashMap<Key, HashSet<String>> = HashMap::new();
    for r in csv_rows(&flows) {
        let proto = r["proto"].to_ascii_lowercase();
        if proto != "tcp" && proto != "udp" {
            continue;
        }
        let k = key(
            &proto,
            &r["src"],
            r["src_port"].parse().unwrap(),
            &r["dst"],
            r["dst_port"].parse().unwrap(),
        );
        let e = m.entry(k).or_default();
        for p in r["protocols"].split('+').filter(|p| !p.is_empty()) {
            e.insert(p.to_string());
        }
        if !r["service"].is_empty() {
            e.insert(format!("service:{}", r["service"]));
        }
        if !r["tls_sni"].is_empty() {
            e.insert(format!("sni:{}", r["tls_sni"]));
        }
    }
    m
}

/// Flows nDPI names `app` in its expected output (`*.out`) by payload
/// inspection ([`ndpi_named`]; flows it names by address are left out).
fn ndpi_flows(out: &Path, app: &str) -> Vec<Key> {
    ndpi_named(out)
        .into_iter()
        .filter(|(_, name)| name == app)
        .map(|(k, _)| k)
        .collect()
}

/// Every flow nDPI names by payload inspection in its expected output
/// (`*.out`; "Confidence: DPI", also "DPI (cache)"), with the name after
/// the protocol id ("TeamSpeak" of "[proto: 162/TeamSpeak]",
/// "TLS.WhatsApp" of "[proto: 91.142/TLS.WhatsApp]").
fn ndpi_named(out: &Path) -> Vec<(Key, String)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut v = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let mut w = t.split_whitespace();
        let (Some(idx), Some(proto), Some(a), Some(_), Some(b)) =
            (w.next(), w.next(), w.next(), w.next(), w.next())
        else {
            continue;
        };
        if idx.parse::<u32>().is_err() || !(proto == "TCP" || proto == "UDP") {
            continue;
        }
        let Some(p) = t.split("[proto: ").nth(1).and_then(|s| s.split(']').next()) else {
            continue;
        };
        let name = p.split('/').nth(1).unwrap_or("");
        if !t.contains("[Confidence: DPI") {
            continue;
        }
        let ep = |s: &str| -> Option<(String, u16)> {
            let (h, port) = s.rsplit_once(':')?;
            Some((
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                port.parse().ok()?,
            ))
        };
        let (Some((ha, pa)), Some((hb, pb))) = (ep(a), ep(b)) else {
            continue;
        };
        v.push((
            key(&proto.to_ascii_lowercase(), &ha, pa, &hb, pb),
            name.to_string(),
        ));
    }
    v
}

/// Captures of `pcap-ndpi-more` whose UDP only looks like RTP one datagram
/// at a time: Gnutella, BACnet, RakNet, CryNetwork, Ethereum, tinc, FINS
/// and QUIC.
const RTP_LOOKALIKES: [&str; 8] = [
    "gnutella.pcap",
    "bacnet.pcap",
    "raknet.pcap",
    "crynet.pcap",
    "ethereum.pcap",
    "tinc.pcap",
    "fins.pcap",
    "quic_interop_V.pcapng",
];

/// RTP is a flow's only when a second packet continues a header's stream
/// (`flow::RtpCandidates`). Against nDPI's payload inspection: no flow it
/// names as another protocol on the look-alike captures is RTP here (the
/// one-packet check called 63 of them RTP: Gnutella 26, QUIC 12, BACnet
/// 10, CryNetwork 7, RakNet 5, Ethereum 3, tinc 2, FINS 2), and every UDP
/// flow it names RTP in both sets still is (its one RTP-over-TCP flow, RFC
/// 4571 framing, is not recognised here).
#[test]
fn rtp_only_where_a_stream_continues() {
    let Some(dir) = data() else {
        eprintln!("skipped: nDPI captures not found (set TRAFFICSCOPE_DATA)");
        return;
    };
    let more = more_captures(&dir);
    let mut others = 0;
    let mut wrong = Vec::new();
    for cap in RTP_LOOKALIKES.iter().map(|c| more.join(c)) {
        let o = our_flows(&cap);
        for (k, name) in ndpi_named(&PathBuf::from(format!("{}.out", cap.display()))) {
            if name.split('.').any(|p| p == "RTP") {
                continue;
            }
            others += 1;
            if o.get(&k).is_some_and(|s| s.contains("rtp")) {
                wrong.push(format!("{} {k:?}: nDPI {name}, ours rtp", cap.display()));
            }
        }
    }
    let mut rtp = 0;
    let mut caps = files_with_ext(&dir, &[".pcap", ".pcapng"]);
    caps.extend(files_with_ext(&more, &[".pcap", ".pcapng"]));
    for cap in caps {
        let out = PathBuf::from(format!("{}.out", cap.display()));
        let named: Vec<Key> = ndpi_named(&out)
            .into_iter()
            .filter(|(k, name)| k.0 == "udp" && name.split('.').any(|p| p == "RTP"))
            .map(|(k, _)| k)
            .collect();
        if named.is_empty() {
            continue;
        }
        let o = our_flows(&cap);
        for k in named {
            rtp += 1;
            if !o
                .get(&k)
                .is_some_and(|s| s.contains("rtp") || s.contains("rtcp"))
            {
                wrong.push(format!(
                    "{} {k:?}: nDPI RTP, ours {:?}",
                    cap.display(),
                    o.get(&k)
                ));
            }
        }
    }
    eprintln!(
        "{others} flows nDPI names otherwise on the look-alikes, {rtp} UDP flows it names RTP"
    );
    assert!(
        others > 100 && rtp >= 10,
        "{others} / {rtp}: the captures changed"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// How our records of one protocol compare with nDPI's ([`agree_with_ndpi`]).
struct NdpiAgreement {
    /// nDPI's flows of the protocol, with the line it prints for each.
    named: HashMap<Key, String>,
    /// Our flows of the protocol, with what [`our_flows`] says of each.
    ours: HashMap<Key, HashSet<String>>,
    /// Flows only one side names.
    wrong: Vec<String>,
}

impl NdpiAgreement {
    /// Prints the counts and fails on any disagreement, or when nDPI names
    /// fewer than `at_least` flows (the captures changed).
    fn check(&self, what: &str, at_least: usize) {
        eprintln!(
            "{what}: {} flows of nDPI's, {} of ours",
            self.named.len(),
            self.ours.len()
        );
        assert!(
            self.named.len() >= at_least,
            "{} nDPI {what} flows: the captures changed",
            self.named.len()
        );
        assert!(self.wrong.is_empty(), "{}", self.wrong.join("\n"));
    }
}

/// Flows nDPI names one of `ndpi_names` by payload inspection in `caps`
/// against ours with protocol `ours`: every one of nDPI's must be ours
/// too, and no other flow of those captures and of the binary-UDP
/// look-alikes may be ours.
fn agree_with_ndpi(more: &Path, caps: &[&str], ndpi_names: &[&str], ours: &str) -> NdpiAgreement {
    let mut named: HashMap<Key, String> = HashMap::new();
    let mut got: HashMap<Key, HashSet<String>> = HashMap::new();
    let mut wrong = Vec::new();
    for name in caps {
        let cap = more.join(name);
        let out = format!("{}.out", cap.display());
        let text = std::fs::read_to_string(&out).unwrap();
        for (k, n) in ndpi_named(Path::new(&out)) {
            if !ndpi_names.contains(&n.as_str()) {
                continue;
            }
            // The flow's line, for what nDPI prints about it.
            let (a, b) = (format!("{}:{}", k.1, k.2), format!("{}:{}", k.3, k.4));
            let line = text
                .lines()
                .find(|l| l.contains(&format!("/{n}]")) && l.contains(&a) && l.contains(&b))
                .unwrap_or_default();
            named.insert(k, line.to_string());
        }
        for (k, found) in our_flows(&cap) {
            if !found.contains(ours) {
                continue;
            }
            if !named.contains_key(&k) {
                wrong.push(format!("{name} {k:?}: ours {ours}, nDPI not"));
            }
            got.insert(k, found);
        }
    }
    for k in named.keys() {
        if !got.contains_key(k) {
            wrong.push(format!("{k:?}: nDPI {ndpi_names:?}, ours not"));
        }
    }
    for name in RTP_LOOKALIKES {
        for (k, p) in our_flows(&more.join(name)) {
            if p.contains(ours) {
                wrong.push(format!("{name} {k:?}: ours {ours}"));
            }
        }
    }
    NdpiAgreement {
        named,
        ours: got,
        wrong,
    }
}

/// Agora's SD-RTN (decode/src/app/sd_rtn.rs, no public specification)
/// against nDPI on its capture: the same flows, and the edge server name
/// nDPI prints (`Hostname/SNI`) equal to ours. Measured: 26 of nDPI's 26
/// flows, names equal, none extra.
#[test]
fn sd_rtn_flows_and_names_agree_with_ndpi() {
    let Some(dir) = data() else {
        eprintln!("skipping: ../shared/data not found");
        return;
    };
    let mut a = agree_with_ndpi(
        &more_captures(&dir),
        &["agora-sd-rtn.pcap"],
        &["SD-RTN"],
        "sd-rtn",
    );
    for (k, line) in &a.named {
        let host = line
            .split("[Hostname/SNI: ")
            .nth(1)
            .and_then(|s| s.split(']').next())
            .unwrap_or("(none)");
        if !a
            .ours
            .get(k)
            .is_some_and(|s| s.contains(&format!("sni:{host}")))
        {
            a.wrong.push(format!(
                "{k:?}: nDPI names {host}, ours {:?}",
                a.ours.get(k)
            ));
        }
    }
    a.check("SD-RTN", 20);
}

/// DNSCrypt (decode/src/app/dnscrypt.rs) against nDPI on the captures
/// holding it over UDP: v1 on 443 with resolver pings, v2 on 443 and on
/// 5353, one nDPI once mistook Skype for, and Avast SecureDNS (DNSCrypt
/// with its own provider name; nDPI has a dissector for that name alone).
/// (simple-dnscrypt.pcap's flows are TLS to a DNSCrypt provider, which
/// nDPI names by address.) Measured: 288 of nDPI's 288 flows, none extra.
#[test]
fn dnscrypt_flows_agree_with_ndpi() {
    let Some(dir) = data() else {
        eprintln!("skipping: ../shared/data not found");
        return;
    };
    let caps = [
        "dnscrypt-v1-and-resolver-pings.pcap",
        "dnscrypt-v2.pcap",
        "dnscrypt_skype_false_positive.pcapng",
        "avast_securedns.pcapng",
    ];
    agree_with_ndpi(
        &more_captures(&dir),
        &caps,
        &["DNScrypt", "AVASTSecureDNS"],
        "dnscrypt",
    )
    .check("DNSCrypt", 200);
}

/// The nDPI test captures, if the data is here.
fn data() -> Option<PathBuf> {
    Some(data_if_present()?.join("pcap-apps/ndpi")).filter(|d| d.is_dir())
}

/// `pcap-ndpi-more` beside the nDPI test captures `dir` ([`data`]).
fn more_captures(dir: &Path) -> PathBuf {
    dir.join("../../pcap-ndpi-more")
}

#[derive(Default, Debug)]
struct Tally {
    window: usize,
    window_agree: usize,
    any: usize,
    any_agree: usize,
    extra: usize,
}

#[test]
fn flow_protocols_agree_with_tshark_and_ndpi() {
    let Some(dir) = data() else {
        eprintln!("skipped: nDPI captures not found (set TRAFFICSCOPE_DATA)");
        return;
    };
    if !have_tool("tshark") {
        eprintln!("skipped: tshark not installed (scripts/test installs it)");
        return;
    }
    let mut caps = files_with_ext(&dir, &[".pcap", ".pcapng"]);
    let more = more_captures(&dir);
    caps.extend(MORE.iter().map(|f| more.join(f)).filter(|f| f.is_file()));
    let mut tally: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut extras = Vec::new();
    let mut ndpi: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for cap in &caps {
        let name = cap.strip_prefix(&dir).unwrap_or(cap).display().to_string();
        let t = tshark_flows(cap);
        let o = our_flows(cap);
        let empty = HashSet::new();
        for (k, protos) in &t.any {
            let got = o.get(k).unwrap_or(&empty);
            let win = t.window.get(k);
            for &p in protos {
                let e = tally.entry(p).or_default();
                let ok = got.contains(p);
                e.any += 1;
                e.any_agree += ok as usize;
                if win.is_some_and(|w| w.contains(p)) {
                    e.window += 1;
                    e.window_agree += ok as usize;
                }
                if !ok {
                    misses.push(format!(
                        "{name} {k:?}: tshark {p}{}, ours {got:?}",
                        if win.is_some_and(|w| w.contains(p)) {
                            " (in window)"
                        } else {
                            " (after the window)"
                        }
                    ));
                }
            }
        }
        // Ours where tshark names none of the compared protocols.
        for (k, got) in &o {
            for p in got {
                let Some(p) = COMPARED.into_iter().find(|x| x == p) else {
                    continue;
                };
                if !t.any.get(k).is_some_and(|s| s.contains(p)) {
                    tally.entry(p).or_default().extra += 1;
                    extras.push(format!("{name} {k:?}: ours {p}, tshark not"));
                }
            }
        }
        // nDPI for what tshark cannot dissect.
        let out = PathBuf::from(format!("{}.out", cap.display()));
        for (app, p) in [("TeamSpeak", "teamspeak"), ("WhatsApp", "whatsapp")] {
            for k in ndpi_flows(&out, app) {
                let e = ndpi.entry(p).or_default();
                e.0 += 1;
                // TeamSpeak's weblist heartbeats (UDP 2010 ↔ 2011) are known
                // by port only: the flow's service must say so.
                let weblist =
                    k.0 == "udp" && [2010, 2011].contains(&k.2) && [2010, 2011].contains(&k.4);
                let want = if weblist { "service:teamspeak" } else { p };
                if o.get(&k).is_some_and(|s| s.contains(want)) {
                    e.1 += 1;
                } else {
                    misses.push(format!("{name} {k:?}: nDPI {app}, ours {:?}", o.get(&k)));
                }
            }
        }
    }
    eprintln!("flow protocols vs tshark over {} captures:", caps.len());
    for (p, t) in &tally {
        eprintln!(
            "  {p:<10} in window {}/{} agree, anywhere {}/{}, ours only {}",
            t.window_agree, t.window, t.any_agree, t.any, t.extra
        );
    }
    for (p, (n, ok)) in &ndpi {
        eprintln!("  {p:<10} vs nDPI {ok}/{n} agree");
    }
    for m in &misses {
        eprintln!("  missed: {m}");
    }
    for x in &extras {
        eprintln!("  extra: {x}");
    }
    // Every protocol the captures hold must have been compared.
    for p in COMPARED {
        let t = tally.get(p).map_or(0, |t| t.window);
        assert!(t > 0, "no {p} flow found in the captures");
    }
    for (p, t) in &tally {
        if t.window == 0 {
            continue;
        }
        // Measured: 100 % for every protocol (see the module comment).
        assert!(
            t.window_agree * 100 >= t.window * 95,
            "{p}: only {}/{} of tshark's flows in window agree",
            t.window_agree,
            t.window
        );
    }
    for (p, (n, ok)) in &ndpi {
        assert!(
            *n > 0 && ok * 100 >= n * 95,
            "{p}: {ok}/{n} of nDPI's flows"
        );
    }
}

/// Undoes PDML's XML escapes.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// Attribute `name` of a PDML element line.
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let pat = format!(" {name}=\"");
    let start = line.find(&pat)? + pat.len();
    Some(&line[start..start + line[start..].find('"')?])
}

/// tshark's (reassembled) first server certificate subject CN (else first
/// SAN dNSName), first HTTP request target and first response media type,
/// per TCP five-tuple.
fn tshark_app_fields(cap: &Path) -> HashMap<Key, [Option<String>; 3]> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(cap)
        .args([
            "-Y",
            "http.request or http.response or tls.handshake.type == 11",
            "-T",
            "pdml",
        ])
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m: HashMap<Key, [Option<String>; 3]> = HashMap::new();
    for pkt in text.split("<packet>").skip(1) {
        let mut f: HashMap<&str, Vec<&str>> = HashMap::new();
        for line in pkt.lines() {
            let line = line.trim_start();
            if !line.starts_with("<field ") {
                continue;
            }
            if let Some(name) = attr(line, "name") {
                let v = if name == "tls.handshake.certificate" {
                    attr(line, "showname")
                } else {
                    attr(line, "show")
                };
                f.entry(name).or_default().extend(v);
            }
        }
        let last = |n: &str| f.get(n).and_then(|v| v.last().copied());
        let (Some(src), Some(dst)) = (
            last("ip.src").or(last("ipv6.src")),
            last("ip.dst").or(last("ipv6.dst")),
        ) else {
            continue;
        };
        let (Some(sp), Some(dp)) = (last("tcp.srcport"), last("tcp.dstport")) else {
            continue;
        };
        let k = key("tcp", src, sp.parse().unwrap(), dst, dp.parse().unwrap());
        let e = m.entry(k).or_default();
        let first = |n: &str| f.get(n).and_then(|v| v.first()).map(|s| unescape(s));
        if e[0].is_none() {
            // "Certificate: 3082… (id-at-commonName=*.reddit.com,id-at-…)":
            // the subject of the first certificate.
            e[0] = first("tls.handshake.certificate").and_then(|c| {
                let cn = c.split("(id-at-commonName=").nth(1);
                match cn {
                    Some(cn) => Some(cn.split([',', ')']).next().unwrap_or("").to_string()),
                    None => first("x509ce.dNSName"),
                }
            });
        }
        if e[1].is_none() {
            e[1] = first("http.request.uri");
        }
        if e[2].is_none() && f.contains_key("http.response") {
            e[2] = first("http.content_type").map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        }
    }
    m
}

/// Our first tls_cert_name, http_path, http_content_type per five-tuple.
fn our_app_fields(cap: &Path) -> HashMap<Key, [Option<String>; 3]> {
    let flows = flows_without_timeouts(cap, "csv");
    let mut m: HashMap<Key, [Option<String>; 3]> = HashMap::new();
    for r in csv_rows(&flows) {
        if !r["proto"].eq_ignore_ascii_case("tcp") {
            continue;
        }
        let k = key(
            "tcp",
            &r["src"],
            r["src_port"].parse().unwrap(),
            &r["dst"],
            r["dst_port"].parse().unwrap(),
        );
        let e = m.entry(k).or_default();
        for (slot, col) in e
            .iter_mut()
            .zip(["tls_cert_name", "http_path", "http_content_type"])
        {
            if slot.is_none() && !r[col].is_empty() {
                *slot = Some(r[col].clone());
            }
        }
    }
    m
}

/// The server certificate name, HTTP request target and response media
/// type against tshark's, which reassembles TCP. Measured on the nDPI
/// captures: certificate names 135/135, targets 151/151 (targets over 256
/// bytes compared on our capped prefix), media types 85/87 — the two misses
/// (1kxun.pcap, ports 49380/49412) are responses whose header segment
/// arrives out of order after twenty body segments, past the inspected
/// packets. Values tshark does not report (SSDP's "*", responses whose
/// bodies tshark never finished reassembling, certificates in captures
/// tshark does not dissect as TLS) are not compared.
#[test]
fn flow_app_fields_agree_with_tshark() {
    let Some(dir) = data() else {
        eprintln!("skipped: nDPI captures not found (set TRAFFICSCOPE_DATA)");
        return;
    };
    if !have_tool("tshark") {
        eprintln!("skipped: tshark not installed (scripts/test installs it)");
        return;
    }
    let names = ["tls_cert_name", "http_path", "http_content_type"];
    let mut n = [0usize; 3];
    let mut agree = [0usize; 3];
    let mut diffs = Vec::new();
    for cap in files_with_ext(&dir, &[".pcap", ".pcapng"]) {
        let name = cap.strip_prefix(&dir).unwrap().display().to_string();
        let t = tshark_app_fields(&cap);
        let o = our_app_fields(&cap);
        for (k, want) in &t {
            let got = o.get(k);
            for i in 0..3 {
                let Some(w) = &want[i] else { continue };
                let g = got.and_then(|g| g[i].as_deref());
                n[i] += 1;
                let ok = match g {
                    Some(g) if i == 1 && w.len() > 256 => w.starts_with(g) && g.len() >= 253,
                    Some(g) => g == w,
                    None => false,
                };
                if ok {
                    agree[i] += 1;
                } else {
                    diffs.push(format!(
                        "{name} {k:?} {}: tshark {w:?}, ours {g:?}",
                        names[i]
                    ));
                }
            }
        }
    }
    for i in 0..3 {
        eprintln!("  {:<18} {}/{} agree with tshark", names[i], agree[i], n[i]);
    }
    for d in &diffs {
        eprintln!("  differs: {d}");
    }
    for i in 0..3 {
        assert!(n[i] >= 50, "too few {} compared", names[i]);
        assert!(
            agree[i] * 100 >= n[i] * 95,
            "{}: {}/{}",
            names[i],
            agree[i],
            n[i]
        );
    }
}

/// The server name of Google QUIC client hellos (CHLO tag SNI, sent in the
/// clear up to Q043) against tshark's gQUIC dissector, per UDP five-tuple:
/// every name tshark reads, ours must equal (the first one of the flow).
#[test]
fn google_quic_sni_agrees_with_tshark() {
    let Some(dir) = data() else {
        eprintln!("skipped: nDPI captures not found (set TRAFFICSCOPE_DATA)");
        return;
    };
    if !have_tool("tshark") {
        eprintln!("skipped: tshark not installed (scripts/test installs it)");
        return;
    }
    let (mut n, mut diffs) = (0usize, Vec::new());
    for cap in files_with_ext(&dir, &[".pcap", ".pcapng"]) {
        let out = Command::new("tshark")
            .arg("-n")
            .arg("-r")
            .arg(&cap)
            .args(["-Y", "gquic.tag.sni", "-T", "fields", "-E", "separator=,"])
            .args(["-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport"])
            .args(["-e", "ip.dst", "-e", "ipv6.dst", "-e", "udp.dstport"])
            .args(["-e", "gquic.tag.sni"])
            .output()
            .expect("run tshark");
        let mut want: HashMap<Key, String> = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 7 || f[6].is_empty() {
                continue;
            }
            let src = if f[0].is_empty() { f[1] } else { f[0] };
            let dst = if f[3].is_empty() { f[4] } else { f[3] };
            let k = key(
                "udp",
                src,
                f[2].parse().unwrap(),
                dst,
                f[5].parse().unwrap(),
            );
            want.entry(k).or_insert_with(|| f[6].to_string());
        }
        if want.is_empty() {
            continue;
        }
        let res = run(&["flows", "-r", cap.to_str().unwrap()]);
        assert!(res.status.success());
        let mut got: HashMap<Key, String> = HashMap::new();
        for r in csv_rows(&String::from_utf8_lossy(&res.stdout)) {
            if r["proto"].eq_ignore_ascii_case("udp") && !r["tls_sni"].is_empty() {
                let k = key(
                    "udp",
                    &r["src"],
                    r["src_port"].parse().unwrap(),
                    &r["dst"],
                    r["dst_port"].parse().unwrap(),
                );
                got.entry(k).or_insert_with(|| r["tls_sni"].clone());
            }
        }
        for (k, w) in &want {
            n += 1;
            if got.get(k) != Some(w) {
                diffs.push(format!(
                    "{} {k:?}: tshark {w:?}, ours {:?}",
                    cap.display(),
                    got.get(k)
                ));
            }
        }
    }
    eprintln!("gQUIC SNI: {} of {n} flows agree", n - diffs.len());
    assert!(
        n >= 5,
        "the nDPI captures hold gQUIC client hellos ({n} found)"
    );
    assert!(diffs.is_empty(), "{diffs:#?}");
}
