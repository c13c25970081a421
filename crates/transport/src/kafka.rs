//! Kafka for capture and analysis nodes, with krafka (a pure-Rust client:
//! no C library to install, consumer groups and commits).
//!
//! - [`Publisher`]: a capture node's side. Records are batched per
//!   partition (`flow_key % partitions`) into [`crate::record`] messages
//!   and compressed with LZ4 by the client. Every partition has a bounded
//!   queue and one message in flight at a time, so a partition's messages
//!   arrive in order even when sends are retried; a message that fails is
//!   retried until it is acknowledged. When a queue is full (a slow or
//!   unreachable broker) a live capture drops the batch and counts it; a
//!   file replayed as fast as possible waits instead.
//! - [`Subscriber`]: an analysis node's side: a consumer group member
//!   handing out messages with their partition and offset, and committing
//!   only the offsets it is told to (after the store made their results
//!   durable).
//!
//! Each runs a small Tokio runtime on a thread of its own; the packet loop
//! stays synchronous and never waits on the network (except a replay in
//! `block` mode).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use krafka::admin::{CreateTopicsOptions, DescribeTopicsOptions, NewTopic};
use krafka::consumer::{AutoOffsetReset, OffsetAndMetadata, TopicPartition};
use krafka::{Compression, Kafka, Record};
use tokio::sync::mpsc;

use crate::record::{control, BatchWriter, Kind, PacketRecord};

/// `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaUrl {
    /// Bootstrap brokers, comma-separated.
    pub brokers: String,
    pub topic: String,
}

impl std::str::FromStr for KafkaUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<KafkaUrl, String> {
        let usage = || {
            format!(
                "invalid Kafka address {s:?}: expected kafka://HOST:PORT[,HOST:PORT…]/TOPIC \
                 (e.g. kafka://127.0.0.1:9092/packets)"
            )
        };
        let rest = s.strip_prefix("kafka://").ok_or_else(usage)?;
        let (brokers, topic) = rest.split_once('/').ok_or_else(usage)?;
        let valid_topic = !topic.is_empty()
            && topic.len() <= 249
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        let valid_brokers = !brokers.is_empty()
            && brokers.split(',').all(|b| {
                b.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            });
        if !valid_topic || !valid_brokers {
            return Err(usage());
        }
        Ok(KafkaUrl {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
        })
    }
}

impl std::fmt::Display for KafkaUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kafka://{}/{}", self.brokers, self.topic)
    }
}

/// What happens to a batch when its partition's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Drop it and count its records (live capture: never stall the ring).
    Drop,
    /// Wait for room (a file replayed as fast as possible).
    Block,
}

/// Settings of a [`Publisher`].
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Capture node name carried by every message.
    pub node: String,
    /// A batch is sent once it holds this many bytes (or at each tick).
    pub batch_bytes: usize,
    /// Bytes of messages queued or in flight at most, all partitions
    /// together (in whole messages).
    pub buffer_bytes: usize,
    pub compression: bool,
    pub when_full: WhenFull,
    /// Partitions of the topic when it has to be created.
    pub create_partitions: i32,
    /// Waiting for the broker at start.
    pub connect_timeout: Duration,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            node: "node".into(),
            batch_bytes: 256 * 1024,
            buffer_bytes: 64 << 20,
            compression: true,
            when_full: WhenFull::Drop,
            create_partitions: 4,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A capture node's counters (shared with its status output).
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Records handed to the publisher.
    pub records: AtomicU64,
    /// Records the broker acknowledged.
    pub records_acked: AtomicU64,
    pub messages_acked: AtomicU64,
    /// Message bytes acknowledged (before compression).
    pub bytes_acked: AtomicU64,
    /// Records dropped because a partition's queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Sends that failed and were retried.
    pub retries: AtomicU64,
    /// Messages waiting in the queues or in flight.
    pub queued_messages: AtomicU64,
    /// Their bytes: what `buffer_bytes` bounds.
    pub queued_bytes: AtomicU64,
    /// The last send failed (the broker is unreachable or refusing).
    pub failing: AtomicBool,
    pub last_error: Mutex<String>,
}

pub(crate) struct Msg {
    pub(crate) bytes: Vec<u8>,
    pub(crate) records: u64,
}

