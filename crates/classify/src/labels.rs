//! Ground truth: label CSVs (read by header name), per-capture labels and
//! rules, matched to flows by five-tuple in either direction.

use std::collections::HashMap;
use std::net::IpAddr;

use flow::{Cidr, FlowRecord};

use crate::{ClassifyError, Result};

#[derive(Debug, Clone)]
struct Row {
    pcap: Option<String>,
    class: usize,
    session: Option<String>,
    start_ns: Option<u64>,
    end_ns: Option<u64>,
}

/// A labelling rule: `port 443 -> web`, `sni *.netflix.com -> video`,
/// `host netflix.com -> video` (SNI, HTTP host or DNS name),
/// `net 10.0.0.0/8 -> voip`.
#[derive(Debug, Clone)]
pub enum Rule {
    Port(u16, usize),
    Sni(String, usize),
    Host(String, usize),
    Net(Cidr, usize),
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMatch {
    pub class: usize,
    /// Session (generator labels) or capture file name: the grouping key.
    pub group: Option<String>,
}

/// Counts of a labelling run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabelStats {
    pub labelled_flows: u64,
    pub unlabelled_flows: u64,
    /// Rows of the label file that matched no flow.
    pub unmatched_labels: u64,
    pub label_rows: u64,
    /// Labelled flows per class (indexed like `class_names`).
    pub per_class: Vec<u64>,
}

impl std::fmt::Display for LabelStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} flows labelled, {} unlabelled; {} of {} label rows matched no flow",
            self.labelled_flows, self.unlabelled_flows, self.unmatched_labels, self.label_rows
        )
    }
}

type TupleKey = (u8, IpAddr, u16, IpAddr, u16);

fn key(proto: u8, a: IpAddr, pa: u16, b: IpAddr, pb: u16) -> TupleKey {
    if (a, pa) <= (b, pb) {
        (proto, a, pa, b, pb)
    } else {
        (proto, b, pb, a, pa)
    }
}

/// Labels of flows.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    class_names: Vec<String>,
    rows: Vec<Row>,
    index: HashMap<TupleKey, Vec<usize>>,
    used: Vec<bool>,
    captures: HashMap<String, usize>,
    rules: Vec<Rule>,
    stats: LabelStats,
}

fn proto_number(s: &str) -> Option<u8> {
    match s.to_ascii_uppercase().as_str() {
        "TCP" | "6" => Some(6),
        "UDP" | "17" => Some(17),
        "SCTP" | "132" => Some(132),
        "ICMP" | "1" => Some(1),
        "ICMPV6" | "58" => Some(58),
        _ => s.parse().ok(),
    }
}

/// Parses `2024-01-02T03:04:05.123Z` (UTC) or a number of seconds.
pub fn parse_time_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(x) = s.parse::<f64>() {
        return Some((x * 1e9) as u64);
    }
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next().unwrap_or("0").parse().ok()?;
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60;
    if secs < 0 {
        return None;
    }
    Some(secs as u64 * 1_000_000_000 + (sec * 1e9) as u64)
}

