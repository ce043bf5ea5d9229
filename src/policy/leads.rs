//! The policy's own view of the leads: only what its decisions read (a
//! lead's status, owner, pool, generation, score, and the channel, region
//! and industry its `when` clauses and the `preference` strategy match),
//! each held lead's deadline watch, and how many open leads each rep
//! holds.
//!
//! Why not the projections' `PoolState`: the policy's view is folded and
//! checkpointed with the policy's state (its snapshot must pair with the
//! decisions at the same sequence), and the policy runs where no
//! projections do (backtests, a tenant's processor among many). It used to
//! be a full copy of `PoolState` per processor — every lead's timestamps,
//! previous owners and a set of lead ids per rep — which made it the
//! largest part of the policy's memory. This one keeps a fraction of
//! that: names (reps, pools, channels, regions, industries) are shared
//! through [`Names`] rather than copied per lead, names and lead ids are
//! thin pointers ([`ThinStr`]), holdings are counts, and a lead's watch
//! lives in its record, so one hash map holds both (README, Performance:
//! ~250 bytes per open assignment at a million).

use super::state::Watch;
use super::thin::ThinStr;
use crate::domain::{EventBody, LeadEvent, LeadStatus};
use crate::projector::pool::{sizes_by_pool, PoolCounts, PoolSize};
use crate::projector::{IdMap, IdSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A name the policy's state holds many times over, shared (a thin
/// pointer: see [`ThinStr`]). Serialised as the string itself, so a
/// snapshot holds no pointers; [`Names::share`] makes copies read back
/// shared again.
pub type Name = ThinStr;

/// A lead's id as the policy's state holds it: one copy per lead, shared
/// by the view's map and the due index (serialised as the
/// string, like [`Name`]; [`Processor::resume`](super::Processor::resume)
/// shares them again).
pub type LeadId = ThinStr;

/// At most this many distinct names are shared at once; beyond it the
/// table starts over (names handed out stay valid, only later copies of
/// them are not shared with earlier ones). Bounds the table when a
/// producer sends a distinct region or channel with every lead.
pub const NAMES_INTERNED_MAX: usize = 65_536;

/// The shared copies of the names in use (not saved: rebuilt as names are
/// met, and by [`LeadsView::share_names`] on resume).
#[derive(Debug, Default)]
pub struct Names {
    table: IdSet<Name>,
}

impl Names {
    /// The shared copy of `name`.
    pub fn share(&mut self, name: &str) -> Name {
        if let Some(shared) = self.table.get(name) {
            return shared.clone();
        }
        if self.table.len() >= NAMES_INTERNED_MAX {
            self.table.clear();
        }
        let shared = Name::new(name);
        self.table.insert(shared.clone());
        shared
    }

    /// `name` replaced by its shared copy.
    pub fn share_in_place(&mut self, name: &mut Name) {
        *name = self.share(name);
    }
}

/// What the policy knows of one lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLead {
    pub status: LeadStatus,
    /// Number of assignments so far.
    pub generation: u32,
    /// Number of recalls so far (for `max_recalls`).
    pub recall_count: u32,
    /// The latest score (see [`score`](Self::score)): a value and a flag
    /// rather than an `Option<u32>` (8 bytes with its padding), so that a
    /// lead's record fits 64 bytes. The value is 0 while unscored.
    score_value: u32,
    scored: bool,
    pub owner: Option<Name>,
    pub pool: Name,
    pub channel: Name,
    pub region: Name,
    pub industry: Name,
    /// The open assignment's deadlines, while the lead is held and
    /// watched. Boxed: a lead in a pool or converted carries a pointer,
    /// not a watch.
    pub watch: Option<Box<Watch>>,
}

/// The policy's view of the leads (see the module's doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadsView {
    /// Boxed, as the watches are: the table's slack costs a pointer a
    /// slot, not a lead.
    pub leads: IdMap<LeadId, Box<PolicyLead>>,
    /// Per rep: the open (assigned, not converted) leads they hold; a rep
    /// holding none has no entry.
    pub held_by_rep: IdMap<Name, u32>,
}

