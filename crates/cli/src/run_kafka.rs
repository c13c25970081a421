//! `run --to kafka://…` (a capture node) and `run --from kafka://…` (an
//! analysis node). Wiring only: the encoding and the client are in
//! `transport`, the stages in `pipeline`, the store in `store`.
//!
//! An analysis node runs one [`Pipeline`] per substream, a capture node's
//! records in one partition (the records of a flow share a partition and
//! come in order), and tags its bins and windows with the substream as
//! their source; the store keeps each source's part and sums them. An
//! offset is committed once every output its records fed is durable and
//! no flow still open had a packet at or before it, so a restart (or the
//! member that takes the partition over) replays from there and rebuilds
//! every open flow whole; outputs the store already holds for that source
//! are skipped.

#[cfg(feature = "kafka")]
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
#[cfg(feature = "kafka")]
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Duration;
#[cfg(feature = "kafka")]
use std::time::Instant;

use clap::Args;
#[cfg(feature = "kafka")]
use pipeline::{Event, Input, Pipeline};
use pipeline::{Output, PipelineConfig, SourceConfig, Status};

use crate::Failure;

/// Kafka options of `run`.
#[derive(Args, Debug, Clone, Default)]
pub struct KafkaArgs {
    /// Capture node: publish packet records to Kafka
    /// (kafka://HOST:PORT[,HOST:PORT…]/TOPIC) instead of analysing them
    /// here. The topic is created when missing (--partitions).
    #[arg(long, value_name = "URL", conflicts_with = "from")]
    pub to: Option<String>,
    /// Analysis node: read packet records from Kafka
    /// (kafka://HOST:PORT/TOPIC) as a member of --group.
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Consumer group of analysis nodes sharing a topic's partitions.
    #[arg(long, value_name = "NAME", default_value = "trafficscope")]
    pub group: String,
    /// Capture node name carried by every record (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Partitions of the topic when --to creates it.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub partitions: i32,
    /// Records queued for the broker at most, in bytes (e.g. 64M): beyond
    /// it a live capture drops batches and counts them.
    #[arg(long = "to-buffer", value_name = "SIZE", default_value = "64M", value_parser = crate::run_cmd::parse_size)]
    pub to_buffer: u64,
    /// When the queue is full: `drop` (count and go on) or `block` (wait).
    /// Default: block for files replayed with --speed max, drop otherwise.
    #[arg(long = "to-when-full", value_name = "drop|block")]
    pub to_when_full: Option<String>,
    /// Send records without LZ4 compression.
    #[arg(long = "no-compression")]
    pub no_compression: bool,
    /// Analysis node: exit once no message has come for this long (e.g.
    /// 10s) and everything read is committed; by default it runs until
    /// Ctrl-C. Only time spent owning partitions with the broker answering
    /// counts: an outage or a member left without partitions is not idle.
    #[arg(long = "exit-idle", value_name = "DURATION", value_parser = crate::parse_duration)]
    pub exit_idle: Option<Duration>,
    /// Also send each finished flow as JSON (the live stream's `flow`
    /// event) to this Kafka topic (kafka://HOST:PORT/TOPIC), for other
    /// consumers; created with --partitions when missing. Local runs and
    /// analysis nodes.
    #[arg(long = "flows-to", value_name = "URL", conflicts_with = "to")]
    pub flows_to: Option<String>,
}

#[cfg(feature = "kafka")]
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

#[cfg(not(feature = "kafka"))]
pub fn publish(_: &crate::run_cmd::RunArgs, _: &SourceConfig, _: &str) -> Result<(), Failure> {
    Err(Failure::Usage(
        "this trafficscope was built without the `kafka` feature".into(),
    ))
}

