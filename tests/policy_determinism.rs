//! The determinism rule of the policy (README, "Policy"): the commands are
//! a function of the log — its events and the policy inputs recorded among
//! them (versions loaded, wall-clock ticks) — whichever clock fired them
//! and whatever crashed in between. On real sled files, in process.
//!
//! - Property: for random histories and policies, a live run driven by a
//!   simulated wall clock (starting behind a backlog older than "now",
//!   ticking only when caught up, as `leadflow run` does), the same run
//!   restarted at random points (after a clean stop or a crash), a replay
//!   of its log and a backtest of its log decide the same set of command
//!   ids.
//! - Scenario: a crash between two policy versions leaves every running
//!   deadline where it was, and the new version applies from its
//!   `effective_from_ms`.

mod common;

use common::leadflow_at;
use leadflow::domain::*;
use leadflow::log::{EventLog, Input, LogOptions};
use leadflow::policy::{PolicyFile, PolicyInput};
use leadflow::replay;
use leadflow::sim::{SimConfig, Simulator};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

const H: i64 = 3_600_000;

fn policy(sla_h: i64, strategy: &str, cap: u32, reminder: bool) -> PolicyFile {
    let reminder = if reminder {
        format!("reminder_lead_ms = {}\n", sla_h * H / 3)
    } else {
        String::new()
    };
    PolicyFile::parse(&format!(
        "version = 5\n[rules]\nfirst_follow_up_sla_ms = {}\nstale_after_ms = {}\nmax_holding_ms = {}\n\
         {reminder}cooldown_ms = {}\nmax_recalls = 2\ncold_pool = \"cold\"\n\
         daily_assignment_cap = {cap}\n\
         [[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\nstrategy = \"{strategy}\"\n\
         members = [{{ id = \"rep-000\", capacity = 6 }}, {{ id = \"rep-001\", capacity = 4 }},\n\
                    {{ id = \"rep-002\", capacity = 5, active = false }}, {{ id = \"rep-003\", capacity = 8 }}]\n\
         [[pools]]\nname = \"enterprise\"\nkind = \"auto_assign\"\n\
         members = [{{ id = \"rep-004\", capacity = 3 }}, {{ id = \"rep-008\", capacity = 3 }}]\n\
         [[pools]]\nname = \"cold\"\nkind = \"claimable\"\n",
        sla_h * H,
        3 * sla_h * H,
        10 * 24 * H,
        2 * 24 * H
    ))
    .unwrap()
}

/// How a simulated `leadflow run` meets its input.
#[derive(Clone, Debug)]
struct Schedule {
    /// Each event's arrival delay after its event time.
    delays_ms: Vec<i64>,
    /// The wall clock starts at the arrival of this event: everything
    /// before it is a backlog older than "now".
    start_index: usize,
    /// Wall-clock steps of the run.
    step_ms: i64,
    batch_events_max: usize,
    /// Batches after which the engine stops (cleanly when true, else it
    /// crashes: no snapshot) and starts again.
    restarts: Vec<(usize, bool)>,
}

fn events(seed: u64, leads: u64) -> Vec<LeadEvent> {
    Simulator::new(SimConfig {
        seed,
        leads,
        days: 6,
        reps: 12,
        bad_ratio: 0.0,
        ..SimConfig::default()
    })
    .events()
    .collect()
}

fn open(dir: &Path) -> EventLog {
    EventLog::open(dir, &LogOptions::default()).unwrap()
}

