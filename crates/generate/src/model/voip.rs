//! VoIP calls: SIP + G.711 RTP, and the ICMP-echo emulation (see
//! [`crate::VoipParams`]).

use std::rc::Rc;

use rand::RngCore;

use super::{rtt_to, server_ip, Pool, Session, Step};
use crate::dist::{self, ns};
use crate::out::Proto;
use crate::proto::{rtcp_sr_sdes, rtp_header, sdp, SipDialog};
use crate::wire::{FillKind, Ip, Payload, L4};
use crate::{Class, Env, UserCtx, VoipParams};

const PKT_NS: u64 = 20_000_000;
const STEP_NS: u64 = 1_000_000_000;

/// A media packet of one talker.
pub(crate) enum Frame {
    /// G.711 voice: this RTP header, then 160 bytes of samples.
    Rtp([u8; 12]),
    /// RFC 3389 comfort noise: RTP header and the noise level, complete.
    Cn(Vec<u8>),
}

/// One talker's RTP state: Brady ON/OFF talk spurts on a 20 ms clock
/// (model time in ns), comfort noise in silences, RTCP reports.
pub(crate) struct Talker {
    talking: bool,
    toggle_at: u64,
    next: u64,
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    next_cn: u64,
    next_rtcp: u64,
    packets: u32,
    octets: u32,
}

impl Talker {
    pub(crate) fn new(rng: &mut dist::Rng, t: u64, on: f64, off: f64) -> Talker {
        let talking = dist::chance(rng, on / (on + off));
        let mean = if talking { on } else { off };
        Talker {
            talking,
            toggle_at: t + ns(dist::exp(rng, mean)),
            next: t,
            seq: rng.next_u32() as u16,
            ts: rng.next_u32(),
            ssrc: rng.next_u32(),
            marker: true,
            next_cn: t,
            next_rtcp: t + ns(dist::uniform(rng, 1.0, 5.0)),
            packets: 0,
            octets: 0,
        }
    }
}

impl Talker {
    /// Model time of this talker's next 20 ms tick.
    pub(crate) fn next_at(&self) -> u64 {
        self.next
    }

    /// Applies every talk-spurt / silence boundary up to `t`.
    pub(crate) fn toggle(&mut self, rng: &mut dist::Rng, p: &VoipParams, t: u64) {
        while t >= self.toggle_at {
            self.talking = !self.talking;
            let mean = if self.talking {
                p.on_mean_s
            } else {
                p.off_mean_s
            };
            self.toggle_at += ns(dist::exp(rng, mean)).max(PKT_NS);
            if self.talking {
                self.marker = true;
            } else {
                self.next_cn = t;
            }
        }
    }

    /// The RTCP SR + SDES compound due at `t` (ns since the Unix epoch),
    /// if any: RFC 3550 §6.2's 5 s minimum interval, randomised ×[0.5, 1.5].
    pub(crate) fn rtcp(&mut self, rng: &mut dist::Rng, t: u64, cname: &str) -> Option<Vec<u8>> {
        if t < self.next_rtcp {
            return None;
        }
        self.next_rtcp = t + ns(5.0 * dist::uniform(rng, 0.5, 1.5));
        Some(rtcp_sr_sdes(
            self.ssrc,
            t,
            self.ts,
            self.packets,
            self.octets,
            cname,
        ))
    }

    /// The media packet of the current tick (voice in a spurt, comfort
    /// noise at the start of a silence and every second of it), then
    /// advances the clock by 20 ms.
    pub(crate) fn frame(&mut self, rng: &mut dist::Rng, p: &VoipParams) -> Option<Frame> {
        let t = self.next;
        let f = if self.talking {
            self.packets += 1;
            self.octets += 160;
            let h = rtp_header(self.marker, 0, self.seq, self.ts, self.ssrc);
            self.marker = false;
            self.seq = self.seq.wrapping_add(1);
            Some(Frame::Rtp(h))
        } else if p.comfort_noise && t >= self.next_cn {
            // RFC 3389 comfort noise: noise level in -dBov.
            let h = rtp_header(false, 13, self.seq, self.ts, self.ssrc);
            self.seq = self.seq.wrapping_add(1);
            let mut b = h.to_vec();
            b.push(60 + (rng.next_u32() % 20) as u8);
            self.next_cn = t + STEP_NS;
            Some(Frame::Cn(b))
        } else {
            None
        };
        self.ts = self.ts.wrapping_add(160);
        self.next += PKT_NS;
        f
    }
}

