//! The running engine's state and its control surface.
//!
//! [`Live`] is everything a running engine folds plus what it counts. What
//! it folds is kept per **part**: one per events-topic partition the engine
//! owns statically (each its own log, projections and policies: a
//! partition store, `DATA_DIR/partitions/N`), or one for the whole data
//! dir (consumer-group mode, the demo). A tenant lives on one partition,
//! so everything a decision needs is in one part. [`Live::append_inputs`]
//! is the one append path of every live source (a Kafka batch from
//! `bus::ingest`, split by partition; an HTTP request through
//! [`Handle::ingest`], split by tenant). It sits behind one mutex, shared by
//! the Kafka intake and the [`Handle`]s the HTTP API holds. The engine
//! takes the state out when it stops (after it has joined the API server),
//! so a handle that outlives it answers [`ControlError::Stopped`] instead
//! of racing the teardown.
//!
//! The projections are not folded on that path: no decision reads them,
//! so each part's follow the log on a thread of their own and readers
//! catch them up first (see [`Following`]).
//!
//! Nothing here touches Kafka: the intake reports where it stands through
//! [`IntakeStatus`].

mod filtered;
mod following;
mod handle;
mod metrics;
mod part;
mod telemetry;

pub use following::{Following, FOLD_CHUNK_EVENTS_MAX, LAG_EVENTS_MAX};
pub use handle::{Handle, ItemOutcome, HTTP_SOURCE};
pub use metrics::{resident_bytes, Metrics};
pub use part::Part;
pub use telemetry::{IngestStats, IntakeStatus, LatencyMs};

use crate::log::{AppendReport, Input, LogError, Position};
use crate::policy::Policies;
use crate::replay::Engine;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Errors of the control surface.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The event log failed; see [`LogError`].
    #[error(transparent)]
    Log(#[from] LogError),
    /// The engine has stopped (or is stopping): nothing to read or change.
    /// Retry against the next engine.
    #[error("the engine has stopped")]
    Stopped,
}

/// Which part of the engine's state: `Some(partition)` for a partition
/// store, `None` for the whole data dir.
pub type PartKey = Option<i32>;

/// The running engine's folds and counters.
pub struct Live {
    /// The folds, per part (see the module doc): never empty, and either
    /// the one whole part or partition stores only.
    pub parts: BTreeMap<PartKey, Part>,
    pub stats: IngestStats,
    /// Dead letters wait to be published.
    pub dead_letters_dirty: bool,
    /// Commands wait to be published.
    pub commands_dirty: bool,
    /// What `/metrics` exposes; shared with the handles, read without
    /// this state's lock.
    pub metrics: Arc<Metrics>,
    /// The partitions of the events topic this engine owns statically, and
    /// the topic's partition count (set by the Kafka intake): HTTP ingest
    /// refuses a tenant that lives elsewhere. `None`: no static ownership.
    pub owned_partitions: Option<(Vec<i32>, i32)>,
    /// Where this engine's API answers (`api.advertised_url`, or where it
    /// listens), published with its claims.
    pub api_url: Option<String>,
    /// The latest claim of every partition another engine owns (static
    /// ownership; kept by the intake from the owners topic): where a
    /// tenant's query is forwarded.
    pub partition_owners: BTreeMap<i32, PartitionOwner>,
    /// Partitions whose store was loaded from a snapshot another engine
    /// published: restored like a fresh one (their commands published
    /// since are not sent again).
    pub restored_from_snapshot: Vec<i32>,
    /// Partitions this engine owned and released cleanly at its stop (set
    /// by the intake): their stores may be published for the next owner.
    pub released: Vec<i32>,
}

/// Another engine's latest claim on a partition, as far as queries care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOwner {
    pub engine: String,
    /// Where its API answers, if it published that.
    pub api_url: Option<String>,
    /// It stopped cleanly and nobody took over yet.
    pub released: bool,
}

impl Live {
    /// The partition `tenant` lives on, when static ownership gives it to
    /// another engine (HTTP ingest refuses its events, the API forwards its
    /// queries); with the events topic's partition count.
    pub fn tenant_elsewhere(&self, tenant: &str) -> Option<(i32, i32)> {
        let (owned, partitions) = self.owned_partitions.as_ref()?;
        crate::domain::tenant::home_partition(tenant, *partitions)
            .filter(|home| !owned.contains(home))
            .map(|home| (home, *partitions))
    }