/// A capture node: every frame of the source becomes a record in Kafka.
#[cfg(feature = "kafka")]
pub fn publish(
    args: &crate::run_cmd::RunArgs,
    source_cfg: &SourceConfig,
    describe: &str,
) -> Result<(), Failure> {
    use transport::kafka::{KafkaUrl, Publisher, PublisherOptions, WhenFull};
    let k = &args.kafka;
    let url: KafkaUrl =
        k.to.as_deref()
            .unwrap_or("")
            .parse()
            .map_err(Failure::Usage)?;
    let when_full = match k.to_when_full.as_deref() {
        Some("drop") => WhenFull::Drop,
        Some("block") => WhenFull::Block,
        Some(x) => {
            return Err(Failure::Usage(format!(
                "--to-when-full {x:?}: expected drop or block"
            )))
        }
        None if !args.read.is_empty() && args.speed.0.is_none() => WhenFull::Block,
        None => WhenFull::Drop,
    };
    let node = k.node.clone().unwrap_or_else(host_name);
    let opts = PublisherOptions {
        node: node.clone(),
        buffer_bytes: k.to_buffer as usize,
        compression: !k.no_compression,
        when_full,
        create_partitions: k.partitions.max(1),
        ..PublisherOptions::default()
    };
    let mut publisher =
        Publisher::connect(&url, opts).map_err(|e| Failure::Input(anyhow::anyhow!(e)))?;
    let stats = publisher.stats();
    eprintln!(
        "trafficscope: capture node {node}: {describe} → {url} ({} partitions)",
        publisher.partitions()
    );
    let flow_cfg = args.flow.config();
    let mut encoder =
        transport::Encoder::new(&flow_cfg, args.local_net.clone().unwrap_or_default());
    pipeline::source::stop_on_signals();
    let mut input = Input::open(source_cfg)?;
    let started = Instant::now();
    let line = crate::run_cmd::Ticker::start({
        let stats = stats.clone();
        move || {
            format!(
                "{} records, {} acknowledged, {} dropped (queue full){}",
                stats.records.load(Relaxed),
                stats.records_acked.load(Relaxed),
                stats.dropped_queue_full.load(Relaxed),
                if stats.failing.load(Relaxed) {
                    ", BROKER FAILING (retrying)"
                } else {
                    ""
                }
            )
        }
    });
    let result = input.for_each(|ev| {
        match ev {
            Event::Frame(f, _) => {
                let r = encoder.encode(f);
                publisher.publish(&r);
            }
            Event::Tick(now) => publisher.tick(now),
        }
        Ok(())
    });
    input.report_live();
    let left = publisher.finish(Duration::from_secs(60));
    line.stop();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let records = stats.records.load(Relaxed);
    let acked = stats.records_acked.load(Relaxed);
    let bytes = stats.bytes_acked.load(Relaxed);
    let dropped = stats.dropped_queue_full.load(Relaxed);
    eprintln!(
        "trafficscope: {records} records published to {url} in {secs:.1} s ({:.0}/s): {acked} \
         acknowledged in {} messages, {dropped} dropped (queue full), {:.1} bytes/record before \
         compression, {} retried sends",
        records as f64 / secs,
        stats.messages_acked.load(Relaxed),
        if acked > 0 {
            bytes as f64 / acked as f64
        } else {
            0.0
        },
        stats.retries.load(Relaxed)
    );
    result?;
    if left > 0 {
        return Err(Failure::Input(anyhow::anyhow!(
            "{left} records were not acknowledged by {} within 60 s",
            url.brokers
        )));
    }
    Ok(())
}

/// What an analysis node shares with `run`'s wiring.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub struct AnalysisContext<'a> {
    pub model: classify::ModelFile,
    pub labels: Option<classify::Labels>,
    pub pcfg: PipelineConfig,
    pub status: Arc<Status>,
    /// To the store's writer.
    pub tx: &'a mpsc::SyncSender<Output>,
    pub live: Option<&'a tokio::sync::broadcast::Sender<Arc<Output>>>,
    /// Outputs the store made durable so far (in the order sent).
    pub durable: Arc<AtomicU64>,
    /// Per source: end of its newest stored bin and window.
    /// Read again at every assignment: a partition that moves here was
    /// stored by its previous owner up to a point this node must not
    /// overwrite with the partial bins of its replay.
    #[allow(clippy::type_complexity)]
    pub extents: &'a dyn Fn() -> Result<store::SourceExtents, store::StoreError>,
    /// Reads the store's flows: a flow replayed from the middle (its
    /// head was committed before a restart) is recognised as a piece of a
    /// stored flow and not stored again.
    pub reader: Option<Arc<dyn store::History>>,
    /// `--flows-to`: finished flows as JSON to Kafka.
    pub flows_out: Option<&'a crate::flows_to::FlowsOut>,
}

#[cfg(not(feature = "kafka"))]
pub fn analyse(_: &crate::run_cmd::RunArgs, _: AnalysisContext<'_>) -> Result<(), Failure> {
    Err(Failure::Usage(
        "this trafficscope was built without the `kafka` feature".into(),
    ))
}

