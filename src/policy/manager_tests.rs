//! Given/when/then tests of managers' actions: assign and transfer,
//! recall and move, a rep's capacity and active flag; refusals; ids.

use super::deadline_tests::World;
use super::*;
use crate::domain::*;

const H: i64 = 3_600_000;
const T0: i64 = 1_790_000_000_000;

const POLICY: &str = r#"
version = 5
[rules]
first_follow_up_sla = "2h"
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 1 }, { id = "rep-2", capacity = 1 }]
[[pools]]
name = "key-accounts"
kind = "claimable"
"#;

fn world() -> World {
    World::with(PolicyFile::parse(POLICY).unwrap())
}

/// Checks, then carries out, an action at log key (`n`, 0).
fn act(w: &mut World, n: u64, action: ManagerAction) -> Result<Vec<LeadCommand>, String> {
    w.p.check_manager(&action)?;
    Ok(w.p.manage((n, 0), &action, "alice"))
}

fn assign(lead: &str, rep: &str) -> ManagerAction {
    ManagerAction::AssignLead {
        lead_id: lead.into(),
        rep: rep.into(),
    }
}

#[test]
fn a_manager_transfers_a_held_lead_and_the_explanation_names_them() {
    let mut w = world();
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    let out = act(&mut w, 2, assign("a", "rep-2")).unwrap();
    assert_eq!(out.len(), 1);
    let c = &out[0];
    assert!(
        matches!(&c.body, CommandBody::AssignLead { owner_id, pool } if owner_id == "rep-2" && pool == "inbound")
    );
    assert_eq!(c.rule_id, RULE_MANAGER);
    assert_eq!(c.facts["actor"], "alice");
    assert_eq!(c.facts["transfer_from"], "rep-1");
    assert_eq!(
        c.explanation,
        "assign to rep-2 (by manager alice in pool inbound, transfer from rep-1; holds 0 of 1; rule manager v5)"
    );
    // The CRM carries it out: rep-2's deadlines run from then.
    w.at(
        T0 + H,
        "a",
        build::assigned("", "a", "rep-2")
            .command(&c.command_id)
            .body(),
    );
    let fired = w.p.advance(T0 + 3 * H);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].body.owner_id(), "rep-2");
}

#[test]
fn a_managers_assignment_overrides_a_pending_one_and_withdraws_it() {
    let mut w = world();
    let auto = w.created(T0, "a");
    assert_eq!(auto[0].body.owner_id(), "rep-1");
    let out = act(&mut w, 1, assign("a", "rep-2")).unwrap();
    let kinds: Vec<(&str, &str)> = out
        .iter()
        .map(|c| (c.body.type_name(), c.body.owner_id()))
        .collect();
    assert_eq!(
        kinds,
        vec![("cancel_command", "rep-1"), ("assign_lead", "rep-2")]
    );
    assert!(
        matches!(&out[0].body, CommandBody::CancelCommand { command_id, reason, .. } if *command_id == auto[0].command_id && reason == "overridden")
    );
    // rep-1's slot is free again: the next lead goes to rep-1.
    let next = w.created(T0 + 1, "b");
    assert_eq!(next[0].body.owner_id(), "rep-1");
}

#[test]
fn a_manager_moves_a_held_lead_to_another_pool_and_its_deadlines_stop() {
    let mut w = world();
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    let action = ManagerAction::RecallLead {
        lead_id: "a".into(),
        to_pool: Some("key-accounts".into()),
    };
    let out = act(&mut w, 2, action.clone()).unwrap();
    assert!(
        matches!(&out[0].body, CommandBody::RecallLead { owner_id, reason: RecallReason::Manual, to_pool } if owner_id == "rep-1" && to_pool == "key-accounts")
    );
    assert_eq!(
        out[0].explanation,
        "recall from rep-1 to pool key-accounts (by manager alice, moving it from pool inbound; rule manager v5)"
    );
    assert!(
        w.p.advance(T0 + 10 * H).is_empty(),
        "the SLA's recall is not commanded again"
    );
    assert_eq!(
        act(&mut w, 3, action).unwrap_err(),
        "lead a's recall is already commanded"
    );
}