/// Caller and callee names and the dialog identifiers of a call from user
/// `user` at `client`:`client_port` through the proxy `proxy`.
pub(crate) fn new_dialog(
    rng: &mut dist::Rng,
    user: u32,
    client: Ip,
    client_port: u16,
    proxy: Ip,
) -> SipDialog {
    let names = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    let caller = format!("{}{}", names[user as usize % 8], user);
    let callee = format!(
        "{}{}",
        names[(rng.next_u32() % 8) as usize],
        rng.next_u32() % 1000
    );
    SipDialog {
        client,
        client_port,
        proxy,
        call_id: format!("{:016x}@example.com", rng.next_u64()),
        from_tag: format!("{:08x}", rng.next_u32()),
        to_tag: format!("{:08x}", rng.next_u32()),
        branch: format!("z9hG4bK{:010x}", rng.next_u64() & 0xff_ffff_ffff),
        caller,
        callee,
    }
}

/// Call length: exponential with mean `call_mean_s`, at least `call_min_s`.
pub(crate) fn call_length_s(rng: &mut dist::Rng, p: &VoipParams) -> f64 {
    dist::exp(rng, p.call_mean_s).max(p.call_min_s)
}

pub(crate) struct Voip {
    sid: u64,
    sip: u32,
    rtp: u32,
    rtcp: u32,
    cnames: [String; 2],
    dialog: SipDialog,
    owd_sip: u64,
    owd_media: u64,
    talkers: [Talker; 2],
    t: u64,
    media_start: u64,
    end: u64,
    started: bool,
    last: u64,
}

fn sip_msg(b: Vec<u8>) -> Payload {
    Payload::bytes(Rc::from(b))
}

impl Voip {
    pub fn new(u: &mut UserCtx, env: &Env, sid: u64, t: u64) -> Voip {
        let v6 = env.cfg.ipv6;
        let proxy = if v6 {
            server_ip(Pool::Voip, "sip.example.com", true)
        } else {
            Ip::V4([192, 0, 2, 10])
        };
        let media = server_ip(
            Pool::Voip,
            &format!("media{}.example.com", u.rng.next_u32() % 16),
            v6,
        );
        let sip_port = u.port();
        let sip = u.flow(Proto::Udp, sip_port, proxy, 5060, Class::Voip, "sip", sid);
        let rtp_c = u.rtp_port();
        let rtp_s = 20_000 + 2 * (u.rng.next_u32() % 5000) as u16;
        let rtp = u.flow(Proto::Udp, rtp_c, media, rtp_s, Class::Voip, "rtp", sid);
        let rtcp = u.flow(
            Proto::Udp,
            rtp_c + 1,
            media,
            rtp_s + 1,
            Class::Voip,
            "rtcp",
            sid,
        );
        let dialog = new_dialog(&mut u.rng, u.idx, u.ip, sip_port, proxy);
        let p = &env.cfg.voip;
        let call = call_length_s(&mut u.rng, p);
        let talkers = [
            Talker::new(&mut u.rng, t, p.on_mean_s, p.off_mean_s),
            Talker::new(&mut u.rng, t, p.on_mean_s, p.off_mean_s),
        ];
        let cnames = [
            format!("{}@{}", dialog.caller, u.ip),
            format!("{}@{}", dialog.callee, media),
        ];
        Voip {
            sid,
            sip,
            rtp,
            rtcp,
            cnames,
            dialog,
            owd_sip: rtt_to(env, &proxy) / 2,
            owd_media: rtt_to(env, &media) / 2,
            talkers,
            t,
            media_start: 0,
            end: t + ns(call),
            started: false,
            last: t,
        }
    }

