//! Given/when/then tests of deadlines under a business calendar (working
//! hours, holidays, time zones with daylight saving), on the world of
//! `deadline_tests`.

use super::*;

fn utc(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn calendar_policy(zone: &str) -> PolicyFile {
    PolicyFile::parse(&format!(
        "version = 4\n[rules]\nfirst_follow_up_sla_ms = 28800000\nreminder_lead_ms = 3600000\n\
         [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{{ id = \"rep-1\", capacity = 10 }}, {{ id = \"rep-2\", capacity = 10 }}]\n\
         [pools.calendar]\ntime_zone = \"{zone}\"\nworking_hours = \"09:00-18:00\"\n"
    ))
    .unwrap()
}

#[test]
fn with_a_business_calendar_the_sla_clock_stops_over_the_weekend() {
    let mut w = World::with(calendar_policy("Asia/Shanghai"));
    // Friday 17:00 in Shanghai; 8 working hours = 1 on Friday + 7 on Monday.
    let friday = utc("2026-11-27T17:00:00+08:00");
    w.created(friday, "a");
    w.assigned(friday, "a", "rep-1");
    let saturday = utc("2026-11-28T12:00:00+08:00");
    assert!(w.p.advance(saturday).is_empty(), "no clock on Saturday");
    let monday_15 = utc("2026-11-30T15:00:00+08:00");
    assert_eq!(
        kinds(&w.p.advance(monday_15)),
        vec![k("remind_follow_up", RULE_FIRST_FOLLOW_UP, "rep-1")]
    );
    assert!(w.p.advance(monday_15 + H - 1).is_empty());
    let fired = w.p.advance(utc("2026-11-30T16:00:00+08:00"));
    assert_eq!(
        kinds(&fired),
        vec![k("recall_lead", RULE_FIRST_FOLLOW_UP, "rep-1")]
    );
    assert_eq!(fired[0].issued_at_ms, utc("2026-11-30T16:00:00+08:00"));
}

#[test]
fn with_a_business_calendar_the_reminder_lead_is_working_time_too() {
    // Given 8 working hours from Friday 11:00 in Shanghai: 7 on Friday and
    // 1 on Monday, so the deadline is Monday 10:00, and a 1 h reminder.
    let mut w = World::with(calendar_policy("Asia/Shanghai"));
    let friday = utc("2026-11-27T11:00:00+08:00");
    w.created(friday, "a");
    w.assigned(friday, "a", "rep-1");
    // Then the reminder comes at Monday 09:00 (one working hour before
    // the deadline), not over the weekend.
    let monday_9 = utc("2026-11-30T09:00:00+08:00");
    assert!(w.p.advance(monday_9 - 1).is_empty(), "not over the weekend");
    let fired = w.p.advance(monday_9);
    assert_eq!(
        kinds(&fired),
        vec![k("remind_follow_up", RULE_FIRST_FOLLOW_UP, "rep-1")]
    );
    assert_eq!(fired[0].issued_at_ms, monday_9);
}

#[test]
fn with_a_business_calendar_a_reminder_before_an_early_deadline_lands_in_the_last_working_day() {
    // Given a deadline at Monday 10:00 (Friday 11:00 + 8 working hours)
    // and a 2 h reminder lead: 1 h of it is on Monday, 1 h on Friday, so
    // the reminder comes on Friday at 17:00 (not at Monday 08:00, before
    // opening).
    let mut w = World::with(
        PolicyFile::parse(
            "version = 4\n[rules]\nfirst_follow_up_sla_ms = 28800000\nreminder_lead_ms = 7200000\n\
             [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
             members = [{ id = \"rep-1\", capacity = 10 }]\n\
             [pools.calendar]\ntime_zone = \"Asia/Shanghai\"\nworking_hours = \"09:00-18:00\"\n",
        )
        .unwrap(),
    );
    let friday = utc("2026-11-27T11:00:00+08:00");
    w.created(friday, "a");
    w.assigned(friday, "a", "rep-1");
    let friday_17 = utc("2026-11-27T17:00:00+08:00");
    assert!(w.p.advance(friday_17 - 1).is_empty());
    let fired = w.p.advance(friday_17);
    assert_eq!(
        kinds(&fired),
        vec![k("remind_follow_up", RULE_FIRST_FOLLOW_UP, "rep-1")]
    );
    assert!(
        matches!(fired[0].body, CommandBody::RemindFollowUp { deadline_ms, .. }
            if deadline_ms == utc("2026-11-30T10:00:00+08:00"))
    );
}

#[test]
fn a_new_version_that_drops_the_calendar_moves_no_running_deadline() {
    // Given an assignment at Friday 17:00 in Shanghai under a calendar:
    // 8 working hours end on Monday at 16:00.
    let mut w = World::with(calendar_policy("Asia/Shanghai"));
    let friday = utc("2026-11-27T17:00:00+08:00");
    w.created(friday, "a");
    w.assigned(friday, "a", "rep-1");
    // When a version without the calendar is loaded (plain hours).
    let mut plain = calendar_policy("Asia/Shanghai");
    plain.version = 5;
    plain.pools[0].calendar = None;
    assert!(w.p.load(plain));
    w.created(friday + 60_000, "b");
    w.assigned(friday + 60_000, "b", "rep-2");
    // Then a keeps Monday 16:00, while b, assigned under the new version,
    // is due 8 plain hours later (Saturday 01:01).
    let fired = w.p.advance(utc("2026-12-01T00:00:00+08:00"));
    let recalls: Vec<(&str, i64)> = fired
        .iter()
        .filter(|c| c.body.type_name() == "recall_lead")
        .map(|c| (c.lead_id.as_str(), c.issued_at_ms))
        .collect();
    assert_eq!(
        recalls,
        vec![
            ("b", friday + 60_000 + 8 * H),
            ("a", utc("2026-11-30T16:00:00+08:00"))
        ]
    );
}

#[test]
fn with_a_business_calendar_a_daylight_saving_change_moves_the_utc_deadline() {
    let mut w = World::with(calendar_policy("America/New_York"));
    // Friday 16:00 EST; New York springs forward on Sunday. 8 working hours:
    // 2 on Friday, 6 on Monday: 15:00 EDT, which is 19:00 UTC, not 20:00.
    let friday = utc("2026-03-06T16:00:00-05:00");
    w.created(friday, "a");
    w.assigned(friday, "a", "rep-1");
    let due = utc("2026-03-09T15:00:00-04:00");
    assert_eq!(due, utc("2026-03-09T19:00:00Z"));
    assert!(w
        .p
        .advance(due - 1)
        .iter()
        .all(|c| c.body.type_name() != "recall_lead"));
    assert_eq!(
        kinds(&w.p.advance(due)),
        vec![k("recall_lead", RULE_FIRST_FOLLOW_UP, "rep-1")]
    );
}

#[test]
fn a_new_policy_applies_to_new_assignments_and_never_moves_running_deadlines() {
    let mut w = World::new("first_follow_up_sla_ms = 7200000");
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    // A new policy (version 7, a 1 h SLA) is loaded with the running state.
    let newer = PolicyFile::parse(
        "version = 7\n[rules]\nfirst_follow_up_sla_ms = 3600000\n\
         [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{ id = \"rep-1\", capacity = 10 }, { id = \"rep-2\", capacity = 20 }]\n",
    )
    .unwrap();
    let state = Processor::state_from_bytes(&w.p.state_to_bytes()).unwrap();
    w.p = Processor::with_state(newer, state);
    w.created(T0 + 10, "b");
    w.assigned(T0 + 10, "b", "rep-2");
    // b's 1 h deadline comes first; a keeps its 2 h under version 3.
    let at_1h = w.p.advance(T0 + 10 + H);
    assert_eq!(at_1h.len(), 1);
    assert_eq!((at_1h[0].lead_id.as_str(), at_1h[0].rule_version), ("b", 7));
    assert!(
        w.p.advance(T0 + 2 * H - 1).is_empty(),
        "a's deadline did not move"
    );
    let at_2h = w.p.advance(T0 + 2 * H);
    assert_eq!((at_2h[0].lead_id.as_str(), at_2h[0].rule_version), ("a", 3));
}

#[test]
fn a_calendar_with_a_bad_zone_is_refused() {
    let err = PolicyFile::parse(
        "version = 1\n[[pools]]\nname = \"p\"\nkind = \"auto_assign\"\n\
         [pools.calendar]\ntime_zone = \"Atlantis/Capital\"\nworking_hours = \"09:00-18:00\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown time zone"), "{err}");
}
