//! The command dispatcher: publishes the log's outbox to the commands topic.
//!
//! Commands are stored in the log in the same atomic batch as the events
//! that caused them. The dispatcher sends each pending one with the
//! idempotent producer, keyed by lead id (so one lead's commands stay in
//! order on one partition), and marks it sent on the broker's
//! acknowledgement. After a crash whatever was not acknowledged is sent
//! again: delivery is **at-least-once**, and downstream services dedupe by
//! the `command_id` header (stable across retries and replays).

use super::acks::{send_waiting, Acked, CommandProducer, Delivery};
use super::BusError;
use crate::log::EventLog;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

/// Most commands published per pass; bounds in-flight sends.
pub const COMMANDS_PER_PASS_MAX: usize = 1_000;

/// The content type of a command message.
pub const COMMAND_CONTENT_TYPE: &str =
    "application/x-protobuf; messageType=leadflow.v1.LeadCommand";

/// Headers of a command message.
pub fn headers(c: &crate::codec::CommandHeader) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    for (key, value) in [
        ("command_type", c.type_name),
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

/// The most commands sent and not yet acknowledged; bounds the producer's
/// queue and the memory of the in-flight list.
pub const COMMANDS_IN_FLIGHT_MAX: usize = 10_000;

/// One command handed to the producer, waiting for the broker's ack (its
/// delivery comes on the dispatcher's channel, by its `cseq`).
struct InFlight {
    command_id: String,
    /// When the event that caused it was published and consumed, when it
    /// came from the events topic.
    caused: Option<Caused>,
}

/// When a command's cause was published and consumed (see `ingest`).
pub use super::ingest::Caused;

/// Most commands whose cause's publish time waits for their hand-over:
/// bounds memory when the commands topic is down and nothing is handed
/// over (the oldest are forgotten: their latency goes unmeasured).
const CAUSED_AT_MAX: usize = 2 * COMMANDS_IN_FLIGHT_MAX;

/// Publishes the outbox without stopping the ingest loop to wait for acks:
/// [`pump`](Self::pump) hands pending commands to the producer and
/// [`collect`](Self::collect) marks those acknowledged so far as sent.
/// Waiting for each pass's acks in the loop cost a broker round trip per
/// batch, which halved ingest throughput with a policy on.
///
/// A command whose delivery failed stays in the outbox; once everything in
/// flight has settled the dispatcher starts over from the oldest pending
/// command, so it is sent again (at-least-once, as after a crash).
pub struct Dispatcher {
    topic: String,
    /// By `cseq`.
    in_flight: HashMap<u64, InFlight>,
    /// Where the producer reports the deliveries of the commands this
    /// dispatcher handed over (see [`super::acks`]); the sender goes with
    /// each command.
    acks: mpsc::Sender<Acked>,
    acked: mpsc::Receiver<Acked>,
    /// The highest command sequence handed to the producer; pending
    /// commands above it have not been sent by this dispatcher.
    sent_up_to: u64,
    /// A delivery failed: resend from the oldest pending once settled.
    retry: bool,
    /// The last pump could not hand a command to the producer.
    send_failed: bool,
    /// Ids of commands a previous owner of the partitions published (see
    /// `restore`): marked sent when decided again, never published twice.
    /// Shared by the dispatchers of every part being restored (read only).
    published: std::sync::Arc<std::collections::HashSet<String>>,
    /// Commands marked sent because a previous owner had published them.
    pub skipped_published: u64,
    /// Per command not yet handed over: when the event that caused it was
    /// published and consumed (see [`note_caused`](Self::note_caused)).
    caused: std::collections::BTreeMap<u64, Caused>,
}

/// What a dispatcher call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Handed to the producer.
    pub handed: usize,
    /// Acknowledged and marked sent.
    pub sent: usize,
    /// Not acknowledged; still pending, sent again later.
    pub failed: usize,
    /// For each acknowledged command caused by a consumed event: the
    /// milliseconds from that event's publish (its Kafka timestamp; `None`
    /// without one) and from its consumption to the ack.
    pub acked_after: Vec<(Option<i64>, i64)>,
}

