use super::metrics::{Dimension, MetricParams, Window};
use super::*;
use crate::domain::*;

const H: i64 = 3_600_000;

fn cny(v: i64) -> Money {
    Money::new(v, Currency::parse("CNY").unwrap())
}

fn ev(lead: &str, at: i64, body: EventBody) -> LeadEvent {
    build::event(&format!("{lead}-{at}"), lead, body)
        .at(at)
        .producer("")
        .event()
}

fn created(lead: &str, at: i64, channel: &str) -> LeadEvent {
    build::created(&format!("{lead}-{at}"), lead)
        .at(at)
        .producer("")
        .channel(channel)
        .profile("r", "i", "s")
        .cost(cny(1000))
        .event()
}

fn assigned(lead: &str, at: i64, owner: &str) -> LeadEvent {
    build::assigned(&format!("{lead}-{at}"), lead, owner)
        .at(at)
        .producer("")
        .event()
}

fn recalled(lead: &str, at: i64, owner: &str) -> LeadEvent {
    build::recalled(&format!("{lead}-{at}"), lead, owner)
        .at(at)
        .producer("")
        .event()
}

fn params() -> MetricParams {
    MetricParams {
        follow_up_sla_ms: 24 * H,
        recall_success_window_ms: 7 * 24 * H,
        time_zone: "UTC".into(),
        rates: None,
    }
}

fn fold(events: &[LeadEvent]) -> Projections {
    fold_filtered(LeadFilter::default(), events)
}

/// The events of `leads` only, folded: one partition store's share.
fn fold_of(events: &[LeadEvent], leads: &[&str]) -> Projections {
    let evs: Vec<_> = events
        .iter()
        .filter(|e| leads.contains(&e.lead_id.as_str()))
        .cloned()
        .collect();
    fold(&evs)
}

/// Three leads, two reps: "a" assigned, recalled and assigned to another
/// rep; "b" assigned; "c" waiting.
fn three_leads_two_reps() -> Vec<LeadEvent> {
    vec![
        created("a", 0, "x"),
        created("b", H, "y"),
        created("c", H, "y"),
        assigned("a", 2 * H, "rep-1"),
        assigned("b", 3 * H, "rep-1"),
        recalled("a", 30 * H, "rep-1"),
        assigned("a", 31 * H, "rep-2"),
    ]
}

fn fold_filtered(filter: LeadFilter, events: &[LeadEvent]) -> Projections {
    let mut p = Projections::filtered(params(), filter);
    for (i, e) in events.iter().enumerate() {
        p.apply(i as u64 + 1, e);
    }
    p
}

/// Lead `lead` converted by rep-1 at `at` (a 500.00 CNY deal).
fn converted(lead: &str, at: i64) -> LeadEvent {
    ev(
        lead,
        at,
        EventBody::Converted(LeadConverted {
            owner_id: "rep-1".into(),
            deal_value: cny(50_000),
            customer_id: "c".into(),
            expected_lifetime_value: None,
        }),
    )
}

#[test]
fn pool_state_tracks_holdings_waiting_and_previous_owners() {
    let p = fold(&[
        created("a", 0, "x"),
        created("b", 0, "x"),
        assigned("a", H, "rep-1"),
        recalled("a", 2 * H, "rep-1"),
        assigned("a", 3 * H, "rep-2"),
    ]);
    let a = &p.pool.leads["a"];
    assert_eq!(a.owner.as_deref(), Some("rep-2"));
    assert_eq!(a.previous_owners, vec!["rep-1".to_string()]);
    assert_eq!((a.generation, a.recall_count), (2, 1));
    assert!(!p.pool.holdings.contains_key("rep-1"));
    assert!(p.pool.holdings["rep-2"].contains("a"));
    assert_eq!(
        p.pool.waiting["general"].iter().collect::<Vec<_>>(),
        vec!["b"]
    );
    let sizes = p.pool.pool_sizes();
    assert_eq!((sizes["general"].waiting, sizes["general"].held), (1, 1));
    assert_eq!(p.covered_seq, 5);
}

#[test]
#[should_panic(expected = "folded again")]
fn folding_an_event_twice_is_refused() {
    let mut p = fold(&[created("a", 0, "x")]);
    p.apply(1, &created("a", 0, "x"));
}

