//! Every command's explanation and facts, built in one place from the
//! facts the decision rested on, so that what a command says about itself
//! is worded and keyed the same whichever part of the policy decided it
//! (`inspect commands`, the CRM's UI and the audit trail read these).

use crate::domain::time::format_ms;
use std::collections::BTreeMap;

/// The fact a recall carries when it sends the lead to the cold pool
/// (`max_recalls` reached).
pub const FACT_TO_COLD_POOL: &str = "to_cold_pool";

/// A command's one-line explanation and its facts.
pub(super) struct Explained {
    pub explanation: String,
    pub facts: BTreeMap<String, String>,
}

fn facts<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Why a rep was left out of an assignment.
pub(super) enum Skipped<'a> {
    /// The lead was recalled from them.
    RecalledFrom(&'a str),
    /// They declined the lead's last assignment or let it expire.
    PassedOver(&'a str),
}

/// The facts of an `AssignLead`.
pub(super) struct Assign<'a> {
    pub rep: &'a str,
    pub pool: &'a str,
    pub strategy: &'a str,
    pub holdings: u32,
    pub capacity: u32,
    pub waiting_since_ms: i64,
    pub skipped: Option<Skipped<'a>>,
    /// Decided again after this many declines or expiries (0: first).
    pub attempt: u32,
    pub expires_at_ms: Option<i64>,
    pub rule: &'a str,
    /// Where the rules applied come from (see `PolicyFile::lead_rules`).
    pub scope: &'a str,
    pub version: u32,
}

/// " under <scope>" for rules narrower than the tenant's, else nothing.
fn scoped(scope: &str) -> String {
    if scope.is_empty() || scope == super::file::SCOPE_TENANT {
        String::new()
    } else {
        format!(" under {scope}")
    }
}

fn scope_fact(scope: &str) -> String {
    if scope.is_empty() {
        super::file::SCOPE_TENANT.to_string()
    } else {
        scope.to_string()
    }
}

pub(super) fn assign(a: Assign<'_>) -> Explained {
    let mut explanation = format!(
        "assign to {} ({} in pool {}, holds {} of {}; rule {} v{}{})",
        a.rep,
        a.strategy,
        a.pool,
        a.holdings,
        a.capacity,
        a.rule,
        a.version,
        scoped(a.scope)
    );
    let mut facts = facts([
        ("holdings", a.holdings.to_string()),
        ("capacity", a.capacity.to_string()),
        ("strategy", a.strategy.to_string()),
        ("waiting_since_ms", a.waiting_since_ms.to_string()),
        ("rule_scope", scope_fact(a.scope)),
    ]);
    match a.skipped {
        Some(Skipped::RecalledFrom(prev)) => {
            explanation.push_str(&format!("; recalled from {prev}, who is skipped"));
            facts.insert("recalled_from".into(), prev.to_string());
        }
        Some(Skipped::PassedOver(prev)) => {
            explanation.push_str(&format!(
                "; {prev} declined it or let it expire, and is skipped"
            ));
            facts.insert("passed_over".into(), prev.to_string());
        }
        None => {}
    }
    if a.attempt > 0 {
        facts.insert("attempt".into(), a.attempt.to_string());
    }
    if let Some(e) = a.expires_at_ms {
        facts.insert("expires_at_ms".into(), e.to_string());
    }
    Explained { explanation, facts }
}

/// The facts of a deadline (the reminder before it and the recall at it).
pub(super) struct Deadline<'a> {
    pub owner: &'a str,
    /// What the rule measures ("no first follow-up", ...).
    pub what: &'a str,
    pub limit_ms: i64,
    pub at_ms: i64,
    pub assigned_at_ms: i64,
    pub last_follow_up_ms: Option<i64>,
    pub generation: u32,
    pub reminders_sent: usize,
    pub rule: &'a str,
    /// Where the assignment's rules come from.
    pub scope: &'a str,
    pub version: u32,
}

impl Deadline<'_> {
    fn facts(&self) -> BTreeMap<String, String> {
        let mut f = facts([
            ("assigned_at_ms", self.assigned_at_ms.to_string()),
            ("deadline_ms", self.at_ms.to_string()),
            ("generation", self.generation.to_string()),
            ("reminders_sent", self.reminders_sent.to_string()),
            ("rule_scope", scope_fact(self.scope)),
        ]);
        if let Some(last) = self.last_follow_up_ms {
            f.insert("last_follow_up_ms".into(), last.to_string());
        }
        f
    }
}

pub(super) fn remind(d: &Deadline<'_>) -> Explained {
    Explained {
        explanation: format!(
            "remind {}: {} for {} would recall the lead at {} (rule {} v{}{})",
            d.owner,
            d.what,
            human_ms(d.limit_ms),
            format_ms(d.at_ms),
            d.rule,
            d.version,
            scoped(d.scope)
        ),
        facts: d.facts(),
    }
}