impl Dispatcher {
    pub fn new(topic: &str) -> Dispatcher {
        let (acks, acked) = mpsc::channel();
        Dispatcher {
            topic: topic.to_string(),
            in_flight: HashMap::new(),
            acks,
            acked,
            sent_up_to: 0,
            retry: false,
            send_failed: false,
            published: Default::default(),
            skipped_published: 0,
            caused: Default::default(),
        }
    }

    /// The command `cseq` was decided from an event published and consumed
    /// then: its ack will be measured against both.
    pub fn note_caused(&mut self, cseq: u64, caused: Caused) {
        self.caused.insert(cseq, caused);
        while self.caused.len() > CAUSED_AT_MAX {
            self.caused.pop_first();
        }
    }

    /// Commands with these ids were published by a previous owner of the
    /// partitions being restored: they are marked sent, not sent again.
    pub fn skip_published(&mut self, ids: std::sync::Arc<std::collections::HashSet<String>>) {
        self.published = ids;
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Hands pending commands that are not in flight to the producer, up to
    /// [`COMMANDS_IN_FLIGHT_MAX`] in flight and [`COMMANDS_PER_PASS_MAX`] per
    /// call. Returns how many it handed over and whether more may be
    /// waiting (the pass was full, the in-flight bound was reached, or a
    /// failed delivery waits for the rest to settle before a resend).
    pub fn pump(
        &mut self,
        log: &EventLog,
        producer: &CommandProducer,
    ) -> Result<(usize, bool), BusError> {
        self.send_failed = false;
        if self.retry {
            if !self.in_flight.is_empty() {
                return Ok((0, true));
            }
            self.retry = false;
            self.sent_up_to = 0;
        }
        let room = COMMANDS_IN_FLIGHT_MAX - self.in_flight.len();
        if room == 0 {
            return Ok((0, true));
        }
        let limit = room.min(COMMANDS_PER_PASS_MAX);
        let pending = log.pending_commands_encoded_after(self.sent_up_to, limit)?;
        let mut handed = 0;
        let mut published_before = Vec::new();
        for (cseq, (c, payload)) in &pending {
            if self.published.contains(&c.command_id) {
                published_before.push(*cseq);
                self.sent_up_to = *cseq;
                continue;
            }
            // As stored: the same bytes whoever sends it, whenever.
            let record = BaseRecord::with_opaque_to(
                &self.topic,
                Box::new(Delivery {
                    acks: self.acks.clone(),
                    seq: *cseq,
                }),
            )
            .key(c.lead_id.as_bytes())
            .payload(payload)
            .headers(headers(c));
            // Enqueueing does not wait for the ack; a full librdkafka queue
            // (queue.buffering.max.messages) gets a short wait.
            let handed_over = send_waiting(producer, record, Duration::from_millis(100));
            match handed_over {
                Ok(()) => {
                    let was = self.in_flight.insert(
                        *cseq,
                        InFlight {
                            command_id: c.command_id.clone(),
                            caused: self.caused.remove(cseq),
                        },
                    );
                    // Handed over again only after everything in flight
                    // settled (a retry starts over once it is empty).
                    assert!(was.is_none(), "command {cseq} handed over twice");
                }
                Err(e) => {
                    // Not handed over: the outbox keeps it; go round again.
                    tracing::warn!(command_id = %c.command_id, "command not sent, will retry: {e}");
                    self.retry = true;
                    self.send_failed = true;
                    break;
                }
            }
            self.sent_up_to = *cseq;
            handed += 1;
        }
        if !published_before.is_empty() {
            log.mark_commands_sent(&published_before)?;
            self.skipped_published += published_before.len() as u64;
        }
        Ok((handed, pending.len() == limit || self.retry))
    }

    /// Marks the commands acknowledged so far as sent. With `wait`, blocks
    /// until every command in flight has settled (librdkafka reports each
    /// within `message.timeout.ms`, acknowledged or failed).
    pub fn collect(&mut self, log: &EventLog, wait: bool) -> Result<Dispatched, BusError> {
        let settled = self.deliveries(None, wait);
        self.settle(log, settled)
    }

    /// The deliveries reported so far; first waiting up to `first_within`
    /// for one, if any command is in flight; with `all`, until every
    /// command in flight has settled.
    fn deliveries(&mut self, first_within: Option<Duration>, all: bool) -> Vec<Acked> {
        let mut settled = Vec::new();
        if let Some(wait) = first_within.filter(|_| !self.in_flight.is_empty()) {
            settled.extend(self.acked.recv_timeout(wait).ok());
        }
        settled.extend(self.acked.try_iter());
        while all && settled.len() < self.in_flight.len() {
            // The dispatcher holds a sender itself, so the channel never
            // closes while it waits.
            settled.push(self.acked.recv().expect("the dispatcher holds a sender"));
        }
        settled
    }

    /// Marks the settled deliveries: the acknowledged ones sent, the failed
    /// ones to be sent again.
    fn settle(&mut self, log: &EventLog, settled: Vec<Acked>) -> Result<Dispatched, BusError> {
        let now_ms = crate::replay::wall_ms();
        let mut sent = Vec::with_capacity(settled.len());
        let mut failed = 0;
        let mut acked_after = Vec::new();
        for a in settled {
            let Some(f) = self.in_flight.remove(&a.seq) else {
                // Every delivery reported is of a command this dispatcher
                // handed over and has not settled yet.
                debug_assert!(false, "delivery of command {} not in flight", a.seq);
                continue;
            };
            match a.result {
                Ok(()) => {
                    sent.push(a.seq);
                    if let Some(c) = f.caused {
                        acked_after.push((
                            c.published_ms.map(|at| now_ms.saturating_sub(at).max(0)),
                            now_ms.saturating_sub(c.consumed_ms).max(0),
                        ));
                    }
                }
                Err(e) => {
                    tracing::warn!(command_id = %f.command_id, "command not acknowledged, will retry: {e}");
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            self.retry = true;
        }
        log.mark_commands_sent(&sent)?;
        Ok(Dispatched {
            handed: 0,
            sent: sent.len(),
            failed,
            acked_after,
        })
    }

    /// Whether the in-flight bound is reached: the commands topic falls
    /// behind, and the caller should stop taking events until acks come.
    pub fn is_saturated(&self) -> bool {
        self.in_flight.len() >= COMMANDS_IN_FLIGHT_MAX
    }

    /// Like [`collect`](Self::collect) without waiting, but waits up to
    /// `wait` for the first ack (or failure) to arrive.
    pub fn collect_within(
        &mut self,
        log: &EventLog,
        wait: Duration,
    ) -> Result<Dispatched, BusError> {
        let settled = self.deliveries(Some(wait), false);
        self.settle(log, settled)
    }

    /// Sends everything pending and waits for the acks (for shutdown).
    /// Gives up after `attempts_max` rounds with failures, leaving the rest
    /// in the outbox for the next start.
    pub fn drain(
        &mut self,
        log: &EventLog,
        producer: &CommandProducer,
        attempts_max: u32,
    ) -> Result<Dispatched, BusError> {
        let mut total = Dispatched::default();
        let mut failures = 0;
        loop {
            let (handed, more) = self.pump(log, producer)?;
            let d = self.collect(log, true)?;
            total.handed += handed;
            total.sent += d.sent;
            total.failed += d.failed;
            if d.failed > 0 || self.send_failed {
                failures += 1;
                if failures >= attempts_max {
                    return Ok(total);
                }
            }
            if handed == 0 && !more && self.in_flight.is_empty() && !self.retry {
                return Ok(total);
            }
        }
    }
}
