//! The learned part of a score: naive Bayes over what is known about a lead
//! when it is scored — its creation fields (categorical, Laplace-smoothed)
//! and which kinds of interaction it has had (Bernoulli) — as Odoo's
//! predictive lead scoring does. A few dozen lines by hand: the counts are
//! the whole model, they add up (retraining is adding the outcomes learned
//! since), and they snapshot with the policy state.
//!
//! No leakage: a model only ever holds outcomes known when it was trained
//! (see the scoring fold), and a lead is scored from features it had at
//! that moment.

use super::rules::Contribution;
use crate::projector::IdMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The creation fields the model reads, in [`Features::fields`] order:
/// those an attribute rule may name.
pub use super::FIELDS;

/// Most distinct values learned per field; further values are learned as
/// one, [`OTHER_VALUE`] (memory stays bounded whatever producers send).
pub const VALUES_PER_FIELD_MAX: usize = 10_000;
pub const OTHER_VALUE: &str = "(other)";
/// Most interaction kinds the model learns.
pub const KINDS_MAX: usize = 64;

/// What the model sees of a lead at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    pub fields: [String; 6],
    /// Kinds of interaction it had by then.
    pub kinds: BTreeSet<String>,
}

/// Outcomes per feature value: `[not converted, converted]`.
type Outcomes = [u64; 2];

/// What the model learned: outcome counts overall, per field value and
/// per interaction kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    classes: Outcomes,
    fields: [BTreeMap<String, Outcomes>; 6],
    kinds: BTreeMap<String, Outcomes>,
}

impl Counts {
    /// Learns one lead's outcome from the features it had.
    pub fn learn(&mut self, f: &Features, converted: bool) {
        let c = usize::from(converted);
        self.classes[c] += 1;
        for (i, value) in f.fields.iter().enumerate() {
            let map = &mut self.fields[i];
            let key = if map.contains_key(value) || map.len() < VALUES_PER_FIELD_MAX {
                value.as_str()
            } else {
                OTHER_VALUE
            };
            map.entry(key.to_string()).or_default()[c] += 1;
        }
        for kind in &f.kinds {
            if self.kinds.contains_key(kind) || self.kinds.len() < KINDS_MAX {
                self.kinds.entry(kind.clone()).or_default()[c] += 1;
            }
        }
    }

    /// Adds what another set of counts learned.
    pub fn merge(&mut self, o: &Counts) {
        for c in 0..2 {
            self.classes[c] += o.classes[c];
        }
        for (i, map) in o.fields.iter().enumerate() {
            for (value, n) in map {
                let e = self.fields[i].entry(value.clone()).or_default();
                e[0] += n[0];
                e[1] += n[1];
            }
        }
        for (kind, n) in &o.kinds {
            let e = self.kinds.entry(kind.clone()).or_default();
            e[0] += n[0];
            e[1] += n[1];
        }
    }

    /// Outcomes learned.
    pub fn examples(&self) -> u64 {
        self.classes[0] + self.classes[1]
    }

    pub fn is_empty(&self) -> bool {
        self.examples() == 0
    }
}

/// A trained model: the counts of every outcome known when it was
/// trained, and its version (one per retraining that learned something).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredModel")]
pub struct Model {
    pub version: u32,
    /// Event time of the training: no outcome known later is in it.
    pub trained_at_ms: i64,
    counts: Counts,
    /// Each term of the log-odds, computed once per training from the
    /// counts (the fold asks for a probability at every interaction).
    #[serde(skip_serializing)]
    terms: Terms,
}

/// What a snapshot holds of a model: the counts (the terms are computed
/// from them when it is read back).
#[derive(Deserialize)]
struct StoredModel {
    version: u32,
    trained_at_ms: i64,
    counts: Counts,
}

impl From<StoredModel> for Model {
    fn from(m: StoredModel) -> Self {
        let terms = Terms::of(&m.counts);
        Model {
            version: m.version,
            trained_at_ms: m.trained_at_ms,
            counts: m.counts,
            terms,
        }
    }
}

/// The log-odds terms of a model's counts: the prior, each field value's
/// term (and the term of a value not seen), and each kind's term for a
/// lead that had it and one that did not. A function of the counts, so
/// two models with equal counts have equal terms (`PartialEq` looks at the
/// counts only).
#[derive(Clone, Debug, Default)]
struct Terms {
    prior: f64,
    fields: [IdMap<String, f64>; 6],
    unseen: [f64; 6],
    /// (kind, term if had, term if not), in the counts' (name) order.
    kinds: Vec<(String, f64, f64)>,
}

impl PartialEq for Terms {
    fn eq(&self, _: &Terms) -> bool {
        true
    }
}

impl Eq for Terms {}

