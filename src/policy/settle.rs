//! The CRM's side of an assignment: a commanded `AssignLead` holds a slot
//! of its rep's capacity until the CRM carries it out (an `assigned`
//! event), declines it (`command_declined`), or it expires
//! (`assign_command_ttl_ms`). A decline or an expiry releases the slot and
//! decides the lead again, under a new command id (see
//! `docs/integration.md`).

use super::*;

impl Processor {
    /// Releases a lead's pending assignment (declined or expired): the
    /// rep's slot is free again, the rep is skipped for this lead until it
    /// is assigned, and the next decision gets a new command id. Returns
    /// the rep.
    pub(super) fn pass_over(&mut self, lead_id: &str) -> String {
        let rep = self
            .state
            .pending
            .get(lead_id)
            .map(|p| p.rep.clone())
            .unwrap_or_default();
        self.clear_pending(lead_id);
        self.state
            .passed_over_by
            .insert(lead_id.to_string(), rep.clone());
        *self
            .state
            .assign_attempts
            .entry(lead_id.to_string())
            .or_default() += 1;
        rep
    }

    /// A pending assignment's time to live ran out at `at_ms`: withdraw
    /// it, release the rep's slot and decide the lead again.
    pub(super) fn expire(&mut self, lead_id: &str, at_ms: i64, out: &mut Vec<LeadCommand>) {
        let Some(p) = self.state.pending.get(lead_id).cloned() else {
            return;
        };
        let generation = self
            .state
            .pool
            .leads
            .get(lead_id)
            .map_or(0, |l| l.generation);
        let attempt = self.attempt(lead_id);
        let ttl_ms = p.expires_at_ms.unwrap_or(at_ms) - p.commanded_at_ms;
        let body = CommandBody::CancelCommand {
            command_id: p.command_id.clone(),
            reason: "expired".into(),
            owner_id: p.rep.clone(),
        };
        let explain::Explained { explanation, facts } = explain::withdraw(&explain::Withdraw {
            command_id: &p.command_id,
            rep: &p.rep,
            commanded_at_ms: p.commanded_at_ms,
            expired_at_ms: at_ms,
            ttl_ms,
            rule: RULE_ASSIGN_TTL,
            version: self.policy.version,
        });
        out.push(LeadCommand {
            command_id: command_id_attempt(lead_id, generation, attempt, RULE_ASSIGN_TTL, &body),
            lead_id: lead_id.to_string(),
            issued_at_ms: at_ms,
            causation_event_id: p.cause_event_id.clone(),
            rule_id: RULE_ASSIGN_TTL.to_string(),
            rule_version: self.policy.version,
            explanation,
            facts,
            tenant_id: String::new(),
            body,
        });
        let rep = self.pass_over(lead_id);
        *self.state.expired_by_rep.entry(rep.clone()).or_default() += 1;
        self.decide_again(lead_id, &rep, &p.cause_event_id, at_ms, out);
    }

    /// Decides a passed-over lead again at `at_ms`: someone else if anyone
    /// can take it now; otherwise it waits in its pool's backlog and the
    /// skip is dropped, because keeping it would strand the lead in a pool
    /// where nobody else can take it (it may go back to `rep`, the only
    /// one with room). `rep`'s released slot then drains the backlog.
    pub(super) fn decide_again(
        &mut self,
        lead_id: &str,
        rep: &str,
        cause_event_id: &str,
        at_ms: i64,
        out: &mut Vec<LeadCommand>,
    ) {
        self.offer(lead_id, cause_event_id, at_ms, out);
        if self.state.backlog_index.contains_key(lead_id) {
            self.state.passed_over_by.remove(lead_id);
        }
        self.drain_for(rep, cause_event_id, at_ms, out);
    }
}
