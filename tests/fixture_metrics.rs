//! The hand-checked scenario in `fixtures/scenario.jsonl`, with every
//! expected number worked out by hand below (hours are from D0 =
//! 2026-11-02T00:00Z):
//!
//! | lead | channel/pool      | cost       | story                                                            |
//! |------|-------------------|------------|------------------------------------------------------------------|
//! | L1   | search / general  | 100.00 CNY | h0 created, h2 → repA, h10 follow-up, h30 converted 1000 (CLV 3000) |
//! | L2   | search / general  | 200.00 CNY | h1 created, h3 → repA, h51 recalled (no first follow-up), h52 → repB, h60 follow-up, h100 converted 500 |
//! | L3   | social / general  |  50.00 CNY | h5 created, h6 → repB, h40 follow-up (34 h: SLA missed), h200 recalled (stale) |
//! | L4   | social / vip      |   7.00 USD | h7 created; waits                                                |
//!
//! Plus three bad inputs: a redelivered assignment (duplicate), a follow-up
//! of L4 by repA who does not hold it (not_owner) and a line that is not
//! JSON (undecodable).

use leadflow::codec::stream::{EventReader, Format};
use leadflow::config::{LogConfig, ProjectionConfig};
use leadflow::domain::{Currency, LeadStatus, RecallReason};
use leadflow::log::{EventLog, LogOptions};
use leadflow::projector::metrics::{Dimension, Window};
use leadflow::projector::Projections;
use leadflow::{import, replay};
use std::io::BufReader;

const H: i64 = 3_600_000;
const D0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z

fn cny() -> Currency {
    Currency::parse("CNY").unwrap()
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn approx(got: Option<f64>, want: f64) {
    let got = got.unwrap_or_else(|| panic!("expected {want}, got None"));
    assert!(
        (got - want).abs() <= want.abs() * 0.011 + 1e-9,
        "got {got}, want {want}"
    );
}

fn load() -> (tempfile::TempDir, EventLog) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
    let file = std::fs::File::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scenario.jsonl"
    ))
    .unwrap();
    let mut reader = EventReader::new(BufReader::new(file), Format::Jsonl);
    let config = LogConfig {
        batch_events_max: 4,
        ..LogConfig::default()
    };
    let s = import::import(&mut log, &mut reader, "fixture", &config, &mut |_, _| {}).unwrap();
    assert_eq!((s.records, s.accepted, s.rejected), (19, 16, 3));
    (dir, log)
}

fn projections(log: &EventLog, until: Option<i64>) -> Projections {
    replay::rebuild(log, &ProjectionConfig::default(), until, &mut |_| {}).unwrap()
}

#[test]
fn bad_inputs_are_rejected_with_their_reasons() {
    let (_dir, log) = load();
    let stats = log.stats().unwrap();
    assert_eq!(stats.events, 16);
    let reasons: Vec<(&str, u64)> = stats
        .rejected_by_reason
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        reasons,
        vec![("duplicate", 1), ("not_owner", 1), ("undecodable", 1)]
    );
}

