//! A mergeable quantile sketch for non-negative durations (a DDSketch with
//! fixed 1% relative accuracy). Two sketches of disjoint data merge into the
//! sketch of the union by adding bucket counts, so per-partition aggregates
//! add up exactly, which percentile averages never do.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Relative accuracy of quantile estimates.
pub const RELATIVE_ACCURACY: f64 = 0.01;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// Values <= 0 (a zero duration, or a producer clock running backwards).
    zeros: u64,
    buckets: BTreeMap<i32, u64>,
    count: u64,
    sum: i128,
}

impl Sketch {
    pub fn add(&mut self, value: i64) {
        self.count += 1;
        self.sum += i128::from(value.max(0));
        if value <= 0 {
            self.zeros += 1;
        } else {
            let index = ((value as f64).ln() / gamma().ln()).ceil() as i32;
            *self.buckets.entry(index).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.zeros += other.zeros;
        self.count += other.count;
        self.sum += other.sum;
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean of the values (negatives counted as 0), if any.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The `q`-quantile (0..=1) within 1% relative error, if any values.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        let g = gamma();
        for (i, n) in &self.buckets {
            seen += n;
            if seen > rank {
                return Some(2.0 * g.powi(*i) / (g + 1.0));
            }
        }
        unreachable!("rank {rank} is below count {}", self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_relative_accuracy() {
        let mut s = Sketch::default();
        for v in 1..=10_000 {
            s.add(v);
        }
        for (q, exact) in [(0.5, 5_000.0), (0.9, 9_000.0), (0.0, 1.0), (1.0, 10_000.0)] {
            let got = s.quantile(q).unwrap();
            assert!(
                (got - exact).abs() / exact <= 0.011,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(s.mean(), Some(5_000.5));
    }

    #[test]
    fn merging_equals_adding_everything_to_one() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for v in [0, 5, 50, 500, -3, 7_000_000] {
            a.add(v);
            all.add(v);
        }
        for v in [1, 2, 3, 86_400_000] {
            b.add(v);
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(Sketch::default().quantile(0.5), None);
    }
}
