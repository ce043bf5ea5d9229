//! The policy processor: pure decisions about where leads go next.
//!
//! [`Processor::handle`] folds one accepted event into the policy's own view
//! of the pools and returns the commands it causes. It does no I/O and reads
//! no clock: a command's time is the causing event's time and its id is a
//! function of (lead, assignment generation, rule), so replaying the same
//! log under the same policy yields the same commands, ids included.
//!
//! What it decides today: a lead that comes to wait in an `auto_assign` pool
//! (created into it, or recalled into it) is allocated round-robin to the
//! next member who is active and below capacity, never back to the rep it
//! was just recalled from. Capacity counts open holdings plus assignments
//! commanded but not yet carried out. A lead no member can take joins the
//! pool's backlog (first come, first served), and whenever a member's
//! capacity frees up (a conversion, a recall) the backlog is allocated
//! first. Deadline rules (reminders, recalls) build on this and are tracked
//! in issue 4.
//!
//! The state (round-robin positions, pending assignments) is durable by
//! derivation: it is a fold of the log, checkpointed like the projections.

pub mod file;

use crate::domain::command::command_id;
use crate::domain::{CommandBody, EventBody, LeadCommand, LeadEvent, LeadStatus};
use crate::projector::pool::PoolState;
pub use file::{Member, PolicyError, PolicyFile, PoolKind, PoolPolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The snapshot name of the policy state; the suffix changes with its shape.
pub const SNAPSHOT_NAME: &str = "policy.v1";

/// The rule id of round-robin allocation.
pub const RULE_AUTO_ASSIGN: &str = "auto-assign-round-robin";

/// The policy's fold of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyState {
    /// Every event with a sequence `<= covered_seq` has been handled.
    pub covered_seq: u64,
    pub pool: PoolState,
    /// Per pool: index of the member to try first next time.
    pub round_robin: BTreeMap<String, usize>,
    /// Assignments commanded and not yet carried out: lead -> rep.
    pub pending: HashMap<String, String>,
    pub pending_by_rep: HashMap<String, u32>,
    /// Per pool: leads waiting for a member with room, by (since, lead).
    pub backlog: BTreeMap<String, BTreeSet<(i64, String)>>,
    /// Lead -> its backlog entry (pool, since), to remove it when the lead
    /// leaves the pool some other way.
    pub backlog_index: HashMap<String, (String, i64)>,
    /// The rep each waiting lead was last recalled from (skipped when the
    /// backlog is allocated).
    pub recalled_from: HashMap<String, String>,
}

/// Most backlog allocations one event may cause; bounds the work per event.
const BACKLOG_ALLOCATIONS_PER_EVENT_MAX: usize = 16;

pub struct Processor {
    policy: PolicyFile,
    state: PolicyState,
}

impl Processor {
    pub fn new(policy: PolicyFile) -> Processor {
        Processor::with_state(policy, PolicyState::default())
    }

    pub fn with_state(policy: PolicyFile, state: PolicyState) -> Processor {
        Processor { policy, state }
    }

    pub fn state(&self) -> &PolicyState {
        &self.state
    }

    pub fn policy(&self) -> &PolicyFile {
        &self.policy
    }

    /// Folds the accepted event with sequence `seq` and returns the commands
    /// it causes. Sequences must arrive in order.
    pub fn handle(&mut self, seq: u64, event: &LeadEvent) -> Vec<LeadCommand> {
        assert!(
            seq > self.state.covered_seq,
            "event {seq} handled again (policy covers {})",
            self.state.covered_seq
        );
        self.state.covered_seq = seq;
        // Whoever held the lead before this event (for capacity freed).
        let holder = self
            .state
            .pool
            .leads
            .get(&event.lead_id)
            .and_then(|l| l.owner.clone());
        self.state.pool.apply(event);
        let lead_id = &event.lead_id;
        let mut out = Vec::new();
        match &event.body {
            EventBody::Created(_) => {
                out.extend(self.allocate(lead_id, event, None, event.occurred_at_ms));
            }
            EventBody::Recalled(r) => {
                self.clear_pending(lead_id);
                self.state
                    .recalled_from
                    .insert(lead_id.clone(), r.previous_owner_id.clone());
                out.extend(self.allocate(
                    lead_id,
                    event,
                    Some(&r.previous_owner_id),
                    event.occurred_at_ms,
                ));
                self.drain_for(&r.previous_owner_id, event, &mut out);
            }
            EventBody::Assigned(_) => {
                self.clear_pending(lead_id);
                self.leave_backlog(lead_id);
                self.state.recalled_from.remove(lead_id);
                if let Some(prev) = holder {
                    // A reassignment frees the previous holder.
                    self.drain_for(&prev, event, &mut out);
                }
            }
            EventBody::Converted(_) => {
                self.clear_pending(lead_id);
                self.leave_backlog(lead_id);
                self.state.recalled_from.remove(lead_id);
                if let Some(owner) = holder {
                    self.drain_for(&owner, event, &mut out);
                }
            }
            _ => {}
        }
        out
    }