impl Labels {
    /// Empty labels with these classes.
    pub fn new(class_names: Vec<String>) -> Self {
        Labels {
            stats: LabelStats {
                per_class: vec![0; class_names.len()],
                ..Default::default()
            },
            class_names,
            ..Default::default()
        }
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Index of a class name, adding it when new.
    pub fn class_id(&mut self, name: &str) -> usize {
        if let Some(i) = self.class_names.iter().position(|c| c == name) {
            return i;
        }
        self.class_names.push(name.to_string());
        self.stats.per_class.push(0);
        self.class_names.len() - 1
    }

    /// Reads a label CSV by header name. Needs `proto`, `ip_a`, `port_a`,
    /// `ip_b`, `port_b`, `class`; uses `pcap`, `session`, `start`, `end`
    /// when present. Classes are added in order of first appearance.
    pub fn from_csv(path: &str) -> Result<Self> {
        let mut l = Labels::default();
        l.add_csv(path)?;
        Ok(l)
    }

    /// Adds the rows of another label CSV.
    pub fn add_csv(&mut self, path: &str) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|source| ClassifyError::Io {
            path: path.to_string(),
            source,
        })?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .collect();
        let col = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let err = |line: usize, msg: String| ClassifyError::Csv {
            path: path.to_string(),
            line,
            msg,
        };
        let need = |name: &str| col(name).ok_or_else(|| err(1, format!("no column {name:?}")));
        let (cp, ca, cpa, cb, cpb, cc) = (
            need("proto")?,
            need("ip_a")?,
            need("port_a")?,
            need("ip_b")?,
            need("port_b")?,
            need("class")?,
        );
        let (cpcap, cses, cst, cen) = (col("pcap"), col("session"), col("start"), col("end"));
        for (i, line) in lines.enumerate() {
            let ln = i + 2;
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let get = |c: usize| {
                f.get(c)
                    .copied()
                    .ok_or_else(|| err(ln, format!("missing column {}", header[c])))
            };
            let proto = proto_number(get(cp)?).ok_or_else(|| err(ln, "bad proto".into()))?;
            let a: IpAddr = get(ca)?.parse().map_err(|_| err(ln, "bad ip_a".into()))?;
            let b: IpAddr = get(cb)?.parse().map_err(|_| err(ln, "bad ip_b".into()))?;
            let pa: u16 = get(cpa)?
                .parse()
                .map_err(|_| err(ln, "bad port_a".into()))?;
            let pb: u16 = get(cpb)?
                .parse()
                .map_err(|_| err(ln, "bad port_b".into()))?;
            let class = self.class_id(get(cc)?);
            let opt = |c: Option<usize>| {
                c.and_then(|c| f.get(c))
                    .map(|s| s.to_string())
                    .filter(|s| !s.is_empty())
            };
            let row = Row {
                pcap: opt(cpcap),
                class,
                session: opt(cses),
                start_ns: opt(cst).and_then(|s| parse_time_ns(&s)),
                end_ns: opt(cen).and_then(|s| parse_time_ns(&s)),
            };
            self.index
                .entry(key(proto, a, pa, b, pb))
                .or_default()
                .push(self.rows.len());
            self.rows.push(row);
            self.used.push(false);
            self.stats.label_rows += 1;
        }
        Ok(())
    }

    /// Every flow of this capture file (by file name) gets `class`
    /// (`--label video=a.pcap,b.pcap`). Five-tuple labels take precedence.
    pub fn label_capture(&mut self, file_name: &str, class: &str) {
        let c = self.class_id(class);
        self.captures.insert(base_name(file_name).to_string(), c);
    }

    /// Adds a rule such as `port 443 -> web`, `sni *.netflix.com -> video`,
    /// `host example.org -> web`, `net 10.0.0.0/8 -> voip`. Rules apply
    /// (first match wins) to flows without a five-tuple or capture label.
    pub fn add_rule(&mut self, rule: &str) -> Result<()> {
        let bad = |msg: &str| ClassifyError::Rule {
            rule: rule.to_string(),
            msg: msg.to_string(),
        };
        let (lhs, class) = rule
            .split_once("->")
            .ok_or_else(|| bad("expected `<kind> <value> -> <class>`"))?;
        let class = class.trim();
        if class.is_empty() {
            return Err(bad("empty class"));
        }
        let mut it = lhs.split_whitespace();
        let (kind, value) = (
            it.next().ok_or_else(|| bad("empty rule"))?,
            it.next().ok_or_else(|| bad("missing value"))?,
        );
        let c = self.class_id(class);
        let r = match kind {
            "port" => Rule::Port(value.parse().map_err(|_| bad("bad port"))?, c),
            "sni" => Rule::Sni(value.to_ascii_lowercase(), c),
            "host" => Rule::Host(value.to_ascii_lowercase(), c),
            "net" => Rule::Net(value.parse().map_err(|_| bad("bad network"))?, c),
            _ => return Err(bad("kind must be port, sni, host or net")),
        };
        self.rules.push(r);
        Ok(())
    }

    /// Label of a five-tuple seen in `pcap` starting at `start_ns`; marks
    /// the label row used. Does not count the flow in the statistics.
    pub fn lookup_tuple(
        &mut self,
        pcap: Option<&str>,
        proto: u8,
        a: (IpAddr, u16),
        b: (IpAddr, u16),
        start_ns: u64,
    ) -> Option<LabelMatch> {
        let pcap = pcap.map(base_name);
        if let Some(ids) = self.index.get(&key(proto, a.0, a.1, b.0, b.1)) {
            for &i in ids {
                let r = &self.rows[i];
                if let (Some(p), Some(rp)) = (pcap, r.pcap.as_deref()) {
                    if p != rp {
                        continue;
                    }
                }
                // Time range with 2 s of slack for clock rounding.
                let slack = 2_000_000_000;
                if r.start_ns.is_some_and(|s| start_ns + slack < s)
                    || r.end_ns.is_some_and(|e| start_ns > e + slack)
                {
                    continue;
                }
                self.used[i] = true;
                return Some(LabelMatch {
                    class: r.class,
                    group: r.session.clone().or_else(|| r.pcap.clone()),
                });
            }
        }
        if let Some(&c) = pcap.and_then(|p| self.captures.get(p)) {
            return Some(LabelMatch {
                class: c,
                group: pcap.map(str::to_string),
            });
        }
        None
    }

    /// The class the rules give a five-tuple when nothing else is known of
    /// the flow (its first packet, in streaming): `port` and `net` rules,
    /// first match wins. An `sni` or `host` rule before the match ends the
    /// search with no answer: it might match once the flow's names are seen,
    /// and then it, not a later rule, would decide.
    pub fn rule_for_tuple(&self, a: (IpAddr, u16), b: (IpAddr, u16)) -> Option<usize> {
        for r in &self.rules {
            match r {
                Rule::Port(p, c) if a.1 == *p || b.1 == *p => return Some(*c),
                Rule::Net(n, c) if n.contains(a.0) || n.contains(b.0) => return Some(*c),
                Rule::Sni(..) | Rule::Host(..) => return None,
                _ => {}
            }
        }
        None
    }

    /// Ground truth of a flow from its five-tuple alone, for streaming:
    /// its label row or capture label ([`Labels::lookup_tuple`]), else
    /// [`Labels::rule_for_tuple`].
    pub fn truth_of_tuple(
        &mut self,
        pcap: Option<&str>,
        proto: u8,
        a: (IpAddr, u16),
        b: (IpAddr, u16),
        start_ns: u64,
    ) -> Option<usize> {
        self.lookup_tuple(pcap, proto, a, b, start_ns)
            .map(|m| m.class)
            .or_else(|| self.rule_for_tuple(a, b))
    }

    fn rule_match(&self, rec: &FlowRecord) -> Option<usize> {
        let names = [&rec.app.tls_sni, &rec.app.http_host, &rec.app.dns_query];
        for r in &self.rules {
            match r {
                Rule::Port(p, c) if rec.dst_port == *p || rec.src_port == *p => return Some(*c),
                Rule::Sni(pat, c)
                    if rec
                        .app
                        .tls_sni
                        .as_deref()
                        .is_some_and(|s| glob_host(pat, s)) =>
                {
                    return Some(*c)
                }
                Rule::Host(pat, c)
                    if names
                        .iter()
                        .any(|n| n.as_deref().is_some_and(|s| glob_host(pat, s))) =>
                {
                    return Some(*c)
                }
                Rule::Net(n, c) if n.contains(rec.src) || n.contains(rec.dst) => return Some(*c),
                _ => {}
            }
        }
        None
    }

    /// Label of a flow record from capture `pcap` (file name or path), and
    /// counts it as labelled or unlabelled.
    pub fn lookup(&mut self, pcap: Option<&str>, rec: &FlowRecord) -> Option<LabelMatch> {
        let m = self
            .lookup_tuple(
                pcap,
                rec.protocol,
                (rec.src, rec.src_port),
                (rec.dst, rec.dst_port),
                rec.start_ns,
            )
            .or_else(|| {
                self.rule_match(rec).map(|class| LabelMatch {
                    class,
                    group: pcap.map(|p| base_name(p).to_string()),
                })
            });
        match &m {
            Some(m) => {
                self.stats.labelled_flows += 1;
                self.stats.per_class[m.class] += 1;
            }
            None => self.stats.unlabelled_flows += 1,
        }
        m
    }

    /// Counts so far; `unmatched_labels` counts rows no lookup has used.
    pub fn stats(&self) -> LabelStats {
        let mut s = self.stats.clone();
        s.unmatched_labels = self.used.iter().filter(|u| !**u).count() as u64;
        s
    }

    /// Label rows never matched, as `pcap` names with counts.
    pub fn unmatched_by_capture(&self) -> Vec<(String, u64)> {
        let mut m: HashMap<String, u64> = HashMap::new();
        for (r, u) in self.rows.iter().zip(&self.used) {
            if !u {
                *m.entry(r.pcap.clone().unwrap_or_default()).or_default() += 1;
            }
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort();
        v
    }
}

