//! The Kafka intake of a running engine.
//!
//! One thread polls the consumer group; each partition's messages arrive in
//! order. Messages are decoded and collected into a group-commit batch
//! (`intake.rs`); the batch is appended to the log **together with the next
//! offset of every partition it covers**, so the log, not the group, says
//! where to resume: a message whose offset is below the stored position is
//! a redelivery and is skipped. Offsets are committed to the group only
//! after the batch is durable, so lag tools see progress.
//!
//! Rejections are queued for the dead-letter topic in the same batch and
//! published from there (at-least-once, re-sent after a crash).
//!
//! Backpressure is structural: polling stops while a batch is appended,
//! librdkafka's prefetch is bounded by `queued.max.messages.kbytes`, and
//! while the command dispatcher has its maximum in flight the loop waits
//! for acks before it takes each next event.
//! Rebalances (`context.rs`): a revoked partition's in-flight batch is
//! appended and its offsets committed inside the revoke callback, before
//! it is released.
//!
//! Locks: the intake's (batch state) is always taken before the engine's
//! (`control::Shared`), and neither is held while polling, so the rdkafka
//! callbacks, which run inside `poll`, can always take them.

mod context;
mod intake;

use super::{client_config, dead_letter, source_name, source_prefix, BusError};
use crate::codec;
use crate::config::{Config, Ownership};
use crate::control::{self, lock, IngestStats, IntakeStatus, Live, PartKey};
use crate::log::Batcher;
use crate::shutdown::Shutdown;
use context::IngestContext;
pub use intake::Caused;
use intake::Intake;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::TopicPartitionList;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Prefetch bound per partition queue, in KiB.
pub const PREFETCH_KBYTES_MAX: &str = "32768";

/// How often the loop picks up command acks (a command counts as sent,
/// and its latency is measured, when they are picked up). While commands
/// are in flight the loop's poll waits no longer than this.
const COLLECT_EVERY: Duration = Duration::from_millis(1);
/// Longest the loop waits for command acks while the dispatcher is
/// saturated, before checking for shutdown again.
const DISPATCH_WAIT: Duration = Duration::from_millis(100);
/// Rounds of failed deliveries after which shutdown stops retrying (the
/// outbox keeps the rest for the next start).
const DRAIN_ATTEMPTS_MAX: u32 = 3;

/// Longest wait at shutdown for the group to take the partitions back
/// (then the consumer is closed anyway).
const LEAVE_GROUP_WAIT_MAX: Duration = Duration::from_secs(10);

/// How often `run` fires the policy's deadlines on the wall clock.
const DEADLINE_TICK_MS: u64 = 100;
/// With no message for this long, the engine counts as caught up even if
/// the statistics say otherwise (a high watermark above the last message
/// stays there on a topic ending in transaction markers, and a broker may
/// send no statistics): the wall clock must not stop for good.
const QUIET_MEANS_CAUGHT_UP: Duration = Duration::from_secs(2);
/// Even when the watermarks say the log caught up, the wall clock moves
/// the policy only after this long without a message. The high watermark
/// the check reads comes with librdkafka's periodic statistics (and some
/// brokers report it low), so while a backlog is read the log can reach
/// a stale watermark with more events still to come; a tick there would
/// jump the policy's time to now ahead of them, and what it decides would
/// depend on fetch timing. Under steady traffic the events' own times
/// move the deadlines on, so waiting costs nothing.
const QUIET_BEFORE_TICK: Duration = Duration::from_millis(300);
/// Longest a "sent" mark (a command or dead letter acknowledged by the
/// broker) waits to be flushed: a crash sends again only what was
/// acknowledged within this window (plus what was in flight).
pub const SENT_MARKS_FLUSH_MS: u64 = 100;

/// How often the owners topic is looked at when nothing is to be
/// published (before publishing, it always is).
const OWNER_CHECK_EVERY: Duration = Duration::from_millis(100);

/// How often the gauges that cost a pass over the leads (pool sizes) are
/// refreshed.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Progress of a running ingest, for the caller to print.
pub struct Progress<'a> {
    pub stats: &'a IngestStats,
    /// The running state (its parts' folds; see [`Live::pool_sizes`]).
    pub live: &'a Live,
    /// Messages of the events topic that the log covers, over all
    /// partitions and all runs: the sum of the stored next offsets.
    pub covered: u64,
}

