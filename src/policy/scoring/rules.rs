//! The rule parts of a score: attribute points from the lead's creation
//! fields, and behaviour points from its interactions, decaying.

use super::{AttributeRule, Scoring};
use crate::domain::LeadCreated;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most interaction kinds remembered per lead; the rest share one slot
/// (`OTHER_KIND`), so a producer inventing kinds cannot grow a lead's
/// state without bound.
pub const KINDS_PER_LEAD_MAX: usize = 16;
pub const OTHER_KIND: &str = "other";

/// One rule's share of a score, for explanations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// What earned it: `industry = manufacturing`, `email_reply`.
    pub what: String,
    pub points: f64,
}

fn field<'a>(c: &'a LeadCreated, name: &str) -> Option<&'a str> {
    Some(match name {
        "channel" => &c.channel,
        "campaign" => &c.campaign,
        "pool" => &c.pool,
        "region" => &c.region,
        "industry" => &c.industry,
        "company_size" => &c.company_size,
        other => {
            return c
                .attributes
                .get(other.strip_prefix("attributes.")?)
                .map(String::as_str)
        }
    })
}

fn matches(rule: &AttributeRule, value: &str) -> bool {
    rule.equals.as_deref() == Some(value) || rule.any_of.iter().any(|v| v == value)
}

/// The attribute score (the matching rules' points summed, clamped to
/// 0..=100) and the rules that matched; `None` without attribute rules.
pub fn attribute_score(scoring: &Scoring, c: &LeadCreated) -> Option<(u32, Vec<Contribution>)> {
    if scoring.attributes.is_empty() {
        return None;
    }
    let mut sum = 0i64;
    let mut why = Vec::new();
    for rule in &scoring.attributes {
        let Some(value) = field(c, &rule.field) else {
            continue;
        };
        if matches(rule, value) {
            sum += i64::from(rule.points);
            why.push(Contribution {
                what: format!("{} = {value}", rule.field),
                points: f64::from(rule.points),
            });
        }
    }
    Some((sum.clamp(0, 100) as u32, why))
}

/// Points of one kind that fade: `value` as of `at_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Decaying {
    value: f64,
    at_ms: i64,
}

impl Decaying {
    fn at(&self, at_ms: i64, half_life_ms: Option<i64>) -> f64 {
        match half_life_ms {
            // Event time may step back within the order tolerance: no
            // growth backwards.
            Some(h) if at_ms > self.at_ms => {
                self.value * 0.5f64.powf((at_ms - self.at_ms) as f64 / h as f64)
            }
            _ => self.value,
        }
    }
}

/// A lead's interactions, per kind: decaying points, and how many of each
/// kind (for the learned part's features).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Behaviour {
    kinds: BTreeMap<String, (Decaying, u32)>,
}

impl Behaviour {
    /// An interaction of `kind` at `at_ms`, worth the producer's `points`
    /// or the policy's for the kind (none: it counts, for no points).
    pub fn engage(&mut self, scoring: &Scoring, kind: &str, points: Option<i32>, at_ms: i64) {
        let kind = if self.kinds.contains_key(kind) || self.kinds.len() < KINDS_PER_LEAD_MAX {
            kind
        } else {
            OTHER_KIND
        };
        let rule = scoring.behaviour.get(kind);
        let half_life = rule.and_then(|r| r.half_life_ms);
        let add = f64::from(points.or(rule.map(|r| r.points)).unwrap_or(0));
        // A kind seen before is found without allocating its name again.
        if !self.kinds.contains_key(kind) {
            self.kinds.insert(kind.to_string(), Default::default());
        }
        let (slot, count) = self.kinds.get_mut(kind).expect("inserted above");
        let now = slot.at(at_ms, half_life);
        *slot = Decaying {
            value: now + add,
            at_ms: at_ms.max(slot.at_ms),
        };
        *count = count.saturating_add(1);
    }

    /// Each kind's points at `at_ms`, within the kind's cap.
    fn kind_points<'a>(
        &'a self,
        scoring: &'a Scoring,
        at_ms: i64,
    ) -> impl Iterator<Item = (&'a String, f64)> + 'a {
        self.kinds.iter().map(move |(kind, (slot, _))| {
            let rule = scoring.behaviour.get(kind);
            let v = slot.at(at_ms, rule.and_then(|r| r.half_life_ms));
            match rule.and_then(|r| r.cap) {
                Some(cap) => (kind, v.min(f64::from(cap))),
                None => (kind, v),
            }
        })
    }

    /// The behaviour score at `at_ms` (each kind within its cap, the sum
    /// within the policy's, clamped to 0..=100) and each kind's points;
    /// `None` without behaviour rules.
    pub fn score_at(&self, scoring: &Scoring, at_ms: i64) -> Option<(u32, Vec<Contribution>)> {
        let score = self.points_at(scoring, at_ms)?;
        let why = self
            .kind_points(scoring, at_ms)
            .filter(|(_, v)| *v != 0.0)
            .map(|(kind, points)| Contribution {
                what: kind.clone(),
                points,
            })
            .collect();
        Some((score, why))
    }

    /// The behaviour score alone (what [`score_at`](Self::score_at)
    /// gives, without the explanation).
    pub fn points_at(&self, scoring: &Scoring, at_ms: i64) -> Option<u32> {
        if scoring.behaviour.is_empty() {
            return None;
        }
        let sum: f64 = self.kind_points(scoring, at_ms).map(|(_, v)| v).sum();
        let cap = f64::from(scoring.behaviour_cap());
        Some(sum.clamp(0.0, cap).round() as u32)
    }

    /// Whether it had an interaction of `kind`.
    pub fn had(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// The kinds seen at least once.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }
}
