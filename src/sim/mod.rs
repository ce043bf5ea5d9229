//! A seeded, deterministic workload generator that behaves like a B2B sales
//! floor: it stands in for upstream marketing systems (and, later, for the
//! downstream CRM) in the demo, the tests and the benchmarks.
//!
//! The behaviour model ([`model`]):
//! - channels differ in cost per lead and in lead quality; scores follow
//!   quality;
//! - reps differ in speed (time to first follow-up) and skill, and slow down
//!   as their holdings grow;
//! - conversion probability rises with score and skill and falls with a slow
//!   first follow-up;
//! - neglected leads are recalled (no first follow-up in 48 h, no follow-up
//!   for 7 days, not converted in 30 days, or released by the rep) and
//!   reassigned to a rep other than the previous owners; after three recalls
//!   a lead stays in the pool.
//!
//! The same seed and configuration always give the same events, ids
//! included (ChaCha8 with a fixed seed; no clock, no hash-map iteration).

pub mod assignments;
pub mod live;
pub mod model;
pub mod scoring;

use crate::domain::time::{MS_PER_DAY, MS_PER_HOUR};
use crate::domain::*;
use model::{Model, Rep};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Number of leads created over the run.
    pub leads: u64,
    /// Event time of the start, UTC milliseconds.
    pub start_ms: i64,
    /// Length of the simulated history; nothing happens after it.
    pub days: u32,
    pub reps: u32,
    /// Probability, per valid event, of also emitting one bad input.
    pub bad_ratio: f64,
    /// Tenants the leads are spread over (`tenant-00`, `tenant-01`, …,
    /// round robin); 0 puts every lead in the default tenant.
    pub tenants: u32,
    /// Also emit the marketing system's interactions (`engaged` events):
    /// web visits, email opens and replies, form submissions, downloads,
    /// events attended — more of them, and more of the telling kinds, the
    /// likelier the lead is to buy (see [`model::ENGAGEMENTS`]). Drawn
    /// from a random stream of their own, so the other events of a seed
    /// are the same with or without them.
    pub engagement: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            leads: 10_000,
            // 2026-11-01T00:00:00Z.
            start_ms: 1_793_491_200_000,
            days: 30,
            reps: 40,
            bad_ratio: 0.0,
            tenants: 0,
            engagement: false,
        }
    }
}

/// A deliberately bad input and the rejection code the engine must give it.
#[derive(Clone, Debug, PartialEq)]
pub enum BadInput {
    /// Bytes that are not an event at all.
    Garbage(Vec<u8>),
    /// A well-formed event the lifecycle must refuse.
    Invalid(Box<LeadEvent>),
}

// Valid events are the common case and are moved once each; boxing them
// would cost an allocation per event to save stack space on the rare bad one.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum SimItem {
    Event(LeadEvent),
    Bad {
        input: BadInput,
        expected_reason: &'static str,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Score,
    Assign,
    FirstFollowUpDue,
    FollowUp,
    Convert,
    Recall(RecallReasonOrd),
    /// An interaction of the kind [`model::ENGAGEMENTS`]`[i]`.
    Engage(u8),
}

/// `RecallReason` with an order, for the heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RecallReasonOrd {
    NoFirstFollowUp,
    Stale,
    NotConverted,
    Released,
}

impl RecallReasonOrd {
    fn reason(self) -> RecallReason {
        match self {
            RecallReasonOrd::NoFirstFollowUp => RecallReason::NoFirstFollowUp,
            RecallReasonOrd::Stale => RecallReason::Stale,
            RecallReasonOrd::NotConverted => RecallReason::NotConverted,
            RecallReasonOrd::Released => RecallReason::Released,
        }
    }
}

struct SimLead {
    id: String,
    tenant: String,
    channel: usize,
    size: usize,
    pool: usize,
    score: u32,
    owner: Option<usize>,
    previous_owners: Vec<usize>,
    assigned_at_ms: i64,
    first_delay_ms: i64,
    follow_ups_left: u32,
    will_convert: bool,
    recalls: u32,
    converted: bool,
    /// The probability of conversion drawn at its first follow-up.
    first_probability: Option<f64>,
}

