//! `run --flows-to kafka://BROKER/TOPIC`: each finished flow, as the live
//! stream's `flow` event gives it (JSON), to a Kafka topic for other
//! consumers. Keyed like the packet records (`transport::flow_key_hash` of
//! the five-tuple), so the flows of one conversation share a partition.
//! The pipeline never waits for the broker: at most [`BUFFER_BYTES`] wait,
//! beyond that flows are dropped and counted (`/metrics`:
//! `trafficscope_drops_total{cause="flows_to"}`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use pipeline::{Output, Status};

use crate::Failure;

/// Flows waiting for the broker at most, in bytes of JSON.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub const BUFFER_BYTES: usize = 16 << 20;

pub struct FlowsOut {
    #[cfg(feature = "kafka")]
    publisher: transport::kafka_json::FlowPublisher,
    status: Arc<Status>,
}

impl FlowsOut {
    /// Connects to `url` (`None`: no `--flows-to`), creating the topic with
    /// `partitions` when it is missing.
    pub fn connect(
        url: Option<&str>,
        partitions: i32,
        status: Arc<Status>,
    ) -> Result<Option<FlowsOut>, Failure> {
        let Some(url) = url else { return Ok(None) };
        #[cfg(feature = "kafka")]
        {
            let url: transport::kafka::KafkaUrl = url
                .parse()
                .map_err(|e| Failure::Usage(format!("--flows-to: {e}")))?;
            let publisher =
                transport::kafka_json::FlowPublisher::connect(&url, partitions, BUFFER_BYTES)
                    .map_err(|e| Failure::Input(anyhow::anyhow!("--flows-to: {e}")))?;
            eprintln!("trafficscope: finished flows go to {url} as JSON");
            Ok(Some(FlowsOut { publisher, status }))
        }
        #[cfg(not(feature = "kafka"))]
        {
            let _ = (url, partitions, status);
            Err(Failure::Usage(
                "--flows-to needs the `kafka` feature, which this trafficscope was built without"
                    .into(),
            ))
        }
    }

    /// Publishes `o` if it is a finished flow.
    pub fn offer(&self, o: &Output) {
        let Output::Flow(f) = o else { return };
        #[cfg(feature = "kafka")]
        {
            let r = &f.record;
            let key =
                transport::flow_key_hash(r.protocol, (r.src, r.src_port), (r.dst, r.dst_port));
            let sent = match serde_json::to_vec(o) {
                Ok(json) => self.publisher.publish(key, json),
                Err(_) => false,
            };
            if !sent {
                self.status.drops_flows_to.fetch_add(1, Relaxed);
            }
        }
        #[cfg(not(feature = "kafka"))]
        let _ = (f, &self.status, Relaxed);
    }

    /// Waits (up to 30 s) for the broker to take what is queued, and says
    /// what went where.
    pub fn finish(self) {
        #[cfg(feature = "kafka")]
        {
            let stats = self.publisher.stats();
            let url = self.publisher.url().clone();
            let left = self.publisher.finish(std::time::Duration::from_secs(30));
            eprintln!(
                "trafficscope: {} flows to {url}: {} acknowledged, {} dropped (queue full), {left} \
                 not acknowledged",
                stats.records.load(Relaxed),
                stats.records_acked.load(Relaxed),
                stats.dropped_queue_full.load(Relaxed),
            );
        }
    }
}
