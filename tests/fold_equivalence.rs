//! Property: for random streams of valid and invalid events, the projections
//! folded incrementally as batches land == a snapshot taken at a random point
//! plus the tail == a full rebuild from the log (serial, or on two threads
//! as `leadflow replay` does: reading, decoding and the pool's fold on one,
//! the metrics' fold on the other).

use leadflow::config::ProjectionConfig;
use leadflow::domain::*;
use leadflow::log::{EventLog, Input, LogOptions};
use leadflow::projector::metrics::MetricParams;
use leadflow::projector::{Projections, SNAPSHOT_NAME};
use leadflow::replay;
use proptest::prelude::*;

const H: i64 = 3_600_000;

#[derive(Clone, Debug)]
enum Op {
    Create {
        channel: u8,
        pool: u8,
        cost: i64,
        usd: bool,
    },
    Score(u32),
    Assign {
        owner: u8,
        pool: u8,
    },
    FollowUp {
        owner: u8,
    },
    Recall {
        owner: u8,
        reason: u8,
    },
    Convert {
        owner: u8,
        value: i64,
        clv: bool,
    },
    Redeliver,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 0u8..2, -5i64..50_000, any::<bool>()).prop_map(|(channel, pool, cost, usd)| {
            Op::Create {
                channel,
                pool,
                cost,
                usd,
            }
        }),
        (0u32..120).prop_map(Op::Score),
        (0u8..4, 0u8..3).prop_map(|(owner, pool)| Op::Assign { owner, pool }),
        (0u8..4).prop_map(|owner| Op::FollowUp { owner }),
        (0u8..4, 0u8..6).prop_map(|(owner, reason)| Op::Recall { owner, reason }),
        (0u8..4, -5i64..1_000_000, any::<bool>()).prop_map(|(owner, value, clv)| Op::Convert {
            owner,
            value,
            clv
        }),
        Just(Op::Redeliver),
    ]
}

fn event(i: usize, lead: u8, at: i64, op: &Op, prev: Option<&LeadEvent>) -> LeadEvent {
    let cur = |usd: bool| Currency::parse(if usd { "USD" } else { "CNY" }).unwrap();
    let owner = |o: &u8| format!("rep-{o}");
    let body = match op {
        Op::Redeliver => {
            if let Some(p) = prev {
                return p.clone();
            }
            EventBody::Scored(LeadScored {
                score: 1,
                attribute_score: 1,
                behaviour_score: 1,
                predictive_score: 1,
                model_version: String::new(),
            })
        }
        Op::Create {
            channel,
            pool,
            cost,
            usd,
        } => EventBody::Created(LeadCreated {
            channel: format!("ch{channel}"),
            campaign: format!("cmp{}", channel % 2),
            pool: format!("pool{pool}"),
            region: "r".into(),
            industry: "i".into(),
            company_size: "s".into(),
            acquisition_cost: Money::new(*cost, cur(*usd)),
            contact_fingerprint: String::new(),
            attributes: Default::default(),
        }),
        Op::Score(s) => EventBody::Scored(LeadScored {
            score: *s,
            attribute_score: 0,
            behaviour_score: 0,
            predictive_score: 0,
            model_version: "m".into(),
        }),
        Op::Assign { owner: o, pool } => EventBody::Assigned(LeadAssigned {
            owner_id: owner(o),
            pool: if *pool == 2 {
                String::new()
            } else {
                format!("pool{pool}")
            },
            method: AssignmentMethod::Rule,
            command_id: String::new(),
        }),
        Op::FollowUp { owner: o } => EventBody::FollowedUp(LeadFollowedUp {
            owner_id: owner(o),
            kind: FollowUpKind::Call,
            outcome: String::new(),
        }),
        Op::Recall { owner: o, reason } => EventBody::Recalled(LeadRecalled {
            previous_owner_id: owner(o),
            reason: RecallReason::ALL[*reason as usize],
            to_pool: String::new(),
            command_id: String::new(),
            rule_id: String::new(),
        }),
        Op::Convert {
            owner: o,
            value,
            clv,
        } => EventBody::Converted(LeadConverted {
            owner_id: owner(o),
            deal_value: Money::new(*value, cur(false)),
            customer_id: String::new(),
            expected_lifetime_value: clv.then(|| Money::new(value.saturating_mul(3), cur(false))),
        }),
    };
    LeadEvent {
        event_id: format!("e{i}"),
        lead_id: format!("lead{lead}"),
        occurred_at_ms: at,
        producer: "prop".into(),
        tenant_id: String::new(),
        body,
    }
}

fn stream() -> impl Strategy<Value = (Vec<(u8, i64, Op)>, Vec<usize>, usize)> {
    (
        prop::collection::vec((0u8..6, -2 * H..30 * H, op()), 1..160),
        prop::collection::vec(1usize..25, 1..20),
        0usize..1000,
    )
}

