//! The consumer side of `leadflow run`.
//!
//! One thread polls the consumer group; each partition's messages arrive in
//! order. Messages are decoded and collected into a group-commit batch;
//! the batch is appended to the log **together with the next offset of every
//! partition it covers**, so the log, not the group, says where to resume:
//! a message whose offset is below the stored position is a redelivery and
//! is skipped. Offsets are committed to the group only after the batch is
//! durable, so lag tools see progress.
//!
//! Rejections are queued for the dead-letter topic in the same batch and
//! published from there (at-least-once, re-sent after a crash).
//!
//! Backpressure is structural: polling stops while a batch is appended,
//! librdkafka's prefetch is bounded by `queued.max.messages.kbytes`, and
//! while the command dispatcher has its maximum in flight the loop waits
//! for acks before it takes each next event.
//! Rebalances: a revoked partition's in-flight batch is appended and its
//! offsets committed inside the revoke callback, before it is released.

use super::{client_config, dead_letter, source_name, BusError};
use crate::codec::{self, stream::REJECTED_PREFIX_BYTES};
use crate::config::Config;
use crate::domain::Rejection;
use crate::log::{Batcher, EventLog, Input, Origin, Position};
use crate::policy::Processor;
use crate::projector::Projections;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most dead letters published per pass; bounds in-flight sends.
const DEAD_LETTERS_PER_PASS_MAX: usize = 1_000;
/// Prefetch bound per partition queue, in KiB.
pub const PREFETCH_KBYTES_MAX: &str = "32768";

/// A fixed-bucket histogram for Prometheus (cumulative on export).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// Per bucket (not cumulative); one more than `bounds` for +Inf.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

const BATCH_SIZE_BOUNDS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0];
const APPEND_SECONDS_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

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

/// How often the loop picks up command acks.
const COLLECT_EVERY: Duration = Duration::from_millis(5);
/// Longest the loop waits for command acks while the dispatcher is
/// saturated, before checking for shutdown again.
const DISPATCH_WAIT: Duration = Duration::from_millis(100);
/// Rounds of failed deliveries after which shutdown stops retrying (the
/// outbox keeps the rest for the next start).
const DRAIN_ATTEMPTS_MAX: u32 = 3;

/// How often `run` fires the policy's deadlines on the wall clock.
const DEADLINE_TICK_MS: u64 = 100;
/// With no message for this long, the engine counts as caught up even if
/// the statistics say otherwise (a high watermark above the last message
/// stays there on a topic ending in transaction markers, and a broker may
/// send no statistics): the wall clock must not stop for good.
const QUIET_MEANS_CAUGHT_UP: Duration = Duration::from_secs(2);
/// Longest a "sent" mark (a command or dead letter acknowledged by the
/// broker) waits to be flushed: a crash sends again only what was
/// acknowledged within this window (plus what was in flight).
pub const SENT_MARKS_FLUSH_MS: u64 = 100;

/// Smallest step, in offsets, when rewinding a partition.
const REWIND_MIN: u64 = 1_024;

/// Whether a partition's fetch has been seen to start at or before the
/// offset the log expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// Sought to `from`; the first message has not arrived yet.
    Seeking { from: u64 },
    /// Messages arrive in order from the expected offset on.
    InSync,
}

/// State shared by the poll loop and the rebalance callback. The poll loop
/// never holds the lock while polling, so the callback can always take it.
struct Shared {
    log: EventLog,
    batcher: Batcher,
    topic: String,
    /// Next offset per partition that the log holds.
    durable: HashMap<i32, u64>,
    /// Next offset per partition covered by the open batch.
    in_batch: BTreeMap<i32, u64>,
    /// Per assigned partition: has the fetch caught the expected offset?
    sync: HashMap<i32, Sync>,
    projections: Projections,
    /// The policy processor, when a policy is configured.
    processor: Option<Processor>,
    /// The shadow policy: decides beside the live one, publishes nothing.
    shadow: Option<Processor>,
    stats: IngestStats,
    dead_letters_dirty: bool,
    commands_dirty: bool,
    /// An error raised inside a callback, reported by the poll loop.
    failed: Option<BusError>,
    /// Messages behind the high watermark, per assigned partition.
    lag: BTreeMap<i32, i64>,
    /// The high watermark per partition in librdkafka's latest statistics
    /// (at most a second old): what "caught up" is measured against.
    high: BTreeMap<i32, i64>,
    batch_sizes: Histogram,
    append_seconds: Histogram,
    started: Instant,
    /// Messages above it are rejected as `record_too_large`.
    record_bytes_max: usize,
    /// What a message's framing may say (schema ids allowed).
    accept: codec::wire::Accept,
    /// Since when the engine has had no partition (`None`: it has some).
    unassigned_since: Option<Instant>,
    /// Per partition: the position the log held beyond the broker's high
    /// watermark, and in how many statistics in a row (see
    /// `check_not_ahead`).
    ahead: HashMap<i32, (u64, u32)>,
}

