//! Backtests: replay the log's history under candidate policies and count
//! what each would have commanded. Pure: it folds events into processors
//! and tallies their commands; reading the log is the caller's job.
//!
//! A policy with `[scoring]` scores the history itself: the engine's own
//! scores in the log (of the policy that ran) are not its, and each score
//! it announces reaches it right after the event that moved it, as if every
//! event were a batch of its own (live, one batch's last score of a lead is
//! published). Its scores then drive `score_priority` and the `when`
//! clauses by score as they would live.
//!
//! The history stays what it was (the events are facts): a backtest answers
//! "on this history, what would this policy have asked for, and when?" —
//! recalls by reason, reassignments, reminders, SLA breaches, assignments
//! per rep and how fairly they spread over capacity. Deadlines fire on event
//! time, so a backtest is deterministic.

use crate::domain::{CommandBody, LeadCommand, LeadEvent};
use crate::policy::{Policies, PolicyFile, RULE_FIRST_FOLLOW_UP, SCORE_PRODUCER};

/// How much room a scoring policy's own scores get between two events of
/// the log (see [`run`]).
const SEQ_SCALE: u64 = 4;
use serde::Serialize;
use std::collections::BTreeMap;

/// What one policy would have commanded.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub policy_version: u32,
    pub commands: u64,
    pub assignments: u64,
    /// Assignments of leads that had been recalled (re-allocations).
    pub reassignments: u64,
    pub reminders: u64,
    /// Scores the policy's own scoring would have published
    /// (`UpdateScore`), when it scores.
    pub score_updates: u64,
    pub recalls: u64,
    pub recalls_by_reason: BTreeMap<String, u64>,
    /// Recalls for missing the first-follow-up SLA.
    pub sla_breaches: u64,
    /// Leads sent to the cold pool.
    pub to_cold_pool: u64,
    /// Assignments withdrawn because the CRM did not carry them out within
    /// `assign_command_ttl_ms`.
    pub expired_assignments: u64,
    /// Claims from claimable pools granted (an `AssignLead` of rule
    /// `claim`; also counted in `assignments`).
    pub claims_granted: u64,
    /// Claims declined, by reason code.
    pub claims_declined_by_reason: BTreeMap<String, u64>,
    pub assignments_by_rep: BTreeMap<String, u64>,
    /// Gini coefficient of assignments per unit of capacity over the active
    /// members of auto-assign pools: 0 is perfectly even, 1 is all to one.
    pub fairness_gini: f64,
    /// Leads still waiting in a backlog at the end.
    pub backlog_at_end: u64,
    /// On a simulated history, with the simulator's behaviour model: the
    /// expected conversions had each lead been worked by the reps this
    /// policy assigned it to (1 − Π(1 − p) over its assignments, p from the
    /// lead's channel and score and the rep's skill and habits).
    pub expected_conversions: Option<f64>,
}

impl Outcome {
    /// Adds the outcome of the same policy over another partition store's
    /// history (disjoint tenants, so disjoint leads and reps): counts add
    /// up, and the fairness is computed again over every rep.
    pub fn merge(&mut self, o: &Outcome, policy: &PolicyFile) {
        self.commands += o.commands;
        self.assignments += o.assignments;
        self.reassignments += o.reassignments;
        self.reminders += o.reminders;
        self.score_updates += o.score_updates;
        self.recalls += o.recalls;
        for (reason, n) in &o.recalls_by_reason {
            *self.recalls_by_reason.entry(reason.clone()).or_default() += n;
        }
        self.sla_breaches += o.sla_breaches;
        self.to_cold_pool += o.to_cold_pool;
        self.expired_assignments += o.expired_assignments;
        self.claims_granted += o.claims_granted;
        for (reason, n) in &o.claims_declined_by_reason {
            *self
                .claims_declined_by_reason
                .entry(reason.clone())
                .or_default() += n;
        }
        for (rep, n) in &o.assignments_by_rep {
            *self.assignments_by_rep.entry(rep.clone()).or_default() += n;
        }
        self.backlog_at_end += o.backlog_at_end;
        self.expected_conversions = match (self.expected_conversions, o.expected_conversions) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.fairness_gini = gini_per_capacity(&self.assignments_by_rep, policy);
    }
}

