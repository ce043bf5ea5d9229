//! The policy's lean view of the leads against the projections' pool
//! state, and its shared names.

use super::*;
use crate::domain::{build, Currency, LeadConverted, LeadMoved, LeadScored, Money};
use crate::policy::{PolicyFile, Processor};
use crate::projector::pool::PoolState;
use crate::sim::{SimConfig, Simulator};

fn event(n: u64, lead: &str, body: EventBody) -> LeadEvent {
    build::event(&format!("t-{n}"), lead, body)
        .at(1_800_000_000_000 + n as i64)
        .event()
}

fn created(pool: &str, channel: &str, region: &str, industry: &str) -> EventBody {
    build::created("", "")
        .pool(pool)
        .channel(channel)
        .profile(region, industry, "")
        .body()
}

fn assigned(owner: &str, pool: &str) -> EventBody {
    build::assigned("", "", owner).pool(pool).body()
}

fn recalled(owner: &str, to_pool: &str) -> EventBody {
    build::recalled("", "", owner).pool(to_pool).body()
}

fn converted(owner: &str) -> EventBody {
    EventBody::Converted(LeadConverted {
        owner_id: owner.into(),
        deal_value: Money::new(100, Currency::parse("CNY").unwrap()),
        customer_id: String::new(),
        expected_lifetime_value: None,
    })
}

fn moved(to_pool: &str) -> EventBody {
    EventBody::Moved(LeadMoved {
        to_pool: to_pool.into(),
        command_id: String::new(),
    })
}

/// The simulator's history, then moves, assignments naming a pool, a
/// reassignment to the same rep, a conversion from the pool, and events
/// the lifecycle would refuse (after a conversion, of an unknown lead):
/// the folds never see those from the log, but must not part ways on
/// them either.
fn history() -> Vec<LeadEvent> {
    let mut events: Vec<LeadEvent> = Simulator::new(SimConfig {
        leads: 400,
        days: 20,
        engagement: true,
        ..SimConfig::default()
    })
    .events()
    .collect();
    let tail = [
        ("x4", created("inbound", "referral", "north", "retail")),
        ("x4", assigned("rep-b", "")),
        ("x1", created("inbound", "referral", "north", "retail")),
        ("x1", moved("outbound")),
        ("x1", assigned("rep-a", "")),
        ("x1", moved("vip")),
        ("x1", recalled("rep-a", "cold")),
        ("x1", assigned("rep-b", "inbound")),
        ("x1", assigned("rep-b", "")),
        ("x1", converted("rep-b")),
        ("x1", assigned("rep-a", "")),
        ("x2", created("inbound", "paid_search", "", "")),
        ("x2", converted("")),
        ("x2", assigned("rep-c", "")),
        ("x3", created("inbound", "paid_search", "south", "")),
        ("x3", assigned("rep-a", "")),
        (
            "x3",
            EventBody::Scored(LeadScored {
                score: 77,
                attribute_score: 0,
                behaviour_score: 0,
                predictive_score: 0,
                model_version: String::new(),
            }),
        ),
        ("x3", recalled("rep-a", "")),
        ("ghost", assigned("rep-a", "")),
    ];
    events.extend(
        tail.into_iter()
            .enumerate()
            .map(|(n, (lead, body))| event(n as u64, lead, body)),
    );
    events
}

fn assert_same_answers(
    full: &PoolState,
    lean: &LeadsView,
    attrs: &IdMap<String, (String, String)>,
) {
    assert_eq!(full.leads.len(), lean.leads.len());
    for (id, f) in &full.leads {
        let l = &lean.leads[id.as_str()];
        assert_eq!(l.status, f.status, "{id}");
        assert_eq!(l.owner.as_deref(), f.owner.as_deref(), "{id}");
        assert_eq!(&*l.pool, f.pool, "{id}");
        assert_eq!(&*l.channel, f.channel, "{id}");
        assert_eq!(l.generation, f.generation, "{id}");
        assert_eq!(l.recall_count, f.recall_count, "{id}");
        assert_eq!(l.score(), f.score, "{id}");
        let (region, industry) = &attrs[id.as_str()];
        assert_eq!(
            (&*l.region, &*l.industry),
            (region.as_str(), industry.as_str())
        );
    }
    assert_eq!(PoolCounts::held_by_rep(lean), PoolCounts::held_by_rep(full));
    assert_eq!(PoolCounts::pool_sizes(lean), PoolCounts::pool_sizes(full));
    for pool in full.pool_sizes().keys() {
        assert_eq!(
            lean.held_in_pool_by_rep(pool),
            full.held_in_pool_by_rep(pool)
        );
    }
}

#[test]
fn the_policy_view_answers_as_the_projections_pool_state() {
    // Given a long history with every kind of ownership change.
    let events = history();
    // When the projections' pool state and the policy's view fold it.
    let (mut full, mut lean, mut names) =
        (PoolState::default(), LeadsView::default(), Names::default());
    let mut attrs: IdMap<String, (String, String)> = IdMap::default();
    let mut compared = 0;
    for (i, e) in events.iter().enumerate() {
        if let EventBody::Created(c) = &e.body {
            attrs
                .entry(e.lead_id.clone())
                .or_insert_with(|| (c.region.clone(), c.industry.clone()));
        }
        full.apply(e);
        lean.apply(e, &mut names);
        // Then they answer alike all along.
        if i % 500 == 0 || i + 20 > events.len() {
            assert_same_answers(&full, &lean, &attrs);
            compared += 1;
        }
    }
    assert!(
        compared > 10 && full.holdings.len() > 3,
        "{compared} comparisons"
    );
}

