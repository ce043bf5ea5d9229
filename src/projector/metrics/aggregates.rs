//! The mergeable aggregates the metrics fold fills: cohort, owner and
//! pool tables keyed by day, money per currency, duration sketches, and
//! the window arithmetic reports use. See `mod.rs` for the definitions.
use super::tables::CohortTable;
use crate::domain::time::MS_PER_DAY;
use crate::domain::{Currency, RecallReason};
use crate::projector::sketch::Sketch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A lead creation dimension that cohort metrics can be grouped by.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Channel,
    Campaign,
    Pool,
    Region,
    Industry,
    CompanySize,
    /// The lead's tenant; the default tenant (empty id) has no row.
    Tenant,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Channel,
        Dimension::Campaign,
        Dimension::Pool,
        Dimension::Region,
        Dimension::Industry,
        Dimension::CompanySize,
        Dimension::Tenant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Channel => "channel",
            Dimension::Campaign => "campaign",
            Dimension::Pool => "pool",
            Dimension::Region => "region",
            Dimension::Industry => "industry",
            Dimension::CompanySize => "company_size",
            Dimension::Tenant => "tenant",
        }
    }
}

/// Sums of money per currency, in minor units. Sums are `i128`: an amount
/// is at most [`MONEY_MINOR_UNITS_MAX`](crate::domain::lifecycle::MONEY_MINOR_UNITS_MAX)
/// (about 2^50), so even 2^64 of them cannot overflow; `checked_add`
/// asserts it all the same (a wrong sum must never be reported).
pub type MoneyByCurrency = BTreeMap<Currency, i128>;

pub(super) fn add_money(into: &mut MoneyByCurrency, currency: Currency, minor_units: i128) {
    let sum = into.entry(currency).or_default();
    *sum = sum
        .checked_add(minor_units)
        .expect("money sums in i128 cannot overflow with bounded amounts");
}

/// Writes a money sum for JSON readers: as a number while it fits `i64`
/// (what most JSON readers hold exactly), else as a decimal string, so a
/// sum is never wrapped, rounded or refused.
pub fn serialize_sum<S: serde::Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
    match i64::try_from(*v) {
        Ok(n) => s.serialize_i64(n),
        Err(_) => s.serialize_str(&v.to_string()),
    }
}

fn merge_money(into: &mut MoneyByCurrency, from: &MoneyByCurrency) {
    for (c, v) in from {
        add_money(into, *c, *v);
    }
}

fn merge_counts(into: &mut BTreeMap<Currency, u64>, from: &BTreeMap<Currency, u64>) {
    for (c, n) in from {
        *into.entry(*c).or_default() += n;
    }
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den)
}

/// Metrics of one cohort (leads sharing a creation dimension value and day).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CohortAgg {
    pub created: u64,
    pub acquisition_cost: MoneyByCurrency,
    /// Leads whose acquisition cost is in each currency (for cost per lead).
    pub cost_leads: BTreeMap<Currency, u64>,
    pub converted: u64,
    /// Converted leads by the currency of their acquisition cost (for CAC).
    pub converted_by_cost_currency: BTreeMap<Currency, u64>,
    pub revenue: MoneyByCurrency,
    /// Sum and count of expected lifetime value (deal value where absent).
    pub clv_sum: MoneyByCurrency,
    pub clv_count: BTreeMap<Currency, u64>,
    pub recalled_leads: u64,
    pub converted_after_recall: u64,
    pub time_to_first_assignment_ms: Sketch,
    /// Recalls of the cohort's leads (a lead recalled twice counts twice).
    pub recalls: u64,
    /// Those recalls that succeeded: the lead was assigned to a rep other
    /// than the one it was recalled from, who followed it up (or converted
    /// it) within `recall_success_window_ms` of the recall.
    pub recall_successes: u64,
    /// Lead creation → successful recall (the new owner's follow-up that
    /// made the recall a success): the recall cycle as CRM recall
    /// evaluation defines it.
    pub created_to_successful_recall_ms: Sketch,
    /// Every amount in the reporting currency (`report.currency`), each
    /// converted at the rate of its own day.
    pub reporting: ReportingSums,
    /// Leads created with the contact fingerprint of a lead still open:
    /// bought or generated again.
    pub duplicates: u64,
    /// Those duplicates by the currency of their cost (for the cost per
    /// unique lead).
    pub duplicate_cost_leads: BTreeMap<Currency, u64>,
    /// Distinct leads of the cohort that reached assignment (assigned at
    /// least once, or converted): the funnel's second stage.
    pub leads_assigned: u64,
    /// Distinct leads that reached a follow-up (followed up at least once,
    /// or converted): the funnel's third stage. Each stage counts leads,
    /// never events, and a lead at a stage is counted at every stage
    /// before it, so `created >= leads_assigned >= leads_followed_up >=
    /// converted` in any cohort and any window.
    pub leads_followed_up: u64,
}