/// What the estimate needs to know about a lead.
#[derive(Default)]
struct LeadFacts {
    channel: Option<usize>,
    score: u32,
    /// Probability that no assignment so far converts it.
    p_none: f64,
}

/// [`run`] over events read from a log: the first read error stops the
/// fold and is returned instead of outcomes, so a history cut short never
/// passes for the whole one.
pub fn run_checked<E>(
    policies: &[PolicyFile],
    events: impl Iterator<Item = Result<(u64, LeadEvent), E>>,
    ticks: &[(u64, i64)],
    window: (Option<i64>, Option<i64>),
    model: Option<&crate::sim::model::Model>,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Outcome>, E> {
    let mut failed = None;
    let events = events.map_while(|r| match r {
        Ok(e) => Some(e),
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    let outcomes = run(
        policies,
        events,
        ticks,
        window,
        model,
        progress,
        &mut |_, _| {},
    );
    match failed {
        Some(e) => Err(e),
        None => Ok(outcomes),
    }
}

/// Runs every policy over the same events, once. `window` limits what is
/// counted to commands issued in `[from, to)` (the fold always starts at the
/// beginning, so state is right when the window opens). `ticks` are the
/// wall-clock ticks recorded in the log, as (after event sequence, time)
/// in order (see `replay::recorded_ticks`): each policy's time moves where
/// the live one's did, so a backtest of the policy in force decides what
/// the live run decided. `on_command` sees every command decided (policy
/// index, command), in or out of the window.
pub fn run(
    policies: &[PolicyFile],
    events: impl Iterator<Item = (u64, LeadEvent)>,
    ticks: &[(u64, i64)],
    window: (Option<i64>, Option<i64>),
    model: Option<&crate::sim::model::Model>,
    progress: &mut dyn FnMut(u64),
    on_command: &mut dyn FnMut(usize, &LeadCommand),
) -> Vec<Outcome> {
    use crate::domain::EventBody;
    let mut facts: Vec<std::collections::HashMap<String, LeadFacts>> =
        policies.iter().map(|_| Default::default()).collect();
    let channel_index: std::collections::HashMap<&str, usize> = model
        .map(|m| {
            m.channels
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name, i))
                .collect()
        })
        .unwrap_or_default();
    let rep_index: std::collections::HashMap<&str, usize> = model
        .map(|m| {
            m.reps
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.as_str(), i))
                .collect()
        })
        .unwrap_or_default();
    let mut processors: Vec<Policies> = policies.iter().cloned().map(Policies::new).collect();
    // A policy that scores leads scores the history itself: the engine's
    // own scores in the log (of the policy that ran) are not its, and its
    // scores reach it as they would live, right after the event that
    // moved them. Those need sequence numbers of their own between the
    // log's, so when any policy scores every sequence number is doubled
    // (the ticks still compare with the log's).
    let scores_own: Vec<bool> = policies.iter().map(PolicyFile::scores).collect();
    let seq_scale: u64 = if scores_own.contains(&true) {
        SEQ_SCALE
    } else {
        1
    };
    let mut outcomes: Vec<Outcome> = policies
        .iter()
        .map(|p| Outcome {
            policy_version: p.version,
            ..Outcome::default()
        })
        .collect();
    let in_window = |t: i64| window.0.is_none_or(|f| t >= f) && window.1.is_none_or(|u| t < u);
    let mut last_time = i64::MIN;
    let mut ticks = ticks.iter().peekable();
    let advance = |processors: &mut [Policies],
                   outcomes: &mut [Outcome],
                   to_ms: i64,
                   on_command: &mut dyn FnMut(usize, &LeadCommand)| {
        for (i, (p, o)) in processors.iter_mut().zip(outcomes.iter_mut()).enumerate() {
            for c in p.advance(to_ms) {
                on_command(i, &c);
                if in_window(c.issued_at_ms) {
                    tally(o, &c);
                }
            }
        }
    };
    for (seq, event) in events {
        while let Some((_, at)) = ticks.next_if(|(after, _)| *after < seq) {
            advance(&mut processors, &mut outcomes, *at, on_command);
        }
        last_time = last_time.max(event.occurred_at_ms);
        for (i, ((p, o), f)) in processors
            .iter_mut()
            .zip(outcomes.iter_mut())
            .zip(facts.iter_mut())
            .enumerate()
        {
            if model.is_some() {
                match &event.body {
                    // The ground truth is the history's own scores, not
                    // the engine's.
                    EventBody::Scored(_) if event.producer == SCORE_PRODUCER => {}
                    EventBody::Created(c) => {
                        f.insert(
                            event.lead_id.clone(),
                            LeadFacts {
                                channel: channel_index.get(c.channel.as_str()).copied(),
                                score: 0,
                                p_none: 1.0,
                            },
                        );
                    }
                    EventBody::Scored(s) => {
                        if let Some(l) = f.get_mut(&event.lead_id) {
                            l.score = s.score;
                        }
                    }
                    _ => {}
                }
            }
            if scores_own[i]
                && event.producer == SCORE_PRODUCER
                && matches!(event.body, EventBody::Scored(_))
            {
                continue;
            }
            let mut decided = p.handle(seq * seq_scale, &event);
            if scores_own[i] {
                // One event moves one lead's score: at most one to publish.
                for (k, scored) in p.scores_to_publish().into_iter().enumerate() {
                    let k = k as u64 + 1;
                    if k < seq_scale {
                        decided.extend(p.handle(seq * seq_scale + k, &scored));
                    }
                }
            }
            for c in decided {
                on_command(i, &c);
                if in_window(c.issued_at_ms) {
                    tally(o, &c);
                    if let (Some(m), CommandBody::AssignLead { owner_id, .. }) = (model, &c.body) {
                        let lead = f.get_mut(&c.lead_id);
                        if let (Some(l), Some(&rep)) = (lead, rep_index.get(owner_id.as_str())) {
                            if let Some(ch) = l.channel {
                                let habit = m.reps[rep].first_follow_up_mean_ms as i64;
                                let p = m.conversion_probability(ch, l.score, rep, habit);
                                l.p_none *= 1.0 - p;
                            }
                        }
                    }
                }
            }
        }
        if seq % 100_000 == 0 {
            progress(seq);
        }
    }
    for (_, at) in ticks {
        advance(&mut processors, &mut outcomes, *at, on_command);
    }
    // Deadlines due by the end of the history still count.
    advance(&mut processors, &mut outcomes, last_time, on_command);
    for (p, o) in processors.iter_mut().zip(outcomes.iter_mut()) {
        o.backlog_at_end = p
            .tenants()
            .flat_map(|(_, t)| t.state().backlog.values())
            .map(|b| b.len() as u64)
            .sum();
        o.fairness_gini = gini_per_capacity(&o.assignments_by_rep, p.policy());
    }
    if model.is_some() {
        for (o, f) in outcomes.iter_mut().zip(&facts) {
            o.expected_conversions = Some(f.values().map(|l| 1.0 - l.p_none).sum());
        }
    }
    outcomes
}

