//! A TCP relay that can be cut: a server outage in a test without stopping
//! the server other tests share. Used by the store's ClickHouse tests and
//! (through `#[path]`) the CLI's scale-out tests, each using part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A TCP relay to the server that can be cut (connections refused and
/// the open ones reset) and restored: an outage without stopping the
/// server other tests share.
pub struct Relay {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// When set, the first client request holding these bytes cuts the
    /// relay before it reaches the server (an outage at a known step).
    trip: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Relay {
    pub fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let trip: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let (u, cs, tr) = (up.clone(), conns.clone(), trip.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !u.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut held = cs.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                drop(held);
                for (mut a, mut b, to_server) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let (u, cs, tr) = (u.clone(), cs.clone(), tr.clone());
                    thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = a.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            if to_server && tripped_by(&tr, &buf[..n]) {
                                cut(&u, &cs);
                                break;
                            }
                            if b.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = b.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            port,
            up,
            conns,
            trip,
        }
    }

    pub fn cut(&self) {
        cut(&self.up, &self.conns);
    }

    /// Cuts the relay at the first client request that holds `needle`
    /// (that request never reaches the server).
    pub fn cut_at(&self, needle: &[u8]) {
        *self.trip.lock().unwrap() = Some(needle.to_vec());
    }

    /// Whether the relay is cut (by [`Relay::cut`] or a tripped `cut_at`).
    pub fn is_cut(&self) -> bool {
        !self.up.load(Ordering::SeqCst)
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn cut(up: &AtomicBool, conns: &Mutex<Vec<TcpStream>>) {
    up.store(false, Ordering::SeqCst);
    for c in conns.lock().unwrap().drain(..) {
        let _ = c.shutdown(Shutdown::Both);
    }
}

/// Whether `chunk` holds the armed needle; disarms it when it does.
fn tripped_by(trip: &Mutex<Option<Vec<u8>>>, chunk: &[u8]) -> bool {
    let mut armed = trip.lock().unwrap();
    let hit = armed
        .as_deref()
        .is_some_and(|n| chunk.windows(n.len()).any(|w| w == n));
    if hit {
        *armed = None;
    }
    hit
}