/// A cohort's money in the reporting currency, in its minor units.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportingSums {
    pub cost: i128,
    /// Leads whose cost was converted.
    pub cost_leads: u64,
    pub revenue: i128,
    /// Converted leads whose deal was converted.
    pub deals: u64,
    /// Duplicate contacts among `cost_leads`.
    pub duplicate_leads: u64,
    pub clv_sum: i128,
    pub clv_count: u64,
    /// Amounts left out because no rate of their currency applied on
    /// their day (a rate table to complete: the figures are partial).
    pub without_rate: u64,
}

impl ReportingSums {
    pub(super) fn add_cost(&mut self, v: i128) {
        self.cost = self.cost.checked_add(v).expect("bounded sums");
        self.cost_leads += 1;
    }

    pub(super) fn add_deal(&mut self, deal: Option<i128>, clv: Option<i128>) {
        match deal {
            Some(v) => {
                self.revenue = self.revenue.checked_add(v).expect("bounded sums");
                self.deals += 1;
            }
            None => self.without_rate += 1,
        }
        match clv {
            Some(v) => {
                self.clv_sum = self.clv_sum.checked_add(v).expect("bounded sums");
                self.clv_count += 1;
            }
            None => self.without_rate += 1,
        }
    }

    fn merge(&mut self, o: &ReportingSums) {
        self.cost = self.cost.checked_add(o.cost).expect("bounded sums");
        self.cost_leads += o.cost_leads;
        self.duplicate_leads += o.duplicate_leads;
        self.revenue = self.revenue.checked_add(o.revenue).expect("bounded sums");
        self.deals += o.deals;
        self.clv_sum = self.clv_sum.checked_add(o.clv_sum).expect("bounded sums");
        self.clv_count += o.clv_count;
        self.without_rate += o.without_rate;
    }

    /// The money metrics in the reporting currency: ROI over every lead
    /// and deal converted, cost per lead, cost per converted lead, and the
    /// average lifetime value.
    pub fn metrics(&self) -> MoneyMetrics {
        MoneyMetrics {
            cost_minor_units: self.cost,
            revenue_minor_units: self.revenue,
            roi: ratio((self.revenue - self.cost) as f64, self.cost as f64),
            cpl_minor_units: ratio(self.cost as f64, self.cost_leads as f64),
            cpl_unique_minor_units: ratio(
                self.cost as f64,
                self.cost_leads.saturating_sub(self.duplicate_leads) as f64,
            ),
            cac_minor_units: ratio(self.cost as f64, self.deals as f64),
            avg_clv_minor_units: ratio(self.clv_sum as f64, self.clv_count as f64),
        }
    }
}

impl CohortAgg {
    pub fn merge(&mut self, o: &CohortAgg) {
        self.created += o.created;
        merge_money(&mut self.acquisition_cost, &o.acquisition_cost);
        merge_counts(&mut self.cost_leads, &o.cost_leads);
        self.converted += o.converted;
        merge_counts(
            &mut self.converted_by_cost_currency,
            &o.converted_by_cost_currency,
        );
        merge_money(&mut self.revenue, &o.revenue);
        merge_money(&mut self.clv_sum, &o.clv_sum);
        merge_counts(&mut self.clv_count, &o.clv_count);
        self.recalled_leads += o.recalled_leads;
        self.converted_after_recall += o.converted_after_recall;
        self.time_to_first_assignment_ms
            .merge(&o.time_to_first_assignment_ms);
        self.recalls += o.recalls;
        self.recall_successes += o.recall_successes;
        self.created_to_successful_recall_ms
            .merge(&o.created_to_successful_recall_ms);
        self.reporting.merge(&o.reporting);
        self.duplicates += o.duplicates;
        merge_counts(&mut self.duplicate_cost_leads, &o.duplicate_cost_leads);
        self.leads_assigned += o.leads_assigned;
        self.leads_followed_up += o.leads_followed_up;
    }