impl Terms {
    /// Laplace smoothing throughout: an unseen value or kind moves
    /// nothing much, and nothing is ever log(0).
    fn of(counts: &Counts) -> Terms {
        let c = &counts.classes;
        let n = [c[0] as f64, c[1] as f64];
        let field_term = |seen: Outcomes, values: f64| {
            let p1 = (seen[1] as f64 + 1.0) / (n[1] + values);
            let p0 = (seen[0] as f64 + 1.0) / (n[0] + values);
            (p1 / p0).ln()
        };
        let mut terms = Terms {
            prior: ((n[1] + 1.0) / (n[0] + 1.0)).ln(),
            ..Terms::default()
        };
        for (i, map) in counts.fields.iter().enumerate() {
            let values = map.len() as f64 + 1.0;
            terms.fields[i] = map
                .iter()
                .map(|(value, seen)| (value.clone(), field_term(*seen, values)))
                .collect();
            let other = map.get(OTHER_VALUE).copied().unwrap_or_default();
            terms.unseen[i] = field_term(other, values);
        }
        terms.kinds = counts
            .kinds
            .iter()
            .map(|(kind, seen)| {
                let p1 = (seen[1] as f64 + 1.0) / (n[1] + 2.0);
                let p0 = (seen[0] as f64 + 1.0) / (n[0] + 2.0);
                (kind.clone(), (p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln())
            })
            .collect();
        terms
    }
}

/// One term of the log-odds: a field's value, or whether the lead had an
/// interaction kind.
enum Term<'a> {
    Field(usize, &'a str, f64),
    Kind(&'a str, bool, f64),
}

/// A model's answer for one lead.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The probability of conversion.
    pub probability: f64,
    /// Each feature's log-odds, largest effect first.
    pub contributions: Vec<Contribution>,
}

impl Model {
    /// Trains again at `at_ms` with the outcomes learned since: a new
    /// version when there are any.
    pub fn retrain(&mut self, learned: &Counts, at_ms: i64) {
        if learned.is_empty() {
            return;
        }
        self.counts.merge(learned);
        self.terms = Terms::of(&self.counts);
        self.version += 1;
        self.trained_at_ms = at_ms;
    }

    /// Whether it has learned enough to predict: `min_examples` outcomes,
    /// at least one of each.
    pub fn ready(&self, min_examples: u32) -> bool {
        let c = &self.counts.classes;
        c[0] > 0 && c[1] > 0 && self.counts.examples() >= u64::from(min_examples)
    }

    /// Outcomes it has learned from.
    pub fn examples(&self) -> u64 {
        self.counts.examples()
    }

    /// The model's label, for scores and reports: `nb-<version>`.
    pub fn label(&self) -> String {
        format!("nb-{}", self.version)
    }

    /// The probability that a lead with `f` converts, with each feature's
    /// share of the log-odds.
    pub fn predict(&self, f: &Features) -> Prediction {
        let mut why = Vec::new();
        let log_odds = self.log_odds(&f.fields, &|k| f.kinds.contains(k), &mut |term| {
            why.push(match term {
                Term::Field(i, value, points) => Contribution {
                    what: format!("{} = {value}", FIELDS[i]),
                    points,
                },
                Term::Kind(kind, true, points) => Contribution {
                    what: kind.to_string(),
                    points,
                },
                Term::Kind(kind, false, points) => Contribution {
                    what: format!("no {kind}"),
                    points,
                },
            })
        });
        why.sort_by(|a, b| {
            b.points
                .abs()
                .total_cmp(&a.points.abs())
                .then(a.what.cmp(&b.what))
        });
        Prediction {
            probability: 1.0 / (1.0 + (-log_odds).exp()),
            contributions: why,
        }
    }

    /// Just the probability (what [`predict`](Self::predict) gives,
    /// without the explanation's allocations): the scoring fold asks it
    /// at every event, and explains only the scores it announces.
    pub fn probability(&self, fields: &[String; 6], has_kind: &dyn Fn(&str) -> bool) -> f64 {
        let log_odds = self.log_odds(fields, has_kind, &mut |_| {});
        1.0 / (1.0 + (-log_odds).exp())
    }

    /// The log-odds of conversion, each term told to `note`: the prior,
    /// then the fields in order, then the kinds in name order (the same
    /// terms added in the same order, so the same bits, for the fold's
    /// probability and for an explained prediction).
    fn log_odds(
        &self,
        fields: &[String; 6],
        has_kind: &dyn Fn(&str) -> bool,
        note: &mut dyn FnMut(Term<'_>),
    ) -> f64 {
        let t = &self.terms;
        let mut log_odds = t.prior;
        for (i, value) in fields.iter().enumerate() {
            let term = t.fields[i].get(value).copied().unwrap_or(t.unseen[i]);
            log_odds += term;
            note(Term::Field(i, value, term));
        }
        for (kind, if_had, if_not) in &t.kinds {
            let had = has_kind(kind);
            let term = if had { *if_had } else { *if_not };
            log_odds += term;
            note(Term::Kind(kind, had, term));
        }
        log_odds
    }
}
