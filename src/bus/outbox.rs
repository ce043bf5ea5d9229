//! The command dispatcher: publishes the log's outbox to the commands topic.
//!
//! Commands are stored in the log in the same atomic batch as the events
//! that caused them. The dispatcher sends each pending one with the
//! idempotent producer, keyed by lead id (so one lead's commands stay in
//! order on one partition), and marks it sent on the broker's
//! acknowledgement. After a crash whatever was not acknowledged is sent
//! again: delivery is **at-least-once**, and downstream services dedupe by
//! the `command_id` header (stable across retries and replays).

use super::BusError;
use crate::codec;
use crate::domain::LeadCommand;
use crate::log::EventLog;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::time::Duration;

/// Most commands published per pass; bounds in-flight sends.
pub const COMMANDS_PER_PASS_MAX: usize = 1_000;

/// The content type of a command message.
pub const COMMAND_CONTENT_TYPE: &str =
    "application/x-protobuf; messageType=leadflow.v1.LeadCommand";

/// Headers of a command message.
pub fn headers(c: &LeadCommand) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    for (key, value) in [
        ("command_type", c.body.type_name()),
        ("command_id", c.command_id.as_str()),
        ("causation_event_id", c.causation_event_id.as_str()),
        ("rule_id", c.rule_id.as_str()),
        ("content-type", COMMAND_CONTENT_TYPE),
    ] {
        h = h.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    h
}

/// What one dispatch pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Acknowledged and marked sent.
    pub sent: usize,
    /// Not acknowledged; still pending.
    pub failed: usize,
    /// The pass was full: more may be pending.
    pub more: bool,
}

/// Publishes up to [`COMMANDS_PER_PASS_MAX`] pending commands and marks the
/// acknowledged ones sent; those that failed stay pending for the next pass.
pub fn dispatch(
    log: &EventLog,
    producer: &FutureProducer,
    topic: &str,
) -> Result<Dispatched, BusError> {
    let pending = log.pending_commands(COMMANDS_PER_PASS_MAX)?;
    if pending.is_empty() {
        return Ok(Dispatched::default());
    }
    let payloads: Vec<Vec<u8>> = pending
        .iter()
        .map(|(_, c)| codec::encode_command(c))
        .collect();
    let sends = pending.iter().zip(&payloads).map(|((_, c), payload)| {
        producer.send(
            FutureRecord::to(topic)
                .key(c.lead_id.as_bytes())
                .payload(payload)
                .headers(headers(c)),
            Timeout::After(Duration::from_secs(30)),
        )
    });
    let results = futures::executor::block_on(futures::future::join_all(sends));
    let mut sent = Vec::with_capacity(pending.len());
    for ((cseq, c), result) in pending.iter().zip(results) {
        match result {
            Ok(_) => sent.push(*cseq),
            Err((e, _)) => tracing::warn!(
                command_id = %c.command_id,
                "command not acknowledged, will retry: {e}"
            ),
        }
    }
    log.mark_commands_sent(&sent)?;
    Ok(Dispatched {
        sent: sent.len(),
        failed: pending.len() - sent.len(),
        more: pending.len() == COMMANDS_PER_PASS_MAX,
    })
}