    /// A running engine over the whole data dir, from folds that have all
    /// caught up with the log.
    pub fn new(engine: Engine) -> Live {
        Live::with_parts(BTreeMap::from([(None, engine)]))
    }

    /// A running engine over `parts` (see [`PartKey`]), each from folds
    /// that have all caught up with its log.
    pub fn with_parts(parts: BTreeMap<PartKey, Engine>) -> Live {
        assert!(!parts.is_empty(), "an engine has at least one part");
        assert!(
            parts.len() == 1 || !parts.contains_key(&None),
            "the whole data dir is the only part when it is one"
        );
        for engine in parts.values() {
            for p in engine.processor.iter().chain(engine.shadow.iter()) {
                assert_eq!(
                    p.covered_seq(),
                    engine.projections.covered_seq,
                    "policies and projections start from the same point of the log"
                );
            }
        }
        let live = Live {
            parts: parts
                .into_iter()
                .map(|(k, engine)| (k, Part::new(engine)))
                .collect(),
            stats: IngestStats::default(),
            // Dead letters and commands left unsent by a previous run go
            // out first.
            dead_letters_dirty: true,
            commands_dirty: true,
            metrics: Arc::new(Metrics::new()),
            owned_partitions: None,
            api_url: None,
            partition_owners: BTreeMap::new(),
            restored_from_snapshot: Vec::new(),
            released: Vec::new(),
        };
        // The whole log's rejection counts, once; each batch adds its own.
        for engine in live.parts.values() {
            match engine.log.stats() {
                Ok(stats) => {
                    for (reason, n) in stats.rejected_by_reason {
                        live.metrics
                            .events_rejected
                            .get_or_create(&[("reason", reason)])
                            .inc_by(n);
                    }
                }
                Err(e) => tracing::warn!("rejection counts for /metrics unavailable: {e}"),
            }
        }
        live.refresh_gauges();
        live
    }

    /// Sets the gauges of the log (outboxes, projections) after a write;
    /// cheap (the log keeps its outbox counts in memory).
    pub fn log_gauges(&self) {
        let m = &self.metrics;
        let (mut commands, mut dead_letters, mut covered) = (0u64, 0u64, 0u64);
        for engine in self.parts.values() {
            if let Ok((_, pending)) = engine.log.command_counts() {
                commands += pending;
            }
            if let Ok(pending) = engine.log.dead_letters_pending() {
                dead_letters += pending;
            }
            covered += engine.following.covered_seq();
        }
        m.outbox_pending.set(commands as i64);
        m.dead_letters_pending.set(dead_letters as i64);
        // Over several partition stores: the events folded in all of them.
        m.projection_sequence.set(covered as i64);
    }

    /// The part a tenant's state is in: its partition's store (when that is
    /// one of this engine's), else the first part.
    pub fn part_for_tenant(&self, tenant: &str) -> PartKey {
        let home = self
            .owned_partitions
            .as_ref()
            .and_then(|(_, partitions)| crate::domain::tenant::home_partition(tenant, *partitions));
        home.and_then(|p| self.key_of(p))
            .unwrap_or_else(|| *self.parts.keys().next().expect("never empty"))
    }

    /// The part that holds `partition`'s state: its store, or the whole.
    pub fn part_of(&self, partition: i32) -> Option<&Part> {
        self.parts
            .get(&Some(partition))
            .or_else(|| self.parts.get(&None))
    }

    /// The key of the part that holds `partition`'s state, if any.
    pub fn key_of(&self, partition: i32) -> Option<PartKey> {
        if self.parts.contains_key(&Some(partition)) {
            Some(Some(partition))
        } else {
            self.parts.contains_key(&None).then_some(None)
        }
    }

    /// The one part of an engine over the whole data dir (the demo, the
    /// benchmark): they never run partition stores.
    pub fn whole(&self) -> &Part {
        self.parts
            .get(&None)
            .expect("an engine over the whole data dir")
    }

    /// Pool sizes over every part.
    pub fn pool_sizes(
        &self,
    ) -> Result<BTreeMap<String, crate::projector::pool::PoolSize>, LogError> {
        let mut out: BTreeMap<String, crate::projector::pool::PoolSize> = BTreeMap::new();
        for engine in self.parts.values() {
            for (pool, s) in engine.projections()?.pool.pool_sizes() {
                let mine = out.entry(pool).or_default();
                mine.waiting += s.waiting;
                mine.held += s.held;
                mine.converted += s.converted;
            }
        }
        Ok(out)
    }

