//! `leadflow stats --by score-model`: how each scoring model version's
//! predictions came out, folded from the log (`scoring::outcomes`).

use anyhow::Result;
use leadflow::config::Config;
use leadflow::log::EventLog;
use leadflow::policy::scoring::outcomes::{ModelOutcomes, VersionEvaluation};
use leadflow::policy::scoring::Predictive;
use std::fmt::Write as _;

pub fn exec(
    logs: &[(Option<i32>, EventLog)],
    config: &Config,
    horizon_ms: Option<i64>,
    json: bool,
    emit: &mut dyn FnMut(serde_json::Value),
) -> Result<()> {
    let horizon_ms = match horizon_ms {
        Some(h) => h,
        None => policy_horizon_ms(config)?,
    };
    anyhow::ensure!(horizon_ms > 0, "--horizon must be longer than zero");
    let mut fold = ModelOutcomes::default();
    for (_, log) in logs {
        let pb = super::spinner(Some(log.last_seq()), "folding scores and outcomes");
        for item in log.events_from(1) {
            let (seq, e) = item?;
            fold.apply(&e);
            if seq % 65_536 == 0 {
                pb.set_position(seq);
            }
        }
        pb.finish_and_clear();
    }
    let versions = fold.evaluate(horizon_ms);
    if json {
        let rows: serde_json::Map<String, serde_json::Value> = versions
            .iter()
            .map(|v| {
                let mut row = serde_json::to_value(&v.evaluation).expect("serialisable");
                row["model_version"] = v.model_version.clone().into();
                (v.model_version.clone(), row)
            })
            .collect();
        emit(serde_json::json!({
            "by": "score-model",
            "horizon_ms": horizon_ms,
            "order": versions.iter().map(|v| &v.model_version).collect::<Vec<_>>(),
            "rows": rows,
        }));
    } else {
        print!("{}", text(&versions, horizon_ms));
    }
    Ok(())
}

/// The policy's horizon, else the default.
fn policy_horizon_ms(config: &Config) -> Result<i64> {
    let Some(path) = &config.policy.file else {
        return Ok(Predictive::HORIZON_MS_DEFAULT);
    };
    let policy = leadflow::config::load_policy(path)?;
    Ok(policy
        .scoring
        .predictive
        .as_ref()
        .map_or(Predictive::HORIZON_MS_DEFAULT, Predictive::horizon_ms))
}

fn text(versions: &[VersionEvaluation], horizon_ms: i64) -> String {
    let mut out = String::new();
    let days = horizon_ms as f64 / 86_400_000.0;
    if versions.is_empty() {
        let _ = writeln!(
            out,
            "no scored lead with a model version has a known outcome yet (horizon {days} days)"
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>9} {:>6} {:>7} {:>8} {:>9}   calibration by decile (predicted → observed %)",
        "model", "leads", "converted", "AUC", "Brier", "log-loss", "top lift"
    );
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |x| format!("{x:.digits$}"));
    for v in versions {
        let e = &v.evaluation;
        let deciles: Vec<String> = e
            .calibration
            .iter()
            .map(|d| {
                format!(
                    "{:.0}→{:.0}",
                    d.predicted_mean * 100.0,
                    d.observed_rate * 100.0
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<14} {:>8} {:>9} {:>6} {:>7.4} {:>8.4} {:>9}   {}",
            v.model_version,
            e.leads,
            e.converted,
            opt(e.auc, 3),
            e.brier,
            e.log_loss,
            opt(e.lift_top_decile, 2),
            deciles.join(" ")
        );
    }
    let _ = writeln!(
        out,
        "each version on the leads it scored whose outcome within {days} days of creation is known (a lead's latest score by that version, made before its outcome)"
    );
    out
}
