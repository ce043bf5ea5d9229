//! Given/when/then tests of the deadline rules, cooldown, daily cap, cold
//! pool and the due index; the same world's tests under a business
//! calendar and of the strategies that rank reps are in its child modules
//! (`calendar_deadline_tests.rs`, `strategy_tests.rs`). Times are explicit
//! event-time milliseconds.

use super::*;
use crate::domain::*;

const H: i64 = 3_600_000;
const T0: i64 = 1_790_000_000_000;

fn policy(rules: &str, strategy: &str) -> PolicyFile {
    PolicyFile::parse(&format!(
        "version = 3\n[rules]\n{rules}\n\
         [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\nstrategy = \"{strategy}\"\n\
         members = [{{ id = \"rep-1\", capacity = 10 }}, {{ id = \"rep-2\", capacity = 20 }}]\n\
         [[pools]]\nname = \"cold\"\nkind = \"claimable\"\n"
    ))
    .unwrap()
}

pub(super) struct World {
    pub(super) p: Processor,
    seq: u64,
}

impl World {
    fn new(rules: &str) -> World {
        World::with(policy(rules, "round_robin"))
    }

    pub(super) fn with(policy: PolicyFile) -> World {
        World {
            p: Processor::new(policy),
            seq: 0,
        }
    }

    pub(super) fn at(&mut self, t: i64, lead: &str, body: EventBody) -> Vec<LeadCommand> {
        self.seq += 1;
        self.p
            .handle(self.seq, &super::tests::event(self.seq, t, lead, body))
    }

    pub(super) fn created(&mut self, t: i64, lead: &str) -> Vec<LeadCommand> {
        self.at(
            t,
            lead,
            build::created("", lead)
                .channel("search")
                .pool("inbound")
                .body(),
        )
    }

    pub(super) fn assigned(&mut self, t: i64, lead: &str, owner: &str) -> Vec<LeadCommand> {
        self.at(t, lead, build::assigned("", lead, owner).body())
    }

    fn followed_up(&mut self, t: i64, lead: &str, owner: &str) -> Vec<LeadCommand> {
        self.at(
            t,
            lead,
            EventBody::FollowedUp(LeadFollowedUp {
                owner_id: owner.into(),
                kind: FollowUpKind::Call,
                outcome: String::new(),
            }),
        )
    }

    fn recalled(&mut self, t: i64, lead: &str, owner: &str, to_pool: &str) -> Vec<LeadCommand> {
        self.at(
            t,
            lead,
            EventBody::Recalled(LeadRecalled {
                previous_owner_id: owner.into(),
                reason: RecallReason::NoFirstFollowUp,
                to_pool: to_pool.into(),
                command_id: String::new(),
                rule_id: String::new(),
            }),
        )
    }

    pub(super) fn converted(&mut self, t: i64, lead: &str, owner: &str) -> Vec<LeadCommand> {
        self.at(
            t,
            lead,
            EventBody::Converted(LeadConverted {
                owner_id: owner.into(),
                deal_value: Money::new(1, Currency::parse("CNY").unwrap()),
                customer_id: "c".into(),
                expected_lifetime_value: None,
            }),
        )
    }
}

/// (type, rule, owner) of each command, for compact assertions.
fn kinds(commands: &[LeadCommand]) -> Vec<(&'static str, String, String)> {
    commands
        .iter()
        .map(|c| {
            let owner = c.body.owner_id().to_string();
            (c.body.type_name(), c.rule_id.clone(), owner)
        })
        .collect()
}

fn k(t: &'static str, rule: &str, owner: &str) -> (&'static str, String, String) {
    (t, rule.to_string(), owner.to_string())
}

const SLA: &str = "first_follow_up_sla_ms = 7200000\nreminder_lead_ms = 1800000";

