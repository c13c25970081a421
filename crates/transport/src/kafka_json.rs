//! Finished flows to Kafka as JSON (`run --flows-to kafka://…/TOPIC`), for
//! consumers other than trafficscope: one message per flow, the flow row as
//! the store and the API give it, keyed by its five-tuple so a
//! conversation's flows share a partition.
//!
//! The pipeline never waits for the broker: messages go to bounded
//! per-partition queues (`buffer_bytes` in all) sent by the same producer
//! tasks as a capture node's batches; a full queue drops the flow and
//! counts it, a failed send is retried until acknowledged.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::kafka::{
    produce, start_client, KafkaUrl, Msg, PublishStats, PublisherOptions, WhenFull,
};

/// Typical size of one flow's JSON, for sizing the queues.
const FLOW_BYTES: usize = 2048;

/// A producer of JSON flow messages.
pub struct FlowPublisher {
    url: KafkaUrl,
    queues: Vec<mpsc::Sender<Msg>>,
    stats: Arc<PublishStats>,
    thread: Option<JoinHandle<()>>,
}

impl FlowPublisher {
    /// Connects, creating the topic with `partitions` when it is missing.
    /// At most `buffer_bytes` of flows wait for the broker.
    pub fn connect(
        url: &KafkaUrl,
        partitions: i32,
        buffer_bytes: usize,
    ) -> Result<FlowPublisher, String> {
        let opts = PublisherOptions {
            batch_bytes: FLOW_BYTES,
            buffer_bytes,
            when_full: WhenFull::Drop,
            create_partitions: partitions,
            ..PublisherOptions::default()
        };
        let stats = Arc::new(PublishStats::default());
        let (u, s) = (url.clone(), stats.clone());
        let (thread, queues) = start_client(
            "kafka-flows",
            url,
            opts.connect_timeout + Duration::from_secs(5),
            move |ready| produce(u, opts, s, ready),
        )?;
        Ok(FlowPublisher {
            url: url.clone(),
            queues,
            stats,
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> &KafkaUrl {
        &self.url
    }

    /// Counters: `records` flows offered, `records_acked`, and
    /// `dropped_queue_full`.
    pub fn stats(&self) -> Arc<PublishStats> {
        self.stats.clone()
    }

    /// Queues one flow's JSON on the partition of `key`; `false` when its
    /// queue is full (the flow is dropped and counted).
    pub fn publish(&self, key: u64, json: Vec<u8>) -> bool {
        self.stats.records.fetch_add(1, Relaxed);
        let p = (key % self.queues.len().max(1) as u64) as usize;
        let Some(q) = self.queues.get(p) else {
            self.stats.dropped_queue_full.fetch_add(1, Relaxed);
            return false;
        };
        match q.try_send(Msg {
            bytes: json,
            records: 1,
        }) {
            Ok(()) => {
                self.stats.queued_messages.fetch_add(1, Relaxed);
                true
            }
            Err(_) => {
                self.stats.dropped_queue_full.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Waits (at most `wait`) for the broker to acknowledge what is queued;
    /// the flows still unacknowledged (0 when all went through).
    pub fn finish(mut self, wait: Duration) -> u64 {
        let deadline = Instant::now() + wait;
        while self.stats.queued_messages.load(Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = &self.stats;
        let left = s.records.load(Relaxed)
            - s.records_acked.load(Relaxed)
            - s.dropped_queue_full.load(Relaxed);
        self.queues.clear();
        if left == 0 {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        left
    }
}
