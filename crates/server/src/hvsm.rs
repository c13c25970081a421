//! `/api/v1/hurst/hvsm`: the Local Whittle estimate against its bandwidth M
//! (the number of lowest frequencies used) over one estimation window of
//! the 0.1 s series, the diagnostic a traffic engineer reads next to the
//! sliding estimate: a plateau means H is well defined, a drift that the
//! series is not self-similar over those scales. Computed on request from
//! the stored fine series with `selfsim`, the same estimator `run` uses.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use pipeline::SeriesName;
use serde_json::{json, Value};
use store::{Metric, SeriesQuery};

use crate::ctx::Shared;
use crate::error::{json_response, ApiError};
use crate::isotime::format_iso;
use crate::params::{Query, TimeSpec};

pub const PARAMS: &[&str] = &["series", "end"];

/// M values plotted (log-spaced from 8 to N/2).
const POINTS: usize = 40;
/// Fewer contiguous fine bins than this give no curve (the estimator's own
/// minimum is lower, but the curve would be a handful of points).
const MIN_BINS: usize = 256;

pub async fn hvsm(State(ctx): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref(), PARAMS)?;
    let names: Vec<(&str, SeriesName)> = SeriesName::ALL.iter().map(|s| (s.as_str(), *s)).collect();
    let series = q
        .choice("series", &names, Some(SeriesName::Total))?
        .unwrap_or(SeriesName::Total);
    let hurst = ctx.app.info.hurst;
    let fine = hurst.fine_ns.max(1);
    let span = hurst.window_bins.max(1).saturating_mul(fine);
    let extent = ctx.extent().await?;
    let now = ctx.now_ns(Some(&extent));
    let end = match q.time("end")? {
        Some(TimeSpec::Absolute(ns)) => ns,
        Some(TimeSpec::Now(ago)) => now.saturating_sub(ago),
        // The newest estimate's window, so the curve matches the number shown.
        None => {
            let from = now.saturating_sub(span.saturating_add(2 * hurst.step_ns));
            ctx.ask(move |h| h.hurst(series, from, now.saturating_add(1)))
                .await?
                .last()
                .map_or(extent.last_ns.unwrap_or(now).min(now), |p| p.end_ns)
        }
    };
    let end = end / fine * fine;
    let from = end.saturating_sub(span);
    let query = SeriesQuery {
        metric: Metric::FineBytes,
        dim: None,
        from_ns: from,
        to_ns: end,
        step_ns: fine,
        top: 1,
        filter: Vec::new(),
    };
    let s = ctx.ask(move |h| h.series(&query)).await?;
    let values = s
        .lines
        .iter()
        .find(|l| l.key == series.as_str())
        .map(|l| l.values.clone())
        .unwrap_or_default();
    // The contiguous run at the end (bins not yet stored at the very end
    // skipped): a gap (the service was not running) is not silence.
    let run: Vec<f64> = values
        .iter()
        .rev()
        .skip_while(|v| v.is_none())
        .map_while(|v| *v)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let used = run.len();
    let (points, note): (Vec<Value>, Option<String>) = if used < MIN_BINS {
        (
            Vec::new(),
            Some(format!(
                "{used} contiguous 0.1 s bins before {}: at least {MIN_BINS} are needed",
                format_iso(end)
            )),
        )
    } else {
        let curve = tokio::task::spawn_blocking(move || {
            selfsim::estimators::local_whittle_h_vs_m(&run, POINTS)
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        match curve {
            Ok(p) => (
                p.x.iter()
                    .zip(&p.y)
                    .zip(&p.y_err)
                    .map(|((x, h), e)| {
                        json!({"m": 10f64.powf(*x).round() as u64, "h": h, "ci_half": e})
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "series": series.as_str(),
            "from": format_iso(from), "from_ns": from,
            "end": format_iso(end), "end_ns": end,
            "fine_ns": fine,
            "window_bins": hurst.window_bins,
            "bins_used": used,
            "points": points,
            "note": note,
        }),
    ))
}
