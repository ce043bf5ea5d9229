//! The batch state machine of the Kafka intake: which offset each
//! partition must deliver next, the open group-commit batch and the
//! partition positions it covers, and whether a partition's fetch has
//! caught the offset the log expects (rewinding when a broker answered
//! past it). Shared by the poll loop and the rdkafka callbacks
//! (`context.rs`) under its own lock, always taken before the engine's.

use super::super::{source_name, source_prefix, BusError};
use crate::codec::{self, stream::REJECTED_PREFIX_BYTES};
use crate::control::{Live, PartKey};
use crate::domain::{tenant, Rejection};
use crate::log::{Batcher, Input, Origin, Position};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Smallest step, in offsets, when rewinding a partition.
const REWIND_MIN: u64 = 1_024;

/// Statistics in a row (one a second) that must show the log's position
/// beyond a partition's high watermark, without the position moving,
/// before the engine calls the topic recreated: a single snapshot can be
/// older than messages already read.
const AHEAD_STRIKES: u32 = 3;

/// Statistics in a row (one a second) that must show a partition still
/// waiting for its first message after a seek, with messages at or beyond
/// the offset it waits for, before it is rewound (see `check_not_stalled`).
/// A broker that answers such a fetch at all answers within a fetch round
/// trip; three seconds of nothing is a broker that never will.
const STALL_STRIKES: u32 = 3;

/// Whether a partition's fetch has been seen to start at or before the
/// offset the log expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FetchState {
    /// Sought to `from`; the first message has not arrived yet.
    Seeking { from: u64 },
    /// Messages arrive in order from the expected offset on.
    InSync,
}

/// One part's share of a batch: its inputs, its partitions' positions and
/// when each input was published.
type PartBatch = (Vec<Input>, Vec<Position>, Vec<Caused>);

/// When an input was published (its message's Kafka timestamp, if it has
/// one) and consumed (this engine's wall clock), ms since the epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caused {
    pub published_ms: Option<i64>,
    pub consumed_ms: i64,
}

pub(super) struct Intake {
    pub batcher: Batcher,
    pub topic: String,
    /// The events topic's partition count at start-up: where each tenant
    /// belongs (`domain::tenant`). Adding partitions moves tenants, so it
    /// needs a migration (README, Scaling out), not a restart.
    pub partitions: i32,
    /// Next offset per partition that the log holds.
    pub durable: HashMap<i32, u64>,
    /// Next offset per partition covered by the open batch.
    pub in_batch: BTreeMap<i32, u64>,
    /// Per assigned partition: has the fetch caught the expected offset?
    pub fetch: HashMap<i32, FetchState>,
    /// An error raised inside a callback, reported by the poll loop.
    pub failed: Option<BusError>,
    /// Messages behind the high watermark, per assigned partition.
    pub lag: BTreeMap<i32, i64>,
    /// The high watermark per partition in librdkafka's latest statistics
    /// (at most a second old): what "caught up" is measured against.
    pub high: BTreeMap<i32, i64>,
    /// Whether `lag` changed since the engine was told.
    pub lag_changed: bool,
    /// The batch clock's origin (the batcher's times are ms since it).
    pub started: Instant,
    /// Messages above it are rejected as `record_too_large`.
    pub record_bytes_max: usize,
    /// What a message's framing may say (schema ids allowed).
    pub accept: codec::wire::Accept,
    /// Since when the engine has had no partition (`None`: it has some).
    pub unassigned_since: Option<Instant>,
    /// Per partition: the position the log held beyond the broker's high
    /// watermark, and in how many statistics in a row (see
    /// `check_not_ahead`).
    pub ahead: HashMap<i32, (u64, u32)>,
    /// Per partition still seeking: the offset it was sought to, and in
    /// how many statistics in a row the broker held messages from the
    /// offset the log expects on without delivering any (see
    /// `check_not_stalled`).
    pub stalled: HashMap<i32, (u64, u32)>,
    /// When each input of the open batch was published and consumed, in
    /// the batcher's order.
    pub caused: Vec<Caused>,
    /// The commands the last appends decided from a consumed event, with
    /// when that event was published and consumed: for their dispatchers,
    /// which measure event-to-command latency at the command's ack.
    pub decided: Vec<(PartKey, u64, Caused)>,
    /// Each partition's source name (`kafka:<topic>/<partition>`), made
    /// once: every input's origin carries it.
    pub sources: HashMap<i32, String>,
}

/// Counts one more statistic in a row that saw `partition` at `at` (a
/// strike), starting over when it moved; returns the count.
fn strike(strikes: &mut HashMap<i32, (u64, u32)>, partition: i32, at: u64) -> u32 {
    let n = match strikes.get(&partition) {
        Some((was, n)) if *was == at => n + 1,
        _ => 1,
    };
    strikes.insert(partition, (at, n));
    n
}