/// A capture node's connection: see the module documentation.
pub struct Publisher {
    opts: PublisherOptions,
    url: KafkaUrl,
    session: u64,
    seq: u64,
    batches: Vec<BatchWriter>,
    queues: Vec<mpsc::Sender<Msg>>,
    stats: Arc<PublishStats>,
    thread: Option<JoinHandle<()>>,
    last_tick_s: u64,
    last_ts: u64,
}

impl Publisher {
    /// Connects, creates the topic when it is missing, and learns its
    /// partitions. Fails with the broker's address and the fix when the
    /// broker cannot be reached.
    pub fn connect(url: &KafkaUrl, opts: PublisherOptions) -> Result<Publisher, String> {
        let stats = Arc::new(PublishStats::default());
        let (u, o, s) = (url.clone(), opts.clone(), stats.clone());
        let (thread, queues) = start_client(
            "kafka-producer",
            url,
            opts.connect_timeout + Duration::from_secs(5),
            move |ready| produce(u, o, s, ready),
        )?;
        let batches = (0..queues.len()).map(|_| BatchWriter::default()).collect();
        Ok(Publisher {
            session: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            seq: 0,
            batches,
            queues,
            stats,
            thread: Some(thread),
            opts,
            url: url.clone(),
            last_tick_s: 0,
            last_ts: 0,
        })
    }

    pub fn stats(&self) -> Arc<PublishStats> {
        self.stats.clone()
    }

    pub fn partitions(&self) -> usize {
        self.queues.len()
    }

    pub fn url(&self) -> &KafkaUrl {
        &self.url
    }

    /// Adds one record to its partition's batch (sent when full). Every
    /// second of capture time, batches are sent and every partition gets a
    /// tick, so analysis nodes close their bins without waiting for traffic.
    pub fn publish(&mut self, r: &PacketRecord<'_>) {
        self.tick(r.ts_ns);
        let p = (r.flow_key % self.queues.len() as u64) as usize;
        let b = &mut self.batches[p];
        if b.is_empty() {
            b.begin(&self.opts.node, self.session, self.seq);
        }
        b.push(r);
        self.seq += 1;
        self.stats.records.fetch_add(1, Relaxed);
        if b.bytes() >= self.opts.batch_bytes {
            self.ship(p);
        }
    }

    /// Capture time reached `ts_ns` (also called with the wall clock while
    /// a live source is idle).
    pub fn tick(&mut self, ts_ns: u64) {
        self.last_ts = self.last_ts.max(ts_ns);
        let s = ts_ns / 1_000_000_000;
        if s <= self.last_tick_s {
            return;
        }
        self.last_tick_s = s;
        self.control(Kind::Tick, s * 1_000_000_000, None);
    }

    /// A control message to every partition; with a `deadline`, waits until
    /// then for room in the buffer (the end marker).
    fn control(&mut self, kind: Kind, ts_ns: u64, deadline: Option<Instant>) {
        for p in 0..self.queues.len() {
            self.ship(p);
            let bytes = control(kind, &self.opts.node, self.session, self.seq, ts_ns);
            self.enqueue(p, Msg { bytes, records: 0 }, deadline);
        }
    }

    fn ship(&mut self, p: usize) {
        let b = &mut self.batches[p];
        if b.is_empty() {
            return;
        }
        let records = b.len() as u64;
        let bytes = b.finish().to_vec();
        // Empty again: the next record begins a new message.
        b.clear();
        self.enqueue(p, Msg { bytes, records }, None);
    }

