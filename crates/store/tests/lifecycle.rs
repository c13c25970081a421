//! The file's life: creation and identity, refusing files that are not
//! ours, reopening, retention by whole day tables, the size cap, atomic
//! batches, and a writer process killed with SIGKILL mid-stream.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::*;
use pipeline::{Output, SeriesName};
use store::{History, Metric, SeriesQuery, Store, StoreError, StoreOptions};

#[test]
fn a_new_store_is_private_ours_and_openable_by_sqlite3() {
    let dir = TempDir::new("create");
    let sub = dir.path().join("a/b");
    let (store, report) = Store::open(&sub, StoreOptions::default()).unwrap();
    assert!(!report.existed);
    assert_eq!(report.last_bin_end_ns, None);
    let mode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(store.path(), sub.join("trafficscope.db"));
    store.writer().unwrap().write(&bins(T0, 3, 1)).unwrap();
    let c = rusqlite::Connection::open(store.path()).unwrap();
    let p = |q: &str| {
        c.query_row(q, [], |r| r.get::<_, rusqlite::types::Value>(0))
            .unwrap()
    };
    use rusqlite::types::Value::{Integer, Text};
    assert_eq!(p("PRAGMA application_id"), Integer(0x5472_5363));
    assert_eq!(
        p("PRAGMA user_version"),
        Integer(i64::from(store::schema::SCHEMA_VERSION))
    );
    assert_eq!(p("PRAGMA auto_vacuum"), Integer(2));
    assert_eq!(p("PRAGMA journal_mode"), Text("wal".into()));
    drop(c);
    // The sqlite3 tool reads it, views included (skipped when not installed).
    match Command::new("sqlite3")
        .arg(store.path())
        .arg("SELECT time, packets FROM bins_1s ORDER BY start_ns LIMIT 1; SELECT count(*) FROM dims_1m;")
        .output()
    {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert!(text.starts_with("2024-01-01T00:00:00.000Z|"), "{text}");
        }
        Err(e) => eprintln!("sqlite3 not run ({e}); skipping the CLI check"),
    }
}