impl Intake {
    /// Whether the log holds every message the broker had in each assigned
    /// partition as of librdkafka's latest statistics (at most a second
    /// old). Only then may the wall clock move the policy's time: while a
    /// backlog is read, the events not read yet (a follow-up, say) must
    /// count before the clock calls a lead neglected, and deadlines fire on
    /// the events' own times as in a replay.
    pub fn caught_up(&self) -> bool {
        !self.durable.is_empty()
            && self
                .durable
                .iter()
                .all(|(p, next)| self.high.get(p).is_some_and(|high| *next as i64 >= *high))
    }

    /// Invariant: the log's position in a partition is not beyond the
    /// broker's high watermark (from fetch responses, in librdkafka's
    /// statistics). A position that stays beyond it means the partition
    /// starts over below the log (the topic was recreated): a broker may
    /// then return nothing until its offsets reach the old position, and
    /// every event before that would be skipped. Stop loudly instead.
    pub fn check_not_ahead(&mut self, partition: i32, taken: u64, high: i64) {
        if taken as i64 <= high {
            self.ahead.remove(&partition);
            return;
        }
        let strikes = strike(&mut self.ahead, partition, taken);
        if strikes >= AHEAD_STRIKES && self.failed.is_none() {
            self.failed = Some(BusError::PositionAhead {
                topic: self.topic.clone(),
                partition,
                stored: taken,
                found: high as u64,
            });
        }
    }

    /// A partition sought to the log's position may never deliver: tansu
    /// 0.6 answers a fetch from inside a record batch with the batches
    /// that *start* at or after it, so from inside a partition's last
    /// batch it answers nothing until more is produced (a restart whose
    /// log stopped inside that batch waited for ever, short of the
    /// topic's end). Statistics that keep showing messages at or beyond
    /// the expected offset of a partition still waiting for its first
    /// message count strikes; `rewind_stalled` then seeks it back, and
    /// what the log already holds is skipped as on any rewind.
    pub fn check_not_stalled(&mut self, partition: i32, taken: u64, high: i64) {
        match self.fetch.get(&partition) {
            Some(FetchState::Seeking { from }) if *from > 0 && (taken as i64) < high => {
                strike(&mut self.stalled, partition, *from);
            }
            _ => {
                self.stalled.remove(&partition);
            }
        }
    }

    /// Rewinds the partitions `check_not_stalled` found waiting for a
    /// fetch their broker will not answer.
    pub fn rewind_stalled<C: ConsumerContext>(
        &mut self,
        live: &mut Live,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), BusError> {
        let due: Vec<(i32, u64)> = self
            .stalled
            .iter()
            .filter(|(_, (_, strikes))| *strikes >= STALL_STRIKES)
            .map(|(p, (from, _))| (*p, *from))
            .collect();
        for (partition, from) in due {
            self.stalled.remove(&partition);
            let expected = match self.in_batch.get(&partition) {
                Some(n) => *n,
                None => self.durable_offset(live, partition)?,
            };
            tracing::info!(
                partition,
                expected,
                "the broker holds messages from the log's position on but delivers none \
                 (a fetch from inside a record batch); rewinding"
            );
            self.rewind(live, consumer, partition, expected, from)?;
        }
        Ok(())
    }

    /// Seeks `partition` back from `from` (the last seek) far enough to
    /// start at or before the record batch holding `expected`, each time
    /// further: what the log holds is skipped as redeliveries.
    fn rewind<C: ConsumerContext>(
        &mut self,
        live: &mut Live,
        consumer: &BaseConsumer<C>,
        partition: i32,
        expected: u64,
        from: u64,
    ) -> Result<(), BusError> {
        let back = expected
            .saturating_sub(from)
            .max(REWIND_MIN)
            .saturating_mul(4);
        let to = expected.saturating_sub(back);
        consumer.seek(
            &self.topic,
            partition,
            Offset::Offset(to as i64),
            Duration::from_secs(10),
        )?;
        self.fetch
            .insert(partition, FetchState::Seeking { from: to });
        live.stats.rewinds += 1;
        Ok(())
    }

    /// Milliseconds since the intake started: the batcher's clock.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The next offset the log holds for `partition` (read from the log
    /// the first time).
    pub fn durable_offset(&mut self, live: &Live, partition: i32) -> Result<u64, BusError> {
        if let Some(o) = self.durable.get(&partition) {
            return Ok(*o);
        }
        let o = match live.part_of(partition) {
            Some(e) => e
                .log
                .position(&source_name(&self.topic, partition))?
                .unwrap_or(0),
            None => 0,
        };
        self.durable.insert(partition, o);
        Ok(o)
    }