/// Statistics in a row (one a second) that must show the log's position
/// beyond a partition's high watermark, without the position moving,
/// before the engine calls the topic recreated: a single snapshot can be
/// older than messages already read.
const AHEAD_STRIKES: u32 = 3;

impl Shared {
    /// Whether the log holds every message the broker had in each assigned
    /// partition as of librdkafka's latest statistics (at most a second
    /// old). Only then may the wall clock move the policy's time: while a
    /// backlog is read, the events not read yet (a follow-up, say) must
    /// count before the clock calls a lead neglected, and deadlines fire on
    /// the events' own times as in a replay.
    fn caught_up(&self) -> bool {
        !self.durable.is_empty()
            && self
                .durable
                .iter()
                .all(|(p, next)| self.high.get(p).is_some_and(|high| *next as i64 >= *high))
    }

    /// The wall clock moves the policy's time to `now_ms`: the tick is
    /// recorded in the log (see `log::policy_inputs`) with the commands it
    /// fires, so that a replay fires them at the same point.
    fn tick(&mut self, now_ms: i64) -> Result<(), BusError> {
        if let Some(shadow) = self.shadow.as_mut() {
            let fired = shadow.advance(now_ms);
            self.log.append_shadow(&fired)?;
        }
        let Some(p) = self.processor.as_mut() else {
            return Ok(());
        };
        let stored = crate::replay::tick(&mut self.log, p, now_ms)?;
        self.stats.commands_decided += stored.len() as u64;
        self.commands_dirty |= !stored.is_empty();
        Ok(())
    }

    /// Invariant: the log's position in a partition is not beyond the
    /// broker's high watermark (from fetch responses, in librdkafka's
    /// statistics). A position that stays beyond it means the partition
    /// starts over below the log (the topic was recreated): a broker may
    /// then return nothing until its offsets reach the old position, and
    /// every event before that would be skipped. Stop loudly instead.
    fn check_not_ahead(&mut self, partition: i32, taken: u64, high: i64) {
        if taken as i64 <= high {
            self.ahead.remove(&partition);
            return;
        }
        let strikes = match self.ahead.get(&partition) {
            Some((at, n)) if *at == taken => n + 1,
            _ => 1,
        };
        self.ahead.insert(partition, (taken, strikes));
        if strikes >= AHEAD_STRIKES && self.failed.is_none() {
            self.failed = Some(BusError::PositionAhead {
                topic: self.topic.clone(),
                partition,
                stored: taken,
                found: high as u64,
            });
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn durable_offset(&mut self, partition: i32) -> Result<u64, BusError> {
        if let Some(o) = self.durable.get(&partition) {
            return Ok(*o);
        }
        let o = self
            .log
            .position(&source_name(&self.topic, partition))?
            .unwrap_or(0);
        self.durable.insert(partition, o);
        Ok(o)
    }

    /// Messages of the topic the log covers: the sum of its stored next
    /// offsets (offsets start at 0 and, without transactions or
    /// compaction, have no gaps).
    fn covered(&self) -> Result<u64, BusError> {
        let prefix = super::source_prefix(&self.topic);
        Ok(self.log.positions(&prefix)?.iter().map(|(_, n)| n).sum())
    }

    /// Takes one message into the open batch (or skips a redelivery, or
    /// rewinds a partition whose fetch skipped past the expected offset).
    fn accept<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        m: &BorrowedMessage<'_>,
    ) -> Result<(), BusError> {
        let partition = m.partition();
        let offset = u64::try_from(m.offset()).unwrap_or(0);
        let expected = match self.in_batch.get(&partition) {
            Some(n) => *n,
            None => self.durable_offset(partition)?,
        };
        match self.sync.get(&partition).copied() {
            Some(Sync::Seeking { from }) if offset < from => {
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
            Some(Sync::Seeking { from }) if offset > expected && from > 0 => {
                // Some brokers (tansu 0.6) answer a fetch from the middle of
                // a record batch with the *next* batch. Going back and
                // skipping what the log already holds gets the rest.
                let back = (expected - from).max(REWIND_MIN).saturating_mul(4);
                let to = expected.saturating_sub(back);
                tracing::debug!(
                    partition,
                    expected,
                    got = offset,
                    rewind_to = to,
                    "fetch skipped past the expected offset; rewinding"
                );
                consumer.seek(
                    &self.topic,
                    partition,
                    Offset::Offset(to as i64),
                    Duration::from_secs(10),
                )?;
                self.sync.insert(partition, Sync::Seeking { from: to });
                self.stats.rewinds += 1;
                return Ok(());
            }
            Some(Sync::Seeking { .. }) if offset > expected => {
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
                self.sync.insert(partition, Sync::InSync);
            }
            Some(Sync::Seeking { .. }) => {
                self.sync.insert(partition, Sync::InSync);
            }
            _ if offset > expected => {
                // In order after a seek, a gap is legal in Kafka
                // (transaction markers, compaction).
                tracing::debug!(partition, expected, got = offset, "offset gap");
            }
            _ => {}
        }
        self.stats.consumed += 1;
        if offset < expected {
            self.stats.skipped += 1;
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
                    *self
                        .stats
                        .decoded_by_format
                        .entry(format.as_str())
                        .or_default() += 1;
                    raw_protobuf = format == codec::wire::Format::Protobuf;
                    (Ok(e), Some(payload.to_vec()))
                }
                Err(r) => (Err((r, payload.to_vec())), None),
            }
        };
        let origin = Origin {
            source: source_name(&self.topic, partition),
            offset,
            key: m.key().map(<[u8]>::to_vec),
        };
        self.in_batch.insert(partition, offset + 1);
        let now = self.now_ms();
        let input = Input {
            record,
            origin: Some(origin),
            original,
            original_is_encoding: raw_protobuf,
        };
        self.batcher.push(input, now);
        Ok(())
    }

