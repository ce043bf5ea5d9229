//! Given/when/then tests of the CRM's side of the command contract: an
//! assignment the CRM declines, or does not carry out in time, releases the
//! rep's slot and the lead is decided again (see `docs/integration.md`).

use super::*;
use crate::domain::*;

const POLICY: &str = r#"
version = 3
[rules]
assign_command_ttl_ms = 3_600_000
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [
  { id = "rep-1", capacity = 1 },
  { id = "rep-2", capacity = 1 },
]
"#;

const H: i64 = 3_600_000;

/// The deadline tests' world, with the CRM's decline.
type Given = super::deadline_tests::World;

fn given(policy: &str) -> Given {
    Given::with(PolicyFile::parse(policy).unwrap())
}

fn declined(g: &mut Given, at_ms: i64, lead: &str, command_id: &str) -> Vec<LeadCommand> {
    g.at(
        at_ms,
        lead,
        EventBody::CommandDeclined(LeadCommandDeclined {
            command_id: command_id.into(),
            reason: "rep_unavailable".into(),
        }),
    )
}

fn assignee(c: &LeadCommand) -> Option<&str> {
    match &c.body {
        CommandBody::AssignLead { owner_id, .. } => Some(owner_id),
        _ => None,
    }
}

#[test]
fn a_declined_assignment_frees_the_rep_and_goes_to_someone_else_under_a_new_id() {
    let mut g = given(POLICY);
    let first = g.created(0, "L1");
    assert_eq!(assignee(&first[0]), Some("rep-1"));
    assert_eq!(g.p.state().pending_by_rep.get("rep-1"), Some(&1));

    let again = declined(&mut g, 10_000, "L1", &first[0].command_id);

    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        assignee(&again[0]),
        Some("rep-2"),
        "the decliner is skipped"
    );
    assert_ne!(again[0].command_id, first[0].command_id);
    assert_eq!(
        again[0].facts.get("passed_over").map(String::as_str),
        Some("rep-1")
    );
    assert_eq!(
        g.p.state().pending_by_rep.get("rep-1"),
        None,
        "slot released"
    );
    assert_eq!(g.p.state().declined_by_rep.get("rep-1"), Some(&1));

    // rep-1's released slot takes the next lead.
    let next = g.created(20_000, "L2");
    assert_eq!(assignee(&next[0]), Some("rep-1"));
}

#[test]
fn a_decline_of_a_command_not_pending_changes_nothing_but_is_counted() {
    let mut g = given(POLICY);
    let first = g.created(0, "L1");
    g.assigned(1_000, "L1", "rep-1");
    let before = g.p.state().clone();

    let out = declined(&mut g, 2_000, "L1", &first[0].command_id);

    assert!(out.is_empty());
    assert_eq!(g.p.state().declines_unmatched, 1);
    assert_eq!(
        g.p.state().watch("L1"),
        before.watch("L1"),
        "the assignment stands"
    );
    assert!(before.watch("L1").is_some());
}

#[test]
fn an_assignment_not_carried_out_in_time_is_withdrawn_and_decided_again() {
    let mut g = given(POLICY);
    let first = g.created(0, "L1");
    assert_eq!(
        first[0].facts.get("expires_at_ms").map(String::as_str),
        Some("3600000")
    );

    // Nothing happens before the TTL, exactly at it the command expires.
    assert!(g.p.advance(H - 1).is_empty());
    let fired = g.p.advance(H);

    assert_eq!(fired.len(), 2, "{fired:?}");
    match &fired[0].body {
        CommandBody::CancelCommand {
            command_id,
            reason,
            owner_id,
        } => {
            assert_eq!(command_id, &first[0].command_id);
            assert_eq!(reason, "expired");
            assert_eq!(owner_id, "rep-1");
        }
        other => panic!("expected a cancel, got {other:?}"),
    }
    assert_eq!(fired[0].issued_at_ms, H);
    assert_eq!(fired[0].rule_id, RULE_ASSIGN_TTL);
    assert_eq!(assignee(&fired[1]), Some("rep-2"));
    assert_eq!(g.p.state().expired_by_rep.get("rep-1"), Some(&1));
    assert_eq!(g.p.state().pending_by_rep.get("rep-1"), None);
    assert_eq!(g.p.state().pending_by_rep.get("rep-2"), Some(&1));
}

#[test]
fn an_assignment_carried_out_in_time_never_expires() {
    let mut g = given(POLICY);
    g.created(0, "L1");
    g.assigned(H / 2, "L1", "rep-1");

    assert!(g.p.advance(10 * H).is_empty());
    assert!(g.p.state().expiries.is_empty());
    assert!(g.p.state().expired_by_rep.is_empty());
}

#[test]
fn when_nobody_else_can_take_it_an_expired_lead_goes_back_to_the_only_rep_under_a_new_id() {
    let mut g = given(
        r#"
version = 1
[rules]
assign_command_ttl_ms = 60_000
[[pools]]
name = "inbound"
kind = "auto_assign"
members = [{ id = "rep-1", capacity = 1 }]
"#,
    );
    let first = g.created(0, "L1");

    let fired = g.p.advance(60_000);

    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(fired[0].body.type_name(), "cancel_command");
    assert_eq!(assignee(&fired[1]), Some("rep-1"), "not stranded");
    assert_ne!(fired[1].command_id, first[0].command_id);
    assert_eq!(fired[1].facts.get("attempt").map(String::as_str), Some("1"));
    assert!(g.p.state().backlog_index.is_empty());
    assert_eq!(
        g.p.state().pending_by_rep.get("rep-1"),
        Some(&1),
        "one slot, not two"
    );
    // And it expires again a TTL later, with yet another id.
    let again = g.p.advance(120_000);
    assert_eq!(again.len(), 2, "{again:?}");
    assert_ne!(again[1].command_id, fired[1].command_id);
}

#[test]
fn the_same_expiries_fire_however_the_clock_is_sliced() {
    let run = |slices: &[i64]| {
        let mut g = given(POLICY);
        let mut out = g.created(0, "L1");
        out.extend(g.created(1_000, "L2"));
        for t in slices {
            out.extend(g.p.advance(*t));
        }
        out.extend(g.p.advance(5 * H));
        out.iter()
            .map(|c| (c.command_id.clone(), c.issued_at_ms))
            .collect::<Vec<_>>()
    };
    let one = run(&[]);
    assert_eq!(one, run(&[H / 2, H, H + 500, 2 * H, 3 * H]));
    assert!(one.len() > 2, "{one:?}");
}
