//! The routes, and the endpoints answered from the history: series,
//! totals, windows, hurst, flows, extent. Each validates every parameter
//! before the store is asked, so a bad request costs no query and always
//! gets a JSON 400 naming the parameter.

use std::net::IpAddr;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::{middleware, Router};
use pipeline::{Dim, EvalWindow, HurstPoint, SeriesName};
use serde_json::{json, Value};
use store::{Extent, FlowQuery, FlowSort, Metric, SeriesQuery, TierExtent};

use crate::ctx::Shared;
use crate::error::{json_response, ApiError};
use crate::isotime::{format_duration, format_iso};
use crate::params::{clip, Query, DURATION_ACCEPTED};
use crate::{assets, auth, metrics, overview, pcap, sse};

/// Range used when `from` is absent: this far back from `to`.
const DEFAULT_SPAN_NS: u64 = 3_600_000_000_000;
/// Most points a series may have, windows or Hurst points a listing.
const MAX_POINTS: u64 = 10_000;
/// Points aimed at when `step` is absent (a chart's width, roughly).
const AUTO_POINTS: u64 = 1_000;
const MAX_FLOWS: u64 = 1_000;
const MAX_OFFSET: u64 = 1_000_000;
const MAX_TOP: u64 = 100;

const SERIES_PARAMS: &[&str] = &[
    "metric",
    "by",
    "from",
    "to",
    "step",
    "top",
    "class",
    "protocol",
    "app",
    "direction",
];
const TOTALS_PARAMS: &[&str] = &["from", "to", "class", "protocol", "app", "direction"];
/// Filters of series and totals: packets whose class, protocol, app and
/// direction match (from the bins' cross dimension).
const FILTERS: [(&str, Dim); 4] = [
    ("class", Dim::Class),
    ("protocol", Dim::Protocol),
    ("app", Dim::App),
    ("direction", Dim::Direction),
];
const WINDOW_PARAMS: &[&str] = &["from", "to", "step"];
const HURST_PARAMS: &[&str] = &["series", "from", "to", "step"];
const FLOW_PARAMS: &[&str] = &[
    "from", "to", "class", "app", "addr", "port", "sort", "order", "limit", "offset",
];

/// Every endpoint, its parameters and what it answers: `/api/v1/`.
const ENDPOINTS: &[(&str, &[&str], &str)] = &[
    ("/api/v1/summary", &[], "totals since start, rates over the last 10 s (wall clock), drops, queue, store state, classes"),
    ("/api/v1/health", &[], "ok or degraded, with reasons"),
    ("/api/v1/extent", &[], "what the history holds: first and last time, tiers, size"),
    ("/api/v1/series", SERIES_PARAMS, "metric (packets, bytes, flows_started, flows_ended: the total then per end reason, flows_active, fine_bytes) by a dimension at a step; packets and bytes filtered by class, protocol, app, direction"),
    ("/api/v1/totals", TOTALS_PARAMS, "packets, bytes and flows over a range, by every dimension; with a filter (class, protocol, app, direction), packets and bytes of the matching packets by class, protocol, app and direction"),
    ("/api/v1/windows", WINDOW_PARAMS, "evaluation windows (hits, misses, accuracy) over a range; with `step` (a multiple of the window), summed per step"),
    ("/api/v1/hurst", HURST_PARAMS, "sliding Hurst estimates of one series (total, tcp, udp); with `step`, the newest estimate of each step"),
    ("/api/v1/hurst/hvsm", crate::hvsm::PARAMS, "Local Whittle H against the number of frequencies M, for the estimation window ending at `end` (default: the newest estimate)"),
    ("/api/v1/flows", FLOW_PARAMS, "finished flows overlapping a range, filtered, sorted, paged"),
    ("/api/v1/pcap", pcap::PARAMS, pcap::ANSWERS),
    ("/api/v1/stream", sse::PARAMS, "Server-Sent Events: hello, then bin, window, hurst, flow as they close; lagged when a client falls behind"),
    ("/metrics", &[], "Prometheus text format"),
];

