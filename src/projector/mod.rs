//! Projectors: pure folds of the accepted events in the log into read
//! models. No I/O and no clock; loading and saving them is [`crate::replay`]'s
//! job.
//!
//! - [`pool::PoolState`]: who holds which lead and what waits where.
//! - [`metrics::Metrics`]: mergeable cohort, owner and pool aggregates.
//! - [`partial::Partial`]: one engine's share of them, merged across
//!   engines.

pub mod filter;
pub mod metrics;
pub mod partial;
pub mod pool;
pub mod sketch;

use crate::domain::{EventBody, LeadEvent};
pub use filter::LeadFilter;
use metrics::{MetricParams, Metrics};
use pool::PoolState;
use serde::{Deserialize, Serialize};

/// The snapshot name under which projections are checkpointed. The version
/// suffix changes whenever the serialised shape changes, so that an old
/// snapshot is ignored (and rebuilt) rather than misread.
pub const SNAPSHOT_NAME: &str = "projections.v7";

/// All projections, with the log sequence they cover.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Projections {
    /// Every event with a sequence `<= covered_seq` has been folded in.
    pub covered_seq: u64,
    pub pool: PoolState,
    pub metrics: Metrics,
    /// The leads this view counts (see [`filter`]); `None`: all. A
    /// filtered view is never saved.
    #[serde(skip)]
    filter: Option<LeadFilter>,
}

impl Projections {
    pub fn new(params: MetricParams) -> Projections {
        Projections {
            covered_seq: 0,
            pool: PoolState::default(),
            metrics: Metrics::new(params),
            filter: None,
        }
    }

    /// Empty projections that will count only the leads `filter` admits.
    pub fn filtered(params: MetricParams, filter: LeadFilter) -> Projections {
        let mut p = Projections::new(params);
        p.filter = (!filter.is_everything()).then_some(filter);
        p
    }

    /// Folds the event with sequence `seq`. Sequences must arrive in order:
    /// folding an event twice would count it twice.
    pub fn apply(&mut self, seq: u64, event: &LeadEvent) {
        assert!(
            seq > self.covered_seq,
            "event {seq} folded again (projections cover {})",
            self.covered_seq
        );
        if let (Some(filter), EventBody::Created(c)) = (&self.filter, &event.body) {
            if !filter.admits(&event.tenant_id, c) {
                // Unseen by both folds, which then ignore the lead's later
                // events; its contact is still known (see `filter`).
                self.metrics.note_unseen(event, c);
                self.covered_seq = seq;
                return;
            }
        }
        self.pool.apply(event);
        self.metrics.apply(event);
        self.covered_seq = seq;
    }

    /// The projections of several partition stores summed, for reading
    /// (see [`merge_for_reading`](Self::merge_for_reading)), without
    /// copying any store's per-lead working records. `None` for none.
    pub fn summed<'a>(parts: impl IntoIterator<Item = &'a Projections>) -> Option<Projections> {
        let mut out: Option<Projections> = None;
        for p in parts {
            let sum = out.get_or_insert_with(|| Projections::new(p.metrics.params().clone()));
            sum.merge_for_reading(p);
        }
        out
    }

    /// Adds the projections of another partition store to these, for
    /// reading (queries over every part): pool state and aggregates are
    /// per lead, and a lead lives in one partition, so the union is exact.
    /// The per-lead working records of the metrics fold are not merged:
    /// the result is read, never folded on.
    pub fn merge_for_reading(&mut self, o: &Projections) {
        self.covered_seq += o.covered_seq;
        self.pool.merge(&o.pool);
        self.metrics.agg.merge(&o.metrics.agg);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::serialize(self).expect("projections serialise")
    }

    /// Projections from their snapshot bytes; `Err` when the bytes do not
    /// decode or decode into a state whose working records point outside
    /// its tables (the caller rebuilds from the log).
    pub fn from_bytes(bytes: &[u8]) -> Result<Projections, bincode::Error> {
        let p: Projections = bincode::deserialize(bytes)?;
        p.metrics
            .check_places()
            .map_err(|e| Box::new(bincode::ErrorKind::Custom(e)))?;
        Ok(p)
    }
}

/// The projections' hash maps, keyed by ids from the outside (lead ids,
/// owners, pools): foldhash's seeded hasher, several times faster than
/// std's SipHash on short ids (SipHash was ~6 % of a replay) and still
/// seeded per process against crafted collisions.
pub type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;

/// A lead's id as the projections key their maps by it: held inline up
/// to 23 bytes (most CRMs' ids, UUIDs' 36 excepted), so a look-up
/// compares the key where the table holds it, without a cache miss on a
/// string's heap bytes, and a copy into a set allocates nothing. It hashes,
/// compares and serialises as its `str`: maps keyed by it are looked up by
/// `&str`, and a snapshot holds it as a string.
pub type LeadKey = smol_str::SmolStr;

/// A set of ids, hashed as [`IdMap`]'s keys. Its order is arbitrary: what
/// reads one counts or looks up, never lists it in order.
pub type IdSet<T> = std::collections::HashSet<T, foldhash::quality::RandomState>;

#[cfg(test)]
mod tests;
