//! How good the engine's predictive score is on a simulated history: the
//! simulator knows each lead's true probability of conversion, so the best
//! AUC any model could reach on the same leads is known, and the model's
//! AUC is measured against it.
//!
//! Each lead is scored at its first follow-up — the moment the simulator
//! draws whether the rep who works it will convert it, with a probability
//! it knows — by the scoring fold as it stood then (trained on the outcomes
//! known by then, from the lead's own events so far). The outcome both are
//! measured against is whether that rep converted it: a lead recalled and
//! worked again draws again with another rep, and counting those later
//! chances against the first probability would make the truth look worse
//! than it is (the leads that did not convert are the ones that get more
//! chances). Only leads first followed up in the held-out period count:
//! every model version that scores them was trained before it.

use super::{SimConfig, SimItem, Simulator};
use crate::domain::EventBody;
use crate::policy::scoring::evaluate::{evaluate, Evaluation};
use crate::policy::scoring::fold::Scorer;
use crate::policy::scoring::Scoring;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// The model's measures and the true probabilities', on the same leads.
#[derive(Clone, Debug, Serialize)]
pub struct ScoringQuality {
    /// The engine's model, each lead scored at its first follow-up.
    pub model: Evaluation,
    /// The simulator's true probabilities of the same leads.
    pub truth: Evaluation,
    /// Model versions trained over the run.
    pub model_versions: u32,
    pub events: u64,
}

impl ScoringQuality {
    /// The model's AUC over the true probabilities' (the ceiling).
    pub fn auc_ratio(&self) -> Option<f64> {
        Some(self.model.auc? / self.truth.auc?)
    }
}

/// Runs the simulator (with its interactions) through the scoring fold of
/// `scoring` and measures the predictions of the leads first followed up
/// from `holdout_from_ms` to `holdout_to_ms` (event time) against their
/// outcomes by the end of the run.
pub fn measure(
    config: SimConfig,
    scoring: &Scoring,
    holdout_from_ms: i64,
    holdout_to_ms: i64,
) -> ScoringQuality {
    let mut sim = Simulator::new(SimConfig {
        engagement: true,
        ..config
    });
    let mut scorer = Scorer::default();
    // The model's probability of each held-out lead at its first follow-up.
    let mut predicted: HashMap<String, f64> = HashMap::new();
    // The rep of each lead's first follow-up.
    let mut first_rep: HashMap<String, String> = HashMap::new();
    // The leads converted by that rep.
    let mut converted: HashSet<String> = HashSet::new();
    let mut events = 0u64;
    for item in sim.by_ref() {
        let SimItem::Event(e) = item else { continue };
        events += 1;
        scorer.advance(scoring, e.occurred_at_ms);
        match &e.body {
            EventBody::FollowedUp(f) if !first_rep.contains_key(&e.lead_id) => {
                first_rep.insert(e.lead_id.clone(), f.owner_id.clone());
                let held_out = (holdout_from_ms..holdout_to_ms).contains(&e.occurred_at_ms);
                if let Some(p) = held_out
                    .then(|| scorer.probability(scoring, &e.lead_id))
                    .flatten()
                {
                    predicted.insert(e.lead_id.clone(), p);
                }
            }
            EventBody::Converted(c) if first_rep.get(&e.lead_id) == Some(&c.owner_id) => {
                converted.insert(e.lead_id.clone());
            }
            _ => {}
        }
        scorer.apply(scoring, &e);
    }
    let mut model = Vec::with_capacity(predicted.len());
    let mut truth = Vec::with_capacity(predicted.len());
    // In the simulator's lead order, so that the measures do not depend
    // on a hash map's.
    for (lead, p_true) in sim.true_probabilities() {
        if let Some(p) = predicted.get(lead) {
            let y = converted.contains(lead);
            model.push((*p, y));
            truth.push((p_true, y));
        }
    }
    ScoringQuality {
        model: evaluate(&model),
        truth: evaluate(&truth),
        model_versions: scorer.model().version,
        events,
    }
}

/// The standard measure of `leadflow bench --scoring` and
/// `tests/scoring_quality.rs`: 20,000 leads over 90 days from `seed`, the
/// model alone (default settings: retrained daily, a 30-day horizon), the
/// leads first followed up on days 45 to 70 held out.
pub fn measure_standard(seed: u64) -> ScoringQuality {
    use crate::domain::time::MS_PER_DAY;
    use crate::policy::scoring::Predictive;
    let config = SimConfig {
        seed,
        leads: 20_000,
        days: 90,
        ..SimConfig::default()
    };
    let scoring = Scoring {
        predictive: Some(Predictive::default()),
        ..Scoring::default()
    };
    let start = config.start_ms;
    measure(
        config,
        &scoring,
        start + 45 * MS_PER_DAY,
        start + 70 * MS_PER_DAY,
    )
}

/// Every kind of scoring rule on, for the benches (`leadflow bench
/// --scoring`, `cargo bench --bench policy`): attribute rules on four fields,
/// behaviour points for every kind the simulator's marketing system
/// reports (decaying, capped), and the predictive model.
pub fn every_rule() -> Scoring {
    let text = r#"
[[attributes]]
field = "industry"
any_of = ["manufacturing", "finance"]
points = 20
[[attributes]]
field = "company_size"
any_of = ["large", "enterprise"]
points = 15
[[attributes]]
field = "channel"
equals = "referral"
points = 10
[[attributes]]
field = "channel"
equals = "cold_list"
points = -10
[behaviour.web_visit]
points = 2
half_life = "7d"
cap = 20
[behaviour.email_open]
points = 1
half_life = "7d"
cap = 10
[behaviour.content_download]
points = 5
half_life = "14d"
cap = 20
[behaviour.email_reply]
points = 15
half_life = "14d"
[behaviour.form_submit]
points = 20
half_life = "30d"
[behaviour.event_attended]
points = 15
half_life = "30d"
[predictive]
horizon = "30d"
retrain_every = "1d"
"#;
    let scoring: Scoring = toml::from_str(text).expect("the bench's scoring rules parse");
    scoring
        .validate()
        .expect("the bench's scoring rules are valid");
    scoring
}
