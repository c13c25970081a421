//! A real browser for the dashboard tests: Debian's chromium driven over
//! WebDriver (chromedriver + fantoccini), with screenshots written under
//! the target directory for a reviewer to look at, and the running
//! service (`trafficscope run` or `demo`) the page talks to.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Where screenshots go: `<target>/dashboard-screenshots/<test>/`.
pub fn shots_dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("../dashboard-screenshots")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The browser is a test dependency like tshark: missing in CI is a
/// failure (scripts/test installs it), elsewhere the test says so and skips.
pub fn browser_available() -> bool {
    let ok = Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "chromium and chromium-driver are needed: run scripts/test (installs them) or \
             apt-get install -y chromium chromium-driver"
        );
        eprintln!("SKIP: chromium/chromedriver not installed (scripts/test installs them)");
    }
    ok
}

/// chromedriver and one headless chromium session; both stop on drop.
pub struct Browser {
    driver: Child,
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    profile: PathBuf,
    pub shots: PathBuf,
}

impl Browser {
    pub fn start(test: &str, width: u32, height: u32) -> Browser {
        Browser::start_with_downloads(test, width, height, None)
    }

    /// With downloads saved, without asking, into `downloads`.
    pub fn start_with_downloads(
        test: &str,
        width: u32,
        height: u32,
        downloads: Option<&Path>,
    ) -> Browser {
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{test}-{port}"));
        let _ = std::fs::remove_dir_all(&profile);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let prefs = match downloads {
            Some(d) => {
                json!({"download.default_directory": d, "download.prompt_for_download": false})
            }
            None => json!({}),
        };
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "prefs": prefs,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let caps: serde_json::Map<String, Value> = serde_json::from_value(caps).unwrap();
        let client = rt
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a chromium session");
        Browser {
            driver,
            rt,
            client: Some(client),
            profile,
            shots: shots_dir(test),
        }
    }

    /// chromedriver's pid: chromium's processes are its descendants.
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).unwrap();
    }

    /// Runs `body` as a function in the page (it may `return`).
    pub fn eval(&self, body: &str) -> Value {
        self.rt
            .block_on(self.c().execute(body, vec![]))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{body}"))
    }

    /// Polls `expr` (a JS expression) until it is truthy; returns its value.
    pub fn wait_for(&self, expr: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(&format!("return ({expr}) || null;"));
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "the page never had {expr}; its errors: {:?}",
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Script errors, rejected promises and CSP violations the page saw,
    /// and every resource that did not load.
    pub fn errors(&self) -> Vec<String> {
        let v = self.eval(
            "const e = (window.trafficscopeErrors || []).slice();
             for (const r of performance.getEntriesByType('resource')) {
               if (r.responseStatus && r.responseStatus >= 400) e.push(`${r.responseStatus} ${r.name}`);
             }
             return e;",
        );
        serde_json::from_value(v).unwrap_or_default()
    }

    /// `text` of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let v = self.eval(&format!(
            "return [...document.querySelectorAll({})].map(e => e.textContent);",
            json!(css)
        ));
        serde_json::from_value(v).unwrap()
    }

    pub fn click(&self, css: &str) {
        let el = self
            .rt
            .block_on(self.c().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        self.rt.block_on(el.click()).unwrap();
    }

    /// A PNG of the whole page (the window grown to the document's height).
    pub fn screenshot_page(&self, name: &str) -> PathBuf {
        let h = self
            .eval("return document.documentElement.scrollHeight;")
            .as_u64()
            .unwrap_or(2000) as u32;
        let (w, old_h) = self.rt.block_on(self.c().get_window_size()).unwrap();
        self.rt
            .block_on(self.c().set_window_size(w as u32, h.max(old_h as u32) + 40))
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        let p = self.shots.join(format!("{name}.png"));
        std::fs::write(&p, png).unwrap();
        p
    }

    /// A PNG of what the window shows.
    pub fn screenshot_view(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        let p = self.shots.join(format!("{name}.png"));
        std::fs::write(&p, png).unwrap();
        p
    }

    /// A PNG of one element (a panel).
    pub fn screenshot_el(&self, css: &str, name: &str) -> PathBuf {
        let el = self
            .rt
            .block_on(self.c().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        let png = self.rt.block_on(el.screenshot()).unwrap();
        let p = self.shots.join(format!("{name}.png"));
        std::fs::write(&p, png).unwrap();
        p
    }

    /// One PNG per panel of the dashboard.
    pub fn screenshot_panels(&self, prefix: &str) {
        let ids: Vec<String> = serde_json::from_value(
            self.eval("return [...document.querySelectorAll('section.panel')].map(e => e.id);"),
        )
        .unwrap();
        for id in ids {
            self.screenshot_el(&format!("#{id}"), &format!("{prefix}-{id}"));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A running `trafficscope` service (run or demo) and its stderr lines.
pub struct Service {
    child: Child,
    pub addr: String,
    lines: mpsc::Receiver<String>,
}

impl Service {
    /// Starts `trafficscope ARGS` and waits for "serving http://ADDR/".
    #[allow(clippy::zombie_processes)] // waited for by Drop
    pub fn start(args: &[&str]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trafficscope"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for pipe in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        let mut s = Service {
            child,
            addr: String::new(),
            lines: rx,
        };
        let l = s.wait_for("http://", Duration::from_secs(60));
        let rest = l.split("http://").nth(1).unwrap();
        s.addr = rest.split('/').next().unwrap().to_string();
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("the service never said {needle:?}"),
            }
        }
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, v) = http_get(&self.addr, path);
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    /// SIGTERM and wait.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET of a JSON answer.
pub fn http_get(addr: &str, path: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, mut body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut plain = String::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        loop {
            let (len, rest) = body.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(len.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            plain.push_str(&rest[..n]);
            body = &rest[n + 2..];
        }
        body = &plain;
    }
    let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, v)
}
