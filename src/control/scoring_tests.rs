//! The engine's own scores, through the one append path: a batch that
//! moves a lead's score is followed by a `scored` event of producer
//! `leadflow` in the batch's own write, once, however often the batch is
//! retried, and a score left unpublished (an import's, an older
//! version's) is published at the next start.

use super::Live;
use crate::config::ProjectionConfig;
use crate::domain::{build, CommandBody, EventBody, LeadCommand, LeadEngaged, LeadEvent};
use crate::log::{EventLog, Input, LogOptions};
use crate::policy::{PolicyFile, SCORE_PRODUCER};

const T0: i64 = 1_793_491_200_000;

const POLICY: &str = r#"
version = 1
[[scoring.attributes]]
field = "industry"
equals = "manufacturing"
points = 20
[scoring.behaviour.email_reply]
points = 15
"#;

fn start(dir: &std::path::Path) -> Live {
    engine(dir, POLICY)
}

/// An engine over the log in `dir` under `policy`, as `run` starts one
/// (but for publishing what its scoring left pending).
fn engine(dir: &std::path::Path, policy: &str) -> Live {
    let log = EventLog::open(dir, &LogOptions::default()).unwrap();
    let (engine, _) = crate::replay::start(
        log,
        &ProjectionConfig::default(),
        Some(PolicyFile::parse(policy).unwrap()),
        None,
        &mut |_| {},
    )
    .unwrap();
    Live::new(engine)
}

fn batch() -> Vec<Input> {
    let created = build::created("c-1", "L1")
        .profile("east", "manufacturing", "large")
        .at(T0)
        .event();
    let engaged = build::event(
        "g-1",
        "L1",
        EventBody::Engaged(LeadEngaged {
            kind: "email_reply".into(),
            points: None,
            source: String::new(),
            detail: String::new(),
        }),
    )
    .at(T0 + 60_000)
    .event();
    vec![Input::event(created, None), Input::event(engaged, None)]
}

/// The engine's `scored` events in the log, in order.
fn scores(live: &Live) -> Vec<LeadEvent> {
    let log = &live.parts[&None].log;
    log.events_from(1)
        .map(|e| e.unwrap().1)
        .filter(|e| e.producer == SCORE_PRODUCER)
        .collect()
}

#[test]
fn a_batch_that_moves_a_score_is_followed_by_the_engines_scored_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = start(dir.path());
    // Given a manufacturer created and replying to an email in one batch,
    // when the batch is appended, then one score follows it: the latest of
    // the batch (attribute 20, behaviour 15; combined (20 + 15) / 2,
    // rounded half up), stamped at the reply, its id from the reply's
    // sequence.
    live.append_inputs(None, &batch(), &[]).unwrap();
    let s = scores(&live);
    assert_eq!(s.len(), 1, "{s:?}");
    let EventBody::Scored(card) = &s[0].body else {
        panic!("{s:?}")
    };
    assert_eq!(
        (card.attribute_score, card.behaviour_score, card.score),
        (20, 15, 18)
    );
    assert_eq!(s[0].event_id, format!("{SCORE_PRODUCER}-score-L1-2"));
    assert_eq!(s[0].occurred_at_ms, T0 + 60_000);
    // The projections and the policy see it like any score.
    let part = &live.parts[&None];
    assert_eq!(part.projections().unwrap().pool.leads["L1"].score, Some(18));
    assert!(!part
        .processor
        .as_ref()
        .unwrap()
        .tenant("")
        .unwrap()
        .has_pending_scores());
    // And the CRM is told in the outbox: one `UpdateScore` with the parts,
    // caused by the engine's event, explained by the rules that gave
    // points.
    let updates = score_updates(&live);
    assert_eq!(updates.len(), 1, "{updates:?}");
    let u = &updates[0];
    assert_eq!(
        u.body,
        CommandBody::UpdateScore {
            score: 18,
            attribute_score: 20,
            behaviour_score: 15,
            predictive_score: 0,
            model_version: String::new(),
            scored_event_id: s[0].event_id.clone(),
        }
    );
    assert_eq!(u.causation_event_id, s[0].event_id);
    assert_eq!(u.issued_at_ms, T0 + 60_000);
    assert_eq!(
        u.explanation,
        "score 18 (attribute 20, behaviour 15, predictive -): \
         industry = manufacturing +20, email_reply +15 (rule scoring v1)"
    );
    assert_eq!(u.facts["rule.0"], "industry = manufacturing +20");
    // When the batch is sent again, nothing is appended and no score
    // follows.
    live.append_inputs(None, &batch(), &[]).unwrap();
    assert_eq!(scores(&live).len(), 1);
    assert_eq!(live.parts[&None].log.last_seq(), 3);
    // A restart publishes nothing again, and commands nothing again.
    drop(live);
    let mut again = start(dir.path());
    assert_eq!(again.publish_pending_scores().unwrap(), 0);
    assert_eq!(scores(&again).len(), 1);
    assert_eq!(score_updates(&again), updates);
}