#[test]
fn aggregates_of_lead_partitions_merge_into_the_whole() {
    let events = vec![
        created("a", 0, "x"),
        created("b", H, "y"),
        assigned("a", 2 * H, "rep-1"),
        assigned("b", 3 * H, "rep-1"),
        recalled("a", 30 * H, "rep-1"),
        assigned("a", 31 * H, "rep-2"),
    ];
    let whole = fold(&events);
    let part = |lead: &str| {
        let evs: Vec<_> = events
            .iter()
            .filter(|e| e.lead_id == lead)
            .cloned()
            .collect();
        fold(&evs).metrics.agg
    };
    let mut merged = part("a");
    merged.merge(&part("b"));
    assert_eq!(merged, whole.metrics.agg);
    let by_channel = merged.by_dimension(Dimension::Channel, Window::default());
    assert_eq!(by_channel["x"].recalled_leads, 1);
    assert_eq!(by_channel["y"].recalled_leads, 0);
}

#[test]
fn snapshots_round_trip_through_bytes() {
    let p = fold(&[created("a", 0, "x"), assigned("a", H, "rep")]);
    assert_eq!(Projections::from_bytes(&p.to_bytes()).unwrap(), p);
}

#[test]
fn money_sums_do_not_wrap_and_large_sums_stay_exact_in_json() {
    // Two deals of the largest accepted amount, 10^4 times: the sum passes
    // i64::MAX and must be reported exactly (a string in JSON), not wrapped.
    use crate::domain::lifecycle::MONEY_MINOR_UNITS_MAX;
    let cny = crate::domain::Currency::parse("CNY").unwrap();
    let mut sum = crate::projector::metrics::MoneyByCurrency::new();
    let n: i128 = 10_000;
    for _ in 0..n {
        let one: crate::projector::metrics::MoneyByCurrency =
            [(cny, i128::from(MONEY_MINOR_UNITS_MAX))].into();
        let mut agg = crate::projector::metrics::CohortAgg {
            revenue: one,
            ..Default::default()
        };
        agg.merge(&crate::projector::metrics::CohortAgg {
            revenue: sum.clone(),
            ..Default::default()
        });
        sum = agg.revenue;
    }
    assert_eq!(sum[&cny], n * i128::from(MONEY_MINOR_UNITS_MAX));
    let agg = crate::projector::metrics::CohortAgg {
        revenue: sum,
        ..Default::default()
    };
    let json = serde_json::to_value(&agg.money()[&cny]).unwrap();
    assert_eq!(json["revenue_minor_units"], "10000000000000000000");
    assert_eq!(json["cost_minor_units"], 0);
}

#[test]
fn a_follow_up_stamped_before_its_assignment_within_the_tolerance_counts_zero_ms() {
    // Given a lead assigned at 1 h, when the rep's follow-up is stamped
    // 30 s before the assignment (clock skew the order rule tolerates),
    // then it is a first follow-up at 0 ms, not a negative duration, and a
    // recall stamped before the assignment gives a 0 ms cycle.
    let follow = ev(
        "a",
        H - 30_000,
        EventBody::FollowedUp(LeadFollowedUp {
            owner_id: "rep-1".into(),
            kind: FollowUpKind::Call,
            outcome: String::new(),
        }),
    );
    let p = fold(&[
        created("a", 0, "x"),
        assigned("a", H, "rep-1"),
        follow,
        recalled("a", H - 10_000, "rep-1"),
    ]);
    let day = crate::domain::time::day_of(H);
    let o = &p.metrics.agg.owners[&("rep-1".to_string(), day)];
    assert_eq!((o.first_follow_ups, o.first_follow_ups_within_sla), (1, 1));
    assert_eq!(o.time_to_first_follow_up_ms.quantile(0.5), Some(0.0));
    assert_eq!(o.recall_cycle_ms.quantile(0.5), Some(0.0));
}

