//! Terminal tables and JSON rows for `stats`, `replay` and `inspect`.
//! Formatting only: every number comes from the projections.

use crate::domain::time::format_day;
use crate::domain::Currency;
use crate::projector::metrics::{Aggregates, CohortAgg, Dimension, OwnerAgg, PoolWindow, Window};
use crate::projector::pool::{PoolSize, PoolState};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What `stats --by` groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsBy {
    Channel,
    Campaign,
    Pool,
    Region,
    Industry,
    CompanySize,
    /// The lead's tenant (leads of the default tenant have no row).
    Tenant,
    /// Creation day (all leads).
    Day,
    /// Sales rep, by event day.
    Owner,
    /// Pool flows: inflow, outflow, utilisation, recall success.
    Pools,
    /// Fairness of assignment: per active member of the policy's
    /// auto-assign pools, assignments per unit of capacity and SLA
    /// compliance, and the Gini coefficient (needs `[policy] file`).
    Fairness,
    /// Each scoring model version's predictions against the outcomes
    /// known since (AUC, Brier score, log-loss, calibration by decile,
    /// lift of the top decile), folded from the log's `scored` events.
    ScoreModel,
}

impl StatsBy {
    /// The grouping named `name` as the CLI spells it (`company-size`),
    /// case-insensitively.
    pub fn parse(name: &str) -> Option<StatsBy> {
        <StatsBy as clap::ValueEnum>::from_str(name, true).ok()
    }

    fn dimension(self) -> Option<Dimension> {
        Some(match self {
            StatsBy::Channel => Dimension::Channel,
            StatsBy::Campaign => Dimension::Campaign,
            StatsBy::Pool => Dimension::Pool,
            StatsBy::Region => Dimension::Region,
            StatsBy::Industry => Dimension::Industry,
            StatsBy::CompanySize => Dimension::CompanySize,
            StatsBy::Tenant => Dimension::Tenant,
            _ => return None,
        })
    }
}

/// A plain text table with aligned columns.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "row width");
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i == 0 {
                    let _ = write!(out, "{c:<w$}");
                } else {
                    let _ = write!(out, "  {c:>w$}");
                }
            }
            out.push('\n');
        };
        line(&mut out, &self.header);
        let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for r in &self.rows {
            line(&mut out, r);
        }
        out
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn hours(ms: Option<f64>) -> String {
    ms.map_or("-".into(), |v| format!("{:.1}h", v / 3_600_000.0))
}

fn money(minor: Option<f64>, c: Currency) -> String {
    minor.map_or("-".into(), |v| format!("{:.2} {c}", v / 100.0))
}

fn main_currency(a: &CohortAgg) -> Option<Currency> {
    a.acquisition_cost
        .iter()
        .max_by_key(|(_, v)| **v)
        .map(|(c, _)| *c)
}

fn cohort_table(title: &str, rows: &BTreeMap<String, CohortAgg>) -> String {
    let mut t = Table::new(&[
        title,
        "created",
        "converted",
        "conv",
        "cost",
        "revenue",
        "roi",
        "cpl",
        "cac",
        "avg_clv",
        "recalled",
        "conv_after_recall",
        "recalls",
        "recall_success",
        "created_to_ok_recall_p50",
        "ttfa_p50",
        "ttfa_p90",
    ]);
    let mut total = CohortAgg::default();
    for (name, a) in rows {
        total.merge(a);
        push_cohort_row(&mut t, name, a);
    }
    if rows.len() > 1 {
        push_cohort_row(&mut t, "TOTAL", &total);
    }
    t.render()
}

fn push_cohort_row(t: &mut Table, name: &str, a: &CohortAgg) {
    // One row per lead group; money columns show the group's main currency
    // (the JSON form has every currency).
    let m = main_currency(a).and_then(|c| a.money().remove(&c).map(|m| (c, m)));
    let (cost, revenue, roi, cpl, cac, clv) = match &m {
        Some((c, m)) => (
            money(Some(m.cost_minor_units as f64), *c),
            money(Some(m.revenue_minor_units as f64), *c),
            pct(m.roi),
            money(m.cpl_minor_units, *c),
            money(m.cac_minor_units, *c),
            money(m.avg_clv_minor_units, *c),
        ),
        None => (
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ),
    };
    t.row(vec![
        name.to_string(),
        a.created.to_string(),
        a.converted.to_string(),
        pct(a.conversion_rate()),
        cost,
        revenue,
        roi,
        cpl,
        cac,
        clv,
        a.recalled_leads.to_string(),
        pct(a.conversion_after_recall_rate()),
        a.recalls.to_string(),
        pct(a.recall_success_rate()),
        hours(a.created_to_successful_recall_ms.quantile(0.5)),
        hours(a.time_to_first_assignment_ms.quantile(0.5)),
        hours(a.time_to_first_assignment_ms.quantile(0.9)),
    ]);
}