    /// Queues a message within the byte budget. When it is spent: drops it
    /// (counted) or, with `--to-when-full block`, waits; a `deadline` waits
    /// until then at most.
    fn enqueue(&mut self, p: usize, m: Msg, deadline: Option<Instant>) {
        let records = m.records;
        let len = m.bytes.len() as u64;
        let budget = self.opts.buffer_bytes as u64;
        let wait = deadline.is_some() || self.opts.when_full == WhenFull::Block;
        let may_wait = || wait && deadline.is_none_or(|d| Instant::now() < d);
        let stats = &self.stats;
        let mut m = Some(m);
        let sent = loop {
            // One message always fits an empty buffer, however small.
            let queued = stats.queued_bytes.load(Relaxed);
            if queued == 0 || queued + len <= budget {
                match self.queues[p].try_send(m.take().expect("message")) {
                    Ok(()) => break true,
                    Err(mpsc::error::TrySendError::Full(back)) => m = Some(back),
                    Err(mpsc::error::TrySendError::Closed(_)) => break false,
                }
            }
            if !may_wait() {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if sent {
            stats.queued_messages.fetch_add(1, Relaxed);
            stats.queued_bytes.fetch_add(len, Relaxed);
        } else {
            stats.dropped_queue_full.fetch_add(records, Relaxed);
        }
    }

    /// Sends what is batched and an end marker to every partition, then
    /// waits (at most `wait`) for the broker to acknowledge everything.
    /// Returns the records still unacknowledged (0 when all went through).
    pub fn finish(mut self, wait: Duration) -> u64 {
        let ts = self.last_ts;
        let deadline = Instant::now() + wait;
        self.control(Kind::End, ts, Some(deadline));
        while self.stats.queued_messages.load(Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.stats.records.load(Relaxed)
            - self.stats.records_acked.load(Relaxed)
            - self.stats.dropped_queue_full.load(Relaxed);
        self.queues.clear();
        if left == 0 {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        left
    }
}

/// Runs a client's `task` on a Tokio runtime of its own thread and waits
/// (at most `wait`) for the task to say it is ready (connected, topic
/// known) or why it is not.
pub(crate) fn start_client<T, F>(
    name: &str,
    url: &KafkaUrl,
    wait: Duration,
    task: impl FnOnce(std::sync::mpsc::Sender<Result<T, String>>) -> F + Send + 'static,
) -> Result<(JoinHandle<()>, T), String>
where
    T: Send + 'static,
    F: std::future::Future<Output = ()>,
{
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<T, String>>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(task(ready_tx)),
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start the Kafka client: {e}")));
                }
            }
        })
        .map_err(|e| format!("cannot start the Kafka client thread: {e}"))?;
    match ready_rx.recv_timeout(wait) {
        Ok(Ok(v)) => Ok((thread, v)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(format!(
            "no answer from the Kafka broker {} within {wait:?}: is it running? \
             (scripts/services up starts one for tests)",
            url.brokers
        )),
    }
}

/// How to authenticate to the brokers, from the environment (never the
/// command line, never printed):
///
/// - `TRAFFICSCOPE_KAFKA_SASL_MECHANISM`: `PLAIN`, `SCRAM-SHA-256` or
///   `SCRAM-SHA-512`, with `TRAFFICSCOPE_KAFKA_USERNAME` and
///   `TRAFFICSCOPE_KAFKA_PASSWORD` (or `TRAFFICSCOPE_KAFKA_PASSWORD_FILE`);
/// - `TRAFFICSCOPE_KAFKA_TLS=1` for TLS with the built-in web roots, or
///   `TRAFFICSCOPE_KAFKA_CA=FILE` for TLS trusting only that CA (PEM).
///
/// `Ok(None)`: plaintext, no SASL. The description says what was chosen,
/// without the password.
pub fn security_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<(krafka::auth::AuthConfig, String)>, String> {
    use krafka::auth::{AuthConfig, TlsConfig};
    let mech = var("TRAFFICSCOPE_KAFKA_SASL_MECHANISM").filter(|m| !m.is_empty());
    let ca = var("TRAFFICSCOPE_KAFKA_CA").filter(|c| !c.is_empty());
    let tls = ca.is_some()
        || var("TRAFFICSCOPE_KAFKA_TLS")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let mut said = Vec::new();
    let mut auth = match mech {
        None => None,
        Some(m) => {
            let user = var("TRAFFICSCOPE_KAFKA_USERNAME")
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    format!(
                        "TRAFFICSCOPE_KAFKA_SASL_MECHANISM={m} needs TRAFFICSCOPE_KAFKA_USERNAME"
                    )
                })?;
            let password = match var("TRAFFICSCOPE_KAFKA_PASSWORD") {
                Some(p) => p,
                None => match var("TRAFFICSCOPE_KAFKA_PASSWORD_FILE") {
                    Some(f) => std::fs::read_to_string(&f)
                        .map_err(|e| format!("cannot read the Kafka password file {f}: {e}"))?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                    None => {
                        return Err(format!(
                            "TRAFFICSCOPE_KAFKA_SASL_MECHANISM={m} needs \
                             TRAFFICSCOPE_KAFKA_PASSWORD or TRAFFICSCOPE_KAFKA_PASSWORD_FILE"
                        ))
                    }
                },
            };
            let a = match m.to_ascii_uppercase().as_str() {
                "PLAIN" => AuthConfig::sasl_plain(user.clone(), password),
                "SCRAM-SHA-256" => AuthConfig::sasl_scram_sha256(user.clone(), password),
                "SCRAM-SHA-512" => AuthConfig::sasl_scram_sha512(user.clone(), password),
                other => {
                    return Err(format!(
                        "TRAFFICSCOPE_KAFKA_SASL_MECHANISM={other}: expected PLAIN, \
                         SCRAM-SHA-256 or SCRAM-SHA-512"
                    ))
                }
            };
            said.push(format!("SASL {} as {user}", m.to_ascii_uppercase()));
            Some(a)
        }
    };
    if tls {
        let cfg = match &ca {
            Some(path) => {
                if !std::path::Path::new(path).is_file() {
                    return Err(format!("TRAFFICSCOPE_KAFKA_CA={path}: no such file"));
                }
                said.push(format!("TLS trusting {path}"));
                TlsConfig::new().with_ca_cert(path.clone())
            }
            None => {
                said.push("TLS".to_string());
                TlsConfig::new()
            }
        };
        auth = Some(match auth {
            Some(a) => a.with_tls(cfg),
            None => AuthConfig::ssl(cfg),
        });
    }
    Ok(auth.map(|a| (a, said.join(" over "))))
}

