//! Per-user packet queue and flow table.
//!
//! A session model pushes packet descriptors (not bytes) in any order, with
//! the promise that everything it pushes later is no earlier than its
//! current *horizon*. The driver releases queued packets up to the horizon,
//! merging all users by timestamp; bytes are rendered only when written.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::wire::{Endpoint, Payload, L4};
use crate::Class;

/// Transport protocol of a flow, as written in the labels file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Icmp => "ICMP",
        }
    }
}

/// One flow (5-tuple) and its ground truth.
#[derive(Debug)]
pub(crate) struct Flow {
    pub proto: Proto,
    pub client: Endpoint,
    pub server: Endpoint,
    pub class: Class,
    pub app: &'static str,
    pub session: u64,
    pub user: u32,
    /// IP TTL/hop limit seen on server-to-client packets.
    pub server_ttl: u8,
    pub ip_id: [u16; 2],
    pub flow_label: [u32; 2],
    pub first: u64,
    pub last: u64,
    pub queued: u32,
    pub closed: bool,
    pub seen: bool,
}

/// A queued packet.
#[derive(Debug)]
pub(crate) struct Pkt {
    pub ts: u64,
    pub flow: u32,
    pub from_client: bool,
    pub l4: L4,
    pub payload: Payload,
}

struct Queued {
    ts: u64,
    ctr: u64,
    pkt: Pkt,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.ts == o.ts && self.ctr == o.ctr
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (ts, ctr).
        (o.ts, o.ctr).cmp(&(self.ts, self.ctr))
    }
}

/// Packet queue and flow slab of one user.
pub(crate) struct Out {
    heap: BinaryHeap<Queued>,
    ctr: u64,
    pub flows: Vec<Option<Flow>>,
    free: Vec<u32>,
    /// Lower bound of every timestamp pushed from now on.
    pub horizon: u64,
}

impl Out {
    pub fn new() -> Self {
        Out {
            heap: BinaryHeap::new(),
            ctr: 0,
            flows: Vec::new(),
            free: Vec::new(),
            horizon: 0,
        }
    }

    pub fn add_flow(&mut self, f: Flow) -> u32 {
        if let Some(i) = self.free.pop() {
            self.flows[i as usize] = Some(f);
            i
        } else {
            self.flows.push(Some(f));
            (self.flows.len() - 1) as u32
        }
    }

    pub fn flow(&self, id: u32) -> &Flow {
        self.flows[id as usize].as_ref().expect("live flow")
    }

    pub fn flow_mut(&mut self, id: u32) -> &mut Flow {
        self.flows[id as usize].as_mut().expect("live flow")
    }

    /// Marks a flow finished: its label row is written once its last
    /// queued packet has been written.
    pub fn close_flow(&mut self, id: u32) {
        self.flow_mut(id).closed = true;
    }

    pub fn push(&mut self, ts: u64, flow: u32, from_client: bool, l4: L4, payload: Payload) {
        debug_assert!(
            ts >= self.horizon,
            "packet at {ts} before horizon {}",
            self.horizon
        );
        self.flow_mut(flow).queued += 1;
        self.ctr += 1;
        self.heap.push(Queued {
            ts,
            ctr: self.ctr,
            pkt: Pkt {
                ts,
                flow,
                from_client,
                l4,
                payload,
            },
        });
    }

    pub fn peek_ts(&self) -> Option<u64> {
        self.heap.peek().map(|q| q.ts)
    }

    pub fn pop(&mut self) -> Option<Pkt> {
        self.heap.pop().map(|q| q.pkt)
    }

    /// Takes a finished flow out of the slab once its last packet is out.
    pub fn take_if_done(&mut self, id: u32) -> Option<Flow> {
        let f = self.flows[id as usize].as_ref()?;
        if f.closed && f.queued == 0 {
            self.free.push(id);
            self.flows[id as usize].take()
        } else {
            None
        }
    }

    /// Flows that are still open (used at the end to flush labels).
    pub fn drain_flows(&mut self) -> Vec<Flow> {
        let mut v: Vec<Flow> = self.flows.iter_mut().filter_map(|f| f.take()).collect();
        v.sort_by_key(|f| f.first);
        v
    }
}
