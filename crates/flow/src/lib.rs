//! Bidirectional flow tracking.
//!
//! [`FlowTable`] keys packets by the canonical five-tuple ([`FlowKey`]),
//! keeps per-direction statistics, the first-N packet sequence and
//! application hints, and emits a [`FlowRecord`] when a flow ends: idle or
//! active timeout, TCP FIN/RST, eviction to respect `max_flows`, or end of
//! input. All timers run on packet timestamps.

mod export;
mod key;
mod net;
mod quic;
mod record;
mod table;

pub use export::{write_csv_header, write_csv_row, FLOW_CSV_COLUMNS};
pub use key::{Addr, Endpoint, FlowKey};
pub use net::{Cidr, CidrError, Direction, LocalNets};
pub use quic::{QuicClientHello, QUIC_INITIALS};
pub use record::{
    AppInfo, DirAccumulator, DirStats, EndReason, FlowRecord, RtpCandidates, Running, Shape, Stat,
    GAP_BUCKET_BOUNDS_NS, SIZE_BUCKET_BOUNDS,
};
pub use table::{FlowConfig, FlowTable, Placement, TableStats};
