//! The engine's own scores, through the one append path: a batch that
//! moves a lead's score is followed by a `scored` event of producer
//! `leadflow`, once, however often the batch is retried, and a score a
//! crash left unpublished is published at the next start.

use super::Live;
use crate::config::ProjectionConfig;
use crate::domain::{build, EventBody, LeadEngaged, LeadEvent};
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
    let log = EventLog::open(dir, &LogOptions::default()).unwrap();
    let policy = PolicyFile::parse(POLICY).unwrap();
    let (engine, _) = crate::replay::start(
        log,
        &ProjectionConfig::default(),
        Some(policy),
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
    assert_eq!(part.projections.pool.leads["L1"].score, Some(18));
    assert!(!part
        .processor
        .as_ref()
        .unwrap()
        .tenant("")
        .unwrap()
        .has_pending_scores());
    // When the batch is sent again, nothing is appended and no score
    // follows.
    live.append_inputs(None, &batch(), &[]).unwrap();
    assert_eq!(scores(&live).len(), 1);
    assert_eq!(live.parts[&None].log.last_seq(), 3);
    // A restart publishes nothing again.
    drop(live);
    let mut again = start(dir.path());
    assert_eq!(again.publish_pending_scores().unwrap(), 0);
    assert_eq!(scores(&again).len(), 1);
}

#[test]
fn a_score_a_crash_left_unpublished_is_published_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    // Given the batch in the log without its score (the engine stopped
    // between the two appends).
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