pub fn router(ctx: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/assets/{*path}", get(page))
        .route("/api/v1/hurst/hvsm", get(crate::hvsm::hvsm))
        .route("/api/v1", get(index))
        .route("/api/v1/", get(index))
        .route("/api/v1/summary", get(overview::summary))
        .route("/api/v1/health", get(overview::health))
        .route("/api/v1/extent", get(extent))
        .route("/api/v1/series", get(series))
        .route("/api/v1/totals", get(totals))
        .route("/api/v1/windows", get(windows))
        .route("/api/v1/hurst", get(hurst))
        .route("/api/v1/flows", get(flows))
        .route("/api/v1/pcap", get(pcap::download))
        .route(auth::STREAM_PATH, get(sse::stream))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Outermost, so it guards the fallbacks too: without the token,
        // not even which paths exist is told.
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_token,
        ))
        .layer(middleware::from_fn(assets::security_headers))
        .with_state(ctx)
}

fn ok(body: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

/// The dashboard's files. Query strings are the page's own state (range,
/// filters), read by its script, so they are not checked here.
async fn page(uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    assets::serve(uri.path(), &headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such file `{}` in the dashboard", clip(uri.path())),
        )
    })
}

async fn index(RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &[])?;
    let endpoints: Vec<Value> = ENDPOINTS
        .iter()
        .map(|(path, params, what)| json!({"path": path, "parameters": params, "answers": what}))
        .collect();
    ok(&json!({
        "version": "v1",
        "endpoints": endpoints,
        "times": crate::params::TIME_ACCEPTED,
        "durations": DURATION_ACCEPTED,
        "ranges": "[from, to); to defaults to now, from to one hour before to; empty values count as absent",
    }))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such path `{}`: see /api/v1/ for the endpoints",
            clip(uri.path())
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on `{}`: use GET", clip(uri.path())),
    )
}

/// `[from, to)` as ISO strings and ns, for every answer over a range.
fn range_json(from: u64, to: u64) -> Value {
    json!({"from": format_iso(from), "from_ns": from, "to": format_iso(to), "to_ns": to})
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn opt_iso(ns: Option<u64>) -> Value {
    ns.map_or(Value::Null, |n| Value::String(format_iso(n)))
}

async fn extent(State(ctx): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &[])?;
    let e = ctx.extent().await?;
    let tiers: Vec<Value> = e
        .tiers
        .iter()
        .map(|t| {
            json!({
                "width": format_duration(t.width_ns), "width_ns": t.width_ns,
                "first": opt_iso(t.first_ns), "first_ns": t.first_ns,
                "last": opt_iso(t.last_ns), "last_ns": t.last_ns,
                "retention": format_duration(t.retention_ns), "retention_ns": t.retention_ns,
            })
        })
        .collect();
    ok(&json!({
        "first": opt_iso(e.first_ns), "first_ns": e.first_ns,
        "last": opt_iso(e.last_ns), "last_ns": e.last_ns,
        "tiers": tiers,
        "size_bytes": e.size_bytes,
    }))
}

/// The tier a series from `from` must be read at: the finest holding data
/// back to `from`, or back as far as every coarser tier does (to within one
/// of its bins: a minute row rolled up from seconds starts at the minute,
/// before the first second it holds); else the one reaching furthest back
/// (finest on a tie); else the bin width.
fn tier_for(e: &Extent, from: u64, bin_ns: u64) -> u64 {
    let finest = e.tiers.first().map_or(bin_ns, |t| t.width_ns);
    let held: Vec<&TierExtent> = e.tiers.iter().filter(|t| t.first_ns.is_some()).collect();
    let covers = |i: usize| {
        let first = held[i].first_ns.unwrap_or(u64::MAX);
        first <= from
            || held[i + 1..]
                .iter()
                .all(|c| first < c.first_ns.unwrap_or(u64::MAX).saturating_add(c.width_ns))
    };
    (0..held.len())
        .find(|&i| covers(i))
        .map(|i| held[i])
        .or_else(|| held.iter().copied().min_by_key(|t| t.first_ns))
        .map_or(finest, |t| t.width_ns)
        .max(1)
}

/// Steps over `[from, to)` once both ends are widened to whole steps.
fn points(from: u64, to: u64, step: u64) -> u64 {
    let (f, t, s) = (from as u128, to as u128, step as u128);
    (t.div_ceil(s) - f / s) as u64
}

