//! The writer thread: batching and acknowledgement order, the end of the
//! stream, refused outputs, and writes that fail (a lock held by someone
//! else; a full disk on a small tmpfs when running as root).

mod common;

use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use pipeline::Output;
use store::{spawn_writer, OnWritten, Store, StoreOptions, StoreStats, WriterOptions};

fn fast() -> WriterOptions {
    WriterOptions {
        commit_interval: Duration::from_millis(30),
        retry_interval: Duration::from_millis(50),
        ..WriterOptions::default()
    }
}

/// Start times of the outputs `on_written` was given, in order.
fn recorder() -> (Arc<Mutex<Vec<u64>>>, OnWritten) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let f = Box::new(move |outs: &[Output]| {
        let mut s = s.lock().unwrap();
        for o in outs {
            s.push(match o {
                Output::Bin(b) => b.start_ns,
                Output::Flow(f) => f.record.start_ns,
                Output::Window(w) => w.start_ns,
                Output::Hurst(h) => h.end_ns,
            });
        }
    });
    (seen, f)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn commits_in_order_and_everything_at_the_end() {
    let dir = TempDir::new("loop");
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let stats = store.stats();
    let (tx, rx) = channel();
    let (seen, on) = recorder();
    let h = spawn_writer(store.writer().unwrap(), rx, stats.clone(), fast(), on);
    let mut sent = Vec::new();
    for k in 0..600 {
        let t = T0 + k * S;
        tx.send(Output::Bin(bin(t, k))).unwrap();
        sent.push(t);
        if k % 3 == 0 {
            let f = flow(t, t + S, "10.0.0.1", k as u16, "10.0.0.2", 443, "web", 10);
            tx.send(flow_out(f)).unwrap();
            sent.push(t);
        }
        if k == 300 {
            // Part way: the first commits happen while sending goes on.
            wait_for("a commit", Duration::from_secs(5), || {
                stats.commits.load(Relaxed) > 0
            });
        }
    }
    drop(tx);
    let summary = h.join().unwrap().unwrap();
    assert_eq!(summary.committed, sent.len() as u64);
    assert_eq!(summary.dropped, 0);
    assert_eq!(*seen.lock().unwrap(), sent);
    assert!(stats.commits.load(Relaxed) >= 2);
    assert_eq!(stats.bins_written.load(Relaxed), 600);
    assert_eq!(stats.flows_written.load(Relaxed), 200);
    assert_eq!(stats.pending.load(Relaxed), 0);
    assert!(!stats.failing.load(Relaxed));
    assert!(stats.last_commit_unix_ns.load(Relaxed) > 0);
    assert!(stats.size_bytes.load(Relaxed) > 0);
    let t = store.reader().unwrap().totals(T0, T0 + DAY).unwrap();
    assert_eq!(t.bins, 600);
}

#[test]
fn refused_bins_are_dropped_and_counted() {
    let dir = TempDir::new("refused");
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let stats = store.stats();
    let (tx, rx) = channel();
    let (_, on) = recorder();
    let h = spawn_writer(store.writer().unwrap(), rx, stats.clone(), fast(), on);
    tx.send(Output::Bin(bin(T0, 1))).unwrap();
    let mut odd = bin(T0 + 2 * S, 2);
    odd.width_ns = 2 * S;
    tx.send(Output::Bin(odd)).unwrap();
    tx.send(Output::Bin(bin(T0 + S, 3))).unwrap();
    drop(tx);
    let summary = h.join().unwrap().unwrap();
    assert_eq!((summary.committed, summary.dropped), (2, 1));
    assert_eq!(stats.drops.load(Relaxed), 1);
}

