//! Metric aggregates: a pure fold of accepted events into cohort, owner and
//! pool tables keyed by day.
//!
//! The fold keeps a small working record per lead (its creation dimensions,
//! current holding, pending recall) and emits into [`Aggregates`]. The
//! aggregates are **mergeable**: counters add, money adds per currency and
//! durations go into mergeable [`Sketch`]es, so the aggregates of disjoint
//! lead partitions add up to the aggregates of the whole.
//!
//! Definitions (all times are event times; days are calendar days of the
//! report time zone, `report.time_zone`, UTC by default: see
//! [`DayClock`](crate::domain::time::DayClock)):
//! - Cohort tables are keyed by (dimension, value, creation day). A lead's
//!   conversion counts in the cohort of its creation, whenever it happens.
//! - Owner tables are keyed by (owner, day of the event being counted).
//! - Pool tables are keyed by (pool, day): inflow is leads created into the
//!   pool plus leads recalled into it; outflow is leads assigned out of it.
//!   A recall succeeds when the lead is then assigned to a rep other than the
//!   one it was recalled from, and that rep follows it up (or converts it)
//!   within `recall_success_window_ms` of the recall; the success counts on
//!   the recall's pool and day, and on the lead's creation cohorts (every
//!   dimension: channel, campaign, region, ...), with the time from the
//!   lead's creation to that follow-up (`created_to_successful_recall_ms`:
//!   the recall cycle as CRM recall evaluation defines it; the owner
//!   tables' `recall_cycle_ms` is the other one, assigned → recalled).
//! - Money is summed per currency; ratios of money are per currency.

mod aggregates;
mod tables;

use aggregates::add_money;

pub use aggregates::*;
pub use tables::*;

use super::{IdMap, LeadKey};
use crate::domain::lifecycle::resolve_pool;
use crate::domain::time::DayClock;
use crate::domain::{Currency, EventBody, LeadEvent};
use serde::{Deserialize, Serialize};

/// Parameters of the fold (from config), part of the state so that the fold
/// is a pure function of the events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricParams {
    pub follow_up_sla_ms: i64,
    pub recall_success_window_ms: i64,
    /// The IANA zone whose days the tables are keyed by ("UTC").
    pub time_zone: String,
    /// The reporting currency and its dated rates, if any.
    pub rates: Option<crate::domain::rates::Rates>,
}

impl From<&crate::config::ProjectionConfig> for MetricParams {
    fn from(c: &crate::config::ProjectionConfig) -> Self {
        MetricParams {
            follow_up_sla_ms: c.follow_up_sla_ms,
            recall_success_window_ms: c.recall_success_window_ms,
            time_zone: if c.time_zone.is_empty() {
                "UTC".into()
            } else {
                c.time_zone.clone()
            },
            rates: c.rates.clone(),
        }
    }
}

/// A recall waiting to be judged a success. Names are interned (in
/// `Metrics::strings`), as in [`LeadTrack`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PendingRecall {
    at_ms: i64,
    pool: u32,
    previous_owner: u32,
    /// Set when the lead is assigned to someone other than the previous owner.
    new_owner: Option<u32>,
}

/// The fold's working record of one lead. Its names (pool, owner) are
/// interned in `Metrics::strings`: a move, an assignment or a recall
/// copies no string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LeadTrack {
    /// The places of its cohorts in `Aggregates::cohorts`, one per
    /// dimension in [`Dimension::ALL`] order ([`NO_COHORT`] for a
    /// dimension it is not counted by): fixed at its creation.
    cohorts: [CohortId; 7],
    created_day: i64,
    created_at_ms: i64,
    cost_currency: Currency,
    pool: u32,
    owner: Option<u32>,
    assigned_at_ms: i64,
    ever_assigned: bool,
    /// The furthest funnel stage the lead has reached (see
    /// [`FunnelStage`]); each stage is counted once per lead.
    funnel: FunnelStage,
    first_follow_up_done: bool,
    recall_count: u32,
    pending_recall: Option<PendingRecall>,
    /// Its contact fingerprint, when it is the open lead holding it (in
    /// `Metrics::fingerprints`).
    fingerprint: String,
}

