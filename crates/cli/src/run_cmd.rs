//! `trafficscope run`: the live analytics service. Wiring only: a source
//! and the pipeline's stages on this thread, the store's writer on its
//! own, the HTTP server on a tokio runtime of its own.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use pipeline::{Event, Input, Output, Pipeline, PipelineConfig, SourceConfig, Status};

use crate::classify_cmd::{load_model, LabelArgs};
use crate::{parse_duration_ns, Failure, FlowArgs};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Capture files replayed in sequence (pcap/pcapng, optionally compressed).
    #[arg(short = 'r', long = "read", value_name = "FILE", num_args = 1..)]
    pub read: Vec<String>,
    /// Capture live from this interface (`any` for all); needs root or CAP_NET_RAW.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// Generate labelled traffic in process, paced to real time: a mix such
    /// as `web=3,video=1,voip=2` (classes: web, video, video-download,
    /// voip, voip-icmp, bulk, dns).
    #[arg(long, value_name = "MIX")]
    pub generate: Option<String>,
    /// Generator: simultaneous users.
    #[arg(long, default_value_t = 10)]
    pub users: u32,
    /// Generator: seed (the same seed gives the same traffic).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub capture: crate::CaptureOpts,
    /// Replay speed of files and the generator: 1 = real time (the
    /// default: a capture behaves like live traffic), 4 = four times
    /// faster, `max` = as fast as possible.
    #[arg(long, value_name = "SPEED", default_value = "1", value_parser = crate::parse_speed)]
    pub speed: crate::Speed,
    /// Replay the files again and again (capture times shifted forwards).
    #[arg(long = "loop")]
    pub loop_files: bool,
    /// Stop reading after this much wall time (e.g. 10m).
    #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop reading after this many packets.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Local networks (CIDR[,CIDR…]) deciding uplink/downlink.
    #[arg(long = "local-net", value_name = "CIDRS", value_parser = crate::parse_local_nets)]
    pub local_net: Option<flow::LocalNets>,
    #[command(flatten)]
    pub flow: FlowArgs,
    #[command(flatten)]
    pub ring: crate::pcap_ring::RingArgs,
    /// Model file written by `trafficscope train` (default: the built-in model).
    #[arg(long, value_name = "MODEL.json")]
    pub model: Option<String>,
    #[command(flatten)]
    pub labels: LabelArgs,
    /// First prediction after this many packets of a flow.
    #[arg(long = "first-packets", default_value_t = 8)]
    pub first_packets: usize,
    /// Below this probability the answer is `unknown`.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Aggregation bin (capture time).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration_ns)]
    pub bin: u64,
    /// Evaluation window for hits and accuracy (capture time).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration_ns)]
    pub windows: u64,
    /// Sliding Hurst window, in 0.1 s bins.
    #[arg(long = "hurst-window", value_name = "BINS", default_value_t = 4096)]
    pub hurst_window: usize,
    /// Re-estimate the Hurst parameter every this many 0.1 s bins (600: once
    /// a minute of capture time).
    #[arg(long = "hurst-every", value_name = "BINS", default_value_t = 600)]
    pub hurst_every: usize,
    /// Store directory (created 0700); default: $XDG_DATA_HOME/trafficscope
    /// or ~/.local/share/trafficscope.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Keep flow records this long (relative to the newest data).
    #[arg(long = "flow-retention", value_name = "DURATION", default_value = "7d", value_parser = parse_retention)]
    pub flow_retention: u64,
    /// Keep 1 s bins (and the 0.1 s series) this long; 1 min bins,
    /// evaluation windows and Hurst points are kept 90 days (or as long as
    /// the 1 s bins, if longer). Retention counts back from the newest data.
    #[arg(long = "bin-retention", value_name = "DURATION", default_value = "48h", value_parser = parse_retention)]
    pub bin_retention: u64,
    /// Size cap of the store, e.g. 500M, 2G: the oldest partitions go first.
    #[arg(long = "store-cap", value_name = "SIZE", value_parser = parse_size)]
    pub store_cap: Option<u64>,
    /// Keep the history in ClickHouse instead of the embedded store:
    /// clickhouse://[USER@]HOST[:PORT]/DATABASE (the HTTP port, 8123 by
    /// default; password from TRAFFICSCOPE_CLICKHOUSE_PASSWORD or the file
    /// named by TRAFFICSCOPE_CLICKHOUSE_PASSWORD_FILE). While the server is
    /// away, batches wait in DIR/clickhouse-spool (--data) up to --spool-cap.
    #[arg(long = "store", value_name = "URL", value_parser = parse_store_url)]
    pub store: Option<store::clickhouse::ClickHouseUrl>,
    /// Bound of the ClickHouse spool, e.g. 1G.
    #[arg(long = "spool-cap", value_name = "SIZE", value_parser = parse_size, default_value = "1G")]
    pub spool_cap: u64,
    /// Address of the API, live stream and metrics. Beyond loopback a
    /// token is required.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Run headless: no HTTP; exit when the input ends.
    #[arg(long = "no-listen")]
    pub no_listen: bool,
    /// Bearer token required by every request.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the token (first line).
    #[arg(long = "token-file", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub kafka: crate::run_kafka::KafkaArgs,
}

