//! The dead-letter message format: the original key and bytes, untouched,
//! with headers that say where the input came from and why it was refused.
//!
//! Headers: `source_topic`, `source_partition`, `source_offset`,
//! `rejection_reason` (the stable code, e.g. `not_owner`),
//! `rejection_message` (for humans), `event_id` and `lead_id` when the input
//! decoded that far.

use super::acks::{send_waiting, CommandProducer, Delivery};
use super::BusError;
use crate::control::Live;
use crate::log::StoredRejection;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use std::sync::mpsc;
use std::time::Duration;

/// Most dead letters published per pass; bounds in-flight sends.
const DEAD_LETTERS_PER_PASS_MAX: usize = 1_000;

/// Publishes queued dead letters (at most a pass's worth per part) and
/// marks them sent on acknowledgement; a failed one stays queued for the
/// next pass. Returns how many were sent.
pub fn dispatch(
    live: &mut Live,
    producer: &CommandProducer,
    dlq_topic: &str,
) -> Result<usize, BusError> {
    let keys: Vec<_> = live.parts.keys().copied().collect();
    let mut sent = 0;
    let mut pending = 0;
    for key in keys {
        let (n, left) = dispatch_part(live, key, producer, dlq_topic)?;
        sent += n;
        pending += left;
    }
    if pending == 0 {
        live.dead_letters_dirty = false;
    }
    Ok(sent)
}

/// One part's pass: (sent, pending when the pass began).
fn dispatch_part(
    live: &mut Live,
    key: crate::control::PartKey,
    producer: &CommandProducer,
    dlq_topic: &str,
) -> Result<(usize, usize), BusError> {
    let log = &live.parts[&key].log;
    let pending = log.pending_dead_letters(DEAD_LETTERS_PER_PASS_MAX)?;
    if pending.is_empty() {
        return Ok((0, 0));
    }
    let (acks, acked) = mpsc::channel();
    for r in &pending {
        let mut record = BaseRecord::with_opaque_to(
            dlq_topic,
            Box::new(Delivery {
                acks: acks.clone(),
                seq: r.rseq,
            }),
        )
        .payload(&r.raw)
        .headers(headers(r));
        if let Some(k) = r.origin.as_ref().and_then(|o| o.key.as_ref()) {
            record = record.key(k);
        }
        if let Err(e) = send_waiting(producer, record, Duration::from_secs(30)) {
            tracing::warn!(
                rseq = r.rseq,
                "dead letter not handed to the producer, will retry: {e}"
            );
        }
    }
    // Each dead letter handed over is reported once, acknowledged or
    // failed (within `message.timeout.ms`), and its sender dropped then:
    // the channel closes after the last.
    drop(acks);
    let mut sent = Vec::with_capacity(pending.len());
    for a in acked.iter() {
        match a.result {
            Ok(()) => sent.push(a.seq),
            Err(e) => tracing::warn!(
                rseq = a.seq,
                "dead letter not acknowledged, will retry: {e}"
            ),
        }
    }
    log.mark_dead_letters_sent(&sent)?;
    live.dead_letters_sent(sent.len());
    Ok((sent.len(), pending.len()))
}

/// Splits a log source name `kafka:TOPIC/PARTITION`.
pub fn parse_source(source: &str) -> Option<(&str, i32)> {
    let rest = source.strip_prefix("kafka:")?;
    let (topic, partition) = rest.rsplit_once('/')?;
    Some((topic, partition.parse().ok()?))
}

/// Headers of the dead letter for one rejection.
pub fn headers(r: &StoredRejection) -> OwnedHeaders {
    let reason = r.reason.code();
    let message = r.reason.to_string();
    let mut h = OwnedHeaders::new();
    let mut add = |key: &str, value: &str| {
        h = std::mem::take(&mut h).insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    };
    if let Some(o) = &r.origin {
        match parse_source(&o.source) {
            Some((topic, partition)) => {
                add("source_topic", topic);
                add("source_partition", &partition.to_string());
            }
            None => add("source", &o.source),
        }
        add("source_offset", &o.offset.to_string());
    }
    add("rejection_reason", reason);
    add("rejection_message", &message);
    if let Some(e) = &r.event_id {
        add("event_id", e);
    }
    if let Some(l) = &r.lead_id {
        add("lead_id", l);
    }
    add(
        "content-type",
        "application/x-protobuf; messageType=leadflow.v1.LeadEvent",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_split_into_topic_and_partition() {
        assert_eq!(parse_source("kafka:a.b/3"), Some(("a.b", 3)));
        assert_eq!(parse_source("file:/x"), None);
        assert_eq!(parse_source("kafka:t/x"), None);
    }
}
