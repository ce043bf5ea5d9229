//! Lead commands, named in the imperative: what the engine asks downstream
//! services (the CRM) to do. They mirror `proto/leadflow/v1/commands.proto`.
//!
//! A command's id is a pure function of the decision that produced it, so a
//! replay of the same log under the same policy yields the same ids and
//! downstream services can deduplicate by id.

use super::event::RecallReason;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadCommand {
    pub command_id: String,
    pub lead_id: String,
    /// Event time of the decision, UTC milliseconds.
    pub issued_at_ms: i64,
    pub causation_event_id: String,
    pub rule_id: String,
    pub rule_version: u32,
    /// One line for humans.
    pub explanation: String,
    /// The facts the decision rested on (assigned at, last follow-up,
    /// deadline, reminders sent, ...), values as text.
    pub facts: std::collections::BTreeMap<String, String>,
    /// The lead's tenant (empty: the single-tenant default), stamped by
    /// the log when the command is stored.
    #[serde(default)]
    pub tenant_id: String,
    pub body: CommandBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandBody {
    AssignLead {
        owner_id: String,
        pool: String,
    },
    RecallLead {
        owner_id: String,
        reason: RecallReason,
        to_pool: String,
    },
    RemindFollowUp {
        owner_id: String,
        deadline_ms: i64,
    },
    /// An earlier command is withdrawn (an `AssignLead` that expired).
    CancelCommand {
        command_id: String,
        reason: String,
        owner_id: String,
    },
    /// A rep's claim is declined (see `proto/leadflow/v1/commands.proto`
    /// for the reason codes).
    DeclineClaim {
        owner_id: String,
        pool: String,
        reason: String,
        request_event_id: String,
    },
    /// Move a waiting lead to another pool (a manager's action). Names no
    /// rep: `owner_id()` is empty.
    MoveLead {
        to_pool: String,
        from_pool: String,
    },
    /// The engine scored the lead: the CRM writes the score down. Names
    /// no rep.
    UpdateScore {
        score: u32,
        attribute_score: u32,
        behaviour_score: u32,
        predictive_score: u32,
        model_version: String,
        /// The engine's `scored` event it announces.
        scored_event_id: String,
    },
}

impl CommandBody {
    pub fn type_name(&self) -> &'static str {
        match self {
            CommandBody::AssignLead { .. } => "assign_lead",
            CommandBody::RecallLead { .. } => "recall_lead",
            CommandBody::RemindFollowUp { .. } => "remind_follow_up",
            CommandBody::CancelCommand { .. } => "cancel_command",
            CommandBody::DeclineClaim { .. } => "decline_claim",
            CommandBody::MoveLead { .. } => "move_lead",
            CommandBody::UpdateScore { .. } => "update_score",
        }
    }

    /// The rep the command names.
    pub fn owner_id(&self) -> &str {
        match self {
            CommandBody::AssignLead { owner_id, .. }
            | CommandBody::RecallLead { owner_id, .. }
            | CommandBody::RemindFollowUp { owner_id, .. }
            | CommandBody::CancelCommand { owner_id, .. }
            | CommandBody::DeclineClaim { owner_id, .. } => owner_id,
            CommandBody::MoveLead { .. } | CommandBody::UpdateScore { .. } => "",
        }
    }
}

/// Like [`command_id`], for the `attempt`-th decision of the same kind in
/// one generation (an assignment decided again after the first one expired
/// or was declined). Attempt 0 is [`command_id`] itself, so the ids of
/// logs written before attempts existed do not change.
pub fn command_id_attempt(
    lead_id: &str,
    generation: u32,
    attempt: u32,
    rule_id: &str,
    body: &CommandBody,
) -> String {
    if attempt == 0 {
        command_id(lead_id, generation, rule_id, body)
    } else {
        command_id(lead_id, generation, &format!("{rule_id}#{attempt}"), body)
    }
}

/// The deterministic id of a decision: the same lead, assignment generation,
/// rule and command type always give the same id. At most one command exists
/// per (lead, generation, rule), which is what makes the id unique.
pub fn command_id(lead_id: &str, generation: u32, rule_id: &str, body: &CommandBody) -> String {
    // FNV-1a over the parts, separated so that ("ab","c") != ("a","bc").
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [lead_id, rule_id, body.type_name(), &generation.to_string()] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("cmd-{}-{h:016x}", body.type_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_are_stable_and_distinguish_their_inputs() {
        let b = CommandBody::RemindFollowUp {
            owner_id: "rep-1".into(),
            deadline_ms: 5,
        };
        let a = command_id("lead-1", 1, "sla", &b);
        assert_eq!(a, command_id("lead-1", 1, "sla", &b));
        assert_ne!(a, command_id("lead-1", 2, "sla", &b));
        assert_ne!(a, command_id("lead-2", 1, "sla", &b));
        assert_ne!(a, command_id("lead-1", 1, "stale", &b));
        assert!(a.starts_with("cmd-remind_follow_up-"));
    }
}