    fn setup(&mut self, u: &mut UserCtx, env: &Env) {
        let t0 = self.t;
        let rtt = 2 * self.owd_sip;
        let (client, server) = {
            let f = u.out.flow(self.rtp);
            (f.client, f.server)
        };
        let offer = sdp(u.rng.next_u32() as u64, &client.ip, client.port);
        let answer = sdp(u.rng.next_u32() as u64, &server.ip, server.port);
        let d = &self.dialog;
        u.out
            .push(t0, self.sip, true, L4::Udp, sip_msg(d.invite(&offer)));
        let t_try = t0 + rtt + 500_000;
        u.out.push(
            t_try,
            self.sip,
            false,
            L4::Udp,
            sip_msg(d.response(100, "Trying", "1 INVITE", false, None)),
        );
        let t_ring = t_try + ns(0.02 + dist::exp(&mut u.rng, 0.05));
        u.out.push(
            t_ring,
            self.sip,
            false,
            L4::Udp,
            sip_msg(d.response(180, "Ringing", "1 INVITE", true, None)),
        );
        let t_ok = t_ring + ns(dist::uniform(&mut u.rng, 1.0, 6.0));
        u.out.push(
            t_ok,
            self.sip,
            false,
            L4::Udp,
            sip_msg(d.response(200, "OK", "1 INVITE", true, Some(&answer))),
        );
        let t_ack = t_ok + 300_000;
        u.out.push(t_ack, self.sip, true, L4::Udp, sip_msg(d.ack()));
        self.media_start = t_ack + 2_000_000;
        self.end =
            (self.end.max(self.media_start + 1)).min(env.end.max(self.media_start + STEP_NS));
        let on = env.cfg.voip.on_mean_s;
        let off = env.cfg.voip.off_mean_s;
        for tk in &mut self.talkers {
            *tk = Talker {
                seq: tk.seq,
                ts: tk.ts,
                ssrc: tk.ssrc,
                packets: 0,
                octets: 0,
                ..Talker::new(&mut u.rng, self.media_start, on, off)
            };
        }
        self.t = self.media_start;
        self.last = t_ack;
    }

    fn media(&mut self, u: &mut UserCtx, env: &Env, until: u64) {
        let p = &env.cfg.voip;
        for (d, tk) in self.talkers.iter_mut().enumerate() {
            let from_client = d == 0;
            while tk.next < until {
                let t = tk.next;
                tk.toggle(&mut u.rng, p, t);
                let cap = if from_client {
                    t
                } else {
                    t + self.owd_media + ns(dist::uniform(&mut u.rng, 0.0, p.jitter_s))
                };
                if let Some(b) = tk.rtcp(&mut u.rng, t, &self.cnames[d]) {
                    u.out.push(
                        cap,
                        self.rtcp,
                        from_client,
                        L4::Udp,
                        Payload::bytes(b.into()),
                    );
                }
                match tk.frame(&mut u.rng, p) {
                    Some(Frame::Rtp(h)) => {
                        let payload = Payload {
                            head: Some((Rc::from(&h[..]), 0, 12)),
                            fill: FillKind::Random,
                            salt: u.rng.next_u32(),
                            off: 0,
                            len: 160,
                            total: 160,
                        };
                        u.out.push(cap, self.rtp, from_client, L4::Udp, payload);
                        self.last = self.last.max(cap);
                    }
                    Some(Frame::Cn(b)) => {
                        u.out.push(
                            cap,
                            self.rtp,
                            from_client,
                            L4::Udp,
                            Payload::bytes(b.into()),
                        );
                        self.last = self.last.max(cap);
                    }
                    None => {}
                }
            }
        }
    }