impl LeadsView {
    /// Folds one event, as `PoolState::apply` does for the fields kept
    /// (a test holds the two to the same answers over a simulated log).
    pub fn apply(&mut self, event: &LeadEvent, names: &mut Names) {
        let id = &event.lead_id;
        if let EventBody::Created(c) = &event.body {
            if !self.leads.contains_key(id.as_str()) {
                let lead = PolicyLead {
                    status: LeadStatus::InPool,
                    generation: 0,
                    recall_count: 0,
                    score_value: 0,
                    scored: false,
                    owner: None,
                    pool: names.share(&c.pool),
                    channel: names.share(&c.channel),
                    region: names.share(&c.region),
                    industry: names.share(&c.industry),
                    watch: None,
                };
                self.leads.insert(LeadId::new(id), Box::new(lead));
            }
            return;
        }
        let Some(lead) = self.leads.get_mut(id.as_str()) else {
            return;
        };
        match &event.body {
            EventBody::Created(_) => unreachable!("handled above"),
            EventBody::Scored(s) => {
                lead.score_value = s.score;
                lead.scored = true;
            }
            EventBody::CommandDeclined(_)
            | EventBody::ClaimRequested(_)
            | EventBody::Engaged(_)
            | EventBody::FollowedUp(_) => {}
            EventBody::Assigned(a) => {
                lead.release(&mut self.held_by_rep);
                // An empty pool keeps the lead's (`resolve_pool`); the same
                // one needs no look-up in the names.
                if !a.pool.is_empty() && *a.pool != *lead.pool {
                    lead.pool = names.share(&a.pool);
                }
                let owner = names.share(&a.owner_id);
                *self.held_by_rep.entry(owner.clone()).or_default() += 1;
                lead.owner = Some(owner);
                lead.status = LeadStatus::Assigned;
                lead.generation += 1;
            }
            EventBody::Recalled(r) => {
                lead.release(&mut self.held_by_rep);
                lead.owner = None;
                if !r.to_pool.is_empty() && *r.to_pool != *lead.pool {
                    lead.pool = names.share(&r.to_pool);
                }
                lead.status = LeadStatus::InPool;
                lead.recall_count += 1;
            }
            EventBody::Converted(_) => {
                // The owner stays on the lead (who converted it); it no
                // longer counts among their holdings.
                lead.release(&mut self.held_by_rep);
                lead.status = LeadStatus::Converted;
            }
            EventBody::Moved(m) => {
                if *m.to_pool != *lead.pool {
                    lead.pool = names.share(&m.to_pool);
                }
            }
        }
    }

    /// The view's copy of `lead`'s id, or a new one for a lead it does
    /// not know.
    pub fn id_of(&self, lead: &str) -> LeadId {
        match self.leads.get_key_value(lead) {
            Some((id, _)) => id.clone(),
            None => LeadId::new(lead),
        }
    }

    /// How many open leads `rep` holds.
    pub fn held_by(&self, rep: &str) -> u32 {
        self.held_by_rep.get(rep).copied().unwrap_or(0)
    }

    /// Every name made shared through `names` again: a state read back
    /// from its snapshot holds a copy of each name per use.
    pub fn share_names(&mut self, names: &mut Names) {
        for lead in self.leads.values_mut() {
            if let Some(owner) = &mut lead.owner {
                names.share_in_place(owner);
            }
            names.share_in_place(&mut lead.pool);
            names.share_in_place(&mut lead.channel);
            names.share_in_place(&mut lead.region);
            names.share_in_place(&mut lead.industry);
            if let Some(w) = &mut lead.watch {
                names.share_in_place(&mut w.pool);
            }
        }
        self.held_by_rep = std::mem::take(&mut self.held_by_rep)
            .into_iter()
            .map(|(rep, n)| (names.share(&rep), n))
            .collect();
    }
}

impl PoolCounts for LeadsView {
    fn pool_sizes(&self) -> BTreeMap<String, PoolSize> {
        sizes_by_pool(self.leads.values().map(|l| (&*l.pool, l.status)))
    }

    fn held_in_pool_by_rep(&self, pool: &str) -> BTreeMap<String, usize> {
        let mut out: BTreeMap<String, usize> = BTreeMap::new();
        for lead in self.leads.values() {
            if lead.status != LeadStatus::Assigned || *lead.pool != *pool {
                continue;
            }
            if let Some(owner) = &lead.owner {
                *out.entry(owner.to_string()).or_default() += 1;
            }
        }
        out
    }

    fn held_by_rep(&self) -> BTreeMap<String, usize> {
        self.held_by_rep
            .iter()
            .map(|(rep, n)| (rep.to_string(), *n as usize))
            .collect()
    }
}

impl PolicyLead {
    /// The lead's latest score, if it has been scored.
    pub fn score(&self) -> Option<u32> {
        self.scored.then_some(self.score_value)
    }

    /// Counts the lead out of its owner's holdings if it is held (a
    /// converted lead keeps its owner and was counted out already); a rep
    /// holding none has no entry.
    fn release(&self, held: &mut IdMap<Name, u32>) {
        let Some(owner) = self.owner.as_deref() else {
            return;
        };
        if self.status != LeadStatus::Assigned {
            return;
        }
        if let Some(n) = held.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(owner);
            }
        }
    }
}

#[cfg(test)]
#[path = "leads_tests.rs"]
mod tests;
