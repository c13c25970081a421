//! Tokens: every route needs one when set, the stream also takes it in
//! the query, and `check_listen` refuses to expose the service without one.

use server::check_listen;

use super::*;

const TOKEN: &str = "s3cret-t0ken";

#[test]
fn every_route_needs_the_token() {
    let s = start(Some(TOKEN), 16);
    let right = format!("Bearer {TOKEN}");
    for target in [
        "/api/v1/summary",
        "/metrics",
        "/api/v1/stream",
        "/api/v1/",
        "/no/such/path",
    ] {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer wrong")],
            vec![("Authorization", "Bearer s3cret-t0ke")],
            vec![("Authorization", "Basic czNjcmV0LXQwa2Vu")],
            vec![("Authorization", TOKEN)],
        ] {
            let r = request(s.addr(), "GET", target, &headers);
            assert_eq!(r.status, 401, "{target} {headers:?}");
            assert!(r
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")));
            assert!(r.json()["error"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"));
        }
    }
    let ok = request(
        s.addr(),
        "GET",
        "/api/v1/summary",
        &[("Authorization", &right)],
    );
    assert_eq!(ok.status, 200);
    let ok = request(
        s.addr(),
        "GET",
        "/metrics",
        &[("authorization", &format!("bearer {TOKEN}"))],
    );
    assert_eq!(ok.status, 200);
    // A token in the URL counts only for the stream (EventSource).
    let r = s.get(&format!("/api/v1/summary?token={TOKEN}"));
    assert_eq!(r.status, 401);
    let mut sse = Sse::open(s.addr(), &format!("/api/v1/stream?token={TOKEN}"), &[]);
    assert_eq!(sse.status, 200);
    assert_eq!(sse.event().unwrap().0, "hello");
    let sse = Sse::open(s.addr(), "/api/v1/stream?token=nope", &[]);
    assert_eq!(sse.status, 401);
}

#[test]
fn the_dashboard_files_need_no_token_and_hold_no_data() {
    let s = start(Some(TOKEN), 16);
    for target in [
        "/",
        "/index.html",
        "/assets/js/main.js",
        "/assets/vendor/uplot/uPlot.iife.min.js",
    ] {
        let r = s.get(target);
        assert_eq!(r.status, 200, "{target}");
        // The page's script asks for the token; the files carry no data.
        assert!(!r.body.contains("192.0.2"), "{target}");
    }
    // Not a way around the token: other paths under /assets/ are 401.
    assert_eq!(s.get("/assets/../api/v1/summary").status, 401);
    assert_eq!(s.get("/assets/nope.js").status, 401);
}

#[test]
fn check_listen_needs_a_token_beyond_loopback() {
    let e = check_listen("0.0.0.0:8080".parse().unwrap(), None).unwrap_err();
    assert!(e.contains("--token") && e.contains("--token-file"), "{e}");
    assert!(check_listen("[::]:8080".parse().unwrap(), None).is_err());
    assert!(check_listen("192.0.2.7:8080".parse().unwrap(), None).is_err());
    for a in [
        "127.0.0.1:8080",
        "127.8.9.1:1",
        "[::1]:8080",
        "[::ffff:127.0.0.1]:80",
    ] {
        assert_eq!(check_listen(a.parse().unwrap(), None), Ok(()), "{a}");
    }
    assert_eq!(
        check_listen("0.0.0.0:8080".parse().unwrap(), Some(TOKEN)),
        Ok(())
    );
    assert!(check_listen("0.0.0.0:8080".parse().unwrap(), Some("")).is_err());
    assert!(check_listen("127.0.0.1:8080".parse().unwrap(), Some("two words")).is_err());
    // spawn applies the same check before binding anything.
    let s = start(None, 4);
    let state = AppState {
        history: s.fake.clone(),
        status: s.status.clone(),
        store_stats: s.stats.clone(),
        live: s.live.clone(),
        info: info(),
        pcap: None,
    };
    let e = server::spawn("0.0.0.0:0".parse().unwrap(), state, None)
        .err()
        .unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
}