    /// Sets every gauge, including the ones whose cost grows with the
    /// number of leads (pool sizes): the intake calls it once a second.
    pub fn refresh_gauges(&self) {
        self.log_gauges();
        let m = &self.metrics;
        let sizes = self.pool_sizes().unwrap_or_else(|e| {
            tracing::warn!("pool gauges not refreshed: {e}");
            BTreeMap::new()
        });
        for (pool, size) in sizes {
            for (state, n) in [
                ("waiting", size.waiting),
                ("held", size.held),
                ("converted", size.converted),
            ] {
                m.pool_leads
                    .get_or_create(&[("pool", pool.clone()), ("state", state.to_string())])
                    .set(n as i64);
            }
        }
        let policies: Vec<&Policies> = self
            .parts
            .values()
            .filter_map(|e| e.processor.as_ref())
            .collect();
        if let Some(p) = policies.first() {
            // Per pool name, summed over the tenants (each tenant's pool of
            // that name) and the parts: one series per pool, whatever the
            // tenant count. Every pool of every policy table is listed, so
            // that a backlog that emptied reads 0 rather than its last size.
            let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
            let (mut declined, mut expired, mut unmatched) = (0u64, 0u64, 0u64);
            let file = p.policy();
            let tables = file
                .pools
                .iter()
                .chain(file.tenants.values().flat_map(|t| &t.pools));
            for pool in tables {
                waiting.entry(&pool.name).or_default();
            }
            for (_, t) in policies.iter().flat_map(|p| p.tenants()) {
                let s = t.state();
                for (pool, w) in &s.backlog {
                    if let Some(n) = waiting.get_mut(pool.as_str()) {
                        *n += w.len();
                    }
                }
                declined += s.declined_by_rep.values().sum::<u64>();
                expired += s.expired_by_rep.values().sum::<u64>();
                unmatched += s.declines_unmatched;
            }
            for (pool, n) in waiting {
                m.backlog_leads
                    .get_or_create(&[("pool", pool.to_string())])
                    .set(n as i64);
            }
            Metrics::catch_up(&m.assignments_declined, declined);
            Metrics::catch_up(&m.assignments_expired, expired);
            Metrics::catch_up(&m.declines_unmatched, unmatched);
        }
    }

    /// Commands acknowledged by the broker.
    pub fn commands_sent(&mut self, n: usize) {
        self.stats.commands_sent += n as u64;
        self.metrics.commands_sent.inc_by(n as u64);
        self.log_gauges();
    }

    /// The broker acknowledged commands caused by consumed events, these
    /// many milliseconds after each event was published (when its message
    /// had a timestamp) and after it was consumed.
    pub fn commands_acknowledged_after(&mut self, acked_after: &[(Option<i64>, i64)]) {
        for (published, consumed) in acked_after {
            if let Some(ms) = published {
                self.stats.event_to_command_ms.record(*ms);
                self.metrics
                    .event_to_command_seconds
                    .observe(*ms as f64 / 1e3);
            }
            self.stats.consumed_to_command_ms.record(*consumed);
            self.metrics
                .consumed_to_command_seconds
                .observe(*consumed as f64 / 1e3);
        }
    }

    /// Dead letters acknowledged by the broker.
    pub fn dead_letters_sent(&mut self, n: usize) {
        self.stats.dead_letters_sent += n as u64;
        self.metrics.dead_letters_sent.inc_by(n as u64);
        self.log_gauges();
    }

    /// The projections' followers of every part, for the threads that
    /// fold them (see [`Following`]).
    pub fn followers(&self) -> Vec<Arc<Following>> {
        self.parts.values().map(|p| p.following.clone()).collect()
    }

    /// The folds, per part, for the exit checkpoint: each part's
    /// projections caught up with its log (the threads following them
    /// should have been stopped and joined first).
    pub fn into_parts(self) -> Result<BTreeMap<PartKey, Engine>, LogError> {
        self.parts
            .into_iter()
            .map(|(k, part)| Ok((k, part.into_engine()?)))
            .collect()
    }