/// The id of `s` in `strings`, interned when new.
fn intern_in(strings: &mut Vec<String>, ids: &mut IdMap<String, u32>, s: &str) -> u32 {
    if let Some(&id) = ids.get(s) {
        return id;
    }
    let id = u32::try_from(strings.len()).expect("fewer than 2^32 distinct values");
    strings.push(s.to_string());
    ids.insert(s.to_string(), id);
    id
}

/// The pool an event leaves a lead in (see [`resolve_pool`]), interned:
/// the event's, or the lead's `current` when the event names none.
fn pool_id(
    strings: &mut Vec<String>,
    ids: &mut IdMap<String, u32>,
    event_pool: &str,
    current: u32,
) -> u32 {
    match resolve_pool(event_pool, "") {
        "" => current,
        named => intern_in(strings, ids, named),
    }
}

/// The stages of the funnel of distinct leads, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum FunnelStage {
    Created,
    Assigned,
    FollowedUp,
}

/// The metrics projector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    params: MetricParams,
    strings: Vec<String>,
    string_ids: IdMap<String, u32>,
    leads: IdMap<LeadKey, LeadTrack>,
    /// Contact fingerprint -> the open lead that first had it: a lead
    /// created with one of these is a duplicate contact.
    fingerprints: IdMap<String, String>,
    /// In a filtered view (`projector::filter`): open leads outside the
    /// view holding a contact fingerprint, so it is freed when they
    /// convert. Never saved: a filtered view is not.
    #[serde(skip)]
    unseen: IdMap<String, String>,
    pub agg: Aggregates,
    /// The days of `params.time_zone`, made when first needed (not saved:
    /// a function of the parameters).
    #[serde(skip)]
    days: Days,
}

/// A [`DayClock`] that compares equal to any other: it is derived from the
/// parameters, which are compared.
#[derive(Clone, Debug, Default)]
struct Days(Option<DayClock>);

impl PartialEq for Days {
    fn eq(&self, _: &Days) -> bool {
        true
    }
}

impl Metrics {
    pub fn new(params: MetricParams) -> Metrics {
        Metrics {
            params,
            strings: Vec::new(),
            string_ids: IdMap::default(),
            leads: IdMap::default(),
            fingerprints: IdMap::default(),
            unseen: IdMap::default(),
            agg: Aggregates::default(),
            days: Days::default(),
        }
    }

    pub fn params(&self) -> &MetricParams {
        &self.params
    }

    /// Checks that every lead's working record points into the tables it
    /// indexes (its cohorts' places, its interned names): a state read
    /// back from a snapshot whose bytes decoded but disagree is refused
    /// (and rebuilt from the log) rather than folded on until an index
    /// falls outside its table.
    pub fn check_places(&self) -> Result<(), String> {
        let (cohorts, strings) = (self.agg.cohorts.len(), self.strings.len());
        let name = |id: u32| (id as usize) < strings;
        for (lead, t) in &self.leads {
            let places_ok = t
                .cohorts
                .iter()
                .all(|&c| c == NO_COHORT || (c as usize) < cohorts);
            let pending_ok = t.pending_recall.as_ref().is_none_or(|p| {
                name(p.pool) && name(p.previous_owner) && p.new_owner.is_none_or(name)
            });
            if !places_ok || !name(t.pool) || !t.owner.is_none_or(name) || !pending_ok {
                return Err(format!(
                    "lead {lead}'s working record points outside its tables"
                ));
            }
        }
        Ok(())
    }

    fn intern(&mut self, s: &str) -> u32 {
        intern_in(&mut self.strings, &mut self.string_ids, s)
    }

    /// Runs `f` on each of the lead's cohorts (one per dimension; none by
    /// tenant for the default tenant).
    fn for_cohorts(agg: &mut Aggregates, track: &LeadTrack, mut f: impl FnMut(&mut CohortAgg)) {
        for id in track.cohorts {
            if id != NO_COHORT {
                f(agg.cohorts.row_mut(id));
            }
        }
    }