#[test]
fn cohort_metrics_by_channel() {
    let (_dir, log) = load();
    let p = projections(&log, None);
    let rows = p
        .metrics
        .agg
        .by_dimension(Dimension::Channel, Window::default());
    assert_eq!(rows.keys().collect::<Vec<_>>(), vec!["search", "social"]);

    let search = &rows["search"];
    assert_eq!((search.created, search.converted), (2, 2));
    assert_eq!(search.conversion_rate(), Some(1.0));
    let m = &search.money()[&cny()];
    assert_eq!(
        (m.cost_minor_units, m.revenue_minor_units),
        (30_000, 150_000)
    );
    assert_eq!(m.roi, Some(4.0)); // (1500 - 300) / 300
    assert_eq!(m.cpl_minor_units, Some(15_000.0)); // 300 / 2 leads
    assert_eq!(m.cac_minor_units, Some(15_000.0)); // 300 / 2 customers
    assert_eq!(m.avg_clv_minor_units, Some(175_000.0)); // (3000 + 500) / 2
    assert_eq!(
        (search.recalled_leads, search.converted_after_recall),
        (1, 1)
    );
    assert_eq!(search.conversion_after_recall_rate(), Some(1.0));
    approx(
        search.time_to_first_assignment_ms.quantile(0.5),
        (2 * H) as f64,
    );
    approx(
        search.time_to_first_assignment_ms.quantile(0.9),
        (2 * H) as f64,
    );

    let social = &rows["social"];
    assert_eq!((social.created, social.converted), (2, 0));
    assert_eq!(social.conversion_rate(), Some(0.0));
    let money = social.money();
    assert_eq!(money.len(), 2, "CNY and USD are never added");
    let (c, u) = (&money[&cny()], &money[&usd()]);
    assert_eq!(
        (
            c.cost_minor_units,
            c.roi,
            c.cpl_minor_units,
            c.cac_minor_units
        ),
        (5_000, Some(-1.0), Some(5_000.0), None)
    );
    assert_eq!(
        (u.cost_minor_units, u.roi, u.cpl_minor_units),
        (700, Some(-1.0), Some(700.0))
    );
    assert_eq!(
        (social.recalled_leads, social.converted_after_recall),
        (1, 0)
    );
    assert_eq!(social.conversion_after_recall_rate(), Some(0.0));
    // L4 was never assigned: only L3's hour counts.
    assert_eq!(social.time_to_first_assignment_ms.count(), 1);
    approx(social.time_to_first_assignment_ms.quantile(0.5), H as f64);

    let by_pool = p
        .metrics
        .agg
        .by_dimension(Dimension::Pool, Window::default());
    assert_eq!((by_pool["general"].created, by_pool["vip"].created), (3, 1));
    let by_day = p.metrics.agg.by_day(Window::default());
    assert_eq!(by_day.len(), 1);
    assert_eq!(by_day[&(D0 / (24 * H))].created, 4);
}

/// Recall evaluation by creation dimension: L2 (search) was recalled at
/// h51, reassigned to repB at h52 and followed up at h60: a success, 59 h
/// after its creation at h1; L3 (social) was recalled at h200 and never
/// reassigned. Every lead is in region "east".
#[test]
fn recall_metrics_by_every_creation_dimension() {
    let (_dir, log) = load();
    let p = projections(&log, None);
    let by = |d: Dimension| p.metrics.agg.by_dimension(d, Window::default());
    let channel = by(Dimension::Channel);
    let search = &channel["search"];
    assert_eq!((search.recalls, search.recall_successes), (1, 1));
    assert_eq!(search.recall_success_rate(), Some(1.0));
    approx(
        search.created_to_successful_recall_ms.quantile(0.5),
        (59 * H) as f64,
    );
    let social = &channel["social"];
    assert_eq!((social.recalls, social.recall_successes), (1, 0));
    assert_eq!(social.recall_success_rate(), Some(0.0));
    assert_eq!(social.created_to_successful_recall_ms.count(), 0);
    for d in [
        Dimension::Region,
        Dimension::Industry,
        Dimension::CompanySize,
    ] {
        let rows = by(d);
        assert_eq!(rows.len(), 1, "{d:?}");
        let east = rows.values().next().unwrap();
        assert_eq!((east.recalls, east.recall_successes), (2, 1), "{d:?}");
        assert_eq!(east.recall_success_rate(), Some(0.5));
        // Conversion after recall: L2 converted, L3 did not.
        assert_eq!(east.conversion_after_recall_rate(), Some(0.5));
        approx(
            east.created_to_successful_recall_ms.quantile(0.5),
            (59 * H) as f64,
        );
    }
    let campaign = by(Dimension::Campaign);
    assert_eq!(
        (
            campaign["s1"].recall_success_rate(),
            campaign["x1"].recall_success_rate()
        ),
        (Some(1.0), Some(0.0))
    );
}

