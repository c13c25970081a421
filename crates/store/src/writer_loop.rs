//! The store's thread in the live service: takes outputs from a channel,
//! commits them at least once per second (at once when many wait), and
//! rides out a failing disk by holding outputs in memory within a bound,
//! retrying every second, dropping the oldest flows first when the bound is
//! reached and counting every output it drops.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pipeline::Output;

use crate::{StoreError, StoreStats, Writer};

/// Where the writer thread commits outputs: the embedded store's
/// [`Writer`] or the ClickHouse store's writer.
pub trait OutputSink: Send + 'static {
    /// Whether `out` can ever be written (a refusal is dropped and counted,
    /// never retried).
    fn check(&mut self, out: &Output) -> Result<(), String>;
    /// Commits `outs`, all or nothing (a failure is retried with the same
    /// outputs and more).
    fn write(&mut self, outs: &[Output]) -> Result<(), StoreError>;
    /// The counters it updates.
    fn set_stats(&mut self, stats: Arc<StoreStats>);
    /// Called when the input ended and everything received was written: a
    /// last chance to flush what the sink holds (a spool); says what is
    /// left behind, if anything.
    fn finish(&mut self) -> Option<String> {
        None
    }
}

impl OutputSink for Writer {
    fn check(&mut self, out: &Output) -> Result<(), String> {
        Writer::check(self, out)
    }
    fn write(&mut self, outs: &[Output]) -> Result<(), StoreError> {
        Writer::write(self, outs)
    }
    fn set_stats(&mut self, stats: Arc<StoreStats>) {
        self.stats = stats;
    }
}

/// How often the writer looks for outputs between commits: the longest an
/// output waits in the channel beyond its commit interval, and the delay
/// of a commit forced by a full batch.
const POLL: Duration = Duration::from_millis(20);

/// Called after each commit with the outputs it made durable, in order.
pub type OnWritten = Box<dyn FnMut(&[Output]) + Send>;

/// How the writer thread batches and how much it holds when writes fail.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Longest time an output waits before its commit (when writing works).
    pub commit_interval: Duration,
    /// Commit at once when this many outputs wait.
    pub max_batch: usize,
    /// Outputs held in memory at most while writes fail.
    pub pending_capacity: usize,
    /// Time between attempts while writes fail.
    pub retry_interval: Duration,
    /// Attempts at the end (the channel closed) before the remaining
    /// outputs are given up, counted in `drops`.
    pub close_attempts: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            commit_interval: Duration::from_secs(1),
            max_batch: 20_000,
            pending_capacity: 100_000,
            retry_interval: Duration::from_secs(1),
            close_attempts: 5,
        }
    }
}

/// What the writer thread did, when it ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriterSummary {
    /// Outputs committed.
    pub committed: u64,
    /// Outputs dropped (memory bound while failing, refused by the store,
    /// or still uncommitted when the last attempts at the end failed).
    pub dropped: u64,
    /// CPU time of the writer thread, seconds (for the benchmark's share of
    /// the store in the whole process).
    pub cpu_s: f64,
}

/// Starts the writer thread. It returns when `rx`'s senders are all gone
/// and everything received is committed (`Ok`), or when the last attempts
/// to commit the rest failed (`Err`, the rest counted in `stats.drops`).
/// `on_written` runs after each successful commit with the outputs it
/// made durable, in order (the service acknowledges work with it).
pub fn spawn_writer<W: OutputSink>(
    mut writer: W,
    rx: Receiver<Output>,
    stats: Arc<StoreStats>,
    opts: WriterOptions,
    on_written: OnWritten,
) -> JoinHandle<Result<WriterSummary, StoreError>> {
    writer.set_stats(stats.clone());
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || Loop::new(writer, stats, opts, on_written).run(rx))
        .expect("spawning the store writer thread")
}

struct Loop<W> {
    writer: W,
    stats: Arc<StoreStats>,
    opts: WriterOptions,
    on_written: OnWritten,
    /// Received, not committed, in arrival order; `arrived` in step.
    pending: Vec<Output>,
    arrived: Vec<Instant>,
    failing: bool,
    /// The memory bound was hit in this failing spell (logged once).
    shedding: bool,
    refused_logged: bool,
    summary: WriterSummary,
}

impl<W: OutputSink> Loop<W> {
    fn new(
        writer: W,
        stats: Arc<StoreStats>,
        opts: WriterOptions,
        on_written: OnWritten,
    ) -> Loop<W> {
        stats
            .pending_capacity
            .store(opts.pending_capacity as u64, Relaxed);
        Loop {
            writer,
            stats,
            opts,
            on_written,
            pending: Vec::new(),
            arrived: Vec::new(),
            failing: false,
            shedding: false,
            refused_logged: false,
            summary: WriterSummary::default(),
        }
    }