async fn connect_kafka(url: &KafkaUrl, timeout: Duration) -> Result<Kafka, String> {
    let mut builder = Kafka::builder(url.brokers.clone())
        .client_id("trafficscope")
        .connect_timeout(timeout)
        .request_timeout(Duration::from_secs(10));
    if let Some((auth, said)) = security_from_env(|k| std::env::var(k).ok())? {
        eprintln!("trafficscope: kafka: {said} to {}", url.brokers);
        builder = builder.security(auth);
    }
    let fut = builder.connect();
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(k)) => Ok(k),
        Ok(Err(e)) => Err(format!(
            "cannot reach the Kafka broker {}: {e}. Start it (scripts/services up starts one \
             for tests) or check the address",
            url.brokers
        )),
        Err(_) => Err(format!(
            "cannot reach the Kafka broker {} within {timeout:?}: is it running? \
             (scripts/services up starts one for tests)",
            url.brokers
        )),
    }
}

/// Partitions of the topic, `None` when it does not exist (or the broker
/// does not say within `wait`). Asked with DescribeTopics, which answers
/// "unknown topic" at once; a producer's metadata lookup of a missing topic
/// waits out its whole timeout (3 s at every capture node's start).
async fn topic_partitions(kafka: &Kafka, url: &KafkaUrl, wait: Duration) -> Option<usize> {
    let admin = kafka.admin();
    let asked = admin.describe_topics([url.topic.as_str()], DescribeTopicsOptions::default());
    match tokio::time::timeout(wait, asked).await {
        Ok(Ok(mut found)) => match found.remove(&url.topic) {
            Some(Ok(t)) if !t.partitions.is_empty() => Some(t.partitions.len()),
            _ => None,
        },
        _ => None,
    }
}