/// One capture node's records in one partition.
#[cfg(feature = "kafka")]
struct Substream {
    pipe: Pipeline,
    source: String,
    session: u64,
    /// Next sequence number expected (duplicates are below it).
    next_seq: u64,
    ended: bool,
    /// Stored already: bins ending and windows ending at or before these.
    skip_bins_to: u64,
    skip_windows_to: u64,
    frames: u64,
}

/// A message read and not committed yet.
#[cfg(feature = "kafka")]
struct Pending {
    offset: i64,
    /// The capture node whose substream it fed.
    node: Option<String>,
    /// Newest capture time of its records (0: none).
    max_ts: u64,
    /// Where a replay must start to rebuild every flow open right after
    /// this message whole: the message holding the oldest open flow's first
    /// packet, over every substream of the partition.
    replay_from: i64,
    /// Outputs that must be durable before it counts as stored (set once
    /// its records are all in closed bins and windows).
    needed: Option<u64>,
}

/// What an analysis node tracks per partition.
#[cfg(feature = "kafka")]
#[derive(Default)]
struct PartitionLog {
    /// Messages from the committed offset on, in offset order.
    log: VecDeque<Pending>,
    /// Per capture node: its replay point as of its latest message.
    replay_from: HashMap<String, i64>,
    committed: i64,
}

#[cfg(feature = "kafka")]
impl PartitionLog {
    /// Appends message `offset` of `node` (None: not a record) and sets
    /// its replay point from `oldest_open` (the substream's oldest open
    /// flow start after it).
    fn push(&mut self, offset: i64, node: Option<&str>, max_ts: u64, oldest_open: Option<u64>) {
        self.log.push_back(Pending {
            offset,
            node: node.map(str::to_string),
            max_ts,
            replay_from: offset + 1,
            needed: None,
        });
        if let Some(n) = node {
            let r = match oldest_open {
                None => offset + 1,
                Some(start) => self
                    .log
                    .iter()
                    .find(|e| e.node.as_deref() == Some(n) && e.max_ts >= start)
                    .or(self.log.front())
                    .map_or(offset + 1, |e| e.offset),
            };
            self.replay_from.insert(n.to_string(), r);
        }
        let r = self
            .replay_from
            .values()
            .copied()
            .min()
            .unwrap_or(offset + 1)
            .min(offset + 1);
        if let Some(e) = self.log.back_mut() {
            e.replay_from = r;
        }
    }
}