#[test]
fn no_first_follow_up_gets_a_reminder_then_a_recall_at_the_deadline() {
    let mut w = World::new(SLA);
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    assert!(
        w.p.advance(T0 + 90 * 60_000 - 1).is_empty(),
        "nothing before the reminder"
    );
    let remind = w.p.advance(T0 + 90 * 60_000);
    assert_eq!(
        kinds(&remind),
        vec![k("remind_follow_up", RULE_FIRST_FOLLOW_UP, "rep-1")]
    );
    assert!(
        matches!(remind[0].body, CommandBody::RemindFollowUp { deadline_ms, .. } if deadline_ms == T0 + 2 * H)
    );
    assert!(
        w.p.advance(T0 + 2 * H - 1).is_empty(),
        "the reminder is sent once"
    );
    let recall = w.p.advance(T0 + 2 * H);
    assert_eq!(
        kinds(&recall),
        vec![k("recall_lead", RULE_FIRST_FOLLOW_UP, "rep-1")]
    );
    let c = &recall[0];
    assert!(
        matches!(c.body, CommandBody::RecallLead { reason: RecallReason::NoFirstFollowUp, ref to_pool, .. } if to_pool == "inbound")
    );
    assert_eq!(
        c.issued_at_ms,
        T0 + 2 * H,
        "the deadline, not the clock that noticed"
    );
    assert_eq!(c.rule_version, 3);
    assert_eq!(c.facts["assigned_at_ms"], T0.to_string());
    assert_eq!(c.facts["reminders_sent"], "1");
    assert!(
        c.explanation.contains("recall from rep-1") && c.explanation.contains("2 h"),
        "{}",
        c.explanation
    );
    assert!(
        w.p.advance(T0 + 100 * H).is_empty(),
        "one recall per generation and rule"
    );
}

#[test]
fn a_follow_up_in_time_cancels_the_first_follow_up_deadline() {
    let mut w = World::new(SLA);
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    w.followed_up(T0 + H, "a", "rep-1");
    assert!(w.p.advance(T0 + 1000 * H).is_empty());
}

#[test]
fn a_follow_up_by_someone_else_does_not_count() {
    let mut w = World::new(SLA);
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    w.followed_up(T0 + H, "a", "rep-2");
    let fired = w.p.advance(T0 + 2 * H);
    assert_eq!(
        kinds(&fired),
        vec![
            k("remind_follow_up", RULE_FIRST_FOLLOW_UP, "rep-1"),
            k("recall_lead", RULE_FIRST_FOLLOW_UP, "rep-1")
        ]
    );
}

#[test]
fn the_stale_deadline_moves_with_each_follow_up() {
    let mut w = World::new("first_follow_up_sla_ms = 7200000\nstale_after_ms = 86400000");
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    w.followed_up(T0 + H, "a", "rep-1");
    w.followed_up(T0 + 20 * H, "a", "rep-1");
    assert!(
        w.p.advance(T0 + 44 * H - 1).is_empty(),
        "moved to 20 h + 24 h"
    );
    let fired = w.p.advance(T0 + 44 * H);
    assert_eq!(kinds(&fired), vec![k("recall_lead", RULE_STALE, "rep-1")]);
    assert!(matches!(
        fired[0].body,
        CommandBody::RecallLead {
            reason: RecallReason::Stale,
            ..
        }
    ));
    assert_eq!(
        fired[0].facts["last_follow_up_ms"],
        (T0 + 20 * H).to_string()
    );
}

#[test]
fn holding_too_long_without_converting_recalls_even_with_follow_ups() {
    let mut w = World::new("stale_after_ms = 86400000\nmax_holding_ms = 259200000");
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    for day in 0..4 {
        w.followed_up(T0 + day * 20 * H, "a", "rep-1");
    }
    let fired = w.p.advance(T0 + 72 * H);
    assert_eq!(
        kinds(&fired),
        vec![k("recall_lead", RULE_MAX_HOLDING, "rep-1")]
    );
    assert!(matches!(
        fired[0].body,
        CommandBody::RecallLead {
            reason: RecallReason::NotConverted,
            ..
        }
    ));
}

#[test]
fn a_conversion_cancels_every_deadline() {
    let mut w = World::new("first_follow_up_sla_ms = 7200000\nmax_holding_ms = 259200000");
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    w.converted(T0 + H, "a", "rep-1");
    assert!(w.p.advance(T0 + 1000 * H).is_empty());
}