/// `7d`, `48h`, `90m`, or anything `parse_duration_ns` takes.
fn parse_retention(s: &str) -> Result<u64, String> {
    match s.strip_suffix('d') {
        Some(days) => days
            .parse::<f64>()
            .ok()
            .filter(|d| *d > 0.0)
            .map(|d| (d * 86_400e9) as u64)
            .ok_or_else(|| format!("invalid duration {s:?}: expected e.g. 7d, 48h, 90m")),
        None => parse_duration_ns(s),
    }
}

/// `500M`, `2G`, `1500k` or bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'M' | 'm')) => (&t[..i], 1e6),
        Some((i, 'G' | 'g')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    num.parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
        .map(|v| (v * mult) as u64)
        .ok_or_else(|| format!("invalid size {s:?}: expected e.g. 500M or 2G"))
}

fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("trafficscope");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/trafficscope")
}

fn source_config(args: &RunArgs) -> Result<(SourceConfig, String), Failure> {
    let generate = match &args.generate {
        Some(mix) => {
            let usage = |e: generate::GenerateError| Failure::Usage(e.to_string());
            let cfg = generate::GenerateConfig {
                mix: generate::parse_mix(mix).map_err(usage)?,
                users: args.users,
                // Runs until stopped: ten years of traffic from now.
                duration_ns: 10 * 365 * 86_400 * 1_000_000_000,
                seed: args.seed,
                start_ns: pipeline::unix_now_ns(),
                pcap_name: "generated".into(),
                ..generate::GenerateConfig::default()
            };
            cfg.validate().map_err(usage)?;
            Some(cfg)
        }
        None => None,
    };
    let describe = if let Some(i) = &args.interface {
        format!("interface {i}")
    } else if let Some(mix) = &args.generate {
        format!("generator {mix} ({} users, seed {})", args.users, args.seed)
    } else {
        format!(
            "{} {}{}",
            if args.read.len() == 1 {
                "file"
            } else {
                "files"
            },
            args.read.join(", "),
            if args.loop_files { " (looped)" } else { "" }
        )
    };
    let cfg = SourceConfig {
        files: args.read.clone(),
        interface: args.interface.clone(),
        generate,
        duration: args.duration,
        count: args.count,
        speed: args.speed.0,
        loop_files: args.loop_files,
        progress: false,
        ..args.capture.source_config()
    };
    Ok((cfg, describe))
}

/// What a command built on `run` (`demo`) is told as the service starts.
#[derive(Default)]
pub struct Hooks {
    /// The HTTP server listens at this address.
    pub listening: Option<Box<dyn FnOnce(SocketAddr)>>,
    /// The source is open: a live capture sees every packet from now on.
    pub capturing: Option<Box<dyn FnOnce()>>,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    run_with(args, Hooks::default())
}