    /// Duplicate contacts / leads created.
    pub fn duplicate_rate(&self) -> Option<f64> {
        ratio(self.duplicates as f64, self.created as f64)
    }

    /// Recall successes / recalls of the cohort's leads.
    pub fn recall_success_rate(&self) -> Option<f64> {
        ratio(self.recall_successes as f64, self.recalls as f64)
    }

    pub fn conversion_rate(&self) -> Option<f64> {
        ratio(self.converted as f64, self.created as f64)
    }

    pub fn conversion_after_recall_rate(&self) -> Option<f64> {
        ratio(
            self.converted_after_recall as f64,
            self.recalled_leads as f64,
        )
    }

    fn currencies(&self) -> Vec<Currency> {
        let mut v: Vec<Currency> = self
            .acquisition_cost
            .keys()
            .chain(self.revenue.keys())
            // A lifetime value may be in a currency nothing else of the row
            // is in: its average still has a row.
            .chain(self.clv_sum.keys())
            .copied()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Derived money metrics, one entry per currency.
    pub fn money(&self) -> BTreeMap<Currency, MoneyMetrics> {
        self.currencies()
            .into_iter()
            .map(|c| {
                let cost = self.acquisition_cost.get(&c).copied().unwrap_or(0);
                let revenue = self.revenue.get(&c).copied().unwrap_or(0);
                let clv_n = self.clv_count.get(&c).copied().unwrap_or(0);
                let leads = self.cost_leads.get(&c).copied().unwrap_or(0);
                let duplicates = self.duplicate_cost_leads.get(&c).copied().unwrap_or(0);
                let customers = self
                    .converted_by_cost_currency
                    .get(&c)
                    .copied()
                    .unwrap_or(0);
                let m = MoneyMetrics {
                    cost_minor_units: cost,
                    revenue_minor_units: revenue,
                    roi: ratio((revenue - cost) as f64, cost as f64),
                    cpl_minor_units: ratio(cost as f64, leads as f64),
                    cpl_unique_minor_units: ratio(
                        cost as f64,
                        leads.saturating_sub(duplicates) as f64,
                    ),
                    cac_minor_units: ratio(cost as f64, customers as f64),
                    avg_clv_minor_units: ratio(
                        self.clv_sum.get(&c).copied().unwrap_or(0) as f64,
                        clv_n as f64,
                    ),
                };
                (c, m)
            })
            .collect()
    }
}

/// Money ratios of a cohort in one currency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MoneyMetrics {
    #[serde(serialize_with = "serialize_sum")]
    pub cost_minor_units: i128,
    #[serde(serialize_with = "serialize_sum")]
    pub revenue_minor_units: i128,
    /// (revenue − cost) / cost.
    pub roi: Option<f64>,
    /// Cost per lead, over the leads whose cost is in this currency.
    pub cpl_minor_units: Option<f64>,
    /// Cost per *unique* lead: the same cost over the leads that were not
    /// duplicate contacts — what a channel that sells leads we already
    /// had really costs per new one.
    pub cpl_unique_minor_units: Option<f64>,
    /// Cost per converted lead, over the leads whose cost is in this currency.
    pub cac_minor_units: Option<f64>,
    pub avg_clv_minor_units: Option<f64>,
}