    /// Appends `inputs` with `positions` durably, folding each accepted
    /// event into the projections and the policies as the log accepts it
    /// (the policy's commands go into the same batch), and counts them.
    /// The one append path of every source (Kafka batches, HTTP requests).
    fn append_inputs(
        &mut self,
        inputs: &[Input],
        positions: &[Position],
    ) -> Result<crate::log::AppendReport, BusError> {
        let projections = &mut self.projections;
        let processor = &mut self.processor;
        let shadow = &mut self.shadow;
        let mut shadowed = Vec::new();
        let append_started = Instant::now();
        let report = self.log.append_with(inputs, positions, &mut |seq, event| {
            projections.apply(seq, event);
            if let Some(s) = shadow.as_mut() {
                shadowed.extend(s.handle(seq, event));
            }
            match processor {
                Some(p) => p.handle(seq, event),
                None => Vec::new(),
            }
        })?;
        self.log.append_shadow(&shadowed)?;
        self.append_seconds
            .observe(append_started.elapsed().as_secs_f64());
        self.batch_sizes.observe(inputs.len() as f64);
        for (index, _) in &report.accepted {
            if let Ok(e) = &inputs[*index].record {
                *self
                    .stats
                    .accepted_by_type
                    .entry(e.body.kind().as_str().to_string())
                    .or_default() += 1;
            }
        }
        self.stats.commands_decided += report.commands.len() as u64;
        self.commands_dirty |= !report.commands.is_empty();
        self.stats.accepted += report.accepted.len() as u64;
        self.stats.rejected += report.rejected.len() as u64;
        self.stats.batches += 1;
        self.dead_letters_dirty |= !report.rejected.is_empty();
        Ok(report)
    }

    /// Appends the open batch with its partition positions (validation,
    /// projections and policy fold it as it is prepared), then counts it
    /// and commits its offsets to the group once it is durable.
    fn flush<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        mode: CommitMode,
    ) -> Result<(), BusError> {
        if self.batcher.is_empty() {
            return Ok(());
        }
        let inputs = self.batcher.take();
        let positions: Vec<Position> = self
            .in_batch
            .iter()
            .map(|(p, next)| Position {
                source: source_name(&self.topic, *p),
                next_offset: *next,
            })
            .collect();
        self.append_inputs(&inputs, &positions)?;
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

    /// Publishes queued dead letters and marks them sent on acknowledgement.
    fn dispatch_dead_letters(
        &mut self,
        producer: &FutureProducer,
        dlq_topic: &str,
    ) -> Result<usize, BusError> {
        let pending = self.log.pending_dead_letters(DEAD_LETTERS_PER_PASS_MAX)?;
        if pending.is_empty() {
            self.dead_letters_dirty = false;
            return Ok(0);
        }
        let sends = pending.iter().map(|r| {
            let mut record = FutureRecord::to(dlq_topic)
                .payload(&r.raw)
                .headers(dead_letter::headers(r));
            if let Some(k) = r.origin.as_ref().and_then(|o| o.key.as_ref()) {
                record = record.key(k);
            }
            producer.send(record, Timeout::After(Duration::from_secs(30)))
        });
        let results = futures::executor::block_on(futures::future::join_all(sends));
        let mut sent = Vec::with_capacity(pending.len());
        for (r, result) in pending.iter().zip(results) {
            match result {
                Ok(_) => sent.push(r.rseq),
                Err((e, _)) => tracing::warn!(
                    rseq = r.rseq,
                    "dead letter not acknowledged, will retry: {e}"
                ),
            }
        }
        self.log.mark_dead_letters_sent(&sent)?;
        self.stats.dead_letters_sent += sent.len() as u64;
        Ok(sent.len())
    }
}