#[test]
fn a_locked_database_holds_outputs_in_memory_within_the_bound() {
    let dir = TempDir::new("locked");
    let opts = StoreOptions {
        busy_timeout_ns: 20_000_000,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts).unwrap();
    let stats = store.stats();
    // Someone holds the write lock (a sqlite3 user with an open transaction).
    let blocker = rusqlite::Connection::open(store.path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (tx, rx) = channel();
    let (seen, on) = recorder();
    let wo = WriterOptions {
        pending_capacity: 200,
        ..fast()
    };
    let h = spawn_writer(store.writer().unwrap(), rx, stats.clone(), wo, on);
    // 100 bins and 300 flows, interleaved: 400 outputs for 200 places.
    let mut flows_sent = Vec::new();
    for k in 0..100u64 {
        let t = T0 + k * S;
        tx.send(Output::Bin(bin(t, k))).unwrap();
        for j in 0..3u64 {
            let f = flow(
                t,
                t + S,
                "10.0.0.1",
                (k * 3 + j) as u16,
                "10.0.0.2",
                443,
                "web",
                10,
            );
            tx.send(flow_out(f)).unwrap();
            flows_sent.push(k * 3 + j);
        }
    }
    wait_for("failing", Duration::from_secs(5), || {
        stats.failing.load(Relaxed)
    });
    wait_for("all received", Duration::from_secs(5), || {
        stats.pending.load(Relaxed) + stats.drops.load(Relaxed) == 400
    });
    let pending = stats.pending.load(Relaxed);
    assert!(pending <= 200, "{pending}");
    assert!(stats
        .last_error
        .lock()
        .unwrap()
        .as_deref()
        .unwrap_or("")
        .contains("locked"));
    // Writing works again: the backlog is committed, in order.
    blocker.execute_batch("ROLLBACK").unwrap();
    wait_for("recovery", Duration::from_secs(5), || {
        !stats.failing.load(Relaxed) && stats.pending.load(Relaxed) == 0
    });
    drop(tx);
    let summary = h.join().unwrap().unwrap();
    let drops = stats.drops.load(Relaxed);
    assert_eq!(summary.committed + drops, 400);
    assert_eq!(summary.dropped, drops);
    // Every bin kept; only flows dropped, the oldest ones.
    let r = store.reader().unwrap();
    assert_eq!(r.totals(T0, T0 + DAY).unwrap().bins, 100);
    let mut q = store::FlowQuery {
        from_ns: T0,
        to_ns: T0 + DAY,
        class: None,
        app: None,
        addr: None,
        port: None,
        sort: store::FlowSort::Start,
        descending: false,
        limit: 1000,
        offset: 0,
    };
    let page = r.flows(&q).unwrap();
    assert_eq!(page.total, 300 - drops);
    let ports: Vec<u64> = page
        .flows
        .iter()
        .map(|f| f["record"]["src_port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, flows_sent[drops as usize..].to_vec());
    q.limit = 0;
    assert_eq!(r.flows(&q).unwrap().flows.len(), 0);
    let seen = seen.lock().unwrap();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_ridden_out_and_the_backlog_committed() {
    let dir = TempDir::new("full");
    std::fs::create_dir_all(dir.path()).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipping the full-disk test: cannot mount a tmpfs (needs root)");
        return;
    }
    let _mount = Mount(dir.path().to_path_buf());
    let store_dir = dir.path().join("store");
    let (store, _) = Store::open(&store_dir, StoreOptions::default()).unwrap();
    let stats: Arc<StoreStats> = store.stats();
    let (tx, rx) = channel();
    let (seen, on) = recorder();
    let h = spawn_writer(store.writer().unwrap(), rx, stats.clone(), fast(), on);
    for o in bins(T0, 20, 0) {
        tx.send(o).unwrap();
    }
    wait_for("the first commits", Duration::from_secs(5), || {
        seen.lock().unwrap().len() == 20
    });
    // Fill the file system.
    let filler = dir.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    // A backlog larger than the WAL has room for.
    for o in bins(T0 + 20 * S, 600, 20) {
        tx.send(o).unwrap();
    }
    wait_for("failing", Duration::from_secs(10), || {
        stats.failing.load(Relaxed)
    });
    assert!(stats.pending.load(Relaxed) > 0);
    let err = stats.last_error.lock().unwrap().clone().unwrap_or_default();
    assert!(err.contains("full") || err.contains("disk"), "{err}");
    // Nothing committed meanwhile; nothing lost.
    assert_eq!(seen.lock().unwrap().len(), 20);
    std::fs::remove_file(&filler).unwrap();
    wait_for("recovery", Duration::from_secs(10), || {
        !stats.failing.load(Relaxed) && stats.pending.load(Relaxed) == 0
    });
    drop(tx);
    let summary = h.join().unwrap().unwrap();
    assert_eq!(summary.committed, 620);
    assert_eq!(stats.drops.load(Relaxed), 0);
    let t = store.reader().unwrap().totals(T0, T0 + DAY).unwrap();
    assert_eq!(t.bins, 620);
    let want: u64 = (0..620).map(|k| bin(T0 + k * S, k).bytes).sum();
    assert_eq!(t.bytes, want);
    drop(store);
}