/// Counts of what was generated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimSummary {
    pub events_by_kind: BTreeMap<&'static str, u64>,
    pub bad_by_reason: BTreeMap<&'static str, u64>,
}

pub struct Simulator {
    config: SimConfig,
    model: Model,
    rng: ChaCha8Rng,
    leads: Vec<SimLead>,
    /// Pending actions: (time, tie-break, lead index, action).
    queue: BinaryHeap<Reverse<(i64, u64, usize, Action)>>,
    tie: u64,
    next_arrival_ms: i64,
    created: u64,
    end_ms: i64,
    event_counter: u64,
    holdings: Vec<u32>,
    pending_bad: Option<SimItem>,
    summary: SimSummary,
    /// The interactions' own random stream and id counter.
    engage_rng: ChaCha8Rng,
    engage_counter: u64,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Simulator {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let model = Model::new(config.reps.max(2), &mut rng);
        let holdings = vec![0; model.reps.len()];
        let mean_gap = Self::mean_arrival_gap_ms(&config);
        let first = config.start_ms + exp_sample(&mut rng, mean_gap);
        let engage_rng = ChaCha8Rng::seed_from_u64(config.seed ^ ENGAGE_STREAM);
        Simulator {
            end_ms: config.start_ms + i64::from(config.days) * MS_PER_DAY,
            config,
            model,
            rng,
            leads: Vec::new(),
            queue: BinaryHeap::new(),
            tie: 0,
            next_arrival_ms: first,
            created: 0,
            event_counter: 0,
            holdings,
            pending_bad: None,
            summary: SimSummary::default(),
            engage_rng,
            engage_counter: 0,
        }
    }

