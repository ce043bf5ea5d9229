//! How good a model's predictions were, once the outcomes are known: AUC
//! (the chance that a random converted lead was scored above a random
//! unconverted one), Brier score and log-loss (calibrated probability),
//! calibration by decile, and the lift of the top decile.

use serde::Serialize;

/// One decile of the predictions, lowest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decile {
    pub leads: u64,
    pub predicted_mean: f64,
    pub observed_rate: f64,
}

/// A model's measures over scored leads with known outcomes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub leads: u64,
    pub converted: u64,
    /// `None` without both outcomes.
    pub auc: Option<f64>,
    pub brier: f64,
    pub log_loss: f64,
    pub calibration: Vec<Decile>,
    /// Conversion rate of the top-scored decile over that of all leads.
    pub lift_top_decile: Option<f64>,
}

/// The area under the ROC curve of `(probability, converted)` pairs, by
/// the rank sum (Mann–Whitney), ties sharing their ranks.
pub fn auc(scored: &[(f64, bool)]) -> Option<f64> {
    let positives = scored.iter().filter(|(_, y)| *y).count() as f64;
    let negatives = scored.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut sorted: Vec<&(f64, bool)> = scored.iter().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let rank = (i + j + 2) as f64 / 2.0;
        rank_sum += rank * sorted[i..=j].iter().filter(|(_, y)| *y).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Every measure of `scored` (`(probability, converted)` pairs).
pub fn evaluate(scored: &[(f64, bool)]) -> Evaluation {
    let n = scored.len();
    let converted = scored.iter().filter(|(_, y)| *y).count();
    let y = |c: bool| if c { 1.0 } else { 0.0 };
    let mean = |f: &dyn Fn(&(f64, bool)) -> f64| {
        if n == 0 {
            0.0
        } else {
            scored.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let brier = mean(&|(p, c)| (p - y(*c)).powi(2));
    let log_loss = mean(&|(p, c)| {
        let p = p.clamp(1e-15, 1.0 - 1e-15);
        -(y(*c) * p.ln() + (1.0 - y(*c)) * (1.0 - p).ln())
    });
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let calibration: Vec<Decile> = (0..10)
        .map(|d| &sorted[d * n / 10..(d + 1) * n / 10])
        .filter(|slice| !slice.is_empty())
        .map(|slice| Decile {
            leads: slice.len() as u64,
            predicted_mean: slice.iter().map(|(p, _)| p).sum::<f64>() / slice.len() as f64,
            observed_rate: slice.iter().filter(|(_, c)| *c).count() as f64 / slice.len() as f64,
        })
        .collect();
    let rate = converted as f64 / n.max(1) as f64;
    let lift_top_decile = match calibration.last() {
        Some(top) if rate > 0.0 && calibration.len() == 10 => Some(top.observed_rate / rate),
        _ => None,
    };
    Evaluation {
        leads: n as u64,
        converted: converted as u64,
        auc: auc(scored),
        brier,
        log_loss,
        calibration,
        lift_top_decile,
    }
}
