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
//! commanded but not yet carried out. Deadline rules (reminders, recalls)
//! build on this and are tracked in issue 4.
//!
//! The state (round-robin positions, pending assignments) is durable by
//! derivation: it is a fold of the log, checkpointed like the projections.

pub mod file;

use crate::domain::command::command_id;
use crate::domain::{CommandBody, EventBody, LeadCommand, LeadEvent, LeadStatus};
use crate::projector::pool::PoolState;
pub use file::{Member, PolicyError, PolicyFile, PoolKind, PoolPolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

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
}

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
        self.state.pool.apply(event);
        let lead_id = &event.lead_id;
        let mut recalled_from = None;
        match &event.body {
            EventBody::Assigned(_) | EventBody::Converted(_) => self.clear_pending(lead_id),
            EventBody::Recalled(r) => {
                self.clear_pending(lead_id);
                recalled_from = Some(r.previous_owner_id.clone());
            }
            EventBody::Created(_) => {}
            _ => return Vec::new(),
        }
        if !matches!(event.body, EventBody::Created(_) | EventBody::Recalled(_)) {
            return Vec::new();
        }
        self.allocate(event, recalled_from.as_deref())
            .into_iter()
            .collect()
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

    /// Round-robin over the pool's eligible members.
    fn allocate(&mut self, event: &LeadEvent, exclude: Option<&str>) -> Option<LeadCommand> {
        let lead = self.state.pool.leads.get(&event.lead_id)?;
        if lead.status != LeadStatus::InPool {
            return None;
        }
        let pool = self.policy.pool(&lead.pool)?;
        if pool.kind != PoolKind::AutoAssign || pool.members.is_empty() {
            return None;
        }
        let n = pool.members.len();
        let start = self.state.round_robin.get(&pool.name).copied().unwrap_or(0) % n;
        let (index, member) = (0..n)
            .map(|i| (start + i) % n)
            .map(|i| (i, &pool.members[i]))
            .find(|(_, m)| {
                m.active && Some(m.id.as_str()) != exclude && self.load_of(&m.id) < m.capacity
            })?;
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
            command_id: command_id(&event.lead_id, lead.generation, RULE_AUTO_ASSIGN, &body),
            lead_id: event.lead_id.clone(),
            issued_at_ms: event.occurred_at_ms,
            causation_event_id: event.event_id.clone(),
            rule_id: RULE_AUTO_ASSIGN.to_string(),
            rule_version: self.policy.version,
            explanation,
            body,
        };
        let pool_name = pool.name.clone();
        let rep = member.id.clone();
        self.state.round_robin.insert(pool_name, (index + 1) % n);
        self.state
            .pending
            .insert(event.lead_id.clone(), rep.clone());
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