#[test]
fn a_rep_given_more_capacity_takes_the_waiting_leads_and_an_inactive_rep_none() {
    let mut w = world();
    for (t, lead) in [(0, "a"), (1, "b"), (2, "c")] {
        w.created(T0 + t, lead);
    }
    // rep-1 and rep-2 hold one each (capacity 1): c waits.
    let set = |capacity: Option<u32>, active: Option<bool>| ManagerAction::SetRep {
        rep: "rep-2".into(),
        capacity,
        active,
        reset: false,
    };
    let out = act(&mut w, 3, set(Some(2), None)).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].lead_id.as_str(), out[0].body.owner_id()),
        ("c", "rep-2")
    );
    assert_eq!(out[0].facts["capacity"], "2");
    assert_eq!(w.p.capacity_of("rep-2"), Some(2));
    // rep-1 off: the next lead can only wait (rep-2 is full again).
    act(
        &mut w,
        4,
        ManagerAction::SetRep {
            rep: "rep-1".into(),
            capacity: None,
            active: Some(false),
            reset: false,
        },
    )
    .unwrap();
    w.converted(T0 + H, "a", "rep-1");
    assert!(w.created(T0 + H + 1, "d").is_empty(), "rep-1 is inactive");
    // Reset: rep-1 is back, and takes d.
    let back = act(
        &mut w,
        6,
        ManagerAction::SetRep {
            rep: "rep-1".into(),
            capacity: None,
            active: None,
            reset: true,
        },
    )
    .unwrap();
    assert_eq!(
        (back[0].lead_id.as_str(), back[0].body.owner_id()),
        ("d", "rep-1")
    );
}

#[test]
fn a_manager_moves_a_waiting_lead_which_waits_for_the_crm_then_is_allocated_there() {
    let mut w = world();
    // Given a lead waiting in the claimable pool.
    w.at(
        T0,
        "k",
        build::created("", "k")
            .channel("ads")
            .pool("key-accounts")
            .body(),
    );
    let out = act(
        &mut w,
        1,
        ManagerAction::MoveLead {
            lead_id: "k".into(),
            to_pool: "inbound".into(),
        },
    )
    .unwrap();
    assert!(
        matches!(&out[0].body, CommandBody::MoveLead { to_pool, from_pool } if to_pool == "inbound" && from_pool == "key-accounts")
    );
    assert_eq!(
        out[0].explanation,
        "move from pool key-accounts to pool inbound (by manager alice; rule manager v5)"
    );
    // When the CRM carries it out, the lead waits in inbound and is
    // allocated from it at once.
    let moved = w.at(
        T0 + 1,
        "k",
        EventBody::Moved(LeadMoved {
            to_pool: "inbound".into(),
            command_id: out[0].command_id.clone(),
        }),
    );
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(matches!(&moved[0].body, CommandBody::AssignLead { pool, .. } if pool == "inbound"));
    assert_eq!(&*w.p.state().pool.leads["k"].pool, "inbound");
}

#[test]
fn refused_actions_say_why() {
    let mut w = world();
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    w.created(T0, "w");
    for (action, why) in [
        (assign("nope", "rep-1"), "no lead \"nope\" in this tenant"),
        (assign("a", "rep-1"), "rep-1 already holds lead a"),
        (
            ManagerAction::RecallLead {
                lead_id: "w".into(),
                to_pool: None,
            },
            "lead w is in_pool: only a held lead can be recalled",
        ),
        (
            ManagerAction::MoveLead {
                lead_id: "a".into(),
                to_pool: "key-accounts".into(),
            },
            "only a waiting lead is moved",
        ),
        (
            ManagerAction::MoveLead {
                lead_id: "w".into(),
                to_pool: "key-accounts".into(),
            },
            "is being assigned to",
        ),
        (
            ManagerAction::SetRep {
                rep: "rep-9".into(),
                capacity: Some(3),
                active: None,
                reset: false,
            },
            "\"rep-9\" is not a member of any pool of this tenant's policy",
        ),
        (
            ManagerAction::SetRep {
                rep: "rep-1".into(),
                capacity: Some(0),
                active: None,
                reset: false,
            },
            "capacity must be at least 1",
        ),
    ] {
        let err = w.p.check_manager(&action).unwrap_err();
        assert!(err.contains(why), "{action:?}: {err}");
    }
}

#[test]
fn the_same_actions_at_the_same_places_make_the_same_ids() {
    let run = || {
        let mut w = world();
        w.created(T0, "a");
        w.assigned(T0, "a", "rep-1");
        let recall = ManagerAction::RecallLead {
            lead_id: "a".into(),
            to_pool: None,
        };
        let mut ids = Vec::new();
        for (n, action) in [(2, assign("a", "rep-2")), (3, recall)] {
            ids.extend(
                act(&mut w, n, action)
                    .unwrap()
                    .into_iter()
                    .map(|c| c.command_id),
            );
        }
        ids
    };
    let ids = run();
    assert_eq!(ids, run());
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
}
