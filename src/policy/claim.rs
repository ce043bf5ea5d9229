//! Claims from the public pool (公海), arbitrated.
//!
//! A rep's claim arrives as a `claim_requested` event; the policy answers
//! every one with a command: an `AssignLead` of rule `claim` (which holds
//! a slot of the rep's holdings until the CRM carries it out, declines it
//! or it expires, like any assignment; see [`super::settle`]) or a
//! `DeclineClaim` naming the rule that refused it. The checks, in order:
//! the lead waits in its pool (`not_in_pool`), the pool is claimable
//! (`not_claimable`), nobody's claim of it is pending (`already_claimed`:
//! of two reps racing for one lead, the request appended to the log first
//! wins, so the answer never depends on timing), then the pool's
//! claim rules: `members_only` (`not_a_member`), `holdings_max`,
//! `claims_per_day_max` (per UTC day), `reclaim_after_ms` after the rep
//! lost the lead (`reclaim_too_soon`).
//!
//! Outcomes are counted per (rep, pool) in the policy state, so they are
//! part of its fold: a replay counts the same.

use super::*;

pub const RULE_CLAIM: &str = "claim";

/// Most losses remembered per lead for `reclaim_after_ms` (the latest
/// ones; older ones are forgotten first).
pub(super) const LOSSES_PER_LEAD_MAX: usize = 8;

/// Why a claim was declined: the code the `DeclineClaim` carries.
pub const DECLINE_REASONS: [&str; 7] = [
    "not_in_pool",
    "already_claimed",
    "not_claimable",
    "not_a_member",
    "holdings_max",
    "claims_per_day_max",
    "reclaim_too_soon",
];

/// Claims granted and declined for one (rep, pool).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCounts {
    pub granted: u64,
    /// By reason code.
    pub declined: BTreeMap<String, u64>,
}

impl Processor {
    /// Answers `rep`'s claim of `lead_id` (the event `request_event_id`,
    /// at `at_ms`).
    pub(super) fn arbitrate_claim(
        &mut self,
        lead_id: &str,
        rep: &str,
        request_event_id: &str,
        at_ms: i64,
        out: &mut Vec<LeadCommand>,
    ) {
        let Some(lead) = self.state.pool.leads.get(lead_id) else {
            return;
        };
        let pool = lead.pool.to_string();
        let generation = lead.generation;
        let refusal = self.claim_refusal(lead_id, rep, &pool, at_ms);
        let counts = self
            .state
            .claims
            .entry((rep.to_string(), pool.clone()))
            .or_default();
        let command = match refusal {
            Some((reason, detail)) => {
                *counts.declined.entry(reason.to_string()).or_default() += 1;
                let body = CommandBody::DeclineClaim {
                    owner_id: rep.to_string(),
                    pool: pool.clone(),
                    reason: reason.to_string(),
                    request_event_id: request_event_id.to_string(),
                };
                let explain::Explained { explanation, facts } =
                    explain::claim_declined(&explain::ClaimDeclined {
                        rep,
                        pool: &pool,
                        reason,
                        detail: &detail,
                        rule: RULE_CLAIM,
                        version: self.policy.version,
                    });
                LeadCommand {
                    // One answer per request: the request's own id makes
                    // the decision's id.
                    command_id: command_id(
                        lead_id,
                        generation,
                        &format!("{RULE_CLAIM}@{request_event_id}"),
                        &body,
                    ),
                    lead_id: lead_id.to_string(),
                    issued_at_ms: at_ms,
                    causation_event_id: request_event_id.to_string(),
                    rule_id: RULE_CLAIM.to_string(),
                    rule_version: self.policy.version,
                    explanation,
                    facts,
                    tenant_id: String::new(),
                    body,
                }
            }
            None => {
                counts.granted += 1;
                self.grant_claim(lead_id, rep, &pool, request_event_id, at_ms)
            }
        };
        out.push(command);
    }