pub fn run_with(args: RunArgs, mut hooks: Hooks) -> Result<(), Failure> {
    let (source_cfg, describe) = source_config(&args)?;
    if args.loop_files && args.read.is_empty() {
        return Err(Failure::Usage("--loop replays files: give -r FILE".into()));
    }
    let has_source = !args.read.is_empty() || args.interface.is_some() || args.generate.is_some();
    if args.kafka.to.is_some() {
        if !has_source {
            return Err(Failure::Usage(
                "--to publishes a source: give -r FILE, -i IFACE or --generate MIX".into(),
            ));
        }
        return crate::run_kafka::publish(&args, &source_cfg, &describe);
    }
    let from_kafka = args.kafka.from.is_some();
    if from_kafka && has_source {
        return Err(Failure::Usage(
            "--from reads packets from Kafka: drop -r, -i and --generate (they belong to a \
             capture node's `run --to`)"
                .into(),
        ));
    }
    let describe = match &args.kafka.from {
        Some(url) => format!("{url} (group {})", args.kafka.group),
        None => describe,
    };
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(p)) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Failure::Usage(format!("--token-file {}: {e}", p.display())))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    if !args.no_listen {
        server::check_listen(args.listen, token.as_deref()).map_err(Failure::Usage)?;
    }
    let model = load_model(args.model.as_deref())?;
    let labels = if args.labels.is_empty() {
        None
    } else {
        Some(args.labels.build(model.class_names.clone())?)
    };
    // The same flow table settings as `flows`, so flow records agree.
    let flow_config = args.flow.config();
    let pcfg = PipelineConfig {
        bin_ns: args.bin,
        window_ns: args.windows,
        hurst_window: args.hurst_window,
        hurst_every: args.hurst_every,
        streaming: classify::StreamingConfig {
            min_packets: args.first_packets,
            threshold: args.threshold,
            flow_config,
            ..classify::StreamingConfig::default()
        },
        local_net: args.local_net.clone().unwrap_or_default(),
        ..PipelineConfig::default()
    };
    let status = Arc::new(Status::new(describe.clone()));
    // An analysis node builds a pipeline per substream from these.
    let for_kafka = from_kafka.then(|| (model.clone(), labels.clone(), pcfg.clone()));
    let mut pipe = Pipeline::new(model, labels, pcfg, status.clone()).map_err(Failure::Usage)?;
    let class_names = pipe.class_names().to_vec();

    // The store.
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    let defaults = store::StoreOptions::default();
    // No coarser history is kept for less time than the 1 s bins.
    let opts = store::StoreOptions {
        flow_retention_ns: args.flow_retention,
        bin_1s_retention_ns: args.bin_retention,
        bin_1m_retention_ns: defaults.bin_1m_retention_ns.max(args.bin_retention),
        window_retention_ns: defaults.window_retention_ns.max(args.bin_retention),
        hurst_retention_ns: defaults.hurst_retention_ns.max(args.bin_retention),
        size_cap_bytes: args.store_cap,
        ..defaults
    };
    let store = OpenStore::open(&args, &data, opts)?;
    let store_name = store.name(&data);
    let store_stats = Arc::new(store::StoreStats::default());
    // Outputs committed so far, in the order sent (an analysis node commits
    // Kafka offsets by it).
    let durable = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if from_kafka {
        // Read once now, so that a store that cannot say fails at the start.
        store
            .source_extents()
            .map_err(|e| Failure::Input(e.into()))?;
    }
    let (tx, rx) = mpsc::sync_channel::<Output>(QUEUE);
    // The channel and the writer's in-memory backlog.
    status.queue_capacity.store(
        (QUEUE + store::WriterOptions::default().pending_capacity) as u64,
        Relaxed,
    );
    let writer_thread = store.spawn_writer(
        &data,
        args.spool_cap,
        rx,
        store_stats.clone(),
        store::WriterOptions {
            // A bin reaches the writer when it closes and is on disk half a
            // second later at most.
            commit_interval: Duration::from_millis(500),
            ..store::WriterOptions::default()
        },
        {
            let durable = durable.clone();
            Box::new(move |outs: &[Output]| {
                durable.fetch_add(outs.len() as u64, Relaxed);
            })
        },
    )?;

    // The packet ring (-w DIR), before the server that reads it.
    let (ring, mut ring_writer) = args.ring.open()?.unzip();

    // The server.
    let (live_tx, server) = if args.no_listen {
        (None, None)
    } else {
        let (live_tx, _) = tokio::sync::broadcast::channel::<Arc<Output>>(4096);
        let state = server::AppState {
            history: store.history()?,
            status: status.clone(),
            store_stats: store_stats.clone(),
            live: live_tx.clone(),
            info: server::ServiceInfo {
                version: env!("CARGO_PKG_VERSION").to_string(),
                classes: class_names.clone(),
                bin_ns: args.bin,
                window_ns: args.windows,
                hurst: server::HurstInfo {
                    fine_ns: FINE_NS,
                    window_bins: args.hurst_window as u64,
                    step_ns: args.hurst_every as u64 * FINE_NS,
                },
                data_dir: store.data_dir(&data),
            },
            pcap: ring.clone(),
        };
        let handle = server::spawn(args.listen, state, token.clone()).map_err(|e| {
            Failure::Input(anyhow::anyhow!("cannot listen on {}: {e}", args.listen))
        })?;
        eprintln!(
            "trafficscope: serving http://{}/ (API /api/v1/, live /api/v1/stream, metrics /metrics)",
            handle.local_addr()
        );
        if let Some(f) = hooks.listening.take() {
            f(handle.local_addr());
        }
        (Some(live_tx), Some(handle))
    };

    let flows_out = crate::flows_to::FlowsOut::connect(
        args.kafka.flows_to.as_deref(),
        args.kafka.partitions,
        status.clone(),
    )?;
    if let Some((model, labels, pcfg)) = for_kafka {
        if let Some(f) = hooks.capturing.take() {
            f();
        }
        let status_line = status_line(status.clone(), store_stats.clone());
        let result = crate::run_kafka::analyse(
            &args,
            crate::run_kafka::AnalysisContext {
                model,
                labels,
                pcfg,
                status: status.clone(),
                tx: &tx,
                live: live_tx.as_ref(),
                durable: durable.clone(),
                extents: &|| store.source_extents(),
                reader: Some(store.history()?),
                flows_out: flows_out.as_ref(),
            },
        );
        status.source_done.store(true, Relaxed);
        if let Some(f) = flows_out {
            f.finish();
        }
        drop(tx);
        let written = writer_thread
            .join()
            .map_err(|_| Failure::Input(anyhow::anyhow!("the store writer panicked")))?;
        status_line.stop();
        eprintln!(
            "trafficscope: {} packets, {} bins, {} windows, {} flows; {} to {}",
            status.packets.load(Relaxed),
            status.bins.load(Relaxed),
            status.windows.load(Relaxed),
            status.flows_ended.load(Relaxed),
            match &written {
                Ok(w) => format!("{} outputs committed", w.committed),
                Err(e) => format!("the store failed: {e}"),
            },
            store_name
        );
        if let Some(server) = server {
            if let Err(e) = server.stop() {
                eprintln!("trafficscope: the HTTP server stopped with an error: {e}");
            }
        }
        written.map_err(|e| Failure::Input(e.into()))?;
        return result;
    }
    pipeline::source::stop_on_signals();
    let mut input = Input::open(&source_cfg)?;
    input.track_kernel_drops(status.drops_kernel.clone());
    if let Some(f) = hooks.capturing.take() {
        f();
    }
    let status_line = status_line(status.clone(), store_stats.clone());
    // Outputs go to the live stream at once and to the store writer in
    // batches: at each closed bin (once a second of capture time), when
    // 1024 are waiting, and at the end; a batch costs one wake-up, not one
    // per flow.
    let mut batch: Vec<Output> = Vec::with_capacity(1024);
    let mut sent = 0u64;
    let mut send = |pipe: &mut Pipeline, force: bool| -> std::io::Result<()> {
        let mut bin_closed = false;
        for o in pipe.drain() {
            if matches!(o, Output::Bin(_)) {
                status.bins_published.fetch_add(1, Relaxed);
            }
            if let Some(f) = &flows_out {
                f.offer(&o);
            }
            // Copied for the live stream only while someone listens.
            if let Some(l) = live_tx.as_ref().filter(|l| l.receiver_count() > 0) {
                let _ = l.send(Arc::new(o.clone()));
            }
            bin_closed |= matches!(o, Output::Bin(_));
            batch.push(o);
        }
        if bin_closed || force || batch.len() >= 1024 {
            for o in batch.drain(..) {
                // Blocks when the store falls behind: a file waits, a live
                // capture's kernel ring fills and its drops are counted there.
                tx.send(o)
                    .map_err(|_| std::io::Error::other("the store writer stopped"))?;
                sent += 1;
            }
        }
        let done = store_stats.bins_written.load(Relaxed)
            + store_stats.windows_written.load(Relaxed)
            + store_stats.hurst_written.load(Relaxed)
            + store_stats.flows_written.load(Relaxed)
            + store_stats.drops.load(Relaxed);
        status
            .queue_len
            .store(sent.saturating_sub(done) + batch.len() as u64, Relaxed);
        Ok(())
    };
    let result = input.for_each(|ev| {
        match ev {
            Event::Frame(f, origin) => {
                if let Some(w) = ring_writer.as_mut() {
                    w.write(f);
                }
                pipe.push(f, origin)
            }
            Event::Tick(now) => {
                if let Some(w) = ring_writer.as_mut() {
                    w.tick();
                }
                pipe.tick(now)
            }
        }
        if pipe.pending_outputs() > 0 {
            send(&mut pipe, false)?;
        }
        Ok(())
    });
    if let Some(s) = input.live_stats() {
        status.drops_kernel.store(s.dropped, Relaxed);
    }
    pipe.finish();
    let sent = send(&mut pipe, true);
    status.source_done.store(true, Relaxed);
    if let Some(f) = flows_out {
        f.finish();
    }
    input.report_live();
    // Every packet read is in the ring (and the index) before the history is served.
    if let (Some(ring), Some(w)) = (&ring, ring_writer.take()) {
        crate::pcap_ring::report(ring, &w.finish());
    }
    if let Err(e) = &result {
        eprintln!("trafficscope: error: {e}");
    }
    // The input is over: everything goes to disk before the history is served.
    drop(tx);
    let written = writer_thread
        .join()
        .map_err(|_| Failure::Input(anyhow::anyhow!("the store writer panicked")))?;
    status_line.stop();
    let summary = match &written {
        Ok(w) => format!(
            "{} outputs committed (store writer: {:.2} s CPU){}",
            w.committed,
            w.cpu_s,
            if w.dropped > 0 {
                format!(", {} DROPPED (the store could not write them)", w.dropped)
            } else {
                String::new()
            }
        ),
        Err(e) => format!("the store failed: {e}"),
    };
    eprintln!(
        "trafficscope: {} packets, {} bins, {} windows, {} Hurst points, {} flows; {summary} to {}",
        status.packets.load(Relaxed),
        status.bins.load(Relaxed),
        status.windows.load(Relaxed),
        status.hurst_points.load(Relaxed),
        status.flows_ended.load(Relaxed),
        store_name
    );
    if let Some(server) = server {
        if !pipeline::source::stop_requested() {
            eprintln!(
                "trafficscope: input ended; serving the history at http://{}/ until Ctrl-C",
                server.local_addr()
            );
            while !pipeline::source::stop_requested() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Err(e) = server.stop() {
            eprintln!("trafficscope: the HTTP server stopped with an error: {e}");
        }
    }
    written.map_err(|e| Failure::Input(e.into()))?;
    sent.map_err(|e| Failure::Input(e.into()))?;
    result?;
    Ok(())
}