#[test]
fn cohorts_by_tenant_count_each_tenants_leads_and_none_for_the_default_tenant() {
    // Given two leads of tenant t1, one of t2 and one of the default tenant.
    let mut p = Projections::new(MetricParams::from(
        &crate::config::ProjectionConfig::default(),
    ));
    let mut seq = 0;
    for (lead, tenant) in [("a", "t1"), ("b", "t1"), ("c", "t2"), ("d", "")] {
        let mut e = created(lead, H, "search");
        e.tenant_id = tenant.into();
        seq += 1;
        p.apply(seq, &e);
    }
    // When the cohorts are read by tenant, then each tenant has its leads
    // and the default tenant has no row (by channel, all four count).
    let by_tenant = p
        .metrics
        .agg
        .by_dimension(Dimension::Tenant, Window::default());
    let created: Vec<(&str, u64)> = by_tenant
        .iter()
        .map(|(t, a)| (t.as_str(), a.created))
        .collect();
    assert_eq!(created, vec![("t1", 2), ("t2", 1)]);
    let by_channel = p
        .metrics
        .agg
        .by_dimension(Dimension::Channel, Window::default());
    assert_eq!(by_channel["search"].created, 4);
}

#[test]
fn an_average_lifetime_value_in_a_currency_without_cost_or_revenue_is_kept() {
    // Given a row whose cost is in CNY, whose deal is in USD, and whose
    // expected lifetime values are in EUR (3,000.00 and 1,000.00).
    let eur = crate::domain::Currency::parse("EUR").unwrap();
    let agg = crate::projector::metrics::CohortAgg {
        acquisition_cost: [(Currency::parse("CNY").unwrap(), 1_000)].into(),
        revenue: [(Currency::parse("USD").unwrap(), 50_000)].into(),
        clv_sum: [(eur, 400_000)].into(),
        clv_count: [(eur, 2)].into(),
        ..Default::default()
    };
    // When its money metrics are derived, then EUR has a row with the
    // average lifetime value (it was dropped: no cost or revenue in EUR),
    // and no cost, revenue or ratio made up for it.
    let money = agg.money();
    let m = &money[&eur];
    assert_eq!(m.avg_clv_minor_units, Some(200_000.0));
    assert_eq!((m.cost_minor_units, m.revenue_minor_units), (0, 0));
    assert_eq!(
        (m.roi, m.cpl_minor_units, m.cac_minor_units),
        (None, None, None)
    );
    assert_eq!(money.len(), 3);
}

#[test]
fn projections_of_partition_stores_sum_to_the_whole_for_reading() {
    // Given one history folded whole, and split by lead into two stores.
    let events = three_leads_two_reps();
    let whole = fold(&events);
    let (one, two) = (fold_of(&events, &["a"]), fold_of(&events, &["b", "c"]));
    // When they are summed for reading.
    let summed = Projections::summed([&one, &two]).unwrap();
    // Then the pool state and the aggregates are the whole's, and the
    // events covered add up.
    assert_eq!(summed.pool, whole.pool);
    assert_eq!(summed.metrics.agg, whole.metrics.agg);
    assert_eq!(summed.covered_seq, 7);
    assert_eq!(summed.pool.holdings["rep-1"].len(), 1);
    assert!(Projections::summed([]).is_none());
}

fn with_fingerprint(mut e: LeadEvent, fp: &str) -> LeadEvent {
    if let EventBody::Created(c) = &mut e.body {
        c.contact_fingerprint = fp.to_string();
    }
    e
}

/// Duplicate contacts counted by channel: "partner" sells us B and C,
/// contacts of A (open) and of D (converted before C came). Only B is a
/// duplicate; partner's cost per unique lead is its cost over one lead.
#[test]
fn duplicate_contacts_are_counted_where_they_were_bought() {
    let events = vec![
        with_fingerprint(created("A", 0, "search"), "fp-1"),
        with_fingerprint(created("D", 1, "search"), "fp-2"),
        assigned("D", 2, "rep"),
        ev(
            "D",
            3,
            EventBody::Converted(LeadConverted {
                owner_id: "rep".into(),
                deal_value: cny(5_000),
                customer_id: "c".into(),
                expected_lifetime_value: None,
            }),
        ),
        with_fingerprint(created("B", 4, "partner"), "fp-1"),
        with_fingerprint(created("C", 5, "partner"), "fp-2"),
        // A lead without a fingerprint is never a duplicate.
        created("E", 6, "partner"),
        created("F", 7, "partner"),
    ];
    let p = fold(&events);
    let rows = p
        .metrics
        .agg
        .by_dimension(Dimension::Channel, Window::default());
    let (partner, search) = (&rows["partner"], &rows["search"]);
    assert_eq!((partner.created, partner.duplicates), (4, 1));
    assert_eq!(partner.duplicate_rate(), Some(0.25));
    assert_eq!(search.duplicates, 0);
    let m = &partner.money()[&Currency::parse("CNY").unwrap()];
    // 4 leads at 10.00 CNY: 10.00 per lead, 13.33 per unique lead.
    assert_eq!(m.cpl_minor_units, Some(1_000.0));
    assert_eq!(m.cpl_unique_minor_units, Some(4_000.0 / 3.0));
}

