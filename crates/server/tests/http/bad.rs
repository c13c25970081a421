//! What a client can get wrong: every case answers its status with a JSON
//! error naming the parameter, and nothing a client sends is a 500.

use super::*;

/// (request target, status, substring of the error, parameter named).
fn cases() -> Vec<(String, u16, &'static str, Option<&'static str>)> {
    let r = format!("from={T0_S}&to={}", T0_S + 60);
    let v = |s: &str| s.to_string();
    vec![
        (
            v("/api/v1/series?metric=packetz"),
            400,
            "unknown metric `packetz`",
            Some("metric"),
        ),
        (v("/api/v1/series?by=colour"), 400, "unknown by", Some("by")),
        (
            v("/api/v1/series?metric=flows_active&by=class"),
            400,
            "total only",
            Some("by"),
        ),
        (
            v("/api/v1/series?metric=fine_bytes&by=protocol"),
            400,
            "total only",
            Some("by"),
        ),
        (v("/api/v1/series?step=0s"), 400, "zero", Some("step")),
        (
            v("/api/v1/series?step=5"),
            400,
            "lacks a unit",
            Some("step"),
        ),
        (
            v("/api/v1/series?step=5x"),
            400,
            "unknown unit",
            Some("step"),
        ),
        (
            v("/api/v1/series?step=1.5ns"),
            400,
            "whole number of nanoseconds",
            Some("step"),
        ),
        (
            format!("/api/v1/series?{r}&step=1500ms"),
            400,
            "not a multiple of the 1s tier",
            Some("step"),
        ),
        (
            format!("/api/v1/series?from={T0_S}&to={}&step=1s", T0_S + 86_400),
            400,
            "step too small for the range: at least 9s",
            Some("step"),
        ),
        (v("/api/v1/series?top=0"), 400, "out of range", Some("top")),
        (
            v("/api/v1/series?top=101"),
            400,
            "out of range",
            Some("top"),
        ),
        (
            v("/api/v1/series?top=ten"),
            400,
            "not a whole number",
            Some("top"),
        ),
        (
            v("/api/v1/series?top=-1"),
            400,
            "not a whole number",
            Some("top"),
        ),
        (
            v("/api/v1/series?top=1e2"),
            400,
            "not a whole number",
            Some("top"),
        ),
        (
            v("/api/v1/series?from=yesterday"),
            400,
            "expected YYYY-MM-DDTHH:MM:SS",
            Some("from"),
        ),
        (
            v("/api/v1/series?from=2026-13-01T00:00:00Z"),
            400,
            "month",
            Some("from"),
        ),
        (
            v("/api/v1/series?from=2026-02-29T00:00:00Z"),
            400,
            "no such day",
            Some("from"),
        ),
        (
            v("/api/v1/series?to=2026-12-04T15:00:00"),
            400,
            "add a zone",
            Some("to"),
        ),
        (
            v("/api/v1/series?to=2026-12-04T15:00:00+01:00"),
            400,
            "%2B",
            Some("to"),
        ),
        (
            v("/api/v1/series?from=now%2B5m"),
            400,
            "now-<duration>",
            Some("from"),
        ),
        (
            v("/api/v1/series?from=now-5"),
            400,
            "lacks a unit",
            Some("from"),
        ),
        (
            v("/api/v1/series?from=1796396400000"),
            400,
            "milliseconds",
            Some("from"),
        ),
        (
            v("/api/v1/series?from=-5"),
            400,
            "before 1970",
            Some("from"),
        ),
        (
            v("/api/v1/series?from=1e9"),
            400,
            "expected YYYY",
            Some("from"),
        ),
        (
            v("/api/v1/series?from=now-100000d"),
            400,
            "before 1970",
            Some("from"),
        ),
        (
            format!("/api/v1/totals?from={}&to={T0_S}", T0_S + 60),
            400,
            "must be earlier than",
            Some("from"),
        ),
        (
            format!("/api/v1/totals?from={T0_S}&to={T0_S}"),
            400,
            "must be earlier than",
            Some("from"),
        ),
        (
            v("/api/v1/series?colour=red"),
            400,
            "unknown parameter `colour`",
            Some("colour"),
        ),
        (
            v("/api/v1/series?metric=packets&metric=bytes"),
            400,
            "more than once",
            Some("metric"),
        ),
        (
            v("/api/v1/series?from=%zz"),
            400,
            "percent-encoding",
            Some("from"),
        ),
        (
            v("/api/v1/series?from=%C3%28"),
            400,
            "not UTF-8",
            Some("from"),
        ),
        (
            format!("/api/v1/series?metric={}", "x".repeat(600)),
            400,
            "longer than",
            Some("metric"),
        ),
        (
            format!("/api/v1/totals?{r}&step=1s"),
            400,
            "unknown parameter `step`",
            Some("step"),
        ),
        (
            format!("/api/v1/windows?from={}&to={T0_S}", T0_S - 30 * 86_400),
            400,
            "more than 10000 windows",
            Some("from"),
        ),
        (
            format!("/api/v1/hurst?from={}&to={T0_S}", T0_S - 86_400),
            400,
            "more than 10000 Hurst points",
            Some("from"),
        ),
        (
            v("/api/v1/hurst?series=icmp"),
            400,
            "unknown series `icmp`",
            Some("series"),
        ),
        (
            v("/api/v1/flows?sort=size"),
            400,
            "unknown sort",
            Some("sort"),
        ),
        (
            v("/api/v1/flows?order=up"),
            400,
            "unknown order",
            Some("order"),
        ),
        (
            v("/api/v1/flows?limit=1001"),
            400,
            "out of range",
            Some("limit"),
        ),
        (
            v("/api/v1/flows?limit=0"),
            400,
            "out of range",
            Some("limit"),
        ),
        (
            v("/api/v1/flows?offset=-1"),
            400,
            "not a whole number",
            Some("offset"),
        ),
        (
            v("/api/v1/flows?offset=99999999999999999999999"),
            400,
            "out of range",
            Some("offset"),
        ),
        (
            v("/api/v1/flows?port=65536"),
            400,
            "out of range",
            Some("port"),
        ),
        (
            v("/api/v1/flows?addr=300.1.1.1"),
            400,
            "not an IP address",
            Some("addr"),
        ),
        (
            v("/api/v1/flows?addr=example.com"),
            400,
            "not an IP address",
            Some("addr"),
        ),
        (
            v("/api/v1/stream?kinds=bin,frames"),
            400,
            "unknown kind `frames`",
            Some("kinds"),
        ),
        (
            v("/api/v1/summary?verbose=1"),
            400,
            "unknown parameter",
            Some("verbose"),
        ),
        (v("/api/v1/health?x"), 400, "unknown parameter", Some("x")),
        (
            v("/metrics?format=json"),
            400,
            "unknown parameter",
            Some("format"),
        ),
        (v("/api/v2/summary"), 404, "no such path", None),
        (v("/api/v1/summary/"), 404, "no such path", None),
        (v("/api/v1/series/packets"), 404, "no such path", None),
    ]
}

