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
    /// From an event's publish (its Kafka timestamp) to the broker's ack of
    /// a command it caused, for every such command this run.
    pub event_to_command_ms: LatencyMs,
    /// The engine's own share of it: from the event's consumption to the
    /// ack.
    pub consumed_to_command_ms: LatencyMs,
}

/// A distribution of milliseconds (an HDR histogram: two significant
/// digits, up to an hour; a few kilobytes whatever the count).
#[derive(Clone, Debug)]
pub struct LatencyMs(hdrhistogram::Histogram<u64>);

impl Default for LatencyMs {
    fn default() -> Self {
        LatencyMs(
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000, 2)
                .expect("the bounds are valid"),
        )
    }
}

impl PartialEq for LatencyMs {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for LatencyMs {}

impl LatencyMs {
    /// Records one latency (negative, from clocks apart: 0; past an hour:
    /// an hour).
    pub fn record(&mut self, ms: i64) {
        self.0.saturating_record(u64::try_from(ms).unwrap_or(0));
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0.5: the median), `None` with none
    /// recorded.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(q))
    }
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