fn tally(o: &mut Outcome, c: &LeadCommand) {
    o.commands += 1;
    match &c.body {
        CommandBody::AssignLead { owner_id, .. } => {
            o.assignments += 1;
            if c.rule_id == crate::policy::RULE_CLAIM {
                o.claims_granted += 1;
            }
            if c.facts.contains_key("recalled_from") {
                o.reassignments += 1;
            }
            *o.assignments_by_rep
                .entry(rep_key(&c.tenant_id, owner_id))
                .or_default() += 1;
        }
        CommandBody::RemindFollowUp { .. } => o.reminders += 1,
        CommandBody::RecallLead { reason, .. } => {
            o.recalls += 1;
            *o.recalls_by_reason
                .entry(reason.as_str().to_string())
                .or_default() += 1;
            if c.rule_id == RULE_FIRST_FOLLOW_UP {
                o.sla_breaches += 1;
            }
            // The policy says so itself: the cold pool may be a pool's
            // own rule, or a `when` clause's.
            if c.facts.contains_key(crate::policy::FACT_TO_COLD_POOL) {
                o.to_cold_pool += 1;
            }
        }
        CommandBody::CancelCommand { .. } => o.expired_assignments += 1,
        CommandBody::MoveLead { .. } => {}
        CommandBody::UpdateScore { .. } => o.score_updates += 1,
        CommandBody::DeclineClaim { reason, .. } => {
            *o.claims_declined_by_reason
                .entry(reason.clone())
                .or_default() += 1;
        }
    }
}

