//! `trafficscope demo`: the live service with nothing to set up. It is
//! `run` (the same function, on arguments built here, never a pipeline of
//! its own) on the in-process generator at real time, or with `--live` on
//! real servers and clients captured like any interface; a temporary store;
//! the dashboard on 127.0.0.1:8080, or a free port when that one is taken.
//!
//! Ground truth in `--live` mode. A live capture carries no labels, and
//! the generator writes its label rows only as flows end, after `run` needed
//! them (`run` looks a flow's truth up at its first packet). But the live
//! generator fixes every flow's class before any traffic: each user keeps
//! one class for the run and sends from its own address, and the only flows
//! a user makes outside its class are name lookups at the one DNS server,
//! labelled `dns`. The generator hands that plan over before its first
//! packet (`LivePlan`), and the demo gives it to `run` as ordinary `--rule`s
//! (`port DNS -> dns`, then `net ADDR/32 -> CLASS` per user): the same
//! answers its label rows give, which the `--labels` file lets anyone check
//! (tests/demo.rs does, flow by flow).

use std::ffi::OsString;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::{Args, Parser};
use generate::live::{LiveNet, LiveOptions, LivePlan};

use crate::generate_cmd::LiveMode;
use crate::run_cmd::{self, Hooks, RunArgs};
use crate::Failure;

/// An access network's mix: mostly web users, video and VoIP, some DNS
/// and bulk; with the default 10 users, every class has at least one.
pub const DEFAULT_MIX: &str = "web=4,video=2,voip=2,dns=1,bulk=1";

/// The port the demo serves on when it is free.
const PREFERRED_PORT: u16 = 8080;

/// How long the generator runs when no `--duration` is given: until Ctrl-C.
const FOREVER_NS: u64 = 10 * 365 * 86_400 * 1_000_000_000;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Traffic classes and weights (share of users), e.g. web=3,video=1
    /// (classes: web, video, video-download, voip, voip-icmp, bulk, dns).
    #[arg(long, value_name = "MIX", default_value = DEFAULT_MIX)]
    pub mix: String,
    /// Simulated users, each with its own address and one class.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub users: u32,
    /// Generator seed: the same seed gives the same traffic.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Address of the dashboard and API, on loopback [default:
    /// 127.0.0.1:8080, or a free port when 8080 is taken; :0 for a free port].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Keep the store in DIR (default: a temporary directory removed at exit).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Generate traffic this long (e.g. 10m), then keep serving the history
    /// until Ctrl-C [default: until Ctrl-C].
    #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration)]
    pub duration: Option<Duration>,
    /// Real traffic through the capture path instead of the in-process
    /// generator: servers and clients over loopback (captured on `lo`;
    /// root or CAP_NET_RAW), or in a network namespace behind a veth pair
    /// (captured on the veth; root).
    #[arg(long, value_enum, value_name = "NET")]
    pub live: Option<LiveMode>,
    /// With --live: also write the generator's ground-truth labels to FILE,
    /// one row per flow as it ends (the format of `generate --labels`).
    #[arg(long, value_name = "FILE", requires = "live")]
    pub labels: Option<PathBuf>,
}

/// `run`'s arguments from a command line, through `run`'s own parser, so
/// the demo gets exactly `run`'s defaults.
fn run_args(argv: &[OsString]) -> Result<RunArgs, Failure> {
    #[derive(Parser)]
    #[command(name = "trafficscope run")]
    struct RunCli {
        #[command(flatten)]
        run: RunArgs,
    }
    RunCli::try_parse_from(argv)
        .map(|c| c.run)
        .map_err(|e| Failure::Usage(format!("demo: {e}")))
}