struct IngestContext {
    shared: Arc<Mutex<Shared>>,
}

impl ClientContext for IngestContext {
    /// librdkafka's statistics (every `statistics.interval.ms`, served by
    /// `poll`, which never holds the state lock): the partitions' high
    /// watermarks give the lag behind the log's positions.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut s = lock_state(&self.shared);
        let Some(topic) = statistics.topics.get(&s.topic) else {
            return;
        };
        let mut lag = BTreeMap::new();
        let mut high = BTreeMap::new();
        for (p, stats) in &topic.partitions {
            // Only assigned partitions with a known watermark (-1001 and
            // the internal partition -1 are "unknown").
            let Some(taken) = s.in_batch.get(p).or(s.durable.get(p)).copied() else {
                continue;
            };
            if *p >= 0 && stats.hi_offset >= 0 {
                lag.insert(*p, (stats.hi_offset - taken as i64).max(0));
                high.insert(*p, stats.hi_offset);
                s.check_not_ahead(*p, taken, stats.hi_offset);
            }
        }
        s.lag = lag;
        s.high = high;
    }
}

impl ConsumerContext for IngestContext {
    /// Replaces rdkafka's default rebalance handling so that the log, not
    /// the group, decides where an assigned partition resumes, and so that a
    /// revoked partition's open batch is appended before it is released.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut s = lock_state(&self.shared);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut positions = Vec::new();
                for e in tpl.elements() {
                    positions.push((e.topic().to_string(), e.partition()));
                }
                let mut seek = Ok(());
                for (topic, partition) in &positions {
                    // A partition the log has never seen starts at offset 0
                    // (or, if retention removed it, at the earliest offset
                    // via auto.offset.reset): the log must hold every
                    // event, whatever offsets the group remembers.
                    let offset = match s.durable_offset(*partition) {
                        Ok(next) => {
                            s.sync.insert(*partition, Sync::Seeking { from: next });
                            Offset::Offset(next as i64)
                        }
                        Err(e) => {
                            seek = Err(e);
                            continue;
                        }
                    };
                    if let Err(e) = tpl.set_partition_offset(topic, *partition, offset) {
                        seek = Err(e.into());
                    }
                }
                tracing::info!(
                    partitions = positions.len(),
                    "partitions assigned; resuming from the log's positions"
                );
                seek.and_then(|()| {
                    if cooperative {
                        consumer.incremental_assign(tpl)?;
                    } else {
                        consumer.assign(tpl)?;
                    }
                    Ok(())
                })
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(
                    partitions = tpl.count(),
                    "partitions revoked: appending the open batch"
                );
                let flushed = s.flush(consumer, CommitMode::Sync);
                for e in tpl.elements() {
                    s.durable.remove(&e.partition());
                    s.sync.remove(&e.partition());
                }
                flushed.and_then(|()| {
                    if cooperative {
                        consumer.incremental_unassign(tpl)?;
                    } else {
                        consumer.unassign()?;
                    }
                    Ok(())
                })
            }
            other => {
                tracing::error!("rebalance error: {other:?}");
                consumer.unassign().map_err(BusError::from)
            }
        };
        if let Err(e) = result {
            s.failed = Some(e);
        }
    }
}

/// Progress of a running ingest, for the caller to print.
pub struct Progress<'a> {
    pub stats: &'a IngestStats,
    pub projections: &'a Projections,
    pub processor: Option<&'a Processor>,
    /// Messages of the events topic that the log covers, over all
    /// partitions and all runs: the sum of the stored next offsets.
    pub covered: u64,
}

/// What [`run`] hands back for the caller to snapshot.
pub struct Finished {
    pub log: EventLog,
    pub projections: Projections,
    pub processor: Option<Processor>,
    pub shadow: Option<Processor>,
    pub stats: IngestStats,
}