/// The smallest multiple of `width` giving at most `max` points.
fn min_step(from: u64, to: u64, width: u64, max: u64) -> u64 {
    let span = to - from;
    let mut s = span
        .div_ceil(max)
        .div_ceil(width)
        .saturating_mul(width)
        .max(width);
    for _ in 0..1000 {
        if points(from, to, s) <= max {
            return s;
        }
        s = s.saturating_add(width);
    }
    // Always enough: fewer than span/s + 2 steps.
    span.div_ceil(max.saturating_sub(2).max(1))
        .div_ceil(width)
        .saturating_mul(width)
}

/// `step` when absent: the first round step (a multiple of the tier) that
/// gives at most [`AUTO_POINTS`].
fn auto_step(from: u64, to: u64, width: u64) -> u64 {
    const S: u64 = 1_000_000_000;
    [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400,
        604_800,
    ]
    .iter()
    .map(|s| s * S)
    .filter(|s| *s >= width && s % width == 0)
    .find(|s| points(from, to, *s) <= AUTO_POINTS)
    .unwrap_or_else(|| min_step(from, to, width, AUTO_POINTS))
}

/// `class=web&protocol=TCP`… → the store's filter.
fn filters(q: &Query) -> Result<Vec<(Dim, String)>, ApiError> {
    let mut out = Vec::new();
    for (name, dim) in FILTERS {
        if let Some(v) = q.get(name) {
            if v.len() > 100 || v.contains('|') {
                return Err(ApiError::param(
                    name,
                    format!("`{}` is not a {name} name", clip(v)),
                    "a key as the API lists it (at most 100 characters, no `|`)",
                ));
            }
            out.push((dim, v.to_string()));
        }
    }
    Ok(out)
}

async fn series(State(ctx): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), SERIES_PARAMS)?;
    let metrics: Vec<(&str, Metric)> = Metric::ALL.iter().map(|m| (m.as_str(), *m)).collect();
    let metric = q
        .choice("metric", &metrics, Some(Metric::Packets))?
        .unwrap_or(Metric::Packets);
    let dims: Vec<(&str, Dim)> = Dim::ALL.iter().map(|d| (d.as_str(), *d)).collect();
    let dim = q.choice("by", &dims, None)?;
    if dim.is_some() && !matches!(metric, Metric::Packets | Metric::Bytes) {
        return Err(ApiError::param(
            "by",
            format!("{} is kept as a total only", metric.as_str()),
            "`by` only with metric=packets or metric=bytes",
        ));
    }
    let top = q.uint("top", 1, MAX_TOP, 10)? as usize;
    let filter = filters(&q)?;
    if let Some((f, _)) = filter.first() {
        if !matches!(metric, Metric::Packets | Metric::Bytes) {
            return Err(ApiError::param(
                f.as_str(),
                format!("{} is not kept per {}", metric.as_str(), f.as_str()),
                "a filter only with metric=packets or metric=bytes",
            ));
        }
        if let Some(by) = dim.filter(|d| !pipeline::CROSS_PARTS.contains(d)) {
            return Err(ApiError::param(
                "by",
                format!("{} is not kept per {}", by.as_str(), f.as_str()),
                "with a filter, by=class, protocol, app or direction",
            ));
        }
    }
    let step = q.duration("step")?;
    let ((from, to), extent) = ctx.range(q.range()?, DEFAULT_SPAN_NS, true).await?;
    let mut width = tier_for(&extent.unwrap_or_default(), from, ctx.app.info.bin_ns);
    // The 0.1 s series has its own finer tier.
    let fine = ctx.app.info.hurst.fine_ns.max(1);
    if metric == Metric::FineBytes && step.is_some_and(|s| s % width != 0 && s % fine == 0) {
        width = fine;
    }
    let step = match step {
        None => auto_step(from, to, width),
        Some(s) if s % width != 0 => {
            return Err(ApiError::param(
                "step",
                format!(
                    "step {} is not a multiple of the {} tier that holds data from {}",
                    format_duration(s),
                    format_duration(width),
                    format_iso(from)
                ),
                format!("a multiple of {}", format_duration(width)),
            ))
        }
        Some(s) if points(from, to, s) > MAX_POINTS => {
            let min = min_step(from, to, width, MAX_POINTS);
            return Err(ApiError::param(
                "step",
                format!(
                    "step too small for the range: at least {} ({} points at most)",
                    format_duration(min),
                    MAX_POINTS
                ),
                format!(
                    "a multiple of {} of at least {}",
                    format_duration(width),
                    format_duration(min)
                ),
            ));
        }
        Some(s) => s,
    };
    // Whole steps: every step then holds whole bins of the tier.
    let (from, to) = (from / step * step, to.div_ceil(step).saturating_mul(step));
    let query = SeriesQuery {
        metric,
        dim,
        from_ns: from,
        to_ns: to,
        step_ns: step,
        top,
        filter,
    };
    let s = ctx.ask(move |h| h.series(&query)).await?;
    ok(&merge(
        range_json(from, to),
        json!({
            "metric": metric.as_str(),
            "by": dim.map(Dim::as_str),
            "step": format_duration(s.step_ns), "step_ns": s.step_ns,
            "tier": format_duration(s.tier_ns), "tier_ns": s.tier_ns,
            "times_ns": s.times_ns,
            "covered": s.covered, "covered_ns": s.covered_ns,
            "lines": s.lines,
        }),
    ))
}

