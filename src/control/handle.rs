//! [`Handle`]: the engine's control surface for the HTTP API — reads of
//! the running folds, HTTP ingest through the one append path, rebuilds,
//! policy reloads and checkpoints.

use super::{lock, ControlError, IntakeStatus, Live, Metrics, PartKey, Shared};
use crate::codec;
use crate::domain::Rejection;
use crate::log::{EventLog, Input, LogReader, Origin, Position};
use crate::policy::Policies;
use crate::projector::Projections;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A handle on the running engine: each call takes the engine's state
/// lock for as long as it needs it (the intake holds it while it appends
/// a batch, so a call may wait for one batch).
#[derive(Clone)]
pub struct Handle {
    shared: Shared,
    /// Read the stored events of each part without the lock (replays for
    /// the API).
    readers: BTreeMap<PartKey, LogReader>,
    /// The engine's metrics, read without the lock.
    metrics: Arc<Metrics>,
    /// Filtered views kept up to date between requests.
    filtered: Arc<Mutex<super::filtered::FilteredViews>>,
}

/// The log's source name of events that came over HTTP
/// (`POST /api/v1/events`); its position counts the events appended.
pub const HTTP_SOURCE: &str = "http";

/// What became of one item of an HTTP ingest request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// The state under the lock, while the engine runs.
struct Guard<'a>(MutexGuard<'a, Option<Live>>);

impl std::ops::Deref for Guard<'_> {
    type Target = Live;
    fn deref(&self) -> &Live {
        self.0.as_ref().expect("checked when taken")
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Live {
        self.0.as_mut().expect("checked when taken")
    }
}

impl Handle {
    /// A handle on `shared` (while it holds the running state).
    pub fn new(shared: Shared) -> Result<Handle, ControlError> {
        let (readers, metrics) = {
            let s = lock(&shared);
            let live = s.as_ref().ok_or(ControlError::Stopped)?;
            let readers = live
                .parts
                .iter()
                .map(|(k, e)| (*k, e.log.reader()))
                .collect();
            (readers, live.metrics.clone())
        };
        Ok(Handle {
            shared,
            readers,
            metrics,
            filtered: Arc::default(),
        })
    }