/// Consumes the events topic until `shutdown` is set, then finishes the
/// open batch, drains the outbox and the dead letters and leaves the group.
pub fn run(
    config: &Config,
    log: EventLog,
    projections: Projections,
    processor: Option<Processor>,
    shutdown: &AtomicBool,
    progress_every: Duration,
    on_progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Finished, BusError> {
    run_full(
        config,
        log,
        projections,
        processor,
        None,
        shutdown,
        progress_every,
        on_progress,
        &mut |_| {},
    )
}

/// [`run`], with a shadow policy deciding beside the live one (its commands
/// are stored in the log, see [`EventLog::append_shadow`], never
/// published), handing a [`Handle`] on the running engine to `on_start`
/// (for the HTTP API) before consuming.
#[allow(clippy::too_many_arguments)]
pub fn run_full(
    config: &Config,
    log: EventLog,
    projections: Projections,
    processor: Option<Processor>,
    shadow: Option<Processor>,
    shutdown: &AtomicBool,
    progress_every: Duration,
    on_progress: &mut dyn FnMut(Progress<'_>),
    on_start: &mut dyn FnMut(Handle),
) -> Result<Finished, BusError> {
    let k = &config.kafka;
    for p in shadow.iter() {
        assert_eq!(
            p.state().covered_seq,
            projections.covered_seq,
            "the shadow policy starts from the same point of the log"
        );
    }
    super::admin::check_topics(k, &[&k.events_topic, &k.commands_topic, &k.dlq_topic])?;
    if let Some(p) = &processor {
        assert_eq!(
            p.state().covered_seq,
            projections.covered_seq,
            "policy and projections start from the same point of the log"
        );
    }
    let shared = Arc::new(Mutex::new(Shared {
        log,
        batcher: Batcher::new(config.log.batch_events_max, config.log.batch_wait_ms_max),
        topic: k.events_topic.clone(),
        durable: HashMap::new(),
        in_batch: BTreeMap::new(),
        sync: HashMap::new(),
        projections,
        processor,
        shadow,
        stats: IngestStats::default(),
        // Dead letters and commands left unsent by a previous run go out
        // first.
        dead_letters_dirty: true,
        commands_dirty: true,
        failed: None,
        lag: BTreeMap::new(),
        high: BTreeMap::new(),
        batch_sizes: Histogram::new(BATCH_SIZE_BOUNDS),
        append_seconds: Histogram::new(APPEND_SECONDS_BOUNDS),
        started: Instant::now(),
        record_bytes_max: config.log.record_bytes_max,
        accept: codec::wire::Accept {
            schema_ids: k.schema_ids_allowed.clone(),
        },
        unassigned_since: Some(Instant::now()),
        ahead: HashMap::new(),
    }));
    let reader = lock_state(&shared).log.reader();
    on_start(Handle {
        shared: shared.clone(),
        reader,
    });
    let mut c = client_config(k);
    c.set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES_MAX)
        .set("statistics.interval.ms", "1000");
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    let consumer: BaseConsumer<IngestContext> = c.create_with_context(IngestContext {
        shared: shared.clone(),
    })?;
    consumer.subscribe(&[&k.events_topic])?;
    let producer = super::publish::producer(k)?;
    let mut last_progress = Instant::now();
    let mut last_tick = Instant::now();
    let mut last_message = Instant::now();
    let mut unassigned_warned: Option<Instant> = None;
    let unassigned_warn_after = Duration::from_millis(k.unassigned_warn_ms);
    let mut dispatcher = super::outbox::Dispatcher::new(&k.commands_topic);
    let mut last_collect = Instant::now();

    while !shutdown.load(Ordering::Relaxed) {
        if dispatcher.is_saturated() {
            // Backpressure: the commands topic falls behind, so wait for
            // acks to make room before taking the next event. Without acks
            // the loop still polls one message per wait, which keeps the
            // group membership alive and the intake at a trickle.
            let mut s = lock_state(&shared);
            let d = dispatcher.collect_within(&s.log, DISPATCH_WAIT)?;
            s.stats.commands_sent += d.sent as u64;
            s.commands_dirty |= d.failed > 0 || d.sent > 0;
        }
        let wait_ms = {
            let s = lock_state(&shared);
            match s.batcher.deadline_ms() {
                Some(d) => d.saturating_sub(s.now_ms()).clamp(1, 100),
                None => 100,
            }
        };
        let message = consumer.poll(Duration::from_millis(wait_ms));
        let mut s = lock_state(&shared);
        if let Some(e) = s.failed.take() {
            return Err(e);
        }
        // An engine the group gives nothing to must say so, not print
        // "consumed 0" forever (seen with a dead member never evicted).
        if s.durable.is_empty() {
            let since = *s.unassigned_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= unassigned_warn_after
                && unassigned_warned.is_none_or(|w| w.elapsed() >= unassigned_warn_after)
            {
                unassigned_warned = Some(Instant::now());
                tracing::error!(
                    seconds = since.elapsed().as_secs(),
                    group = %k.group_id,
                    topic = %k.events_topic,
                    "no partitions assigned: the consumer group gives this engine nothing \
                     (other members hold every partition, or a dead member was never \
                     evicted); /readyz fails until it gets some. Check the group with \
                     your Kafka tools, or restart the other members"
                );
            }
        } else {
            s.unassigned_since = None;
            unassigned_warned = None;
        }
        let idle = message.is_none();
        if !idle {
            last_message = Instant::now();
        }
        match message {
            // A full batch is appended just below.
            Some(Ok(m)) => s.accept(&consumer, &m)?,
            Some(Err(e)) => tracing::warn!("consumer: {e}"),
            None => {}
        }
        let now = s.now_ms();
        if s.batcher.is_ready(now) {
            s.flush(&consumer, CommitMode::Async)?;
        }
        // Deadlines fire on the wall clock only between batches, with
        // nothing more to read right now and the log caught up with the
        // broker (see `caught_up`). Under steady traffic, and while a
        // backlog is read, the events' own times move the deadlines on.
        if idle
            && s.batcher.is_empty()
            && last_tick.elapsed() >= Duration::from_millis(DEADLINE_TICK_MS)
            && (s.caught_up() || last_message.elapsed() >= QUIET_MEANS_CAUGHT_UP)
        {
            last_tick = Instant::now();
            s.tick(crate::replay::wall_ms())?;
        }
        // Commands go out without the loop waiting for their acks: hand
        // new ones to the producer after each batch, and pick the acks up
        // every few milliseconds.
        if s.commands_dirty {
            let (_, more) = dispatcher.pump(&s.log, &producer)?;
            s.commands_dirty = more;
        }
        if dispatcher.in_flight() > 0 && last_collect.elapsed() >= COLLECT_EVERY {
            last_collect = Instant::now();
            let d = dispatcher.collect(&s.log, false)?;
            s.stats.commands_sent += d.sent as u64;
            // A failed delivery is sent again once the rest has settled.
            s.commands_dirty |= d.failed > 0;
        }
        if s.dead_letters_dirty && s.batcher.is_empty() {
            s.dispatch_dead_letters(&producer, &k.dlq_topic)?;
        }
        s.log
            .flush_marks_older_than(Duration::from_millis(SENT_MARKS_FLUSH_MS))?;
        if last_progress.elapsed() >= progress_every {
            last_progress = Instant::now();
            let covered = s.covered()?;
            on_progress(Progress {
                stats: &s.stats,
                projections: &s.projections,
                processor: s.processor.as_ref(),
                covered,
            });
        }
    }

    tracing::info!("shutting down: finishing the open batch and draining dead letters");
    {
        let mut s = lock_state(&shared);
        s.flush(&consumer, CommitMode::Sync)?;
        let d = dispatcher.drain(&s.log, &producer, DRAIN_ATTEMPTS_MAX)?;
        s.stats.commands_sent += d.sent as u64;
        if d.failed > 0 {
            tracing::warn!(
                failed = d.failed,
                "commands left unacknowledged at shutdown stay in the outbox for the next start"
            );
        }
        while s.dispatch_dead_letters(&producer, &k.dlq_topic)? > 0 {}
        s.log.flush()?;
    }
    consumer.unsubscribe();
    drop(consumer);
    let shared = Arc::try_unwrap(shared)
        .ok()
        .expect("the consumer and its context are gone")
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(Finished {
        log: shared.log,
        projections: shared.projections,
        processor: shared.processor,
        shadow: shared.shadow,
        stats: shared.stats,
    })
}

/// A read handle on the running engine, for the HTTP API: each call takes
/// the engine's state lock for as long as it reads (the poll loop holds it
/// while it appends a batch, so a call may wait for one batch).
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Mutex<Shared>>,
    /// Reads the stored events without the lock (replays for the API).
    reader: crate::log::LogReader,
}

