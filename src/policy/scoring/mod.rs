//! Lead scoring: three parts, each 0..=100, as the CRMs the engine answers
//! to score leads, configured by the policy file's `[scoring]`. The
//! processor runs the fold ([`fold`]) over every event; a score it
//! announces waits in the policy state until its `scored` event (producer
//! `leadflow`) is in the log, which the engine appends after the events
//! of the batch that moved it, in the batch's own write
//! (`log::EventLog::append_admitted`'s `follow`).
//!
//! - **Attribute** points from what the lead was created with (industry =
//!   manufacturing +20, company_size = large +15, channel = referral +10):
//!   [`rules::attribute_score`].
//! - **Behaviour** points from its interactions (`engaged` events), per
//!   kind, each decaying with its half-life and capped per kind and in all:
//!   [`rules::Behaviour`].
//! - **Predictive**: the probability of conversion from a naive Bayes
//!   model learned from the leads whose outcome is known ([`model`]),
//!   retrained on a schedule of event time, never from anything later than
//!   the moment scored.
//!
//! Everything here is pure, integer-configured and deterministic: a replay
//! computes the same scores bit for bit. [`evaluate`] measures a model the
//! way the issue asks (AUC, Brier score, log-loss, calibration by decile,
//! lift of the top decile).

pub mod evaluate;
pub mod fold;
pub mod model;
pub mod outcomes;
pub mod rules;

use super::duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most attribute rules and behaviour kinds in one policy.
pub const ATTRIBUTE_RULES_MAX: usize = 256;
pub const BEHAVIOUR_KINDS_MAX: usize = 64;

/// `[scoring]` of the policy file. Left out, the engine computes no score.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scoring {
    /// `[[scoring.attributes]]`: points for what a lead was created with.
    pub attributes: Vec<AttributeRule>,
    /// `[scoring.behaviour.<kind>]`: points per interaction of a kind
    /// (`web_visit`, `email_reply`, …).
    pub behaviour: BTreeMap<String, BehaviourRule>,
    /// Most behaviour points, every kind together (default 100).
    pub behaviour_cap: Option<u32>,
    /// `[scoring.predictive]`: the learned part; left out, none.
    pub predictive: Option<Predictive>,
    /// The combined score is the weighted mean of the parts present, with
    /// these weights (percent; default 30 / 30 / 40).
    pub weights: Weights,
    /// A lead's score is announced again when its combined score moved by
    /// at least this much (default 5).
    pub announce_threshold: Option<u32>,
}

/// Points when a creation field has a value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributeRule {
    /// `channel`, `campaign`, `pool`, `region`, `industry`,
    /// `company_size`, or `attributes.<key>` (a key of the lead's
    /// attributes map).
    pub field: String,
    /// The value that earns the points (exact match) …
    pub equals: Option<String>,
    /// … or any of these.
    pub any_of: Vec<String>,
    /// May be negative (e.g. a channel that sells poor leads).
    pub points: i32,
}

/// Points for each interaction of one kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviourRule {
    /// Points per interaction, when the producer gave none of its own.
    pub points: i32,
    /// The points of an interaction halve every this long (event time);
    /// left out, they never fade.
    #[serde(alias = "half_life", deserialize_with = "duration::opt_ms")]
    pub half_life_ms: Option<i64>,
    /// Most points this kind gives at once.
    pub cap: Option<u32>,
}

/// The learned part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Predictive {
    /// A lead not converted this long after its creation is a known
    /// non-conversion (default 30 days).
    #[serde(alias = "horizon", deserialize_with = "duration::opt_ms")]
    pub horizon_ms: Option<i64>,
    /// The model is retrained at every multiple of this much event time
    /// (default one day), on every outcome known by then.
    #[serde(alias = "retrain_every", deserialize_with = "duration::opt_ms")]
    pub retrain_every_ms: Option<i64>,
    /// No predictive part until the model has learned from this many
    /// outcomes, of which at least one of each kind (default 200).
    pub min_examples: u32,
}

impl Default for Predictive {
    fn default() -> Predictive {
        Predictive {
            horizon_ms: None,
            retrain_every_ms: None,
            min_examples: 200,
        }
    }
}

impl Predictive {
    pub const HORIZON_MS_DEFAULT: i64 = 30 * 86_400_000;
    pub const RETRAIN_EVERY_MS_DEFAULT: i64 = 86_400_000;

    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms.unwrap_or(Self::HORIZON_MS_DEFAULT)
    }

    pub fn retrain_every_ms(&self) -> i64 {
        self.retrain_every_ms
            .unwrap_or(Self::RETRAIN_EVERY_MS_DEFAULT)
    }
}

