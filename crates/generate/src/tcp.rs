//! A compact TCP sender/receiver model that produces the packets a capture
//! at the client would see.
//!
//! What is modelled (no losses): the three-way handshake with MSS, window
//! scale and SACK-permitted options; MSS-sized segments (1460 bytes over
//! IPv4, 1440 over IPv6); slow start from an initial window of 10 segments
//! (RFC 6928) with congestion-window restart after idle (RFC 5681 §4.1);
//! ACK clocking; a delayed-ACK receiver that acknowledges every second
//! full segment at once and otherwise after 40 ms (Linux's minimum, RFC 1122
//! §4.2.3.2), piggybacking on its own data when it sends before then;
//! serialisation at the access-link rate (frame + preamble/IFG, 24 bytes)
//! with the sender queueing behind its own earlier packets; a one-way delay
//! of RTT/2 each way; and a FIN/FIN/ACK teardown. The congestion window is
//! capped near 1.25 × the bandwidth-delay product, as a paced modern sender
//! keeps its queue short, so RTTs stay close to the configured value.
//!
//! The capture point is the client's interface: client packets are
//! stamped when they start leaving, server packets when they have arrived.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::out::Out;
use crate::wire::{FillKind, Payload, L4, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN};

pub(crate) const C: usize = 0;
pub(crate) const S: usize = 1;
const IW: f64 = 10.0;
const DELACK_NS: u64 = 40_000_000;
const ACK_PROC_NS: u64 = 15_000;
const SYN_PROC_NS: u64 = 60_000;
/// Receive windows advertised after the handshake (window scale 7).
const CLIENT_RWND: u32 = 3 << 20;
const SERVER_RWND: u32 = 1 << 20;
/// Preamble, start delimiter, FCS and inter-frame gap, bytes.
pub(crate) const WIRE_EXTRA: u64 = 24;

/// A message handed to TCP: explicit bytes then a filled stream.
#[derive(Clone)]
pub(crate) struct Msg {
    pub head: Option<Rc<[u8]>>,
    pub fill: FillKind,
    pub fill_len: u64,
}

impl Msg {
    pub fn bytes(b: Vec<u8>) -> Msg {
        Msg {
            head: Some(b.into()),
            fill: FillKind::None,
            fill_len: 0,
        }
    }
    pub fn with_fill(head: Vec<u8>, fill: FillKind, fill_len: u64) -> Msg {
        Msg {
            head: if head.is_empty() {
                None
            } else {
                Some(head.into())
            },
            fill,
            fill_len,
        }
    }
}

struct SendState {
    side: usize,
    msg: Msg,
    head_len: u64,
    total: u64,
    sent: u64,
    seq0: u32,
    t: u64,
    acks: VecDeque<(u64, u64)>,
    acked: u64,
    last_cap: u64,
    last_arr: u64,
}

/// Result of a finished send.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sent {
    /// Capture time of the last data segment.
    pub last_cap: u64,
    /// Time the receiver had the whole message.
    pub delivered: u64,
}

pub(crate) struct Conn {
    pub flow: u32,
    pub owd: u64,
    mss: u64,
    hdr: u64,
    nxt: [u32; 2],
    rcv: [u32; 2],
    win: [u16; 2],
    /// Sending rate of each side's bottleneck, bit/s.
    pub rate: [f64; 2],
    free: [u64; 2],
    cwnd: [f64; 2],
    cwnd_cap: [f64; 2],
    last_tx: [u64; 2],
    unacked: [u32; 2],
    delack: [Option<(u64, u32)>; 2],
    salt: u32,
    st: Option<SendState>,
    pub open: bool,
}

impl Conn {
    pub fn new(flow: u32, rtt_ns: u64, v6: bool, rate_bps: f64, isn: [u32; 2], salt: u32) -> Conn {
        let mss = if v6 { 1440 } else { 1460 };
        let hdr = 14 + if v6 { 40 } else { 20 } + 20;
        let mut c = Conn {
            flow,
            owd: rtt_ns / 2,
            mss,
            hdr,
            nxt: isn,
            rcv: [isn[1], isn[0]],
            win: [64240, 65160],
            rate: [rate_bps; 2],
            free: [0; 2],
            cwnd: [IW; 2],
            cwnd_cap: [IW; 2],
            last_tx: [0; 2],
            unacked: [0; 2],
            delack: [None; 2],
            salt,
            st: None,
            open: false,
        };
        c.set_rate(rate_bps);
        c
    }

    /// Sets the bottleneck rate both ways (e.g. a share of the access link).
    pub fn set_rate(&mut self, rate_bps: f64) {
        self.rate = [rate_bps; 2];
        let bdp = rate_bps * (2 * self.owd) as f64 / 8e9 / self.mss as f64;
        let cap = (1.25 * bdp + 2.0).max(IW);
        // Never beyond the peer's advertised window (server 1 MiB, client 3 MiB).
        let mss = self.mss as f64;
        self.cwnd_cap = [
            cap.min((SERVER_RWND as f64 / mss).floor()),
            cap.min((CLIENT_RWND as f64 / mss).floor()),
        ];
    }

