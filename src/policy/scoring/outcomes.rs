//! Each model's predictions against what came of them, for
//! `stats --by score-model`: a fold of the log's `scored` events and
//! conversions.
//!
//! A prediction is a `scored` event's predictive part (as a probability,
//! `predictive_score / 100`) under its `model_version`; a lead's latest
//! prediction by each version counts. Its outcome is known once the lead
//! converted within the horizon (converted), or the horizon passed before
//! the log's last event without a conversion (not converted); leads whose
//! outcome is not known yet are left out. A prediction made after the
//! horizon passed is left out too (its outcome was known when it was
//! made), so every prediction counted was made before its outcome was
//! known — and a version is only ever used after it was trained.

use super::evaluate::{evaluate, Evaluation};
use crate::domain::{EventBody, LeadEvent};
use serde::Serialize;
use std::collections::HashMap;

/// Most model versions remembered per lead: the latest ones (a lead
/// scored every day for a year does not keep a year of predictions).
pub const VERSIONS_PER_LEAD_MAX: usize = 32;

#[derive(Clone, Debug, Default)]
struct Lead {
    created_ms: i64,
    converted_ms: Option<i64>,
    /// (model version, probability, when), latest per version, oldest
    /// version first.
    predictions: Vec<(String, f64, i64)>,
}

/// The fold.
#[derive(Clone, Debug, Default)]
pub struct ModelOutcomes {
    leads: HashMap<String, Lead>,
    /// The time of the log's latest event: horizons up to it have passed.
    end_ms: i64,
}

/// One model version's measures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionEvaluation {
    pub model_version: String,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

impl ModelOutcomes {
    pub fn apply(&mut self, e: &LeadEvent) {
        self.end_ms = self.end_ms.max(e.occurred_at_ms);
        match &e.body {
            EventBody::Created(_) => {
                self.leads.entry(e.lead_id.clone()).or_insert(Lead {
                    created_ms: e.occurred_at_ms,
                    ..Lead::default()
                });
            }
            EventBody::Scored(s) if !s.model_version.is_empty() => {
                let Some(lead) = self.leads.get_mut(&e.lead_id) else {
                    return;
                };
                let p = f64::from(s.predictive_score.min(100)) / 100.0;
                let list = &mut lead.predictions;
                list.retain(|(v, _, _)| *v != s.model_version);
                list.push((s.model_version.clone(), p, e.occurred_at_ms));
                if list.len() > VERSIONS_PER_LEAD_MAX {
                    list.remove(0);
                }
            }
            EventBody::Converted(_) => {
                if let Some(lead) = self.leads.get_mut(&e.lead_id) {
                    lead.converted_ms.get_or_insert(e.occurred_at_ms);
                }
            }
            _ => {}
        }
    }

    /// Every version's measures on the leads whose outcome within
    /// `horizon_ms` of their creation is known, versions in their order
    /// (`nb-2` before `nb-10`).
    pub fn evaluate(&self, horizon_ms: i64) -> Vec<VersionEvaluation> {
        let mut pairs: HashMap<&str, Vec<(f64, bool)>> = HashMap::new();
        for lead in self.leads.values() {
            let horizon_at_ms = lead.created_ms.saturating_add(horizon_ms);
            let converted = match lead.converted_ms {
                Some(at) if at < horizon_at_ms => true,
                _ if horizon_at_ms <= self.end_ms => false,
                _ => continue,
            };
            for (version, p, at) in &lead.predictions {
                if *at < horizon_at_ms {
                    pairs.entry(version).or_default().push((*p, converted));
                }
            }
        }
        let mut out: Vec<VersionEvaluation> = pairs
            .into_iter()
            .map(|(version, mut scored)| {
                // Hash-map order must not reach the numbers' last digits.
                scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                VersionEvaluation {
                    model_version: version.to_string(),
                    evaluation: evaluate(&scored),
                }
            })
            .collect();
        out.sort_by(|a, b| version_key(&a.model_version).cmp(&version_key(&b.model_version)));
        out
    }
}

