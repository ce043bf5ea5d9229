//! The scoring fold: every open lead's score, kept up to date from the
//! events in log order, and the model learned from the outcomes as they
//! become known.
//!
//! Time is event time. Before each event the fold is advanced to its time
//! ([`Scorer::advance`]): leads whose horizon has passed unconverted are
//! learned as non-conversions, and the model is retrained at every
//! multiple of `retrain_every` that has passed, on the outcomes known by
//! then — so a score at time T comes from a model trained before T on
//! outcomes known before T, and from the lead's own events up to T:
//! nothing later can reach it (no leakage). A conversion within the horizon
//! is learned as a conversion; one after it changes no training (the lead
//! was learned as not converted when its horizon passed).
//!
//! A lead's score is announced ([`ScoreCard`] out of [`Scorer::apply`])
//! when it is first known and whenever the combined score moves by at
//! least the threshold since the last announced one.

use super::model::{Counts, Features, Model};
use super::rules::{attribute_score, Behaviour, Contribution};
use super::Scoring;
use crate::domain::{EventBody, LeadEvent};
use crate::projector::IdMap;
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::BTreeSet;

/// The default move of the combined score that is announced again.
pub const ANNOUNCE_THRESHOLD_DEFAULT: u32 = 5;

/// A lead's score and its parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreCard {
    pub lead_id: String,
    pub at_ms: i64,
    pub attribute: Option<u32>,
    pub behaviour: Option<u32>,
    pub predictive: Option<u32>,
    pub combined: u32,
    /// The model the predictive part came from (`nb-3`), or empty.
    pub model_version: String,
    /// The rules that gave the attribute and behaviour points, most
    /// points first (at most [`CONTRIBUTIONS_MAX`]).
    pub rules: Vec<Contribution>,
    /// The features that moved the prediction most, in log-odds, largest
    /// effect first (at most [`CONTRIBUTIONS_MAX`]).
    pub features: Vec<Contribution>,
}

/// Most contributions a score card names.
pub const CONTRIBUTIONS_MAX: usize = 5;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Open {
    fields: [String; 6],
    attribute: Option<(u32, Vec<Contribution>)>,
    behaviour: Behaviour,
    /// When its horizon passes (creation + horizon), until then unknown.
    horizon_at_ms: i64,
    /// Its outcome was learned (the horizon passed unconverted).
    learned: bool,
    announced: Option<u32>,
    /// The time of its latest event (an announcement is stamped no
    /// earlier, so the lifecycle's order rule takes it).
    latest_at_ms: i64,
}

/// The fold's state: part of the policy's, snapshotted with it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scorer {
    /// Looked up at every event: hashed as the projections' lead maps.
    leads: IdMap<String, Open>,
    /// (horizon, lead) of the open leads whose outcome is not learned yet.
    horizons: BTreeSet<(i64, String)>,
    model: Model,
    /// Outcomes known since the last training.
    learned: Counts,
    /// The event time the fold has reached.
    now_ms: i64,
}

impl Scorer {
    pub fn model(&self) -> &Model {
        &self.model
    }

    fn features(o: &Open) -> Features {
        Features {
            fields: o.fields.clone(),
            kinds: o.behaviour.kinds().map(str::to_string).collect(),
        }
    }

    /// Moves the fold's time to `at_ms`: horizons that passed are learned
    /// as non-conversions and the model retrained at each training time
    /// passed, in time order.
    pub fn advance(&mut self, scoring: &Scoring, at_ms: i64) {
        let Some(predictive) = &scoring.predictive else {
            self.now_ms = self.now_ms.max(at_ms);
            return;
        };
        let every = predictive.retrain_every_ms();
        while self.now_ms < at_ms {
            if self.horizons.is_empty() && self.learned.is_empty() {
                // Nothing to learn on the way: each training would change
                // nothing, so time jumps (a tenant's first event does not
                // walk every day since 1970).
                self.now_ms = at_ms;
                break;
            }
            // The next training time after now, or `at_ms` if sooner.
            let next_training = (self.now_ms.div_euclid(every) + 1).saturating_mul(every);
            let step_to = next_training.min(at_ms);
            while let Some((due, lead)) = self.horizons.first().cloned() {
                if due > step_to {
                    break;
                }
                self.horizons.pop_first();
                if let Some(o) = self.leads.get_mut(&lead) {
                    o.learned = true;
                    let f = Self::features(o);
                    self.learned.learn(&f, false);
                }
            }
            if step_to == next_training {
                self.model.retrain(&self.learned, next_training);
                self.learned = Counts::default();
            }
            self.now_ms = step_to;
        }
    }

