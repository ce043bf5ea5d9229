//! What the engine counts while it runs for the progress lines, the
//! closing summary and `leadflow bench` (`/metrics` reads `metrics.rs`),
//! and where the Kafka intake stands (for `/readyz`).

use std::collections::BTreeMap;

/// Counters of one `run`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    pub consumed: u64,
    /// Redelivered messages below the log's stored position.
    pub skipped: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub batches: u64,
    pub dead_letters_sent: u64,
    pub commands_decided: u64,
    pub commands_sent: u64,
    /// Accepted events by type (`created`, `assigned`, ...).
    pub accepted_by_type: BTreeMap<String, u64>,
    /// Messages decoded, by the format they came in (`protobuf`, `json`,
    /// `registry_protobuf`, `registry_json`; see `codec::wire`).
    pub decoded_by_format: BTreeMap<&'static str, u64>,
    /// Times a partition was sought back because the broker's first answer
    /// started past the expected offset.
    pub rewinds: u64,
}

/// Where the Kafka intake stands, as the bus last reported it.
#[derive(Clone, Debug, Default)]
pub struct IntakeStatus {
    /// Messages behind the high watermark, per assigned partition.
    pub lag: BTreeMap<i32, i64>,
    pub assigned_partitions: usize,
    /// How long the engine has had no partition assigned (0: it has some).
    pub unassigned_ms: u64,
}
