//! Latency of the live stream: how long after a bin's end (capture time)
//! its `bin` event reaches a client of `/api/v1/stream`.
//!
//! Starts `trafficscope run --generate MIX --users N --listen 127.0.0.1:0
//! --data TMP` (the generator's capture times are wall-clock times, paced
//! in real time), reads `/api/v1/stream?kinds=bin` with a plain HTTP GET,
//! and for each `bin` event takes latency = wall clock at receipt −
//! (`start_ns` + `width_ns`). After SECONDS it prints the count and the
//! p50, p90, p99 and largest latency in ms, stops `run` with SIGTERM and
//! checks that it exits 0.
//!
//! ```text
//! cargo build --release -p trafficscope --examples
//! target/release/examples/sse_latency [SECONDS [MIX [USERS]]]
//! ```
//!
//! Defaults: 60 s, `web=3,video=1,voip=2`, 20 users. The binary is the
//! `trafficscope` beside the examples directory, or `$TRAFFICSCOPE_BIN`.
//! Exits 1 if p99 is above 1 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn trafficscope_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("TRAFFICSCOPE_BIN") {
        return PathBuf::from(b);
    }
    let exe = std::env::current_exe().expect("own path");
    // target/<profile>/examples/sse_latency → target/<profile>/trafficscope
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("trafficscope"))
        .expect("target directory")
}

/// The body of a chunked HTTP/1.1 response, de-chunked as it arrives.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            // The CRLF that ends the previous chunk, then the size line.
            while line.trim().is_empty() {
                line.clear();
                if self.inner.read_line(&mut line)? == 0 {
                    self.done = true;
                    return Ok(0);
                }
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            self.done = true;
        }
        self.left -= got;
        Ok(got)
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().map_or(60, |s| {
        s.trim_end_matches('s')
            .parse()
            .expect("SECONDS: a whole number")
    });
    let mix = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "web=3,video=1,voip=2".into());
    let users = args.get(2).cloned().unwrap_or_else(|| "20".into());

    let data = std::env::temp_dir().join(format!("sse-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let bin = trafficscope_bin();
    let mut child = Command::new(&bin)
        .args(["run", "--generate", &mix, "--users", &users])
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let (tx, rx) = mpsc::channel::<String>();
    let err = child.stderr.take().expect("stderr");
    let stderr_thread = std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let addr = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("run never said where it serves");
        if let Some(rest) = l.split("serving http://").nth(1) {
            break rest.split('/').next().expect("address").to_string();
        }
    };
    eprintln!(
        "sse_latency: run --generate {mix} --users {users} at http://{addr}/; collecting {seconds} s"
    );

    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(
        s,
        "GET /api/v1/stream?kinds=bin HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("response head");
        if l == "\r\n" || l.is_empty() {
            break;
        }
        head.push_str(&l);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body: Box<dyn BufRead> = if chunked {
        Box::new(BufReader::new(Chunked {
            inner: r,
            left: 0,
            done: false,
        }))
    } else {
        Box::new(r)
    };

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut lat_ms: Vec<f64> = Vec::new();
    let (mut hello, mut lagged, mut event) = (false, 0u64, String::new());
    let mut body = body;
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        match body.read_line(&mut line) {
            Ok(0) => {
                eprintln!("sse_latency: the stream ended");
                break;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => panic!("reading the stream: {e}"),
        }
        let received = now_ns();
        let l = line.trim_end();
        if let Some(e) = l.strip_prefix("event:") {
            event = e.trim().to_string();
        } else if let Some(d) = l.strip_prefix("data:") {
            match event.as_str() {
                "hello" => hello = true,
                "lagged" => lagged += 1,
                "bin" => {
                    let v: serde_json::Value = serde_json::from_str(d.trim()).expect("bin JSON");
                    let end = v["start_ns"].as_u64().expect("start_ns") as i128
                        + v["width_ns"].as_u64().expect("width_ns") as i128;
                    lat_ms.push((received - end) as f64 / 1e6);
                }
                _ => {}
            }
        } else if l.is_empty() {
            event.clear();
        }
    }

    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait for run");
    let _ = stderr_thread.join();
    let tail: Vec<String> = rx.try_iter().collect();
    let _ = std::fs::remove_dir_all(&data);

    assert!(hello, "no hello event");
    if lat_ms.is_empty() {
        eprintln!("sse_latency: no bin event in {seconds} s");
        std::process::exit(1);
    }
    let mut sorted = lat_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = pct(&sorted, 99.0);
    println!(
        "bins {}  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  min {:.1} ms  (lagged events: {lagged})",
        sorted.len(),
        pct(&sorted, 50.0),
        pct(&sorted, 90.0),
        p99,
        sorted[sorted.len() - 1],
        sorted[0],
    );
    let first: Vec<String> = lat_ms.iter().take(10).map(|l| format!("{l:.0}")).collect();
    println!("first bins (ms): {}", first.join(" "));
    println!("run exited with {status}");
    for l in tail.iter().rev().take(2).rev() {
        println!("  {l}");
    }
    if !status.success() {
        std::process::exit(2);
    }
    if p99 > 1000.0 {
        println!("p99 above 1 s");
        std::process::exit(1);
    }
}