/// Metrics of one owner on one day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnerAgg {
    pub assignments: u64,
    pub first_follow_ups: u64,
    pub first_follow_ups_within_sla: u64,
    pub time_to_first_follow_up_ms: Sketch,
    pub recalls_by_reason: BTreeMap<RecallReason, u64>,
    /// Assigned → recalled durations of the holdings recalled from this owner.
    pub recall_cycle_ms: Sketch,
    pub conversions: u64,
    pub revenue: MoneyByCurrency,
    /// Revenue in the reporting currency, if one is set.
    pub revenue_reporting: i128,
}

impl OwnerAgg {
    pub fn merge(&mut self, o: &OwnerAgg) {
        self.assignments += o.assignments;
        self.first_follow_ups += o.first_follow_ups;
        self.first_follow_ups_within_sla += o.first_follow_ups_within_sla;
        self.time_to_first_follow_up_ms
            .merge(&o.time_to_first_follow_up_ms);
        for (r, n) in &o.recalls_by_reason {
            *self.recalls_by_reason.entry(*r).or_default() += n;
        }
        self.recall_cycle_ms.merge(&o.recall_cycle_ms);
        self.conversions += o.conversions;
        merge_money(&mut self.revenue, &o.revenue);
        self.revenue_reporting = self
            .revenue_reporting
            .checked_add(o.revenue_reporting)
            .expect("bounded sums");
    }

    pub fn recalls(&self) -> u64 {
        self.recalls_by_reason.values().sum()
    }

    pub fn sla_compliance(&self) -> Option<f64> {
        ratio(
            self.first_follow_ups_within_sla as f64,
            self.first_follow_ups as f64,
        )
    }
}

/// Flows of one pool on one day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFlowAgg {
    pub created_in: u64,
    pub recalled_in: u64,
    pub assigned_out: u64,
    pub recall_successes: u64,
    /// Waiting leads moved in from another pool, and out to one.
    pub moved_in: u64,
    pub moved_out: u64,
}

impl PoolFlowAgg {
    pub fn merge(&mut self, o: &PoolFlowAgg) {
        self.created_in += o.created_in;
        self.recalled_in += o.recalled_in;
        self.assigned_out += o.assigned_out;
        self.recall_successes += o.recall_successes;
        self.moved_in += o.moved_in;
        self.moved_out += o.moved_out;
    }

    /// Leads that came to wait: created into the pool, recalled or moved
    /// into it.
    pub fn inflow(&self) -> u64 {
        self.created_in + self.recalled_in + self.moved_in
    }

    /// Waiting leads that left: assigned out, or moved to another pool.
    pub fn left(&self) -> u64 {
        self.assigned_out + self.moved_out
    }
}

/// A pool's numbers over a window of days.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PoolWindow {
    pub waiting_at_start: i64,
    pub inflow: u64,
    pub outflow: u64,
    pub recalled_in: u64,
    pub recall_successes: u64,
    /// Waiting leads moved in from other pools (part of `inflow`) and out
    /// to other pools (not `outflow`: nobody worked them here).
    pub moved_in: u64,
    pub moved_out: u64,
    /// outflow / (waiting at window start + inflow).
    pub utilisation: Option<f64>,
    /// recall successes / leads recalled into the pool.
    pub recall_success_rate: Option<f64>,
}

/// One pool's day: the queue at its end and what flowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PoolDay {
    /// The day (days since 1970-01-01 in the report time zone).
    pub day: i64,
    /// Leads waiting at the end of the day: inflow less what left, summed
    /// over every day up to it.
    pub waiting_at_end: i64,
    pub inflow: u64,
    pub outflow: u64,
    pub recalled_in: u64,
}

/// The mergeable output of the fold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    pub cohorts: CohortTable,
    pub owners: BTreeMap<(String, i64), OwnerAgg>,
    pub pools: BTreeMap<(String, i64), PoolFlowAgg>,
    /// The reporting currency of the `reporting` sums, when one is set.
    pub reporting_currency: Option<Currency>,
}

/// A window of whole UTC days: a day is in it when its start is in
/// `[from_ms, to_ms)`. `None` bounds are open.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl Window {
    pub fn contains_day(&self, day: i64) -> bool {
        let start = day * MS_PER_DAY;
        self.from_ms.is_none_or(|f| start >= f) && self.to_ms.is_none_or(|t| start < t)
    }

    fn before(&self, day: i64) -> bool {
        self.from_ms.is_some_and(|f| day * MS_PER_DAY < f)
    }
}