#[test]
fn a_reminder_whose_moment_passed_with_its_deadline_is_still_sent_first() {
    // Given SLA 2 h with a reminder 30 min before, and no event until +5 h
    // (a replay, a backtest, or a catch-up after downtime).
    let mut w = World::new(SLA);
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    // When time jumps past both moments at once.
    let fired = w.p.advance(T0 + 5 * H);
    // Then both commands come, each at its own moment, as a live run that
    // watched the clock go by would have sent them.
    assert_eq!(
        kinds(&fired),
        vec![
            k("remind_follow_up", RULE_FIRST_FOLLOW_UP, "rep-1"),
            k("recall_lead", RULE_FIRST_FOLLOW_UP, "rep-1")
        ]
    );
    assert_eq!(fired[0].issued_at_ms, T0 + 90 * 60_000);
    assert_eq!(fired[1].issued_at_ms, T0 + 2 * H);
    assert_eq!(fired[1].facts["reminders_sent"], "1");
}

#[test]
fn the_same_history_decides_the_same_commands_however_the_clock_is_sliced() {
    // Given the case: SLA 24 h, reminder 4 h before, the next
    // event 30 h later.
    let rules = "first_follow_up_sla_ms = 86400000\nreminder_lead_ms = 14400000";
    let history = |w: &mut World, ticks: &[i64]| {
        let mut out = w.created(T0, "a");
        out.extend(w.assigned(T0, "a", "rep-1"));
        for t in ticks {
            out.extend(w.p.advance(*t));
        }
        out.extend(w.created(T0 + 30 * H, "b"));
        out.into_iter()
            .map(|c| (c.command_id, c.issued_at_ms))
            .collect::<Vec<_>>()
    };
    // When one run is advanced only by events, one by a wall clock every
    // hour, one by a single tick between the reminder and the deadline.
    let by_events = history(&mut World::new(rules), &[]);
    let hourly: Vec<i64> = (1..30).map(|h| T0 + h * H).collect();
    let by_clock = history(&mut World::new(rules), &hourly);
    let one_tick = history(&mut World::new(rules), &[T0 + 21 * H]);
    // Then the commands, their ids and their times are the same.
    assert_eq!(by_events.len(), 4, "assign, remind, recall, assign b");
    assert_eq!(by_events, by_clock);
    assert_eq!(by_events, one_tick);
}

#[test]
fn in_a_replay_deadlines_fire_on_event_time_before_the_event_that_passes_them() {
    let mut w = World::new("first_follow_up_sla_ms = 7200000");
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    // The next event of any lead, three hours later, moves time past the
    // deadline: the recall comes first.
    let out = w.created(T0 + 3 * H, "b");
    assert_eq!(
        kinds(&out),
        vec![
            k("recall_lead", RULE_FIRST_FOLLOW_UP, "rep-1"),
            k("assign_lead", RULE_AUTO_ASSIGN, "rep-2"),
        ]
    );
}

#[test]
fn the_recall_that_reaches_max_recalls_sends_the_lead_to_the_cold_pool() {
    let mut w =
        World::new("first_follow_up_sla_ms = 3600000\nmax_recalls = 2\ncold_pool = \"cold\"");
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    let first = w.p.advance(T0 + H);
    assert!(
        matches!(&first[0].body, CommandBody::RecallLead { to_pool, .. } if to_pool == "inbound")
    );
    let reassigned = w.recalled(T0 + H, "a", "rep-1", "inbound");
    assert_eq!(
        kinds(&reassigned),
        vec![k("assign_lead", RULE_AUTO_ASSIGN, "rep-2")]
    );
    w.assigned(T0 + H, "a", "rep-2");
    let second = w.p.advance(T0 + 2 * H);
    assert!(
        matches!(&second[0].body, CommandBody::RecallLead { to_pool, .. } if to_pool == "cold"),
        "{second:?}"
    );
    // In the claimable cold pool nobody is assigned.
    assert!(w.recalled(T0 + 2 * H, "a", "rep-2", "cold").is_empty());
}