/// A rep's key in the outcome's tables: its id, prefixed with its tenant
/// (`tenant/rep`) outside the default tenant, since a rep id is unique only
/// within its tenant.
pub fn rep_key(tenant: &str, rep: &str) -> String {
    if tenant.is_empty() {
        rep.to_string()
    } else {
        format!("{tenant}/{rep}")
    }
}

/// Gini of assignments per unit of capacity, over the active members of the
/// auto-assign pools of every tenant (a rep in several pools counts its
/// largest capacity).
pub fn gini_per_capacity(assignments: &BTreeMap<String, u64>, policy: &PolicyFile) -> f64 {
    let mut capacity: BTreeMap<String, u32> = BTreeMap::new();
    let tables = std::iter::once(("", &policy.pools))
        .chain(policy.tenants.iter().map(|(t, p)| (t.as_str(), &p.pools)));
    for (tenant, pools) in tables {
        for pool in pools {
            if pool.kind != crate::policy::PoolKind::AutoAssign {
                continue;
            }
            for m in pool.members.iter().filter(|m| m.active) {
                let c = capacity.entry(rep_key(tenant, &m.id)).or_default();
                *c = (*c).max(m.capacity);
            }
        }
    }
    let values: Vec<f64> = capacity
        .iter()
        .map(|(rep, cap)| assignments.get(rep).copied().unwrap_or(0) as f64 / f64::from(*cap))
        .collect();
    gini(&values)
}

/// The Gini coefficient of non-negative values (0 for none or all zero).
pub fn gini(values: &[f64]) -> f64 {
    let n = values.len();
    let total: f64 = values.iter().sum();
    if n == 0 || total <= 0.0 {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    // G = sum_i (2i - n - 1) x_i / (n * sum x), i from 1.
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| (2.0 * (i as f64 + 1.0) - n as f64 - 1.0) * x)
        .sum();
    weighted / (n as f64 * total)
}