/// `*.netflix.com` matches `a.netflix.com` and `netflix.com`; otherwise the
/// pattern is a suffix on label boundaries (or an exact name).
fn glob_host(pat: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let p = pat.trim_start_matches("*.");
    name == p || name.ends_with(&format!(".{p}"))
}

/// File name of a path.
pub fn base_name(p: &str) -> &str {
    p.rsplit(['/', '\\']).next().unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(src: &str, sp: u16, dst: &str, dp: u16, proto: u8) -> FlowRecord {
        FlowRecord {
            id: 1,
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_001_000_000_000,
            protocol: proto,
            ip_version: 4,
            src: src.parse().unwrap(),
            src_port: sp,
            dst: dst.parse().unwrap(),
            dst_port: dp,
            vlan: 0,
            tunnel: None,
            fwd: Default::default(),
            bwd: Default::default(),
            fragments: 0,
            first_sizes: vec![],
            first_dirs: vec![],
            first_iats_us: vec![],
            app: Default::default(),
            end_reason: flow::EndReason::Idle,
        }
    }

    #[test]
    fn csv_by_header_either_direction_and_counts() {
        let dir = std::env::temp_dir().join(format!("classify-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("l.csv");
        std::fs::write(
            &p,
            "pcap,proto,ip_a,port_a,ip_b,port_b,ndpi,class\n\
             a.pcap,TCP,10.0.0.1,1234,1.2.3.4,443,7/HTTP,web\n\
             a.pcap,UDP,10.0.0.1,5000,1.2.3.5,5004,RTP,voip\n\
             b.pcap,UDP,10.0.0.9,5000,1.2.3.5,5004,RTP,voip\n",
        )
        .unwrap();
        let mut l = Labels::from_csv(p.to_str().unwrap()).unwrap();
        assert_eq!(l.class_names(), &["web".to_string(), "voip".to_string()]);
        // Reverse direction matches.
        let m = l
            .lookup(Some("/x/a.pcap"), &rec("1.2.3.4", 443, "10.0.0.1", 1234, 6))
            .unwrap();
        assert_eq!(m.class, 0);
        assert_eq!(m.group.as_deref(), Some("a.pcap"));
        // Wrong capture does not match.
        assert!(l
            .lookup(Some("b.pcap"), &rec("10.0.0.1", 5000, "1.2.3.5", 5004, 17))
            .is_none());
        // Wrong protocol does not match.
        assert!(l
            .lookup(Some("a.pcap"), &rec("10.0.0.1", 1234, "1.2.3.4", 443, 17))
            .is_none());
        let s = l.stats();
        assert_eq!(
            (
                s.labelled_flows,
                s.unlabelled_flows,
                s.unmatched_labels,
                s.label_rows
            ),
            (1, 2, 2, 3)
        );
        assert_eq!(
            l.unmatched_by_capture(),
            vec![("a.pcap".to_string(), 1), ("b.pcap".to_string(), 1)]
        );
    }

    #[test]
    fn generator_header_with_time_range() {
        let dir = std::env::temp_dir().join(format!("classify-labels-g-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("g.csv");
        std::fs::write(
            &p,
            "pcap,proto,ip_a,port_a,ip_b,port_b,class,session,start,end,app\n\
             g.pcap,UDP,10.0.0.1,5000,1.2.3.5,5004,voip,u1s1,2023-11-14T22:13:20Z,2023-11-14T22:13:30Z,sip\n",
        )
        .unwrap();
        let mut l = Labels::from_csv(p.to_str().unwrap()).unwrap();
        assert_eq!(
            parse_time_ns("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000_000_000)
        );
        let r = rec("10.0.0.1", 5000, "1.2.3.5", 5004, 17);
        assert_eq!(
            l.lookup(Some("g.pcap"), &r).unwrap().group.as_deref(),
            Some("u1s1")
        );
        let mut late = r.clone();
        late.start_ns += 3600 * 1_000_000_000;
        assert!(l.lookup(Some("g.pcap"), &late).is_none());
    }

    #[test]
    fn rules_and_capture_labels() {
        let mut l = Labels::new(vec![]);
        l.add_rule("sni *.netflix.com -> video").unwrap();
        l.add_rule("port 443 -> web").unwrap();
        l.add_rule("net 10.0.0.0/8 -> voip").unwrap();
        assert!(l.add_rule("colour red -> web").is_err());
        assert!(l.add_rule("port x -> web").is_err());
        let mut r = rec("192.168.0.2", 5555, "1.1.1.1", 443, 6);
        r.app.tls_sni = Some("ipv4-c001.1.netflix.com".into());
        assert_eq!(l.lookup(None, &r).unwrap().class, 0);
        r.app.tls_sni = None;
        assert_eq!(l.lookup(None, &r).unwrap().class, 1);
        assert_eq!(
            l.lookup(None, &rec("10.1.1.1", 5, "2.2.2.2", 6, 17))
                .unwrap()
                .class,
            2
        );
        l.label_capture("dir/cap.pcap", "other");
        assert_eq!(
            l.lookup(Some("cap.pcap"), &rec("3.3.3.3", 1, "4.4.4.4", 2, 17))
                .unwrap()
                .class,
            3
        );
        assert!(l
            .lookup(Some("zz.pcap"), &rec("3.3.3.3", 1, "4.4.4.4", 2, 17))
            .is_none());
    }

    #[test]
    fn rules_on_a_five_tuple() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut l = Labels::new(vec![]);
        l.add_rule("port 53 -> dns").unwrap();
        l.add_rule("net 127.1.0.2/32 -> web").unwrap();
        l.add_rule("sni *.netflix.com -> video").unwrap();
        l.add_rule("port 443 -> other").unwrap();
        // Either side, any order.
        let dns = l.rule_for_tuple((ip("127.1.0.2"), 40000), (ip("127.0.0.1"), 53));
        assert_eq!(dns, Some(0));
        let web = l.rule_for_tuple((ip("127.0.0.1"), 80), (ip("127.1.0.2"), 40001));
        assert_eq!(web, Some(1));
        // The sni rule could still match: no answer from the rule after it.
        assert_eq!(
            l.rule_for_tuple((ip("10.0.0.1"), 40000), (ip("10.0.0.2"), 443)),
            None
        );
        // A label row wins over the rules.
        let mut m = Labels::new(vec![]);
        m.add_rule("port 53 -> dns").unwrap();
        assert_eq!(
            m.truth_of_tuple(None, 17, (ip("1.1.1.1"), 5), (ip("2.2.2.2"), 53), 0),
            Some(0)
        );
    }
}
