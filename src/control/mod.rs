//! The running engine's state and its control surface.
//!
//! [`Live`] is everything a running engine folds (the log, projections,
//! policies) plus what it counts; [`Live::append_inputs`] is the one append
//! path of every live source (a Kafka batch from `bus::ingest`, an HTTP
//! request through [`Handle::ingest`]). It sits behind one mutex, shared by
//! the Kafka intake and the [`Handle`]s the HTTP API holds. The engine
//! takes the state out when it stops (after it has joined the API server),
//! so a handle that outlives it answers [`ControlError::Stopped`] instead
//! of racing the teardown.
//!
//! Nothing here touches Kafka: the intake reports where it stands through
//! [`IntakeStatus`].

mod handle;
mod metrics;
mod telemetry;

pub use handle::{Handle, ItemOutcome, HTTP_SOURCE};
pub use metrics::Metrics;
pub use telemetry::{IngestStats, IntakeStatus};

use crate::log::{AppendReport, EventLog, Input, LogError, Position};
use crate::policy::Policies;
use crate::projector::Projections;
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

/// The running engine's folds and counters.
pub struct Live {
    pub log: EventLog,
    pub projections: Projections,
    /// The policy processor, when a policy is configured.
    pub processor: Option<Policies>,
    /// The shadow policy: decides beside the live one, publishes nothing.
    pub shadow: Option<Policies>,
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

    /// A running engine from folds that have all caught up with the log.
    pub fn new(engine: Engine) -> Live {
        for p in engine.processor.iter().chain(engine.shadow.iter()) {
            assert_eq!(
                p.covered_seq(),
                engine.projections.covered_seq,
                "policies and projections start from the same point of the log"
            );
        }
        let live = Live {
            log: engine.log,
            projections: engine.projections,
            processor: engine.processor,
            shadow: engine.shadow,
            stats: IngestStats::default(),
            // Dead letters and commands left unsent by a previous run go
            // out first.
            dead_letters_dirty: true,
            commands_dirty: true,
            metrics: Arc::new(Metrics::new()),
            owned_partitions: None,
            api_url: None,
            partition_owners: BTreeMap::new(),
        };
        // The whole log's rejection counts, once; each batch adds its own.
        match live.log.stats() {
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
        live.refresh_gauges();
        live
    }

    /// Sets the gauges of the log (outboxes, projections) after a write;
    /// cheap (the log keeps its outbox counts in memory).
    pub fn log_gauges(&self) {
        let m = &self.metrics;
        if let Ok((_, pending)) = self.log.command_counts() {
            m.outbox_pending.set(pending as i64);
        }
        if let Ok(pending) = self.log.dead_letters_pending() {
            m.dead_letters_pending.set(pending as i64);
        }
        m.projection_sequence
            .set(self.projections.covered_seq as i64);
    }

    /// Sets every gauge, including the ones whose cost grows with the
    /// number of leads (pool sizes): the intake calls it once a second.
    pub fn refresh_gauges(&self) {
        self.log_gauges();
        let m = &self.metrics;
        for (pool, size) in self.projections.pool.pool_sizes() {
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
        if let Some(p) = &self.processor {
            // Per pool name, summed over the tenants (each tenant's pool of
            // that name): one series per pool, whatever the tenant count.
            // Every pool of every policy table is listed, so that a backlog
            // that emptied reads 0 rather than its last size.
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
            for (_, t) in p.tenants() {
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

    /// Dead letters acknowledged by the broker.
    pub fn dead_letters_sent(&mut self, n: usize) {
        self.stats.dead_letters_sent += n as u64;
        self.metrics.dead_letters_sent.inc_by(n as u64);
        self.log_gauges();
    }

    /// The folds, for the exit checkpoint.
    pub fn into_engine(self) -> Engine {
        Engine {
            log: self.log,
            projections: self.projections,
            processor: self.processor,
            shadow: self.shadow,
        }
    }

    /// Appends `inputs` with `positions` durably, folding each accepted
    /// event into the projections and the policies as the log accepts it
    /// (the policy's commands go into the same batch), and counts them.
    pub fn append_inputs(
        &mut self,
        inputs: &[Input],
        positions: &[Position],
    ) -> Result<AppendReport, LogError> {
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
        let m = &self.metrics;
        m.append_seconds
            .observe(append_started.elapsed().as_secs_f64());
        m.batch_size.observe(inputs.len() as f64);
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
        Ok(report)
    }

    /// The wall clock moves the policy's time to `now_ms`: the tick is
    /// recorded in the log (see `log::policy_inputs`) with the commands it
    /// fires, so that a replay fires them at the same point.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), LogError> {
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
        if !stored.is_empty() {
            self.metrics.decided(stored.iter().map(|(_, c)| c));
            self.log_gauges();
        }
        Ok(())
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