/// A command line for the log, quoted for a shell where needed.
fn shell_line(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| {
            let a = a.to_string_lossy();
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=.,:/@".contains(c))
            {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where to listen, and why not on the preferred port if so.
fn listen_addr(given: Option<SocketAddr>) -> Result<(SocketAddr, Option<String>), Failure> {
    if let Some(a) = given {
        if !a.ip().is_loopback() {
            return Err(Failure::Usage(format!(
                "demo serves on loopback only, not {a}: for a dashboard other machines can \
                 reach, run `trafficscope run --generate {DEFAULT_MIX} --listen {a} --token-file FILE`"
            )));
        }
        return Ok((a, None));
    }
    let preferred = SocketAddr::from((Ipv4Addr::LOCALHOST, PREFERRED_PORT));
    // A probe: the server binds the address a moment later (another
    // program taking the port in between makes `run` fail, saying so).
    match TcpListener::bind(preferred) {
        Ok(_) => Ok((preferred, None)),
        Err(e) => {
            let why = if e.kind() == io::ErrorKind::AddrInUse {
                "in use".to_string()
            } else {
                format!("not available ({e})")
            };
            Ok((
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                Some(format!("port {PREFERRED_PORT} is {why}")),
            ))
        }
    }
}

/// The store's directory: `--data DIR`, or a fresh temporary one that is
/// removed when this is dropped (at exit, also after an error).
struct StoreDir {
    path: PathBuf,
    temporary: bool,
}

impl StoreDir {
    fn new(data: Option<PathBuf>) -> Result<StoreDir, Failure> {
        if let Some(path) = data {
            return Ok(StoreDir {
                path,
                temporary: false,
            });
        }
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = base.join(format!(
            "trafficscope-demo-{}-{nanos:08x}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                Failure::Input(anyhow::anyhow!(
                    "cannot create a temporary store directory in {} ({e}): set TMPDIR to a \
                     writable directory, or give --data DIR",
                    base.display()
                ))
            })?;
        Ok(StoreDir {
            path,
            temporary: true,
        })
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        if self.temporary {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                eprintln!(
                    "trafficscope demo: could not remove the temporary store {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// One line of the demo's own on standard output (what a user reads;
/// `run`'s log goes to standard error).
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "trafficscope demo: {line}");
    let _ = out.flush();
}

/// Says where the dashboard is, once the server listens.
fn url_hook(moved: Option<String>) -> Box<dyn FnOnce(SocketAddr)> {
    Box::new(move |addr: SocketAddr| {
        if let Some(why) = moved {
            say(&format!(
                "{why}, so the dashboard is on port {} instead",
                addr.port()
            ));
        }
        say(&format!(
            "open http://{addr}/ in a browser (Ctrl-C to stop)"
        ));
    })
}

pub fn run(args: DemoArgs) -> Result<(), Failure> {
    if args.users == 0 {
        return Err(Failure::Usage("--users must be at least 1".into()));
    }
    // Checked before anything is printed or created.
    generate::parse_mix(&args.mix).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(mode) = args.live {
        check_privileges(mode)?;
    }
    // Ctrl-C ends the demo cleanly from here on, also while it starts
    // (`run` sees the request and stops at once).
    pipeline::source::stop_on_signals();
    let (listen, moved) = listen_addr(args.listen)?;
    let store = StoreDir::new(args.data.clone())?;
    let mut argv: Vec<OsString> = ["trafficscope", "run", "--listen"]
        .map(OsString::from)
        .to_vec();
    argv.push(listen.to_string().into());
    argv.extend(["--data".into(), store.path.clone().into_os_string()]);
    if let Some(d) = args.duration {
        argv.extend(["--duration".into(), format!("{}ns", d.as_nanos()).into()]);
    }
    let lasting = match args.duration {
        Some(d) => format!(
            "for {:.0} s, then the history is served until Ctrl-C",
            d.as_secs_f64()
        ),
        None => "until Ctrl-C".into(),
    };
    let result = match args.live {
        None => {
            argv.extend(
                [
                    "--generate",
                    &args.mix,
                    "--users",
                    &args.users.to_string(),
                    "--seed",
                    &args.seed.to_string(),
                    "--speed",
                    "1",
                ]
                .map(OsString::from),
            );
            let run = run_args(&argv[1..])?;
            say(&format!(
                "traffic {} from the in-process generator ({} users, seed {}) at real time, \
                 {lasting}, classified by the built-in model and scored against the generator's \
                 ground truth",
                args.mix, args.users, args.seed
            ));
            say_store(&store);
            eprintln!("trafficscope demo: the service is {}", shell_line(&argv));
            run_cmd::run_with(
                run,
                Hooks {
                    listening: Some(url_hook(moved)),
                    capturing: None,
                },
            )
        }
        Some(mode) => live(&args, mode, argv, &store, &lasting, moved),
    };
    drop(store);
    result
}

fn say_store(store: &StoreDir) {
    if store.temporary {
        say(&format!(
            "store in {} (temporary: removed at exit; --data DIR keeps one)",
            store.path.display()
        ));
    } else {
        say(&format!("store in {} (--data: kept)", store.path.display()));
    }
}

/// Live capture needs a packet socket, the namespace root: checked before
/// anything starts, with what to do instead.
fn check_privileges(mode: LiveMode) -> Result<(), Failure> {
    // SAFETY: geteuid has no preconditions.
    if mode == LiveMode::Netns && unsafe { libc::geteuid() } != 0 {
        return Err(Failure::Input(anyhow::anyhow!(
            "demo --live netns creates a network namespace and a veth pair, which needs root: \
             run it with sudo, or use `trafficscope demo --live loopback` (needs only \
             CAP_NET_RAW) or plain `trafficscope demo` (needs nothing)"
        )));
    }
    // SAFETY: plain socket(2); the descriptor is closed at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let denied = matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES));
        return Err(Failure::Input(if denied {
            anyhow::anyhow!(
                "demo --live captures packets from an interface, which needs root or \
                 CAP_NET_RAW ({e}): run it with sudo, or `sudo setcap cap_net_raw+ep \
                 {exe}`; plain `trafficscope demo` needs neither (the same service on the \
                 in-process generator)",
                exe = std::env::current_exe()
                    .map_or("trafficscope".into(), |p| p.display().to_string())
            )
        } else {
            anyhow::anyhow!("cannot open a packet socket for the live capture: {e}")
        }));
    }
    // SAFETY: fd is the descriptor just opened, closed once.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Most users in a namespace with an address each (`generate`'s veth /24).
const NETNS_MAX_USERS: u32 = 253;

/// The generator's thread: `Ok` when its run ended by itself.
type GenThread = std::thread::JoinHandle<Result<(), generate::GenerateError>>;

/// `--live`: the live generator on a thread of its own, `run -i IFACE` on
/// this one with the generator's plan as ground truth. The generator waits
/// before its first packet until the capture is open.
fn live(
    args: &DemoArgs,
    mode: LiveMode,
    mut argv: Vec<OsString>,
    store: &StoreDir,
    lasting: &str,
    moved: Option<String>,
) -> Result<(), Failure> {
    let usage = |e: generate::GenerateError| Failure::Usage(e.to_string());
    if mode == LiveMode::Netns && args.users > NETNS_MAX_USERS {
        return Err(Failure::Usage(format!(
            "demo --live netns: --users {} is too many: at most {NETNS_MAX_USERS}, so that each \
             user has its own address (the ground truth is told by address)",
            args.users
        )));
    }
    let cfg = generate::GenerateConfig {
        mix: generate::parse_mix(&args.mix).map_err(usage)?,
        users: args.users,
        duration_ns: args.duration.map_or(FOREVER_NS, |d| d.as_nanos() as u64),
        seed: args.seed,
        pcap_name: "demo".into(),
        ..generate::GenerateConfig::default()
    };
    cfg.validate().map_err(usage)?;
    // Line by line: rows reach the file as flows end, also when the demo
    // is stopped in the middle.
    let mut labels: Box<dyn Write + Send> = match &args.labels {
        Some(p) => Box::new(io::LineWriter::new(std::fs::File::create(p).map_err(
            |e| Failure::Input(anyhow::anyhow!("cannot create {}: {e}", p.display())),
        )?)),
        None => Box::new(io::sink()),
    };
    let net = match mode {
        LiveMode::Loopback => LiveNet::Loopback,
        LiveMode::Netns => LiveNet::Netns,
    };
    let (plan_tx, plan_rx) = mpsc::channel::<LivePlan>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let gen: GenThread = std::thread::Builder::new()
        .name("live-generator".into())
        .spawn(move || {
            let mut on_plan =
                |p: &LivePlan| plan_tx.send(p.clone()).is_ok() && go_rx.recv().is_ok();
            let opts = LiveOptions {
                on_plan: Some(&mut on_plan),
                ..LiveOptions::default()
            };
            let r = generate::live::run_live_opts(&cfg, net, &mut labels, opts).map(|_| ());
            if matches!(&r, Err(e) if !matches!(e, generate::GenerateError::Cancelled)) {
                // No more traffic: the demo stops and says why.
                pipeline::source::request_stop();
            }
            r
        })
        .map_err(|e| Failure::Input(anyhow::anyhow!("cannot start the live generator: {e}")))?;
    let Ok(plan) = plan_rx.recv() else {
        // It ended before its plan: its error says why.
        return Err(match gen.join() {
            Ok(Err(e)) => Failure::Input(anyhow::anyhow!("the live generator cannot start: {e}")),
            _ => Failure::Input(anyhow::anyhow!("the live generator stopped at its start")),
        });
    };
    let went = Arc::new(AtomicBool::new(false));
    let outcome = (|| {
        let rules = plan.truth_rules().map_err(usage)?;
        argv.extend(["-i".into(), plan.interface.clone().into()]);
        if let Some(f) = &plan.filter {
            argv.extend(["-f".into(), f.into()]);
        }
        for r in &rules {
            argv.extend(["--rule".into(), r.into()]);
        }
        let run = run_args(&argv[1..])?;
        say(&format!(
            "traffic {} between real servers and clients ({} users, seed {}) over {}, {lasting}, \
             captured on {}{}, classified by the built-in model and scored against the \
             generator's ground truth ({} rules from its plan: its DNS server's port, then each \
             user's address)",
            args.mix,
            args.users,
            args.seed,
            match mode {
                LiveMode::Loopback => "loopback",
                LiveMode::Netns => "a veth pair into a network namespace",
            },
            plan.interface,
            plan.filter.as_ref().map_or(String::new(), |f| format!(
                " (filter '{f}': the generator's packets only)"
            )),
            rules.len()
        ));
        say_store(store);
        if let Some(p) = &args.labels {
            say(&format!("the generator's labels go to {}", p.display()));
        }
        eprintln!("trafficscope demo: the service is {}", shell_line(&argv));
        let went = went.clone();
        run_cmd::run_with(
            run,
            Hooks {
                listening: Some(url_hook(moved)),
                // The generator's first packet waits for this.
                capturing: Some(Box::new(move || {
                    went.store(true, Ordering::SeqCst);
                    let _ = go_tx.send(());
                })),
            },
        )
    })();
    finish_generator(gen, went.load(Ordering::SeqCst), mode, outcome)
}

/// Ends the generator's part: a generator that never got the go-ahead has
/// been cancelled (its go-ahead sender is gone) and ends at once, so it is
/// waited for (it removes its namespace); one that ended by itself reports
/// how; one still sending traffic (until Ctrl-C) is left to the process
/// exit, after its namespace is removed.
fn finish_generator(
    gen: GenThread,
    went: bool,
    mode: LiveMode,
    outcome: Result<(), Failure>,
) -> Result<(), Failure> {
    if !went || gen.is_finished() {
        let generated = gen
            .join()
            .unwrap_or_else(|_| Err(generate::GenerateError::BadArgument("it panicked".into())));
        return match (outcome, generated) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(generate::GenerateError::Cancelled) | Ok(())) => Ok(()),
            (Ok(()), Err(e)) => Err(Failure::Input(anyhow::anyhow!(
                "the live generator stopped: {e}"
            ))),
        };
    }
    if mode == LiveMode::Netns {
        generate::live::remove_namespaces_now();
    }
    outcome
}