#[test]
fn a_recalled_from_rep_is_skipped_until_the_cooldown_ends() {
    let mut w = World::new("cooldown_ms = 86400000");
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    let again = w.recalled(T0 + H, "a", "rep-1", "");
    assert_eq!(
        kinds(&again),
        vec![k("assign_lead", RULE_AUTO_ASSIGN, "rep-2")]
    );
    w.assigned(T0 + H, "a", "rep-2");
    // Recalled from rep-2 within rep-1's cooldown: nobody may take it.
    let recall_event = format!("ev-{}", w.seq + 1);
    assert!(w.recalled(T0 + 2 * H, "a", "rep-2", "").is_empty());
    assert!(w.p.state().backlog["inbound"].iter().any(|(_, l)| l == "a"));
    // The moment rep-1's cooldown ends (24 h after the first recall), it
    // goes to rep-1, with no event needed to notice.
    assert!(w.p.advance(T0 + 25 * H - 1).is_empty());
    let out = w.p.advance(T0 + 30 * H);
    assert_eq!(
        kinds(&out),
        vec![k("assign_lead", RULE_AUTO_ASSIGN, "rep-1")]
    );
    assert_eq!(out[0].lead_id, "a");
    assert_eq!(out[0].issued_at_ms, T0 + 25 * H);
    assert_eq!(out[0].causation_event_id, recall_event, "what made it wait");
}

#[test]
fn the_daily_cap_holds_a_rep_back_until_the_next_utc_day() {
    let mut w = World::new("daily_assignment_cap = 1");
    let day = T0 - T0.rem_euclid(24 * H);
    assert_eq!(
        kinds(&w.created(day + H, "a")),
        vec![k("assign_lead", RULE_AUTO_ASSIGN, "rep-1")]
    );
    assert_eq!(
        kinds(&w.created(day + 2 * H, "b")),
        vec![k("assign_lead", RULE_AUTO_ASSIGN, "rep-2")]
    );
    assert!(
        w.created(day + 3 * H, "c").is_empty(),
        "both at their cap today"
    );
    // When a new lead d comes on the next day, c (waiting since
    // yesterday) went out at midnight first, and d gets the other rep.
    let out = w.created(day + 25 * H, "d");
    assert_eq!(
        kinds(&out),
        vec![
            k("assign_lead", RULE_AUTO_ASSIGN, "rep-1"),
            k("assign_lead", RULE_AUTO_ASSIGN, "rep-2")
        ],
        "a new day"
    );
    assert_eq!(
        (out[0].lead_id.as_str(), out[0].issued_at_ms),
        ("c", day + 24 * H)
    );
    assert_eq!(out[1].lead_id, "d");
}

#[test]
fn a_daily_cap_starts_again_at_the_midnight_of_the_policys_time_zone() {
    // Given a cap of one a day for a team in Shanghai (UTC+8): l1 at 23:00
    // local is taken, l2 at 23:30 local waits.
    let file = |zone: &str| {
        PolicyFile::parse(&format!(
            "version = 1\ntime_zone = \"{zone}\"\n[rules]\ndaily_assignment_cap = 1\n\
             [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
             members = [{{ id = \"rep-1\", capacity = 10 }}]\n"
        ))
    };
    let mut w = World::with(file("Asia/Shanghai").unwrap());
    let day = T0 - T0.rem_euclid(24 * H);
    assert_eq!(w.created(day + 15 * H, "l1").len(), 1);
    w.assigned(day + 15 * H, "l1", "rep-1");
    assert!(w.created(day + 15 * H + H / 2, "l2").is_empty());
    // When Shanghai's midnight comes (16:00 UTC), then l2 goes out then,
    // eight hours before UTC's midnight would have let it.
    assert!(w.p.advance(day + 16 * H - 1).is_empty());
    let out = w.p.advance(day + 17 * H);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].lead_id.as_str(), out[0].issued_at_ms),
        ("l2", day + 16 * H)
    );
    // Under UTC days the same leads wait for 00:00 UTC.
    let mut utc = World::with(file("UTC").unwrap());
    utc.created(day + 15 * H, "l1");
    utc.assigned(day + 15 * H, "l1", "rep-1");
    utc.created(day + 15 * H + H / 2, "l2");
    assert!(utc.p.advance(day + 17 * H).is_empty());
    assert_eq!(utc.p.advance(day + 24 * H)[0].issued_at_ms, day + 24 * H);
    // A zone that does not exist is refused with the file.
    let err = file("Mars/Olympus").unwrap_err().to_string();
    assert!(
        err.contains("time_zone") && err.contains("Mars/Olympus"),
        "{err}"
    );
}