    /// The reason code and a detail for people, when the claim must be
    /// declined.
    fn claim_refusal(
        &self,
        lead_id: &str,
        rep: &str,
        pool: &str,
        at_ms: i64,
    ) -> Option<(&'static str, String)> {
        let lead = self.state.pool.leads.get(lead_id)?;
        if lead.status != LeadStatus::InPool {
            let detail = match &lead.owner {
                Some(owner) => format!("held by {owner}"),
                None => format!("the lead is {}", lead.status.as_str()),
            };
            return Some(("not_in_pool", detail));
        }
        let Some(p) = self
            .policy
            .pool(pool)
            .filter(|p| p.kind == PoolKind::Claimable)
        else {
            return Some((
                "not_claimable",
                format!(
                    "pool {pool} is not a claimable pool of policy v{}",
                    self.policy.version
                ),
            ));
        };
        if let Some(p) = self.state.pending.get(lead_id) {
            return Some((
                "already_claimed",
                format!("promised to {} by {}", p.rep, p.command_id),
            ));
        }
        let rules = &p.claim;
        if rules.members_only && !p.members.iter().any(|m| m.id == rep) {
            return Some(("not_a_member", format!("{rep} is not a member of {pool}")));
        }
        let load = self.load_of(rep);
        if let Some(max) = rules.holdings_max {
            if load >= max {
                return Some((
                    "holdings_max",
                    format!("holds {load} open leads, at most {max} to claim"),
                ));
            }
        }
        if let Some(max) = rules.claims_per_day_max {
            let today = self.claims_today(rep, pool, at_ms);
            if today >= max {
                return Some((
                    "claims_per_day_max",
                    format!("{today} claims from {pool} today, at most {max}"),
                ));
            }
        }
        if let Some(after) = rules.reclaim_after_ms {
            let lost = self
                .state
                .losses
                .get(lead_id)
                .and_then(|l| l.iter().filter(|(r, _)| r == rep).map(|(_, t)| *t).max());
            if let Some(lost_at) = lost.filter(|t| at_ms < t.saturating_add(after)) {
                return Some((
                    "reclaim_too_soon",
                    format!(
                        "lost it at {}, may claim it back from {}",
                        crate::domain::time::format_ms(lost_at),
                        crate::domain::time::format_ms(lost_at.saturating_add(after))
                    ),
                ));
            }
        }
        None
    }

    fn claims_today(&self, rep: &str, pool: &str, at_ms: i64) -> u32 {
        self.state
            .claims_per_day
            .get(&(rep.to_string(), pool.to_string(), self.day_of(at_ms)))
            .copied()
            .unwrap_or(0)
    }

    /// The `AssignLead` of a granted claim; the assignment is pending
    /// until the CRM carries it out.
    fn grant_claim(
        &mut self,
        lead_id: &str,
        rep: &str,
        pool: &str,
        request_event_id: &str,
        at_ms: i64,
    ) -> LeadCommand {
        let generation = self
            .state
            .pool
            .leads
            .get(lead_id)
            .map_or(0, |l| l.generation);
        let attempt = self.attempt(lead_id);
        let (rules, scope) = self.policy.lead_rules(pool, &self.lead_facts(lead_id));
        let expires_at_ms = rules
            .assign_command_ttl_ms
            .map(|ttl| at_ms.saturating_add(ttl));
        let holdings = self.load_of(rep);
        let claims_today = self.claims_today(rep, pool, at_ms) + 1;
        let body = CommandBody::AssignLead {
            owner_id: rep.to_string(),
            pool: pool.to_string(),
        };
        let explain::Explained { explanation, facts } =
            explain::claim_granted(&explain::ClaimGranted {
                rep,
                pool,
                holdings,
                holdings_max: self.policy.pool(pool).and_then(|p| p.claim.holdings_max),
                claims_today,
                request_event_id,
                expires_at_ms,
                scope: &scope,
                rule: RULE_CLAIM,
                version: self.policy.version,
            });
        let command = LeadCommand {
            command_id: command_id_attempt(lead_id, generation, attempt, RULE_CLAIM, &body),
            lead_id: lead_id.to_string(),
            issued_at_ms: at_ms,
            causation_event_id: request_event_id.to_string(),
            rule_id: RULE_CLAIM.to_string(),
            rule_version: self.policy.version,
            explanation,
            facts,
            tenant_id: String::new(),
            body,
        };
        self.reserve(
            lead_id,
            Pending {
                rep: rep.to_string(),
                command_id: command.command_id.clone(),
                cause_event_id: request_event_id.to_string(),
                commanded_at_ms: at_ms,
                expires_at_ms,
            },
        );
        *self
            .state
            .claims_per_day
            .entry((rep.to_string(), pool.to_string(), self.day_of(at_ms)))
            .or_default() += 1;
        command
    }

    /// `rep` lost `lead_id` at `at_ms` (recalled, released, or moved to
    /// someone else), for `reclaim_after_ms`.
    pub(super) fn record_loss(&mut self, lead_id: &str, rep: &str, at_ms: i64) {
        let losses = self.state.losses.entry(lead_id.to_string()).or_default();
        if losses.len() >= LOSSES_PER_LEAD_MAX {
            losses.remove(0);
        }
        losses.push((rep.to_string(), at_ms));
    }

    /// Claims granted and declined per (rep, pool).
    pub fn claim_counts(&self) -> &BTreeMap<(String, String), ClaimCounts> {
        &self.state.claims
    }
}