/// The `UpdateScore` commands in the outbox, in order.
fn score_updates(live: &Live) -> Vec<LeadCommand> {
    live.parts[&None]
        .log
        .commands()
        .map(|c| c.unwrap().1)
        .filter(|c| matches!(c.body, CommandBody::UpdateScore { .. }))
        .collect()
}

#[test]
fn a_score_a_crash_left_unpublished_is_published_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    // Given the batch in the log without its score (appended by an import,
    // which runs no policy, or by an older version that wrote a batch's
    // scores in a second write and stopped between the two).
    {
        let mut log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
        log.append(&batch(), &[]).unwrap();
    }
    // When the engine starts, then the policy's fold of the log finds the
    // score announced and unpublished, and publishes it once.
    let mut live = start(dir.path());
    assert_eq!(live.publish_pending_scores().unwrap(), 1);
    assert_eq!(live.publish_pending_scores().unwrap(), 0);
    let s = scores(&live);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].event_id, format!("{SCORE_PRODUCER}-score-L1-2"));
    drop(live);
    let mut again = start(dir.path());
    assert_eq!(again.publish_pending_scores().unwrap(), 0);
    assert_eq!(scores(&again).len(), 1);
}

const DAY: i64 = 86_400_000;

/// A month of leads with every part of scoring at work: attribute rules,
/// decaying behaviour, and a model retrained daily once outcomes are known.
const LEARNING: &str = r#"
version = 1
[[scoring.attributes]]
field = "industry"
equals = "manufacturing"
points = 20
[scoring.behaviour.email_reply]
points = 15
half_life = "3d"
[scoring.behaviour.web_visit]
points = 2
[scoring.predictive]
horizon = "4d"
retrain_every = "1d"
min_examples = 10
"#;

fn history() -> Vec<Input> {
    let mut events = Vec::new();
    for i in 0..300i64 {
        let lead = format!("L{i}");
        let at = T0 + (i / 12) * DAY + (i % 12) * 3_600_000;
        let hot = i % 3 == 0;
        events.push(
            build::created(&format!("c{i}"), &lead)
                .profile(
                    "east",
                    if i % 2 == 0 { "manufacturing" } else { "saas" },
                    "large",
                )
                .channel(if hot { "referral" } else { "search" })
                .at(at)
                .event(),
        );
        for k in 0..(i % 4) {
            events.push(
                build::event(
                    &format!("g{i}-{k}"),
                    &lead,
                    EventBody::Engaged(LeadEngaged {
                        kind: if hot { "email_reply" } else { "web_visit" }.into(),
                        points: None,
                        source: String::new(),
                        detail: String::new(),
                    }),
                )
                .at(at + (k + 1) * 7_200_000)
                .event(),
            );
        }
        if hot || i % 11 == 0 {
            events.push(
                build::assigned(&format!("a{i}"), &lead, "rep-1")
                    .at(at + DAY)
                    .event(),
            );
            events.push(
                build::event(
                    &format!("v{i}"),
                    &lead,
                    EventBody::Converted(crate::domain::LeadConverted {
                        owner_id: "rep-1".into(),
                        deal_value: crate::domain::Money::new(
                            100,
                            crate::domain::Currency::parse("CNY").unwrap(),
                        ),
                        customer_id: String::new(),
                        expected_lifetime_value: None,
                    }),
                )
                .at(at + 2 * DAY)
                .event(),
            );
        }
    }
    events.sort_by_key(|e| e.occurred_at_ms);
    events.into_iter().map(|e| Input::event(e, None)).collect()
}

fn start_with(dir: &std::path::Path, policy: &str) -> Live {
    let mut live = engine(dir, policy);
    live.publish_pending_scores().unwrap();
    live
}

/// Runs the history in batches of `batch`, restarting the engine after the
/// batches listed; returns the whole log's events, in order.
fn run(dir: &std::path::Path, batch: usize, restarts: &[usize]) -> Vec<(u64, LeadEvent)> {
    let inputs = history();
    let mut live = start_with(dir, LEARNING);
    for (n, chunk) in inputs.chunks(batch).enumerate() {
        live.append_inputs(None, chunk, &[]).unwrap();
        if restarts.contains(&n) {
            drop(live);
            live = start_with(dir, LEARNING);
        }
    }
    let log = &live.parts[&None].log;
    log.events_from(1).map(|e| e.unwrap()).collect()
}