/// A simulated `leadflow run` over `events` with `policy`: events arrive
/// at their time plus a delay; the engine reads what has arrived in
/// batches and, only once it has read everything that arrived, lets the
/// wall clock tick the policy (recorded in the log). Returns the ids of
/// every command it stored.
fn live(dir: &Path, policy: &PolicyFile, events: &[LeadEvent], s: &Schedule) -> BTreeSet<String> {
    let mut arrivals: Vec<(i64, usize)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.occurred_at_ms + s.delays_ms[i % s.delays_ms.len()], i))
        .collect();
    arrivals.sort();
    let mut log = open(dir);
    let (mut p, decided) = replay::load_policy(&mut log, policy.clone()).unwrap();
    log.append_commands(decided).unwrap();
    let mut now = arrivals[s.start_index.min(arrivals.len() - 1)].0;
    let end = arrivals.last().unwrap().0 + 20 * 24 * H;
    let mut next = 0;
    let mut batches = 0;
    while now <= end {
        // Read everything that has arrived by now, batch by batch.
        while next < arrivals.len() && arrivals[next].0 <= now {
            let mut inputs = Vec::new();
            while inputs.len() < s.batch_events_max
                && next < arrivals.len()
                && arrivals[next].0 <= now
            {
                inputs.push(Input::event(events[arrivals[next].1].clone(), None));
                next += 1;
            }
            log.append_with(&inputs, &[], &mut |seq, e| p.handle(seq, e))
                .unwrap();
            batches += 1;
            if let Some((_, clean)) = s.restarts.iter().find(|(b, _)| *b == batches) {
                if *clean {
                    replay::save_policy(&log, &p).unwrap();
                }
                drop(p);
                drop(log);
                log = open(dir);
                let (q, decided) = replay::load_policy(&mut log, policy.clone()).unwrap();
                log.append_commands(decided).unwrap();
                p = q;
            }
        }
        // Caught up: the wall clock moves the policy on.
        replay::tick(&mut log, &mut p, now).unwrap();
        now += s.step_ms;
    }
    log.commands().map(|c| c.unwrap().1.command_id).collect()
}

fn ids(commands: &[LeadCommand]) -> BTreeSet<String> {
    commands.iter().map(|c| c.command_id.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn live_restarted_replayed_and_backtested_runs_decide_the_same_commands(
        seed in 0u64..1_000,
        leads in 30u64..120,
        sla_h in 1i64..30,
        least_loaded in any::<bool>(),
        cap in 1u32..6,
        reminder in any::<bool>(),
        delays_ms in prop::collection::vec(0i64..3 * H, 1..8),
        start in 0.0f64..1.0,
        step_min in 5i64..600,
        batch_events_max in 1usize..60,
        restarts in prop::collection::vec((1usize..40, any::<bool>()), 0..4),
    ) {
        let policy = policy(sla_h, if least_loaded { "least_loaded" } else { "round_robin" }, cap, reminder);
        let events = events(seed, leads);
        let schedule = Schedule {
            start_index: (start * events.len() as f64) as usize,
            delays_ms,
            step_ms: step_min * 60_000,
            batch_events_max,
            restarts: Vec::new(),
        };
        let once = tempfile::tempdir().unwrap();
        let live_ids = live(once.path(), &policy, &events, &schedule);
        prop_assert!(!live_ids.is_empty());

        let again = tempfile::tempdir().unwrap();
        let restarted = live(again.path(), &policy, &events, &Schedule { restarts, ..schedule });
        prop_assert_eq!(&restarted, &live_ids, "restarts change nothing");

        let log = open(once.path());
        let (_, replayed) = replay::replay_policy(&log, policy.clone()).unwrap();
        prop_assert_eq!(&ids(&replayed), &live_ids, "a replay decides what the run decided");

        let ticks = replay::recorded_ticks(&log).unwrap();
        let mut backtested = BTreeSet::new();
        leadflow::backtest::run(
            std::slice::from_ref(&policy),
            log.events_from(1).map(|e| e.unwrap()),
            &ticks,
            (None, None),
            None,
            &mut |_| {},
            &mut |_, c| {
                backtested.insert(c.command_id.clone());
            },
        );
        prop_assert_eq!(&backtested, &live_ids, "a backtest decides what the run decided");
    }
}

fn created(id: &str, lead: &str, at: i64) -> LeadEvent {
    common::created(id, lead, "inbound", at)
}

fn assigned(id: &str, lead: &str, owner: &str, at: i64) -> LeadEvent {
    common::assigned(id, lead, owner, "", at)
}

fn versioned(version: u32, sla_h: i64, effective_from_ms: Option<i64>) -> PolicyFile {
    let from = effective_from_ms.map_or(String::new(), |f| format!("effective_from_ms = {f}\n"));
    PolicyFile::parse(&format!(
        "version = {version}\n{from}[rules]\nfirst_follow_up_sla_ms = {}\n\
         [[pools]]\nname = \"inbound\"\nkind = \"auto_assign\"\n\
         members = [{{ id = \"rep-1\", capacity = 10 }}, {{ id = \"rep-2\", capacity = 10 }}]\n",
        sla_h * H
    ))
    .unwrap()
}

fn recall_of<'a>(commands: &'a [LeadCommand], lead: &str) -> Option<&'a LeadCommand> {
    commands
        .iter()
        .find(|c| c.lead_id == lead && c.body.type_name() == "recall_lead")
}

