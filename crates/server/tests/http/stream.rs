//! The SSE stream: hello first, then each output under its kind, filters,
//! `lagged` for a client that falls behind, and an end at shutdown.

use std::time::{Duration, Instant};

use pipeline::SeriesName;
use serde_json::Value;

use super::*;

fn bin_output() -> Output {
    let fake = Fake::new();
    Output::Bin(fake.bins[3].clone())
}

#[test]
fn hello_then_outputs_by_kind() {
    let s = start(None, 16);
    let mut sse = Sse::open(s.addr(), "/api/v1/stream", &[]);
    assert_eq!(sse.status, 200);
    let ct = sse
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    assert_eq!(ct.map(|c| c.1.as_str()), Some("text/event-stream"));
    let (name, data) = sse.event().unwrap();
    assert_eq!(name, "hello");
    let hello: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(hello["info"], serde_json::to_value(info()).unwrap());
    assert_eq!(
        hello["kinds"],
        serde_json::json!(["bin", "window", "hurst", "flow"])
    );

    // The client subscribed before `hello` was sent, so nothing is missed.
    let outs = [
        bin_output(),
        Output::Window(window(7)),
        Output::Hurst(hurst_point(SeriesName::Udp, 3)),
        Output::Flow(Box::new(flow_row(5))),
    ];
    for o in &outs {
        s.live.send(Arc::new(o.clone())).unwrap();
    }
    for (o, kind) in outs.iter().zip(["bin", "window", "hurst", "flow"]) {
        let (name, data) = sse.event().unwrap();
        assert_eq!(name, kind);
        let got: Value = serde_json::from_str(&data).unwrap();
        // Through text both ways (to_value would widen f32 0.9 to 0.8999…).
        let want: Value = serde_json::from_str(&serde_json::to_string(o).unwrap()).unwrap();
        assert_eq!(got, want);
        assert_eq!(got["kind"], kind);
    }
}

/// Opens a stream; its `hello` must come within half a second.
fn hello_comes_at_once(s: &TestServer) {
    let t = Instant::now();
    let mut sse = Sse::open(s.addr(), "/api/v1/stream", &[]);
    assert_eq!(sse.event().unwrap().0, "hello");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

/// A bin broadcast before a client subscribed reaches it only through the
/// store: its `hello` (after which the page queries) waits until the store
/// has committed every bin published so far, and no longer than that.
#[test]
fn hello_waits_until_the_store_holds_what_was_published_before() {
    let s = start(None, 16);
    s.status.bins_published.store(7, Relaxed);
    s.stats.bins_written.store(6, Relaxed);
    let stats = s.stats.clone();
    let committer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        stats.bins_written.store(7, Relaxed);
        Instant::now()
    });
    let mut sse = Sse::open(s.addr(), "/api/v1/stream", &[]);
    assert_eq!(sse.event().unwrap().0, "hello");
    let hello_at = Instant::now();
    let committed_at = committer.join().unwrap();
    assert!(
        hello_at >= committed_at,
        "hello came {:?} before the store committed the published bin",
        committed_at - hello_at
    );
    assert!(hello_at - committed_at < Duration::from_millis(500));

    // With everything committed, it comes at once.
    hello_comes_at_once(&s);

    // A store that cannot write is not waited for.
    s.status.bins_published.store(9, Relaxed);
    s.stats.failing.store(true, Relaxed);
    hello_comes_at_once(&s);
}

#[test]
fn kinds_filter() {
    let s = start(None, 16);
    let mut sse = Sse::open(s.addr(), "/api/v1/stream?kinds=window,%20hurst", &[]);
    let (_, hello) = sse.event().unwrap();
    assert!(hello.contains(r#""kinds":["window","hurst"]"#), "{hello}");
    s.live.send(Arc::new(bin_output())).unwrap();
    s.live
        .send(Arc::new(Output::Flow(Box::new(flow_row(1)))))
        .unwrap();
    s.live.send(Arc::new(Output::Window(window(2)))).unwrap();
    let (name, data) = sse.event().unwrap();
    assert_eq!(name, "window");
    assert!(data.contains(&format!("\"start_ns\":{}", T0 + 2 * WINDOW)));
}

#[test]
fn a_slow_client_is_told_what_it_missed() {
    let s = start(None, 4);
    let mut sse = Sse::open(s.addr(), "/api/v1/stream?kinds=window", &[]);
    assert_eq!(sse.event().unwrap().0, "hello");
    const N: u64 = 2000;
    for k in 0..N {
        s.live.send(Arc::new(Output::Window(window(k)))).unwrap();
    }
    s.live.send(Arc::new(Output::Window(window(N)))).unwrap();
    let (mut got, mut missed, mut lagged_events) = (0, 0, 0);
    let mut last_start = 0;
    loop {
        let (name, data) = sse.event().unwrap();
        let v: Value = serde_json::from_str(&data).unwrap();
        match name.as_str() {
            "window" => {
                got += 1;
                let start = v["start_ns"].as_u64().unwrap();
                assert!(start > last_start, "in order");
                last_start = start;
                if start == T0 + N * WINDOW {
                    break;
                }
            }
            "lagged" => {
                lagged_events += 1;
                missed += v["missed"].as_u64().unwrap();
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(
        lagged_events > 0,
        "2000 sends into a channel of 4 should lag"
    );
    assert_eq!(got + missed, N + 1);
}

#[test]
fn shutdown_ends_open_streams() {
    let s = start(None, 16);
    let mut sse = Sse::open(s.addr(), "/api/v1/stream", &[]);
    assert_eq!(sse.event().unwrap().0, "hello");
    let t = Instant::now();
    let TestServer { handle, .. } = s;
    handle.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        t.elapsed()
    );
    assert!(sse.event().is_none(), "the stream ended");
}

#[test]
fn live_streams_are_bounded() {
    let s = start(None, 16);
    let mut open: Vec<Sse> = (0..64)
        .map(|_| {
            let mut c = Sse::open(s.addr(), "/api/v1/stream", &[]);
            assert_eq!(c.event().unwrap().0, "hello");
            c
        })
        .collect();
    let r = s.get("/api/v1/stream");
    assert_eq!(r.status, 503);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("too many live streams"));
    // A client leaves; the server notices at its next write and frees the place.
    drop(open.pop());
    let t = Instant::now();
    loop {
        s.live.send(Arc::new(Output::Window(window(1)))).unwrap();
        let mut c = Sse::open(s.addr(), "/api/v1/stream", &[]);
        if c.status == 200 {
            assert_eq!(c.event().unwrap().0, "hello");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the place was never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
