use std::collections::{HashMap, VecDeque};

use decode::app::inspect;
use decode::{tcp_flags, Packet};

use crate::key::{Addr, Endpoint, FlowKey};
use crate::quic::QuicClientHello;
use crate::record::{AppInfo, DirAccumulator, EndReason, FlowRecord};

const NIL: u32 = u32::MAX;
const NS: u64 = 1_000_000_000;
/// Flow table settings. Timeouts run on capture time, so a file behaves
/// exactly like the live traffic it recorded.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// A flow with no packet for this long ends (default 120 s).
    pub idle_timeout_ns: u64,
    /// A flow open this long ends and restarts (default 1800 s).
    pub active_timeout_ns: u64,
    /// After FIN in both directions or RST, late packets (the last ACK) are
    /// still counted for this long before the record is emitted (5 s, like
    /// Zeek's tcp_close_delay).
    pub close_linger_ns: u64,
    /// Upper bound on open flows; beyond it the least recently seen is evicted.
    pub max_flows: usize,
    /// Length of the first-packets sequences kept per flow (default 32).
    pub first_n: usize,
    /// Payload packets per flow handed to the application-hint parsers
    /// (more while nothing is recognised: [`FlowConfig::inspection_window`]).
    pub inspect_packets: u8,
    /// Put the outer VLAN id in the flow key.
    pub vlan_in_key: bool,
}

impl FlowConfig {
    /// How many of a flow's payload packets are inspected, given what was
    /// recognised so far: `inspect_packets` once a protocol is, 4× that
    /// while nothing is (a flow caught mid-transfer) or while an RTP header
    /// waits for the packet that confirms it (a call's media after its STUN
    /// and DTLS). The flow table and `transport::PayloadWindow`, which
    /// sends exactly the packets the table inspects, share this rule.
    pub fn inspection_window(&self, detected: bool, rtp_pending: bool) -> u8 {
        if detected && !rtp_pending {
            self.inspect_packets
        } else {
            self.inspect_packets.saturating_mul(4)
        }
    }
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            idle_timeout_ns: 120 * NS,
            active_timeout_ns: 1800 * NS,
            close_linger_ns: 5 * NS,
            max_flows: 1_000_000,
            first_n: 32,
            inspect_packets: 8,
            vlan_in_key: false,
        }
    }
}

/// Counters of the table's life, for `stats` and the end-of-run report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    pub flows: u64,
    pub peak_open: u64,
    pub ended_idle: u64,
    pub ended_active: u64,
    pub ended_fin: u64,
    pub ended_rst: u64,
    pub evicted: u64,
    pub ended_at_end_of_input: u64,
    /// IP packets that belong to no flow (not TCP/UDP/SCTP/ICMP or a fragment whose first part was not seen are still tracked; this counts packets without an IP layer).
    pub non_ip: u64,
    /// Non-first fragments whose first fragment was not seen (tracked under ports 0).
    pub orphan_fragments: u64,
}

/// Where a packet went: the flow it was counted in and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub flow_id: u64,
    /// `true` when the packet travels initiator → responder.
    pub forward: bool,
    /// Position of the packet in its flow (1-based).
    pub position: u64,
    /// The flow's slot in the table and its generation, for
    /// [`FlowTable::snapshot`].
    slot: u32,
    gen: u32,
}

struct FlowState {
    key: FlowKey,
    gen: u32,
    id: u64,
    init_is_lo: bool,
    start: u64,
    last: u64,
    dirs: [DirAccumulator; 2],
    fragments: u64,
    first_sizes: Vec<u32>,
    first_dirs: Vec<i8>,
    first_iats_us: Vec<f64>,
    app: AppInfo,
    inspected: u8,
    /// Server name and ALPN from IETF QUIC client Initials.
    quic: QuicClientHello,
    fin: [bool; 2],
    closing: Option<EndReason>,
    ip_version: u8,
    tunnel: Option<&'static str>,
}