#[cfg(feature = "kafka")]
pub fn analyse(args: &crate::run_cmd::RunArgs, cx: AnalysisContext<'_>) -> Result<(), Failure> {
    use transport::kafka::{Event as KEvent, KafkaUrl, Subscriber};
    use transport::{Kind, Message};
    let k = &args.kafka;
    let url: KafkaUrl = k
        .from
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(Failure::Usage)?;
    let sub = Subscriber::connect(&url, &k.group, Duration::from_secs(10))
        .map_err(|e| Failure::Input(anyhow::anyhow!(e)))?;
    cx.status.kafka_consumer.store(true, Relaxed);
    eprintln!(
        "trafficscope: analysis node in group {} reading {url}",
        k.group
    );
    // Substreams learn time from the capture node's ticks, exactly.
    let pcfg = PipelineConfig {
        tick_grace_ns: 0,
        ..cx.pcfg.clone()
    };
    let mut subs: HashMap<(i32, String), Substream> = HashMap::new();
    let mut parts: BTreeMap<i32, PartitionLog> = BTreeMap::new();
    let mut logged_bad: BTreeMap<i32, u64> = BTreeMap::new();
    let mut sent = 0u64;
    let mut last_message = Instant::now();
    let mut seen_any = false;
    let mut last_commit = Instant::now();
    let mut out_buf: Vec<Output> = Vec::new();
    let mut extents = BTreeMap::new();
    // Partitions owned as of the last assignment (what the store holds for
    // them is read in `extents`): a message of another is not read.
    let mut owned: Vec<i32> = Vec::new();
    // Hurst points of the summed traffic, made from the store (this node's
    // pipelines see some partitions only).
    let mut hurst = SummedHurstTask::new(&pcfg);
    let mut newest_bin_end = 0u64;
    pipeline::source::stop_on_signals();

    let mut poll_errors = 0u64;
    let result: Result<(), Failure> = loop {
        if pipeline::source::stop_requested() {
            break Ok(());
        }
        // Idle is a quiet topic, not an outage nor a member without
        // partitions (after a broker pause it may rejoin with none for a
        // while; what it read before is not the end).
        let errors = sub.stats().poll_errors.load(Relaxed);
        if errors != poll_errors || owned.is_empty() {
            poll_errors = errors;
            last_message = Instant::now();
        }
        match sub.next(Duration::from_millis(100)) {
            Some(KEvent::Failed(e)) => break Err(Failure::Input(anyhow::anyhow!(e))),
            Some(KEvent::Assigned(assigned)) => {
                eprintln!("trafficscope: kafka: assigned partitions {assigned:?}");
                seen_any |= !assigned.is_empty();
                // Partitions taken away: their uncommitted work is replayed
                // by their new owner.
                subs.retain(|(p, _), _| assigned.contains(p));
                parts.retain(|p, _| assigned.contains(p));
                owned.clone_from(&assigned);
                // What the store holds decides what a replay skips: without
                // it nothing is read. A store that does not answer (a
                // ClickHouse outage) is asked again every second.
                let mut said = false;
                let read = loop {
                    match (cx.extents)() {
                        Ok(e) => break Ok(e),
                        Err(e) if pipeline::source::stop_requested() => break Err(e),
                        Err(e) => {
                            if !said {
                                eprintln!(
                                    "trafficscope: kafka: cannot read what the store holds \
                                     ({e}); reading the partitions waits, asking again every \
                                     second"
                                );
                                said = true;
                            }
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                };
                match read {
                    Ok(e) => extents = e,
                    Err(e) => break Err(Failure::Input(e.into())),
                }
                // Idle counts from here: a partition with nothing new to
                // read is idle too.
                last_message = Instant::now();
            }
            Some(KEvent::Messages(batch)) => {
                last_message = Instant::now();
                seen_any = true;
                for d in batch.into_iter().filter(|d| owned.contains(&d.partition)) {
                    let q = parts.entry(d.partition).or_default();
                    let m = match Message::parse(&d.value) {
                        Ok(m) => m,
                        Err(e) => {
                            cx.status.records_undecodable.fetch_add(1, Relaxed);
                            let n = logged_bad.entry(d.partition).or_default();
                            if *n == 0 {
                                eprintln!(
                                    "trafficscope: kafka: partition {} offset {}: {e}; skipped \
                                     (further bad messages in this partition are counted only)",
                                    d.partition, d.offset
                                );
                            }
                            *n += 1;
                            q.push(d.offset, None, 0, None);
                            continue;
                        }
                    };
                    let key = (d.partition, m.node.to_string());
                    let s = match subs.entry(key.clone()) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let source = format!("{}:{}:{}", url.topic, d.partition, m.node);
                            let e: store::SourceExtent =
                                extents.get(&source).copied().unwrap_or_default();
                            let (b, w) = (e.bins_end_ns, e.windows_end_ns);
                            let pipe = Pipeline::new(
                                cx.model.clone(),
                                cx.labels.clone(),
                                pcfg.clone(),
                                cx.status.clone(),
                            )
                            .map_err(Failure::Usage)?;
                            v.insert(Substream {
                                pipe,
                                source,
                                session: m.session,
                                next_seq: 0,
                                ended: false,
                                skip_bins_to: b,
                                skip_windows_to: w,
                                frames: 0,
                            })
                        }
                    };
                    if m.session != s.session {
                        if m.session < s.session {
                            cx.status.records_duplicate.fetch_add(1, Relaxed);
                            q.push(d.offset, None, 0, None);
                            continue;
                        }
                        // The capture node restarted: a new run of it.
                        s.pipe = Pipeline::new(
                            cx.model.clone(),
                            cx.labels.clone(),
                            pcfg.clone(),
                            cx.status.clone(),
                        )
                        .map_err(Failure::Usage)?;
                        s.session = m.session;
                        s.next_seq = 0;
                        s.ended = false;
                    }
                    let mut max_ts = 0;
                    let mut ends_now = false;
                    match m.kind {
                        Kind::Packets => {
                            if m.seq < s.next_seq {
                                cx.status.records_duplicate.fetch_add(1, Relaxed);
                            } else {
                                for r in m.records() {
                                    s.frames += 1;
                                    let f = r.as_frame(s.frames);
                                    max_ts = max_ts.max(r.ts_ns);
                                    s.pipe.push(&f, pipeline::Origin::default());
                                }
                                s.next_seq = m.seq + m.count as u64;
                            }
                        }
                        Kind::Tick => s.pipe.tick(m.ts_ns),
                        Kind::End => {
                            if !s.ended {
                                s.pipe.finish();
                                s.ended = true;
                                ends_now = true;
                            }
                        }
                    }
                    q.push(
                        d.offset,
                        Some(&key.1),
                        max_ts,
                        if s.ended {
                            None
                        } else {
                            s.pipe.oldest_open_flow_ns()
                        },
                    );
                    // Outputs leave as they close.
                    let skip = (s.skip_bins_to, s.skip_windows_to);
                    for o in s.pipe.drain() {
                        if let Some(o) = tag(o, &s.source, skip, cx.reader.as_ref()) {
                            out_buf.push(o);
                        }
                    }
                    // The source's last bin says so: what waits for every
                    // source (the summed Hurst points) stops waiting for it.
                    if ends_now {
                        if let Some(Output::Bin(b)) = out_buf
                            .iter_mut()
                            .rev()
                            .find(|o| matches!(o, Output::Bin(_)))
                        {
                            b.source_ended = true;
                        }
                    }
                    for o in out_buf.drain(..) {
                        if let Output::Bin(b) = &o {
                            cx.status.bins_published.fetch_add(1, Relaxed);
                            newest_bin_end = newest_bin_end.max(b.start_ns + b.width_ns);
                        }
                        if let Some(f) = cx.flows_out {
                            f.offer(&o);
                        }
                        if let Some(l) = cx.live.filter(|l| l.receiver_count() > 0) {
                            let _ = l.send(Arc::new(o.clone()));
                        }
                        if cx.tx.send(o).is_err() {
                            return Err(Failure::Input(anyhow::anyhow!(
                                "the store writer stopped"
                            )));
                        }
                        sent += 1;
                    }
                }
            }
            None => {}
        }
        let durable = cx.durable.load(Relaxed);
        cx.status
            .queue_len
            .store(sent.saturating_sub(durable), Relaxed);
        let ks = sub.stats();
        let read_not_committed: usize = parts.values().map(|q| q.log.len()).sum();
        cx.status
            .kafka_lag_messages
            .store(ks.unread() + read_not_committed as u64, Relaxed);
        cx.status
            .kafka_lag_known
            .store(ks.known.load(Relaxed), Relaxed);
        cx.status
            .kafka_partitions
            .store(ks.partitions.load(Relaxed), Relaxed);
        if last_commit.elapsed() >= Duration::from_millis(200) {
            last_commit = Instant::now();
            let mut offsets = BTreeMap::new();
            for (p, q) in parts.iter_mut() {
                let marks: HashMap<&str, u64> = subs
                    .iter()
                    .filter(|((sp, _), _)| sp == p)
                    .map(|((_, n), s)| {
                        let m = if s.ended {
                            u64::MAX
                        } else {
                            s.pipe.closed_before_ns()
                        };
                        (n.as_str(), m)
                    })
                    .collect();
                for e in q.log.iter_mut().filter(|e| e.needed.is_none()) {
                    let mark = e
                        .node
                        .as_deref()
                        .and_then(|n| marks.get(n).copied())
                        .unwrap_or(u64::MAX);
                    if e.max_ts < mark {
                        e.needed = Some(sent);
                    }
                }
                let next = q
                    .log
                    .iter()
                    .take_while(|e| e.needed.is_some_and(|n| n <= durable))
                    .last()
                    .map(|e| e.replay_from);
                if let Some(next) = next.filter(|n| *n > q.committed) {
                    q.committed = next;
                    offsets.insert(*p, next);
                    while q.log.front().is_some_and(|e| e.offset < next) {
                        q.log.pop_front();
                    }
                }
            }
            sub.commit(offsets);
            if let Some(idle) = k.exit_idle {
                let all_done = parts
                    .values()
                    .all(|q| q.log.iter().all(|e| e.needed.is_some_and(|n| n <= durable)));
                if seen_any && all_done && last_message.elapsed() >= idle {
                    // Everything is stored: the last points are due now.
                    if let Err(e) = hurst.finish(&cx, &sub, &mut sent) {
                        break Err(e);
                    }
                    break Ok(());
                }
            }
        }
        if hurst.last.elapsed() >= Duration::from_secs(1) {
            if let Err(e) = hurst.run(&cx, &sub, newest_bin_end, 64, &mut sent) {
                break Err(e);
            }
        }
    };
    // Give the last commits a moment to reach the coordinator.
    std::thread::sleep(Duration::from_millis(300));
    sub.close();
    let bad: u64 = logged_bad.values().sum();
    eprintln!(
        "trafficscope: analysis node: {} substreams, {} messages undecodable, {} duplicate",
        subs.len(),
        bad,
        cx.status.records_duplicate.load(Relaxed)
    );
    result
}