/// A side-by-side terminal table.
pub fn table(names: &[String], outcomes: &[Outcome]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = vec![
        (
            "policy version".into(),
            outcomes
                .iter()
                .map(|o| o.policy_version.to_string())
                .collect(),
        ),
        (
            "commands".into(),
            outcomes.iter().map(|o| o.commands.to_string()).collect(),
        ),
        (
            "assignments".into(),
            outcomes.iter().map(|o| o.assignments.to_string()).collect(),
        ),
        (
            "  of which reassignments".into(),
            outcomes
                .iter()
                .map(|o| o.reassignments.to_string())
                .collect(),
        ),
        (
            "reminders".into(),
            outcomes.iter().map(|o| o.reminders.to_string()).collect(),
        ),
        (
            "recalls".into(),
            outcomes.iter().map(|o| o.recalls.to_string()).collect(),
        ),
    ];
    let mut reasons: Vec<&String> = outcomes
        .iter()
        .flat_map(|o| o.recalls_by_reason.keys())
        .collect();
    reasons.sort();
    reasons.dedup();
    for r in reasons {
        rows.push((
            format!("  {r}"),
            outcomes
                .iter()
                .map(|o| o.recalls_by_reason.get(r).copied().unwrap_or(0).to_string())
                .collect(),
        ));
    }
    if outcomes.iter().any(|o| o.score_updates > 0) {
        rows.push((
            "scores published".into(),
            outcomes
                .iter()
                .map(|o| o.score_updates.to_string())
                .collect(),
        ));
    }
    rows.push((
        "SLA breaches (first follow-up)".into(),
        outcomes
            .iter()
            .map(|o| o.sla_breaches.to_string())
            .collect(),
    ));
    rows.push((
        "to the cold pool".into(),
        outcomes
            .iter()
            .map(|o| o.to_cold_pool.to_string())
            .collect(),
    ));
    if outcomes
        .iter()
        .any(|o| o.claims_granted > 0 || !o.claims_declined_by_reason.is_empty())
    {
        rows.push((
            "claims granted".into(),
            outcomes
                .iter()
                .map(|o| o.claims_granted.to_string())
                .collect(),
        ));
        let mut reasons: Vec<&String> = outcomes
            .iter()
            .flat_map(|o| o.claims_declined_by_reason.keys())
            .collect();
        reasons.sort();
        reasons.dedup();
        for r in reasons {
            rows.push((
                format!("claims declined: {r}"),
                outcomes
                    .iter()
                    .map(|o| {
                        o.claims_declined_by_reason
                            .get(r)
                            .copied()
                            .unwrap_or(0)
                            .to_string()
                    })
                    .collect(),
            ));
        }
    }
    rows.push((
        "waiting in a backlog at the end".into(),
        outcomes
            .iter()
            .map(|o| o.backlog_at_end.to_string())
            .collect(),
    ));
    rows.push((
        "fairness: Gini of assignments/capacity".into(),
        outcomes
            .iter()
            .map(|o| format!("{:.3}", o.fairness_gini))
            .collect(),
    ));
    if outcomes.iter().any(|o| o.expected_conversions.is_some()) {
        rows.push((
            "expected conversions (sim model)".into(),
            outcomes
                .iter()
                .map(|o| {
                    o.expected_conversions
                        .map_or("-".into(), |e| format!("{e:.1}"))
                })
                .collect(),
        ));
    }
    let mut reps: Vec<&String> = outcomes
        .iter()
        .flat_map(|o| o.assignments_by_rep.keys())
        .collect();
    reps.sort();
    reps.dedup();
    for rep in reps {
        rows.push((
            format!("assignments to {rep}"),
            outcomes
                .iter()
                .map(|o| {
                    o.assignments_by_rep
                        .get(rep)
                        .copied()
                        .unwrap_or(0)
                        .to_string()
                })
                .collect(),
        ));
    }
    let label_w = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let col_w: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            rows.iter()
                .map(|(_, v)| v[i].len())
                .max()
                .unwrap_or(0)
                .max(n.len())
        })
        .collect();
    let mut out = format!("{:label_w$}", "");
    for (n, w) in names.iter().zip(&col_w) {
        out.push_str(&format!("  {n:>w$}"));
    }
    out.push('\n');
    for (label, values) in rows {
        out.push_str(&format!("{label:label_w$}"));
        for (v, w) in values.iter().zip(&col_w) {
            out.push_str(&format!("  {v:>w$}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_is_zero_for_equal_shares_and_grows_with_concentration() {
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(gini(&[0.0, 0.0]), 0.0);
        assert!((gini(&[1.0, 1.0, 1.0]) - 0.0).abs() < 1e-12);
        assert!((gini(&[0.0, 0.0, 0.0, 4.0]) - 0.75).abs() < 1e-12);
        assert!(gini(&[1.0, 2.0, 3.0]) > 0.0 && gini(&[1.0, 2.0, 3.0]) < gini(&[0.0, 0.0, 6.0]));
    }

    #[test]
    fn a_read_error_fails_the_backtest_instead_of_counting_a_cut_history() {
        use crate::domain::{build, Currency, Money};
        // Given a history whose second read fails.
        let policy = PolicyFile::parse(
            "version = 1\n[[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\nmembers = [{ id = \"rep-1\", capacity = 2 }]\n",
        )
        .unwrap();
        let created = build::created("e1", "L1")
            .at(1_000)
            .channel("search")
            .pool("inbound")
            .cost(Money::new(100, Currency::parse("USD").unwrap()))
            .event();
        let second = LeadEvent {
            event_id: "e2".into(),
            lead_id: "L2".into(),
            ..created.clone()
        };
        let history = vec![Ok((1, created)), Err("page 2 unreadable"), Ok((2, second))];
        // When it is backtested, then the error comes back, not outcomes.
        let result = run_checked(
            std::slice::from_ref(&policy),
            history.clone().into_iter(),
            &[],
            (None, None),
            None,
            &mut |_| {},
        );
        assert_eq!(result, Err("page 2 unreadable"));
        // And the same history without the error is counted whole.
        let whole = run_checked(
            std::slice::from_ref(&policy),
            history.into_iter().filter(Result::is_ok),
            &[],
            (None, None),
            None,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(whole[0].assignments, 2);
    }
}