#[test]
fn bad_requests_get_json_errors_naming_the_parameter() {
    let s = start(None, 16);
    let cases = cases();
    assert!(cases.len() >= 30);
    for (target, status, message, parameter) in cases {
        let r = s.get(&target);
        assert_eq!(r.status, status, "{target}: {}", r.body);
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{target}"
        );
        let b = r.json();
        let error = b["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{target}: {b}"));
        assert!(
            error.contains(message),
            "{target}: `{error}` lacks `{message}`"
        );
        match parameter {
            Some(p) => {
                assert_eq!(b["parameter"], p, "{target}: {b}");
                assert!(
                    b["accepted"].as_str().is_some_and(|a| !a.is_empty()),
                    "{target}: no `accepted` in {b}"
                );
            }
            None => assert!(b.get("parameter").is_none(), "{target}: {b}"),
        }
    }
    // Still serving after all that.
    assert_eq!(s.get("/api/v1/health").status, 200);
}

#[test]
fn wrong_methods_are_405_json() {
    let s = start(None, 16);
    for (method, target) in [
        ("POST", "/api/v1/series"),
        ("DELETE", "/api/v1/flows"),
        ("PUT", "/metrics"),
        ("POST", "/api/v1/stream"),
    ] {
        let r = request(s.addr(), method, target, &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{method} {target}");
        assert_eq!(r.header("allow"), Some("GET,HEAD"), "{method} {target}");
        assert!(r.json()["error"].as_str().unwrap().contains(method));
    }
}
