//! The state behind every handler of one running server: the caller's
//! [`AppState`] plus what serving adds (the token, the rate ring, the
//! shutdown signal, a bound on concurrent store queries), and the two
//! things most handlers need from it: a store query off the async threads,
//! and "now".

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use store::{Extent, History, StoreError};
use tokio::sync::{watch, Semaphore};

use crate::auth::TokenHash;
use crate::error::ApiError;
use crate::rates::Ring;
use crate::AppState;

/// Store queries at once: SQLite readers are cheap but not free, and
/// tokio's blocking pool would otherwise grow to hundreds of threads under
/// a burst of requests.
const QUERY_SLOTS: usize = 4;
/// A query that takes longer is reported as a store failure (503) rather
/// than holding the client forever.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Ctx {
    pub app: AppState,
    pub token: Option<TokenHash>,
    pub rates: Mutex<Ring>,
    pub stop: watch::Receiver<bool>,
    /// Live SSE streams now (bounded by the stream module).
    pub streams: AtomicUsize,
    slots: Semaphore,
}

pub type Shared = Arc<Ctx>;

impl Ctx {
    pub fn new(app: AppState, token: Option<&str>, stop: watch::Receiver<bool>) -> Ctx {
        Ctx {
            app,
            token: token.map(TokenHash::new),
            rates: Mutex::new(Ring::default()),
            stop,
            streams: AtomicUsize::new(0),
            slots: Semaphore::new(QUERY_SLOTS),
        }
    }

    /// Runs `f` against the history on the blocking pool.
    pub async fn ask<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn History) -> Result<T, StoreError> + Send + 'static,
    {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
        let history = self.app.history.clone();
        let job = tokio::task::spawn_blocking(move || f(&*history));
        match tokio::time::timeout(QUERY_TIMEOUT, job).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(ApiError::store(e)),
            Ok(Err(join)) => Err(ApiError::store(format!("the query failed: {join}"))),
            Err(_) => Err(ApiError::store(format!(
                "no answer within {} s",
                QUERY_TIMEOUT.as_secs()
            ))),
        }
    }

    pub async fn extent(&self) -> Result<Extent, ApiError> {
        self.ask(|h| h.extent()).await
    }

    /// "Now" for relative times: the newest capture time known, from the
    /// live counters or the history (a replayed file's time, not the wall
    /// clock); the wall clock only when there is no data at all.
    pub fn now_ns(&self, extent: Option<&Extent>) -> u64 {
        let live = self
            .app
            .status
            .last_packet_ns
            .load(std::sync::atomic::Ordering::Relaxed);
        let held = extent.and_then(|e| e.last_ns).unwrap_or(0);
        match live.max(held) {
            0 => pipeline::unix_now_ns(),
            n => n,
        }
    }

    /// Resolves `from`/`to`, asking the history for "now" only when needed.
    /// Also returns the extent when it was fetched, for callers that need it.
    pub async fn range(
        &self,
        spec: crate::params::RangeSpec,
        default_span: u64,
        want_extent: bool,
    ) -> Result<((u64, u64), Option<Extent>), ApiError> {
        let extent = if want_extent || spec.needs_now() {
            Some(self.extent().await?)
        } else {
            None
        };
        let range = spec.resolve(self.now_ns(extent.as_ref()), default_span)?;
        Ok((range, extent))
    }
}
