//! The `trafficscope` binary: argument parsing and wiring of the library crates.

mod analyze;
#[cfg(feature = "arrow")]
mod arrow_out;
mod capture_cmd;
mod classify_cmd;
mod demo_cmd;
mod flows;
mod flows_to;
mod generate_cmd;
mod input;
mod packets;
mod pcap_ring;
mod run_cmd;
mod run_kafka;
mod static_names;
mod stats;
mod train_cmd;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "trafficscope",
    version,
    about = "Network-traffic analytics: read captures, decode packets, track flows, characterise traffic",
    after_help = "Examples:\n  trafficscope stats -r capture.pcap\n  trafficscope flows -r capture.pcapng.gz --format jsonl\n  trafficscope packets -r capture.pcap -c 20 -f 'udp port 53'\n  trafficscope capture -i eth0 -w out.pcapng --duration 1m\n  trafficscope flows -i any --format jsonl\n\nExit status: 0 ok, 1 input error (named with file, byte offset and packet), 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One line per packet, like tcpdump (table, CSV or JSON Lines).
    Packets(packets::PacketsArgs),
    /// Bidirectional flows with statistics, first-packet sequences and application hints.
    Flows(flows::FlowsArgs),
    /// Capture summary like capinfos: counts, rates, link types, protocol and service mix.
    Stats(stats::StatsArgs),
    /// Write packets from an interface (or a file, filtered) to a pcap/pcapng file, like tcpdump -w.
    Capture(capture_cmd::CaptureArgs),
    /// Characterise traffic: binned series, burstiness, composition, Hurst parameter by many estimators.
    Analyze(analyze::AnalyzeArgs),
    /// Write a synthetic long-memory series (exact fGn or FARIMA), one value per line.
    Synth(analyze::SynthArgs),
    /// Generate labelled traffic (web, video, VoIP, bulk, DNS) as a capture with ground truth, or live.
    Generate(generate_cmd::GenerateArgs),
    /// Train and compare flow classifiers (random forest, gradient-boosted trees, MLP) on labelled captures.
    Train(train_cmd::TrainArgs),
    /// Classify traffic in streaming with a model; with labels, hits and accuracy per window.
    Classify(classify_cmd::ClassifyArgs),
    /// The live service: packets → flows → classification → bins, windows and
    /// Hurst estimates in a durable store, with a JSON API, live stream and metrics.
    Run(Box<run_cmd::RunArgs>),
    /// Try the live service with nothing to set up: generated web, video
    /// and VoIP traffic, classified and scored, on a dashboard at
    /// http://127.0.0.1:8080/.
    ///
    /// `run` on the in-process generator at real time, scored against the
    /// generator's ground truth, with a temporary store removed at exit;
    /// the dashboard's URL is printed (a free port when 8080 is taken).
    /// With `--live loopback|netns`, real servers and clients send the
    /// traffic through the capture path (root or CAP_NET_RAW).
    Demo(demo_cmd::DemoArgs),
}

/// Filter and live-capture options, shared by `run` and every command that reads packets.
#[derive(Args, Debug, Clone)]
pub struct CaptureOpts {
    /// tcpdump-style filter expression, e.g. 'tcp port 443 and host 10.0.0.1'.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Live capture: bytes kept per packet (like tcpdump -s).
    #[arg(
        short = 's',
        long = "snaplen",
        value_name = "BYTES",
        default_value_t = 262_144
    )]
    pub snaplen: u32,
    /// Live capture: do not put the interface in promiscuous mode (like tcpdump -p).
    #[arg(short = 'p', long = "no-promiscuous")]
    pub no_promiscuous: bool,
    /// Live capture on `any` (or a device without a link header to keep):
    /// the Linux cooked header to write, LINUX_SLL2 (with the interface
    /// index, like tcpdump 4.99) or LINUX_SLL (like older tcpdump -y).
    #[arg(short = 'y', long = "linktype", value_name = "TYPE", default_value = "LINUX_SLL2", value_parser = parse_cooked_header)]
    pub cooked_header: live::CookedHeader,
}

impl CaptureOpts {
    /// A source configuration with these filter and capture settings, the
    /// rest as `SourceConfig::default()`.
    pub fn source_config(&self) -> pipeline::SourceConfig {
        pipeline::SourceConfig {
            filter: self.filter.clone(),
            snaplen: self.snaplen,
            promiscuous: !self.no_promiscuous,
            cooked_header: self.cooked_header,
            ..pipeline::SourceConfig::default()
        }
    }
}

/// Options shared by every command that reads packets.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Capture file to read (pcap or pcapng, optionally gzip/zstd-compressed); `-` for standard input.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Option<String>,
    /// Capture live from this interface (`any` for all); needs root or CAP_NET_RAW.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Stop after this long (live capture), e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Stop after this many packets.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Replay paced by capture timestamps: 1 = real time, 4 = four times faster, `max` = no pacing.
    #[arg(long, value_name = "SPEED", default_value = "max", value_parser = parse_speed)]
    pub speed: Speed,
    /// Local networks (CIDR[,CIDR…]) deciding uplink/downlink; without it, the flow initiator's side is "up".
    #[arg(long = "local-net", value_name = "CIDRS", value_parser = parse_local_nets)]
    pub local_net: Option<flow::LocalNets>,
}

#[derive(Debug, Clone, Copy)]
pub struct Speed(pub Option<f64>);

