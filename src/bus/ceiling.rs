//! The ceiling of `leadflow bench`: a plain consumer that reads a topic from
//! the beginning and only counts messages. Whatever the engine does on top
//! (decode, validate, append durably, commit offsets) is measured against
//! it.

use super::reader::{self, Idle};
use super::BusError;
use crate::config::KafkaConfig;
use std::time::{Duration, Instant};

/// Reads `topic` from the beginning until `expect` messages have been seen
/// (or nothing arrives for `idle_ms`). Returns the count, the payload bytes
/// and the time from the first message to the last.
pub fn count(
    k: &KafkaConfig,
    topic: &str,
    expect: u64,
    idle_ms: u64,
) -> Result<(u64, u64, Duration), BusError> {
    let (consumer, has_messages) = reader::assigned(
        k,
        topic,
        "leadflow-bench-ceiling",
        reader::From::default(),
        &[(
            "queued.max.messages.kbytes",
            super::ingest::PREFETCH_KBYTES_MAX,
        )],
    )?;
    let mut first: Option<Instant> = None;
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut idle = Idle::new(idle_ms, has_messages);
    while n < expect && !idle.is_over() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
                bytes += m.payload_len() as u64;
                idle.seen();
            }
            Some(Err(e)) => tracing::warn!("ceiling consumer: {e}"),
            None => {}
        }
    }
    let elapsed = match (first, idle.last_seen()) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    Ok((n, bytes, elapsed))
}