/// What `/metrics` and `/readyz` need, copied out under the lock.
#[derive(Clone, Debug)]
pub struct Telemetry {
    pub stats: IngestStats,
    pub lag: BTreeMap<i32, i64>,
    pub batch_sizes: Histogram,
    pub append_seconds: Histogram,
    pub commands_pending: u64,
    pub dead_letters_pending: u64,
    pub projection_seq: u64,
    pub pool_sizes: BTreeMap<String, crate::projector::pool::PoolSize>,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub assigned_partitions: usize,
    /// How long the engine has had no partition assigned (0: it has some).
    pub unassigned_ms: u64,
    /// The CRM's side of the commands (policy state; 0 without a policy):
    /// assignments declined, assignments expired, and declines that
    /// matched no pending assignment.
    pub assignments_declined: u64,
    pub assignments_expired: u64,
    pub declines_unmatched: u64,
}

/// Takes the engine's state lock, recovering it when a panic poisoned it.
/// The API is the one other holder, and it leaves no half-made change: its
/// reads change nothing, and its writes (rebuild, policy reload) build the
/// new value first and swap it in. So a panicking handler must not stop
/// ingestion: the guard is taken back, the poison cleared, and a warning
/// logged.
fn lock_state<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| {
        tracing::warn!("the engine's state lock was poisoned by a panic elsewhere; going on");
        m.clear_poison();
        poisoned.into_inner()
    })
}