#[test]
fn names_are_shared_and_shared_again_after_a_snapshot() {
    // Given a processor that has seen two leads created in one pool and
    // assigned to one rep.
    let policy = PolicyFile::parse(
        "version = 1\n[rules]\nfirst_follow_up_sla_ms = 86400000\n\
         [[pools]]\nname = \"inbound\"\nkind = \"claimable\"\n",
    )
    .unwrap();
    let mut p = Processor::new(policy.clone());
    let script = [
        ("a", created("inbound", "referral", "north", "retail")),
        ("b", created("inbound", "referral", "north", "retail")),
        ("a", assigned("rep-1", "")),
        ("b", assigned("rep-1", "")),
    ];
    for (n, (lead, body)) in script.into_iter().enumerate() {
        p.handle(n as u64 + 1, &event(n as u64, lead, body));
    }
    let shared = |p: &Processor| {
        let s = p.state();
        let (a, b) = (&s.pool.leads["a"], &s.pool.leads["b"]);
        let (wa, wb) = (s.watch("a").unwrap(), s.watch("b").unwrap());
        ThinStr::ptr_eq(&a.pool, &b.pool)
            && ThinStr::ptr_eq(&a.channel, &b.channel)
            && ThinStr::ptr_eq(&a.region, &b.region)
            && ThinStr::ptr_eq(a.owner.as_ref().unwrap(), b.owner.as_ref().unwrap())
            && ThinStr::ptr_eq(&wa.pool, &a.pool)
            && ThinStr::ptr_eq(&wa.pool, &wb.pool)
            && ["a", "b"].iter().all(|lead| {
                // One copy of each lead's id, in the view (whose records
                // hold the watches) and the due index.
                let (id, _) = s.pool.leads.get_key_value(*lead).unwrap();
                let due = s.due.iter().find(|(_, l)| &**l == *lead).unwrap();
                ThinStr::ptr_eq(id, &due.1)
            })
    };
    // Then the leads and their watches hold one copy of each name and of
    // each lead's id.
    assert!(shared(&p));
    // When its state is saved and read back.
    let bytes = p.state_to_bytes();
    let read = Processor::state_from_bytes(&bytes).unwrap();
    assert!(!ThinStr::ptr_eq(
        &read.pool.leads["a"].pool,
        &read.pool.leads["b"].pool
    ));
    let resumed = Processor::resume(policy, read);
    // Then the processor resumed from it shares them again and equals the
    // original.
    assert!(shared(&resumed));
    assert_eq!(resumed.state(), p.state());
}

#[test]
fn the_names_table_is_bounded_and_its_names_stay_valid() {
    // Given more distinct names than the table keeps.
    let mut names = Names::default();
    let first = names.share("region-0");
    for i in 0..NAMES_INTERNED_MAX + 10 {
        names.share(&format!("region-{i}"));
    }
    // Then it started over, and what it handed out still reads the same.
    assert!(names.table.len() <= NAMES_INTERNED_MAX);
    assert_eq!(&*first, "region-0");
    assert!(ThinStr::ptr_eq(
        &names.share("region-5"),
        &names.share("region-5")
    ));
}

/// The records held per open assignment stay within one 64-byte
/// allocator class each (README, Performance: what the policy state costs
/// per open assignment); a field added to either shows up here first.
#[test]
fn a_lead_and_its_watch_fit_64_bytes_each() {
    assert!(std::mem::size_of::<PolicyLead>() <= 64);
    assert!(std::mem::size_of::<Watch>() <= 64);
}

#[test]
fn a_watchs_moments_read_back_as_set_and_an_absent_one_compares_equal() {
    // Given a watch followed up and indexed.
    let limits = std::sync::Arc::new(crate::policy::Limits::default());
    let fresh = Watch::new(Name::new("inbound"), limits, 1, 10, "ev-1");
    let mut w = fresh.clone();
    assert_eq!((w.last_follow_up_ms(), w.due_ms()), (None, None));
    w.set_last_follow_up_ms(20);
    w.set_due_ms(Some(-5));
    assert_eq!((w.last_follow_up_ms(), w.due_ms()), (Some(20), Some(-5)));
    // When it leaves the due index.
    w.set_due_ms(None);
    assert_eq!(w.due_ms(), None);
    // Then it equals, and serialises as, a watch that was never indexed.
    let mut never = fresh.clone();
    never.set_last_follow_up_ms(20);
    assert_eq!(w, never);
    assert_eq!(
        bincode::serialize(&w).unwrap(),
        bincode::serialize(&never).unwrap()
    );
    // And a moment of 0 is a moment, not an absence.
    w.set_due_ms(Some(0));
    assert_eq!(w.due_ms(), Some(0));
    assert_ne!(w, never);
}