impl Aggregates {
    pub fn merge(&mut self, o: &Aggregates) {
        for (k, v) in o.cohorts.iter() {
            let id = self.cohorts.place(k.dimension, &k.value, k.day);
            self.cohorts.row_mut(id).merge(v);
        }
        for (k, v) in &o.owners {
            self.owners.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &o.pools {
            self.pools.entry(k.clone()).or_default().merge(v);
        }
        self.reporting_currency = self.reporting_currency.or(o.reporting_currency);
    }

    /// Cohort metrics per value of `dimension` over the window.
    pub fn by_dimension(
        &self,
        dimension: Dimension,
        window: Window,
    ) -> BTreeMap<String, CohortAgg> {
        let mut out: BTreeMap<String, CohortAgg> = BTreeMap::new();
        for (k, v) in self.cohorts.iter() {
            if k.dimension == dimension && window.contains_day(k.day) {
                out.entry(k.value.clone()).or_default().merge(v);
            }
        }
        out
    }

    /// Cohort metrics per creation day over the window (all leads).
    pub fn by_day(&self, window: Window) -> BTreeMap<i64, CohortAgg> {
        let mut out: BTreeMap<i64, CohortAgg> = BTreeMap::new();
        for (k, v) in self.cohorts.iter() {
            // Every lead is in exactly one channel cohort, so summing one
            // dimension counts each lead once.
            if k.dimension == Dimension::Channel && window.contains_day(k.day) {
                out.entry(k.day).or_default().merge(v);
            }
        }
        out
    }

    /// Owner metrics per owner over the window.
    pub fn by_owner(&self, window: Window) -> BTreeMap<String, OwnerAgg> {
        let mut out: BTreeMap<String, OwnerAgg> = BTreeMap::new();
        for ((owner, day), v) in &self.owners {
            if window.contains_day(*day) {
                out.entry(owner.clone()).or_default().merge(v);
            }
        }
        out
    }

    /// Each pool's days in the window that had any flow, in order: a time
    /// series of its queue (a day without flow keeps the queue of the day
    /// before).
    pub fn pool_days(&self, window: Window) -> BTreeMap<String, Vec<PoolDay>> {
        let mut out: BTreeMap<String, Vec<PoolDay>> = BTreeMap::new();
        let mut waiting: BTreeMap<&str, i64> = BTreeMap::new();
        // Keys are ordered by (pool, day), so each pool's days come in order.
        for ((pool, day), v) in &self.pools {
            let w = waiting.entry(pool).or_default();
            *w += v.inflow() as i64 - v.left() as i64;
            if window.contains_day(*day) {
                out.entry(pool.clone()).or_default().push(PoolDay {
                    day: *day,
                    waiting_at_end: *w,
                    inflow: v.inflow(),
                    outflow: v.assigned_out,
                    recalled_in: v.recalled_in,
                });
            }
        }
        out
    }

    /// Pool metrics per pool over the window.
    pub fn by_pool(&self, window: Window) -> BTreeMap<String, PoolWindow> {
        let mut out: BTreeMap<String, PoolWindow> = BTreeMap::new();
        for ((pool, day), v) in &self.pools {
            let w = out.entry(pool.clone()).or_default();
            if window.before(*day) {
                // Waiting changes only by inflow and outflow, so the queue at
                // the window's start is their running difference before it.
                w.waiting_at_start += v.inflow() as i64 - v.left() as i64;
            } else if window.contains_day(*day) {
                w.inflow += v.inflow();
                w.outflow += v.assigned_out;
                w.moved_in += v.moved_in;
                w.moved_out += v.moved_out;
                w.recalled_in += v.recalled_in;
                w.recall_successes += v.recall_successes;
            }
        }
        for w in out.values_mut() {
            w.utilisation = ratio(
                w.outflow as f64,
                (w.waiting_at_start + w.inflow as i64) as f64,
            );
            w.recall_success_rate = ratio(w.recall_successes as f64, w.recalled_in as f64);
        }
        out
    }
}