    /// Appends `inputs` with `positions` durably to `part`, folding each
    /// accepted event into its policies as the log accepts it (the
    /// policy's commands go into the same batch; the projections follow
    /// the log, see [`Following`]), and counts them.
    pub fn append_inputs(
        &mut self,
        part: PartKey,
        inputs: &[Input],
        positions: &[Position],
    ) -> Result<AppendReport, LogError> {
        let engine = self.parts.get_mut(&part).unwrap_or_else(|| {
            panic!("no part {part:?} in this engine: the caller routes to its parts")
        });
        let append_started = Instant::now();
        // The scores the batch moved follow it in its own atomic write, as
        // `scored` events of the engine's own (ids derived from the events
        // that moved them, so a retry after a crash appends each once).
        let report = Self::append_to(engine, inputs, positions)?;
        let scores = report.followed.len() as u64;
        let m = &self.metrics;
        m.append_seconds
            .observe(append_started.elapsed().as_secs_f64());
        m.batch_size.observe(inputs.len() as f64);
        if scores > 0 {
            *self
                .stats
                .accepted_by_type
                .entry("scored".to_string())
                .or_default() += scores;
            m.events_accepted
                .get_or_create(&[("type", "scored".to_string())])
                .inc_by(scores);
            self.stats.accepted += scores;
        }
        self.count(inputs, &report);
        Ok(report)
    }

    /// Publishes what every part's scoring left pending (see
    /// [`publish_scores`](Self::publish_scores)).
    pub fn publish_pending_scores(&mut self) -> Result<u64, LogError> {
        let mut n = 0;
        for engine in self.parts.values_mut() {
            n += Self::publish_scores(engine)?;
        }
        Ok(n)
    }

    /// Appends the `scored` events of the scores announced and not yet in
    /// the log, if any (see `policy::scoring`): at start, for what an
    /// import (which runs no policy) or an older version (which wrote them
    /// in a second write) left unpublished; a batch's own follow it in its
    /// write. Returns how many were appended.
    pub fn publish_scores(engine: &mut Part) -> Result<u64, LogError> {
        if !engine
            .processor
            .as_ref()
            .is_some_and(|p| p.has_pending_scores())
        {
            return Ok(0);
        }
        let report = Self::append_to(engine, &[], &[])?;
        debug_assert!(
            report.followed_rejected.is_empty(),
            "the engine's own scores are valid: {:?}",
            report.followed_rejected
        );
        Ok(report.followed.len() as u64)
    }

    /// One atomic append to a part's log, the policies told of each event
    /// as it is accepted; the projections follow the log (see
    /// [`Following`]).
    fn append_to(
        engine: &mut Part,
        inputs: &[Input],
        positions: &[Position],
    ) -> Result<AppendReport, LogError> {
        // Asked by both callbacks, never at once: the log asks `admit`
        // before an event, `decide` after it.
        let processor = std::cell::RefCell::new(&mut engine.processor);
        let shadow = &mut engine.shadow;
        let mut shadowed = Vec::new();
        let report = engine.log.append_admitted(
            inputs,
            positions,
            &mut |event| processor.borrow().as_ref().and_then(|p| p.admit(event)),
            &mut |seq, event| {
                if let Some(s) = shadow.as_mut() {
                    shadowed.extend(s.handle(seq, event));
                }
                match processor.borrow_mut().as_mut() {
                    Some(p) => p.handle(seq, event),
                    None => Vec::new(),
                }
            },
            // The scores the batch moved, once (each lead's latest).
            &mut || {
                processor
                    .borrow()
                    .as_ref()
                    .map(|p| p.scores_to_publish())
                    .unwrap_or_default()
            },
        )?;
        engine.log.append_shadow(&shadowed)?;
        let last_seq = engine.log.last_seq();
        engine.following.ask(last_seq);
        // The batch is durable by now: a failure to read it back is the
        // projections' (the next reader meets it and reports it), not the
        // append's, which must not be answered as failed.
        if let Err(e) = engine.following.bound_lag(last_seq, LAG_EVENTS_MAX) {
            tracing::warn!("the projections could not fold the log's tail: {e}");
        }
        Ok(report)
    }

    /// Counts what an append of `inputs` did.
    fn count(&mut self, inputs: &[Input], report: &AppendReport) {
        let m = &self.metrics;
        // Counted per batch and label, not per event: a label lookup
        // allocates.
        let mut accepted: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for (index, _) in &report.accepted {
            if let Ok(e) = &inputs[*index].record {
                *accepted.entry(e.body.kind().as_str()).or_default() += 1;
            }
        }
        for (kind, n) in accepted {
            *self
                .stats
                .accepted_by_type
                .entry(kind.to_string())
                .or_default() += n;
            m.events_accepted
                .get_or_create(&[("type", kind.to_string())])
                .inc_by(n);
        }
        let mut rejected: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for (_, reason) in &report.rejected {
            *rejected.entry(reason.code()).or_default() += 1;
        }
        for (reason, n) in rejected {
            m.events_rejected
                .get_or_create(&[("reason", reason.to_string())])
                .inc_by(n);
        }
        m.decided(report.commands.iter().map(|(_, c)| c));
        self.stats.commands_decided += report.commands.len() as u64;
        self.commands_dirty |= !report.commands.is_empty();
        self.stats.accepted += report.accepted.len() as u64;
        self.stats.rejected += report.rejected.len() as u64;
        self.stats.batches += 1;
        self.dead_letters_dirty |= !report.rejected.is_empty();
        self.log_gauges();
    }

