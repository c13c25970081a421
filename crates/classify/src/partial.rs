//! A flow record built from the first packets of a flow, so that flows can
//! be classified before they end (early / streaming classification) and
//! prefix examples can be added to training sets.

use std::net::IpAddr;

use flow::{AppInfo, DirAccumulator, EndReason, FlowRecord, QuicClientHello};

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
    fwd: DirAccumulator,
    bwd: DirAccumulator,
    first_sizes: Vec<u32>,
    first_dirs: Vec<i8>,
    first_iats_us: Vec<f64>,
    last_ns: u64,
    app: AppInfo,
    inspected: u8,
    quic: QuicClientHello,
    first_n: usize,
}

impl FlowBuilder {
    /// The first application protocol recognised in the payload so far.
    pub fn detected_app(&self) -> Option<&'static str> {
        self.app.detected
    }

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
            fwd: DirAccumulator::default(),
            bwd: DirAccumulator::default(),
            first_sizes: Vec::new(),
            first_dirs: Vec::new(),
            first_iats_us: Vec::new(),
            last_ns: ts_ns,
            app: AppInfo {
                service: decode::service::for_ports(ip.protocol, lo, hi),
                ..Default::default()
            },
            inspected: 0,
            quic: QuicClientHello::default(),
            first_n: 32,
        })
    }

    pub fn packets(&self) -> u64 {
        self.fwd.packets() + self.bwd.packets()
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
        d.push(pkt, ts_ns, wire_len);
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
        self.quic.observe(pkt, forward, &mut self.app);
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
            fwd: self.fwd.summary(),
            bwd: self.bwd.summary(),
            fragments: 0,
            first_sizes: self.first_sizes.clone(),
            first_dirs: self.first_dirs.clone(),
            first_iats_us: self.first_iats_us.clone(),
            app: self.app.clone(),
            end_reason: EndReason::EndOfInput,
        }
    }
}
