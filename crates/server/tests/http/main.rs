//! The server over real loopback sockets: a fake history that sums what it
//! holds, live counters set by each test, and a raw HTTP client.

mod auth;
mod bad;
mod client;
mod fake;
mod good;
mod metrics;
mod stream;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use pipeline::{Dim, Output, Status};
use server::{AppState, HurstInfo, ServerHandle, ServiceInfo};
use store::StoreStats;
use tokio::sync::broadcast;

pub use client::{get, request, Resp, Sse};
pub use fake::*;

pub struct TestServer {
    pub handle: ServerHandle,
    pub fake: Arc<Fake>,
    pub status: Arc<Status>,
    pub stats: Arc<StoreStats>,
    pub live: broadcast::Sender<Arc<Output>>,
}

impl TestServer {
    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    pub fn get(&self, target: &str) -> Resp {
        get(self.addr(), target)
    }
}

pub fn info() -> ServiceInfo {
    ServiceInfo {
        version: "0.1.0-test".into(),
        classes: vec!["web".into(), "video".into(), "voip".into()],
        bin_ns: S,
        window_ns: WINDOW,
        hurst: HurstInfo {
            fine_ns: S / 10,
            window_bins: 10,
            step_ns: S,
        },
        data_dir: Some("/tmp/trafficscope-test".into()),
    }
}

/// Counters as a running pipeline would have them; the newest packet just
/// before the end of the last bin, so "now" is the history's end.
pub fn status() -> Status {
    let s = Status::new("file test.pcap");
    s.packets.store(12_345, Relaxed);
    s.bytes.store(6_789_000, Relaxed);
    s.malformed.store(2, Relaxed);
    s.last_packet_ns.store(T0 + NBINS * S - S / 2, Relaxed);
    s.drops_kernel.store(3, Relaxed);
    s.drops_queue.store(4, Relaxed);
    s.drops_flows_to.store(6, Relaxed);
    s.queue_len.store(25, Relaxed);
    s.queue_capacity.store(100, Relaxed);
    s.open_flows.store(17, Relaxed);
    s.flows_ended.store(40, Relaxed);
    s.bins.store(590, Relaxed);
    {
        let mut t = s.totals.lock().unwrap();
        t.insert((Dim::Class, "web".into()), (100, 10_000));
        t.insert((Dim::Class, "video".into()), (20, 20_000));
        t.insert((Dim::Protocol, "TCP".into()), (100, 10_000));
        t.insert((Dim::Service, "odd \"name\"\\x".into()), (1, 2));
    }
    s.flows_by_class.lock().unwrap().insert("web".into(), 7);
    s.flows_by_class.lock().unwrap().insert("video".into(), 3);
    s
}

pub fn start(token: Option<&str>, capacity: usize) -> TestServer {
    let fake = Arc::new(Fake::new());
    let status = Arc::new(status());
    let stats = Arc::new(StoreStats::default());
    stats.drops.store(5, Relaxed);
    stats.size_bytes.store(123_456, Relaxed);
    stats.commit_lag_ns.store(250_000_000, Relaxed);
    let (live, _) = broadcast::channel(capacity);
    let state = AppState {
        history: fake.clone(),
        status: status.clone(),
        store_stats: stats.clone(),
        live: live.clone(),
        info: info(),
        pcap: None,
    };
    let handle = server::spawn(
        "127.0.0.1:0".parse().unwrap(),
        state,
        token.map(String::from),
    )
    .expect("server starts");
    TestServer {
        handle,
        fake,
        status,
        stats,
        live,
    }
}