fn owner_table(rows: &BTreeMap<String, OwnerAgg>) -> String {
    let mut t = Table::new(&[
        "owner",
        "assigned",
        "first_fu",
        "sla_ok",
        "ttffu_p50",
        "ttffu_p90",
        "recalls",
        "assigned_to_recalled_mean",
        "assigned_to_recalled_p50",
        "assigned_to_recalled_p90",
        "converted",
        "revenue",
    ]);
    for (name, a) in rows {
        let revenue = a
            .revenue
            .iter()
            .map(|(c, v)| money(Some(*v as f64), *c))
            .collect::<Vec<_>>()
            .join(" + ");
        t.row(vec![
            name.clone(),
            a.assignments.to_string(),
            a.first_follow_ups.to_string(),
            pct(a.sla_compliance()),
            hours(a.time_to_first_follow_up_ms.quantile(0.5)),
            hours(a.time_to_first_follow_up_ms.quantile(0.9)),
            a.recalls().to_string(),
            hours(a.recall_cycle_ms.mean()),
            hours(a.recall_cycle_ms.quantile(0.5)),
            hours(a.recall_cycle_ms.quantile(0.9)),
            a.conversions.to_string(),
            if revenue.is_empty() {
                "-".into()
            } else {
                revenue
            },
        ]);
    }
    t.render()
}

/// The rows of `--by pools`: every pool with flows (at any time: its
/// queue at the window's start comes from them) and every pool holding
/// leads now, so that a quiet pool's waiting and held leads, and the held
/// leads of a pool they were assigned under but never waited in, each have
/// their row.
fn pool_rows(
    agg: &Aggregates,
    sizes: &BTreeMap<String, PoolSize>,
    window: Window,
) -> BTreeMap<String, PoolWindow> {
    let mut rows = agg.by_pool(window);
    for name in sizes.keys() {
        rows.entry(name.clone()).or_default();
    }
    rows
}

fn pool_table(rows: &BTreeMap<String, PoolWindow>, sizes: &BTreeMap<String, PoolSize>) -> String {
    let mut t = Table::new(&[
        "pool",
        "waiting_now",
        "held_now",
        "waiting_at_start",
        "inflow",
        "outflow",
        "utilisation",
        "recalled_in",
        "recall_success",
    ]);
    for (name, w) in rows {
        let s = sizes.get(name).cloned().unwrap_or_default();
        t.row(vec![
            name.clone(),
            s.waiting.to_string(),
            s.held.to_string(),
            w.waiting_at_start.to_string(),
            w.inflow.to_string(),
            w.outflow.to_string(),
            pct(w.utilisation),
            w.recalled_in.to_string(),
            pct(w.recall_success_rate),
        ]);
    }
    t.render()
}

/// The `stats` table.
pub fn stats_text(by: StatsBy, agg: &Aggregates, state: &PoolState, window: Window) -> String {
    stats_text_sized(by, agg, &state.pool_sizes(), window)
}

/// [`stats_text`] from the pools' sizes (see [`stats_json_sized`]).
pub fn stats_text_sized(
    by: StatsBy,
    agg: &Aggregates,
    sizes: &BTreeMap<String, PoolSize>,
    window: Window,
) -> String {
    match (by, by.dimension()) {
        (_, Some(d)) => cohort_table(d.as_str(), &agg.by_dimension(d, window)),
        (StatsBy::Day, _) => {
            let rows = agg
                .by_day(window)
                .into_iter()
                .map(|(d, a)| (format_day(d), a))
                .collect();
            cohort_table("day", &rows)
        }
        (StatsBy::Owner, _) => owner_table(&agg.by_owner(window)),
        _ => pool_table(&pool_rows(agg, sizes, window), sizes),
    }
}

/// A group's money in the reporting currency.
fn reporting_json(a: &CohortAgg, c: Currency) -> Value {
    let mut v = serde_json::to_value(a.reporting.metrics()).expect("serialisable");
    v["currency"] = json!(c.to_string());
    v["amounts_without_rate"] = json!(a.reporting.without_rate);
    v
}

fn cohort_json(a: &CohortAgg, reporting: Option<Currency>) -> Value {
    let mut v = cohort_json_own(a);
    // Every money metric again in one currency, each amount converted at
    // the rate of its day (only with `report.currency`).
    if let Some(c) = reporting {
        v["reporting"] = reporting_json(a, c);
    }
    v
}