    /// The wall clock moves the policy's time to `now_ms`: the tick is
    /// recorded in the log (see `log::policy_inputs`) with the commands it
    /// fires, so that a replay fires them at the same point.
    /// Every part's.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), LogError> {
        let mut decided = 0;
        for engine in self.parts.values_mut() {
            if let Some(shadow) = engine.shadow.as_mut() {
                let fired = shadow.advance(now_ms);
                engine.log.append_shadow(&fired)?;
            }
            let Some(p) = engine.processor.as_mut() else {
                continue;
            };
            let stored = crate::replay::tick(&mut engine.log, p, now_ms)?;
            decided += stored.len();
            self.metrics.decided(stored.iter().map(|(_, c)| c));
        }
        self.stats.commands_decided += decided as u64;
        self.commands_dirty |= decided > 0;
        if decided > 0 {
            self.log_gauges();
        }
        Ok(())
    }
}

impl Live {
    /// A manager's action on `tenant`'s lead or rep: checked by the
    /// tenant's policy, then recorded in the log of the tenant's part with
    /// the commands it makes (one flushed write), which the dispatcher
    /// then publishes. `Ok(Err(why))` when the policy refuses it (nothing
    /// is recorded).
    pub fn manage(
        &mut self,
        tenant: &str,
        action: crate::policy::ManagerAction,
        actor: &str,
        requested_at_ms: i64,
    ) -> Result<Result<Vec<crate::domain::LeadCommand>, String>, LogError> {
        let part = self.part_for_tenant(tenant);
        let Some(engine) = self.parts.get_mut(&part) else {
            return Ok(Err("no part holds this tenant".into()));
        };
        let Some(p) = engine.processor.as_mut() else {
            return Ok(Err(
                "this engine runs without a policy ([policy] file)".into()
            ));
        };
        if let Err(why) = p.check_manager(tenant, &action) {
            return Ok(Err(why));
        }
        let input = crate::policy::PolicyInput::Manager {
            tenant_id: tenant.to_string(),
            action,
            actor: actor.to_string(),
            requested_at_ms,
        };
        let key = engine.log.next_policy_input_key(&input)?;
        let fired = p.apply_input(key, &input);
        // The shadow policy follows the managers as a restart's fold of
        // the log would (it applies every recorded input but versions).
        if let Some(shadow) = engine.shadow.as_mut() {
            let fired = shadow.apply_input(key, &input);
            engine.log.append_shadow(&fired)?;
        }
        let stored = engine.log.store_policy_input(key, &input, fired)?;
        self.metrics.decided(stored.iter().map(|(_, c)| c));
        self.stats.commands_decided += stored.len() as u64;
        self.commands_dirty |= !stored.is_empty();
        Ok(Ok(stored.into_iter().map(|(_, c)| c).collect()))
    }
}

/// The running engine's state, shared by the intake and the handles:
/// `None` once the engine has taken it back at shutdown.
pub type Shared = Arc<Mutex<Option<Live>>>;

/// Shares `live` with the intake and the handles.
pub fn share(live: Live) -> Shared {
    Arc::new(Mutex::new(Some(live)))
}

/// Takes the state back at shutdown; handles get `Stopped` from then on.
pub fn take(shared: &Shared) -> Option<Live> {
    lock(shared).take()
}

/// Takes the engine's state lock, recovering it when a panic poisoned it.
/// The API is the one other holder, and it leaves no half-made change: its
/// reads change nothing, and its writes (rebuild, policy reload) build the
/// new value first and swap it in. So a panicking handler must not stop
/// ingestion: the guard is taken back, the poison cleared, and a warning
/// logged.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| {
        tracing::warn!("the engine's state lock was poisoned by a panic elsewhere; going on");
        m.clear_poison();
        poisoned.into_inner()
    })
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
        assert_eq!(*lock(&m), 7);
        assert!(!m.is_poisoned());
    }
}

#[cfg(test)]
mod scoring_tests;