    fn lock(&self) -> Result<Guard<'_>, ControlError> {
        let g = lock(&self.shared);
        if g.is_none() {
            return Err(ControlError::Stopped);
        }
        Ok(Guard(g))
    }

    /// Appends events that came over HTTP through the same validation,
    /// deduplication, policy and durable append as a Kafka batch, and
    /// answers once they are durable: one outcome per item, in order. An
    /// id the log already holds is answered from the log and appended
    /// again by nothing, so a retried request changes nothing.
    pub fn ingest(
        &self,
        items: Vec<codec::stream::Record>,
    ) -> Result<Vec<ItemOutcome>, ControlError> {
        use crate::log::Seen;
        let mut s = self.lock()?;
        let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; items.len()];
        // Per part: the inputs to append, the item each one answers, and
        // the part's HTTP position before them.
        let mut batches: BTreeMap<PartKey, (Vec<Input>, Vec<usize>, u64)> = BTreeMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let event = match item {
                Err((r, _)) => {
                    outcomes[i] = Some(ItemOutcome::rejected(&r));
                    continue;
                }
                Ok(e) => e,
            };
            if let Some((home, partitions)) = s.tenant_elsewhere(&event.tenant_id) {
                outcomes[i] = Some(ItemOutcome::rejected(&Rejection::NotOwnedHere {
                    tenant_id: event.tenant_id,
                    partition: home,
                    partitions,
                }));
                continue;
            }
            let part = s.part_for_tenant(&event.tenant_id);
            let log = &s.parts[&part].log;
            match log.first_copy_of(&event.event_id)? {
                Some(Seen::Event(seq)) => outcomes[i] = Some(ItemOutcome::Duplicate { seq }),
                Some(Seen::Rejection(rseq)) => {
                    let first = log.rejection(rseq)?;
                    outcomes[i] = Some(match first {
                        Some(r) => ItemOutcome::rejected(&r.reason),
                        None => ItemOutcome::rejected(&Rejection::DuplicateOfRejected {
                            first_rseq: rseq,
                        }),
                    });
                }
                None => {
                    let (inputs, index_of, from) = match batches.entry(part) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let from = log.position(HTTP_SOURCE)?.unwrap_or(0);
                            v.insert((Vec::new(), Vec::new(), from))
                        }
                    };
                    let origin = Origin {
                        source: HTTP_SOURCE.to_string(),
                        offset: *from + inputs.len() as u64,
                        key: None,
                    };
                    inputs.push(Input::event(event, Some(origin)));
                    index_of.push(i);
                }
            }
        }
        for (part, (inputs, index_of, from)) in batches {
            let positions = [Position {
                source: HTTP_SOURCE.to_string(),
                next_offset: from + inputs.len() as u64,
            }];
            let report = s.append_inputs(part, &inputs, &positions)?;
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

    /// The engine's metrics (no lock: a scrape never waits for a batch).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where the Kafka intake stands, for `/readyz` (no engine lock).
    pub fn intake_status(&self) -> Result<IntakeStatus, ControlError> {
        Ok(self.metrics.intake())
    }

    /// Runs `f` under the lock on the projections (over every part: merged
    /// when there are several), caught up with the logs, and the policies
    /// of the part `tenant` lives in (the default tenant's when `None`),
    /// if the engine has a policy.
    pub fn with_projections<T>(
        &self,
        tenant: Option<&str>,
        f: impl FnOnce(&Projections, Option<&Policies>) -> T,
    ) -> Result<T, ControlError> {
        let s = self.lock()?;
        let policies = s
            .parts
            .get(&s.part_for_tenant(tenant.unwrap_or("")))
            .and_then(|e| e.processor.as_ref());
        if s.parts.len() == 1 {
            let only = s.parts.values().next().expect("one part");
            let p = only.projections()?;
            return Ok(f(&p, policies));
        }
        // Several partition stores: their projections summed, for reading
        // (each lead lives in one of them, so the union is exact).
        let mut summed: Option<Projections> = None;
        for e in s.parts.values() {
            let p = e.projections()?;
            summed
                .get_or_insert_with(|| Projections::new(p.metrics.params().clone()))
                .merge_for_reading(&p);
        }
        Ok(f(&summed.expect("never empty"), policies))
    }

    /// The first answer `f` gives over the parts' logs (a lead lives in
    /// one of them), under the lock (reads only).
    pub fn find_in_logs<T>(
        &self,
        f: impl Fn(&EventLog) -> Result<Option<T>, crate::log::LogError>,
    ) -> Result<Option<T>, ControlError> {
        let s = self.lock()?;
        for e in s.parts.values() {
            if let Some(found) = f(&e.log)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The partition `tenant` lives on when another engine owns it (static
    /// ownership): its queries belong there. `None` when it is this
    /// engine's, or ownership is not static.
    pub fn tenant_elsewhere(&self, tenant: &str) -> Result<Option<i32>, ControlError> {
        Ok(self.lock()?.tenant_elsewhere(tenant).map(|(home, _)| home))
    }

    /// Who owns `partition` (another engine), and where its API answers
    /// if it published that: from its latest claim, unless released.
    pub fn partition_owner(
        &self,
        partition: i32,
    ) -> Result<Option<(String, Option<String>)>, ControlError> {
        let s = self.lock()?;
        Ok(s.partition_owners
            .get(&partition)
            .filter(|c| !c.released)
            .map(|c| (c.engine.clone(), c.api_url.clone())))
    }

    /// Where this engine's API answers, if it serves one.
    pub fn api_url(&self) -> Result<Option<String>, ControlError> {
        Ok(self.lock()?.api_url.clone())
    }

    /// Sets where this engine's API answers (before the intake claims its
    /// partitions, which publishes it).
    pub fn set_api_url(&self, url: String) -> Result<(), ControlError> {
        self.lock()?.api_url = Some(url);
        Ok(())
    }

    /// Runs `f` on the event log under the lock (reads only): the
    /// engine's one part over the whole data dir (the demo's).
    pub fn with_log<T>(&self, f: impl FnOnce(&EventLog) -> T) -> Result<T, ControlError> {
        let s = self.lock()?;
        Ok(f(&s.whole().log))
    }

    /// The metric parameters, and where each part's log ends.
    #[allow(clippy::type_complexity)]
    fn ends(
        &self,
    ) -> Result<
        (
            crate::projector::metrics::MetricParams,
            BTreeMap<PartKey, u64>,
        ),
        ControlError,
    > {
        let s = self.lock()?;
        let first = s.parts.values().next().expect("never empty");
        let params = first.following.params().clone();
        let ends = s
            .parts
            .iter()
            .map(|(k, e)| (*k, e.log.last_seq()))
            .collect();
        Ok((params, ends))
    }

    /// The projections as of event time `at_ms` (over every part, merged),
    /// rebuilt from the logs through the lock-free readers: the engine
    /// goes on ingesting meanwhile (the lock is held only to read where
    /// the logs end).
    pub fn projections_at(&self, at_ms: i64) -> Result<Projections, ControlError> {
        let (params, ends) = self.ends()?;
        let mut merged: Option<Projections> = None;
        for (k, last_seq) in ends {
            let p = crate::replay::rebuild_through(
                &self.readers[&k],
                params.clone(),
                Some(at_ms),
                last_seq,
            )?;
            match merged.as_mut() {
                None => merged = Some(p),
                Some(m) => m.merge_for_reading(&p),
            }
        }
        Ok(merged.expect("never empty"))
    }

    /// The projections of the leads `filter` admits, over every part:
    /// a view kept aside and brought up to date through the lock-free
    /// readers (see [`filtered`](super::filtered)); the engine goes on
    /// ingesting meanwhile.
    pub fn projections_filtered(
        &self,
        filter: &crate::projector::LeadFilter,
    ) -> Result<Projections, ControlError> {
        let (params, ends) = self.ends()?;
        let mut views = self
            .filtered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        views.answer(filter, &params, &ends, &self.readers)
    }

    /// Rebuilds the live projections of every part from its log and swaps
    /// them in. The long folds run off the lock; under it, only the events
    /// appended meanwhile are folded before each swap. Returns the events
    /// folded, over every part.
    pub fn rebuild_projections(&self) -> Result<u64, ControlError> {
        let (params, ends) = self.ends()?;
        let mut covered = 0;
        for (k, last_seq) in ends {
            let fresh =
                crate::replay::rebuild_through(&self.readers[&k], params.clone(), None, last_seq)?;
            let s = self.lock()?;
            let Some(e) = s.parts.get(&k) else {
                continue;
            };
            covered += e.following.replace(fresh, e.log.last_seq())?;
            let p = e.projections()?;
            crate::replay::save(&e.log, &p)?;
        }
        Ok(covered)
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
    ) -> Result<Option<u32>, ControlError> {
        let mut s = self.lock()?;
        let mut in_force = None;
        // Each part records the load in its own log.
        for e in s.parts.values_mut() {
            let Some(p) = e.processor.as_mut() else {
                continue;
            };
            crate::replay::load_version(&mut e.log, p, policy.clone(), false)?;
            in_force = Some(p.policy().version);
        }
        Ok(in_force)
    }

    /// A manager's action (see [`Live::manage`]).
    pub fn manage(
        &self,
        tenant: &str,
        action: crate::policy::ManagerAction,
        actor: &str,
        requested_at_ms: i64,
    ) -> Result<Result<Vec<crate::domain::LeadCommand>, String>, ControlError> {
        let mut s = self.lock()?;
        Ok(s.manage(tenant, action, actor, requested_at_ms)?)
    }

    /// Checkpoints the projections and the policy state of every part now;
    /// returns the events they cover, over every part.
    pub fn save_snapshots(&self) -> Result<u64, ControlError> {
        let s = self.lock()?;
        let mut covered = 0;
        for e in s.parts.values() {
            let projections = e.projections()?;
            crate::replay::save(&e.log, &projections)?;
            if let Some(p) = &e.processor {
                crate::replay::save_policy(&e.log, p)?;
            }
            covered += projections.covered_seq;
        }
        Ok(covered)
    }
}
