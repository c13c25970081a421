//! A flow record built from the first packets of a flow, so that flows can
//! be classified before they end (early / streaming classification) and
//! prefix examples can be added to training sets.

use std::net::IpAddr;

use flow::{AppInfo, DirStats, EndReason, FlowRecord, Running};

#[derive(Debug, Clone, Default)]
struct Dir {
    packets: u64,
    bytes: u64,
    ip_bytes: u64,
    payload_bytes: u64,
    size: Running,
    iat: Running,
    last_ns: Option<u64>,
    flags: [u32; 8],
}

impl Dir {
    fn stats(&self) -> DirStats {
        DirStats {
            packets: self.packets,
            bytes: self.bytes,
            ip_bytes: self.ip_bytes,
            payload_bytes: self.payload_bytes,
            size: self.size.summary(),
            iat_us: self.iat.summary(),
            tcp_flags: self.flags,
        }
    }
}

/// Accumulates one flow's packets (both directions) into a [`FlowRecord`].
#[derive(Debug, Clone)]
pub struct FlowBuilder {
    id: u64,
    start_ns: u64,
    end_ns: u64,
    protocol: u8,
    ip_version: u8,
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
    fwd: Dir,
    bwd: Dir,
    first_sizes: Vec<u32>,
    first_dirs: Vec<i8>,
    first_iats_us: Vec<f64>,
    last_ns: u64,
    app: AppInfo,
    inspected: u8,
    first_n: usize,
}

impl FlowBuilder {
    /// Starts a flow from its first packet seen. `forward` says whether this
    /// packet travels initiator → responder (from [`flow::Placement`]).
    pub fn new(flow_id: u64, pkt: &decode::Packet<'_>, forward: bool, ts_ns: u64) -> Option<Self> {
        let ip = pkt.ip?;
        let (sp, dp) = pkt.ports().unwrap_or((0, 0));
        let ((src, src_port), (dst, dst_port)) = if forward {
            ((ip.src, sp), (ip.dst, dp))
        } else {
            ((ip.dst, dp), (ip.src, sp))
        };
        let (lo, hi) = (src_port, dst_port);
        Some(FlowBuilder {
            id: flow_id,
            start_ns: ts_ns,
            end_ns: ts_ns,
            protocol: ip.protocol,
            ip_version: ip.version,
            src,
            src_port,
            dst,
            dst_port,
            fwd: Dir::default(),
            bwd: Dir::default(),
            first_sizes: Vec::new(),
            first_dirs: Vec::new(),
            first_iats_us: Vec::new(),
            last_ns: ts_ns,
            app: AppInfo {
                service: decode::service::for_ports(ip.protocol, lo, hi),
                ..Default::default()
            },
            inspected: 0,
            first_n: 32,
        })
    }

    pub fn packets(&self) -> u64 {
        self.fwd.packets + self.bwd.packets
    }

    /// Five-tuple of the flow: protocol, initiator, responder.
    pub fn tuple(&self) -> (u8, IpAddr, u16, IpAddr, u16) {
        (
            self.protocol,
            self.src,
            self.src_port,
            self.dst,
            self.dst_port,
        )
    }

    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    pub fn push(&mut self, pkt: &decode::Packet<'_>, forward: bool, ts_ns: u64, wire_len: u32) {
        let d = if forward {
            &mut self.fwd
        } else {
            &mut self.bwd
        };
        d.packets += 1;
        d.bytes += wire_len as u64;
        d.ip_bytes += pkt.ip.map(|i| i.total_len as u64).unwrap_or(0);
        d.payload_bytes += pkt.payload_len as u64;
        d.size.push(wire_len as f64);
        if let Some(last) = d.last_ns {
            d.iat.push(ts_ns.saturating_sub(last) as f64 / 1e3);
        }
        d.last_ns = Some(ts_ns);
        if let Some(t) = pkt.tcp() {
            for (i, c) in d.flags.iter_mut().enumerate() {
                if t.flags & (1 << i) != 0 {
                    *c += 1;
                }
            }
        }
        if self.first_sizes.len() < self.first_n {
            let iat = if self.first_sizes.is_empty() {
                0.0
            } else {
                ts_ns.saturating_sub(self.last_ns) as f64 / 1e3
            };
            self.first_sizes.push(wire_len);
            self.first_dirs.push(if forward { 1 } else { -1 });
            self.first_iats_us.push(iat);
        }
        self.last_ns = self.last_ns.max(ts_ns);
        self.end_ns = self.end_ns.max(ts_ns);
        if pkt.payload_len > 0 && self.inspected < 8 {
            self.inspected += 1;
            if let Some(h) = decode::app::inspect(pkt) {
                self.app.merge(&h);
            }
        }
    }

    /// The flow so far as a record (end reason `EndOfInput`).
    pub fn snapshot(&self) -> FlowRecord {
        FlowRecord {
            id: self.id,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            protocol: self.protocol,
            ip_version: self.ip_version,
            src: self.src,
            src_port: self.src_port,
            dst: self.dst,
            dst_port: self.dst_port,
            vlan: 0,
            tunnel: None,
            fwd: self.fwd.stats(),
            bwd: self.bwd.stats(),
            fragments: 0,
            first_sizes: self.first_sizes.clone(),
            first_dirs: self.first_dirs.clone(),
            first_iats_us: self.first_iats_us.clone(),
            app: self.app.clone(),
            end_reason: EndReason::EndOfInput,
        }
    }
}