/// Orders `nb-2` before `nb-10`: the name without its trailing number,
/// then the number.
fn version_key(v: &str) -> (&str, u64, &str) {
    let digits = v.len() - v.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (name, number) = v.split_at(v.len() - digits);
    (name, number.parse().unwrap_or(0), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, LeadConverted, LeadCreated, LeadScored, Money};

    const DAY: i64 = 86_400_000;

    fn event(lead: &str, at_ms: i64, body: EventBody) -> LeadEvent {
        LeadEvent {
            event_id: format!("{lead}-{at_ms}"),
            lead_id: lead.into(),
            occurred_at_ms: at_ms,
            producer: "test".into(),
            tenant_id: String::new(),
            body,
        }
    }

    fn created(lead: &str, at_ms: i64) -> LeadEvent {
        let c = LeadCreated {
            channel: "search".into(),
            campaign: String::new(),
            pool: "smb".into(),
            region: String::new(),
            industry: String::new(),
            company_size: String::new(),
            acquisition_cost: money(1),
            contact_fingerprint: String::new(),
            attributes: Default::default(),
        };
        event(lead, at_ms, EventBody::Created(c))
    }

    fn money(minor_units: i64) -> Money {
        Money::new(minor_units, Currency::parse("CNY").expect("a currency"))
    }

    fn scored(lead: &str, at_ms: i64, version: &str, predictive: u32) -> LeadEvent {
        event(
            lead,
            at_ms,
            EventBody::Scored(LeadScored {
                score: predictive,
                attribute_score: 0,
                behaviour_score: 0,
                predictive_score: predictive,
                model_version: version.into(),
            }),
        )
    }

    fn converted(lead: &str, at_ms: i64) -> LeadEvent {
        event(
            lead,
            at_ms,
            EventBody::Converted(LeadConverted {
                owner_id: "rep".into(),
                deal_value: money(1),
                customer_id: "c".into(),
                expected_lifetime_value: None,
            }),
        )
    }

    #[test]
    fn each_version_is_measured_on_the_leads_whose_outcome_is_known() {
        // Given four leads created on day 0 and a 10-day horizon: a
        // converts on day 3, b on day 12 (after its horizon: not
        // converted), c never (known at day 10), d is created on day 20
        // and its outcome is not known when the log ends on day 25.
        let mut f = ModelOutcomes::default();
        for l in ["a", "b", "c"] {
            f.apply(&created(l, 0));
        }
        // nb-2 scores a, b and c; nb-10 rescores a (its latest counts) and
        // scores c after c's horizon passed (its outcome was known then).
        f.apply(&scored("a", DAY, "nb-2", 40));
        f.apply(&scored("b", DAY, "nb-2", 60));
        f.apply(&scored("c", DAY, "nb-2", 10));
        f.apply(&scored("a", 2 * DAY, "nb-10", 20));
        f.apply(&scored("a", 2 * DAY + 1, "nb-10", 90));
        f.apply(&converted("a", 3 * DAY));
        f.apply(&scored("c", 11 * DAY, "nb-10", 70));
        f.apply(&converted("b", 12 * DAY));
        f.apply(&created("d", 20 * DAY));
        f.apply(&scored("d", 21 * DAY, "nb-10", 99));
        // A score with no model is no prediction.
        f.apply(&scored("c", 22 * DAY, "", 50));
        f.apply(&created("e", 25 * DAY));
        let got = f.evaluate(10 * DAY);
        let versions: Vec<&str> = got.iter().map(|v| v.model_version.as_str()).collect();
        assert_eq!(versions, ["nb-2", "nb-10"]);
        // nb-2: a (0.4, converted), b (0.6, not), c (0.1, not): a ranks
        // above one of the two others.
        let nb2 = &got[0].evaluation;
        assert_eq!((nb2.leads, nb2.converted), (3, 1));
        assert_eq!(nb2.auc, Some(0.5));
        // nb-10: a only, at its latest 0.9.
        let nb10 = &got[1].evaluation;
        assert_eq!((nb10.leads, nb10.converted), (1, 1));
        assert!((nb10.brier - 0.01).abs() < 1e-12, "{}", nb10.brier);
    }
}
