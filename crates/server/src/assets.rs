//! The dashboard: its files are compiled into the binary (no CDN, no files
//! beside it, works with no network), served gzip-compressed when the
//! browser accepts it, revalidated by ETag. They hold no data, so they need
//! no token: the page asks for one and sends it with every API request.
//!
//! Every answer of the server carries a Content-Security-Policy that allows
//! scripts, styles and connections from this origin only, and no inline
//! script: a name from the traffic that slipped into markup could not run.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// `default-src 'self'` covers scripts, styles, fonts and `connect-src`
/// (fetch, EventSource); images may also be `data:` (uPlot needs none, the
/// page's icon is a file); no plugins, no framing, no `<base>` tricks.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// Adds the security headers to every response (API and assets alike).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

struct Asset {
    path: &'static str,
    mime: &'static str,
    raw: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:expr) => {
        Asset {
            path: $path,
            mime: $mime,
            raw: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page loads; `/` is `index.html`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("js/main.js", JS),
    asset!("js/errors.js", JS),
    asset!("js/api.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/fmt.js", JS),
    asset!("js/panels.js", JS),
    asset!("js/flows.js", JS),
    asset!("js/state.js", JS),
    asset!("vendor/uplot/uPlot.iife.min.js", JS),
    asset!("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/uplot/LICENSE", "text/plain; charset=utf-8"),
];

/// An asset ready to serve: its gzip form and validator, made once.
struct Ready {
    gz: Vec<u8>,
    etag: String,
}

fn ready() -> &'static [Ready] {
    static READY: OnceLock<Vec<Ready>> = OnceLock::new();
    READY.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to a Vec cannot fail.
                let _ = enc.write_all(a.raw);
                let gz = enc.finish().unwrap_or_default();
                let digest = Sha256::digest(a.raw);
                let etag = format!(
                    "\"{}\"",
                    digest[..12]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                Ready { gz, etag }
            })
            .collect()
    })
}

/// Total size of the page's files, raw and gzip-compressed (what a first
/// visit transfers): for the README and the size test.
pub fn weight() -> (usize, usize) {
    let gz: usize = ready().iter().map(|r| r.gz.len()).sum();
    (ASSETS.iter().map(|a| a.raw.len()).sum(), gz)
}

/// The asset at `path` (`/` → `index.html`, `/assets/X` → `X`), if any.
pub fn serve(path: &str, headers: &HeaderMap) -> Option<Response> {
    let name = match path {
        "/" | "/index.html" => "index.html",
        p => p.strip_prefix("/assets/")?,
    };
    let i = ASSETS.iter().position(|a| a.path == name)?;
    let (asset, ready) = (&ASSETS[i], &ready()[i]);
    let cache = HeaderValue::from_static("no-cache");
    let etag = HeaderValue::from_str(&ready.etag).ok()?;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == ready.etag));
    if matches {
        return Some(
            (
                StatusCode::NOT_MODIFIED,
                [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
            )
                .into_response(),
        );
    }
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut res = if gzip {
        let mut r = ready.gz.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.raw.into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, cache);
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Some(res)
}

/// Whether `path` is one of the page's files (served without a token).
pub fn is_asset(path: &str) -> bool {
    matches!(path, "/" | "/index.html")
        || path
            .strip_prefix("/assets/")
            .is_some_and(|n| ASSETS.iter().any(|a| a.path == n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_compresses_and_the_page_stays_light() {
        let (raw, gz) = weight();
        assert!(gz < raw, "{gz} >= {raw}");
        // The bound on what a first visit transfers.
        assert!(gz <= 300 * 1024, "the page weighs {gz} bytes compressed");
        for (a, r) in ASSETS.iter().zip(ready()) {
            let mut d = flate2::read::GzDecoder::new(&r.gz[..]);
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut d, &mut back).unwrap();
            assert_eq!(back, a.raw, "{}", a.path);
        }
    }

    #[test]
    fn paths_map_to_assets_only() {
        let h = HeaderMap::new();
        assert!(serve("/", &h).is_some());
        assert!(serve("/assets/js/main.js", &h).is_some());
        assert!(serve("/assets/../Cargo.toml", &h).is_none());
        assert!(serve("/assets/", &h).is_none());
        assert!(serve("/js/main.js", &h).is_none());
        assert!(is_asset("/assets/app.css") && !is_asset("/api/v1/summary"));
        // Every file the HTML names is served.
        let html = std::str::from_utf8(ASSETS[0].raw).unwrap();
        for part in html.split("\"/assets/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(is_asset(&format!("/assets/{name}")), "{name}");
        }
    }
}