    fn cap_time(&self, side: usize, depart: u64, ser: u64) -> u64 {
        if side == C {
            depart
        } else {
            depart + ser + self.owd
        }
    }

    fn seg(&mut self, out: &mut Out, side: usize, ts: u64, flags: u8, payload: Payload) {
        let seq = self.nxt[side];
        let syn = flags & TCP_SYN != 0;
        let l4 = L4::Tcp {
            flags,
            seq,
            ack: if flags & TCP_ACK != 0 {
                self.rcv[side]
            } else {
                0
            },
            win: self.win[side],
            syn_opts: syn,
        };
        out.push(ts, self.flow, side == C, l4, payload);
    }

    /// Pure ACK from `side` at its local time `t` acknowledging `ack`.
    fn pure_ack(&mut self, out: &mut Out, side: usize, t: u64, ack: u32) {
        let ts = self.cap_time(side, t, 0);
        let l4 = L4::Tcp {
            flags: TCP_ACK,
            seq: self.nxt[side],
            ack,
            win: self.win[side],
            syn_opts: false,
        };
        out.push(ts, self.flow, side == C, l4, Payload::EMPTY);
    }

    /// Sends any delayed ACK of `side` due at or before `t`; a later one is
    /// dropped because `side`'s next packet at `t` carries it.
    fn flush_delack(&mut self, out: &mut Out, side: usize, t: u64) {
        if let Some((dl, a)) = self.delack[side].take() {
            if dl <= t {
                self.pure_ack(out, side, dl, a);
            }
        }
        self.unacked[side] = 0;
    }

    /// Emits every pending delayed ACK due by `t` (call before moving the
    /// horizon to `t`).
    pub fn settle(&mut self, out: &mut Out, t: u64) {
        for side in [C, S] {
            if let Some((dl, a)) = self.delack[side] {
                if dl <= t {
                    self.delack[side] = None;
                    self.unacked[side] = 0;
                    self.pure_ack(out, side, dl, a);
                }
            }
        }
    }

    /// Three-way handshake starting at `t`; returns the time the client
    /// may send data (when it sends the final ACK).
    pub fn connect(&mut self, out: &mut Out, t: u64) -> u64 {
        self.seg(out, C, t, TCP_SYN, Payload::EMPTY);
        self.nxt[C] = self.nxt[C].wrapping_add(1);
        self.rcv[S] = self.nxt[C];
        let t_sa = t + self.owd + SYN_PROC_NS;
        self.seg(out, S, t_sa + self.owd, TCP_SYN | TCP_ACK, Payload::EMPTY);
        self.nxt[S] = self.nxt[S].wrapping_add(1);
        self.rcv[C] = self.nxt[S];
        let t_ack = t_sa + self.owd + ACK_PROC_NS;
        // Scaled windows from here on (scale 7).
        self.win = [(CLIENT_RWND >> 7) as u16, (SERVER_RWND >> 7) as u16];
        self.seg(out, C, t_ack, TCP_ACK, Payload::EMPTY);
        self.open = true;
        self.last_tx = [t_ack, t_sa];
        t_ack
    }

    /// Starts sending `msg` from `side`, no earlier than `t` (local time).
    pub fn begin(&mut self, out: &mut Out, side: usize, t: u64, msg: Msg) {
        assert!(self.st.is_none(), "one message at a time per connection");
        self.flush_delack(out, side, t);
        let rto = 200_000_000 + 2 * self.owd;
        if t > self.last_tx[side] + rto {
            self.cwnd[side] = self.cwnd[side].min(IW);
        }
        let head_len = msg.head.as_ref().map_or(0, |h| h.len() as u64);
        let total = head_len + msg.fill_len;
        self.st = Some(SendState {
            side,
            msg,
            head_len,
            total,
            sent: 0,
            seq0: self.nxt[side],
            t,
            acks: VecDeque::new(),
            acked: 0,
            last_cap: t,
            last_arr: t,
        });
    }