/// The output as the store takes it from a substream: bins and windows
/// carry their source; what the store holds already is skipped; Hurst
/// points describe one substream only and are not kept (the fine series
/// they come from is summed in the store).
#[cfg(feature = "kafka")]
fn tag(
    o: Output,
    source: &str,
    (skip_bins_to, skip_windows_to): (u64, u64),
    reader: Option<&Arc<dyn store::History>>,
) -> Option<Output> {
    match o {
        Output::Bin(mut b) => {
            if b.start_ns + b.width_ns <= skip_bins_to {
                return None;
            }
            b.source = source.to_string();
            Some(Output::Bin(b))
        }
        Output::Window(mut w) => {
            if w.end_ns <= skip_windows_to {
                return None;
            }
            w.source = source.to_string();
            Some(Output::Window(w))
        }
        Output::Hurst(_) => None,
        Output::Flow(f) => {
            let r = &f.record;
            if r.start_ns < skip_bins_to && reader.is_some_and(|h| piece_of_stored_flow(h, r)) {
                return None;
            }
            Some(Output::Flow(f))
        }
    }
}

/// The sliding Hurst points of the summed traffic (`store::SummedHurst`):
/// looked for once a second, made when every source has passed a window's
/// end, and sent to the store and the live stream like any output.
#[cfg(feature = "kafka")]
struct SummedHurstTask {
    h: store::SummedHurst,
    last: Instant,
    warned: bool,
}