async fn totals(State(ctx): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), TOTALS_PARAMS)?;
    let filter = filters(&q)?;
    let ((from, to), _) = ctx.range(q.range()?, DEFAULT_SPAN_NS, false).await?;
    if !filter.is_empty() {
        let f = filter.clone();
        let t = ctx.ask(move |h| h.totals_where(from, to, &f)).await?;
        let mut by = serde_json::Map::new();
        for (dim, key, packets, bytes) in &t.by_dim {
            if let Value::Array(list) = by
                .entry(dim.as_str())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                list.push(json!({"key": key, "packets": packets, "bytes": bytes}));
            }
        }
        let given: serde_json::Map<String, Value> = filter
            .iter()
            .map(|(d, v)| (d.as_str().to_string(), Value::String(v.clone())))
            .collect();
        // Flows and the 0.1 s series are not kept per key: null, not 0.
        return ok(&merge(
            range_json(from, to),
            json!({
                "filter": given, "bins": t.bins, "packets": t.packets, "bytes": t.bytes,
                "flows_started": null, "flows_ended": null, "by": by,
                "fine_ns": ctx.app.info.hurst.fine_ns, "fine": null,
            }),
        ));
    }
    let t = ctx.ask(move |h| h.totals(from, to)).await?;
    let mut by = serde_json::Map::new();
    for (dim, key, packets, bytes) in &t.by_dim {
        let list = by
            .entry(dim.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(json!({"key": key, "packets": packets, "bytes": bytes}));
        }
    }
    let ended: Vec<Value> = t
        .flows_ended
        .iter()
        .map(|(reason, n)| json!({"reason": reason, "flows": n}))
        .collect();
    let fine: serde_json::Map<String, Value> = t
        .fine
        .iter()
        .map(|(name, stats)| (name.as_str().to_string(), json!(stats)))
        .collect();
    ok(&merge(
        range_json(from, to),
        json!({
            "bins": t.bins, "packets": t.packets, "bytes": t.bytes,
            "flows_started": t.flows_started, "flows_ended": ended, "by": by,
            "fine_ns": ctx.app.info.hurst.fine_ns, "fine": fine,
        }),
    ))
}

/// 400 on `from` when `[from, to)` would hold more than [`MAX_POINTS`]
/// items of `every` ns each.
fn check_items(from: u64, to: u64, every: u64, what: &str) -> Result<(), ApiError> {
    let every = every.max(1);
    if (to - from) / every > MAX_POINTS {
        let most = format_duration(every.saturating_mul(MAX_POINTS));
        return Err(ApiError::param(
            "from",
            format!(
                "the range holds more than {MAX_POINTS} {what} (one per {}): narrow it to at most {most}",
                format_duration(every)
            ),
            format!("to − from ≤ {most}"),
        ));
    }
    Ok(())
}

/// `step` for windows and Hurst points: absent, or a multiple of `every`.
fn item_step(q: &Query, every: u64, what: &str) -> Result<u64, ApiError> {
    let every = every.max(1);
    match q.duration("step")? {
        None => Ok(every),
        Some(s) if s % every != 0 => Err(ApiError::param(
            "step",
            format!(
                "step {} is not a multiple of the {} between two {what}",
                format_duration(s),
                format_duration(every)
            ),
            format!("a multiple of {}", format_duration(every)),
        )),
        Some(s) => Ok(s),
    }
}