/// Waits until the topic exists (saying so once); its partitions, `None`
/// when stopped first.
async fn wait_for_topic(kafka: &Kafka, url: &KafkaUrl, stop: &AtomicBool) -> Option<usize> {
    let mut said = false;
    while !stop.load(Relaxed) {
        if let Some(n) = topic_partitions(kafka, url, Duration::from_secs(2)).await {
            if said {
                eprintln!("trafficscope: kafka: topic {} is there", url.topic);
            }
            return Some(n);
        }
        if !said {
            eprintln!(
                "trafficscope: kafka: topic {} does not exist on {} yet; waiting for a capture \
                 node to create it",
                url.topic, url.brokers
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// Partitions of `topic`, creating it with `create` partitions if missing.
async fn partitions_of(kafka: &Kafka, url: &KafkaUrl, create: i32) -> Result<usize, String> {
    // A few seconds are enough to tell a missing topic.
    if let Some(n) = topic_partitions(kafka, url, Duration::from_secs(3)).await {
        return Ok(n);
    }
    let topic = NewTopic::new(url.topic.clone(), create, 1).map_err(|e| e.to_string())?;
    let created = kafka
        .admin()
        .create_topics([topic], CreateTopicsOptions::default())
        .await
        .map_err(|e| format!("cannot create topic {} on {}: {e}", url.topic, url.brokers))?;
    if let Some(Err(e)) = created.get(&url.topic) {
        let msg = e.to_string();
        if !msg.to_ascii_lowercase().contains("exist") {
            return Err(format!(
                "cannot create topic {} on {}: {msg}",
                url.topic, url.brokers
            ));
        }
    }
    eprintln!(
        "trafficscope: created topic {} with {create} partitions on {}",
        url.topic, url.brokers
    );
    Ok(create as usize)
}

pub(crate) async fn produce(
    url: KafkaUrl,
    opts: PublisherOptions,
    stats: Arc<PublishStats>,
    ready: std::sync::mpsc::Sender<Result<Vec<mpsc::Sender<Msg>>, String>>,
) {
    let kafka = match connect_kafka(&url, opts.connect_timeout).await {
        Ok(k) => k,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let n = match partitions_of(&kafka, &url, opts.create_partitions).await {
        Ok(n) => n,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let producer = match build_producer(&kafka, &opts).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            let _ = ready.send(Err(format!("Kafka {}: {e}", url.brokers)));
            return;
        }
    };
    // The partitions' senders share one producer; after a send fails the
    // first of them to notice renews it on fresh connections (see `renew`).
    let shared = Arc::new(tokio::sync::Mutex::new((0u64, producer, kafka)));
    // The byte budget bounds the queues (`Publisher::enqueue`); a message
    // can be as small as a tick.
    let per_queue = (opts.buffer_bytes / 64 / n).clamp(2, 1 << 20);
    let mut senders = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for p in 0..n {
        let (tx, mut rx) = mpsc::channel::<Msg>(per_queue);
        senders.push(tx);
        let (shared, stats, topic) = (shared.clone(), stats.clone(), url.topic.clone());
        let (url, opts) = (url.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let value = Bytes::from(m.bytes);
                let mut backoff = Duration::from_millis(100);
                loop {
                    let (gen, producer) = {
                        let g = shared.lock().await;
                        (g.0, g.1.clone())
                    };
                    let rec = Record::new(topic.clone(), value.clone()).partition(p as i32);
                    match producer.send(rec).await {
                        Ok(_) => {
                            stats.failing.store(false, Relaxed);
                            stats.records_acked.fetch_add(m.records, Relaxed);
                            stats.messages_acked.fetch_add(1, Relaxed);
                            stats.bytes_acked.fetch_add(value.len() as u64, Relaxed);
                            break;
                        }
                        Err(e) => {
                            if !stats.failing.swap(true, Relaxed) {
                                eprintln!(
                                    "trafficscope: kafka: sending to partition {p} failed: {e}; \
                                     retrying (capture goes on, batches queue up to the buffer)"
                                );
                            }
                            if let Ok(mut l) = stats.last_error.lock() {
                                *l = e.to_string();
                            }
                            stats.retries.fetch_add(1, Relaxed);
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            renew(&shared, gen, &url, &opts).await;
                        }
                    }
                }
                stats.queued_messages.fetch_sub(1, Relaxed);
                stats.queued_bytes.fetch_sub(value.len() as u64, Relaxed);
            }
        }));
    }
    if ready.send(Ok(senders)).is_err() {
        return;
    }
    for t in tasks {
        let _ = t.await;
    }
    let producer = shared.lock().await.1.clone();
    let _ = producer.close().await;
}

async fn build_producer(
    kafka: &Kafka,
    opts: &PublisherOptions,
) -> krafka::Result<krafka::producer::Producer> {
    kafka
        .producer()
        .compression(if opts.compression {
            Compression::Lz4
        } else {
            Compression::None
        })
        .linger(Duration::from_millis(0))
        .delivery_timeout(Duration::from_secs(10))
        .max_request_size(opts.batch_bytes * 4 + (1 << 20))
        .build()
        .await
}

/// After a failed send: a producer whose connections went through a broker
/// outage longer than its delivery timeout keeps failing after the broker
/// is back (measured with a broker frozen for 14 s), so the producer of
/// generation `failed` is replaced by one on a new client, once, by
/// whichever partition's sender gets here first. While the broker is still
/// away the new client cannot connect: the old producer stays, and the
/// next failure tries again.
async fn renew(
    shared: &tokio::sync::Mutex<(u64, Arc<krafka::producer::Producer>, Kafka)>,
    failed: u64,
    url: &KafkaUrl,
    opts: &PublisherOptions,
) {
    let mut g = shared.lock().await;
    if g.0 != failed {
        return;
    }
    let Ok(kafka) = connect_kafka(url, Duration::from_secs(2)).await else {
        return;
    };
    if let Ok(p) = build_producer(&kafka, opts).await {
        let old = std::mem::replace(&mut g.1, Arc::new(p));
        g.2 = kafka;
        g.0 += 1;
        // In-flight sends on the old producer end on their own timeouts.
        drop(old);
    }
}

/// One message read by a [`Subscriber`].
#[derive(Debug, Clone)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
    pub value: Bytes,
}

