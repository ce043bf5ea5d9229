//! Managers' actions: assign (or transfer) a lead to a rep, recall a lead
//! (to its pool or to another: a move), change a rep's capacity or active
//! flag. Each is a [`PolicyInput`](super::PolicyInput) recorded in the log
//! in order with the events (like a policy version or a tick), so its
//! commands are the policy's own: the same command types, ids derived from
//! the action's place in the log, explanations naming the manager, and a
//! replay decides them again at the same point.
//!
//! An action is checked against the policy's view first
//! ([`Processor::check_manager`]); a refused one (an unknown lead, a recall
//! of a lead nobody holds, ...) is not recorded.

use super::*;

pub const RULE_MANAGER: &str = "manager";

/// A manager's action, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ManagerAction {
    /// Assign a lead to a rep (a transfer when someone else holds it).
    /// Capacity, caps and cooldowns do not apply: the manager decides.
    AssignLead { lead_id: String, rep: String },
    /// Recall a held lead, to its pool or to `to_pool` (a move).
    RecallLead {
        lead_id: String,
        to_pool: Option<String>,
    },
    /// Move a waiting lead to another pool (a held one: recall it with
    /// `to_pool`). It is not allocated until the CRM's `moved`.
    MoveLead { lead_id: String, to_pool: String },
    /// Change a rep's capacity or active flag in every pool of the tenant,
    /// over the policy file, until changed again (`reset` drops it).
    SetRep {
        rep: String,
        capacity: Option<u32>,
        active: Option<bool>,
        #[serde(default)]
        reset: bool,
    },
}

/// A command of rule `manager`, made by the action recorded at
/// `rule_key` (its place in the log makes the command's id).
#[allow(clippy::too_many_arguments)]
fn manager_command(
    lead_id: &str,
    generation: u32,
    rule_key: &str,
    at_ms: i64,
    version: u32,
    body: CommandBody,
    explanation: String,
    facts: BTreeMap<String, String>,
) -> LeadCommand {
    LeadCommand {
        command_id: command_id(lead_id, generation, rule_key, &body),
        lead_id: lead_id.to_string(),
        issued_at_ms: at_ms,
        causation_event_id: String::new(),
        rule_id: RULE_MANAGER.to_string(),
        rule_version: version,
        explanation,
        facts,
        tenant_id: String::new(),
        body,
    }
}

/// A rep's capacity and active flag as a manager set them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepOverride {
    pub capacity: Option<u32>,
    pub active: Option<bool>,
}

impl Processor {
    /// Why the policy cannot carry out `action` now, if it cannot.
    pub fn check_manager(&self, action: &ManagerAction) -> Result<(), String> {
        let lead = |id: &str| {
            self.state
                .pool
                .leads
                .get(id)
                .ok_or_else(|| format!("no lead {id:?} in this tenant"))
        };
        match action {
            ManagerAction::AssignLead { lead_id, rep } => {
                let l = lead(lead_id)?;
                if rep.is_empty() {
                    return Err("a rep id is required".into());
                }
                if l.status == LeadStatus::Converted {
                    return Err(format!("lead {lead_id} is converted"));
                }
                if l.owner.as_deref() == Some(rep.as_str()) {
                    return Err(format!("{rep} already holds lead {lead_id}"));
                }
                if let Some(p) = self.state.pending.get(lead_id.as_str()) {
                    if p.rep == *rep {
                        return Err(format!(
                            "lead {lead_id} is already being assigned to {rep} ({})",
                            p.command_id
                        ));
                    }
                }
                Ok(())
            }
            ManagerAction::RecallLead { lead_id, to_pool } => {
                let l = lead(lead_id)?;
                if l.status != LeadStatus::Assigned {
                    return Err(format!(
                        "lead {lead_id} is {}: only a held lead can be recalled",
                        l.status.as_str()
                    ));
                }
                if self.state.watch(lead_id).is_some_and(|w| w.recalled) {
                    return Err(format!("lead {lead_id}'s recall is already commanded"));
                }
                if to_pool.as_deref() == Some("") {
                    return Err("to_pool, when given, names a pool".into());
                }
                Ok(())
            }
            ManagerAction::MoveLead { lead_id, to_pool } => {
                let l = lead(lead_id)?;
                if l.status != LeadStatus::InPool {
                    return Err(format!(
                        "lead {lead_id} is {}: only a waiting lead is moved (recall a held one with to_pool)",
                        l.status.as_str()
                    ));
                }
                if to_pool.is_empty() || **to_pool == *l.pool {
                    return Err(format!("lead {lead_id} is in pool {} already", l.pool));
                }
                if let Some(p) = self.state.pending.get(lead_id.as_str()) {
                    return Err(format!(
                        "lead {lead_id} is being assigned to {} ({}): assign it or wait",
                        p.rep, p.command_id
                    ));
                }
                if self.state.moving.contains_key(lead_id.as_str()) {
                    return Err(format!("lead {lead_id} is being moved already"));
                }
                Ok(())
            }
            ManagerAction::SetRep {
                rep,
                capacity,
                active,
                reset,
            } => {
                if !self
                    .policy
                    .pools
                    .iter()
                    .any(|p| p.members.iter().any(|m| m.id == *rep))
                {
                    return Err(format!(
                        "{rep:?} is not a member of any pool of this tenant's policy"
                    ));
                }
                if *capacity == Some(0) {
                    return Err(
                        "capacity must be at least 1 (set active = false to stop assignments)"
                            .into(),
                    );
                }
                if capacity.is_none() && active.is_none() && !reset {
                    return Err("nothing to change: give capacity, active or reset".into());
                }
                Ok(())
            }
        }
    }

