//! Packets between capture and analysis nodes.
//!
//! A capture node turns frames into packet records ([`encode::Encoder`]:
//! decoded fields, the canonical flow key, the frame's bytes the analysis
//! needs) and publishes them in batches ([`record`]: the versioned
//! encoding) to Kafka ([`kafka`], feature `kafka`), one partition per flow
//! key. An analysis node reads them back as frames for the same stages a
//! local run uses.

pub mod encode;
pub mod record;

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod kafka_json;

pub use encode::{flow_key_hash, Encoder, PayloadWindow};
pub use record::{BatchWriter, DecodeError, Kind, Message, PacketRecord};