    /// A lead created outside a filtered view: only its contact
    /// fingerprint is kept, so that the view finds the same duplicates as
    /// the whole.
    pub fn note_unseen(&mut self, event: &LeadEvent, c: &crate::domain::LeadCreated) {
        let fp = &c.contact_fingerprint;
        if fp.is_empty()
            || self.leads.contains_key(event.lead_id.as_str())
            || self.unseen.contains_key(&event.lead_id)
            || self.fingerprints.contains_key(fp)
        {
            return;
        }
        self.fingerprints.insert(fp.clone(), event.lead_id.clone());
        self.unseen.insert(event.lead_id.clone(), fp.clone());
    }

    /// Moves the lead to funnel stage `to` (never back), counting it at
    /// every stage it passes for the first time.
    fn reach(agg: &mut Aggregates, track: &mut LeadTrack, to: FunnelStage) {
        if track.funnel >= to {
            return;
        }
        let from = track.funnel;
        track.funnel = to;
        Self::for_cohorts(agg, track, |cohort| {
            if from < FunnelStage::Assigned {
                cohort.leads_assigned += 1;
            }
            if to >= FunnelStage::FollowedUp {
                cohort.leads_followed_up += 1;
            }
        });
    }

    pub fn apply(&mut self, event: &LeadEvent) {
        let at = event.occurred_at_ms;
        if self.days.0.is_none() {
            // Validated with the config; an unknown name counts UTC days.
            self.days.0 =
                Some(DayClock::new(&self.params.time_zone).unwrap_or_else(|_| DayClock::utc()));
        }
        let days = self.days.0.as_ref().expect("made above");
        let day = days.day_of(at);
        if let EventBody::Created(c) = &event.body {
            if self.leads.contains_key(event.lead_id.as_str()) {
                return;
            }
            let values = [
                &c.channel,
                &c.campaign,
                &c.pool,
                &c.region,
                &c.industry,
                &c.company_size,
                &event.tenant_id,
            ];
            let mut cohorts = [NO_COHORT; 7];
            for ((place, dimension), value) in cohorts.iter_mut().zip(Dimension::ALL).zip(values) {
                // A single-tenant setup pays nothing for the tenant
                // dimension.
                if dimension == Dimension::Tenant && value.is_empty() {
                    continue;
                }
                *place = self.agg.cohorts.place(dimension, value, day);
            }
            let track = LeadTrack {
                cohorts,
                created_day: day,
                created_at_ms: at,
                cost_currency: c.acquisition_cost.currency,
                pool: self.intern(&c.pool),
                owner: None,
                assigned_at_ms: 0,
                ever_assigned: false,
                funnel: FunnelStage::Created,
                first_follow_up_done: false,
                recall_count: 0,
                pending_recall: None,
                fingerprint: String::new(),
            };
            let fp = &c.contact_fingerprint;
            let duplicate = !fp.is_empty() && self.fingerprints.contains_key(fp);
            let mut track = track;
            if !fp.is_empty() && !duplicate {
                self.fingerprints.insert(fp.clone(), event.lead_id.clone());
                track.fingerprint = fp.clone();
            }
            let rates = self.params.rates.as_ref();
            let cost = rates.map(|r| {
                self.agg.reporting_currency = Some(r.reporting);
                r.convert(
                    i128::from(c.acquisition_cost.minor_units),
                    c.acquisition_cost.currency,
                    day,
                )
            });
            Self::for_cohorts(&mut self.agg, &track, |cohort| {
                match cost {
                    Some(Some(v)) => cohort.reporting.add_cost(v),
                    Some(None) => cohort.reporting.without_rate += 1,
                    None => {}
                }
                cohort.created += 1;
                *cohort
                    .cost_leads
                    .entry(c.acquisition_cost.currency)
                    .or_default() += 1;
                if duplicate {
                    cohort.duplicates += 1;
                    *cohort
                        .duplicate_cost_leads
                        .entry(c.acquisition_cost.currency)
                        .or_default() += 1;
                    if let Some(Some(_)) = cost {
                        cohort.reporting.duplicate_leads += 1;
                    }
                }
                add_money(
                    &mut cohort.acquisition_cost,
                    c.acquisition_cost.currency,
                    i128::from(c.acquisition_cost.minor_units),
                );
            });
            with_day_row(&mut self.agg.pools, &c.pool, day, |r| r.created_in += 1);
            self.leads.insert(LeadKey::new(&event.lead_id), track);
            return;
        }
        // Borrowed, not cloned: the parameters hold the rate table, and
        // this runs for every event.
        let params = &self.params;
        let (strings, string_ids) = (&mut self.strings, &mut self.string_ids);
        let Some(track) = self.leads.get_mut(event.lead_id.as_str()) else {
            if let EventBody::Converted(_) = event.body {
                if let Some(fp) = self.unseen.remove(&event.lead_id) {
                    self.fingerprints.remove(&fp);
                }
            }
            return;
        };
        match &event.body {
            // A decline changes no ownership; the policy counts it per rep.
            EventBody::Created(_)
            | EventBody::Scored(_)
            | EventBody::CommandDeclined(_)
            | EventBody::ClaimRequested(_)
            | EventBody::Engaged(_) => {}
            EventBody::Moved(m) => {
                // A waiting lead leaves one queue for another; a held one
                // only changes the pool it is held under.
                let to_pool = intern_in(strings, string_ids, &m.to_pool);
                if track.owner.is_none() && track.pool != to_pool {
                    let from = &strings[track.pool as usize];
                    with_day_row(&mut self.agg.pools, from, day, |r| r.moved_out += 1);
                    with_day_row(&mut self.agg.pools, &m.to_pool, day, |r| r.moved_in += 1);
                }
                track.pool = to_pool;
            }
            EventBody::Assigned(a) => {
                let owner = intern_in(strings, string_ids, &a.owner_id);
                let pool = pool_id(strings, string_ids, &a.pool, track.pool);
                Self::reach(&mut self.agg, track, FunnelStage::Assigned);
                if !track.ever_assigned {
                    track.ever_assigned = true;
                    // Durations are clamped at zero: an event within the order rule's
                    // tolerance may be stamped before the one it follows.
                    let wait = (at - track.created_at_ms).max(0);
                    Self::for_cohorts(&mut self.agg, track, |cohort| {
                        cohort.time_to_first_assignment_ms.add(wait)
                    });
                }
                if track.owner.is_none() {
                    let from = &strings[track.pool as usize];
                    with_day_row(&mut self.agg.pools, from, day, |r| r.assigned_out += 1);
                }
                with_day_row(&mut self.agg.owners, &a.owner_id, day, |o| {
                    o.assignments += 1
                });
                track.pool = pool;
                track.owner = Some(owner);
                track.assigned_at_ms = at;
                track.first_follow_up_done = false;
                if let Some(p) = &mut track.pending_recall {
                    p.new_owner = (p.previous_owner != owner).then_some(owner);
                }
            }
            EventBody::FollowedUp(f) => {
                Self::reach(&mut self.agg, track, FunnelStage::FollowedUp);
                let by_owner = track
                    .owner
                    .is_some_and(|o| strings[o as usize] == f.owner_id);
                if by_owner && !track.first_follow_up_done {
                    track.first_follow_up_done = true;
                    let delay = (at - track.assigned_at_ms).max(0);
                    with_day_row(&mut self.agg.owners, &f.owner_id, day, |o| {
                        o.first_follow_ups += 1;
                        if delay <= params.follow_up_sla_ms {
                            o.first_follow_ups_within_sla += 1;
                        }
                        o.time_to_first_follow_up_ms.add(delay);
                    });
                }
                Self::settle_recall(&mut self.agg, strings, days, track, &f.owner_id, at, params);
            }
            EventBody::Recalled(r) => {
                let to_pool = pool_id(strings, string_ids, &r.to_pool, track.pool);
                let previous_owner = intern_in(strings, string_ids, &r.previous_owner_id);
                let cycle_ms = (at - track.assigned_at_ms).max(0);
                with_day_row(&mut self.agg.owners, &r.previous_owner_id, day, |o| {
                    *o.recalls_by_reason.entry(r.reason).or_default() += 1;
                    o.recall_cycle_ms.add(cycle_ms);
                });
                let first = track.recall_count == 0;
                Self::for_cohorts(&mut self.agg, track, |cohort| {
                    cohort.recalls += 1;
                    if first {
                        cohort.recalled_leads += 1;
                    }
                });
                track.recall_count += 1;
                let into = &strings[to_pool as usize];
                with_day_row(&mut self.agg.pools, into, day, |r| r.recalled_in += 1);
                track.pending_recall = Some(PendingRecall {
                    at_ms: at,
                    pool: to_pool,
                    previous_owner,
                    new_owner: None,
                });
                track.pool = to_pool;
                track.owner = None;
            }
            EventBody::Converted(c) => {
                // A lead converted without a recorded assignment or
                // follow-up still passed those stages.
                Self::reach(&mut self.agg, track, FunnelStage::FollowedUp);
                let value = c.expected_lifetime_value.unwrap_or(c.deal_value);
                let after_recall = track.recall_count > 0;
                // In the reporting currency, at the rates of the deal's day.
                let reporting = params.rates.as_ref().map(|r| {
                    (
                        r.convert(
                            i128::from(c.deal_value.minor_units),
                            c.deal_value.currency,
                            day,
                        ),
                        r.convert(i128::from(value.minor_units), value.currency, day),
                    )
                });
                let cost_currency = track.cost_currency;
                Self::for_cohorts(&mut self.agg, track, |cohort| {
                    cohort.converted += 1;
                    *cohort
                        .converted_by_cost_currency
                        .entry(cost_currency)
                        .or_default() += 1;
                    add_money(
                        &mut cohort.revenue,
                        c.deal_value.currency,
                        i128::from(c.deal_value.minor_units),
                    );
                    add_money(
                        &mut cohort.clv_sum,
                        value.currency,
                        i128::from(value.minor_units),
                    );
                    *cohort.clv_count.entry(value.currency).or_default() += 1;
                    if after_recall {
                        cohort.converted_after_recall += 1;
                    }
                    if let Some((deal, clv)) = reporting {
                        cohort.reporting.add_deal(deal, clv);
                    }
                });
                with_day_row(&mut self.agg.owners, &c.owner_id, day, |o| {
                    o.conversions += 1;
                    add_money(
                        &mut o.revenue,
                        c.deal_value.currency,
                        i128::from(c.deal_value.minor_units),
                    );
                    if let Some((Some(deal), _)) = reporting {
                        o.revenue_reporting = o
                            .revenue_reporting
                            .checked_add(deal)
                            .expect("money sums in i128 cannot overflow with bounded amounts");
                    }
                });
                Self::settle_recall(&mut self.agg, strings, days, track, &c.owner_id, at, params);
                // A converted lead takes no more events; its working record
                // is no longer needed, which bounds memory to open leads.
                // Its fingerprint is free again.
                if let Some(t) = self.leads.remove(event.lead_id.as_str()) {
                    if !t.fingerprint.is_empty() {
                        self.fingerprints.remove(&t.fingerprint);
                    }
                }
            }
        }
    }

    /// Counts a recall success when `actor` is the new owner acting in time.
    fn settle_recall(
        agg: &mut Aggregates,
        strings: &[String],
        days: &DayClock,
        track: &mut LeadTrack,
        actor: &str,
        at: i64,
        params: &MetricParams,
    ) {
        let Some(p) = &track.pending_recall else {
            return;
        };
        if p.new_owner.is_none_or(|o| strings[o as usize] != actor) {
            return;
        }
        if at - p.at_ms <= params.recall_success_window_ms {
            let pool = &strings[p.pool as usize];
            with_day_row(&mut agg.pools, pool, days.day_of(p.at_ms), |r| {
                r.recall_successes += 1
            });
            let cycle_ms = (at - track.created_at_ms).max(0);
            Self::for_cohorts(agg, track, |cohort| {
                cohort.recall_successes += 1;
                cohort.created_to_successful_recall_ms.add(cycle_ms);
            });
        }
        track.pending_recall = None;
    }
}