#[test]
fn a_crash_between_two_policy_versions_moves_no_running_deadline() {
    const T0: i64 = 1_790_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let v1 = versioned(1, 24, None);
    let v2 = versioned(2, 48, Some(T0 + 10 * H));
    // Given an engine that ran under v1 (SLA 24 h) and saw lead a assigned
    // at T0, then died without a clean stop (no snapshot).
    {
        let mut log = open(dir.path());
        let (mut p, _) = replay::load_policy(&mut log, v1.clone()).unwrap();
        let inputs = [
            Input::event(created("e1", "a", T0), None),
            Input::event(assigned("e2", "a", "rep-1", T0), None),
        ];
        log.append_with(&inputs, &[], &mut |seq, e| p.handle(seq, e))
            .unwrap();
    }
    // When it starts with v2 in the file (SLA 48 h from T0 + 10 h), and
    // leads b (assigned at T0 + 5 h) and c (at T0 + 11 h) follow.
    let mut log = open(dir.path());
    let (mut p, _) = replay::load_policy(&mut log, v2.clone()).unwrap();
    let inputs = [
        Input::event(created("e3", "b", T0 + 5 * H), None),
        Input::event(assigned("e4", "b", "rep-2", T0 + 5 * H), None),
        Input::event(created("e5", "c", T0 + 11 * H), None),
        Input::event(assigned("e6", "c", "rep-1", T0 + 11 * H), None),
    ];
    let mut out = Vec::new();
    log.append_with(&inputs, &[], &mut |seq, e| {
        let c = p.handle(seq, e);
        out.extend(c.clone());
        c
    })
    .unwrap();
    // (The wall clock, caught up, ticks far past every deadline.)
    let fired = replay::tick(&mut log, &mut p, T0 + 100 * H).unwrap();
    out.extend(fired.into_iter().map(|(_, c)| c));
    // Then a keeps v1's deadline (T0 + 24 h), b was assigned before v2
    // took effect and has v1's too (T0 + 29 h), c has v2's (T0 + 59 h).
    let at = |lead: &str| {
        let c = recall_of(&out, lead).unwrap_or_else(|| panic!("no recall of {lead}: {out:#?}"));
        (c.issued_at_ms, c.rule_version)
    };
    assert_eq!(at("a"), (T0 + 24 * H, 1));
    assert_eq!(at("b"), (T0 + 29 * H, 1));
    assert_eq!(at("c"), (T0 + 59 * H, 2));
    // And a replay of the log from its start, whatever file is configured
    // now, decides exactly what was stored.
    let (_, replayed) = replay::replay_policy(&log, versioned(9, 1, None)).unwrap();
    let stored: Vec<LeadCommand> = log.commands().map(|c| c.unwrap().1).collect();
    assert_eq!(replayed, stored);
    // The log says which version was loaded where.
    let versions: Vec<((u64, u32), u32)> = log
        .policy_inputs_from((0, 0))
        .filter_map(|i| match i.unwrap() {
            (key, PolicyInput::Version { policy, .. }) => Some((key, policy.version)),
            _ => None,
        })
        .collect();
    assert_eq!(versions, vec![((0, 0), 1), ((2, 0), 2)]);
}