/// Windows summed per `step` (each keeps the first start and last end of
/// its step, and per-class tallies summed by class).
fn sum_windows(list: Vec<EvalWindow>, step: u64) -> Vec<EvalWindow> {
    let mut out: Vec<EvalWindow> = Vec::new();
    for w in list {
        let slot = w.start_ns / step * step;
        match out.last_mut() {
            Some(a) if a.start_ns / step * step == slot => {
                a.end_ns = a.end_ns.max(w.end_ns);
                a.hits += w.hits;
                a.misses += w.misses;
                a.unknown += w.unknown;
                a.pending += w.pending;
                a.unlabelled += w.unlabelled;
                for c in w.by_class {
                    match a.by_class.iter_mut().find(|x| x.class == c.class) {
                        Some(x) => {
                            x.hits += c.hits;
                            x.misses += c.misses;
                            x.unknown += c.unknown;
                            x.pending += c.pending;
                        }
                        None => a.by_class.push(c),
                    }
                }
                a.by_class.sort_by(|x, y| x.class.cmp(&y.class));
            }
            _ => out.push(w),
        }
    }
    out
}

async fn windows(State(ctx): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), WINDOW_PARAMS)?;
    let step = item_step(&q, ctx.app.info.window_ns, "windows")?;
    let ((from, to), _) = ctx.range(q.range()?, DEFAULT_SPAN_NS, false).await?;
    check_items(from, to, step, "windows")?;
    let window = ctx.app.info.window_ns.max(1);
    // Raw windows read to sum them: bounded too (a week of 5 s windows).
    check_items(from, to, window.saturating_mul(MAX_POINTS / 50), "windows")?;
    let mut list = ctx.ask(move |h| h.windows(from, to)).await?;
    if step > window {
        list = sum_windows(list, step);
    }
    let truncated = list.len() as u64 > MAX_POINTS;
    list.truncate(MAX_POINTS as usize);
    let windows: Vec<Value> = list
        .iter()
        .map(|w| {
            merge(
                json!({"start": format_iso(w.start_ns), "end": format_iso(w.end_ns), "accuracy": w.accuracy()}),
                serde_json::to_value(w).unwrap_or(Value::Null),
            )
        })
        .collect();
    ok(&merge(
        range_json(from, to),
        json!({"window_ns": ctx.app.info.window_ns, "step_ns": step, "truncated": truncated, "windows": windows}),
    ))
}

async fn hurst(State(ctx): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), HURST_PARAMS)?;
    let names: Vec<(&str, SeriesName)> = SeriesName::ALL.iter().map(|s| (s.as_str(), *s)).collect();
    let series = q
        .choice("series", &names, Some(SeriesName::Total))?
        .unwrap_or(SeriesName::Total);
    let step = item_step(&q, ctx.app.info.hurst.step_ns, "Hurst points")?;
    let ((from, to), _) = ctx.range(q.range()?, DEFAULT_SPAN_NS, false).await?;
    check_items(from, to, step, "Hurst points")?;
    let every = ctx.app.info.hurst.step_ns.max(1);
    check_items(
        from,
        to,
        every.saturating_mul(MAX_POINTS / 50),
        "Hurst points",
    )?;
    let mut list = ctx.ask(move |h| h.hurst(series, from, to)).await?;
    if step > every {
        // The newest point of each step stands for it.
        let mut kept: Vec<HurstPoint> = Vec::new();
        for p in list {
            match kept.last_mut() {
                Some(k) if k.end_ns / step == p.end_ns / step => *k = p,
                _ => kept.push(p),
            }
        }
        list = kept;
    }
    let truncated = list.len() as u64 > MAX_POINTS;
    list.truncate(MAX_POINTS as usize);
    let points: Vec<Value> = list
        .iter()
        .map(|p| {
            merge(
                json!({"end": format_iso(p.end_ns)}),
                serde_json::to_value(p).unwrap_or(Value::Null),
            )
        })
        .collect();
    ok(&merge(
        range_json(from, to),
        json!({"series": series.as_str(), "step_ns": step, "truncated": truncated, "points": points}),
    ))
}