fn cohort_json_own(a: &CohortAgg) -> Value {
    let money: BTreeMap<String, Value> = a
        .money()
        .into_iter()
        .map(|(c, m)| {
            (
                c.to_string(),
                serde_json::to_value(m).expect("serialisable"),
            )
        })
        .collect();
    json!({
        "created": a.created,
        // The funnel of distinct leads: created >= leads_assigned >=
        // leads_followed_up >= converted.
        "leads_assigned": a.leads_assigned,
        "leads_followed_up": a.leads_followed_up,
        "converted": a.converted,
        "conversion_rate": a.conversion_rate(),
        "money": money,
        "recalled_leads": a.recalled_leads,
        "converted_after_recall": a.converted_after_recall,
        "conversion_after_recall_rate": a.conversion_after_recall_rate(),
        "duplicates": a.duplicates,
        "duplicate_rate": a.duplicate_rate(),
        "recalls": a.recalls,
        "recall_successes": a.recall_successes,
        "recall_success_rate": a.recall_success_rate(),
        "created_to_successful_recall_ms_p50": a.created_to_successful_recall_ms.quantile(0.5),
        "created_to_successful_recall_ms_p90": a.created_to_successful_recall_ms.quantile(0.9),
        "time_to_first_assignment_ms_p50": a.time_to_first_assignment_ms.quantile(0.5),
        "time_to_first_assignment_ms_p90": a.time_to_first_assignment_ms.quantile(0.9),
    })
}

fn owner_json(a: &OwnerAgg, reporting: Option<Currency>) -> Value {
    let recalls: BTreeMap<&str, u64> = a
        .recalls_by_reason
        .iter()
        .map(|(r, n)| (r.as_str(), *n))
        .collect();
    let revenue: BTreeMap<String, serde_json::Value> = a
        .revenue
        .iter()
        .map(|(c, v)| {
            let v = crate::projector::metrics::serialize_sum(v, serde_json::value::Serializer)
                .expect("a number or a string");
            (c.to_string(), v)
        })
        .collect();
    let mut v = json!({
        "assignments": a.assignments,
        "first_follow_ups": a.first_follow_ups,
        "first_follow_ups_within_sla": a.first_follow_ups_within_sla,
        "sla_compliance": a.sla_compliance(),
        "time_to_first_follow_up_ms_p50": a.time_to_first_follow_up_ms.quantile(0.5),
        "time_to_first_follow_up_ms_p90": a.time_to_first_follow_up_ms.quantile(0.9),
        "recalls_by_reason": recalls,
        // Assigned → recalled, named for what it measures; the
        // `recall_cycle_ms_*` keys are the same numbers under their first
        // name, kept for existing readers.
        "assigned_to_recalled_ms_mean": a.recall_cycle_ms.mean(),
        "assigned_to_recalled_ms_p50": a.recall_cycle_ms.quantile(0.5),
        "assigned_to_recalled_ms_p90": a.recall_cycle_ms.quantile(0.9),
        "recall_cycle_ms_mean": a.recall_cycle_ms.mean(),
        "recall_cycle_ms_p50": a.recall_cycle_ms.quantile(0.5),
        "recall_cycle_ms_p90": a.recall_cycle_ms.quantile(0.9),
        "conversions": a.conversions,
        "revenue_minor_units": revenue,
    });
    if let Some(c) = reporting {
        v["revenue_reporting"] = json!({
            "currency": c.to_string(),
            "minor_units": crate::projector::metrics::serialize_sum(&a.revenue_reporting, serde_json::value::Serializer)
                .expect("a number or a string"),
        });
    }
    v
}

/// Every lead's cohort metrics over the window as one row (the funnel's
/// totals): each lead is in exactly one creation day.
pub fn total_json(agg: &Aggregates, window: Window) -> Value {
    let mut total = crate::projector::metrics::CohortAgg::default();
    for day in agg.by_day(window).values() {
        total.merge(day);
    }
    cohort_json(&total, agg.reporting_currency)
}

/// Every rep's work over the window as one row (follow-up SLA, recall
/// cycle, conversions of all reps together).
pub fn owners_total_json(agg: &Aggregates, window: Window) -> Value {
    let mut total = crate::projector::metrics::OwnerAgg::default();
    for owner in agg.by_owner(window).values() {
        total.merge(owner);
    }
    owner_json(&total, agg.reporting_currency)
}

/// The `stats --json` document: `{"by": ..., "rows": {name: {...}}}`.
pub fn stats_json(by: StatsBy, agg: &Aggregates, state: &PoolState, window: Window) -> Value {
    stats_json_sized(by, agg, &state.pool_sizes(), window)
}