    fn leave_backlog(&mut self, lead_id: &str) {
        if let Some((pool, since)) = self.state.backlog_index.remove(lead_id) {
            if let Some(set) = self.state.backlog.get_mut(&pool) {
                set.remove(&(since, lead_id.to_string()));
                if set.is_empty() {
                    self.state.backlog.remove(&pool);
                }
            }
        }
    }

    /// `rep` has room again: allocate the backlogs of the pools they work,
    /// oldest lead first, while someone can take them.
    fn drain_for(&mut self, rep: &str, cause: &LeadEvent, out: &mut Vec<LeadCommand>) {
        let pools: Vec<String> = self
            .policy
            .pools
            .iter()
            .filter(|p| p.kind == PoolKind::AutoAssign && p.members.iter().any(|m| m.id == rep))
            .map(|p| p.name.clone())
            .collect();
        let mut budget = BACKLOG_ALLOCATIONS_PER_EVENT_MAX;
        for pool in pools {
            while budget > 0 {
                let Some((since, lead)) = self
                    .state
                    .backlog
                    .get(&pool)
                    .and_then(|s| s.first().cloned())
                else {
                    break;
                };
                budget -= 1;
                self.leave_backlog(&lead);
                let exclude = self.state.recalled_from.get(&lead).cloned();
                match self.allocate(&lead, cause, exclude.as_deref(), since) {
                    Some(c) => out.push(c),
                    // Still nobody: it kept its place and the pool waits.
                    None => break,
                }
            }
        }
    }

    fn clear_pending(&mut self, lead_id: &str) {
        if let Some(rep) = self.state.pending.remove(lead_id) {
            if let Some(n) = self.state.pending_by_rep.get_mut(&rep) {
                *n -= 1;
                if *n == 0 {
                    self.state.pending_by_rep.remove(&rep);
                }
            }
        }
    }

    fn load_of(&self, rep: &str) -> u32 {
        let held = self.state.pool.holdings.get(rep).map_or(0, |h| h.len()) as u32;
        held + self.state.pending_by_rep.get(rep).copied().unwrap_or(0)
    }

    /// Round-robin over the pool's eligible members; a lead nobody can
    /// take joins the pool's backlog. `cause` is the event that prompted the
    /// decision (its id and time go into the command).
    fn allocate(
        &mut self,
        lead_id: &str,
        cause: &LeadEvent,
        exclude: Option<&str>,
        waiting_since_ms: i64,
    ) -> Option<LeadCommand> {
        let lead = self.state.pool.leads.get(lead_id)?;
        if lead.status != LeadStatus::InPool || self.state.pending.contains_key(lead_id) {
            return None;
        }
        let pool = self.policy.pool(&lead.pool)?;
        if pool.kind != PoolKind::AutoAssign || pool.members.is_empty() {
            return None;
        }
        let n = pool.members.len();
        let start = self.state.round_robin.get(&pool.name).copied().unwrap_or(0) % n;
        let found = (0..n)
            .map(|i| (start + i) % n)
            .map(|i| (i, &pool.members[i]))
            .find(|(_, m)| {
                m.active && Some(m.id.as_str()) != exclude && self.load_of(&m.id) < m.capacity
            });
        let Some((index, member)) = found else {
            if !self.state.backlog_index.contains_key(lead_id) {
                let since = waiting_since_ms;
                self.state
                    .backlog
                    .entry(pool.name.clone())
                    .or_default()
                    .insert((since, lead_id.to_string()));
                self.state
                    .backlog_index
                    .insert(lead_id.to_string(), (pool.name.clone(), since));
            }
            return None;
        };
        let load = self.load_of(&member.id);
        let body = CommandBody::AssignLead {
            owner_id: member.id.clone(),
            pool: pool.name.clone(),
        };
        let explanation = match exclude {
            Some(prev) => format!(
                "assign to {} (round-robin in pool {}, holds {load} of {}; recalled from {prev}, who is skipped)",
                member.id, pool.name, member.capacity
            ),
            None => format!(
                "assign to {} (round-robin in pool {}, holds {load} of {})",
                member.id, pool.name, member.capacity
            ),
        };
        let command = LeadCommand {
            command_id: command_id(lead_id, lead.generation, RULE_AUTO_ASSIGN, &body),
            lead_id: lead_id.to_string(),
            issued_at_ms: cause.occurred_at_ms,
            causation_event_id: cause.event_id.clone(),
            rule_id: RULE_AUTO_ASSIGN.to_string(),
            rule_version: self.policy.version,
            explanation,
            facts: Default::default(),
            body,
        };
        let pool_name = pool.name.clone();
        let rep = member.id.clone();
        self.state.round_robin.insert(pool_name, (index + 1) % n);
        self.state.pending.insert(lead_id.to_string(), rep.clone());
        *self.state.pending_by_rep.entry(rep).or_default() += 1;
        Some(command)
    }

    pub fn state_to_bytes(&self) -> Vec<u8> {
        bincode::serialize(&self.state).expect("policy state serialises")
    }

    pub fn state_from_bytes(bytes: &[u8]) -> Result<PolicyState, bincode::Error> {
        bincode::deserialize(bytes)
    }
}

#[cfg(test)]
mod tests;