/// What the consumer thread hands the analysis loop.
#[derive(Debug)]
pub enum Event {
    Messages(Vec<Delivery>),
    /// The partitions this member now owns (after a rebalance).
    Assigned(Vec<i32>),
    /// The consumer failed for good.
    Failed(String),
}

/// How far an analysis node's consumer is behind its partitions' ends.
#[derive(Debug, Default)]
pub struct ConsumeStats {
    /// Messages not read yet: in the broker past the consumer's position,
    /// summed over the partitions it owns (high watermarks as of each
    /// partition's last fetch), and fetched but not taken by `next` — kept
    /// together so a batch moving from one to the other is never counted
    /// in both or in neither.
    unread: Mutex<Unread>,
    /// Every owned partition's high watermark is known.
    pub known: AtomicBool,
    /// Partitions owned now, and of the topic.
    pub partitions: AtomicU64,
    pub topic_partitions: AtomicU64,
    /// Polls that failed (the broker unreachable, a request timed out):
    /// time spent failing is an outage, not a quiet topic.
    pub poll_errors: AtomicU64,
}

#[derive(Debug, Default)]
struct Unread {
    behind: u64,
    queued: u64,
}

impl ConsumeStats {
    /// Messages of the owned partitions not read by the analysis loop yet.
    pub fn unread(&self) -> u64 {
        let u = self.unread.lock().unwrap_or_else(|e| e.into_inner());
        u.behind + u.queued
    }

    fn unread_mut(&self) -> std::sync::MutexGuard<'_, Unread> {
        self.unread.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An analysis node's consumer group membership.
pub struct Subscriber {
    events: std::sync::mpsc::Receiver<Event>,
    stats: Arc<ConsumeStats>,
    commits: mpsc::UnboundedSender<BTreeMap<i32, i64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub url: KafkaUrl,
    pub group: String,
}

impl Subscriber {
    /// Joins `group` on `url`'s topic (from the earliest offset when the
    /// group has none). Fails with the fix when the broker cannot be reached.
    pub fn connect(url: &KafkaUrl, group: &str, timeout: Duration) -> Result<Subscriber, String> {
        let (ev_tx, ev_rx) = std::sync::mpsc::sync_channel::<Event>(16);
        let (c_tx, c_rx) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ConsumeStats::default());
        let side = ConsumerSide {
            events: ev_tx,
            commits: c_rx,
            stop: stop.clone(),
            stats: stats.clone(),
        };
        let (u, g) = (url.clone(), group.to_string());
        let (thread, ()) = start_client(
            "kafka-consumer",
            url,
            timeout + Duration::from_secs(5),
            move |ready| consume(u, g, timeout, side, ready),
        )?;
        Ok(Subscriber {
            events: ev_rx,
            stats,
            commits: c_tx,
            stop,
            thread: Some(thread),
            url: url.clone(),
            group: group.to_string(),
        })
    }

    /// The next event, waiting at most `timeout` (None: nothing came).
    pub fn next(&self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(e) => {
                if let Event::Messages(b) = &e {
                    let mut u = self.stats.unread_mut();
                    u.queued = u.queued.saturating_sub(b.len() as u64);
                }
                Some(e)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Some(Event::Failed("the Kafka consumer stopped".into()))
            }
        }
    }

    /// How far the consumer is behind the broker.
    pub fn stats(&self) -> &ConsumeStats {
        &self.stats
    }

    /// Commits, per partition, the offset of the next message to read.
    pub fn commit(&self, offsets: BTreeMap<i32, i64>) {
        if !offsets.is_empty() {
            let _ = self.commits.send(offsets);
        }
    }

    /// Leaves the group (committing what was asked before).
    pub fn close(mut self) {
        self.stop.store(true, Relaxed);
        // Unblocks a consumer waiting to hand over events.
        while self.events.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            while !t.is_finished() {
                while self.events.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = t.join();
        }
    }
}