#[test]
fn a_waiting_lead_goes_out_before_a_newer_one_first_come_first_served() {
    // Given the case: a daily cap of 1 and one rep; L1 and L2 on
    // day 1, L2 waits.
    let mut w = World::with(
        PolicyFile::parse(
            "version = 1\n[rules]\ndaily_assignment_cap = 1\n\
             [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
             members = [{ id = \"rep-1\", capacity = 10 }]\n",
        )
        .unwrap(),
    );
    let day = T0 - T0.rem_euclid(24 * H);
    assert_eq!(w.created(day + H, "l1").len(), 1);
    w.assigned(day + H, "l1", "rep-1");
    assert!(w.created(day + 2 * H, "l2").is_empty());
    // When the day changes with no event, L2 goes out at midnight.
    let out = w.p.advance(day + 24 * H);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].lead_id.as_str(), out[0].issued_at_ms),
        ("l2", day + 24 * H)
    );
    w.assigned(day + 24 * H, "l2", "rep-1");
    // And a newer lead L3 that day waits behind nobody but the cap: it
    // waits, and L4 after it waits behind it.
    assert!(w.created(day + 25 * H, "l3").is_empty());
    assert!(w.created(day + 26 * H, "l4").is_empty());
    let out = w.created(day + 49 * H, "l5");
    let leads: Vec<&str> = out.iter().map(|c| c.lead_id.as_str()).collect();
    assert_eq!(leads, vec!["l3"], "the oldest first, one a day");
    assert_eq!(
        w.p.state().backlog["inbound"]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>(),
        vec!["l4", "l5"]
    );
}