#[test]
fn files_that_are_not_ours_are_refused_untouched() {
    let dir = TempDir::new("foreign");
    std::fs::create_dir_all(dir.path()).unwrap();
    let db = dir.path().join("trafficscope.db");
    let refused = |what: &str| match Store::open(dir.path(), StoreOptions::default()) {
        Err(StoreError::Incompatible(m)) => {
            assert!(m.contains("trafficscope.db"), "{what}: {m}");
            m
        }
        Err(e) => panic!("{what}: {e:?}"),
        Ok(_) => panic!("{what}: opened"),
    };
    // A text file.
    std::fs::write(
        &db,
        "hello, I am a text file and long enough to have a header\n",
    )
    .unwrap();
    let m = refused("text");
    assert!(m.contains("not an SQLite database"), "{m}");
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "hello, I am a text file and long enough to have a header\n"
    );
    // Another program's SQLite database, without and with an application_id.
    std::fs::remove_file(&db).unwrap();
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let m = refused("foreign sqlite");
    assert!(m.contains("another program"), "{m}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA application_id = 1234").unwrap();
    }
    let m = refused("foreign id");
    assert!(m.contains("0x000004d2"), "{m}");
    // Ours, but from a newer version.
    std::fs::remove_file(&db).unwrap();
    drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA user_version = 3").unwrap();
    }
    let m = refused("newer");
    assert!(m.contains("schema version 3"), "{m}");
    // A directory with other files but no store is fine.
    assert!(matches!(
        store::open_history(dir.path()),
        Err(StoreError::Incompatible(_))
    ));
    let empty = TempDir::new("empty");
    std::fs::create_dir_all(empty.path()).unwrap();
    match store::open_history(empty.path()) {
        Err(StoreError::Io(m)) => assert!(m.contains("no trafficscope store"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let other = TempDir::new("others");
    std::fs::create_dir_all(other.path()).unwrap();
    std::fs::write(other.path().join("notes.txt"), "x").unwrap();
    let (_, r) = Store::open(other.path(), StoreOptions::default()).unwrap();
    assert!(!r.existed);
}

#[test]
fn one_process_per_store() {
    let dir = TempDir::new("lock");
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    match Store::open(dir.path(), StoreOptions::default()) {
        Err(StoreError::Io(m)) => assert!(m.contains("in use"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    drop(store);
    Store::open(dir.path(), StoreOptions::default()).unwrap();
}

#[test]
fn reopening_continues_the_history() {
    let dir = TempDir::new("reopen");
    {
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut w = store.writer().unwrap();
        w.write(&bins(T0, 100, 1)).unwrap();
        w.write(&[
            Output::Window(window(T0)),
            Output::Hurst(hurst(SeriesName::Total, T0 + S)),
            flow_out(flow(T0, T0 + S, "10.0.0.1", 1, "10.0.0.2", 443, "web", 100)),
        ])
        .unwrap();
    }
    // Read-only inspection while nobody writes, then while the service has it open.
    let h = store::open_history(dir.path()).unwrap();
    assert_eq!(h.totals(0, u64::MAX / 2).unwrap().bins, 100);
    let (store, r) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(h.extent().unwrap().last_ns, Some(T0 + 100 * S));
    assert!(store::open_history(dir.path()).is_ok());
    assert!(r.existed);
    assert_eq!(r.last_bin_end_ns, Some(T0 + 100 * S));
    assert_eq!(
        (r.bins_1s, r.bins_1m, r.windows, r.hurst, r.flows),
        (100, 2, 1, 1, 1)
    );
    assert!(
        r.summary().contains("2024-01-01T00:01:40.000Z"),
        "{}",
        r.summary()
    );
    assert!(r.to_string().starts_with("100 s of 1 s bins"), "{r}");
    // "Everything" at 1 s: the seconds held, not billions of gaps.
    let all = h
        .series(&SeriesQuery {
            metric: Metric::Packets,
            dim: None,
            from_ns: 0,
            to_ns: u64::MAX / 2,
            step_ns: S,
            top: 5,
            filter: Vec::new(),
        })
        .unwrap();
    assert_eq!(all.times_ns.len(), 100);
    assert_eq!(all.times_ns[0], T0);
    // More seconds: the minute cut by the restart is whole again.
    store
        .writer()
        .unwrap()
        .write(&bins(T0 + 100 * S, 20, 101))
        .unwrap();
    let t = store.reader_pool().totals(T0 + MIN, T0 + 2 * MIN).unwrap();
    assert_eq!(t.bins, 60);
    let m = store
        .reader()
        .unwrap()
        .series(&SeriesQuery {
            metric: Metric::Packets,
            dim: None,
            from_ns: T0 + MIN,
            to_ns: T0 + 2 * MIN,
            step_ns: MIN,
            top: 5,
            filter: Vec::new(),
        })
        .unwrap();
    let want: u64 = (60..120).map(|k| bin(T0 + k * S, 1 + k).packets).sum();
    assert_eq!(m.lines[0].values, vec![Some(want as f64)]);
}

#[test]
fn retention_drops_whole_old_days_relative_to_the_newest_data() {
    let dir = TempDir::new("retention");
    let opts = StoreOptions {
        bin_1s_retention_ns: 2 * DAY,
        flow_retention_ns: DAY,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts).unwrap();
    let mut w = store.writer().unwrap();
    // Data on 2024-01-01 (a replayed capture: long before the wall clock).
    w.write(&bins(T0 + 3600 * S, 5, 1)).unwrap();
    w.write(&[flow_out(flow(
        T0,
        T0 + S,
        "10.0.0.1",
        1,
        "10.0.0.2",
        443,
        "web",
        100,
    ))])
    .unwrap();
    let names = tables(store.path());
    for t in [
        "bins_1s_20240101",
        "dims_1s_20240101",
        "fine_20240101",
        "bins_1m_20240101",
        "flows_20240101",
    ] {
        assert!(names.contains(&t.to_string()), "{t} in {names:?}");
    }
    // Newer data 2 days later, within retention of the 1 s tier by one hour short.
    w.write(&bins(T0 + 2 * DAY + 1800 * S, 2, 7)).unwrap();
    let names = tables(store.path());
    assert!(names.contains(&"bins_1s_20240101".to_string()), "{names:?}");
    assert!(
        !names.contains(&"flows_20240101".to_string()),
        "flows older than a day: {names:?}"
    );
    // Newest data passes 2024-01-03T00:00 + … : day 1 is wholly older than newest − 48 h.
    w.write(&bins(T0 + 3 * DAY, 1, 9)).unwrap();
    let names = tables(store.path());
    for t in [
        "bins_1s_20240101",
        "dims_1s_20240101",
        "ended_1s_20240101",
        "fine_20240101",
    ] {
        assert!(!names.contains(&t.to_string()), "{t} still in {names:?}");
    }
    for t in [
        "bins_1m_20240101",
        "dims_1m_20240101",
        "bins_1s_20240103",
        "bins_1s_20240104",
    ] {
        assert!(names.contains(&t.to_string()), "{t} missing from {names:?}");
    }
    let stats = store.stats();
    assert!(
        stats
            .partitions_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 5
    );
    // The 1 min tier still answers for the dropped seconds.
    let r = store.reader().unwrap();
    let t = r.totals(T0, T0 + DAY).unwrap();
    let want: u64 = (0..5)
        .map(|k| bin(T0 + 3600 * S + k * S, 1 + k).bytes)
        .sum();
    assert_eq!(t.bytes, want);
    assert_eq!(t.bins, 5);
    let e = r.extent().unwrap();
    assert_eq!(e.tiers[0].first_ns, Some(T0 + 2 * DAY + 1800 * S));
    assert_eq!(e.tiers[1].first_ns, Some(T0 + 3600 * S));
    assert_eq!(e.first_ns, Some(T0 + 3600 * S));
    // A series from before the 1 s tier reaches back through the minutes.
    let s = r
        .series(&SeriesQuery {
            metric: Metric::Bytes,
            dim: None,
            from_ns: T0,
            to_ns: T0 + DAY,
            step_ns: 3600 * S,
            top: 5,
            filter: Vec::new(),
        })
        .unwrap();
    assert_eq!(s.tier_ns, MIN);
    assert_eq!(s.lines[0].values[1], Some(want as f64));
    assert_eq!(s.lines[0].values[0], None);
}

#[test]
fn the_size_cap_gives_up_the_oldest_detail_first() {
    let dir = TempDir::new("cap");
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut w = store.writer().unwrap();
    // Four days of 10 minutes each.
    for d in 0..4 {
        w.write(&bins(T0 + d * DAY, 600, d * 1000)).unwrap();
        w.write(&[flow_out(flow(
            T0 + d * DAY,
            T0 + d * DAY + S,
            "10.0.0.1",
            1,
            "10.0.0.2",
            443,
            "web",
            100,
        ))])
        .unwrap();
    }
    drop(w);
    let size_before = std::fs::metadata(store.path()).unwrap().len();
    drop(store);
    let cap = size_before * 2 / 3;
    let opts = StoreOptions {
        size_cap_bytes: Some(cap),
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts).unwrap();
    let mut w = store.writer().unwrap();
    w.write(&bins(T0 + 3 * DAY + 600 * S, 1, 5)).unwrap();
    let names = tables(store.path());
    // The oldest 1 s day went first; the 1 min tier and flows of that day stay.
    assert!(
        !names.contains(&"bins_1s_20240101".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"fine_20240101".to_string()), "{names:?}");
    assert!(names.contains(&"bins_1m_20240101".to_string()), "{names:?}");
    assert!(names.contains(&"flows_20240101".to_string()), "{names:?}");
    assert!(names.contains(&"bins_1s_20240104".to_string()), "{names:?}");
    let c = rusqlite::Connection::open(store.path()).unwrap();
    let used: i64 = c
        .query_row(
            "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert!((used * page) as u64 <= cap, "{} > {cap}", used * page);
    drop(c);
    drop(w);
    drop(store);
    // The file shrank (incremental vacuum, checkpointed when the last connection closed).
    let size_after = std::fs::metadata(dir.path().join("trafficscope.db"))
        .unwrap()
        .len();
    assert!(
        size_after <= cap,
        "{size_after} > {cap} (before {size_before})"
    );
}

#[test]
fn a_failed_batch_leaves_nothing_behind() {
    let dir = TempDir::new("atomic");
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut w = store.writer().unwrap();
    w.write(&bins(T0, 10, 1)).unwrap();
    let r = store.reader().unwrap();
    let before = r.totals(T0, T0 + DAY).unwrap();
    // A trigger makes any window insert fail: the batch's bins, written
    // before the window in the same transaction, must vanish with it.
    {
        let c = rusqlite::Connection::open(store.path()).unwrap();
        c.execute_batch(
            "CREATE TABLE windows_20240101 (start_ns INTEGER PRIMARY KEY, end_ns INTEGER NOT NULL,
                 hits, misses, unknown, pending, unlabelled, accuracy, by_class);
             INSERT INTO partitions VALUES ('windows_20240101', 'windows', 19723, '2024-01-01', 0);
             CREATE TRIGGER nope BEFORE INSERT ON windows_20240101 BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .unwrap();
    }
    let mut batch = bins(T0 + 10 * S, 50, 11);
    batch.push(Output::Bin(bin(T0 + DAY, 99)));
    batch.push(Output::Window(window(T0)));
    let e = w.write(&batch).unwrap_err();
    assert!(e.to_string().contains("disk on fire"), "{e}");
    assert_eq!(r.totals(T0, T0 + DAY).unwrap(), before);
    let names = tables(store.path());
    assert!(!names.contains(&"bins_1s_20240102".to_string()));
    // The writer goes on after the failure.
    {
        let c = rusqlite::Connection::open(store.path()).unwrap();
        c.execute_batch("DROP TRIGGER nope").unwrap();
    }
    w.write(&batch).unwrap();
    assert_eq!(r.totals(T0, T0 + DAY).unwrap().bins, 60);
    let c = rusqlite::Connection::open(store.path()).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

/// Not a test by itself: the child process of
/// `a_writer_killed_mid_stream_leaves_a_consistent_store`. Writes one
/// second per transaction for ever and prints each committed bin's end.
#[test]
#[ignore]
fn child_writer_for_kill_test() {
    let Ok(dir) = std::env::var("TS_STORE_KILL_DIR") else {
        return;
    };
    let (store, _) = Store::open(std::path::Path::new(&dir), StoreOptions::default()).unwrap();
    let mut w = store.writer().unwrap();
    for k in 0.. {
        let t = T0 + k * S;
        let mut batch = vec![Output::Bin(bin(t, k))];
        if k % 5 == 0 {
            batch.push(Output::Window(window(t)));
        }
        batch.push(flow_out(flow(
            t,
            t + S,
            "10.0.0.1",
            (k % 60_000) as u16,
            "10.0.0.2",
            443,
            "web",
            100,
        )));
        w.write(&batch).unwrap();
        println!("committed {}", t + S);
    }
}

#[test]
fn a_writer_killed_mid_stream_leaves_a_consistent_store() {
    let dir = TempDir::new("kill");
    std::fs::create_dir_all(dir.path()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer_for_kill_test",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TS_STORE_KILL_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = 0u64;
    let mut n = 0;
    while n < 150 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(v) = line.strip_prefix("committed ") {
            last = v.parse().unwrap();
            n += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(n >= 150, "the child wrote only {n} bins");
    let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    // Every commit the child reported survived.
    assert!(report.last_bin_end_ns.unwrap() >= last);
    let c = rusqlite::Connection::open(store.path()).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // Consistent: no bin without its dimension rows, minutes equal their seconds.
    let end = report.last_bin_end_ns.unwrap();
    let held = (end - T0) / S;
    let r = store.reader().unwrap();
    let t = r.totals(T0, end).unwrap();
    assert_eq!(t.bins, held);
    let want: u64 = (0..held).map(|k| bin(T0 + k * S, k).bytes).sum();
    assert_eq!(t.bytes, want);
    let by_class: u64 = t
        .by_dim
        .iter()
        .filter(|d| d.0 == pipeline::Dim::Class)
        .map(|d| d.3)
        .sum();
    assert_eq!(by_class, want);
    let s = r
        .series(&SeriesQuery {
            metric: Metric::Bytes,
            dim: None,
            from_ns: T0,
            to_ns: end,
            step_ns: MIN,
            top: 5,
            filter: Vec::new(),
        })
        .unwrap();
    let minutes: f64 = s.lines[0].values.iter().flatten().sum();
    assert_eq!(minutes as u64, want);
    assert_eq!(report.flows, held);
}
