//! `/api/v1/stream`: every pipeline output as a Server-Sent Event, named by
//! its kind (`bin`, `window`, `hurst`, `flow`), after a `hello` carrying the
//! service's settings. Each client reads the broadcast through its own
//! receiver: one that falls further behind than the channel holds gets a
//! `lagged` event with the count it missed, never an unbounded buffer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use pipeline::Output;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::ctx::Shared;
use crate::error::ApiError;
use crate::params::{clip, Query};

/// Parameters of the stream (`token`: see the auth module).
pub const PARAMS: &[&str] = &["kinds", "token"];

const KINDS: [&str; 4] = ["bin", "window", "hurst", "flow"];

/// Comments this often keep proxies and browsers from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What `EventSource` waits before reconnecting after a drop.
const RETRY: Duration = Duration::from_secs(2);
/// The longest a `hello` waits for the store to commit what was published
/// before the stream began.
const HELLO_WAIT: Duration = Duration::from_secs(3);
/// Streams at once: each holds a receiver and a connection; a client that
/// opens streams in a loop gets 503 rather than the server's memory.
pub const MAX_STREAMS: usize = 64;

/// A place among the [`MAX_STREAMS`], given back when the stream is dropped
/// (the client left, or the server stops).
struct Slot(Shared);

impl Slot {
    fn take(ctx: &Shared) -> Option<Slot> {
        let n = ctx.streams.fetch_add(1, Ordering::AcqRel);
        if n >= MAX_STREAMS {
            ctx.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(ctx.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

fn kind_index(out: &Output) -> usize {
    match out {
        Output::Bin(_) => 0,
        Output::Window(_) => 1,
        Output::Hurst(_) => 2,
        Output::Flow(_) => 3,
    }
}

/// `kinds=bin,window` → which of [`KINDS`] the client wants (all by default).
fn parse_kinds(q: &Query) -> Result<[bool; 4], ApiError> {
    let Some(v) = q.get("kinds") else {
        return Ok([true; 4]);
    };
    let mut want = [false; 4];
    for k in v.split(',').map(str::trim) {
        let i = KINDS.iter().position(|n| *n == k).ok_or_else(|| {
            ApiError::param(
                "kinds",
                format!("unknown kind `{}`", clip(k)),
                "a comma-separated list of bin, window, hurst, flow",
            )
        })?;
        want[i] = true;
    }
    Ok(want)
}

struct Client {
    _slot: Slot,
    ctx: Shared,
    /// Bins the pipeline had published when this client subscribed.
    published: u64,
    rx: broadcast::Receiver<Arc<Output>>,
    stop: watch::Receiver<bool>,
    want: [bool; 4],
    hello: Option<Event>,
}

enum Next {
    Out(Arc<Output>),
    Lagged(u64),
    End,
}

impl Client {
    /// Bins that went out before this client subscribed reach it only
    /// through the store: the `hello` (after which a client queries) waits
    /// until the store has committed them, so that a bin is never in
    /// neither the answer nor the stream. The store commits within a
    /// second; a failing store is not waited for beyond [`HELLO_WAIT`].
    async fn wait_for_store(&mut self) {
        let st = &self.ctx.app.store_stats;
        let deadline = tokio::time::Instant::now() + HELLO_WAIT;
        while st.bins_written.load(Ordering::Relaxed) < self.published
            && !st.failing.load(Ordering::Relaxed)
            && tokio::time::Instant::now() < deadline
            && !*self.stop.borrow()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn next_event(&mut self) -> Option<Event> {
        if let Some(h) = self.hello.take() {
            self.wait_for_store().await;
            return Some(h);
        }
        loop {
            let next = tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(out) => Next::Out(out),
                    Err(broadcast::error::RecvError::Lagged(n)) => Next::Lagged(n),
                    Err(broadcast::error::RecvError::Closed) => Next::End,
                },
                // Server shutting down (or gone): end the stream so graceful
                // shutdown need not wait for the client to leave.
                _ = self.stop.wait_for(|s| *s) => Next::End,
            };
            match next {
                Next::Out(out) if self.want[kind_index(&out)] => {
                    let data = serde_json::to_string(&*out).unwrap_or_else(|e| {
                        json!({"error": format!("cannot encode: {e}")}).to_string()
                    });
                    return Some(Event::default().event(KINDS[kind_index(&out)]).data(data));
                }
                Next::Out(_) => continue,
                Next::Lagged(n) => {
                    return Some(
                        Event::default()
                            .event("lagged")
                            .data(json!({"missed": n}).to_string()),
                    )
                }
                Next::End => return None,
            }
        }
    }
}

pub async fn stream(
    State(ctx): State<Shared>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), PARAMS)?;
    let want = parse_kinds(&q)?;
    let kinds: Vec<&str> = KINDS
        .iter()
        .zip(want)
        .filter_map(|(k, w)| w.then_some(*k))
        .collect();
    let hello = Event::default()
        .event("hello")
        .retry(RETRY)
        .data(json!({"info": ctx.app.info, "kinds": kinds}).to_string());
    let slot = Slot::take(&ctx).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many live streams ({MAX_STREAMS}): close one and retry"),
        )
    })?;
    // Subscribe first, then read what was published: a bin counted after
    // this read is broadcast after the subscription, so the stream has it.
    let rx = ctx.app.live.subscribe();
    let published = ctx.app.status.bins_published.load(Ordering::SeqCst);
    let client = Client {
        _slot: slot,
        ctx: ctx.clone(),
        published,
        rx,
        stop: ctx.stop.clone(),
        want,
        hello: Some(hello),
    };
    let events = futures_util::stream::unfold(client, |mut c| async move {
        let e = c.next_event().await?;
        Some((Ok::<_, std::convert::Infallible>(e), c))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}
