//! The HTTP face of the live service (`trafficscope run`): a versioned JSON
//! API over the history and the live counters, Server-Sent Events of every
//! pipeline output as it closes, and Prometheus `/metrics`.
//!
//! The CLI builds an [`AppState`] (no async needed), checks the address
//! with [`check_listen`], then either awaits [`serve`] on its own runtime
//! or calls [`spawn`], which runs the server on a thread of its own and
//! hands back a [`ServerHandle`].
//!
//! Routes (all GET; with a token, each needs `Authorization: Bearer TOKEN`):
//! `/` (the dashboard, its files under `/assets/`, no token needed), `/api/v1/` (the index of endpoints and their
//! parameters), `/api/v1/{summary,health,extent,series,totals,windows,hurst,
//! flows,stream,pcap}` and `/metrics`; `/api/v1/` lists every parameter.

mod api;
mod assets;
mod auth;
mod ctx;
mod error;
mod hvsm;
pub mod isotime;
mod metrics;
mod overview;
mod params;
mod pcap;
mod rates;
mod sse;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of the dashboard's files, raw and gzip-compressed (a first visit).
pub use assets::weight as dashboard_weight;
use pipeline::{Output, Status};
use serde::Serialize;
use store::{History, StoreStats};
use tokio::sync::{broadcast, watch};

/// Everything the server reads. Cheap to clone (all shared); built by the
/// CLI before any runtime exists.
#[derive(Clone)]
pub struct AppState {
    /// The durable history (queries run on tokio's blocking pool).
    pub history: Arc<dyn History>,
    /// Live counters of the pipeline.
    pub status: Arc<Status>,
    /// Live counters of the store writer.
    pub store_stats: Arc<StoreStats>,
    /// Every output as the pipeline emits it; each SSE client subscribes.
    /// Its capacity bounds how far a slow client may fall behind.
    pub live: broadcast::Sender<Arc<Output>>,
    pub info: ServiceInfo,
    /// The packet ring of `run -w DIR`, read by `/api/v1/pcap`; `None`
    /// without `-w` (the endpoint then answers 404).
    pub pcap: Option<Arc<pcapring::Ring>>,
}

/// What the service is configured with, for clients: the `hello` event,
/// `/api/v1/summary`, and the defaults of queries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceInfo {
    /// The trafficscope version.
    pub version: String,
    /// The model's class names, in its order.
    pub classes: Vec<String>,
    /// Width of a bin (the finest tier), ns.
    pub bin_ns: u64,
    /// Width of an evaluation window, ns.
    pub window_ns: u64,
    pub hurst: HurstInfo,
    /// Where the store keeps its files; `None` when it has none on disk.
    pub data_dir: Option<PathBuf>,
}

/// Settings of the sliding Hurst estimates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HurstInfo {
    /// Width of the fine bins of the characterisation series, ns.
    pub fine_ns: u64,
    /// Fine bins per estimation window.
    pub window_bins: u64,
    /// Capture time between two points of one series, ns.
    pub step_ns: u64,
}

/// Refuses to expose the service beyond this machine without a token:
/// the history tells who talked to whom. Loopback (127.0.0.0/8, ::1, and
/// ::ffff:127.x) needs none. A given token must be usable in a header.
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
    if let Some(t) = token {
        auth::check_token(t)?;
        return Ok(());
    }
    if addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} without a token: anyone who can reach that address \
         could read the traffic history and live flows. Give a token with --token TOKEN or \
         --token-file FILE (clients then send `Authorization: Bearer TOKEN`), or listen on \
         a loopback address such as 127.0.0.1:PORT or [::1]:PORT"
    ))
}

/// Serves until `shutdown` completes, then stops gracefully: the listener
/// closes, SSE streams end, requests in flight finish. Fails at once if
/// [`check_listen`] refuses the listener's address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    check_listen(addr, token.as_deref())
        .map_err(|m| io::Error::new(io::ErrorKind::PermissionDenied, m))?;
    // SSE streams never end by themselves, and graceful shutdown waits for
    // every connection: the watch tells the streams to finish.
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Arc::new(ctx::Ctx::new(state, token.as_deref(), stop_rx));
    let sampler = tokio::spawn(rates::sample(ctx.clone()));
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let result = axum::serve(listener, api::router(ctx))
        .with_graceful_shutdown(signal)
        .await;
    sampler.abort();
    result
}

/// A server running on its own thread and runtime (from [`spawn`]).
/// Dropping it stops the server too.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl ServerHandle {
    /// The address bound (with the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops gracefully and waits for the server thread; its error, if it failed.
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the HTTP server thread panicked")),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Checks and binds `addr` here (so errors such as "address in use" come
/// back at once), then serves on a new thread with a 2-worker runtime.
pub fn spawn(addr: SocketAddr, state: AppState, token: Option<String>) -> io::Result<ServerHandle> {
    check_listen(addr, token.as_deref())
        .map_err(|m| io::Error::new(io::ErrorKind::PermissionDenied, m))?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ts-http")
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ts-http-main".into())
        .spawn(move || {
            let r = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                // A dropped sender (handle dropped) stops the server too.
                serve(listener, state, token, async move {
                    let _ = stop_rx.await;
                })
                .await
            });
            // Store queries on the blocking pool may still run; give them a
            // moment rather than hang the caller on a stuck disk.
            rt.shutdown_timeout(Duration::from_secs(5));
            r
        })?;
    Ok(ServerHandle {
        addr: bound,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