fn followed(lead: &str, at: i64, owner: &str) -> LeadEvent {
    ev(
        lead,
        at,
        EventBody::FollowedUp(LeadFollowedUp {
            owner_id: owner.into(),
            kind: FollowUpKind::Call,
            outcome: String::new(),
        }),
    )
}

#[test]
fn the_funnel_counts_distinct_leads_and_never_rises() {
    // Given four leads of one channel: a assigned three times (recalled and
    // reassigned twice), followed up twice and converted; b assigned and
    // never followed up; c never assigned; d converted with no recorded
    // assignment or follow-up (an import of a closed deal).
    let p = fold(&[
        created("a", 0, "x"),
        created("b", 0, "x"),
        created("c", 0, "x"),
        created("d", 0, "x"),
        assigned("a", H, "rep-1"),
        recalled("a", 2 * H, "rep-1"),
        assigned("a", 3 * H, "rep-2"),
        followed("a", 4 * H, "rep-2"),
        recalled("a", 5 * H, "rep-2"),
        assigned("a", 6 * H, "rep-1"),
        followed("a", 7 * H, "rep-1"),
        converted("a", 8 * H),
        assigned("b", H, "rep-2"),
        converted("d", 2 * H),
    ]);
    // When the channel's cohort is read, then each stage counts leads, not
    // events: 4 created, 3 reached assignment (a, b, d; a's three
    // assignments count once), 2 a follow-up (a, d), 2 converted.
    let row = &p
        .metrics
        .agg
        .by_dimension(Dimension::Channel, Window::default())["x"];
    let funnel = [
        row.created,
        row.leads_assigned,
        row.leads_followed_up,
        row.converted,
    ];
    assert_eq!(funnel, [4, 3, 2, 2]);
    let owners: u64 = p
        .metrics
        .agg
        .by_owner(Window::default())
        .values()
        .map(|o| o.assignments)
        .sum();
    assert_eq!(owners, 4, "assignment events, which the old funnel summed");
}

#[test]
fn a_filtered_view_counts_its_leads_exactly_as_the_whole_does() {
    // Given leads of two channels and two tenants, with a partner lead
    // duplicating a search lead's contact (and one duplicating a contact
    // that was freed when its lead converted), reassignments and
    // conversions.
    let mut t2 = created("E", 1, "partner");
    t2.tenant_id = "t2".into();
    let events = vec![
        with_fingerprint(created("A", 0, "search"), "fp-1"),
        with_fingerprint(created("D", 0, "search"), "fp-2"),
        assigned("D", 1, "rep-1"),
        converted("D", 2),
        with_fingerprint(created("B", 3, "partner"), "fp-1"),
        with_fingerprint(created("C", 3, "partner"), "fp-2"),
        t2,
        assigned("B", H, "rep-1"),
        assigned("A", H, "rep-2"),
        recalled("B", 2 * H, "rep-1"),
        assigned("B", 3 * H, "rep-2"),
        followed("B", 4 * H, "rep-2"),
        converted("B", 5 * H),
        assigned("E", H, "rep-1"),
    ];
    let whole = fold(&events);
    let partner = fold_filtered(
        LeadFilter {
            channel: Some("partner".into()),
            ..Default::default()
        },
        &events,
    );
    // When the partner channel is read from the whole and from a view of
    // partner leads only, then its cohort is the same (duplicates too: B,
    // not C), the view has no other channel, its reps did only partner
    // work (rep-2's assignment of A is not there) and its pools hold only
    // partner leads.
    let row = |p: &Projections, channel: &str| {
        p.metrics
            .agg
            .by_dimension(Dimension::Channel, Window::default())
            .remove(channel)
    };
    let want = row(&whole, "partner").unwrap();
    assert_eq!(want.duplicates, 1);
    assert_eq!((want.created, want.converted), (3, 1));
    assert_eq!(row(&partner, "partner"), Some(want));
    assert_eq!(row(&partner, "search"), None);
    let owners = partner.metrics.agg.by_owner(Window::default());
    assert_eq!(owners["rep-2"].assignments, 1);
    assert_eq!(owners["rep-1"].assignments, 2);
    assert_eq!(partner.pool.leads.len(), 3);
    // And a tenant's view holds that tenant's leads only.
    let tenant = fold_filtered(
        LeadFilter {
            tenant: Some("t2".into()),
            ..Default::default()
        },
        &events,
    );
    assert_eq!(tenant.pool.leads.keys().collect::<Vec<_>>(), vec!["E"]);
}

