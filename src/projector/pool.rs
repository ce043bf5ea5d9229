//! Pool state: who holds which lead and what waits in which pool. A pure
//! fold over accepted events; it trusts the log to have validated them but
//! never panics on an odd sequence (a replay `--until` may cut a lead's
//! history anywhere).

use super::{IdMap, IdSet, LeadKey};
use crate::domain::lifecycle::resolve_pool;
use crate::domain::{EventBody, LeadEvent, LeadStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything an analyst sees about one lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadView {
    pub status: LeadStatus,
    pub owner: Option<String>,
    pub pool: String,
    pub channel: String,
    pub score: Option<u32>,
    pub created_at_ms: i64,
    pub assigned_at_ms: Option<i64>,
    pub last_follow_up_at_ms: Option<i64>,
    pub converted_at_ms: Option<i64>,
    /// Number of assignments so far.
    pub generation: u32,
    pub recall_count: u32,
    /// Everyone who held the lead before the current owner, oldest first.
    pub previous_owners: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolState {
    pub leads: IdMap<LeadKey, LeadView>,
    /// Per rep: the open (assigned, not converted) leads they hold.
    pub holdings: IdMap<String, IdSet<LeadKey>>,
    /// Per pool: the leads waiting in it (no owner).
    pub waiting: IdMap<String, IdSet<LeadKey>>,
}

/// Per-pool counts for display.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSize {
    pub waiting: u64,
    pub held: u64,
    pub converted: u64,
}

impl PoolState {
    pub fn apply(&mut self, event: &LeadEvent) {
        let at = event.occurred_at_ms;
        let id = event.lead_id.as_str();
        if let EventBody::Created(c) = &event.body {
            if self.leads.contains_key(id) {
                return;
            }
            self.leads.insert(
                LeadKey::new(id),
                LeadView {
                    status: LeadStatus::InPool,
                    owner: None,
                    pool: c.pool.clone(),
                    channel: c.channel.clone(),
                    score: None,
                    created_at_ms: at,
                    assigned_at_ms: None,
                    last_follow_up_at_ms: None,
                    converted_at_ms: None,
                    generation: 0,
                    recall_count: 0,
                    previous_owners: Vec::new(),
                },
            );
            add(&mut self.waiting, &c.pool, id);
            return;
        }
        let Some(lead) = self.leads.get_mut(id) else {
            return;
        };
        match &event.body {
            EventBody::Created(_) => unreachable!("handled above"),
            EventBody::Scored(s) => lead.score = Some(s.score),
            EventBody::CommandDeclined(_)
            | EventBody::ClaimRequested(_)
            | EventBody::Engaged(_) => {}
            EventBody::Assigned(a) => {
                match lead.owner.take() {
                    Some(prev) => {
                        remove(&mut self.holdings, &prev, id);
                        lead.previous_owners.push(prev);
                    }
                    None => remove(&mut self.waiting, &lead.pool, id),
                }
                move_to(&mut lead.pool, &a.pool);
                lead.owner = Some(a.owner_id.clone());
                lead.status = LeadStatus::Assigned;
                lead.assigned_at_ms = Some(at);
                lead.last_follow_up_at_ms = None;
                lead.generation += 1;
                add(&mut self.holdings, &a.owner_id, id);
            }
            EventBody::FollowedUp(_) => lead.last_follow_up_at_ms = Some(at),
            EventBody::Recalled(r) => {
                if let Some(prev) = lead.owner.take() {
                    remove(&mut self.holdings, &prev, id);
                    lead.previous_owners.push(prev);
                }
                move_to(&mut lead.pool, &r.to_pool);
                lead.status = LeadStatus::InPool;
                lead.assigned_at_ms = None;
                lead.recall_count += 1;
                add(&mut self.waiting, &lead.pool, id);
            }
            EventBody::Converted(_) => {
                if let Some(owner) = &lead.owner {
                    remove(&mut self.holdings, owner, id);
                }
                lead.status = LeadStatus::Converted;
                lead.converted_at_ms = Some(at);
            }
            EventBody::Moved(m) => {
                if lead.status == LeadStatus::InPool {
                    remove(&mut self.waiting, &lead.pool, id);
                    add(&mut self.waiting, &m.to_pool, id);
                }
                move_to(&mut lead.pool, &m.to_pool);
            }
        }
    }

    /// Adds another partition's pool state (disjoint leads) to this one.
    pub fn merge(&mut self, o: &PoolState) {
        for (id, lead) in &o.leads {
            self.leads.insert(id.clone(), lead.clone());
        }
        for (rep, held) in &o.holdings {
            self.holdings
                .entry(rep.clone())
                .or_default()
                .extend(held.iter().cloned());
        }
        for (pool, waiting) in &o.waiting {
            self.waiting
                .entry(pool.clone())
                .or_default()
                .extend(waiting.iter().cloned());
        }
    }

    /// Takes in the pool state of a fold of other leads (disjoint from
    /// these), moving it: the state of both folds' leads together.
    pub fn absorb(&mut self, o: PoolState) {
        if self.leads.len() < o.leads.len() {
            let mine = std::mem::replace(self, o);
            return self.absorb(mine);
        }
        self.leads.extend(o.leads);
        for (index, from) in [
            (&mut self.holdings, o.holdings),
            (&mut self.waiting, o.waiting),
        ] {
            for (key, set) in from {
                match index.get_mut(&key) {
                    Some(mine) => mine.extend(set),
                    None => {
                        index.insert(key, set);
                    }
                }
            }
        }
    }

    /// Waiting, held and converted counts per pool.
    pub fn pool_sizes(&self) -> BTreeMap<String, PoolSize> {
        sizes_by_pool(self.leads.values().map(|l| (l.pool.as_str(), l.status)))
    }

    /// Reps by open holdings, largest first.
    pub fn holdings_by_rep(&self) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .holdings
            .iter()
            .filter(|(_, leads)| !leads.is_empty())
            .map(|(rep, leads)| (rep.clone(), leads.len()))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

/// Waiting, held and converted counts per pool of leads given as (pool,
/// status): the projections' pool state and the policy's view count alike.
pub fn sizes_by_pool<'a>(
    leads: impl Iterator<Item = (&'a str, LeadStatus)>,
) -> BTreeMap<String, PoolSize> {
    let mut out: BTreeMap<String, PoolSize> = BTreeMap::new();
    for (pool, status) in leads {
        if !out.contains_key(pool) {
            out.insert(pool.to_string(), PoolSize::default());
        }
        let p = out.get_mut(pool).expect("inserted above");
        match status {
            LeadStatus::InPool => p.waiting += 1,
            LeadStatus::Assigned => p.held += 1,
            LeadStatus::Converted => p.converted += 1,
        }
    }
    out
}

/// The counts a pools or reps listing shows, from the projections' pool
/// state or a tenant's (the policy's lean view of its leads).
pub trait PoolCounts {
    /// Waiting, held and converted counts per pool.
    fn pool_sizes(&self) -> BTreeMap<String, PoolSize>;
    /// Per rep, the open leads they hold in `pool` (reps holding none
    /// there left out).
    fn held_in_pool_by_rep(&self, pool: &str) -> BTreeMap<String, usize>;
    /// Per rep, the open leads they hold (reps holding none left out).
    fn held_by_rep(&self) -> BTreeMap<String, usize>;
}

impl PoolCounts for PoolState {
    fn pool_sizes(&self) -> BTreeMap<String, PoolSize> {
        PoolState::pool_sizes(self)
    }

    fn held_in_pool_by_rep(&self, pool: &str) -> BTreeMap<String, usize> {
        self.holdings
            .iter()
            .map(|(rep, leads)| {
                let n = leads
                    .iter()
                    .filter(|l| self.leads.get(*l).is_some_and(|v| v.pool == pool))
                    .count();
                (rep.clone(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn held_by_rep(&self) -> BTreeMap<String, usize> {
        self.holdings
            .iter()
            .filter(|(_, leads)| !leads.is_empty())
            .map(|(rep, leads)| (rep.clone(), leads.len()))
            .collect()
    }
}

/// Adds `lead_id` to `index`'s set under `key`, copying the key only for a
/// set not there yet (most events find theirs).
fn add(index: &mut IdMap<String, IdSet<LeadKey>>, key: &str, lead_id: &str) {
    match index.get_mut(key) {
        Some(set) => set.insert(LeadKey::new(lead_id)),
        None => index
            .entry(key.to_string())
            .or_default()
            .insert(LeadKey::new(lead_id)),
    };
}

/// Moves a lead to the pool an event names ([`resolve_pool`]: none keeps
/// it where it is), copying the name only when it changes (an assignment
/// or a recall mostly leaves it where it was).
fn move_to(pool: &mut String, event_pool: &str) {
    let to = resolve_pool(event_pool, pool);
    if to != pool.as_str() {
        event_pool.clone_into(pool);
    }
}

fn remove(index: &mut IdMap<String, IdSet<LeadKey>>, key: &str, lead_id: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(lead_id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}