async fn flows(State(ctx): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), FLOW_PARAMS)?;
    let sorts: Vec<(&str, FlowSort)> = FlowSort::ALL.to_vec();
    let sort = q
        .choice("sort", &sorts, Some(FlowSort::Start))?
        .unwrap_or(FlowSort::Start);
    let descending = q
        .choice("order", &[("asc", false), ("desc", true)], Some(true))?
        .unwrap_or(true);
    let addr = match q.get("addr") {
        None => None,
        Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
            ApiError::param(
                "addr",
                format!("`{}` is not an IP address", clip(a)),
                "an IPv4 or IPv6 address (10.0.0.1, 2001:db8::1)",
            )
        })?),
    };
    let port = match q.get("port") {
        None => None,
        Some(_) => Some(q.uint("port", 0, 65_535, 0)? as u16),
    };
    let limit = q.uint("limit", 1, MAX_FLOWS, 100)? as usize;
    let offset = q.uint("offset", 0, MAX_OFFSET, 0)? as usize;
    let (class, app) = (
        q.get("class").map(str::to_string),
        q.get("app").map(str::to_string),
    );
    let ((from, to), _) = ctx.range(q.range()?, DEFAULT_SPAN_NS, false).await?;
    let query = FlowQuery {
        from_ns: from,
        to_ns: to,
        class,
        app,
        addr,
        port,
        sort,
        descending,
        limit,
        offset,
    };
    let mut page = ctx.ask(move |h| h.flows(&query)).await?;
    page.flows.truncate(limit);
    for f in &mut page.flows {
        // ISO times beside the record's ns, as everywhere else.
        if let Some(rec) = f.get_mut("record").and_then(Value::as_object_mut) {
            for (ns, iso) in [("start_ns", "start"), ("end_ns", "end")] {
                if let Some(n) = rec.get(ns).and_then(Value::as_u64) {
                    rec.insert(iso.into(), Value::String(format_iso(n)));
                }
            }
        }
    }
    ok(&merge(
        range_json(from, to),
        json!({"total": page.total, "limit": limit, "offset": offset, "flows": page.flows}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        let s = 1_000_000_000u64;
        assert_eq!(points(0, 10 * s, s), 10);
        assert_eq!(points(s / 2, 10 * s, s), 10);
        assert_eq!(points(s / 2, 10 * s + 1, s), 11);
        // An hour at 1 s tier: 3600 points, allowed; the minimum for 1000 is 4 s.
        assert_eq!(min_step(0, 3600 * s, s, 1000), 4 * s);
        assert_eq!(auto_step(0, 3600 * s, s), 5 * s);
        let m = min_step(7 * s / 3, 86_400 * s + 3, s, MAX_POINTS);
        assert!(points(7 * s / 3, 86_400 * s + 3, m) <= MAX_POINTS);
        assert!(points(7 * s / 3, 86_400 * s + 3, m - s) > MAX_POINTS);
    }

    #[test]
    fn tiers() {
        let t = |w: u64, f: Option<u64>| TierExtent {
            width_ns: w,
            first_ns: f,
            last_ns: None,
            retention_ns: 0,
        };
        let e = Extent {
            tiers: vec![t(1, Some(100)), t(60, Some(10)), t(3600, None)],
            ..Extent::default()
        };
        assert_eq!(tier_for(&e, 150, 7), 1);
        assert_eq!(tier_for(&e, 50, 7), 60);
        assert_eq!(tier_for(&e, 5, 7), 60);
        assert_eq!(tier_for(&Extent::default(), 5, 7), 7);
        // Seconds since 63 s, their minute rolled up from 60 s: before the
        // data, the seconds hold all there is and are read.
        let e = Extent {
            tiers: vec![t(1, Some(63)), t(60, Some(60)), t(3600, None)],
            ..Extent::default()
        };
        assert_eq!(tier_for(&e, 5, 7), 1);
        // Minutes reaching a whole minute further back win.
        let e = Extent {
            tiers: vec![t(1, Some(125)), t(60, Some(60)), t(3600, None)],
            ..Extent::default()
        };
        assert_eq!(tier_for(&e, 5, 7), 60);
    }
}