/// The log's source name of events that came over HTTP
/// (`POST /api/v1/events`); its position counts the events appended.
pub const HTTP_SOURCE: &str = "http";

/// What became of one item of an HTTP ingest request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ItemOutcome {
    /// Appended, durable, with this sequence number.
    Accepted { seq: u64 },
    /// The log already holds this event id (a retried request, or the same
    /// event sent over Kafka too): nothing was appended.
    Duplicate { seq: u64 },
    /// Not appended, for this reason (a validation rejection is kept in the
    /// log as the id's idempotency key; an item that did not decode is
    /// only answered, since its sender has the reason and the bytes).
    Rejected { code: String, detail: String },
}

impl ItemOutcome {
    fn rejected(r: &Rejection) -> ItemOutcome {
        ItemOutcome::Rejected {
            code: r.code().to_string(),
            detail: r.to_string(),
        }
    }
}

impl Handle {
    /// Appends events that came over HTTP through the same validation,
    /// deduplication, policy and durable append as a Kafka batch, and
    /// answers once they are durable: one outcome per item, in order. An
    /// id the log already holds is answered from the log and appended
    /// again by nothing, so a retried request changes nothing.
    pub fn ingest(&self, items: Vec<codec::stream::Record>) -> Result<Vec<ItemOutcome>, BusError> {
        use crate::log::Seen;
        let mut s = self.lock();
        let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; items.len()];
        let mut inputs = Vec::new();
        let mut index_of = Vec::new();
        let from = s.log.position(HTTP_SOURCE)?.unwrap_or(0);
        for (i, item) in items.into_iter().enumerate() {
            let event = match item {
                Err((r, _)) => {
                    outcomes[i] = Some(ItemOutcome::rejected(&r));
                    continue;
                }
                Ok(e) => e,
            };
            match s.log.first_copy_of(&event.event_id)? {
                Some(Seen::Event(seq)) => outcomes[i] = Some(ItemOutcome::Duplicate { seq }),
                Some(Seen::Rejection(rseq)) => {
                    let first = s.log.rejection(rseq)?;
                    outcomes[i] = Some(match first {
                        Some(r) => ItemOutcome::rejected(&r.reason),
                        None => ItemOutcome::rejected(&Rejection::DuplicateOfRejected {
                            first_rseq: rseq,
                        }),
                    });
                }
                None => {
                    let origin = Origin {
                        source: HTTP_SOURCE.to_string(),
                        offset: from + inputs.len() as u64,
                        key: None,
                    };
                    inputs.push(Input::event(event, Some(origin)));
                    index_of.push(i);
                }
            }
        }
        if !inputs.is_empty() {
            let positions = [Position {
                source: HTTP_SOURCE.to_string(),
                next_offset: from + inputs.len() as u64,
            }];
            let report = s.append_inputs(&inputs, &positions)?;
            for (k, seq) in report.accepted {
                outcomes[index_of[k]] = Some(ItemOutcome::Accepted { seq });
            }
            for (k, r) in report.rejected {
                outcomes[index_of[k]] = Some(match r {
                    Rejection::Duplicate { first_seq } => ItemOutcome::Duplicate { seq: first_seq },
                    r => ItemOutcome::rejected(&r),
                });
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every item has an outcome"))
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        lock_state(&self.shared)
    }

    pub fn telemetry(&self) -> Result<Telemetry, BusError> {
        let s = self.lock();
        let (_, commands_pending) = s.log.command_counts()?;
        let log_stats = s.log.stats()?;
        Ok(Telemetry {
            stats: s.stats.clone(),
            lag: s.lag.clone(),
            batch_sizes: s.batch_sizes.clone(),
            append_seconds: s.append_seconds.clone(),
            commands_pending,
            dead_letters_pending: s.log.dead_letters_pending()?,
            projection_seq: s.projections.covered_seq,
            pool_sizes: s.projections.pool.pool_sizes(),
            rejected_by_reason: log_stats.rejected_by_reason,
            assigned_partitions: s.durable.len(),
            unassigned_ms: s
                .unassigned_since
                .map_or(0, |t| t.elapsed().as_millis() as u64),
            assignments_declined: s
                .processor
                .as_ref()
                .map_or(0, |p| p.state().declined_by_rep.values().sum()),
            assignments_expired: s
                .processor
                .as_ref()
                .map_or(0, |p| p.state().expired_by_rep.values().sum()),
            declines_unmatched: s
                .processor
                .as_ref()
                .map_or(0, |p| p.state().declines_unmatched),
        })
    }

    /// Runs `f` on the projections (and the policy, if any) under the lock.
    pub fn with_projections<T>(&self, f: impl FnOnce(&Projections, Option<&Processor>) -> T) -> T {
        let s = self.lock();
        f(&s.projections, s.processor.as_ref())
    }

    /// Runs `f` on the event log under the lock (reads only).
    pub fn with_log<T>(&self, f: impl FnOnce(&EventLog) -> T) -> T {
        let s = self.lock();
        f(&s.log)
    }

    /// The projections as of event time `at_ms`, rebuilt from the log
    /// through the lock-free reader: the engine goes on ingesting
    /// meanwhile (the lock is held only to read where the log ends).
    pub fn projections_at(&self, at_ms: i64) -> Result<Projections, BusError> {
        let (params, last_seq) = {
            let s = self.lock();
            (s.projections.metrics.params().clone(), s.log.last_seq())
        };
        Ok(crate::replay::rebuild_through(
            &self.reader,
            params,
            Some(at_ms),
            last_seq,
        )?)
    }

    /// Rebuilds the live projections from the whole log and swaps them in.
    /// The long fold runs off the lock; under it, only the events appended
    /// meanwhile are folded before the swap.
    pub fn rebuild_projections(&self) -> Result<u64, BusError> {
        let (params, last_seq) = {
            let s = self.lock();
            (s.projections.metrics.params().clone(), s.log.last_seq())
        };
        let mut fresh = crate::replay::rebuild_through(&self.reader, params, None, last_seq)?;
        let mut s = self.lock();
        crate::replay::fold_tail(&s.log, &mut fresh, None, &mut |_| {})?;
        crate::replay::save(&s.log, &fresh)?;
        s.projections = fresh;
        Ok(s.projections.covered_seq)
    }

    /// Puts a newly loaded policy version in force, keeping the running
    /// state (deadlines keep the rules they were set under; a version with
    /// a later `effective_from_ms` waits for it). Returns the version in
    /// force, or `None` when the engine runs without a policy.
    ///
    /// The load is recorded in the log before it applies (see
    /// `log::policy_inputs`), so that replays and restarts apply the
    /// version from exactly this point.
    pub fn reload_policy(
        &self,
        policy: crate::policy::PolicyFile,
    ) -> Result<Option<u32>, BusError> {
        let mut s = self.lock();
        let Shared { log, processor, .. } = &mut *s;
        let Some(p) = processor.as_mut() else {
            return Ok(None);
        };
        crate::replay::load_version(log, p, policy, false)?;
        Ok(Some(p.policy().version))
    }

    /// Checkpoints the projections and the policy state now.
    pub fn save_snapshots(&self) -> Result<u64, BusError> {
        let s = self.lock();
        crate::replay::save(&s.log, &s.projections)?;
        if let Some(p) = &s.processor {
            crate::replay::save_policy(&s.log, p)?;
        }
        Ok(s.projections.covered_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panicking_reader_is_recovered_and_cleared() {
        // Given a lock that an API handler panicked while holding.
        let m = Arc::new(Mutex::new(7u32));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = m2.lock().unwrap();
            panic!("a handler fails");
        })
        .join();
        assert!(m.is_poisoned());
        // When the engine takes it, then it goes on with the state as it
        // was, and the lock is healthy again.
        assert_eq!(*lock_state(&m), 7);
        assert!(!m.is_poisoned());
    }
}
