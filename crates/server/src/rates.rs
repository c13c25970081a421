//! Rates over the last seconds, for the summary and health: a ring of
//! counter samples taken once a second by a background task, so a request
//! never waits and rates are not skewed by when clients happen to ask.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::ctx::Shared;

/// Samples kept: one a second, so rates span up to 10 s.
const SAMPLES: usize = 11;

/// One reading of the cumulative counters.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub packets: u64,
    pub bytes: u64,
    /// Kernel, queue and store drops.
    pub drops: [u64; 3],
}

#[derive(Debug, Default)]
pub struct Ring {
    samples: VecDeque<Sample>,
}

/// Change between the oldest and the newest sample kept.
#[derive(Debug, Clone, Copy)]
pub struct Delta {
    pub seconds: f64,
    pub packets: u64,
    pub bytes: u64,
    pub drops: [u64; 3],
}

impl Ring {
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// `None` until two samples exist.
    pub fn delta(&self) -> Option<Delta> {
        let (a, b) = (self.samples.front()?, self.samples.back()?);
        let seconds = b.at.duration_since(a.at).as_secs_f64();
        (seconds > 0.0).then(|| Delta {
            seconds,
            packets: b.packets.saturating_sub(a.packets),
            bytes: b.bytes.saturating_sub(a.bytes),
            drops: std::array::from_fn(|i| b.drops[i].saturating_sub(a.drops[i])),
        })
    }
}

pub fn read(ctx: &Shared) -> Sample {
    let s = &ctx.app.status;
    Sample {
        at: Instant::now(),
        packets: s.packets.load(Relaxed),
        bytes: s.bytes.load(Relaxed),
        drops: [
            s.drops_kernel.load(Relaxed),
            s.drops_queue.load(Relaxed),
            ctx.app.store_stats.drops.load(Relaxed),
        ],
    }
}

/// Runs until aborted by `serve`.
pub async fn sample(ctx: Shared) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = read(&ctx);
        ctx.rates.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }
}