#[test]
fn restarts_and_replays_compute_the_same_scores_bit_for_bit() {
    // Given the same history run straight and with restarts (from the
    // snapshot-less log each time: the policy folds the whole log again).
    let straight = tempfile::tempdir().unwrap();
    let a = run(straight.path(), 9, &[]);
    let restarted = tempfile::tempdir().unwrap();
    let b = run(restarted.path(), 9, &[3, 4, 17, 40]);
    // Then the logs are the same, the engine's scores included, and every
    // part of scoring was at work (the model too).
    assert_eq!(a, b);
    let scored: Vec<&crate::domain::LeadScored> = a
        .iter()
        .filter(|(_, e)| e.producer == SCORE_PRODUCER)
        .filter_map(|(_, e)| match &e.body {
            EventBody::Scored(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(scored.len() > 300, "{}", scored.len());
    assert!(scored.iter().any(|s| s.attribute_score == 20));
    assert!(scored.iter().any(|s| s.behaviour_score > 0));
    let learned: Vec<&&crate::domain::LeadScored> = scored
        .iter()
        .filter(|s| !s.model_version.is_empty())
        .collect();
    assert!(!learned.is_empty(), "the model scored");
    // And a replay of the policy over the log ends in the very state the
    // engine ran into: scorer, model and nothing left to publish.
    let live = start_with(straight.path(), LEARNING);
    let engine = live.parts[&None].processor.as_ref().unwrap();
    let log = &live.parts[&None].log;
    let (replayed, decided) =
        crate::replay::replay_policy(log, PolicyFile::parse(LEARNING).unwrap()).unwrap();
    let state = |p: &crate::policy::Policies| p.tenant("").unwrap().state().clone();
    assert_eq!(state(&replayed).scorer, state(engine).scorer);
    assert!(state(&replayed).scores_pending.is_empty());
    // The CRM was told of every score once, the same with restarts, and a
    // replay decides the very same commands.
    let updates = score_updates(&live);
    assert_eq!(updates.len(), scored.len());
    let restarted_log = EventLog::open(restarted.path(), &LogOptions::default()).unwrap();
    let restarted_updates: Vec<LeadCommand> = restarted_log
        .commands()
        .map(|c| c.unwrap().1)
        .filter(|c| matches!(c.body, CommandBody::UpdateScore { .. }))
        .collect();
    assert_eq!(restarted_updates, updates);
    let replayed_updates: Vec<LeadCommand> = decided
        .into_iter()
        .filter(|c| matches!(c.body, CommandBody::UpdateScore { .. }))
        .collect();
    assert_eq!(replayed_updates, updates);
    // And an open lead's card names what moved its prediction: a new lead
    // like the hot ones (a referral who replied) is scored high, its
    // channel and its reply among the model's strongest features; a cold
    // one low.
    let mut live = live;
    let at = T0 + 40 * DAY;
    let hot_lead = vec![
        build::created("c-hot", "H1")
            .profile("east", "saas", "large")
            .channel("referral")
            .at(at)
            .event(),
        build::event(
            "g-hot",
            "H1",
            EventBody::Engaged(LeadEngaged {
                kind: "email_reply".into(),
                points: None,
                source: String::new(),
                detail: String::new(),
            }),
        )
        .at(at + 60_000)
        .event(),
    ];
    let inputs: Vec<Input> = hot_lead
        .into_iter()
        .map(|e| Input::event(e, None))
        .collect();
    live.append_inputs(None, &inputs, &[]).unwrap();
    let tenant = live.parts[&None]
        .processor
        .as_ref()
        .unwrap()
        .tenant("")
        .unwrap();
    let hot = tenant.score_card("H1").expect("open");
    let cold = tenant.score_card("L298").expect("open");
    assert_eq!(hot.model_version, cold.model_version);
    assert!(
        hot.predictive.unwrap() > 80 && cold.predictive.unwrap() < 20,
        "{hot:?} {cold:?}"
    );
    let named: Vec<&str> = hot.features.iter().map(|f| f.what.as_str()).collect();
    assert!(
        named.contains(&"channel = referral") && named.contains(&"email_reply"),
        "{named:?}"
    );
    assert!(hot.features.iter().all(|f| f.points.is_finite()));
}

#[test]
fn the_engines_model_versions_are_measured_on_the_outcomes_known_after_them() {
    // Given the month of history run through the engine, which scored it
    // with its retrained models.
    let dir = tempfile::tempdir().unwrap();
    let log = run(dir.path(), 50, &[]);
    // When `stats --by score-model`'s fold reads the log.
    let mut fold = crate::policy::scoring::outcomes::ModelOutcomes::default();
    for (_, e) in &log {
        fold.apply(e);
    }
    let versions = fold.evaluate(4 * DAY);
    // Then each of the engine's versions (`nb-N`, in their order) is
    // measured, and the learned model tells the hot leads (referrals who
    // reply, every one converted) from the rest: they are what it learned.
    let names: Vec<&str> = versions.iter().map(|v| v.model_version.as_str()).collect();
    assert!(names.len() > 3, "{names:?}");
    let numbers: Vec<u32> = names
        .iter()
        .map(|n| {
            n.strip_prefix("nb-")
                .expect("the engine's models")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    let leads: u64 = versions.iter().map(|v| v.evaluation.leads).sum();
    assert!(leads > 100, "{leads}");
    // Every version with both outcomes among its leads ranks them well
    // (a day's dozen leads each); the last ones scored leads whose
    // horizon had not passed when the log ended, so only their
    // conversions are known and they have no AUC.
    let ranked: Vec<f64> = versions.iter().filter_map(|v| v.evaluation.auc).collect();
    assert!(ranked.len() > 10, "{versions:?}");
    assert!(ranked.iter().all(|auc| *auc >= 0.8), "{ranked:?}");
    let last = &versions.last().unwrap().evaluation;
    assert!(
        last.auc.is_none() && last.leads == last.converted,
        "{last:?}"
    );
}