/// Weights of the parts in the combined score, in percent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub attribute: u32,
    pub behaviour: u32,
    pub predictive: u32,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            attribute: 30,
            behaviour: 30,
            predictive: 40,
        }
    }
}

/// The creation fields an attribute rule may name.
pub const FIELDS: [&str; 6] = [
    "channel",
    "campaign",
    "pool",
    "region",
    "industry",
    "company_size",
];

impl Scoring {
    /// Whether the policy scores at all.
    pub fn is_off(&self) -> bool {
        self.attributes.is_empty() && self.behaviour.is_empty() && self.predictive.is_none()
    }

    /// How far a combined score moves before it is announced again.
    pub fn announce_threshold(&self) -> u32 {
        self.announce_threshold
            .unwrap_or(fold::ANNOUNCE_THRESHOLD_DEFAULT)
            .max(1)
    }

    /// The most behaviour points, all kinds together.
    pub fn behaviour_cap(&self) -> u32 {
        self.behaviour_cap.unwrap_or(100)
    }

    /// Checks the section; errors name the rule.
    pub fn validate(&self) -> Result<(), String> {
        if self.attributes.len() > ATTRIBUTE_RULES_MAX {
            return Err(format!(
                "scoring: more than {ATTRIBUTE_RULES_MAX} attribute rules"
            ));
        }
        for (i, r) in self.attributes.iter().enumerate() {
            let at = format!("scoring.attributes[{i}]");
            let known = FIELDS.contains(&r.field.as_str())
                || r.field
                    .strip_prefix("attributes.")
                    .is_some_and(|k| !k.is_empty());
            if !known {
                return Err(format!(
                    "{at}: field {:?} is not one of {} or attributes.<key>",
                    r.field,
                    FIELDS.join(", ")
                ));
            }
            if r.equals.is_none() == r.any_of.is_empty() {
                return Err(format!("{at}: give either equals or any_of"));
            }
            if r.points.abs() > 100 {
                return Err(format!("{at}: points must be in -100..=100"));
            }
        }
        if self.behaviour.len() > BEHAVIOUR_KINDS_MAX {
            return Err(format!(
                "scoring: more than {BEHAVIOUR_KINDS_MAX} behaviour kinds"
            ));
        }
        for (kind, r) in &self.behaviour {
            let at = format!("scoring.behaviour.{kind}");
            if r.points.abs() > 100 {
                return Err(format!("{at}: points must be in -100..=100"));
            }
            if r.half_life_ms.is_some_and(|h| h <= 0) {
                return Err(format!("{at}: half_life must be longer than zero"));
            }
            if r.cap.is_some_and(|c| c > 100) {
                return Err(format!("{at}: cap must be at most 100"));
            }
        }
        if self.announce_threshold.is_some_and(|t| t == 0 || t > 100) {
            return Err("scoring.announce_threshold must be in 1..=100".into());
        }
        if self.behaviour_cap.is_some_and(|c| c > 100) {
            return Err("scoring.behaviour_cap must be at most 100".into());
        }
        if let Some(p) = &self.predictive {
            if p.horizon_ms() <= 0 || p.retrain_every_ms() <= 0 {
                return Err(
                    "scoring.predictive: horizon and retrain_every must be longer than zero".into(),
                );
            }
        }
        let w = &self.weights;
        if w.attribute + w.behaviour + w.predictive == 0 {
            return Err("scoring.weights: at least one part must weigh more than zero".into());
        }
        Ok(())
    }

    /// The combined score: the weighted mean of the parts present (a part
    /// is absent when the policy has no rules for it, or the model has not
    /// learned enough yet), rounded half up.
    pub fn combine(
        &self,
        attribute: Option<u32>,
        behaviour: Option<u32>,
        predictive: Option<u32>,
    ) -> u32 {
        let w = &self.weights;
        let parts = [
            (attribute, w.attribute),
            (behaviour, w.behaviour),
            (predictive, w.predictive),
        ];
        let (sum, weight) = parts
            .iter()
            .filter_map(|(v, w)| v.map(|v| (u64::from(v) * u64::from(*w), u64::from(*w))))
            .fold((0u64, 0u64), |(s, t), (v, w)| (s + v, t + w));
        if weight == 0 {
            return 0;
        }
        u32::try_from((2 * sum + weight) / (2 * weight))
            .unwrap_or(100)
            .min(100)
    }
}

#[cfg(test)]
mod tests;