/// The fold finds a cohort by its borrowed parts exactly where the owned
/// key would: the parts' order is the key's (dimension, value, day), so a
/// look-up never misses a cohort (which would count it twice) nor hits
/// another.
#[test]
fn a_cohort_is_found_by_its_parts_as_by_its_key() {
    use crate::projector::metrics::{CohortKey, CohortKeyParts, Dimension};
    use std::collections::BTreeMap;
    let mut cohorts = BTreeMap::new();
    let mut n = 0;
    for dimension in Dimension::ALL {
        for value in ["", "a", "ab", "b", "search", "seo"] {
            for day in [-1, 0, 20_400] {
                n += 1;
                let key = CohortKey {
                    dimension,
                    value: value.to_string(),
                    day,
                };
                cohorts.insert(key, n);
            }
        }
    }
    for (key, want) in &cohorts {
        let parts = (key.dimension, key.value.as_str(), key.day);
        assert_eq!(cohorts.get(&parts as &dyn CohortKeyParts), Some(want));
    }
    let absent = (Dimension::Channel, "sea", 0i64);
    assert_eq!(cohorts.get(&absent as &dyn CohortKeyParts), None);
}

/// Snapshots written when a pool's waiting leads and a rep's holdings were
/// ordered sets load into today's hashed sets: bincode writes both as the
/// same sequence, so no snapshot version changed.
#[test]
fn an_ordered_set_of_an_older_snapshot_loads_as_an_id_set() {
    let older: std::collections::BTreeSet<String> = ["b", "a", "c"].map(String::from).into();
    let bytes = bincode::serialize(&older).unwrap();
    let now: super::IdSet<String> = bincode::deserialize(&bytes).unwrap();
    assert_eq!(now.len(), 3);
    assert!(older.iter().all(|id| now.contains(id)));
}

#[test]
fn a_day_row_is_found_by_its_borrowed_name_and_made_once() {
    // Given a table with rows whose names and days interleave in order.
    let mut table: std::collections::BTreeMap<(String, i64), u64> = Default::default();
    let names = ["rep-10", "rep-2", "rep-1", "", "rep-b", "rep-a"];
    for day in [3, -1, 20_000, 0] {
        for name in names {
            super::metrics::with_day_row(&mut table, name, day, |n| *n += 1);
        }
    }
    // When every row is counted again through the borrowed look-up.
    for day in [0, 20_000, -1, 3] {
        for name in names.iter().rev() {
            super::metrics::with_day_row(&mut table, name, day, |n| *n += 1);
        }
    }
    // Then each row was made once and found the second time.
    assert_eq!(table.len(), names.len() * 4);
    assert!(table.values().all(|n| *n == 2), "{table:?}");
}

/// Given the pool states of two folds of disjoint leads, when either
/// absorbs the other, then it is the pool state of one fold of them all
/// (`leadflow replay` folds a third of the leads' pools beside the
/// metrics and absorbs them into the rest).
#[test]
fn the_pool_states_of_disjoint_leads_absorbed_are_the_whole() {
    let events = three_leads_two_reps();
    let whole = fold(&events).pool;
    let (one, two) = (
        fold_of(&events, &["a"]).pool,
        fold_of(&events, &["b", "c"]).pool,
    );
    let mut larger = two.clone();
    larger.absorb(one.clone());
    let mut smaller = one;
    smaller.absorb(two);
    assert_eq!(larger, whole);
    assert_eq!(smaller, whole);
    assert_eq!(whole.holdings["rep-1"].len(), 1);
    assert_eq!(whole.waiting["general"].len(), 1);
}

