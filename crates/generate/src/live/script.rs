//! Scripted servers. The client side of each session knows, from the class
//! model, what its server answers (sizes, delays, dialogue); before each
//! exchange it hands the server its part through an in-process table keyed
//! by the connection's client address. So the bytes on the wire are the
//! offline formats exactly — no size hints in requests — and the servers
//! still run on their own sockets, threads and (with a namespace) network
//! stack: the spirit of tmix-style replay (Weigle et al., "Tmix: a tool for
//! generating realistic TCP application workloads in ns-2", CCR 2006).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::lag::Lag;
use crate::tcp::Msg;
use crate::wire::{render_fill, FillKind};
use crate::Class;

/// An application message: explicit bytes, then filler of a kind.
#[derive(Clone, Debug)]
pub(crate) struct WireMsg {
    pub head: Vec<u8>,
    pub fill: FillKind,
    pub fill_len: u64,
    pub salt: u32,
}

impl WireMsg {
    pub fn bytes(b: impl Into<Vec<u8>>) -> WireMsg {
        WireMsg {
            head: b.into(),
            fill: FillKind::None,
            fill_len: 0,
            salt: 0,
        }
    }

    pub fn fill(head: Vec<u8>, fill: FillKind, fill_len: u64, salt: u32) -> WireMsg {
        WireMsg {
            head,
            fill,
            fill_len,
            salt,
        }
    }

    /// The same message as the offline model's [`Msg`].
    pub fn from_msg(m: &Msg, salt: u32) -> WireMsg {
        WireMsg {
            head: m.head.as_deref().map(<[u8]>::to_vec).unwrap_or_default(),
            fill: m.fill,
            fill_len: m.fill_len,
            salt,
        }
    }

    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.fill_len
    }
}

/// Pacing of a write: link rate and where to record lag.
#[derive(Clone)]
pub(crate) struct Pace {
    pub rate_bps: f64,
    pub class: Class,
    pub lag: Arc<Lag>,
}

/// Writes `m` at `pace.rate_bps`: chunks of about 2 ms of data, each after
/// the first due when the bytes before it have left at the rate (its lag
/// is recorded).
pub(crate) fn write_paced(s: &mut TcpStream, m: &WireMsg, pace: &Pace) -> io::Result<u64> {
    let total = m.len();
    let chunk = ((pace.rate_bps / 8.0 * 0.002) as u64).clamp(1460, 65_536);
    let t0 = Instant::now();
    let mut buf = Vec::with_capacity(chunk as usize);
    let mut sent = 0u64;
    while sent < total {
        if sent > 0 {
            // The first chunk goes at once; later ones are due by the rate.
            let due = t0 + Duration::from_secs_f64(sent as f64 * 8.0 / pace.rate_bps);
            sleep_until(due);
            pace.lag.record_now(pace.class, due);
        }
        let n = (total - sent).min(chunk);
        buf.clear();
        let head = m.head.len() as u64;
        if sent < head {
            let k = (head - sent).min(n);
            buf.extend_from_slice(&m.head[sent as usize..(sent + k) as usize]);
        }
        let fill_from = sent.max(head) - head;
        let fill_n = n - buf.len() as u64;
        if fill_n > 0 {
            render_fill(m.fill, m.salt, fill_from, fill_n, m.fill_len, &mut buf);
        }
        s.write_all(&buf)?;
        sent += n;
    }
    Ok(total)
}

pub(crate) fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        thread::sleep(d);
    }
}

/// Reads and discards exactly `n` bytes.
pub(crate) fn read_n(s: &mut TcpStream, mut n: u64) -> io::Result<()> {
    let mut buf = [0u8; 65_536];
    while n > 0 {
        let k = s.read(&mut buf[..(n.min(65_536)) as usize])?;
        if k == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n -= k as u64;
    }
    Ok(())
}

/// Reads until the peer closes (bounded by the socket's read timeout).
pub(crate) fn read_to_eof(s: &mut TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf), Ok(k) if k > 0) {}
}

/// One step of a server's part in a connection.
pub(crate) enum Step {
    /// Read this many bytes from the client.
    Expect(u64),
    /// Send this message at this pace.
    Send(WireMsg, Pace),
    /// Wait, then close the server's side (FIN).
    CloseAfter(Duration),
}

/// Server parts waiting for their connections, by client address.
#[derive(Default)]
pub(crate) struct Scripts {
    waiting: Mutex<HashMap<SocketAddr, mpsc::Receiver<Step>>>,
    ready: Condvar,
}