#[test]
fn ticks_with_nothing_between_them_share_one_record_that_moves_forward() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let (mut p, _) = replay::load_policy(&mut log, versioned(1, 24, None)).unwrap();
    replay::tick(&mut log, &mut p, 1_000).unwrap();
    replay::tick(&mut log, &mut p, 2_000).unwrap();
    let inputs: Vec<_> = log.policy_inputs_from((0, 0)).map(|i| i.unwrap()).collect();
    assert_eq!(inputs.len(), 2, "the version, then one tick: {inputs:?}");
    assert_eq!(inputs[1], ((0, 1), PolicyInput::Tick { at_ms: 2_000 }));
    // An event between two ticks separates them.
    log.append_with(
        &[Input::event(created("e1", "a", 2_500), None)],
        &[],
        &mut |seq, e| p.handle(seq, e),
    )
    .unwrap();
    replay::tick(&mut log, &mut p, 3_000).unwrap();
    let inputs: Vec<_> = log.policy_inputs_from((0, 0)).map(|i| i.unwrap()).collect();
    assert_eq!(inputs[2], ((1, 0), PolicyInput::Tick { at_ms: 3_000 }));
    // A tick that does not move time is not recorded.
    replay::tick(&mut log, &mut p, 2_999).unwrap();
    assert_eq!(log.policy_inputs_from((0, 0)).count(), 3);
}

#[test]
fn inspect_commands_lists_the_decisions_with_their_rule_facts_and_delivery_state() {
    const T0: i64 = 1_790_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    // Given a log where lead a was assigned and recalled and lead b only
    // assigned; the recall of a was acknowledged by the broker.
    {
        let mut log = open(dir.path());
        let (mut p, _) = replay::load_policy(&mut log, versioned(3, 24, None)).unwrap();
        let inputs = [
            Input::event(created("e1", "a", T0), None),
            Input::event(assigned("e2", "a", "rep-1", T0), None),
            Input::event(created("e3", "b", T0 + H), None),
        ];
        log.append_with(&inputs, &[], &mut |seq, e| p.handle(seq, e))
            .unwrap();
        let fired = replay::tick(&mut log, &mut p, T0 + 30 * H).unwrap();
        assert_eq!(fired.len(), 1);
        log.mark_commands_sent(&[fired[0].0]).unwrap();
        log.flush().unwrap();
    }
    let inspect = |args: &[&str]| {
        let mut all = vec!["inspect", "commands"];
        all.extend_from_slice(args);
        leadflow_at(dir.path(), &all)
    };
    // When ops list a's commands as JSON.
    let out = inspect(&["--lead", "a", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    // Then they see the assignment (not yet acknowledged) and the recall
    // (sent), each with its rule, version, facts and explanation.
    let brief: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap(),
                r["rule_id"].as_str().unwrap(),
                r["delivery"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        vec![
            ("assign_lead", "auto-assign", "pending"),
            ("recall_lead", "first-follow-up-sla", "sent")
        ]
    );
    assert_eq!(rows[1]["rule_version"], 3);
    assert_eq!(rows[1]["facts"]["deadline_ms"], (T0 + 24 * H).to_string());
    assert!(rows[1]["explanation"]
        .as_str()
        .unwrap()
        .contains("no first follow-up for 24 h"));
    // And --pending shows the two unacknowledged assignments only, as text.
    let text = String::from_utf8(inspect(&["--pending"]).stdout).unwrap();
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(heads.len(), 2, "{text}");
    assert!(heads.iter().all(|l| l.contains(" assign_lead ")), "{text}");
    assert!(!text.contains("recall_lead"), "{text}");
    assert!(text.contains("[pending]"), "{text}");
    // A lead the log does not know is an error, not an empty answer.
    let unknown = inspect(&["--lead", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no lead \"nobody\""));
}
