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
    async fn next_event(&mut self) -> Option<Event> {
        if let Some(h) = self.hello.take() {
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
    let client = Client {
        _slot: slot,
        rx: ctx.app.live.subscribe(),
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