/// A cohort keeps its place in the table (the fold's working records hold
/// it) through the table's bytes; tables holding the same cohorts are
/// equal in whatever order the cohorts came; bytes naming a cohort twice
/// are refused rather than read as a table that counts it in two rows.
#[test]
fn a_cohort_table_keeps_its_places_and_refuses_a_cohort_twice() {
    use super::metrics::{CohortAgg, CohortKey, CohortTable};
    // Given a table with two cohorts, one of them counted.
    let mut t = CohortTable::default();
    let seo = t.place(Dimension::Channel, "seo", 3);
    let campaign = t.place(Dimension::Campaign, "seo", 3);
    assert_ne!(seo, campaign);
    assert_eq!(t.place(Dimension::Channel, "seo", 3), seo);
    t.row_mut(campaign).created += 2;
    // When it goes through its bytes.
    let mut back: CohortTable = bincode::deserialize(&bincode::serialize(&t).unwrap()).unwrap();
    // Then every cohort is where it was, with its row.
    assert_eq!(back.len(), 2);
    assert_eq!(back.place(Dimension::Campaign, "seo", 3), campaign);
    assert_eq!(back.place(Dimension::Channel, "seo", 3), seo);
    assert_eq!(back.row_mut(campaign).created, 2);
    // And a table made in the other order is the same table.
    let mut other = CohortTable::default();
    let c = other.place(Dimension::Campaign, "seo", 3);
    other.row_mut(c).created += 2;
    other.place(Dimension::Channel, "seo", 3);
    assert_eq!(other, t);
    other.row_mut(c).created += 1;
    assert_ne!(other, t);
    // And bytes with a cohort twice are refused.
    let key = CohortKey {
        dimension: Dimension::Channel,
        value: "seo".into(),
        day: 3,
    };
    let twice = vec![
        (key.clone(), CohortAgg::default()),
        (key, CohortAgg::default()),
    ];
    let bytes = bincode::serialize(&twice).unwrap();
    assert!(bincode::deserialize::<CohortTable>(&bytes).is_err());
}

/// Lead ids are held inline up to 23 bytes and on the heap past that: ids
/// on either side of the line (and a UUID's 36 bytes) are folded, found by
/// `&str` and come back from a snapshot alike.
#[test]
fn lead_ids_short_and_long_are_folded_and_found_alike() {
    let ids = [
        "a".to_string(),
        "x".repeat(23),
        "y".repeat(24),
        "0b6f3c1e-5d2a-4f7b-9c8e-1a2b3c4d5e6f".to_string(),
    ];
    let mut events = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        events.push(created(id, i as i64 * H, "x"));
        events.push(assigned(id, (i as i64 + 10) * H, "rep-1"));
    }
    let p = fold(&events);
    let back = Projections::from_bytes(&p.to_bytes()).unwrap();
    for id in &ids {
        for view in [&p, &back] {
            assert_eq!(
                view.pool.leads[id.as_str()].owner.as_deref(),
                Some("rep-1"),
                "{id}"
            );
            assert!(view.pool.holdings["rep-1"].contains(id.as_str()), "{id}");
        }
    }
    assert_eq!(back, p);
}

/// A snapshot that decodes but whose leads point at cohorts its table
/// does not hold is refused (the caller rebuilds from the log), not folded
/// on until a look-up falls outside the table.
#[test]
fn a_snapshot_whose_leads_point_outside_its_tables_is_refused() {
    // Given projections of a history with open leads.
    let mut p = fold(&three_leads_two_reps());
    assert!(Projections::from_bytes(&p.to_bytes()).is_ok());
    // When their cohort table loses its rows.
    p.metrics.agg.cohorts = super::metrics::CohortTable::default();
    // Then their bytes are refused.
    let err = Projections::from_bytes(&p.to_bytes()).unwrap_err();
    assert!(err.to_string().contains("outside its tables"), "{err}");
}
