//! Given/when/then tests of claim arbitration: first come first served in
//! log order, the pool's claim rules, counting, and ids.

use super::deadline_tests::World;
use super::*;
use crate::domain::*;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
const T0: i64 = 1_790_000_000_000;

/// A public pool whose members may claim 2 leads a day, hold at most 3,
/// and not claim back a lead they lost within 3 days; claims not carried
/// out within an hour expire. `inbound` is allocated by the engine.
const SEA: &str = r#"
version = 7
[rules]
assign_command_ttl = "1h"
[[pools]]
name = "open-sea"
kind = "claimable"
members = [{ id = "rep-1", capacity = 10 }, { id = "rep-2", capacity = 10 }]
[pools.claim]
members_only = true
holdings_max = 3
claims_per_day_max = 2
reclaim_after = "3d"
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-3", capacity = 10 }]
"#;

fn world() -> World {
    World::with(PolicyFile::parse(SEA).unwrap())
}

fn create(w: &mut World, t: i64, lead: &str, pool: &str) {
    w.at(
        t,
        lead,
        build::created("", lead).channel("ads").pool(pool).body(),
    );
}

/// The policy's answer to `rep`'s claim (deadlines due by `t` may fire
/// beside it).
fn claim(w: &mut World, t: i64, lead: &str, rep: &str) -> LeadCommand {
    let out = w.at(
        t,
        lead,
        EventBody::ClaimRequested(LeadClaimRequested { rep_id: rep.into() }),
    );
    let answers: Vec<LeadCommand> = out
        .into_iter()
        .filter(|c| c.rule_id == RULE_CLAIM)
        .collect();
    assert_eq!(answers.len(), 1, "one answer per claim: {answers:?}");
    answers.into_iter().next().unwrap()
}

/// The CRM carries out a granted claim.
fn carry_out(w: &mut World, t: i64, granted: &LeadCommand) {
    let CommandBody::AssignLead { owner_id, .. } = &granted.body else {
        panic!("not granted: {granted:?}");
    };
    w.at(
        t,
        &granted.lead_id,
        build::assigned("", &granted.lead_id, owner_id)
            .command(&granted.command_id)
            .method(AssignmentMethod::Claim)
            .body(),
    );
}

/// "granted" or the decline's reason code.
fn answer(c: &LeadCommand) -> String {
    match &c.body {
        CommandBody::AssignLead { owner_id, pool } => {
            assert_eq!(c.rule_id, RULE_CLAIM);
            format!("granted to {owner_id} from {pool}")
        }
        CommandBody::DeclineClaim {
            reason, owner_id, ..
        } => format!("declined {owner_id}: {reason}"),
        other => panic!("not an answer to a claim: {other:?}"),
    }
}

#[test]
fn two_reps_racing_for_one_lead_the_first_in_the_log_wins() {
    let mut w = world();
    create(&mut w, T0, "a", "open-sea");
    let first = claim(&mut w, T0 + 1, "a", "rep-2");
    let second = claim(&mut w, T0 + 1, "a", "rep-1");
    assert_eq!(answer(&first), "granted to rep-2 from open-sea");
    assert_eq!(answer(&second), "declined rep-1: already_claimed");
    assert!(
        second.explanation.starts_with(&format!(
            "decline rep-1's claim on pool open-sea: already_claimed (promised to rep-2 by {}",
            first.command_id
        )),
        "{}",
        second.explanation
    );
    assert!(
        matches!(&second.body, CommandBody::DeclineClaim { request_event_id, .. } if *request_event_id == second.causation_event_id)
    );
    // Once the CRM carries it out, the lead is held: not in the pool.
    w.at(
        T0 + 2,
        "a",
        build::assigned("", "a", "rep-2")
            .command(&first.command_id)
            .body(),
    );
    let third = claim(&mut w, T0 + 3, "a", "rep-1");
    assert_eq!(answer(&third), "declined rep-1: not_in_pool");
    assert_eq!(third.facts["detail"], "held by rep-2");
    // Counted per (rep, pool).
    let counts = w.p.claim_counts();
    let rep1 = &counts[&("rep-1".to_string(), "open-sea".to_string())];
    assert_eq!(rep1.granted, 0);
    assert_eq!(rep1.declined["already_claimed"], 1);
    assert_eq!(rep1.declined["not_in_pool"], 1);
    assert_eq!(
        counts[&("rep-2".to_string(), "open-sea".to_string())].granted,
        1
    );
}

#[test]
fn each_request_gets_its_own_answer_id_and_a_replay_the_same_ones() {
    let run = || {
        let mut w = world();
        create(&mut w, T0, "a", "open-sea");
        let ids: Vec<String> = [("rep-1", 1), ("rep-2", 2), ("rep-2", 3), ("outsider", 4)]
            .iter()
            .map(|(rep, dt)| claim(&mut w, T0 + dt, "a", rep).command_id)
            .collect();
        ids
    };
    let ids = run();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "two identical declines are two answers: {ids:?}"
    );
    assert_eq!(ids, run());
}

