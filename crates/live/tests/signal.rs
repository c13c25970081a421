//! Stopping a capture from a signal handler (as the CLI does on Ctrl-C).

#![cfg(target_os = "linux")]

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use live::{BpfInsn, LiveConfig, StopHandle};

static STOP: OnceLock<StopHandle> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    // StopHandle::stop is an atomic store and a write(2): signal-safe.
    if let Some(h) = STOP.get() {
        h.stop();
    }
}

#[test]
fn sigusr1_handler_stops_a_blocked_capture() {
    let mut cfg = LiveConfig::new("lo");
    cfg.filter = Some(vec![BpfInsn::new(0x06, 0, 0, 0)]); // nothing arrives
    let Some(mut cap) = open_or_skip(&cfg) else {
        return;
    };
    STOP.set(cap.stop_handle()).unwrap();
    // SAFETY: installs a handler that only calls async-signal-safe code.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let t = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: signals our own process.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
    });
    let start = Instant::now();
    while !cap.is_stopped() && start.elapsed() < Duration::from_secs(10) {
        // EINTR (if the signal lands on this thread) returns Ok(0) too.
        cap.next_batch(Duration::from_secs(30), &mut |_| {})
            .unwrap();
    }
    assert!(cap.is_stopped());
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
}