    fn teardown(&mut self, u: &mut UserCtx) -> u64 {
        let t = self.end + 5_000_000;
        let rtt = 2 * self.owd_sip;
        let d = &self.dialog;
        u.out.push(t, self.sip, true, L4::Udp, sip_msg(d.bye()));
        let t_ok = t + rtt + 400_000;
        u.out.push(
            t_ok,
            self.sip,
            false,
            L4::Udp,
            sip_msg(d.response(200, "OK", "2 BYE", true, None)),
        );
        u.out.close_flow(self.sip);
        u.out.close_flow(self.rtp);
        u.out.close_flow(self.rtcp);
        let _ = self.sid;
        t_ok.max(self.last)
    }
}

impl Session for Voip {
    fn step(&mut self, u: &mut UserCtx, env: &Env) -> Step {
        if !self.started {
            self.started = true;
            self.setup(u, env);
            return Step::More(self.t);
        }
        if self.t >= self.end {
            return Step::Done(self.teardown(u));
        }
        let until = (self.t + STEP_NS).min(self.end);
        self.media(u, env, until);
        self.t = until;
        Step::More(self.t)
    }
}

/// Linux ping's 160-byte payload at `ts` (ns since the Unix epoch): struct
/// timeval (16 bytes, little-endian) then 0x10, 0x11, …
pub(crate) fn ping_payload(ts: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(160);
    b.extend_from_slice(&(ts / 1_000_000_000).to_le_bytes());
    b.extend_from_slice(&((ts % 1_000_000_000) / 1000).to_le_bytes());
    for i in 0..144u32 {
        b.push((0x10 + i) as u8);
    }
    b
}

/// The original system's VoIP stand-in: ping with 160 data bytes every
/// 20 ms (64 kbit/s), echoed by the far end.
pub(crate) struct IcmpVoip {
    flow: u32,
    id: u16,
    seq: u16,
    owd: u64,
    t: u64,
    end: u64,
    last: u64,
    jitter: f64,
}

impl IcmpVoip {
    pub fn new(u: &mut UserCtx, env: &Env, sid: u64, t: u64) -> IcmpVoip {
        let target = server_ip(
            Pool::Voip,
            &format!("echo{}.example.com", u.rng.next_u32() % 16),
            env.cfg.ipv6,
        );
        let id = u.next_icmp_id;
        u.next_icmp_id = u.next_icmp_id.wrapping_add(1);
        let flow = u.flow(
            Proto::Icmp,
            id,
            target,
            0,
            Class::VoipIcmp,
            "icmp-echo",
            sid,
        );
        let p = &env.cfg.voip;
        let call = call_length_s(&mut u.rng, p);
        IcmpVoip {
            flow,
            id,
            seq: 1,
            owd: rtt_to(env, &target) / 2,
            t,
            end: (t + ns(call)).min(env.end.max(t + STEP_NS)),
            last: t,
            jitter: p.jitter_s,
        }
    }

    fn payload(ts: u64) -> Rc<[u8]> {
        ping_payload(ts).into()
    }
}

impl Session for IcmpVoip {
    fn step(&mut self, u: &mut UserCtx, _env: &Env) -> Step {
        if self.t >= self.end {
            u.out.close_flow(self.flow);
            return Step::Done(self.last);
        }
        let until = (self.t + STEP_NS).min(self.end);
        while self.t < until {
            let data = Self::payload(self.t);
            let l4 = L4::Echo {
                reply: false,
                id: self.id,
                seq: self.seq,
            };
            u.out
                .push(self.t, self.flow, true, l4, Payload::bytes(data.clone()));
            let back =
                self.t + 2 * self.owd + 30_000 + ns(dist::uniform(&mut u.rng, 0.0, self.jitter));
            let l4 = L4::Echo {
                reply: true,
                id: self.id,
                seq: self.seq,
            };
            u.out.push(back, self.flow, false, l4, Payload::bytes(data));
            self.last = self.last.max(back);
            self.seq = self.seq.wrapping_add(1);
            self.t += PKT_NS;
        }
        Step::More(self.t)
    }
}