    fn mean_arrival_gap_ms(config: &SimConfig) -> f64 {
        // Leads arrive over the first 80% of the run, so most of them live
        // long enough to be worked.
        let span = f64::from(config.days.max(1)) * MS_PER_DAY as f64 * 0.8;
        span / config.leads.max(1) as f64
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn summary(&self) -> &SimSummary {
        &self.summary
    }

    /// Each lead's true probability of conversion by the first rep who
    /// followed it up — drawn at that first follow-up (see
    /// [`Model::conversion_probability`]) — for the leads that had one.
    pub fn true_probabilities(&self) -> impl Iterator<Item = (&str, f64)> {
        self.leads
            .iter()
            .filter_map(|l| Some((l.id.as_str(), l.first_probability?)))
    }

    fn schedule(&mut self, at_ms: i64, lead: usize, action: Action) {
        if at_ms < self.end_ms {
            self.tie += 1;
            self.queue.push(Reverse((at_ms, self.tie, lead, action)));
        }
    }

    fn event(&mut self, lead: usize, at_ms: i64, body: EventBody) -> LeadEvent {
        self.event_counter += 1;
        let id = format!("ev-{}-{}", self.config.seed, self.event_counter);
        self.event_as(id, "leadflow-sim", lead, at_ms, body)
    }

    /// An event of `producer` with its id, counted in the summary.
    fn event_as(
        &mut self,
        event_id: String,
        producer: &str,
        lead: usize,
        at_ms: i64,
        body: EventBody,
    ) -> LeadEvent {
        let e = LeadEvent {
            event_id,
            lead_id: self.leads[lead].id.clone(),
            occurred_at_ms: at_ms,
            producer: producer.into(),
            tenant_id: self.leads[lead].tenant.clone(),
            body,
        };
        *self
            .summary
            .events_by_kind
            .entry(e.body.kind().as_str())
            .or_default() += 1;
        e
    }

    fn create_lead(&mut self, at_ms: i64) -> LeadEvent {
        let idx = self.leads.len();
        let channel = self.model.pick_channel(&mut self.rng);
        let size = self.model.pick_size(&mut self.rng);
        let ch = &self.model.channels[channel];
        let cost = (ch.cost_minor_units as f64 * self.rng.gen_range(0.6..1.4)) as i64;
        let campaign = format!("{}-{}", ch.name, ["a", "b", "c"][self.rng.gen_range(0..3)]);
        let region = model::REGIONS[self.rng.gen_range(0..model::REGIONS.len())];
        let industry = model::INDUSTRIES[self.rng.gen_range(0..model::INDUSTRIES.len())];
        let pool = model::pool_for_size(size);
        let lead_id = format!("lead-{}-{idx:07}", self.config.seed);
        let fingerprint = format!("{:016x}", self.rng.gen::<u64>());
        let tenant = match self.config.tenants {
            0 => String::new(),
            n => format!("tenant-{:02}", idx as u64 % u64::from(n)),
        };
        self.leads.push(SimLead {
            id: lead_id,
            tenant,
            channel,
            size,
            pool,
            score: 0,
            owner: None,
            previous_owners: Vec::new(),
            assigned_at_ms: 0,
            first_delay_ms: 0,
            follow_ups_left: 0,
            will_convert: false,
            recalls: 0,
            converted: false,
            first_probability: None,
        });
        let body = EventBody::Created(LeadCreated {
            channel: ch.name.to_string(),
            campaign,
            pool: model::POOLS[pool].to_string(),
            region: region.to_string(),
            industry: industry.to_string(),
            company_size: model::SIZES[size].name.to_string(),
            acquisition_cost: Money::new(cost, self.model.currency),
            contact_fingerprint: fingerprint,
            attributes: Default::default(),
        });
        let e = self.event(idx, at_ms, body);
        let score_at = at_ms + self.rng.gen_range(60_000..30 * 60_000);
        self.schedule(score_at, idx, Action::Score);
        e
    }

    /// Picks the least-loaded eligible rep of the lead's pool, or `None`.
    fn pick_rep(&mut self, lead: usize) -> Option<usize> {
        let pool = self.leads[lead].pool;
        let prev = &self.leads[lead].previous_owners;
        let mut best: Option<(u32, u64, usize)> = None;
        for (i, rep) in self.model.reps.iter().enumerate() {
            if rep.pool != pool || prev.contains(&i) {
                continue;
            }
            // A random tie-break spreads equal loads across reps.
            let key = (self.holdings[i], self.rng.gen::<u64>(), i);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        best.map(|b| b.2)
    }

    fn step(&mut self, at_ms: i64, lead: usize, action: Action) -> Option<LeadEvent> {
        match action {
            Action::Score => {
                let quality = self.model.channels[self.leads[lead].channel].quality;
                let noise: f64 = self.rng.gen_range(-20.0..20.0);
                let score = (quality * 100.0 + noise).clamp(0.0, 100.0) as u32;
                self.leads[lead].score = score;
                let body = EventBody::Scored(LeadScored {
                    score,
                    attribute_score: (score + self.rng.gen_range(0..10)).min(100),
                    behaviour_score: score.saturating_sub(self.rng.gen_range(0..10)),
                    predictive_score: score,
                    model_version: "sim-v1".into(),
                });
                let wait = exp_sample(&mut self.rng, 3.0 * MS_PER_HOUR as f64);
                self.schedule(at_ms + wait, lead, Action::Assign);
                if self.config.engagement {
                    self.schedule_engagements(at_ms, lead, score);
                }
                Some(self.event(lead, at_ms, body))
            }
            Action::Assign => {
                // Nobody eligible: the lead stays in the pool for good.
                let rep = self.pick_rep(lead)?;
                self.holdings[rep] += 1;
                let l = &mut self.leads[lead];
                l.owner = Some(rep);
                l.assigned_at_ms = at_ms;
                let r: &Rep = &self.model.reps[rep];
                let load_factor = 1.0 + f64::from(self.holdings[rep]) / 100.0;
                let delay = exp_sample(&mut self.rng, r.first_follow_up_mean_ms * load_factor);
                let owner_id = r.id.clone();
                let sla = model::FIRST_FOLLOW_UP_LIMIT_MS;
                if delay > sla {
                    self.schedule(
                        at_ms + sla,
                        lead,
                        Action::Recall(RecallReasonOrd::NoFirstFollowUp),
                    );
                } else {
                    self.schedule(at_ms + delay, lead, Action::FirstFollowUpDue);
                }
                let body = EventBody::Assigned(LeadAssigned {
                    owner_id,
                    pool: model::POOLS[self.leads[lead].pool].to_string(),
                    method: AssignmentMethod::Rule,
                    command_id: String::new(),
                });
                Some(self.event(lead, at_ms, body))
            }
            Action::FirstFollowUpDue => {
                let rep = self.leads[lead].owner?;
                let delay = at_ms - self.leads[lead].assigned_at_ms;
                let p = self.model.conversion_probability(
                    self.leads[lead].channel,
                    self.leads[lead].score,
                    rep,
                    delay,
                );
                let l = &mut self.leads[lead];
                l.first_delay_ms = delay;
                l.will_convert = self.rng.gen_bool(p);
                l.first_probability.get_or_insert(p);
                l.follow_ups_left = self.rng.gen_range(1..5);
                self.follow_up(at_ms, lead, rep)
            }
            Action::FollowUp => {
                let rep = self.leads[lead].owner?;
                self.follow_up(at_ms, lead, rep)
            }
            Action::Convert => {
                let rep = self.leads[lead].owner?;
                self.holdings[rep] -= 1;
                self.leads[lead].converted = true;
                let size = &model::SIZES[self.leads[lead].size];
                let deal = (size.deal_minor_units as f64 * self.rng.gen_range(0.5..1.8)) as i64;
                let clv = (deal as f64 * self.rng.gen_range(2.0..5.0)) as i64;
                let body = EventBody::Converted(LeadConverted {
                    owner_id: self.model.reps[rep].id.clone(),
                    deal_value: Money::new(deal, self.model.currency),
                    customer_id: format!("cust-{}", self.leads[lead].id),
                    expected_lifetime_value: Some(Money::new(clv, self.model.currency)),
                });
                Some(self.event(lead, at_ms, body))
            }
            Action::Recall(reason) => {
                let rep = self.leads[lead].owner.take()?;
                self.holdings[rep] -= 1;
                let l = &mut self.leads[lead];
                l.previous_owners.push(rep);
                l.recalls += 1;
                let recalls = l.recalls;
                let body = EventBody::Recalled(LeadRecalled {
                    previous_owner_id: self.model.reps[rep].id.clone(),
                    reason: reason.reason(),
                    to_pool: String::new(),
                    command_id: String::new(),
                    rule_id: format!("sim-{:?}", reason).to_lowercase(),
                });
                if recalls < model::RECALLS_MAX {
                    let wait = exp_sample(&mut self.rng, 2.0 * MS_PER_HOUR as f64);
                    self.schedule(at_ms + wait, lead, Action::Assign);
                }
                Some(self.event(lead, at_ms, body))
            }
            Action::Engage(kind) => {
                // A customer's interactions stop mattering to marketing
                // once it bought (and the lifecycle would refuse them).
                if self.leads[lead].converted {
                    return None;
                }
                let e = &model::ENGAGEMENTS[usize::from(kind)];
                self.engage_counter += 1;
                let id = format!("ev-{}-g{}", self.config.seed, self.engage_counter);
                let body = EventBody::Engaged(LeadEngaged {
                    kind: e.kind.to_string(),
                    points: None,
                    source: e.source.to_string(),
                    detail: String::new(),
                });
                let event = self.event_as(id, "leadflow-sim-marketing", lead, at_ms, body);
                Some(event)
            }
        }
    }

    /// Schedules a scored lead's interactions over the days that follow,
    /// from the interactions' own random stream.
    fn schedule_engagements(&mut self, at_ms: i64, lead: usize, score: u32) {
        for (i, e) in model::ENGAGEMENTS.iter().enumerate() {
            let n = poisson(&mut self.engage_rng, e.expected(score));
            for _ in 0..n {
                let after = exp_sample(&mut self.engage_rng, e.after_mean_ms as f64);
                self.schedule(at_ms + after.max(1), lead, Action::Engage(i as u8));
            }
        }
    }

    /// Emits a follow-up and schedules what follows it.
    fn follow_up(&mut self, at_ms: i64, lead: usize, rep: usize) -> Option<LeadEvent> {
        let gap_mean = self.model.reps[rep].follow_up_gap_mean_ms;
        let gap = exp_sample(&mut self.rng, gap_mean);
        let l = &mut self.leads[lead];
        l.follow_ups_left = l.follow_ups_left.saturating_sub(1);
        let held_ms = at_ms + gap - l.assigned_at_ms;
        if l.follow_ups_left == 0 && l.will_convert {
            self.schedule(at_ms + gap, lead, Action::Convert);
        } else if gap > model::STALE_AFTER_MS {
            self.schedule(
                at_ms + model::STALE_AFTER_MS,
                lead,
                Action::Recall(RecallReasonOrd::Stale),
            );
        } else if held_ms > model::HOLD_LIMIT_MS {
            let deadline = l.assigned_at_ms + model::HOLD_LIMIT_MS;
            self.schedule(
                deadline.max(at_ms + 1),
                lead,
                Action::Recall(RecallReasonOrd::NotConverted),
            );
        } else if l.follow_ups_left == 0 && self.rng.gen_bool(0.03) {
            self.schedule(at_ms + gap, lead, Action::Recall(RecallReasonOrd::Released));
        } else {
            if l.follow_ups_left == 0 {
                l.follow_ups_left = 1;
            }
            self.schedule(at_ms + gap, lead, Action::FollowUp);
        }
        let kinds = [
            FollowUpKind::Call,
            FollowUpKind::Email,
            FollowUpKind::Message,
            FollowUpKind::Visit,
            FollowUpKind::Meeting,
        ];
        let kind = kinds[self.rng.gen_range(0..kinds.len())];
        let body = EventBody::FollowedUp(LeadFollowedUp {
            owner_id: self.model.reps[rep].id.clone(),
            kind,
            outcome: "contacted".into(),
        });
        Some(self.event(lead, at_ms, body))
    }

    /// Maybe makes a bad input to follow the valid event `e`.
    fn maybe_bad(&mut self, e: &LeadEvent) {
        if self.config.bad_ratio <= 0.0 || !self.rng.gen_bool(self.config.bad_ratio.min(1.0)) {
            return;
        }
        self.event_counter += 1;
        let n = self.event_counter;
        let bad_id = format!("bad-{}-{n}", self.config.seed);
        let mut base = e.clone();
        base.event_id = bad_id.clone();
        let (input, reason) = match self.rng.gen_range(0..5) {
            0 => (
                BadInput::Garbage(format!("\u{1}not an event #{n}").into_bytes()),
                "undecodable",
            ),
            1 if matches!(e.body, EventBody::Assigned(_)) => {
                // A CRM double-submit: the assignment just emitted, again
                // under a new id. Rejected now (the rep holds the lead);
                // it must stay rejected when the file is read again after
                // the lead has been recalled.
                (BadInput::Invalid(Box::new(base)), "already_owner")
            }
            1 => {
                // A redelivery of the event just emitted.
                (BadInput::Invalid(Box::new(e.clone())), "duplicate")
            }
            2 => {
                base.lead_id = format!("ghost-{}-{n}", self.config.seed);
                base.body = EventBody::FollowedUp(LeadFollowedUp {
                    owner_id: "rep-ghost".into(),
                    kind: FollowUpKind::Call,
                    outcome: String::new(),
                });
                (BadInput::Invalid(Box::new(base)), "unknown_lead")
            }
            3 => {
                base.body = EventBody::Scored(LeadScored {
                    score: 150,
                    attribute_score: 0,
                    behaviour_score: 0,
                    predictive_score: 0,
                    model_version: "broken".into(),
                });
                (BadInput::Invalid(Box::new(base)), "score_out_of_range")
            }
            _ => {
                base.lead_id = format!("neg-{}-{n}", self.config.seed);
                base.body = EventBody::Created(LeadCreated {
                    channel: "social".into(),
                    campaign: String::new(),
                    pool: "smb".into(),
                    region: String::new(),
                    industry: String::new(),
                    company_size: String::new(),
                    acquisition_cost: Money::new(-100, self.model.currency),
                    contact_fingerprint: String::new(),
                    attributes: Default::default(),
                });
                (BadInput::Invalid(Box::new(base)), "negative_money")
            }
        };
        *self.summary.bad_by_reason.entry(reason).or_default() += 1;
        self.pending_bad = Some(SimItem::Bad {
            input,
            expected_reason: reason,
        });
    }
}

impl Simulator {
    /// The valid events alone (with `bad_ratio` above 0 the bad inputs
    /// among them are left out): what a log accepts of the run.
    pub fn events(self) -> impl Iterator<Item = LeadEvent> {
        self.filter_map(|item| match item {
            SimItem::Event(e) => Some(e),
            SimItem::Bad { .. } => None,
        })
    }
}

impl Iterator for Simulator {
    type Item = SimItem;

    fn next(&mut self) -> Option<SimItem> {
        if let Some(bad) = self.pending_bad.take() {
            return Some(bad);
        }
        loop {
            let next_action = self.queue.peek().map(|Reverse(a)| a.0);
            let arrival_due =
                self.created < self.config.leads && self.next_arrival_ms < self.end_ms;
            let event = match next_action {
                Some(t) if !arrival_due || t < self.next_arrival_ms => {
                    let Reverse((at, _, lead, action)) = self.queue.pop().expect("peeked");
                    match self.step(at, lead, action) {
                        Some(e) => e,
                        None => continue,
                    }
                }
                _ if arrival_due => {
                    let at = self.next_arrival_ms;
                    self.created += 1;
                    let gap = exp_sample(&mut self.rng, Self::mean_arrival_gap_ms(&self.config));
                    self.next_arrival_ms = at + gap.max(1);
                    self.create_lead(at)
                }
                _ => return None,
            };
            // Bad inputs come from the main stream's producers only, so
            // the interactions leave the rest of a seed's output as it was.
            if !matches!(event.body, EventBody::Engaged(_)) {
                self.maybe_bad(&event);
            }
            return Some(SimItem::Event(event));
        }
    }
}

impl SimItem {
    /// Writes the item as one record: bad inputs exactly as a broken
    /// producer would have sent them.
    pub fn write_to<W: std::io::Write>(
        &self,
        w: &mut crate::codec::stream::EventWriter<W>,
    ) -> std::io::Result<()> {
        match self {
            SimItem::Event(e) => w.write(e),
            SimItem::Bad {
                input: BadInput::Invalid(e),
                ..
            } => w.write(e),
            SimItem::Bad {
                input: BadInput::Garbage(b),
                ..
            } => w.write_raw(b),
        }
    }
}

/// The seed of the interactions' random stream is the run's seed with
/// these bits flipped.
const ENGAGE_STREAM: u64 = 0x656e_6761_6765_6d65;

/// A Poisson-distributed count with the given mean (Knuth's method: the
/// means here are small).
fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    let limit = (-mean.clamp(0.0, 30.0)).exp();
    let mut product: f64 = rng.gen_range(0.0..1.0);
    let mut n = 0;
    while product > limit {
        n += 1;
        product *= rng.gen_range(0.0..1.0);
    }
    n
}

/// An exponentially distributed duration with the given mean, in whole ms.
fn exp_sample(rng: &mut ChaCha8Rng, mean_ms: f64) -> i64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    (-u.ln() * mean_ms) as i64
}

#[cfg(test)]
mod tests;