    /// Sends up to `max_segs` more segments of the current message.
    /// Returns `None` when more remain, with the horizon available through
    /// [`Conn::horizon`]; `Some` when the message is complete.
    pub fn pump(&mut self, out: &mut Out, max_segs: usize) -> Option<Sent> {
        let mut st = self.st.take().expect("begin() first");
        let side = st.side;
        let r = 1 - side;
        let mut n = 0;
        while st.sent < st.total && n < max_segs {
            n += 1;
            let len = self.mss.min(st.total - st.sent);
            let mut t = st.t;
            loop {
                while let Some(&(ta, cum)) = st.acks.front() {
                    if ta > t {
                        break;
                    }
                    st.acks.pop_front();
                    if cum > st.acked {
                        let newly = (cum - st.acked) as f64 / self.mss as f64;
                        st.acked = cum;
                        self.cwnd[side] = (self.cwnd[side] + newly).min(self.cwnd_cap[side]);
                    }
                }
                let cwnd_b = self.cwnd[side].floor() as u64 * self.mss;
                if st.sent == st.acked || st.sent - st.acked + len <= cwnd_b {
                    break;
                }
                if let Some(&(ta, _)) = st.acks.front() {
                    t = t.max(ta);
                    continue;
                }
                // Only the receiver's delayed ACK is outstanding.
                let (dl, a) = self.delack[r].take().expect("unacked data has an ACK due");
                self.unacked[r] = 0;
                self.pure_ack(out, r, dl, a);
                st.acks
                    .push_back((dl + self.owd, a.wrapping_sub(st.seq0) as u64));
            }
            // Serialisation behind this side's earlier packets.
            let ser = ((self.hdr + len + WIRE_EXTRA) as f64 * 8e9 / self.rate[side]) as u64;
            let start = t.max(self.free[side]);
            self.free[side] = start + ser;
            let cap = self.cap_time(side, start, ser);
            let arr = start + ser + self.owd;
            if let Some((dl, a)) = self.delack[r] {
                if dl < arr {
                    self.delack[r] = None;
                    self.unacked[r] = 0;
                    self.pure_ack(out, r, dl, a);
                    let cum = a.wrapping_sub(st.seq0) as u64;
                    if cum <= st.sent {
                        st.acks.push_back((dl + self.owd, cum));
                    }
                }
            }
            let last = st.sent + len == st.total;
            let payload = self.slice(&st, st.sent, len);
            let flags = TCP_ACK | if last { TCP_PSH } else { 0 };
            self.seg(out, side, cap, flags, payload);
            self.nxt[side] = self.nxt[side].wrapping_add(len as u32);
            st.sent += len;
            self.rcv[r] = self.nxt[side];
            self.unacked[r] += 1;
            if self.unacked[r] >= 2 {
                self.unacked[r] = 0;
                self.delack[r] = None;
                let a = self.rcv[r];
                self.pure_ack(out, r, arr + ACK_PROC_NS, a);
                st.acks.push_back((arr + ACK_PROC_NS + self.owd, st.sent));
            } else {
                self.delack[r] = Some((arr + DELACK_NS, self.rcv[r]));
            }
            st.t = start;
            st.last_cap = cap;
            st.last_arr = arr;
            self.last_tx[side] = start + ser;
        }
        if st.sent >= st.total {
            Some(Sent {
                last_cap: st.last_cap,
                delivered: st.last_arr,
            })
        } else {
            self.st = Some(st);
            None
        }
    }

    /// Lower bound of the timestamps of packets this connection has yet to
    /// produce for the message in progress.
    pub fn horizon(&self) -> u64 {
        self.st.as_ref().map_or(0, |s| s.last_cap)
    }

    fn slice(&self, st: &SendState, off: u64, len: u64) -> Payload {
        let mut p = Payload::EMPTY;
        let end = off + len;
        if off < st.head_len {
            let h = st.msg.head.clone().expect("head");
            p.head = Some((h, off as u32, end.min(st.head_len) as u32));
        }
        if end > st.head_len {
            let f0 = off.max(st.head_len) - st.head_len;
            p.fill = st.msg.fill;
            p.salt = self.salt;
            p.off = f0;
            p.len = (end - st.head_len - f0) as u32;
            p.total = st.msg.fill_len;
        }
        p
    }

    /// Sends a whole message; returns when it was delivered.
    pub fn send(&mut self, out: &mut Out, side: usize, t: u64, msg: Msg) -> Sent {
        self.begin(out, side, t, msg);
        self.pump(out, usize::MAX).expect("unbounded pump finishes")
    }

    /// Client sends `req`; the server answers `resp` after `think` ns.
    /// Returns the time the client has the whole response.
    pub fn exchange(&mut self, out: &mut Out, t: u64, req: Msg, think: u64, resp: Msg) -> u64 {
        let a = self.send(out, C, t, req);
        let b = self.send(out, S, a.delivered + think, resp);
        b.delivered
    }

    /// FIN teardown initiated by `side` at its local time `t`; returns the
    /// capture time of the last packet.
    pub fn close(&mut self, out: &mut Out, side: usize, t: u64) -> u64 {
        let p = 1 - side;
        let t = t.max(self.free[side]);
        self.flush_delack(out, side, t);
        let cap = self.cap_time(side, t, 0);
        self.seg(out, side, cap, TCP_FIN | TCP_ACK, Payload::EMPTY);
        self.nxt[side] = self.nxt[side].wrapping_add(1);
        self.rcv[p] = self.nxt[side];
        let arr = t + self.owd;
        let tp = (arr + SYN_PROC_NS).max(self.free[p]);
        self.flush_delack(out, p, tp);
        let cap_p = self.cap_time(p, tp, 0);
        self.seg(out, p, cap_p, TCP_FIN | TCP_ACK, Payload::EMPTY);
        self.nxt[p] = self.nxt[p].wrapping_add(1);
        self.rcv[side] = self.nxt[p];
        let t_last = tp + self.owd + ACK_PROC_NS;
        let cap_last = self.cap_time(side, t_last, 0);
        self.seg(out, side, cap_last, TCP_ACK, Payload::EMPTY);
        self.open = false;
        cap_last.max(cap_p)
    }
}