/// The other engines' claims, for the API's forwarding of tenant queries.
fn partition_owners(o: &super::owners::Owner) -> BTreeMap<i32, crate::control::PartitionOwner> {
    o.others()
        .iter()
        .map(|(p, c)| {
            let owner = crate::control::PartitionOwner {
                engine: c.engine.clone(),
                api_url: c.api_url.clone(),
                released: c.released,
            };
            (*p, owner)
        })
        .collect()
}

/// The running state, while the intake consumes (the engine takes it back
/// only after [`consume`] has returned).
pub(crate) fn live_mut<'a>(guard: &'a mut MutexGuard<'_, Option<Live>>) -> &'a mut Live {
    guard
        .as_mut()
        .expect("the engine holds its state while the intake consumes")
}

/// Consumes the events topic into `live` until `shutdown` is triggered,
/// then calls `before_drain` (where the engine stops the other sources
/// that append, the HTTP API, so that what they decided is drained too),
/// appends the open batch, drains the outbox and the dead letters and
/// leaves the group.
pub fn consume(
    config: &Config,
    live: &control::Shared,
    shutdown: &Shutdown,
    progress_every: Duration,
    wall_clock_ticks: bool,
    on_progress: &mut dyn FnMut(Progress<'_>),
    before_drain: &mut dyn FnMut(),
) -> Result<(), BusError> {
    let k = &config.kafka;
    let partitions =
        super::admin::check_topics(k, &[&k.events_topic, &k.commands_topic, &k.dlq_topic])?;
    let events_partitions = i32::try_from(partitions[0]).unwrap_or(i32::MAX);
    let intake = Arc::new(Mutex::new(Intake {
        partitions: events_partitions,
        batcher: Batcher::new(config.log.batch_events_max, config.log.batch_wait_ms_max),
        topic: k.events_topic.clone(),
        durable: HashMap::new(),
        in_batch: BTreeMap::new(),
        fetch: HashMap::new(),
        failed: None,
        lag: BTreeMap::new(),
        high: BTreeMap::new(),
        lag_changed: false,
        started: Instant::now(),
        record_bytes_max: config.log.record_bytes_max,
        accept: codec::wire::Accept {
            schema_ids: k.schema_ids_allowed.clone(),
        },
        unassigned_since: Some(Instant::now()),
        ahead: HashMap::new(),
        stalled: HashMap::new(),
        caused: Vec::new(),
        decided: Vec::new(),
        sources: HashMap::new(),
    }));
    let mut c = client_config(k);
    c.set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES_MAX)
        .set("statistics.interval.ms", "1000");
    super::operator_consumer_properties(&mut c, k);
    let consumer: BaseConsumer<IngestContext> = c.create_with_context(IngestContext {
        intake: intake.clone(),
        live: live.clone(),
        revocations: Default::default(),
        closing: Default::default(),
    })?;
    let hostname = std::env::var("HOSTNAME").unwrap_or_default();
    let ownership = k
        .ownership(events_partitions, &hostname)
        .map_err(|e| BusError::Ownership(e.to_string()))?;
    match &ownership {
        Ownership::Group => consumer.subscribe(&[&k.events_topic])?,
        Ownership::Static(owned) => {
            // No group protocol: the engine reads exactly these, from the
            // log's positions, as the rebalance handler would on assign.
            let mut i = lock(&intake);
            let mut g = lock(live);
            let l = live_mut(&mut g);
            let mut tpl = TopicPartitionList::new();
            for p in owned {
                let from = i.resume_from(l, *p)?;
                tpl.add_partition_offset(&k.events_topic, *p, from)?;
            }
            consumer.assign(&tpl)?;
            tracing::info!(
                partitions = ?owned,
                of = partitions[0],
                topic = %k.events_topic,
                "owning partitions statically (kafka.own_partitions); resuming from the log's positions"
            );
        }
    }
    let producer = super::publish::command_producer(k)?;
    let mut last_progress = Instant::now();
    let mut last_tick = Instant::now();
    let mut last_message = Instant::now();
    let mut unassigned_warned: Option<Instant> = None;
    let unassigned_warn_after = Duration::from_millis(k.unassigned_warn_ms);
    // One dispatcher per part: each drains its own log's outbox.
    let mut dispatchers: BTreeMap<PartKey, super::outbox::Dispatcher> = lock(live)
        .as_ref()
        .map(|l| l.parts.keys().copied().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|key| (key, super::outbox::Dispatcher::new(&k.commands_topic)))
        .collect();
    // Partitions this engine holds no state for are restored from the
    // events topic; the commands a previous owner published are not sent
    // again (see `restore`).
    let mut claim = None;
    let restoring: Option<Option<Vec<i32>>> = {
        let mut g = lock(live);
        let l = live_mut(&mut g);
        match &ownership {
            Ownership::Static(owned) => {
                // Each part's log holds the partitions it was opened for:
                // a partition store only its own, a whole data dir only
                // partitions this engine owns. One holding a partition
                // this engine does not own (after a rescale) would count
                // that partition's events beside its new owner's. Refuse it.
                let prefix = source_prefix(&k.events_topic);
                let mut foreign: Vec<i32> = Vec::new();
                for (key, e) in &l.parts {
                    for (source, _) in e.log.positions(&prefix)? {
                        let Some(p) = source
                            .strip_prefix(&prefix)
                            .and_then(|s| s.parse::<i32>().ok())
                        else {
                            continue;
                        };
                        if !owned.contains(&p) || key.is_some_and(|k| k != p) {
                            foreign.push(p);
                        }
                    }
                }
                if !foreign.is_empty() {
                    return Err(BusError::Ownership(format!(
                        "the data dir holds partitions {foreign:?} of {}, which this engine does not own \
                         (it owns {owned:?}) in the log it reads them into: its numbers would count them \
                         beside their new owner's (README, Scaling out)",
                        k.events_topic
                    )));
                }
                let mut fresh = Vec::new();
                let mut positions = BTreeMap::new();
                let mut snapshot_restored = Vec::new();
                for p in owned {
                    let Some(e) = l.part_of(*p) else {
                        return Err(BusError::Ownership(format!(
                            "this engine owns partition {p} of {} but keeps no state for it (no partition store)",
                            k.events_topic
                        )));
                    };
                    match e.log.position(&source_name(&k.events_topic, *p))? {
                        Some(at) => {
                            positions.insert(*p, at);
                            if l.restored_from_snapshot.contains(p) {
                                snapshot_restored.push(*p);
                            }
                        }
                        None => fresh.push(*p),
                    }
                }
                l.owned_partitions = Some((owned.clone(), events_partitions));
                claim = Some((owned.clone(), positions, fresh.clone(), l.api_url.clone()));
                // A store loaded from a snapshot is restored too: its
                // previous owner may have published commands after it.
                let mut restoring = fresh;
                restoring.extend(snapshot_restored);
                (!restoring.is_empty()).then_some(Some(restoring))
            }
            Ownership::Group => {
                let prefix = source_prefix(&k.events_topic);
                let mut empty = true;
                for e in l.parts.values() {
                    empty &= e.log.positions(&prefix)?.is_empty();
                }
                empty.then_some(None)
            }
        }
    };
    // The claim comes before the restore's read of the commands topic: a
    // previous owner still alive is waited out (or fenced) first, so
    // nothing it publishes is missed. It may wait for a lease, so it is
    // taken without the engine's lock (the API keeps answering).
    let mut owner = match claim {
        Some((owned, positions, fresh, api_url)) => {
            match super::owners::Owner::take(
                k,
                &owned,
                &positions,
                &fresh,
                api_url.as_deref(),
                &crate::replay::wall_ms,
                &|| shutdown.is_triggered(),
            )? {
                Some(o) => Some(o),
                None => {
                    tracing::info!(
                        "asked to stop while waiting for another engine's lease: nothing claimed, nothing consumed"
                    );
                    return Ok(());
                }
            }
        }
        None => None,
    };
    if let Some(o) = &owner {
        live_mut(&mut lock(live)).partition_owners = partition_owners(o);
    }
    let restoring_partitions: Vec<i32> = match &restoring {
        Some(Some(fresh)) => fresh.clone(),
        _ => Vec::new(),
    };
    if let Some(fresh) = restoring {
        let started = Instant::now();
        let published = super::restore::published_commands(
            k,
            fresh.as_deref(),
            events_partitions,
            &mut |scanned, of| tracing::info!(scanned, of, "restore: reading the commands topic"),
        )?;
        tracing::info!(
            partitions = ?fresh.as_deref().unwrap_or(&[]),
            scanned = published.scanned,
            published = published.ids.len(),
            ms = started.elapsed().as_millis() as u64,
            "restoring from the events topic: commands a previous owner published will not be sent again"
        );
        // The ids go to the parts being restored (a command id belongs to
        // one lead, so to one part).
        let restoring_keys: Vec<PartKey> = {
            let g = lock(live);
            let l = g
                .as_ref()
                .expect("the engine holds its state while the intake consumes");
            match fresh.as_deref() {
                Some(ps) => ps.iter().filter_map(|p| l.key_of(*p)).collect(),
                None => l.parts.keys().copied().collect(),
            }
        };
        // One set, shared: up to 20 M ids must not be copied per part.
        let ids = Arc::new(published.ids);
        for key in &restoring_keys {
            if let Some(d) = dispatchers.get_mut(key) {
                d.skip_published(ids.clone());
            }
        }
    }
    let mut last_collect = Instant::now();
    let mut last_owner_check = Instant::now();
    let mut reported_assigned = usize::MAX;
    let mut last_report = Instant::now();
    let mut last_gauges = Instant::now();

    while !shutdown.is_triggered() {
        if dispatchers.values().any(|d| d.is_saturated()) {
            // Backpressure: the commands topic falls behind, so wait for
            // acks to make room before taking the next event. Without acks
            // the loop still polls one message per wait, which keeps the
            // group membership alive and the intake at a trickle.
            let mut g = lock(live);
            let l = live_mut(&mut g);
            for (key, dispatcher) in dispatchers.iter_mut().filter(|(_, d)| d.is_saturated()) {
                let d = dispatcher.collect_within(&l.parts[key].log, DISPATCH_WAIT)?;
                l.commands_sent(d.sent);
                l.commands_acknowledged_after(&d.acked_after);
                l.commands_dirty |= d.failed > 0 || d.sent > 0;
            }
        }
        // With a batch open the poll does not wait: a batch is appended as
        // soon as nothing more is buffered (see below), so waiting would
        // only delay it. With commands in flight it waits until their acks
        // are due to be picked up.
        let wait = if !lock(&intake).batcher.is_empty() {
            Duration::ZERO
        } else if dispatchers.values().any(|d| d.in_flight() > 0) {
            COLLECT_EVERY
        } else {
            Duration::from_millis(100)
        };
        let message = consumer.poll(wait);
        let mut i = lock(&intake);
        let mut g = lock(live);
        let l = live_mut(&mut g);
        if let Some(e) = i.failed.take() {
            return Err(e);
        }
        // An engine the group gives nothing to must say so, not print
        // "consumed 0" forever (seen with a dead member never evicted).
        if i.durable.is_empty() {
            let since = *i.unassigned_since.get_or_insert_with(Instant::now);
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
            i.unassigned_since = None;
            unassigned_warned = None;
        }
        // Where the intake stands, for /readyz and /metrics: when it
        // changed, and once a second while nothing is assigned (the time
        // without a partition grows).
        let assigned = i.durable.len();
        if i.lag_changed
            || assigned != reported_assigned
            || (assigned == 0 && last_report.elapsed() >= Duration::from_secs(1))
        {
            i.lag_changed = false;
            reported_assigned = assigned;
            last_report = Instant::now();
            l.metrics.set_intake(IntakeStatus {
                lag: i.lag.clone(),
                assigned_partitions: assigned,
                unassigned_ms: i
                    .unassigned_since
                    .map_or(0, |t| t.elapsed().as_millis() as u64),
            });
        }
        let idle = message.is_none();
        if !idle {
            last_message = Instant::now();
        }
        match message {
            // A full batch is appended just below.
            Some(Ok(m)) => i.accept(l, &consumer, &m)?,
            Some(Err(e)) => tracing::warn!("consumer: {e}"),
            None => {}
        }
        if !i.stalled.is_empty() {
            i.rewind_stalled(l, &consumer)?;
        }
        // Group commit without a timer: the batch is appended when it is
        // full, has waited `log.batch_wait_ms_max`, or nothing more is
        // buffered (the poll above came back empty). Under load the inputs
        // fetched while one batch was made durable form the next, so
        // batches grow with the rate; at a trickle each input is appended
        // at once instead of waiting out the timer (measured: the timer
        // alone put 20 ms on every command's latency).
        let now = i.elapsed_ms();
        let appended = i.batcher.is_ready(now) || (idle && !i.batcher.is_empty());
        if appended {
            i.append_batch(l, &consumer, CommitMode::Async)?;
        }
        // Mid-batch (a message taken, the batch still open) nothing below
        // has new work but picking up acks: the rest waits for the batch's
        // append or a quiet poll, instead of costing every message its
        // clock reads and checks (measured: 4 % of the engine in
        // clock_gettime alone).
        let housekeeping = idle || appended;
        // Before the commands are handed over (below): their dispatchers
        // measure from their causes' publish to their acks. A rebalance's
        // append leaves its own here too.
        for (key, cseq, caused) in i.decided.drain(..) {
            if let Some(d) = dispatchers.get_mut(&key) {
                d.note_caused(cseq, caused);
            }
        }
        // Deadlines fire on the wall clock only between batches, with
        // nothing more to read right now and the log caught up with the
        // broker (see `caught_up`). Under steady traffic, and while a
        // backlog is read, the events' own times move the deadlines on.
        if wall_clock_ticks
            && idle
            && i.batcher.is_empty()
            && last_tick.elapsed() >= Duration::from_millis(DEADLINE_TICK_MS)
            && last_message.elapsed() >= QUIET_BEFORE_TICK
            && (i.caught_up() || last_message.elapsed() >= QUIET_MEANS_CAUGHT_UP)
        {
            last_tick = Instant::now();
            l.tick(crate::replay::wall_ms())?;
        }
        // Commands go out without the loop waiting for their acks: hand
        // new ones to the producer after each batch, and pick the acks up
        // every few milliseconds.
        if let Some(o) = owner.as_mut().filter(|_| {
            housekeeping && (l.commands_dirty || last_owner_check.elapsed() >= OWNER_CHECK_EVERY)
        }) {
            // Fenced before publishing, never after (see `owners`).
            last_owner_check = Instant::now();
            if o.check()? {
                l.partition_owners = partition_owners(o);
            }
            o.heartbeat(crate::replay::wall_ms(), &|p| {
                let at = i.durable.get(&p).copied().unwrap_or(0);
                let lag = i.lag.get(&p).copied().unwrap_or(-1);
                let behind = i.high.get(&p).is_none_or(|high| (at as i64) < *high);
                (at, lag, behind && restoring_partitions.contains(&p))
            })?;
        }
        // An owner whose heartbeats went undelivered past its lease holds
        // its commands (they wait in the outbox) until it has confirmed
        // that nobody took its partitions meanwhile (see `owners`).
        let may_publish = match owner.as_mut() {
            Some(o) if housekeeping && l.commands_dirty => o.may_publish()?,
            _ => true,
        };
        if housekeeping && l.commands_dirty && may_publish {
            let mut more = false;
            for (key, dispatcher) in dispatchers.iter_mut() {
                more |= dispatcher.pump(&l.parts[key].log, &producer)?.1;
            }
            l.commands_dirty = more;
        }
        if dispatchers.values().any(|d| d.in_flight() > 0)
            && last_collect.elapsed() >= COLLECT_EVERY
        {
            last_collect = Instant::now();
            for (key, dispatcher) in dispatchers.iter_mut().filter(|(_, d)| d.in_flight() > 0) {
                let d = dispatcher.collect(&l.parts[key].log, false)?;
                l.commands_sent(d.sent);
                l.commands_acknowledged_after(&d.acked_after);
                // A failed delivery is sent again once the rest has settled.
                l.commands_dirty |= d.failed > 0;
            }
        }
        if !housekeeping {
            continue;
        }
        if l.dead_letters_dirty && i.batcher.is_empty() {
            dead_letter::dispatch(l, &producer, &k.dlq_topic)?;
        }
        for e in l.parts.values() {
            e.log
                .flush_marks_older_than(Duration::from_millis(SENT_MARKS_FLUSH_MS))?;
        }
        if last_gauges.elapsed() >= GAUGES_EVERY {
            last_gauges = Instant::now();
            l.refresh_gauges();
        }
        if last_progress.elapsed() >= progress_every {
            last_progress = Instant::now();
            let covered = i.covered(l)?;
            on_progress(Progress {
                stats: &l.stats,
                live: l,
                covered,
            });
        }
    }

    before_drain();
    tracing::info!("shutting down: finishing the open batch and draining the outboxes");
    {
        let mut i = lock(&intake);
        let mut g = lock(live);
        let l = live_mut(&mut g);
        i.append_batch(l, &consumer, CommitMode::Sync)?;
        let mut may_publish = true;
        if let Some(o) = owner.as_mut() {
            o.check()?;
            may_publish = o.may_publish()?;
            if !may_publish {
                tracing::warn!(
                    "ownership unconfirmed since the broker went away: the outbox's commands stay for the next start"
                );
            }
        }
        let (mut sent, mut failed, mut skipped) = (0, 0, 0);
        for (key, dispatcher) in dispatchers.iter_mut() {
            if may_publish {
                let d = dispatcher.drain(&l.parts[key].log, &producer, DRAIN_ATTEMPTS_MAX)?;
                sent += d.sent;
                failed += d.failed;
            }
            skipped += dispatcher.skipped_published;
        }
        l.commands_sent(sent);
        if skipped > 0 {
            tracing::info!(
                commands = skipped,
                "decided again while restoring and not sent: a previous owner had published them"
            );
        }
        if failed > 0 {
            tracing::warn!(
                failed,
                "commands left unacknowledged at shutdown stay in the outbox for the next start"
            );
        }
        while dead_letter::dispatch(l, &producer, &k.dlq_topic)? > 0 {}
        for e in l.parts.values() {
            e.log.flush()?;
        }
    }
    match ownership {
        Ownership::Group => {
            use std::sync::atomic::Ordering::SeqCst;
            let held = consumer.assignment().is_ok_and(|a| a.count() > 0);
            let served = consumer.context().revocations.load(SeqCst);
            consumer.unsubscribe();
            // Serve the revocation the unsubscribe starts now, while the
            // group is live (the batch is appended, the partitions given
            // back, the group left). Messages polled here are not
            // appended: the log's positions say where the next start
            // resumes.
            let deadline = Instant::now() + LEAVE_GROUP_WAIT_MAX;
            while held
                && consumer.context().revocations.load(SeqCst) == served
                && Instant::now() < deadline
            {
                let _ = consumer.poll(DISPATCH_WAIT);
            }
            // Then close, bounded: a request to the coordinator from the
            // close (its rebalance events are no longer served) can wait
            // for ever on a broker that has let the member go, and
            // rdkafka's Drop would wait with it. Everything is durable by
            // now, so a close that does not finish in time is left to the
            // process's exit.
            consumer.context().closing.store(true, SeqCst);
            let closed = consumer.close_queue().is_ok() && {
                let deadline = Instant::now() + LEAVE_GROUP_WAIT_MAX;
                while !consumer.closed() && Instant::now() < deadline {
                    let _ = consumer.poll(DISPATCH_WAIT);
                }
                consumer.closed()
            };
            if !closed {
                tracing::warn!("the Kafka consumer did not close in time; leaving it to the exit");
            }
            // Closed here either way (Drop would close it again).
            std::mem::forget(consumer);
        }
        Ownership::Static(_) => consumer.unassign()?,
    }
    if let Some(o) = owner {
        let positions: BTreeMap<i32, u64> = lock(&intake)
            .durable
            .iter()
            .map(|(p, at)| (*p, *at))
            .collect();
        o.release(crate::replay::wall_ms(), &positions)?;
        if let Some(l) = lock(live).as_mut() {
            l.released = positions.keys().copied().collect();
        }
    }
    Ok(())
}