    /// Folds one event (call [`advance`](Self::advance) to its time
    /// first); returns the lead's score card when it is to be announced.
    /// The fold runs on every event the engine appends, so a lead is
    /// looked up once per event (twice when its score is announced).
    pub fn apply(&mut self, scoring: &Scoring, event: &LeadEvent) -> Option<ScoreCard> {
        if scoring.is_off() {
            return None;
        }
        let at = event.occurred_at_ms;
        let o = match &event.body {
            EventBody::Created(c) => {
                let vacant = match self.leads.entry(event.lead_id.clone()) {
                    Entry::Occupied(mut known) => {
                        let o = known.get_mut();
                        o.latest_at_ms = o.latest_at_ms.max(at);
                        return None;
                    }
                    Entry::Vacant(vacant) => vacant,
                };
                let horizon_at_ms = at.saturating_add(
                    scoring
                        .predictive
                        .as_ref()
                        .map_or(i64::MAX, |p| p.horizon_ms()),
                );
                if scoring.predictive.is_some() {
                    self.horizons.insert((horizon_at_ms, event.lead_id.clone()));
                }
                vacant.insert(Open {
                    fields: [
                        c.channel.clone(),
                        c.campaign.clone(),
                        c.pool.clone(),
                        c.region.clone(),
                        c.industry.clone(),
                        c.company_size.clone(),
                    ],
                    attribute: attribute_score(scoring, c),
                    behaviour: Behaviour::default(),
                    horizon_at_ms,
                    learned: false,
                    announced: None,
                    latest_at_ms: at,
                })
            }
            EventBody::Converted(_) => {
                let o = self.leads.remove(&event.lead_id)?;
                if !o.learned && scoring.predictive.is_some() {
                    self.horizons
                        .remove(&(o.horizon_at_ms, event.lead_id.clone()));
                    self.learned.learn(&Self::features(&o), true);
                }
                return None;
            }
            body => {
                let o = self.leads.get_mut(&event.lead_id)?;
                o.latest_at_ms = o.latest_at_ms.max(at);
                let EventBody::Engaged(g) = body else {
                    return None;
                };
                o.behaviour.engage(scoring, &g.kind, g.points, at);
                o
            }
        };
        // Most events move a score by less than the threshold: the
        // combined score is computed without its explanation, which is
        // built only for a score announced.
        let combined = Self::combined(&self.model, scoring, o, at);
        let moved = o
            .announced
            .is_none_or(|last| last.abs_diff(combined) >= scoring.announce_threshold());
        if !moved {
            return None;
        }
        o.announced = Some(combined);
        let card = self.card(scoring, &event.lead_id, at)?;
        debug_assert_eq!(card.combined, combined);
        Some(card)
    }

    /// An open lead's combined score at `at_ms`: [`card`](Self::card)'s,
    /// without the explanation.
    fn combined(model: &Model, scoring: &Scoring, o: &Open, at_ms: i64) -> u32 {
        let attribute = o.attribute.as_ref().map(|(s, _)| *s);
        let behaviour = o.behaviour.points_at(scoring, at_ms);
        let predictive = Self::probability_of(model, scoring, o)
            .map(|p| (p * 100.0).round().clamp(0.0, 100.0) as u32);
        scoring.combine(attribute, behaviour, predictive)
    }

    /// An open lead's score at `at_ms` (behaviour points fade with time),
    /// from the model in force.
    pub fn card(&self, scoring: &Scoring, lead_id: &str, at_ms: i64) -> Option<ScoreCard> {
        let o = self.leads.get(lead_id)?;
        let behaviour = o.behaviour.score_at(scoring, at_ms);
        let ready = scoring
            .predictive
            .as_ref()
            .is_some_and(|p| self.model.ready(p.min_examples));
        let prediction = ready.then(|| self.model.predict(&Self::features(o)));
        let attribute = o.attribute.as_ref().map(|(s, _)| *s);
        let behaviour_score = behaviour.as_ref().map(|(s, _)| *s);
        let predictive = prediction
            .as_ref()
            .map(|p| (p.probability * 100.0).round().clamp(0.0, 100.0) as u32);
        let mut rules: Vec<Contribution> = o
            .attribute
            .iter()
            .flat_map(|(_, c)| c.iter().cloned())
            .chain(behaviour.into_iter().flat_map(|(_, c)| c))
            .collect();
        rules.sort_by(|a, b| {
            b.points
                .abs()
                .total_cmp(&a.points.abs())
                .then(a.what.cmp(&b.what))
        });
        rules.truncate(CONTRIBUTIONS_MAX);
        let features = prediction
            .as_ref()
            .map(|p| {
                p.contributions
                    .iter()
                    .take(CONTRIBUTIONS_MAX)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Some(ScoreCard {
            lead_id: lead_id.to_string(),
            at_ms,
            attribute,
            behaviour: behaviour_score,
            predictive,
            combined: scoring.combine(attribute, behaviour_score, predictive),
            model_version: if prediction.is_some() {
                self.model.label()
            } else {
                String::new()
            },
            rules,
            features,
        })
    }

    /// The model's probability that an open lead converts, from what is
    /// known of it now; `None` before the model is ready.
    pub fn probability(&self, scoring: &Scoring, lead_id: &str) -> Option<f64> {
        Self::probability_of(&self.model, scoring, self.leads.get(lead_id)?)
    }

    fn probability_of(model: &Model, scoring: &Scoring, o: &Open) -> Option<f64> {
        let p = scoring.predictive.as_ref()?;
        model
            .ready(p.min_examples)
            .then(|| model.probability(&o.fields, &|k| o.behaviour.had(k)))
    }

    /// The time of an open lead's latest event.
    pub fn latest_at_ms(&self, lead_id: &str) -> Option<i64> {
        self.leads.get(lead_id).map(|o| o.latest_at_ms)
    }

    /// Open leads it keeps (bounded by the open leads of the log).
    pub fn open_leads(&self) -> usize {
        self.leads.len()
    }
}