/// How long a fetch may wait at the broker for data. A broker that holds
/// every fetch for its whole wait even when it has data (tansu 0.6.0's
/// fetch service sleeps after a fetch that found data; Kafka answers at
/// once) bounds an analysis node to one fetch per wait: with the client's
/// default of 500 ms, 1 M records took 13 s at a quarter of one core; with
/// 20 ms the node is CPU-bound (2.3 s). Against an idle topic this costs
/// 50 empty fetches a second, which no broker notices.
pub const FETCH_MAX_WAIT: Duration = Duration::from_millis(20);

/// Sets what is behind the position from the watermarks fetch responses
/// left in the consumer (no request is sent), and adds `handed` messages
/// just fetched to those queued for the analysis loop, at once.
async fn note_lag(
    consumer: &krafka::consumer::Consumer,
    topic: &str,
    assigned: &[i32],
    stats: &ConsumeStats,
    handed: u64,
) {
    let (mut behind, mut known) = (0u64, true);
    for (tp, l) in consumer.lag().await {
        if tp.topic == topic && assigned.contains(&tp.partition) {
            match l.lag {
                Some(n) => behind += n,
                None => known = false,
            }
        }
    }
    let mut u = stats.unread_mut();
    u.behind = behind;
    u.queued += handed;
    stats.known.store(known, Relaxed);
}

/// The consumer thread's ends of what it shares with its [`Subscriber`].
struct ConsumerSide {
    events: std::sync::mpsc::SyncSender<Event>,
    commits: mpsc::UnboundedReceiver<BTreeMap<i32, i64>>,
    stop: Arc<AtomicBool>,
    stats: Arc<ConsumeStats>,
}

async fn consume(
    url: KafkaUrl,
    group: String,
    timeout: Duration,
    side: ConsumerSide,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let ConsumerSide {
        events,
        mut commits,
        stop,
        stats,
    } = side;
    let kafka = match connect_kafka(&url, timeout).await {
        Ok(k) => k,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let consumer = match kafka
        .consumer(group.clone())
        .enable_auto_commit(false)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .session_timeout(Duration::from_secs(10))
        .heartbeat_interval(Duration::from_secs(1))
        .fetch_max_wait(FETCH_MAX_WAIT)
        .build()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("Kafka {}: {e}", url.brokers)));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    // Subscribing to a topic that does not exist yet (the analysis node
    // started before any capture node) would never be assigned its
    // partitions: wait for the topic first.
    match wait_for_topic(&kafka, &url, &stop).await {
        Some(n) => stats.topic_partitions.store(n as u64, Relaxed),
        None => return,
    }
    if let Err(e) = consumer.subscribe([url.topic.as_str()]).await {
        let _ = events.send(Event::Failed(format!(
            "cannot subscribe to {} on {}: {e}",
            url.topic, url.brokers
        )));
        return;
    }
    let mut assigned: Vec<i32> = Vec::new();
    let mut last_check = Instant::now() - Duration::from_secs(10);
    let do_commit = |offsets: BTreeMap<i32, i64>| {
        let topic = url.topic.clone();
        let list: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
            .into_iter()
            .map(|(p, o)| {
                (
                    TopicPartition::new(topic.clone(), p),
                    OffsetAndMetadata::new(o),
                )
            })
            .collect();
        list
    };
    while !stop.load(Relaxed) {
        while let Ok(c) = commits.try_recv() {
            if let Err(e) = consumer.commit_offsets(do_commit(c)).await {
                eprintln!("trafficscope: kafka: commit failed: {e} (retried with the next one)");
            }
        }
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = Instant::now();
            let mut now: Vec<i32> = consumer
                .assignment()
                .await
                .get(&url.topic)
                .cloned()
                .unwrap_or_default();
            now.sort_unstable();
            if now != assigned {
                assigned = now.clone();
                if events.send(Event::Assigned(now)).is_err() {
                    break;
                }
            }
            stats.partitions.store(assigned.len() as u64, Relaxed);
            note_lag(&consumer, &url.topic, &assigned, &stats, 0).await;
        }
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(recs) if recs.is_empty() => {}
            Ok(recs) => {
                // The analysis loop learns of an assignment before any
                // message of it (it reads what the store holds for the
                // partitions it is given, and a replay must not start
                // without that); records of partitions revoked meanwhile
                // are left to their new owner, which replays them.
                let mut now: Vec<i32> = consumer
                    .assignment()
                    .await
                    .get(&url.topic)
                    .cloned()
                    .unwrap_or_default();
                now.sort_unstable();
                if now != assigned {
                    assigned = now;
                    last_check = Instant::now();
                    if events.send(Event::Assigned(assigned.clone())).is_err() {
                        break;
                    }
                }
                let batch: Vec<Delivery> = recs
                    .into_iter()
                    .filter(|r| assigned.binary_search(&r.partition).is_ok())
                    .filter_map(|r| {
                        Some(Delivery {
                            partition: r.partition,
                            offset: r.offset,
                            value: r.value?,
                        })
                    })
                    .collect();
                // The position moved with this poll: what is behind it and
                // what is queued change together.
                note_lag(&consumer, &url.topic, &assigned, &stats, batch.len() as u64).await;
                if events.send(Event::Messages(batch)).is_err() {
                    break;
                }
            }
            Err(e) if e.is_fatal() => {
                let _ = events.send(Event::Failed(format!("Kafka {}: {e}", url.brokers)));
                break;
            }
            Err(e) => {
                stats.poll_errors.fetch_add(1, Relaxed);
                eprintln!("trafficscope: kafka: poll failed: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    while let Ok(c) = commits.try_recv() {
        let _ = consumer.commit_offsets(do_commit(c)).await;
    }
    let _ = consumer.close().await;
}