/// A slot's neighbours in the least-recently-seen list. Kept apart from the
/// (large) flow states so that moving a flow to the tail touches two small
/// entries instead of three cold flow states.
#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

type FragKey = (Addr, Addr, u8, u32);

/// A bounded bidirectional flow table.
///
/// Packets go in through [`FlowTable::process`]; finished flows come out
/// through the `emit` callback (idle, active, FIN/RST, eviction) and at the
/// end through [`FlowTable::flush`]. Memory is bounded by `max_flows`.
pub struct FlowTable {
    cfg: FlowConfig,
    map: HashMap<FlowKey, u32, foldhash::fast::RandomState>,
    slots: Vec<FlowState>,
    /// `links[i]` belongs to `slots[i]`.
    links: Vec<Link>,
    free: Vec<u32>,
    /// Least recently seen first.
    lru_head: u32,
    lru_tail: u32,
    /// (start time, slot, generation), in creation order.
    active_q: VecDeque<(u64, u32, u32)>,
    /// Latest start pushed to `active_q`: a flow starting before it (a
    /// timestamp that went backwards) is also kept in `late_starts`, so
    /// `active_q`'s first live entry and the live late ones hold the oldest
    /// start.
    max_start: u64,
    /// (slot, generation) of flows created out of start order.
    late_starts: Vec<(u32, u32)>,
    /// `late_starts` is pruned of ended flows when it grows past this.
    late_cap: usize,
    /// (deadline, slot, generation) of closing TCP flows.
    closing_q: VecDeque<(u64, u32, u32)>,
    /// First fragments seen: (src, dst, protocol, id) → ports and time.
    frags: HashMap<FragKey, (u16, u16, u64), foldhash::fast::RandomState>,
    next_id: u64,
    now: u64,
    stats: TableStats,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            map: HashMap::default(),
            slots: Vec::new(),
            links: Vec::new(),
            free: Vec::new(),
            lru_head: NIL,
            lru_tail: NIL,
            active_q: VecDeque::new(),
            max_start: 0,
            late_starts: Vec::new(),
            late_cap: 64,
            closing_q: VecDeque::new(),
            frags: HashMap::default(),
            next_id: 1,
            now: 0,
            stats: TableStats::default(),
        }
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Number of open flows.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// First-packet time of the oldest open flow: how far back a replay
    /// must start to see every open flow whole. Amortised O(1) (ended flows
    /// at the front of the creation queue are dropped as it goes), so a
    /// Kafka analysis node can ask at every message whatever the number of
    /// open flows.
    pub fn oldest_start_ns(&mut self) -> Option<u64> {
        // Ended flows there would only be skipped by `expire`.
        while let Some(&(_, slot, gen)) = self.active_q.front() {
            if self.live(slot, gen) {
                break;
            }
            self.active_q.pop_front();
        }
        // The first live entry starts no later than any flow created after
        // it in order; flows created out of order are in `late_starts`.
        let front = self
            .active_q
            .front()
            .map(|&(_, slot, _)| self.slots[slot as usize].start);
        front.into_iter().chain(self.prune_late_starts()).min()
    }

    /// Drops ended flows from `late_starts`; the earliest start of the
    /// ones left, found in the same pass.
    fn prune_late_starts(&mut self) -> Option<u64> {
        let mut late = std::mem::take(&mut self.late_starts);
        let mut oldest: Option<u64> = None;
        late.retain(|&(slot, gen)| {
            let live = self.live(slot, gen);
            if live {
                let start = self.slots[slot as usize].start;
                oldest = Some(oldest.map_or(start, |o| o.min(start)));
            }
            live
        });
        self.late_cap = (2 * late.len()).max(64);
        self.late_starts = late;
        oldest
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Counts one packet into its flow. Returns `None` for packets without
    /// an IP layer (ARP, other ethertypes, malformed link layers).
    pub fn process(
        &mut self,
        pkt: &Packet<'_>,
        ts_ns: u64,
        wire_len: u32,
        emit: &mut impl FnMut(FlowRecord),
    ) -> Option<Placement> {
        // Timers run on capture time; a timestamp going backwards does not rewind them.
        if ts_ns > self.now {
            self.now = ts_ns;
            self.expire(emit);
        }
        let Some(ip) = pkt.ip else {
            self.stats.non_ip += 1;
            return None;
        };
        let src = Addr::from(ip.src);
        let dst = Addr::from(ip.dst);
        let (mut sport, mut dport) = pkt.ports().unwrap_or((0, 0));
        if let Some(frag) = ip.fragment {
            let fk = (src, dst, ip.protocol, frag.id);
            if frag.offset == 0 {
                if self.frags.len() >= 65_536 {
                    self.prune_fragments();
                }
                self.frags.insert(fk, (sport, dport, ts_ns));
            } else if let Some(&(s, d, _)) = self.frags.get(&fk) {
                sport = s;
                dport = d;
            } else {
                self.stats.orphan_fragments += 1;
            }
        }
        let vlan = if self.cfg.vlan_in_key { pkt.vlan[0] } else { 0 };
        let (key, lo_to_hi) = FlowKey::new(
            ip.protocol,
            Endpoint {
                addr: src,
                port: sport,
            },
            Endpoint {
                addr: dst,
                port: dport,
            },
            vlan,
        );
        let tcp = pkt.tcp().copied();
        let mut slot = self.map.get(&key).copied();
        // A fresh SYN on a closing connection starts a new flow (port reuse).
        if let (Some(s), Some(t)) = (slot, tcp) {
            let st = &self.slots[s as usize];
            if st.closing.is_some() && t.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
            {
                let reason = st.closing.unwrap_or(EndReason::Fin);
                self.finish(s, reason, emit);
                slot = None;
            }
        }
        let slot = match slot {
            Some(s) => s,
            None => {
                let mut init_is_lo = lo_to_hi;
                // Seeing the server's side first (a SYN-ACK, or a packet from a
                // well-known port to an ephemeral one without a SYN): the
                // destination initiated.
                let from_server = match tcp {
                    Some(t) => {
                        let synack = tcp_flags::SYN | tcp_flags::ACK;
                        t.flags & synack == synack
                            || (t.flags & tcp_flags::SYN == 0 && sport < 1024 && dport >= 1024)
                    }
                    None => pkt.ports().is_some() && sport < 1024 && dport >= 1024,
                };
                if from_server {
                    init_is_lo = !lo_to_hi;
                }
                let ip_version = ip.version;
                let tunnel = pkt.tunnel.map(|t| t.kind.name());
                self.create(key, init_is_lo, ts_ns, ip_version, tunnel, emit)
            }
        };
        let first_n = self.cfg.first_n;
        let linger = self.cfg.close_linger_ns;
        let st = &mut self.slots[slot as usize];
        let forward = lo_to_hi == st.init_is_lo;
        let d = if forward { 0 } else { 1 };
        let prev_last = st.last;
        st.last = st.last.max(ts_ns);
        st.dirs[d].push(pkt, ts_ns, wire_len);
        if ip.fragment.is_some() {
            st.fragments += 1;
        }
        let position = st.dirs[0].packets() + st.dirs[1].packets();
        if st.first_sizes.len() < first_n {
            st.first_sizes.push(wire_len);
            st.first_dirs.push(if forward { 1 } else { -1 });
            let iat = if position == 1 {
                0.0
            } else {
                ts_ns.saturating_sub(prev_last) as f64 / 1_000.0
            };
            st.first_iats_us.push(iat);
        }
        // Look at the first payload packets, longer while nothing is known.
        let window = self
            .cfg
            .inspection_window(st.app.detected.is_some(), st.app.rtp_candidates.pending());
        if st.inspected < window && !pkt.payload.is_empty() {
            st.inspected += 1;
            if let Some(h) = inspect(pkt) {
                st.app.merge(&h);
            }
        }
        st.quic.observe(pkt, forward, &mut st.app);
        if let Some(t) = tcp {
            if st.closing.is_none() {
                if t.flags & tcp_flags::RST != 0 {
                    st.closing = Some(EndReason::Rst);
                } else if t.flags & tcp_flags::FIN != 0 {
                    st.fin[d] = true;
                    if st.fin[0] && st.fin[1] {
                        st.closing = Some(EndReason::Fin);
                    }
                }
                if st.closing.is_some() {
                    let gen = st.gen;
                    self.closing_q
                        .push_back((ts_ns.saturating_add(linger), slot, gen));
                }
            }
        }
        let (flow_id, gen) = (self.slots[slot as usize].id, self.slots[slot as usize].gen);
        self.touch(slot);
        Some(Placement {
            flow_id,
            forward,
            position,
            slot,
            gen,
        })
    }

    /// The flow a packet was just placed in, as it stands (end reason
    /// `end-of-input`): what streaming classification judges before the
    /// flow ends. `None` once that flow has ended.
    pub fn snapshot(&self, placed: &Placement) -> Option<FlowRecord> {
        let st = self.open_slot(placed)?;
        let mut record = head_record(st, EndReason::EndOfInput);
        copy_open_facts(st, &mut record);
        Some(record)
    }

    /// [`snapshot`](Self::snapshot) into `out`, reusing its memory (the
    /// first-packet sequences; the application facts are copied only when
    /// they differ): streaming classification judges a flow many times.
    /// False (and `out` unchanged) once that flow has ended.
    pub fn snapshot_into(&self, placed: &Placement, out: &mut FlowRecord) -> bool {
        let Some(st) = self.open_slot(placed) else {
            return false;
        };
        // The head is rebuilt; the old record's buffers are kept for the copy.
        let old = std::mem::replace(out, head_record(st, EndReason::EndOfInput));
        (out.first_sizes, out.first_dirs, out.first_iats_us, out.app) =
            (old.first_sizes, old.first_dirs, old.first_iats_us, old.app);
        copy_open_facts(st, out);
        true
    }

    /// What the payload of the flow a packet was just placed in has revealed
    /// so far; `None` once that flow has ended.
    pub fn app_of(&self, placed: &Placement) -> Option<&AppInfo> {
        self.open_slot(placed).map(|st| &st.app)
    }

    /// The state of a placement's flow while it is open (a flow's end moves
    /// its slot to the next generation).
    fn open_slot(&self, placed: &Placement) -> Option<&FlowState> {
        let st = self.slots.get(placed.slot as usize)?;
        (st.gen == placed.gen && st.id == placed.flow_id).then_some(st)
    }

    /// Ends every open flow (reason `end-of-input`), oldest first.
    pub fn flush(&mut self, emit: &mut impl FnMut(FlowRecord)) {
        let mut order: Vec<(u64, u32)> = self
            .map
            .values()
            .map(|&s| (self.slots[s as usize].id, s))
            .collect();
        order.sort_unstable();
        for (_, s) in order {
            let reason = self.slots[s as usize]
                .closing
                .unwrap_or(EndReason::EndOfInput);
            self.finish(s, reason, emit);
        }
        self.active_q.clear();
        self.closing_q.clear();
        self.frags.clear();
    }

    /// Advances the clock without a packet (live capture with no traffic),
    /// expiring flows whose timeouts passed.
    pub fn advance_to(&mut self, ts_ns: u64, emit: &mut impl FnMut(FlowRecord)) {
        if ts_ns > self.now {
            self.now = ts_ns;
            self.expire(emit);
        }
    }

    fn expire(&mut self, emit: &mut impl FnMut(FlowRecord)) {
        let now = self.now;
        while let Some(&(deadline, slot, gen)) = self.closing_q.front() {
            if deadline > now {
                break;
            }
            self.closing_q.pop_front();
            if self.live(slot, gen) {
                let reason = self.slots[slot as usize].closing.unwrap_or(EndReason::Fin);
                self.finish(slot, reason, emit);
            }
        }
        let active = self.cfg.active_timeout_ns;
        while let Some(&(start, slot, gen)) = self.active_q.front() {
            if start.saturating_add(active) > now {
                break;
            }
            self.active_q.pop_front();
            if self.live(slot, gen) {
                self.finish(slot, EndReason::Active, emit);
            }
        }
        let idle = self.cfg.idle_timeout_ns;
        while self.lru_head != NIL {
            let h = self.lru_head;
            if self.slots[h as usize].last.saturating_add(idle) > now {
                break;
            }
            self.finish(h, EndReason::Idle, emit);
        }
    }

    fn live(&self, slot: u32, gen: u32) -> bool {
        let st = &self.slots[slot as usize];
        st.gen == gen && self.map.get(&st.key) == Some(&slot)
    }

    fn prune_fragments(&mut self) {
        // Reassembly timeout of 30 s (RFC 791 suggests 15 s, Linux uses 30 s).
        let horizon = self.now.saturating_sub(30 * NS);
        self.frags.retain(|_, v| v.2 >= horizon);
        if self.frags.len() >= 65_536 {
            self.frags.clear();
        }
    }

    fn create(
        &mut self,
        key: FlowKey,
        init_is_lo: bool,
        ts: u64,
        ip_version: u8,
        tunnel: Option<&'static str>,
        emit: &mut impl FnMut(FlowRecord),
    ) -> u32 {
        if self.map.len() >= self.cfg.max_flows.max(1) && self.lru_head != NIL {
            let victim = self.lru_head;
            self.finish(victim, EndReason::Evicted, emit);
        }
        let id = self.next_id;
        self.next_id += 1;
        let (lo_port, hi_port) = (key.lo.port, key.hi.port);
        let first_n = self.cfg.first_n;
        let state = FlowState {
            key,
            gen: 0,
            id,
            init_is_lo,
            start: ts,
            last: ts,
            dirs: Default::default(),
            fragments: 0,
            first_sizes: Vec::with_capacity(first_n.min(64)),
            first_dirs: Vec::with_capacity(first_n.min(64)),
            first_iats_us: Vec::with_capacity(first_n.min(64)),
            app: AppInfo {
                service: decode::service::for_ports(key.protocol, lo_port, hi_port),
                ..AppInfo::default()
            },
            inspected: 0,
            quic: QuicClientHello::default(),
            fin: [false; 2],
            closing: None,
            ip_version,
            tunnel,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                let gen = self.slots[s as usize].gen;
                self.slots[s as usize] = FlowState { gen, ..state };
                s
            }
            None => {
                self.slots.push(state);
                self.links.push(UNLINKED);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(key, slot);
        self.link_tail(slot);
        let gen = self.slots[slot as usize].gen;
        self.active_q.push_back((ts, slot, gen));
        if ts < self.max_start {
            self.late_starts.push((slot, gen));
            if self.late_starts.len() > self.late_cap {
                self.prune_late_starts();
            }
        } else {
            self.max_start = ts;
        }
        self.stats.flows += 1;
        self.stats.peak_open = self.stats.peak_open.max(self.map.len() as u64);
        slot
    }

    fn finish(&mut self, slot: u32, reason: EndReason, emit: &mut impl FnMut(FlowRecord)) {
        self.unlink(slot);
        let st = &mut self.slots[slot as usize];
        self.map.remove(&st.key);
        st.gen = st.gen.wrapping_add(1);
        let mut record = head_record(st, reason);
        record.first_sizes = std::mem::take(&mut st.first_sizes);
        record.first_dirs = std::mem::take(&mut st.first_dirs);
        record.first_iats_us = std::mem::take(&mut st.first_iats_us);
        record.app = std::mem::take(&mut st.app);
        st.quic = QuicClientHello::default();
        self.free.push(slot);
        let s = &mut self.stats;
        match reason {
            EndReason::Idle => s.ended_idle += 1,
            EndReason::Active => s.ended_active += 1,
            EndReason::Fin => s.ended_fin += 1,
            EndReason::Rst => s.ended_rst += 1,
            EndReason::Evicted => s.evicted += 1,
            EndReason::EndOfInput => s.ended_at_end_of_input += 1,
        }
        emit(record);
    }

    fn touch(&mut self, slot: u32) {
        if self.lru_tail != slot {
            self.unlink(slot);
            self.link_tail(slot);
        }
    }

    fn link_tail(&mut self, slot: u32) {
        let tail = self.lru_tail;
        self.links[slot as usize] = Link {
            prev: tail,
            next: NIL,
        };
        if tail != NIL {
            self.links[tail as usize].next = slot;
        } else {
            self.lru_head = slot;
        }
        self.lru_tail = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let Link { prev, next } = self.links[slot as usize];
        if prev != NIL {
            self.links[prev as usize].next = next;
        } else if self.lru_head == slot {
            self.lru_head = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        } else if self.lru_tail == slot {
            self.lru_tail = prev;
        }
        self.links[slot as usize] = UNLINKED;
    }
}

/// What [`head_record`] leaves out of an open flow's record: its
/// first-packet sequences and application facts (copied into `out`'s
/// buffers; the facts only when they differ).
fn copy_open_facts(st: &FlowState, out: &mut FlowRecord) {
    out.first_sizes.clone_from(&st.first_sizes);
    out.first_dirs.clone_from(&st.first_dirs);
    out.first_iats_us.clone_from(&st.first_iats_us);
    if out.app != st.app {
        out.app.clone_from(&st.app);
    }
}

/// A flow's record without its first-packet sequences and application facts
/// (the caller moves or copies those).
fn head_record(st: &FlowState, reason: EndReason) -> FlowRecord {
    let (init, resp) = if st.init_is_lo {
        (st.key.lo, st.key.hi)
    } else {
        (st.key.hi, st.key.lo)
    };
    FlowRecord {
        id: st.id,
        start_ns: st.start,
        end_ns: st.last,
        protocol: st.key.protocol,
        ip_version: st.ip_version,
        src: init.addr.to_ip(),
        src_port: init.port,
        dst: resp.addr.to_ip(),
        dst_port: resp.port,
        vlan: st.key.vlan,
        tunnel: st.tunnel,
        fwd: st.dirs[0].summary(),
        bwd: st.dirs[1].summary(),
        fragments: st.fragments,
        first_sizes: Vec::new(),
        first_dirs: Vec::new(),
        first_iats_us: Vec::new(),
        app: AppInfo::default(),
        end_reason: reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic::{QUIC_DONE, QUIC_INITIALS};
    use capture::LinkType;
    use decode::quic_initial::protect_client_initial;

    /// Ethernet + IPv4 + UDP 10.0.0.1:50000 ↔ 10.0.0.2:443 (`up`: from the
    /// client) carrying `payload`.
    fn udp(up: bool, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sport, dport) = if up {
            ([10, 0, 0, 1], [10, 0, 0, 2], 50_000u16, 443u16)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], 443, 50_000)
        };
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((28 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// A ClientHello naming `name` with ALPN "h3", both past its first
    /// 1500 bytes (a filler extension comes first).
    fn client_hello(name: &str) -> Vec<u8> {
        let mut sni = vec![0, 0, 0, 0, 0, 0, 0, 0];
        let n = name.len() as u16;
        sni[2..4].copy_from_slice(&(n + 5).to_be_bytes());
        sni[4..6].copy_from_slice(&(n + 3).to_be_bytes());
        sni[6..8].copy_from_slice(&n.to_be_bytes());
        sni.insert(6, 0);
        sni.extend_from_slice(name.as_bytes());
        let alpn = [0, 16, 0, 5, 0, 3, 2, b'h', b'3'];
        // Filler extension (type 0xff00) pushing the names far back.
        let mut exts = vec![0xff, 0x00, 0x05, 0xdc];
        exts.extend(std::iter::repeat_n(0x77, 1500));
        exts.extend_from_slice(&sni);
        exts.extend_from_slice(&alpn);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 1, 1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut m = vec![1, 0];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    /// A client Initial with `data` in a CRYPTO frame at `off`, padded.
    fn initial(dcid: &[u8], pn: u32, off: usize, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0x06, 0x80, 0, 0, 0, 0x40, 0];
        f[2..5].copy_from_slice(&(off as u32).to_be_bytes()[1..]);
        f[5..7].copy_from_slice(&(0x4000 | data.len() as u16).to_be_bytes());
        f.extend_from_slice(data);
        f.resize(1162.max(f.len()), 0);
        protect_client_initial(1, dcid, &[], pn, &f).unwrap()
    }

    fn feed(t: &mut FlowTable, ts: u64, frame: &[u8], out: &mut Vec<FlowRecord>) {
        let pkt = decode::decode(LinkType::ETHERNET, frame);
        t.process(&pkt, ts, frame.len() as u32, &mut |r| out.push(r));
    }

    /// The oldest open flow's start, against a scan of every open flow,
    /// after each of 20,000 packets over 400 flows whose timestamps
    /// sometimes go back, with idle, active and eviction endings.
    #[test]
    fn oldest_start_equals_a_scan_of_the_open_flows() {
        const MS: u64 = 1_000_000;
        let cfg = FlowConfig {
            idle_timeout_ns: 400 * MS,
            active_timeout_ns: 3_000 * MS,
            max_flows: 150,
            ..FlowConfig::default()
        };
        let mut t = FlowTable::new(cfg);
        let mut out = Vec::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ts = 1_000 * MS;
        let (mut late, mut checked) = (0, 0);
        for _ in 0..20_000 {
            let r = rand();
            // Mostly forward; one packet in 16 from up to 50 ms back.
            if r % 16 == 0 {
                ts = ts.saturating_sub(rand() % (50 * MS));
                late += 1;
            } else {
                ts += rand() % (2 * MS);
            }
            let mut f = udp(r & 1 == 0, b"x");
            let port = 20_000 + (rand() % 400) as u16;
            let at = if r & 1 == 0 { 34 } else { 36 };
            f[at..at + 2].copy_from_slice(&port.to_be_bytes());
            feed(&mut t, ts, &f, &mut out);
            let scan = t.map.values().map(|&s| t.slots[s as usize].start).min();
            assert_eq!(t.oldest_start_ns(), scan, "after {checked} packets");
            checked += 1;
        }
        assert!(
            late > 1_000 && out.len() > 1_000,
            "{late} late, {} ended",
            out.len()
        );
    }

    fn state(t: &FlowTable) -> &FlowState {
        assert_eq!(t.len(), 1);
        &t.slots[*t.map.values().next().unwrap() as usize]
    }

    /// A call's upstream (a 214-byte frame every 20 ms for 2 s) against a
    /// player's downstream (three bursts of 20 full-size frames 100 µs
    /// apart, 2 s between bursts): the shapes counted by hand.
    #[test]
    fn shape_counts_size_modes_gaps_bursts_and_busy_seconds() {
        const MS: u64 = 1_000_000;
        let t0 = 10_000 * MS;
        let mut t = FlowTable::new(FlowConfig::default());
        let mut frames: Vec<(u64, Vec<u8>)> = (0..100)
            .map(|i| (t0 + i * 20 * MS, udp(true, &[1; 172])))
            .collect();
        for b in 0..3u64 {
            for i in 0..20u64 {
                let ts = t0 + 500 * MS + b * 2_000 * MS + i * MS / 10;
                frames.push((ts, udp(false, &[2; 1400])));
            }
        }
        frames.sort_by_key(|f| f.0);
        let mut out = Vec::new();
        for (ts, f) in &frames {
            feed(&mut t, *ts, f, &mut out);
        }
        t.flush(&mut |r| out.push(r));
        assert_eq!(out.len(), 1);
        let (up, down) = (&out[0].fwd, &out[0].bwd);
        assert_eq!((up.packets, down.packets), (100, 60));
        let s = up.shape;
        assert_eq!(s.size_hist, [0, 100, 0, 0, 0, 0], "214-byte frames");
        assert_eq!(s.gap_hist, [0, 0, 99, 0, 0, 0], "20 ms gaps");
        assert_eq!(s.regular_gaps, 98);
        assert_eq!(s.active_seconds, 2);
        assert_eq!(s.peak_second_bytes, 50 * 214);
        assert_eq!(s.bursts(up.packets), 1);
        let s = down.shape;
        assert_eq!(s.size_hist, [0, 0, 0, 0, 0, 60], "1442-byte frames");
        assert_eq!(s.gap_hist, [57, 0, 0, 0, 0, 2]);
        // The first gap of each burst has no like gap before it.
        assert_eq!(s.regular_gaps, 54);
        assert_eq!(s.active_seconds, 3);
        assert_eq!(s.peak_second_bytes, 20 * 1442);
        assert_eq!(s.bursts(down.packets), 3);
    }

    #[test]
    fn quic_client_hello_over_two_initials_then_buffer_freed() {
        let ch = client_hello("two.example");
        let dcid = [9u8; 8];
        let mut t = FlowTable::new(FlowConfig::default());
        let mut out = Vec::new();
        feed(
            &mut t,
            1,
            &udp(true, &initial(&dcid, 0, 0, &ch[..1000])),
            &mut out,
        );
        assert!(state(&t).quic.buffering());
        assert_eq!(state(&t).app.tls_sni, None);
        // A server Initial (or anything from the server) is not looked at.
        feed(
            &mut t,
            2,
            &udp(false, &initial(&dcid, 0, 1000, &ch[1000..])),
            &mut out,
        );
        assert_eq!(state(&t).quic.initials, 1);
        feed(
            &mut t,
            3,
            &udp(true, &initial(&dcid, 1, 1000, &ch[1000..])),
            &mut out,
        );
        let st = state(&t);
        assert!(!st.quic.buffering());
        assert_eq!(st.quic.initials, QUIC_DONE);
        assert_eq!(st.app.tls_sni.as_deref(), Some("two.example"));
        assert_eq!(st.app.tls_alpn.as_deref(), Some("h3"));
        assert_eq!(st.app.quic_version.as_deref(), Some("0x00000001"));
        t.flush(&mut |r| out.push(r));
        assert_eq!(out[0].app.tls_sni.as_deref(), Some("two.example"));
    }

    #[test]
    fn quic_gives_up_after_a_few_initials() {
        let ch = client_hello("never.example");
        let dcid = [7u8; 8];
        let mut t = FlowTable::new(FlowConfig::default());
        let mut out = Vec::new();
        // The first part again and again: the ClientHello never completes.
        for i in 0..QUIC_INITIALS {
            assert!(state_or_none(&t).is_none_or(|s| s.quic.initials == i));
            let pkt = initial(&dcid, u32::from(i), 0, &ch[..1000]);
            feed(&mut t, 1 + u64::from(i), &udp(true, &pkt), &mut out);
        }
        let st = state(&t);
        assert!(!st.quic.buffering());
        assert_eq!(st.quic.initials, QUIC_DONE);
        assert_eq!(st.app.tls_sni, None);
        // Plain UDP never allocates.
        let mut t = FlowTable::new(FlowConfig::default());
        feed(&mut t, 1, &udp(true, &[0xc0; 1200]), &mut out);
        feed(&mut t, 2, &udp(true, b"hello"), &mut out);
        assert!(!state(&t).quic.buffering());
        assert_eq!(state(&t).quic.initials, 0);
    }

    fn state_or_none(t: &FlowTable) -> Option<&FlowState> {
        t.map.values().next().map(|&s| &t.slots[s as usize])
    }
}