/// Width of the characterisation bins (the fine series).
const FINE_NS: u64 = 100_000_000;

/// Outputs in flight between the pipeline and the store writer.
const QUEUE: usize = 65_536;

/// The service's status line: packets and their rate, flows, bins, commits.
fn status_line(status: Arc<Status>, store: Arc<store::StoreStats>) -> Ticker {
    let mut last = (Instant::now(), 0u64);
    Ticker::start(move || {
        let p = status.packets.load(Relaxed);
        let rate = (p - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
        last = (Instant::now(), p);
        format!(
            "{} packets ({:.0}/s), {} flows open, {} ended, {} bins; store {} commits{}",
            p,
            rate,
            status.open_flows.load(Relaxed),
            status.flows_ended.load(Relaxed),
            status.bins.load(Relaxed),
            store.commits.load(Relaxed),
            if store.failing.load(Relaxed) {
                ", FAILING (ingest kept in memory)"
            } else {
                ""
            }
        )
    })
}

/// One status line on a terminal, refreshed each second; a plain line
/// every 10 s otherwise.
pub(crate) struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn start(mut line: impl FnMut() -> String + Send + 'static) -> Ticker {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let tty = std::io::stderr().is_terminal();
            let every = if tty { 5 } else { 50 };
            let mut tick = 0u64;
            while !s2.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                tick += 1;
                if !tick.is_multiple_of(every) {
                    continue;
                }
                if tty {
                    eprint!("\r\x1b[2K{}", line());
                } else {
                    eprintln!("trafficscope: {}", line());
                }
            }
            if tty {
                eprint!("\r\x1b[2K");
            }
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn stop(mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn parse_store_url(s: &str) -> Result<store::clickhouse::ClickHouseUrl, String> {
    store::clickhouse::ClickHouseUrl::parse(s)?.with_password_from_env()
}

/// The store `run` writes: the embedded one in `--data`, or ClickHouse
/// (`--store`), behind one face for the rest of `run`.
enum OpenStore {
    Embedded(store::Store),
    ClickHouse(store::clickhouse::ClickHouse),
}

impl OpenStore {
    fn open(args: &RunArgs, data: &Path, opts: store::StoreOptions) -> Result<OpenStore, Failure> {
        let fail = |e: store::StoreError| Failure::Input(e.into());
        Ok(match &args.store {
            None => {
                let (s, report) = store::Store::open(data, opts).map_err(fail)?;
                eprintln!("trafficscope: {}", report.summary());
                OpenStore::Embedded(s)
            }
            Some(url) => {
                let (s, summary) =
                    store::clickhouse::ClickHouse::open(url.clone(), opts).map_err(fail)?;
                eprintln!("trafficscope: {summary}");
                OpenStore::ClickHouse(s)
            }
        })
    }

    /// How the end-of-run summary names it.
    fn name(&self, data: &Path) -> String {
        match self {
            OpenStore::Embedded(_) => data.display().to_string(),
            OpenStore::ClickHouse(c) => c.url().to_string(),
        }
    }

    fn data_dir(&self, data: &Path) -> Option<PathBuf> {
        match self {
            OpenStore::Embedded(_) => Some(data.to_path_buf()),
            OpenStore::ClickHouse(_) => None,
        }
    }

    #[allow(clippy::type_complexity)]
    fn spawn_writer(
        &self,
        data: &Path,
        spool_cap: u64,
        rx: mpsc::Receiver<Output>,
        stats: Arc<store::StoreStats>,
        opts: store::WriterOptions,
        on_written: store::OnWritten,
    ) -> Result<std::thread::JoinHandle<Result<store::WriterSummary, store::StoreError>>, Failure>
    {
        let fail = |e: store::StoreError| Failure::Input(e.into());
        Ok(match self {
            OpenStore::Embedded(s) => {
                store::spawn_writer(s.writer().map_err(fail)?, rx, stats, opts, on_written)
            }
            OpenStore::ClickHouse(c) => {
                let spool = data.join(store::clickhouse::SPOOL_DIR);
                let w = c.writer(&spool, spool_cap).map_err(fail)?;
                store::spawn_writer(w, rx, stats, opts, on_written)
            }
        })
    }

    fn history(&self) -> Result<Arc<dyn store::History>, Failure> {
        Ok(match self {
            OpenStore::Embedded(s) => Arc::new(s.history().map_err(|e| Failure::Input(e.into()))?),
            OpenStore::ClickHouse(c) => Arc::new(c.history()),
        })
    }

    fn source_extents(&self) -> Result<store::SourceExtents, store::StoreError> {
        match self {
            OpenStore::Embedded(s) => s.source_extents(),
            OpenStore::ClickHouse(c) => c.source_extents(),
        }
    }
}