/// [`stats_json`] from the pools' sizes (those of several engines,
/// summed, for `stats --peers`).
pub fn stats_json_sized(
    by: StatsBy,
    agg: &Aggregates,
    sizes: &BTreeMap<String, PoolSize>,
    window: Window,
) -> Value {
    let rows: BTreeMap<String, Value> = match (by, by.dimension()) {
        (_, Some(d)) => agg
            .by_dimension(d, window)
            .iter()
            .map(|(k, a)| (k.clone(), cohort_json(a, agg.reporting_currency)))
            .collect(),
        (StatsBy::Day, _) => agg
            .by_day(window)
            .iter()
            .map(|(d, a)| (format_day(*d), cohort_json(a, agg.reporting_currency)))
            .collect(),
        (StatsBy::Owner, _) => agg
            .by_owner(window)
            .iter()
            .map(|(k, a)| (k.clone(), owner_json(a, agg.reporting_currency)))
            .collect(),
        _ => pool_rows(agg, sizes, window)
            .into_iter()
            .map(|(k, w)| {
                let mut v = serde_json::to_value(&w).expect("serialisable");
                let s = sizes.get(&k).cloned().unwrap_or_default();
                v["waiting_now"] = json!(s.waiting);
                v["held_now"] = json!(s.held);
                (k, v)
            })
            .collect(),
    };
    json!({ "by": format!("{by:?}").to_lowercase(), "rows": rows })
}

/// A short summary of pool state for `replay` and the demo.
pub fn pool_summary(state: &PoolState) -> String {
    let mut t = Table::new(&["pool", "waiting", "held", "converted"]);
    for (name, s) in state.pool_sizes() {
        t.row(vec![
            name,
            s.waiting.to_string(),
            s.held.to_string(),
            s.converted.to_string(),
        ]);
    }
    t.render()
}

/// One rep's share of the work, against the capacity the policy gives them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FairnessRow {
    pub rep: String,
    pub capacity: u32,
    pub assignments: u64,
    pub assignments_per_capacity: f64,
    pub first_follow_ups: u64,
    pub first_follow_ups_within_sla: u64,
    /// Share of first follow-ups within the SLA (`None` without any).
    pub sla_compliance: Option<f64>,
}

/// Assignments per unit of capacity and follow-up SLA compliance per active
/// member of the policy's auto-assign pools over the window, and the Gini
/// coefficient of assignments per capacity (0 = perfectly even).
pub fn fairness(
    agg: &Aggregates,
    policy: &crate::policy::PolicyFile,
    window: Window,
) -> (Vec<FairnessRow>, f64) {
    let owners = agg.by_owner(window);
    let mut capacity: BTreeMap<String, u32> = BTreeMap::new();
    for pool in &policy.pools {
        if pool.kind != crate::policy::PoolKind::AutoAssign {
            continue;
        }
        for m in pool.members.iter().filter(|m| m.active) {
            let c = capacity.entry(m.id.clone()).or_default();
            *c = (*c).max(m.capacity);
        }
    }
    let rows: Vec<FairnessRow> = capacity
        .into_iter()
        .map(|(rep, capacity)| {
            let o = owners.get(&rep);
            let assignments = o.map_or(0, |o| o.assignments);
            let first = o.map_or(0, |o| o.first_follow_ups);
            let within = o.map_or(0, |o| o.first_follow_ups_within_sla);
            FairnessRow {
                assignments_per_capacity: assignments as f64 / f64::from(capacity),
                rep,
                capacity,
                assignments,
                first_follow_ups: first,
                first_follow_ups_within_sla: within,
                sla_compliance: (first > 0).then(|| within as f64 / first as f64),
            }
        })
        .collect();
    let per: Vec<f64> = rows.iter().map(|r| r.assignments_per_capacity).collect();
    (rows, crate::backtest::gini(&per))
}

pub fn fairness_text(rows: &[FairnessRow], gini: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>8} {:>11} {:>12} {:>14} {:>8}",
        "rep", "capacity", "assignments", "per capacity", "first f-ups", "in SLA"
    );
    for r in rows {
        let sla = r
            .sla_compliance
            .map_or("-".to_string(), |s| format!("{:.1}%", s * 100.0));
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>11} {:>12.2} {:>14} {:>8}",
            r.rep, r.capacity, r.assignments, r.assignments_per_capacity, r.first_follow_ups, sla
        );
    }
    let _ = writeln!(
        out,
        "Gini of assignments per capacity: {gini:.3} (0 = even)"
    );
    out
}