    /// Where a partition newly owned resumes: the log's position, not the
    /// group's (the fetch is then watched until it reaches it).
    pub fn resume_from(&mut self, live: &Live, partition: i32) -> Result<Offset, BusError> {
        let next = self.durable_offset(live, partition)?;
        self.fetch
            .insert(partition, FetchState::Seeking { from: next });
        Ok(Offset::Offset(next as i64))
    }

    /// Messages of the topic the log covers: the sum of its stored next
    /// offsets (offsets start at 0 and, without transactions or
    /// compaction, have no gaps).
    pub fn covered(&self, live: &Live) -> Result<u64, BusError> {
        let prefix = source_prefix(&self.topic);
        let mut covered = 0;
        for e in live.parts.values() {
            covered += e
                .log
                .positions(&prefix)?
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>();
        }
        Ok(covered)
    }

    /// Takes one message into the open batch (or skips a redelivery, or
    /// rewinds a partition whose fetch skipped past the expected offset).
    pub fn accept<C: ConsumerContext>(
        &mut self,
        live: &mut Live,
        consumer: &BaseConsumer<C>,
        m: &BorrowedMessage<'_>,
    ) -> Result<(), BusError> {
        let partition = m.partition();
        let offset = u64::try_from(m.offset()).unwrap_or(0);
        let expected = match self.in_batch.get(&partition) {
            Some(n) => *n,
            None => self.durable_offset(live, partition)?,
        };
        match self.fetch.get(&partition).copied() {
            Some(FetchState::Seeking { from }) if offset < from => {
                // Invariant: after a seek to `from`, a broker delivers
                // offsets from `from` on (librdkafka drops the rest of a
                // batch below it). A lower one means the partition starts
                // over below the log's position: the topic was recreated or
                // truncated, and reading on would skip every new event as
                // already held. Stop loudly instead.
                return Err(BusError::PositionAhead {
                    topic: self.topic.clone(),
                    partition,
                    stored: from,
                    found: offset,
                });
            }
            Some(FetchState::Seeking { from }) if offset > expected && from > 0 => {
                // Some brokers (tansu 0.6) answer a fetch from the middle of
                // a record batch with the *next* batch. Going back and
                // skipping what the log already holds gets the rest.
                tracing::debug!(
                    partition,
                    expected,
                    got = offset,
                    "fetch skipped past the expected offset; rewinding"
                );
                return self.rewind(live, consumer, partition, expected, from);
            }
            Some(FetchState::Seeking { .. }) if offset > expected => {
                // Even the earliest retained message is past the log's
                // position: retention removed events the log never held.
                if expected > 0 {
                    tracing::error!(
                        partition,
                        expected,
                        got = offset,
                        "the topic no longer holds offsets the log has not read; \
                         those events are lost (retention shorter than the outage?)"
                    );
                }
                self.fetch.insert(partition, FetchState::InSync);
            }
            Some(FetchState::Seeking { .. }) => {
                self.fetch.insert(partition, FetchState::InSync);
            }
            _ if offset > expected => {
                // In order after a seek, a gap is legal in Kafka
                // (transaction markers, compaction).
                tracing::debug!(partition, expected, got = offset, "offset gap");
            }
            _ => {}
        }
        live.stats.consumed += 1;
        live.metrics.messages_consumed.inc();
        if offset < expected {
            live.stats.skipped += 1;
            return Ok(());
        }
        let payload = m.payload().unwrap_or_default();
        let mut raw_protobuf = false;
        let (record, original) = if payload.len() > self.record_bytes_max {
            let prefix = &payload[..payload.len().min(REJECTED_PREFIX_BYTES)];
            let too_large = Rejection::RecordTooLarge {
                bytes: payload.len() as u64,
                max: self.record_bytes_max as u64,
                byte_offset: None,
            };
            (Err((too_large, prefix.to_vec())), None)
        } else {
            let mut headers = codec::wire::Headers::default();
            if let Some(hs) = m.headers() {
                for h in hs.iter() {
                    headers.set(h.key, h.value.unwrap_or_default());
                }
            }
            match codec::wire::decode_message(payload, &headers, &self.accept) {
                Ok((e, format)) => {
                    *live
                        .stats
                        .decoded_by_format
                        .entry(format.as_str())
                        .or_default() += 1;
                    match tenant::home_partition(&e.tenant_id, self.partitions) {
                        // A mis-keyed producer must not split a tenant
                        // across engines: its event is refused here, where
                        // the partition is known, and kept as received.
                        Some(home) if home != partition => {
                            let wrong = Rejection::WrongPartition {
                                tenant_id: e.tenant_id,
                                partition,
                                expected: home,
                                partitions: self.partitions,
                            };
                            (Err((wrong, payload.to_vec())), None)
                        }
                        _ => {
                            raw_protobuf = format == codec::wire::Format::Protobuf;
                            (Ok(e), Some(payload.to_vec()))
                        }
                    }
                }
                Err(r) => (Err((r, payload.to_vec())), None),
            }
        };
        let source = match self.sources.get(&partition) {
            Some(s) => s.clone(),
            None => {
                let s = source_name(&self.topic, partition);
                self.sources.insert(partition, s.clone());
                s
            }
        };
        let origin = Origin {
            source,
            offset,
            key: m.key().map(<[u8]>::to_vec),
        };
        self.in_batch.insert(partition, offset + 1);
        let now = self.elapsed_ms();
        let input = Input {
            record,
            origin: Some(origin),
            original,
            original_is_encoding: raw_protobuf,
        };
        self.batcher.push(input, now);
        self.caused.push(Caused {
            published_ms: m.timestamp().to_millis(),
            consumed_ms: crate::replay::wall_ms(),
        });
        Ok(())
    }

