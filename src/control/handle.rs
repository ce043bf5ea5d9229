//! [`Handle`]: the engine's control surface for the HTTP API — reads of
//! the running folds, HTTP ingest through the one append path, rebuilds,
//! policy reloads and checkpoints.

use super::{lock, ControlError, IntakeStatus, Live, Metrics, Shared};
use crate::codec;
use crate::domain::Rejection;
use crate::log::{EventLog, Input, LogReader, Origin, Position};
use crate::policy::Policies;
use crate::projector::Projections;
use std::sync::{Arc, MutexGuard};

/// A handle on the running engine: each call takes the engine's state
/// lock for as long as it needs it (the intake holds it while it appends
/// a batch, so a call may wait for one batch).
#[derive(Clone)]
pub struct Handle {
    shared: Shared,
    /// Reads the stored events without the lock (replays for the API).
    reader: LogReader,
    /// The engine's metrics, read without the lock.
    metrics: Arc<Metrics>,
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
        let (reader, metrics) = {
            let s = lock(&shared);
            let live = s.as_ref().ok_or(ControlError::Stopped)?;
            (live.log.reader(), live.metrics.clone())
        };
        Ok(Handle {
            shared,
            reader,
            metrics,
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
            if let Some((home, partitions)) = s.tenant_elsewhere(&event.tenant_id) {
                outcomes[i] = Some(ItemOutcome::rejected(&Rejection::NotOwnedHere {
                    tenant_id: event.tenant_id,
                    partition: home,
                    partitions,
                }));
                continue;
            }
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

    /// The engine's metrics (no lock: a scrape never waits for a batch).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where the Kafka intake stands, for `/readyz` (no engine lock).
    pub fn intake_status(&self) -> Result<IntakeStatus, ControlError> {
        Ok(self.metrics.intake())
    }

    /// Runs `f` on the projections (and the policy, if any) under the lock.
    pub fn with_projections<T>(
        &self,
        f: impl FnOnce(&Projections, Option<&Policies>) -> T,
    ) -> Result<T, ControlError> {
        let s = self.lock()?;
        Ok(f(&s.projections, s.processor.as_ref()))
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

    /// Runs `f` on the event log under the lock (reads only).
    pub fn with_log<T>(&self, f: impl FnOnce(&EventLog) -> T) -> Result<T, ControlError> {
        let s = self.lock()?;
        Ok(f(&s.log))
    }

    /// The projections as of event time `at_ms`, rebuilt from the log
    /// through the lock-free reader: the engine goes on ingesting
    /// meanwhile (the lock is held only to read where the log ends).
    pub fn projections_at(&self, at_ms: i64) -> Result<Projections, ControlError> {
        let (params, last_seq) = {
            let s = self.lock()?;
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
    pub fn rebuild_projections(&self) -> Result<u64, ControlError> {
        let (params, last_seq) = {
            let s = self.lock()?;
            (s.projections.metrics.params().clone(), s.log.last_seq())
        };
        let mut fresh = crate::replay::rebuild_through(&self.reader, params, None, last_seq)?;
        let mut s = self.lock()?;
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
    ) -> Result<Option<u32>, ControlError> {
        let mut s = self.lock()?;
        let Live { log, processor, .. } = &mut *s;
        let Some(p) = processor.as_mut() else {
            return Ok(None);
        };
        crate::replay::load_version(log, p, policy, false)?;
        Ok(Some(p.policy().version))
    }

    /// Checkpoints the projections and the policy state now.
    pub fn save_snapshots(&self) -> Result<u64, ControlError> {
        let s = self.lock()?;
        crate::replay::save(&s.log, &s.projections)?;
        if let Some(p) = &s.processor {
            crate::replay::save_policy(&s.log, p)?;
        }
        Ok(s.projections.covered_seq)
    }
}