    /// Carries out a checked action recorded at log key `key`, by `actor`
    /// (a person, for the explanation), at the policy's time.
    pub fn manage(
        &mut self,
        key: (u64, u32),
        action: &ManagerAction,
        actor: &str,
    ) -> Vec<LeadCommand> {
        let mut out = Vec::new();
        if self.check_manager(action).is_err() {
            // Recorded actions were checked against this very state; a
            // replay meets the same state. Never act on a refused one.
            return out;
        }
        let at = self.state.now_ms;
        let rule_key = format!("{RULE_MANAGER}@{}.{}", key.0, key.1);
        let version = self.policy.version;
        match action {
            ManagerAction::AssignLead { lead_id, rep } => {
                let (generation, pool, holder) = {
                    let l = &self.state.pool.leads[lead_id.as_str()];
                    (
                        l.generation,
                        l.pool.to_string(),
                        l.owner.as_deref().map(str::to_string),
                    )
                };
                // A pending assignment to someone else is withdrawn first.
                if let Some(p) = self.state.pending.get(lead_id.as_str()).cloned() {
                    let body = CommandBody::CancelCommand {
                        command_id: p.command_id.clone(),
                        reason: "overridden".into(),
                        owner_id: p.rep.clone(),
                    };
                    let mut facts = BTreeMap::new();
                    facts.insert("cancelled_command_id".to_string(), p.command_id.clone());
                    facts.insert("actor".to_string(), actor.to_string());
                    out.push(manager_command(lead_id, generation, &rule_key, at, version, body, format!(
                            "withdraw {} (assign to {}): manager {actor} assigns the lead to {rep} (rule {RULE_MANAGER} v{version})",
                            p.command_id, p.rep
                        ), facts));
                    self.clear_pending(lead_id);
                }
                self.leave_backlog(lead_id);
                let holdings = self.load_of(rep);
                let capacity = self.capacity_of(rep);
                let (rules, _) = self.policy.lead_rules(&pool, &self.lead_facts(lead_id));
                let expires_at_ms = rules.assign_command_ttl_ms.map(|t| at.saturating_add(t));
                let body = CommandBody::AssignLead {
                    owner_id: rep.clone(),
                    pool: pool.clone(),
                };
                let mut facts = BTreeMap::new();
                facts.insert("actor".to_string(), actor.to_string());
                facts.insert("holdings".to_string(), holdings.to_string());
                if let Some(c) = capacity {
                    facts.insert("capacity".to_string(), c.to_string());
                }
                if let Some(prev) = &holder {
                    facts.insert("transfer_from".to_string(), prev.clone());
                }
                if let Some(e) = expires_at_ms {
                    facts.insert("expires_at_ms".to_string(), e.to_string());
                }
                let transfer = holder
                    .as_ref()
                    .map_or(String::new(), |p| format!(", transfer from {p}"));
                let of = capacity.map_or(String::new(), |c| format!(" of {c}"));
                let command = manager_command(lead_id, generation, &rule_key, at, version, body, format!(
                        "assign to {rep} (by manager {actor} in pool {pool}{transfer}; holds {holdings}{of}; rule {RULE_MANAGER} v{version})"
                    ), facts);
                self.reserve(
                    lead_id,
                    Pending {
                        rep: rep.clone(),
                        command_id: command.command_id.clone(),
                        cause_event_id: String::new(),
                        commanded_at_ms: at,
                        expires_at_ms,
                    },
                );
                *self
                    .state
                    .assigned_per_day
                    .entry((rep.clone(), self.day_of(at)))
                    .or_default() += 1;
                out.push(command);
            }
            ManagerAction::RecallLead { lead_id, to_pool } => {
                let (generation, pool, owner) = {
                    let l = &self.state.pool.leads[lead_id.as_str()];
                    (
                        l.generation,
                        l.pool.to_string(),
                        l.owner.as_deref().unwrap_or_default().to_string(),
                    )
                };
                let to = to_pool.clone().unwrap_or_else(|| pool.clone());
                let body = CommandBody::RecallLead {
                    owner_id: owner.clone(),
                    reason: RecallReason::Manual,
                    to_pool: to.clone(),
                };
                let mut facts = BTreeMap::new();
                facts.insert("actor".to_string(), actor.to_string());
                facts.insert("from_pool".to_string(), pool.clone());
                let moved = if to == pool {
                    String::new()
                } else {
                    format!(", moving it from pool {pool}")
                };
                out.push(manager_command(lead_id, generation, &rule_key, at, version, body, format!(
                        "recall from {owner} to pool {to} (by manager {actor}{moved}; rule {RULE_MANAGER} v{version})"
                    ), facts));
                // Nothing more fires for this assignment: its recall is
                // commanded (the CRM's `recalled` ends it).
                self.rewatch(lead_id, |w, _| w.recalled = true);
            }
            ManagerAction::MoveLead { lead_id, to_pool } => {
                let (generation, from) = {
                    let l = &self.state.pool.leads[lead_id.as_str()];
                    (l.generation, l.pool.to_string())
                };
                let body = CommandBody::MoveLead {
                    to_pool: to_pool.clone(),
                    from_pool: from.clone(),
                };
                let mut facts = BTreeMap::new();
                facts.insert("actor".to_string(), actor.to_string());
                facts.insert("from_pool".to_string(), from.clone());
                out.push(manager_command(lead_id, generation, &rule_key, at, version, body, format!(
                        "move from pool {from} to pool {to_pool} (by manager {actor}; rule {RULE_MANAGER} v{version})"
                    ), facts));
                // Not allocated from the old pool meanwhile.
                self.leave_backlog(lead_id);
                self.state.moving.insert(lead_id.clone(), to_pool.clone());
            }
            ManagerAction::SetRep {
                rep,
                capacity,
                active,
                reset,
            } => {
                if *reset {
                    self.state.rep_overrides.remove(rep.as_str());
                }
                if capacity.is_some() || active.is_some() {
                    let o = self.state.rep_overrides.entry(rep.clone()).or_default();
                    if capacity.is_some() {
                        o.capacity = *capacity;
                    }
                    if active.is_some() {
                        o.active = *active;
                    }
                }
                // More room (or a rep back at work) lets waiting leads out,
                // each caused by the event that made it wait.
                let pools: Vec<String> = self
                    .policy
                    .pools
                    .iter()
                    .filter(|p| {
                        p.kind == PoolKind::AutoAssign && p.members.iter().any(|m| m.id == *rep)
                    })
                    .map(|p| p.name.clone())
                    .collect();
                for pool in pools {
                    self.drain_pool(&pool, None, at, &mut out);
                }
            }
        }
        out
    }

    /// A member's capacity and active flag, a manager's change over the
    /// policy file's.
    pub(super) fn member_limits(&self, m: &Member) -> (u32, bool) {
        match self.state.rep_overrides.get(m.id.as_str()) {
            Some(o) => (
                o.capacity.unwrap_or(m.capacity),
                o.active.unwrap_or(m.active),
            ),
            None => (m.capacity, m.active),
        }
    }

    /// A rep's capacity (the largest of its pools', or a manager's), if
    /// the rep is a member anywhere.
    pub fn capacity_of(&self, rep: &str) -> Option<u32> {
        let file = self
            .policy
            .pools
            .iter()
            .flat_map(|p| p.members.iter())
            .filter(|m| m.id == rep)
            .map(|m| self.member_limits(m).0)
            .max();
        file
    }
}