#[test]
fn converted_leads_count_toward_capacity_when_the_policy_says_so() {
    let rules = "converted_count_toward_capacity = true";
    let mut w = World::with(
        PolicyFile::parse(&format!(
            "version = 1\n[rules]\n{rules}\n[[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
             members = [{{ id = \"rep-1\", capacity = 1 }}]\n"
        ))
        .unwrap(),
    );
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    w.converted(T0, "a", "rep-1");
    assert!(
        w.created(T0 + 1, "b").is_empty(),
        "rep-1 is full with one conversion"
    );
}

#[test]
fn least_loaded_picks_the_lowest_holdings_per_capacity() {
    let mut w = World::with(policy("", "least_loaded"));
    // rep-1 has capacity 10, rep-2 20: equal load ratios go to the smaller id,
    // then rep-2 takes two for each of rep-1's.
    let mut owners = Vec::new();
    for i in 0..6 {
        let lead = format!("l{i}");
        let out = w.created(T0 + i, &lead);
        let (_, _, owner) = kinds(&out).remove(0);
        w.assigned(T0 + i, &lead, &owner);
        owners.push(owner);
    }
    assert_eq!(
        owners,
        ["rep-1", "rep-2", "rep-2", "rep-1", "rep-2", "rep-2"]
    );
    assert!(w.created(T0 + 10, "x")[0]
        .explanation
        .contains("least-loaded"));
}

#[test]
fn deadlines_survive_a_snapshot_round_trip() {
    let mut w = World::new(SLA);
    w.created(T0, "a");
    w.assigned(T0, "a", "rep-1");
    let bytes = w.p.state_to_bytes();
    let mut restored = Processor::with_state(
        w.p.policy().clone(),
        Processor::state_from_bytes(&bytes).unwrap(),
    );
    assert_eq!(restored.advance(T0 + 2 * H), w.p.advance(T0 + 2 * H));
}

/// Assignments made under the same rules share one copy of them, in a
/// running processor and in one resumed from its snapshot, whose bytes
/// are what a copy per watch would give (the snapshot format is the same).
#[test]
fn watches_under_the_same_rules_share_them_and_the_snapshot_holds_each() {
    let mut w = World::new(SLA);
    for lead in ["a", "b", "c"] {
        w.created(T0, lead);
        w.assigned(T0, lead, "rep-1");
    }
    let shared = |p: &Processor| {
        let s = p.state();
        let a = &s.watch("a").unwrap().limits;
        ["b", "c"]
            .iter()
            .all(|l| std::sync::Arc::ptr_eq(a, &s.watch(l).unwrap().limits))
    };
    assert!(shared(&w.p));
    let bytes = w.p.state_to_bytes();
    // A copy per watch, as the state was saved before the rules were
    // shared, serialises to the same bytes.
    let mut copies = w.p.state().clone();
    for watch in copies
        .pool
        .leads
        .values_mut()
        .filter_map(|l| l.watch.as_mut())
    {
        watch.limits = std::sync::Arc::new(watch.limits.as_ref().clone());
    }
    assert_eq!(bincode::serialize(&copies).unwrap(), bytes);
    let restored = Processor::with_state(
        w.p.policy().clone(),
        Processor::state_from_bytes(&bytes).unwrap(),
    );
    assert!(shared(&restored));
    assert_eq!(restored.state(), w.p.state());
}

#[test]
fn rule_values_are_validated() {
    for (rules, why) in [
        ("first_follow_up_sla_ms = 0", "positive"),
        (
            "first_follow_up_sla_ms = 100\nreminder_lead_ms = 100",
            "shorter",
        ),
        ("max_recalls = 2", "go together"),
        ("daily_assignment_cap = 0", "at least 1"),
    ] {
        let err = PolicyFile::parse(&format!("version = 1\n[rules]\n{rules}\n")).unwrap_err();
        assert!(err.to_string().contains(why), "{rules}: {err}");
    }
}

/// The deadlines under a business calendar.
#[path = "calendar_deadline_tests.rs"]
mod calendar;

/// The strategies that rank reps (score priority, preference) and a
/// version's effective time, on the same world.
#[path = "strategy_tests.rs"]
mod strategy;

#[test]
fn a_reps_due_leads_are_its_held_leads_by_their_next_recall_deadline() {
    // Given a first follow-up SLA of 24 h and a stale rule of 48 h, and
    // rep-1 holding: a (assigned at T0, never followed up: due at T0+24h),
    // b (assigned at T0+2h, followed up at T0+3h: stale at T0+51h) and c
    // (assigned at T0+1h: due at T0+25h); rep-2 holding d.
    let mut w = World::new("first_follow_up_sla_ms = 86400000\nstale_after_ms = 172800000");
    for lead in ["a", "b", "c", "d"] {
        w.at(
            T0 - H,
            lead,
            build::created("", lead)
                .channel("search")
                .pool("cold")
                .body(),
        );
    }
    w.assigned(T0, "a", "rep-1");
    w.assigned(T0 + 2 * H, "b", "rep-1");
    w.followed_up(T0 + 3 * H, "b", "rep-1");
    w.assigned(T0 + H, "c", "rep-1");
    w.assigned(T0, "d", "rep-2");
    // When rep-1's leads due by T0+30h are asked for.
    let (due, total) = w.p.due_of_rep("rep-1", T0 + 30 * H, 10);
    // Then a and c come, earliest first, under the first follow-up rule;
    // b (stale only at T0+51h) does not.
    let got: Vec<(&str, &str, i64)> = due
        .iter()
        .map(|d| (d.lead_id.as_str(), d.rule, d.deadline_ms))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", RULE_FIRST_FOLLOW_UP, T0 + 24 * H),
            ("c", RULE_FIRST_FOLLOW_UP, T0 + 25 * H)
        ]
    );
    assert_eq!(total, 2);
    assert!(due.iter().all(|d| !d.recall_commanded && !d.reminded));
    // And looking to T0+60h adds b under the stale rule, from its
    // follow-up; a limit of 2 keeps the two earliest and counts all 3.
    let (due, total) = w.p.due_of_rep("rep-1", T0 + 60 * H, 2);
    assert_eq!(total, 3);
    assert_eq!(
        due.iter().map(|d| d.lead_id.as_str()).collect::<Vec<_>>(),
        vec!["a", "c"]
    );
    let (all, _) = w.p.due_of_rep("rep-1", T0 + 60 * H, 10);
    let b = all.iter().find(|d| d.lead_id == "b").unwrap();
    assert_eq!((b.rule, b.deadline_ms), (RULE_STALE, T0 + 51 * H));
    assert_eq!(b.last_follow_up_ms, Some(T0 + 3 * H));
    // And once time passes a's deadline (and d's), a is still listed, its
    // recall commanded (the CRM has not carried it out).
    let fired = w.p.advance(T0 + 24 * H);
    assert_eq!(fired.len(), 2, "{fired:?}");
    let (due, _) = w.p.due_of_rep("rep-1", T0 + 24 * H, 10);
    assert_eq!(due.len(), 1);
    assert!(due[0].recall_commanded);
    assert_eq!(w.p.due_of_rep("rep-2", T0 + 30 * H, 10).1, 1);
}

/// Every watch with something due has exactly one entry in the due index,
/// at its own moment, and no entry is left without its watch: after
/// follow-ups (changed in place), a reassignment (replaced in place), a
/// reminder and a recall fired (changed in place) and a conversion.
fn assert_due_index_matches_watches(p: &Processor) {
    let s = p.state();
    let expected: std::collections::BTreeSet<(i64, LeadId)> = s
        .watches()
        .filter_map(|(lead, w)| Some((w.due_ms()?, lead.clone())))
        .collect();
    assert_eq!(s.due, expected, "the due index is the watches' due moments");
}

#[test]
fn the_due_index_follows_watches_changed_and_replaced_in_place() {
    // Given a first follow-up SLA of 2 h with a reminder 1 h before, and a
    // stale rule of 3 h.
    let mut w = World::new(
        "first_follow_up_sla_ms = 7200000\nstale_after_ms = 10800000\nreminder_lead_ms = 3600000",
    );
    w.created(T0, "a");
    w.created(T0, "b");
    w.assigned(T0, "a", "rep-1");
    w.assigned(T0, "b", "rep-1");
    assert_due_index_matches_watches(&w.p);
    // When a follows up twice and is reassigned to rep-2 (its watch
    // replaced), and b's reminder and recall fire.
    w.followed_up(T0 + H / 2, "a", "rep-1");
    w.followed_up(T0 + H / 2 + 1, "a", "rep-1");
    assert_due_index_matches_watches(&w.p);
    w.assigned(T0 + H / 2 + 2, "a", "rep-2");
    assert_due_index_matches_watches(&w.p);
    let fired = |commands: &[LeadCommand], what: &str| {
        assert!(
            commands
                .iter()
                .any(|c| c.lead_id == "b" && c.body.type_name() == what),
            "b's {what} fires: {commands:?}"
        );
    };
    fired(&w.followed_up(T0 + H + 1, "a", "rep-2"), "remind_follow_up");
    assert_due_index_matches_watches(&w.p);
    fired(&w.followed_up(T0 + 2 * H + 1, "a", "rep-2"), "recall_lead");
    // Then the index holds a's stale deadline only (b's recall is
    // commanded: nothing more is due for it), and after a converts,
    // nothing.
    assert_due_index_matches_watches(&w.p);
    assert_eq!(w.p.state().due.len(), 1);
    assert_eq!(w.p.state().due.first().map(|(_, l)| &**l), Some("a"));
    w.at(
        T0 + 2 * H + 2,
        "a",
        EventBody::Converted(LeadConverted {
            owner_id: "rep-2".into(),
            deal_value: Money::new(100, Currency::parse("CNY").unwrap()),
            customer_id: "c-1".into(),
            expected_lifetime_value: None,
        }),
    );
    assert_due_index_matches_watches(&w.p);
    assert!(w.p.state().due.is_empty());
}