#[cfg(feature = "kafka")]
impl SummedHurstTask {
    fn new(p: &PipelineConfig) -> SummedHurstTask {
        SummedHurstTask {
            h: store::SummedHurst::new(p.hurst_window, p.hurst_every, p.fine_ns),
            last: Instant::now(),
            warned: false,
        }
    }

    /// Every point due, also those of sources other nodes read, in rounds
    /// (a stop request ends them).
    fn finish(
        &mut self,
        cx: &AnalysisContext<'_>,
        sub: &transport::kafka::Subscriber,
        sent: &mut u64,
    ) -> Result<(), Failure> {
        while !pipeline::source::stop_requested() {
            let before = self.h.next_end_ns();
            self.run(cx, sub, u64::MAX, 64, sent)?;
            if self.h.next_end_ns() == before {
                break;
            }
        }
        Ok(())
    }

    /// At most `max_steps` window steps; `newest_bin_end`: the newest bin
    /// this node has sent (nothing is due before a source passes it).
    fn run(
        &mut self,
        cx: &AnalysisContext<'_>,
        sub: &transport::kafka::Subscriber,
        newest_bin_end: u64,
        max_steps: usize,
        sent: &mut u64,
    ) -> Result<(), Failure> {
        self.last = Instant::now();
        if self.h.next_end_ns().is_some_and(|n| newest_bin_end < n) {
            return Ok(());
        }
        let Some(reader) = cx.reader.as_ref() else {
            return Ok(());
        };
        let partitions = sub.stats().topic_partitions.load(Relaxed);
        let points = (cx.extents)().and_then(|ends| {
            let ends = with_missing_partitions(ends, &sub.url.topic, partitions);
            match self.h.watermark(ends, Instant::now()) {
                Some(mark) => self.h.due(reader.as_ref(), mark, max_steps),
                None => Ok(Vec::new()),
            }
        });
        let points = match points {
            Ok(p) => p,
            // The store's own errors are counted and shown by its writer;
            // the points are made when it reads again.
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    eprintln!(
                        "trafficscope: Hurst of the summed traffic: {e}; retried every second"
                    );
                }
                return Ok(());
            }
        };
        for p in points {
            cx.status.hurst_points.fetch_add(1, Relaxed);
            let o = Output::Hurst(p);
            if let Some(l) = cx.live.filter(|l| l.receiver_count() > 0) {
                let _ = l.send(Arc::new(o.clone()));
            }
            cx.tx
                .send(o)
                .map_err(|_| Failure::Input(anyhow::anyhow!("the store writer stopped")))?;
            *sent += 1;
        }
        Ok(())
    }
}

