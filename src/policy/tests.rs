//! Given/when/then tests of the allocation rules.

use super::*;
use crate::domain::*;

const POLICY: &str = r#"
version = 7
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [
  { id = "rep-1", capacity = 2 },
  { id = "rep-2", capacity = 2 },
  { id = "rep-3", capacity = 2, active = false },
]
[[pools]]
name = "open-sea"
kind = "claimable"
members = [{ id = "rep-1", capacity = 5 }]
"#;

struct Given {
    p: Processor,
    seq: u64,
    t: i64,
}

fn given() -> Given {
    Given {
        p: Processor::new(PolicyFile::parse(POLICY).unwrap()),
        seq: 0,
        t: 1_000,
    }
}

/// The event numbered `seq` of the policy tests (id `ev-SEQ`).
pub(super) fn event(seq: u64, at_ms: i64, lead: &str, body: EventBody) -> LeadEvent {
    build::event(&format!("ev-{seq}"), lead, body)
        .at(at_ms)
        .event()
}

impl Given {
    fn when(&mut self, lead: &str, body: EventBody) -> Vec<LeadCommand> {
        self.seq += 1;
        self.t += 1_000;
        self.p
            .handle(self.seq, &event(self.seq, self.t, lead, body))
    }

    fn created(&mut self, lead: &str, pool: &str) -> Vec<LeadCommand> {
        self.when(
            lead,
            build::created("", lead).channel("search").pool(pool).body(),
        )
    }

    fn assigned(&mut self, lead: &str, owner: &str) -> Vec<LeadCommand> {
        self.when(lead, build::assigned("", lead, owner).body())
    }

    fn recalled(&mut self, lead: &str, owner: &str) -> Vec<LeadCommand> {
        self.when(
            lead,
            EventBody::Recalled(LeadRecalled {
                previous_owner_id: owner.into(),
                reason: RecallReason::Stale,
                to_pool: String::new(),
                command_id: String::new(),
                rule_id: String::new(),
            }),
        )
    }
}

fn assignee(commands: &[LeadCommand]) -> Option<&str> {
    match commands {
        [LeadCommand {
            body: CommandBody::AssignLead { owner_id, .. },
            ..
        }] => Some(owner_id),
        [] => None,
        other => panic!("more than one command: {other:?}"),
    }
}

#[test]
fn a_lead_created_into_an_auto_assign_pool_is_assigned_round_robin_skipping_inactive_reps() {
    let mut g = given();
    let first = g.created("a", "inbound");
    assert_eq!(assignee(&first), Some("rep-1"));
    let c = &first[0];
    assert_eq!(c.rule_id, RULE_AUTO_ASSIGN);
    assert_eq!(c.rule_version, 7, "the policy version is recorded");
    assert_eq!(c.causation_event_id, "ev-1");
    assert_eq!(c.issued_at_ms, 2_000, "event time, not the clock");
    assert!(c.explanation.contains("rep-1"), "{}", c.explanation);
    assert_eq!(assignee(&g.created("b", "inbound")), Some("rep-2"));
    // rep-3 is inactive: the turn wraps to rep-1.
    assert_eq!(assignee(&g.created("c", "inbound")), Some("rep-1"));
}

#[test]
fn a_lead_in_a_claimable_or_unknown_pool_is_left_waiting() {
    let mut g = given();
    assert_eq!(assignee(&g.created("a", "open-sea")), None);
    assert_eq!(assignee(&g.created("b", "elsewhere")), None);
}

#[test]
fn capacity_counts_holdings_and_commanded_assignments() {
    let mut g = given();
    // Two commanded and not yet carried out, two carried out.
    for lead in ["a", "b", "c", "d"] {
        assert!(assignee(&g.created(lead, "inbound")).is_some());
    }
    g.assigned("a", "rep-1");
    g.assigned("b", "rep-2");
    // Both active reps hold 2 of 2 (held or pending): nobody is eligible.
    assert_eq!(assignee(&g.created("e", "inbound")), None);
}

#[test]
fn a_recalled_lead_is_reassigned_to_someone_other_than_the_previous_owner() {
    let mut g = given();
    assert_eq!(assignee(&g.created("a", "inbound")), Some("rep-1"));
    g.assigned("a", "rep-1");
    // Round-robin would give rep-2 next anyway; move it on to rep-1's turn.
    assert_eq!(assignee(&g.created("b", "inbound")), Some("rep-2"));
    g.assigned("b", "rep-2");
    let again = g.recalled("a", "rep-1");
    assert_eq!(assignee(&again), Some("rep-2"), "rep-1 is skipped");
    assert!(again[0].explanation.contains("recalled from rep-1"));
}