impl Scripts {
    /// Registers the server part of the connection from `client`.
    pub fn register(&self, client: SocketAddr) -> mpsc::Sender<Step> {
        let (tx, rx) = mpsc::channel();
        self.waiting.lock().expect("scripts").insert(client, rx);
        self.ready.notify_all();
        tx
    }

    fn take(&self, client: SocketAddr, stop: &AtomicBool) -> Option<mpsc::Receiver<Step>> {
        let mut w = self.waiting.lock().expect("scripts");
        loop {
            if let Some(rx) = w.remove(&client) {
                return Some(rx);
            }
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            w = self
                .ready
                .wait_timeout(w, Duration::from_millis(100))
                .expect("scripts")
                .0;
        }
    }
}

/// Counters shared by the servers.
#[derive(Default)]
pub(crate) struct ServerStats {
    pub bytes: AtomicU64,
}

/// Waits up to `ms` for `fd` to become readable.
fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// Accepts connections on `l` until `stop` (or after one when `once`),
/// each served by its script on a thread of its own.
pub(crate) fn serve_tcp(
    l: TcpListener,
    scripts: Arc<Scripts>,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
    once: bool,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let _ = l.set_nonblocking(true);
        while !stop.load(Ordering::Relaxed) {
            if !readable(l.as_raw_fd(), 100) {
                continue;
            }
            let Ok((s, peer)) = l.accept() else {
                continue;
            };
            let _ = s.set_nonblocking(false);
            let (scripts, stats, stop) = (scripts.clone(), stats.clone(), stop.clone());
            thread::spawn(move || serve_conn(s, peer, &scripts, &stats, &stop));
            if once {
                return;
            }
        }
    })
}

fn serve_conn(
    mut s: TcpStream,
    peer: SocketAddr,
    scripts: &Scripts,
    stats: &ServerStats,
    stop: &AtomicBool,
) {
    let _ = s.set_nodelay(true);
    let Some(rx) = scripts.take(peer, stop) else {
        return;
    };
    for step in rx.iter() {
        let r = match step {
            Step::Expect(n) => read_n(&mut s, n),
            Step::Send(m, pace) => write_paced(&mut s, &m, &pace).map(|n| {
                stats.bytes.fetch_add(n, Ordering::Relaxed);
            }),
            Step::CloseAfter(d) => {
                thread::sleep(d);
                s.shutdown(Shutdown::Write)
            }
        };
        if r.is_err() {
            return;
        }
    }
    // The client has finished its part: wait for its FIN, then close.
    read_to_eof(&mut s);
}

/// Datagrams a UDP server sends after receiving one: (delay, bytes).
pub(crate) type Replies = Vec<(Duration, Vec<u8>)>;

/// Replies of a UDP server to each client, in order of the datagrams
/// the client will send.
#[derive(Default)]
pub(crate) struct UdpScripts {
    next: Mutex<HashMap<SocketAddr, VecDeque<Replies>>>,
}

impl UdpScripts {
    /// The server answers the next datagram from `client` with `r`.
    pub fn push(&self, client: SocketAddr, r: Replies) {
        self.next
            .lock()
            .expect("udp scripts")
            .entry(client)
            .or_default()
            .push_back(r);
    }

    fn pop(&self, client: SocketAddr) -> Option<Replies> {
        let mut m = self.next.lock().expect("udp scripts");
        let q = m.get_mut(&client)?;
        let r = q.pop_front();
        if q.is_empty() {
            m.remove(&client);
        }
        r
    }
}

/// Serves UDP requests on `s` by script until `stop`; replies with delays
/// are sent from a helper thread so that the server keeps answering.
pub(crate) fn serve_udp(
    s: UdpSocket,
    scripts: Arc<UdpScripts>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        let s = Arc::new(s);
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            let Ok((_, from)) = s.recv_from(&mut buf) else {
                continue;
            };
            let Some(replies) = scripts.pop(from) else {
                continue;
            };
            if replies.iter().all(|(d, _)| d.is_zero()) {
                for (_, b) in &replies {
                    let _ = s.send_to(b, from);
                }
            } else {
                let s = s.clone();
                thread::spawn(move || {
                    for (d, b) in replies {
                        thread::sleep(d);
                        let _ = s.send_to(&b, from);
                    }
                });
            }
        }
    })
}