fn params() -> MetricParams {
    MetricParams::from(&ProjectionConfig::default())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_snapshot_plus_tail_equals_rebuild((ops, batch_sizes, cut) in stream()) {
        // Build the input stream; times wander forwards with some jitter
        // backwards so that before-creation rejections happen too.
        let base = 1_793_577_600_000i64;
        let mut t = base;
        let mut events: Vec<LeadEvent> = Vec::new();
        for (i, (lead, dt, op)) in ops.iter().enumerate() {
            t += dt / 4;
            let e = event(i, *lead, t.max(base - 10 * H), op, events.last());
            events.push(e);
        }

        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
        let mut incremental = Projections::new(params());
        let mut accepted: Vec<(u64, LeadEvent)> = Vec::new();
        let mut rest: &[LeadEvent] = &events;
        let mut sizes = batch_sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            let (batch, tail) = rest.split_at(n);
            rest = tail;
            let inputs: Vec<Input> = batch.iter().cloned().map(|e| Input::event(e, None)).collect();
            let report = log.append(&inputs, &[]).unwrap();
            prop_assert_eq!(report.accepted.len() + report.rejected.len(), n);
            for (index, seq) in report.accepted {
                incremental.apply(seq, &batch[index]);
                accepted.push((seq, batch[index].clone()));
            }
        }

        // The log holds exactly the accepted events, in order, ids unique.
        let stored: Vec<(u64, LeadEvent)> = log.events_from(1).map(Result::unwrap).collect();
        prop_assert_eq!(&stored, &accepted);
        let mut ids: Vec<&str> = stored.iter().map(|(_, e)| e.event_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), stored.len());

        // Full rebuild.
        let rebuilt = replay::rebuild(&log, &ProjectionConfig::default(), None, &mut |_| {}).unwrap();
        prop_assert_eq!(&rebuilt, &incremental);
        // And `leadflow replay`'s, on two threads.
        let parallel = leadflow::engine::rebuild(&log, &ProjectionConfig::default(), None, &mut |_| {}).unwrap();
        prop_assert_eq!(&parallel, &incremental);

        // Snapshot at a random point, through bytes, plus the tail.
        let k = if accepted.is_empty() { 0 } else { cut % (accepted.len() + 1) };
        let mut head = Projections::new(params());
        for (seq, e) in &accepted[..k] {
            head.apply(*seq, e);
        }
        let mut resumed = Projections::from_bytes(&head.to_bytes()).unwrap();
        for (seq, e) in &accepted[k..] {
            resumed.apply(*seq, e);
        }
        prop_assert_eq!(&resumed, &incremental);

        // The same through the log's snapshot store and replay::load.
        let covered = if k == 0 { 0 } else { accepted[k - 1].0 };
        log.save_snapshot(SNAPSHOT_NAME, covered, &head.to_bytes()).unwrap();
        let loaded = replay::load(&log, &ProjectionConfig::default(), &mut |_| {}).unwrap();
        prop_assert_eq!(&loaded, &incremental);
    }
}

/// `leadflow replay` reads, decodes and folds the pool on one thread and
/// hands the metrics' fold the events in chunks: over many chunks, and as
/// of a past moment, both fold exactly what the one-thread rebuild folds,
/// and progress is reported to the end.
#[test]
fn a_replay_on_two_threads_equals_the_serial_one() {
    use leadflow::sim::{SimConfig, Simulator};
    // Given a log of some 20 thousand simulated events (five chunks and
    // more), appended in batches of a thousand.
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
    let events: Vec<LeadEvent> = Simulator::new(leadflow::sim::SimConfig {
        seed: 5,
        leads: 2_000,
        days: 20,
        ..SimConfig::default()
    })
    .events()
    .collect();
    for batch in events.chunks(1_000) {
        let inputs: Vec<Input> = batch
            .iter()
            .cloned()
            .map(|e| Input::event(e, None))
            .collect();
        log.append(&inputs, &[]).unwrap();
    }
    assert!(log.last_seq() > 5 * 4_096, "{}", log.last_seq());
    let config = ProjectionConfig::default();
    let middle_ms = events[events.len() / 2].occurred_at_ms;
    for until in [None, Some(middle_ms)] {
        // When it is rebuilt both ways.
        let serial = replay::rebuild(&log, &config, until, &mut |_| {}).unwrap();
        let mut told = 0;
        let parallel =
            leadflow::engine::rebuild(&log, &config, until, &mut |seq| told = seq).unwrap();
        // Then both folded the same, and covered the whole log.
        assert_eq!(parallel, serial, "until {until:?}");
        assert_eq!(parallel.covered_seq, log.last_seq());
        assert_eq!(told, log.last_seq());
    }
}
