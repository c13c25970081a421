//! Helpers shared by the end-to-end tests: locating data, running the binary,
//! parsing CSV.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared/data` beside the repository (override with TRAFFICSCOPE_DATA).
pub fn data_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TRAFFICSCOPE_DATA") {
        return PathBuf::from(d);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let d = repo.join("../shared/data");
    assert!(
        d.is_dir(),
        "test data not found at {} (set TRAFFICSCOPE_DATA)",
        d.display()
    );
    d.canonicalize().unwrap()
}

/// The test data directory if it exists (TRAFFICSCOPE_DATA, else
/// `../shared/data` beside the repository), for tests that skip without it.
pub fn data_if_present() -> Option<PathBuf> {
    let d = match std::env::var_os("TRAFFICSCOPE_DATA") {
        Some(d) => PathBuf::from(d),
        None => repo_dir().join("../shared/data"),
    };
    d.is_dir().then_some(d)
}

/// Whether `tool --version` runs.
pub fn have_tool(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The two endpoints of a flow in a fixed order (addresses normalised, so
/// that tools writing IPv6 differently agree), whichever side sent first.
pub fn ordered_endpoints(a: &str, pa: u16, b: &str, pb: u16) -> ((String, u16), (String, u16)) {
    let norm = |s: &str| {
        s.parse::<std::net::IpAddr>()
            .map_or(s.to_string(), |i| i.to_string())
    };
    let (ea, eb) = ((norm(a), pa), (norm(b), pb));
    if ea <= eb {
        (ea, eb)
    } else {
        (eb, ea)
    }
}

pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_trafficscope")
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run trafficscope")
}

/// `trafficscope flows -r CAP` with timeouts too long to end a flow, so
/// each five-tuple of the capture is one flow (as peer tools count them),
/// in the given output format (`csv` or `jsonl`); panics naming the file
/// if it fails.
pub fn flows_without_timeouts(cap: &Path, format: &str) -> String {
    let res = run(&[
        "flows",
        "-r",
        cap.to_str().unwrap(),
        "--format",
        format,
        "--idle-timeout",
        "100000000s",
        "--active-timeout",
        "100000000s",
    ]);
    assert!(
        res.status.success(),
        "{}: flows failed: {}",
        cap.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8(res.stdout).expect("UTF-8 output")
}

/// All files under `dir` (recursively) whose name ends with one of `exts`.
pub fn files_with_ext(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                if exts.iter().any(|x| name.ends_with(x)) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Splits one CSV line (RFC 4180 quoting).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Parses CSV text into rows of (header → value).
pub fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or(""));
    lines
        .filter(|l| !l.is_empty())
        .map(|l| header.iter().cloned().zip(csv_fields(l)).collect())
        .collect()
}

/// Makes sure tshark is installed; the oracle tests must not pass without it.
pub fn require_tool(tool: &str, package: &str) {
    assert!(
        have_tool(tool),
        "{tool} is needed as a test oracle: run `scripts/test` (installs it) or `apt-get install -y {package}`"
    );
}

/// `trafficscope run -r CAP --speed max --no-listen --labels LABELS` into
/// the store at `data`, keeping everything (some captures span years);
/// panics with run's stderr if it fails.
pub fn run_offline(cap: &Path, labels: &Path, data: &Path) {
    let out = run(&[
        "run",
        "-r",
        cap.to_str().unwrap(),
        "--speed",
        "max",
        "--no-listen",
        "--labels",
        labels.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--bin-retention",
        "36500d",
        "--flow-retention",
        "36500d",
    ]);
    assert!(
        out.status.success(),
        "run on {} failed: {}",
        cap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child's stderr read line by line on a thread of its own (so the child
/// never blocks on a full pipe), with everything read kept in `log`.
pub struct StderrLines {
    rx: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub log: String,
}

impl StderrLines {
    /// Takes `child`'s piped stderr.
    pub fn of(child: &mut std::process::Child) -> StderrLines {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for l in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        StderrLines {
            rx,
            reader: Some(reader),
            log: String::new(),
        }
    }

    /// The first line for which `want` gives `Some`, waiting at most
    /// `within` (then panics with what was read, naming `what`).
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        within: std::time::Duration,
        mut want: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let l = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{what} never came; stderr:\n{}", self.log));
            self.log.push_str(&l);
            self.log.push('\n');
            if let Some(v) = want(&l) {
                return v;
            }
        }
    }

    /// Everything to the end of the stream (call once the child exited).
    pub fn finish(mut self) -> String {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        for l in self.rx.try_iter() {
            self.log.push_str(&l);
            self.log.push('\n');
        }
        self.log
    }
}
