//! The ceiling of `leadflow bench`: a plain consumer that reads a topic from
//! the beginning and only counts messages. Whatever the engine does on top
//! (decode, validate, append durably, commit offsets) is measured against
//! it.

use super::{client_config, BusError};
use crate::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
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
    let partitions = super::admin::check_topics(k, &[topic])?[0];
    let consumer: BaseConsumer = client_config(k)
        .set("group.id", "leadflow-bench-ceiling")
        .set("enable.auto.commit", "false")
        .set(
            "queued.max.messages.kbytes",
            super::ingest::PREFETCH_KBYTES_MAX,
        )
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut first: Option<Instant> = None;
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut last = Instant::now();
    while n < expect && last.elapsed() < Duration::from_millis(idle_ms) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
                bytes += m.payload_len() as u64;
                last = Instant::now();
            }
            Some(Err(e)) => tracing::warn!("ceiling consumer: {e}"),
            None => {}
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |f| last.duration_since(f));
    Ok((n, bytes, elapsed))
}