#[test]
fn the_same_decision_on_another_generation_gets_another_id_and_replays_get_the_same_ids() {
    let run = || {
        let mut g = given();
        let mut ids = Vec::new();
        ids.extend(g.created("a", "inbound"));
        g.assigned("a", "rep-1");
        ids.extend(g.recalled("a", "rep-1"));
        g.assigned("a", "rep-2");
        ids.extend(g.recalled("a", "rep-2"));
        ids.into_iter().map(|c| c.command_id).collect::<Vec<_>>()
    };
    let ids = run();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids, run(), "deterministic");
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 3, "one id per (lead, generation, rule)");
}

#[test]
fn the_state_round_trips_through_bytes() {
    let mut g = given();
    g.created("a", "inbound");
    let bytes = g.p.state_to_bytes();
    assert_eq!(&Processor::state_from_bytes(&bytes).unwrap(), g.p.state());
}

#[test]
fn invalid_policies_are_refused_with_a_reason() {
    let twice = "version = 1\n[[pools]]\nname = \"p\"\nkind = \"claimable\"\n[[pools]]\nname = \"p\"\nkind = \"claimable\"\n";
    assert!(PolicyFile::parse(twice)
        .unwrap_err()
        .to_string()
        .contains("defined twice"));
    let zero = "version = 1\n[[pools]]\nname = \"p\"\nkind = \"auto_assign\"\nmembers = [{ id = \"r\", capacity = 0 }]\n";
    assert!(PolicyFile::parse(zero)
        .unwrap_err()
        .to_string()
        .contains("capacity 0"));
    assert!(PolicyFile::parse("version = 1\nkind = 3\n").is_err());
}

impl Given {
    fn converted(&mut self, lead: &str, owner: &str) -> Vec<LeadCommand> {
        self.when(
            lead,
            EventBody::Converted(LeadConverted {
                owner_id: owner.into(),
                deal_value: Money::new(1000, Currency::parse("CNY").unwrap()),
                customer_id: format!("cust-{lead}"),
                expected_lifetime_value: None,
            }),
        )
    }
}

#[test]
fn leads_nobody_can_take_wait_in_order_and_go_out_as_capacity_frees() {
    let mut g = given();
    for (lead, rep) in [
        ("a", "rep-1"),
        ("b", "rep-2"),
        ("c", "rep-1"),
        ("d", "rep-2"),
    ] {
        assert_eq!(assignee(&g.created(lead, "inbound")), Some(rep));
        g.assigned(lead, rep);
    }
    // Full: e then f wait, in that order.
    assert_eq!(assignee(&g.created("e", "inbound")), None);
    assert_eq!(assignee(&g.created("f", "inbound")), None);
    assert_eq!(g.p.state().backlog["inbound"].len(), 2);
    // rep-2 converts one: the oldest waiting lead goes out, caused by the
    // conversion.
    let out = g.converted("b", "rep-2");
    assert_eq!(assignee(&out), Some("rep-2"));
    assert_eq!(out[0].lead_id, "e");
    assert_eq!(out[0].causation_event_id, format!("ev-{}", g.seq));
    // rep-1 loses a lead to a recall: f goes to rep-1; the recalled lead c
    // cannot go back to rep-1 and waits.
    let out = g.recalled("c", "rep-1");
    let leads: Vec<&str> = out.iter().map(|c| c.lead_id.as_str()).collect();
    assert_eq!(leads, vec!["f"], "{out:?}");
    assert_eq!(
        g.p.state().backlog["inbound"]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>(),
        vec!["c"]
    );
}

#[test]
fn the_bench_policy_of_the_readme_allocates_the_simulators_reps_and_nothing_else() {
    let p = PolicyFile::parse(include_str!("../../examples/policy-allocation-only.toml")).unwrap();
    let members: usize = p.pools.iter().map(|pool| pool.members.len()).sum();
    assert_eq!(members, 32);
    assert_eq!(p.rules, Default::default(), "no deadline rules");
    assert!(p.scoring.is_off());
}

#[test]
fn the_documented_sample_policy_is_valid() {
    let p = PolicyFile::parse(include_str!("../../deploy/policy.toml")).unwrap();
    assert_eq!(p.pools.len(), 5);
    assert_eq!(p.rules.cold_pool.as_deref(), Some("cold"));
    assert!(p.pool("enterprise").unwrap().calendar.is_some());
    // The key-accounts pool's own rules, written in days and hours.
    let referral = LeadFacts {
        channel: "referral",
        score: Some(90),
        ..LeadFacts::default()
    };
    let (r, scope) = p.lead_rules("key-accounts", &referral);
    assert_eq!(r.first_follow_up_sla_ms, Some(4 * 3_600_000));
    assert_eq!(r.stale_after_ms, Some(14 * 86_400_000));
    assert_eq!(
        scope,
        "pool key-accounts when channel in [referral, partner], score >= 80"
    );
    let (r, scope) = p.lead_rules("general", &referral);
    assert_eq!(r.first_follow_up_sla_ms, Some(86_400_000));
    assert_eq!(scope, "tenant");
}
