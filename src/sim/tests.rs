use super::*;
use crate::domain::lifecycle;
use std::collections::HashMap;

fn run(config: SimConfig) -> Vec<SimItem> {
    Simulator::new(config).collect()
}

#[test]
fn the_same_seed_gives_the_same_events() {
    let c = SimConfig {
        leads: 300,
        days: 10,
        ..SimConfig::default()
    };
    assert_eq!(run(c.clone()), run(c.clone()));
    let other = run(SimConfig {
        seed: 7,
        ..c.clone()
    });
    assert_ne!(run(c), other);
}

#[test]
fn generated_events_are_all_valid_and_in_time_order() {
    let items = run(SimConfig {
        leads: 2_000,
        days: 30,
        engagement: true,
        ..SimConfig::default()
    });
    let mut states: HashMap<String, lifecycle::Lead> = HashMap::new();
    let mut last_ms = i64::MIN;
    let mut kinds: HashMap<EventKind, u64> = HashMap::new();
    for item in items {
        let SimItem::Event(e) = item else {
            panic!("no bad inputs asked for")
        };
        assert!(e.occurred_at_ms >= last_ms, "time order");
        last_ms = e.occurred_at_ms;
        let next = lifecycle::handle(states.get(&e.lead_id), &e)
            .unwrap_or_else(|r| panic!("{} rejected: {r}", e.event_id));
        states.insert(e.lead_id.clone(), next);
        *kinds.entry(e.body.kind()).or_default() += 1;
    }
    assert_eq!(kinds[&EventKind::Created], 2_000);
    // A realistic floor has all of these, in sane proportions (but
    // declines: the simulated CRM carries out every command it is given;
    // and claims and moves: its pools are all allocated by the engine, and
    // no manager moves a lead).
    for k in EventKind::ALL.into_iter().filter(|k| {
        !matches!(
            k,
            EventKind::CommandDeclined | EventKind::ClaimRequested | EventKind::Moved
        )
    }) {
        assert!(kinds.get(&k).copied().unwrap_or(0) > 0, "no {k:?} events");
    }
    let converted = kinds[&EventKind::Converted] as f64 / 2_000.0;
    assert!((0.02..0.5).contains(&converted), "conversion {converted}");
}

#[test]
fn bad_inputs_come_with_their_expected_reasons() {
    let mut sim = Simulator::new(SimConfig {
        leads: 500,
        days: 10,
        bad_ratio: 0.2,
        ..SimConfig::default()
    });
    let mut bad = 0;
    for item in sim.by_ref() {
        if let SimItem::Bad {
            expected_reason, ..
        } = item
        {
            bad += 1;
            assert!(!expected_reason.is_empty());
        }
    }
    assert!(bad > 100);
    assert_eq!(sim.summary().bad_by_reason.values().sum::<u64>(), bad);
}

#[test]
fn interactions_come_on_top_of_the_same_history_and_follow_the_score() {
    let plain = SimConfig {
        leads: 1_000,
        days: 20,
        bad_ratio: 0.05,
        ..SimConfig::default()
    };
    let with = run(SimConfig {
        engagement: true,
        ..plain.clone()
    });
    let (engaged, rest): (Vec<SimItem>, Vec<SimItem>) = with.into_iter().partition(|i| {
        matches!(
            i,
            SimItem::Event(LeadEvent {
                body: EventBody::Engaged(_),
                ..
            })
        )
    });
    // Every other event, bad inputs included, is the same as without them.
    assert_eq!(rest, run(plain));
    // Leads the simulator scored high interact more, and reply and fill in
    // forms far more: the telling kinds are what a model can learn from.
    let mut scores: HashMap<String, u32> = HashMap::new();
    for item in &rest {
        if let SimItem::Event(LeadEvent {
            lead_id,
            body: EventBody::Scored(s),
            ..
        }) = item
        {
            scores.insert(lead_id.clone(), s.score);
        }
    }
    let mut by_half: [HashMap<String, u64>; 2] = Default::default();
    for item in &engaged {
        let SimItem::Event(e) = item else {
            unreachable!()
        };
        let EventBody::Engaged(g) = &e.body else {
            unreachable!()
        };
        let half = usize::from(scores[&e.lead_id] >= 50);
        *by_half[half].entry(g.kind.clone()).or_default() += 1;
    }
    let high_leads = scores.values().filter(|s| **s >= 50).count() as f64;
    let low_leads = scores.len() as f64 - high_leads;
    let rate = |half: usize, kind: &str, leads: f64| {
        by_half[half].get(kind).copied().unwrap_or(0) as f64 / leads
    };
    for kind in ["web_visit", "email_reply", "form_submit"] {
        assert!(
            rate(1, kind, high_leads) > 1.3 * rate(0, kind, low_leads),
            "{kind}: {by_half:?}"
        );
    }
    assert!(rate(1, "email_reply", high_leads) > 3.0 * rate(0, "email_reply", low_leads));
}