fn parse_speed(s: &str) -> Result<Speed, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Speed(None));
    }
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(Speed(Some(v))),
        _ => Err(format!(
            "invalid speed {s:?}: use a positive factor such as 1 or 4, or `max`"
        )),
    }
}

fn parse_local_nets(s: &str) -> Result<flow::LocalNets, String> {
    flow::LocalNets::parse(s).map_err(|e| e.to_string())
}

/// Flow-table options shared by `flows`, `packets` and `stats`.
#[derive(Args, Debug, Clone)]
pub struct FlowArgs {
    /// End a flow after this long without packets (e.g. 120s, 2m).
    #[arg(long = "idle-timeout", value_name = "DURATION", default_value = "120s", value_parser = parse_duration_ns)]
    pub idle_timeout: u64,
    /// End (and restart) a flow open longer than this.
    #[arg(long = "active-timeout", value_name = "DURATION", default_value = "1800s", value_parser = parse_duration_ns)]
    pub active_timeout: u64,
    /// Most flows held at once; beyond it the least recently seen is evicted (counted).
    #[arg(long = "max-flows", value_name = "N", default_value_t = 1_000_000)]
    pub max_flows: usize,
    /// Packets kept per flow in the first-N size/direction/timing sequences.
    #[arg(long = "first-n", value_name = "N", default_value_t = 32)]
    pub first_n: usize,
    /// Make the outer VLAN id part of the flow key.
    #[arg(long = "vlan-key")]
    pub vlan_key: bool,
}

impl FlowArgs {
    pub fn config(&self) -> flow::FlowConfig {
        flow::FlowConfig {
            idle_timeout_ns: self.idle_timeout,
            active_timeout_ns: self.active_timeout,
            max_flows: self.max_flows,
            first_n: self.first_n,
            vlan_in_key: self.vlan_key,
            ..flow::FlowConfig::default()
        }
    }
}

fn parse_cooked_header(s: &str) -> Result<live::CookedHeader, String> {
    match s.to_ascii_uppercase().as_str() {
        "LINUX_SLL2" | "SLL2" => Ok(live::CookedHeader::Sll2),
        "LINUX_SLL" | "SLL" => Ok(live::CookedHeader::Sll),
        _ => Err(format!("{s:?}: expected LINUX_SLL2 or LINUX_SLL")),
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    parse_duration_ns(s).map(std::time::Duration::from_nanos)
}

/// Parses `1.5s`, `200ms`, `2m`, `1h`, `30us` or a bare number of seconds.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 120s, 500ms, 2m"))?;
    let mult = match unit.trim() {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" | "µs" => 1e3,
        "ns" => 1.0,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {s:?}: use ns, us, ms, s, m or h"
            ))
        }
    };
    Ok((v * mult).round() as u64)
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Jsonl,
}

/// Failure classes, mapped to exit codes.
#[derive(Debug)]
pub enum Failure {
    /// Bad or unreadable input (exit 1).
    Input(anyhow::Error),
    /// Inconsistent options (exit 2).
    Usage(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Input(e)
    }
}

impl From<capture::CaptureError> for Failure {
    fn from(e: capture::CaptureError) -> Self {
        Failure::Input(e.into())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Input(e.into())
    }
}

/// glibc's allocator returns freed memory above its trim threshold to the
/// kernel and serves large requests with fresh mappings, both adapted as it
/// goes; the service's large, short-lived buffers (Kafka fetches and their
/// decompressed batches, store batches) then cost a page fault per 4 KiB
/// every time: a quarter of an analysis node's CPU. Fixed thresholds keep
/// up to 64 MiB of freed memory for reuse instead.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Libraries log through `tracing` (the Kafka client's joins, fencing and
/// retries); they stay quiet unless `TRAFFICSCOPE_LOG` asks, e.g.
/// `TRAFFICSCOPE_LOG=krafka=debug` or `TRAFFICSCOPE_LOG=warn`.
fn init_library_logs() {
    let Ok(spec) = std::env::var("TRAFFICSCOPE_LOG") else {
        return;
    };
    match spec.parse::<tracing_subscriber::filter::Targets>() {
        Ok(targets) => {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            let fmt = tracing_subscriber::fmt::layer()
                .with_writer(io::stderr)
                .with_ansi(false);
            tracing_subscriber::registry()
                .with(fmt)
                .with(targets)
                .init();
        }
        Err(e) => eprintln!(
            "trafficscope: warning: TRAFFICSCOPE_LOG={spec:?} is not a target list ({e}); \
             library logs stay off (example: TRAFFICSCOPE_LOG=krafka=debug)"
        ),
    }
}

fn main() -> ExitCode {
    tune_allocator();
    init_library_logs();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Packets(a) => packets::run(a),
        Command::Flows(a) => flows::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Capture(a) => capture_cmd::run(a),
        Command::Analyze(a) => analyze::run(a),
        Command::Synth(a) => analyze::synth(a),
        Command::Generate(a) => generate_cmd::run(a),
        Command::Train(a) => train_cmd::train(a),
        Command::Classify(a) => classify_cmd::classify(a),
        Command::Run(a) => run_cmd::run(*a),
        Command::Demo(a) => demo_cmd::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            // A closed stdout (`| head`) is not an error worth a message.
            if let Some(ioe) = e.downcast_ref::<io::Error>() {
                if ioe.kind() == io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            let _ = io::stdout().flush();
            eprintln!("trafficscope: error: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("trafficscope: usage error: {msg}");
            ExitCode::from(2)
        }
    }
}