/// Each capture node publishes to every partition (ticks at least), so a
/// node seen in some partitions will be seen in all: a partition of it not
/// in the store yet (read by a node that has not stored it yet) stands in
/// at the node's first bin, holding the summed points back until it is.
#[cfg(feature = "kafka")]
fn with_missing_partitions(
    mut ext: store::SourceExtents,
    topic: &str,
    partitions: u64,
) -> store::SourceExtents {
    let mut nodes: BTreeMap<String, (u64, Vec<bool>)> = BTreeMap::new();
    for (name, e) in &ext {
        // Source names are TOPIC:PARTITION:NODE (topic names have no ':').
        let mut it = name.splitn(3, ':');
        let (Some(t), Some(p), Some(node)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(p) = p.parse::<u64>() else { continue };
        if t != topic || p >= partitions {
            continue;
        }
        let n = nodes
            .entry(node.to_string())
            .or_insert_with(|| (u64::MAX, vec![false; partitions as usize]));
        n.0 = n.0.min(e.bins_start_ns);
        n.1[p as usize] = true;
    }
    for (node, (start, have)) in nodes {
        for (p, _) in have.iter().enumerate().filter(|(_, h)| !**h) {
            ext.insert(
                format!("{topic}:{p}:{node}"),
                store::SourceExtent {
                    bins_start_ns: start,
                    bins_end_ns: start,
                    windows_end_ns: 0,
                    ended: false,
                },
            );
        }
    }
    ext
}

/// Whether the store holds a flow of the same five-tuple overlapping `r`
/// in time: `r` is then the tail of that flow, seen again by a replay that
/// started after its head.
#[cfg(feature = "kafka")]
fn piece_of_stored_flow(h: &Arc<dyn store::History>, r: &flow::FlowRecord) -> bool {
    let q = store::FlowQuery {
        from_ns: r.start_ns,
        to_ns: r.end_ns.saturating_add(1),
        class: None,
        app: None,
        addr: Some(r.src),
        port: Some(r.src_port),
        sort: store::FlowSort::Start,
        descending: false,
        limit: 100,
        offset: 0,
    };
    let Ok(page) = h.flows(&q) else {
        return false;
    };
    page.flows.iter().any(|f| {
        let s = &f["record"];
        let same = |a: &str, ip: std::net::IpAddr, pa: &str, port: u16| {
            s[a].as_str() == Some(ip.to_string().as_str()) && s[pa].as_u64() == Some(port as u64)
        };
        s["protocol"].as_u64() == Some(r.protocol as u64)
            && ((same("src", r.src, "src_port", r.src_port)
                && same("dst", r.dst, "dst_port", r.dst_port))
                || (same("src", r.dst, "src_port", r.dst_port)
                    && same("dst", r.src, "dst_port", r.src_port)))
            && s["start_ns"].as_u64() != Some(r.start_ns)
    })
}

#[cfg(all(test, feature = "kafka"))]
mod tests {
    use super::*;

    #[test]
    fn a_capture_nodes_partitions_not_stored_yet_stand_in_at_its_first_bin() {
        let e = |start: u64, end: u64| store::SourceExtent {
            bins_start_ns: start,
            bins_end_ns: end,
            windows_end_ns: 0,
            ended: false,
        };
        let mut ext = store::SourceExtents::new();
        ext.insert("t:0:edge:1".into(), e(100, 900));
        ext.insert("t:2:edge:1".into(), e(50, 800));
        ext.insert("t:1:core".into(), e(10, 20));
        ext.insert("other:0:edge:1".into(), e(5, 6));
        let out = with_missing_partitions(ext, "t", 3);
        // edge:1 lacks partition 1; core lacks 0 and 2; other topics alone.
        assert_eq!(out["t:1:edge:1"], e(50, 50));
        assert_eq!(out["t:0:core"], e(10, 10));
        assert_eq!(out["t:2:core"], e(10, 10));
        assert_eq!(out.len(), 4 + 3);
        // Unknown partition count (0): nothing added.
        assert_eq!(with_missing_partitions(out.clone(), "t", 0), out);
    }
}