/// An `UpdateScore`: the score, its parts and what moved them.
pub(super) fn score_update(c: &super::scoring::fold::ScoreCard, version: u32) -> Explained {
    let part = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    let model = if c.model_version.is_empty() {
        String::new()
    } else {
        format!(" by {}", c.model_version)
    };
    let mut why: Vec<String> = c
        .rules
        .iter()
        .map(|r| format!("{} {:+}", r.what, r.points.round()))
        .collect();
    if let Some(f) = c.features.first() {
        why.push(format!("model: {} {:+.2}", f.what, f.points));
    }
    let mut facts = facts([
        ("score", c.combined.to_string()),
        ("attribute_score", part(c.attribute)),
        ("behaviour_score", part(c.behaviour)),
        ("predictive_score", part(c.predictive)),
        ("model_version", c.model_version.clone()),
        ("version", version.to_string()),
    ]);
    for (i, r) in c.rules.iter().enumerate() {
        facts.insert(format!("rule.{i}"), format!("{} {:+}", r.what, r.points));
    }
    for (i, f) in c.features.iter().enumerate() {
        facts.insert(
            format!("feature.{i}"),
            format!("{} {:+.3}", f.what, f.points),
        );
    }
    Explained {
        explanation: format!(
            "score {} (attribute {}, behaviour {}, predictive {}{model}){}{} (rule scoring v{version})",
            c.combined,
            part(c.attribute),
            part(c.behaviour),
            part(c.predictive),
            if why.is_empty() { "" } else { ": " },
            why.join(", ")
        ),
        facts,
    }
}

/// `to_cold`: the recall reached `max_recalls` and sends the lead to the
/// cold pool.
pub(super) fn recall(
    d: &Deadline<'_>,
    to_pool: &str,
    recall_count_after: u32,
    to_cold: bool,
) -> Explained {
    let mut facts = d.facts();
    facts.insert("recall_count_after".into(), recall_count_after.to_string());
    if to_cold {
        facts.insert(FACT_TO_COLD_POOL.into(), "true".into());
    }
    Explained {
        explanation: format!(
            "recall from {} to pool {to_pool}: {} for {} (rule {} v{}{}; deadline {})",
            d.owner,
            d.what,
            human_ms(d.limit_ms),
            d.rule,
            d.version,
            scoped(d.scope),
            format_ms(d.at_ms)
        ),
        facts,
    }
}

/// The facts of a granted claim's `AssignLead`.
pub(super) struct ClaimGranted<'a> {
    pub rep: &'a str,
    pub pool: &'a str,
    /// Open leads the rep holds (pending assignments included) before it.
    pub holdings: u32,
    pub holdings_max: Option<u32>,
    /// Claims granted to the rep from this pool today, this one included.
    pub claims_today: u32,
    pub request_event_id: &'a str,
    pub expires_at_ms: Option<i64>,
    pub scope: &'a str,
    pub rule: &'a str,
    pub version: u32,
}

pub(super) fn claim_granted(c: &ClaimGranted<'_>) -> Explained {
    let limit = c
        .holdings_max
        .map_or(String::new(), |m| format!(" of at most {m}"));
    let mut facts = facts([
        ("holdings", c.holdings.to_string()),
        ("claims_today", c.claims_today.to_string()),
        ("request_event_id", c.request_event_id.to_string()),
        ("rule_scope", scope_fact(c.scope)),
    ]);
    if let Some(m) = c.holdings_max {
        facts.insert("holdings_max".into(), m.to_string());
    }
    if let Some(e) = c.expires_at_ms {
        facts.insert("expires_at_ms".into(), e.to_string());
    }
    Explained {
        explanation: format!(
            "assign to {} (claimed from pool {}, holds {}{limit}; rule {} v{}{})",
            c.rep,
            c.pool,
            c.holdings,
            c.rule,
            c.version,
            scoped(c.scope)
        ),
        facts,
    }
}

/// The facts of a `DeclineClaim`.
pub(super) struct ClaimDeclined<'a> {
    pub rep: &'a str,
    pub pool: &'a str,
    pub reason: &'a str,
    /// What the refusing rule saw, for people.
    pub detail: &'a str,
    pub rule: &'a str,
    pub version: u32,
}

pub(super) fn claim_declined(c: &ClaimDeclined<'_>) -> Explained {
    Explained {
        explanation: format!(
            "decline {}'s claim on pool {}: {} ({}; rule {} v{})",
            c.rep, c.pool, c.reason, c.detail, c.rule, c.version
        ),
        facts: facts([
            ("reason", c.reason.to_string()),
            ("detail", c.detail.to_string()),
        ]),
    }
}

/// The facts of a `CancelCommand` withdrawing an expired assignment.
pub(super) struct Withdraw<'a> {
    pub command_id: &'a str,
    pub rep: &'a str,
    pub commanded_at_ms: i64,
    pub expired_at_ms: i64,
    pub ttl_ms: i64,
    pub rule: &'a str,
    pub version: u32,
}

pub(super) fn withdraw(w: &Withdraw<'_>) -> Explained {
    Explained {
        explanation: format!(
            "withdraw {} (assign to {}): not carried out within {} of {}; \
             the lead is decided again without {} (rule {} v{})",
            w.command_id,
            w.rep,
            human_ms(w.ttl_ms),
            format_ms(w.commanded_at_ms),
            w.rep,
            w.rule,
            w.version
        ),
        facts: facts([
            ("cancelled_command_id", w.command_id.to_string()),
            ("commanded_at_ms", w.commanded_at_ms.to_string()),
            ("expired_at_ms", w.expired_at_ms.to_string()),
            ("ttl_ms", w.ttl_ms.to_string()),
        ]),
    }
}

/// A duration for humans: "72 h", "90 min", "2 s".
pub fn human_ms(ms: i64) -> String {
    const H: i64 = 3_600_000;
    const M: i64 = 60_000;
    if ms % H == 0 {
        format!("{} h", ms / H)
    } else if ms % M == 0 {
        format!("{} min", ms / M)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}