#[test]
fn the_pools_claim_rules_decline_with_their_reason() {
    let mut w = world();
    for lead in ["a", "b", "c", "d", "e"] {
        create(&mut w, T0, lead, "open-sea");
    }
    create(&mut w, T0, "i", "inbound");
    // Only members may claim; an auto_assign pool is not claimed from.
    assert_eq!(
        answer(&claim(&mut w, T0 + 1, "a", "rep-9")),
        "declined rep-9: not_a_member"
    );
    assert_eq!(
        answer(&claim(&mut w, T0 + 1, "i", "rep-1")),
        "declined rep-1: not_claimable"
    );
    // Two claims a day (carried out by the CRM).
    for (dt, lead) in [(2, "a"), (3, "b")] {
        let granted = claim(&mut w, T0 + dt, lead, "rep-1");
        assert_eq!(answer(&granted), "granted to rep-1 from open-sea");
        carry_out(&mut w, T0 + dt, &granted);
    }
    let third = claim(&mut w, T0 + 4, "c", "rep-1");
    assert_eq!(answer(&third), "declined rep-1: claims_per_day_max");
    assert_eq!(
        third.facts["detail"],
        "2 claims from open-sea today, at most 2"
    );
    // The next day: a third lead (pending, not carried out yet: it counts
    // toward holdings too), then holdings at the pool's maximum of 3.
    let next_day = (T0 / DAY + 1) * DAY;
    assert_eq!(
        answer(&claim(&mut w, next_day, "c", "rep-1")),
        "granted to rep-1 from open-sea"
    );
    let full = claim(&mut w, next_day + 1, "d", "rep-1");
    assert_eq!(answer(&full), "declined rep-1: holdings_max");
    assert_eq!(
        full.facts["detail"],
        "holds 3 open leads, at most 3 to claim"
    );
}

#[test]
fn an_unarbitrated_pool_is_not_claimable() {
    let mut w = world();
    // A pool the policy does not list.
    create(&mut w, T0, "x", "somewhere");
    let c = claim(&mut w, T0 + 1, "x", "rep-1");
    assert_eq!(answer(&c), "declined rep-1: not_claimable");
    assert!(
        c.explanation
            .contains("pool somewhere is not a claimable pool of policy v7"),
        "{}",
        c.explanation
    );
}

#[test]
fn a_rep_may_not_claim_back_a_lead_they_lost_too_recently() {
    let mut w = world();
    create(&mut w, T0, "a", "open-sea");
    let granted = claim(&mut w, T0 + 1, "a", "rep-1");
    w.at(
        T0 + 2,
        "a",
        build::assigned("", "a", "rep-1")
            .command(&granted.command_id)
            .body(),
    );
    // rep-1 releases it back to the pool.
    w.at(
        T0 + H,
        "a",
        build::recalled("", "a", "rep-1")
            .pool("open-sea")
            .reason(RecallReason::Released)
            .body(),
    );
    let back = claim(&mut w, T0 + 2 * H, "a", "rep-1");
    assert_eq!(answer(&back), "declined rep-1: reclaim_too_soon");
    assert!(
        back.facts["detail"].starts_with("lost it at "),
        "{:?}",
        back.facts
    );
    // Three days after the loss rep-1 may; rep-2 may at once (here: later,
    // after rep-1's declined request).
    assert_eq!(
        answer(&claim(&mut w, T0 + H + 3 * DAY - 1, "a", "rep-1")),
        "declined rep-1: reclaim_too_soon"
    );
    assert_eq!(
        answer(&claim(&mut w, T0 + H + 3 * DAY, "a", "rep-1")),
        "granted to rep-1 from open-sea"
    );
}

#[test]
fn a_claim_not_carried_out_expires_and_frees_the_lead_for_the_next_claim() {
    let mut w = world();
    create(&mut w, T0, "a", "open-sea");
    let granted = claim(&mut w, T0, "a", "rep-1");
    assert_eq!(granted.facts["expires_at_ms"], (T0 + H).to_string());
    let expired = w.p.advance(T0 + H);
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert!(
        matches!(&expired[0].body, CommandBody::CancelCommand { command_id, .. } if *command_id == granted.command_id)
    );
    // Nobody is allocated from a claimable pool; the lead waits for the
    // next claim, which another rep wins.
    assert_eq!(
        answer(&claim(&mut w, T0 + H + 1, "a", "rep-2")),
        "granted to rep-2 from open-sea"
    );
}

#[test]
fn claim_rules_are_for_claimable_pools() {
    let err = PolicyFile::parse(
        "version = 1\n[[pools]]\nname = \"p\"\nkind = \"auto_assign\"\n[pools.claim]\nholdings_max = 3\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pool p: claim rules apply to claimable pools only"),
        "{err}"
    );
    let err = PolicyFile::parse(
        "version = 1\n[[pools]]\nname = \"p\"\nkind = \"claimable\"\n[pools.claim]\nclaims_per_day_max = 0\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("must be at least 1"), "{err}");
}
