//! `leadflow backtest`: the log's history under a candidate policy, beside
//! the policy in force.

use super::{open_stores_for_reading, spinner};
use anyhow::{Context, Result};
use clap::Args;
use leadflow::config::Config;
use leadflow::domain::time::parse_time_ms;
use leadflow::replay;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct BacktestArgs {
    /// The candidate policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The policy to compare with (default: the one in force, `[policy]
    /// file` of the config).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Count commands issued at or after this time.
    #[arg(long, value_parser = parse_time_ms)]
    from: Option<i64>,
    /// Count commands issued before this time.
    #[arg(long, value_parser = parse_time_ms)]
    to: Option<i64>,
    /// The history was made by `leadflow simulate --seed S`: estimate each
    /// policy's conversions with the simulator's behaviour model.
    #[arg(long)]
    sim_seed: Option<u64>,
    /// `--reps` of that simulation.
    #[arg(long, default_value_t = 40)]
    sim_reps: u32,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn exec(dir: &Path, config: &Config, a: BacktestArgs) -> Result<()> {
    let baseline_path = a
        .baseline
        .clone()
        .or_else(|| config.policy.file.clone())
        .context("no policy to compare with: set [policy] file in the config or pass --baseline")?;
    let baseline = leadflow::config::load_policy(&baseline_path)?;
    let candidate = leadflow::config::load_policy(&a.policy)?;
    let logs = open_stores_for_reading(dir, config)?;
    let started = Instant::now();
    let model = a
        .sim_seed
        .map(|seed| leadflow::sim::model::Model::for_seed(seed, a.sim_reps));
    let policies = [baseline, candidate];
    // Each partition store's history on its own (its tenants keep their
    // own time: a tick of one store must not move another's), the
    // outcomes summed.
    let mut outcomes: Vec<leadflow::backtest::Outcome> = Vec::new();
    let mut events = 0;
    for (partition, log) in &logs {
        let what = match partition {
            Some(p) => format!("backtesting partition {p}"),
            None => "backtesting".to_string(),
        };
        let pb = spinner(Some(log.last_seq()), &what);
        let ticks = replay::recorded_ticks(log)?;
        // A log that cannot be read to its end fails the backtest: a
        // partial history would print figures that look whole.
        let these = leadflow::backtest::run_checked(
            &policies,
            log.events_from(1),
            &ticks,
            (a.from, a.to),
            model.as_ref(),
            &mut |seq| pb.set_position(seq),
        )
        .with_context(|| format!("reading the log in {}", log.path().display()))?;
        pb.finish_and_clear();
        events += log.last_seq();
        if outcomes.is_empty() {
            outcomes = these;
        } else {
            for ((mine, theirs), policy) in outcomes.iter_mut().zip(&these).zip(&policies) {
                mine.merge(theirs, policy);
            }
        }
    }
    let names = vec![
        format!("in force ({})", baseline_path.display()),
        format!("candidate ({})", a.policy.display()),
    ];
    if a.json {
        let json = serde_json::json!({
            "events": events,
            "baseline": { "file": baseline_path, "outcome": outcomes[0] },
            "candidate": { "file": a.policy, "outcome": outcomes[1] },
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", leadflow::backtest::table(&names, &outcomes));
    }
    eprintln!(
        "backtested {} events under 2 policies in {:.2}s",
        events,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