/// Sends `values` as they are to one partition (tools and tests: e.g. a
/// message that is not a packet record). Waits for each acknowledgement.
pub fn send_raw(url: &KafkaUrl, partition: i32, values: Vec<Vec<u8>>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let kafka = connect_kafka(url, Duration::from_secs(10)).await?;
        let producer = kafka
            .producer()
            .build()
            .await
            .map_err(|e| format!("Kafka {}: {e}", url.brokers))?;
        for v in values {
            let _ = producer
                .send(Record::new(url.topic.clone(), Bytes::from(v)).partition(partition))
                .await
                .map_err(|e| format!("Kafka {}: {e}", url.brokers))?;
        }
        let _ = producer.close().await;
        Ok(())
    })
}

#[cfg(test)]
mod security_tests {
    use super::security_from_env;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Option<String>, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        security_from_env(|k| m.get(k).cloned()).map(|o| o.map(|(_, said)| said))
    }

    #[test]
    fn credentials_come_from_the_environment_and_are_never_shown() {
        assert_eq!(with(&[]).unwrap(), None);
        let said = with(&[
            ("TRAFFICSCOPE_KAFKA_SASL_MECHANISM", "scram-sha-512"),
            ("TRAFFICSCOPE_KAFKA_USERNAME", "ingest"),
            ("TRAFFICSCOPE_KAFKA_PASSWORD", "s3cret"),
            ("TRAFFICSCOPE_KAFKA_TLS", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(said, "SASL SCRAM-SHA-512 as ingest over TLS");
        let dir = std::env::temp_dir().join(format!("ts-kafka-pw-{}", std::process::id()));
        std::fs::write(&dir, "from-file\n").unwrap();
        let said = with(&[
            ("TRAFFICSCOPE_KAFKA_SASL_MECHANISM", "PLAIN"),
            ("TRAFFICSCOPE_KAFKA_USERNAME", "u"),
            ("TRAFFICSCOPE_KAFKA_PASSWORD_FILE", dir.to_str().unwrap()),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(said, "SASL PLAIN as u");
        let _ = std::fs::remove_file(&dir);
        for (vars, want) in [
            (
                vec![
                    ("TRAFFICSCOPE_KAFKA_SASL_MECHANISM", "GSSAPI"),
                    ("TRAFFICSCOPE_KAFKA_USERNAME", "u"),
                    ("TRAFFICSCOPE_KAFKA_PASSWORD", "s3cret"),
                ],
                "expected PLAIN",
            ),
            (
                vec![("TRAFFICSCOPE_KAFKA_SASL_MECHANISM", "PLAIN")],
                "USERNAME",
            ),
            (
                vec![
                    ("TRAFFICSCOPE_KAFKA_SASL_MECHANISM", "PLAIN"),
                    ("TRAFFICSCOPE_KAFKA_USERNAME", "u"),
                ],
                "PASSWORD",
            ),
            (
                vec![("TRAFFICSCOPE_KAFKA_CA", "/nonexistent/ca.pem")],
                "no such file",
            ),
        ] {
            let e = with(&vars).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