    /// Notes, for each command an append decided from one of its inputs,
    /// when that input was published and consumed.
    fn note_decided(
        &mut self,
        key: PartKey,
        inputs: &[Input],
        caused: &[Caused],
        report: &crate::log::AppendReport,
    ) {
        if report.commands.is_empty() {
            return;
        }
        let by_event: HashMap<&str, Caused> = inputs
            .iter()
            .zip(caused)
            .filter_map(|(input, at)| Some((input.record.as_ref().ok()?.event_id.as_str(), *at)))
            .collect();
        for (cseq, command) in &report.commands {
            if let Some(at) = by_event.get(command.causation_event_id.as_str()) {
                self.decided.push((key, *cseq, *at));
            }
        }
    }

    /// Appends the open batch with its partition positions through the
    /// engine's one append path (validation, projections and policies fold
    /// it as it is prepared), then commits its offsets to the group once it
    /// is durable.
    pub fn append_batch<C: ConsumerContext>(
        &mut self,
        live: &mut Live,
        consumer: &BaseConsumer<C>,
        mode: CommitMode,
    ) -> Result<(), BusError> {
        if self.batcher.is_empty() {
            return Ok(());
        }
        let inputs = self.batcher.take();
        let mut caused = std::mem::take(&mut self.caused);
        // Skipped redeliveries push no input: the two stay in step.
        debug_assert_eq!(caused.len(), inputs.len());
        caused.resize(inputs.len(), Caused::default());
        // Each partition's inputs and position go to its part (its store,
        // or the whole data dir), in the order they were read.
        let mut parts: BTreeMap<PartKey, PartBatch> = BTreeMap::new();
        for (p, next) in &self.in_batch {
            let key = live.key_of(*p).ok_or_else(|| {
                BusError::Ownership(format!(
                    "partition {p} of {} was read, but this engine keeps no state for it",
                    self.topic
                ))
            })?;
            parts.entry(key).or_default().1.push(Position {
                source: source_name(&self.topic, *p),
                next_offset: *next,
            });
        }
        if live.parts.len() == 1 {
            // One part takes the batch as it is (moved, not copied input by
            // input into a growing vector: that was 2 % of the engine).
            let key = *live.parts.keys().next().expect("one part");
            let part = parts.entry(key).or_default();
            part.0 = inputs;
            part.2 = caused;
        } else {
            for (input, at) in inputs.into_iter().zip(caused) {
                let key = input
                    .origin
                    .as_ref()
                    .and_then(|o| super::super::dead_letter::parse_source(&o.source))
                    .and_then(|(_, p)| live.key_of(p))
                    .expect("every input of the batch came from an owned partition");
                let part = parts.entry(key).or_default();
                part.0.push(input);
                part.2.push(at);
            }
        }
        for (key, (inputs, positions, caused)) in parts {
            let report = live.append_inputs(key, &inputs, &positions)?;
            self.note_decided(key, &inputs, &caused, &report);
        }
        live.metrics.decoded_totals(&live.stats.decoded_by_format);
        let mut tpl = TopicPartitionList::new();
        for (p, next) in std::mem::take(&mut self.in_batch) {
            self.durable.insert(p, next);
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(next as i64))?;
        }
        // The group's offsets are for lag tools; the log is the truth, so a
        // failed commit is only worth a warning.
        if let Err(e) = consumer.commit(&tpl, mode) {
            tracing::warn!("offset commit failed (the log keeps the positions): {e}");
        }
        Ok(())
    }
}