    fn run(mut self, rx: Receiver<Output>) -> Result<WriterSummary, StoreError> {
        let mut next = Instant::now() + self.opts.commit_interval;
        loop {
            // Take what is queued without waiting, up to a batch.
            let mut open = true;
            while self.failing || self.pending.len() < self.opts.max_batch {
                match rx.try_recv() {
                    Ok(o) => self.accept(o),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            let now = Instant::now();
            let due = now >= next
                || !open
                || (!self.failing && self.pending.len() >= self.opts.max_batch);
            if !due {
                // Polled, not woken by each send: a blocking receive would
                // cost the sender a wake-up (a futex call and two context
                // switches) per output while the writer idles between
                // commits, tens of thousands a second at full speed.
                std::thread::sleep(POLL.min(next - now));
                continue;
            }
            if !open {
                return self.close();
            }
            if self.pending.is_empty() || self.commit() {
                next = Instant::now() + self.opts.commit_interval;
            } else {
                next = Instant::now() + self.opts.retry_interval;
            }
        }
    }

    fn accept(&mut self, o: Output) {
        if let Err(why) = self.writer.check(&o) {
            self.stats.drops.fetch_add(1, Relaxed);
            self.summary.dropped += 1;
            if !self.refused_logged {
                eprintln!(
                    "trafficscope: store: {why}; such outputs are dropped (counted in drops)"
                );
                self.refused_logged = true;
            }
            return;
        }
        self.pending.push(o);
        self.arrived.push(Instant::now());
        self.stats.pending.store(self.pending.len() as u64, Relaxed);
        self.bound();
    }

    /// Keeps `pending` within its capacity: drops the oldest flows first,
    /// then the oldest of the rest. It frees 1 % of the capacity at a time,
    /// so that a long outage costs one pass per hundredth of the bound
    /// instead of one per output.
    fn bound(&mut self) {
        let cap = self.opts.pending_capacity.max(1);
        if self.pending.len() <= cap {
            return;
        }
        let target = cap - (cap / 100).min(cap - 1);
        let mut excess = self.pending.len() - target;
        let mut keep = vec![true; self.pending.len()];
        for (k, o) in self.pending.iter().enumerate() {
            if excess == 0 {
                break;
            }
            if matches!(o, Output::Flow(_)) {
                keep[k] = false;
                excess -= 1;
            }
        }
        for k in keep.iter_mut() {
            if excess == 0 {
                break;
            }
            if *k {
                *k = false;
                excess -= 1;
            }
        }
        let dropped = keep.iter().filter(|k| !**k).count() as u64;
        let mut it = keep.iter();
        self.pending.retain(|_| *it.next().unwrap());
        let mut it = keep.iter();
        self.arrived.retain(|_| *it.next().unwrap());
        self.stats.drops.fetch_add(dropped, Relaxed);
        self.stats.pending.store(self.pending.len() as u64, Relaxed);
        self.summary.dropped += dropped;
        if !self.shedding {
            eprintln!(
                "trafficscope: store: the in-memory bound of {cap} outputs is reached; dropping \
                 the oldest flows first (counted in drops)"
            );
            self.shedding = true;
        }
    }

    /// One attempt to commit everything pending; true when it worked.
    fn commit(&mut self) -> bool {
        match self.writer.write(&self.pending) {
            Ok(()) => {
                let now = Instant::now();
                let s = &self.stats;
                if let Some(first) = self.arrived.first() {
                    s.commit_lag_ns
                        .store(now.duration_since(*first).as_nanos() as u64, Relaxed);
                }
                s.commits.fetch_add(1, Relaxed);
                s.last_commit_unix_ns
                    .store(pipeline::unix_now_ns(), Relaxed);
                self.summary.committed += self.pending.len() as u64;
                (self.on_written)(&self.pending);
                if self.failing {
                    eprintln!(
                        "trafficscope: store: writing works again; {} outputs held in memory \
                         are committed",
                        self.pending.len()
                    );
                    self.failing = false;
                    self.shedding = false;
                    s.failing.store(false, Relaxed);
                }
                self.pending.clear();
                self.arrived.clear();
                s.pending.store(0, Relaxed);
                true
            }
            Err(e) => {
                let msg = e.to_string();
                if !self.failing {
                    eprintln!(
                        "trafficscope: store: writing failed: {msg}; holding up to {} outputs \
                         in memory and retrying every {:?}",
                        self.opts.pending_capacity, self.opts.retry_interval
                    );
                    self.failing = true;
                    self.stats.failing.store(true, Relaxed);
                }
                *self
                    .stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(msg);
                false
            }
        }
    }

    /// The channel closed: commit the rest, retrying a few times.
    fn close(mut self) -> Result<WriterSummary, StoreError> {
        let mut attempts = 0;
        while !self.pending.is_empty() {
            if self.commit() {
                break;
            }
            attempts += 1;
            if attempts >= self.opts.close_attempts.max(1) {
                let lost = self.pending.len() as u64;
                self.stats.drops.fetch_add(lost, Relaxed);
                self.stats.pending.store(0, Relaxed);
                self.summary.dropped += lost;
                let why = self
                    .stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_default();
                eprintln!(
                    "trafficscope: store: giving up at the end: {lost} outputs not written \
                     ({why})"
                );
                return Err(StoreError::Io(format!(
                    "{lost} outputs could not be written at the end: {why}"
                )));
            }
            std::thread::sleep(self.opts.retry_interval);
        }
        if let Some(left) = self.writer.finish() {
            eprintln!("trafficscope: store: {left}");
        }
        self.summary.cpu_s = thread_cpu_s();
        Ok(self.summary)
    }
}

/// CPU time of the calling thread, seconds.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this frame.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