#[test]
fn owner_metrics() {
    let (_dir, log) = load();
    let p = projections(&log, None);
    let owners = p.metrics.agg.by_owner(Window::default());
    assert_eq!(owners.keys().collect::<Vec<_>>(), vec!["repA", "repB"]);

    let a = &owners["repA"];
    assert_eq!(
        (
            a.assignments,
            a.first_follow_ups,
            a.first_follow_ups_within_sla
        ),
        (2, 1, 1)
    );
    approx(a.time_to_first_follow_up_ms.quantile(0.5), (8 * H) as f64);
    assert_eq!(
        a.recalls_by_reason.iter().collect::<Vec<_>>(),
        vec![(&RecallReason::NoFirstFollowUp, &1)]
    );
    assert_eq!(a.recall_cycle_ms.mean(), Some((48 * H) as f64)); // h3 → h51
    assert_eq!((a.conversions, a.revenue[&cny()]), (1, 100_000));

    let b = &owners["repB"];
    assert_eq!(
        (
            b.assignments,
            b.first_follow_ups,
            b.first_follow_ups_within_sla
        ),
        (2, 2, 1)
    );
    assert_eq!(b.sla_compliance(), Some(0.5)); // L2 in 8 h, L3 in 34 h
    approx(b.time_to_first_follow_up_ms.quantile(0.5), (8 * H) as f64);
    assert_eq!(
        b.recalls_by_reason.iter().collect::<Vec<_>>(),
        vec![(&RecallReason::Stale, &1)]
    );
    assert_eq!(b.recall_cycle_ms.mean(), Some((194 * H) as f64)); // h6 → h200
    assert_eq!((b.conversions, b.revenue[&cny()]), (1, 50_000));

    // Day 2 alone: repB received L2 and followed it up; repA lost L2.
    let day2 = Window {
        from_ms: Some(D0 + 48 * H),
        to_ms: Some(D0 + 72 * H),
    };
    let owners = p.metrics.agg.by_owner(day2);
    assert_eq!(
        (owners["repB"].assignments, owners["repB"].first_follow_ups),
        (1, 1)
    );
    assert_eq!(
        (owners["repA"].assignments, owners["repA"].recalls()),
        (0, 1)
    );
}

#[test]
fn pool_metrics_over_the_whole_history_and_a_window() {
    let (_dir, log) = load();
    let p = projections(&log, None);
    let pools = p.metrics.agg.by_pool(Window::default());
    let g = &pools["general"];
    // Inflow: L1, L2, L3 created + L2, L3 recalled. Outflow: L1, L2, L3, L2 again.
    assert_eq!((g.waiting_at_start, g.inflow, g.outflow), (0, 5, 4));
    assert_eq!(g.utilisation, Some(0.8));
    // L2 was reassigned to repB and followed up 9 h after its recall; L3 never was.
    assert_eq!((g.recalled_in, g.recall_successes), (2, 1));
    assert_eq!(g.recall_success_rate, Some(0.5));
    let v = &pools["vip"];
    assert_eq!(
        (v.inflow, v.outflow, v.utilisation, v.recall_success_rate),
        (1, 0, Some(0.0), None)
    );

    let from_day2 = Window {
        from_ms: Some(D0 + 48 * H),
        to_ms: None,
    };
    let g = &p.metrics.agg.by_pool(from_day2)["general"];
    assert_eq!((g.waiting_at_start, g.inflow, g.outflow), (0, 2, 1));
    assert_eq!(g.utilisation, Some(0.5));

    let sizes = p.pool.pool_sizes();
    assert_eq!(
        (
            sizes["general"].waiting,
            sizes["general"].held,
            sizes["general"].converted
        ),
        (1, 0, 2)
    );
    assert_eq!(sizes["vip"].waiting, 1);
}

#[test]
fn replay_until_shows_the_past_state() {
    let (_dir, log) = load();
    let p = projections(&log, Some(D0 + 45 * H));
    assert_eq!(p.pool.leads["L1"].status, LeadStatus::Converted);
    assert_eq!(p.pool.leads["L2"].owner.as_deref(), Some("repA"));
    assert_eq!(p.pool.leads["L3"].owner.as_deref(), Some("repB"));
    assert_eq!(
        p.pool.holdings_by_rep(),
        vec![("repA".to_string(), 1), ("repB".to_string(), 1)]
    );
    let sizes = p.pool.pool_sizes();
    assert_eq!(
        (
            sizes["general"].waiting,
            sizes["general"].held,
            sizes["general"].converted
        ),
        (0, 2, 1)
    );
    let owners = p.metrics.agg.by_owner(Window::default());
    assert_eq!(
        owners["repA"].recalls(),
        0,
        "the recall at h51 is in the future"
    );
}
