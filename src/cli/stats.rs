//! `leadflow stats`: a metric table (or JSON rows) from the projections.

use super::{load_all_projections, open_stores_for_reading};
use anyhow::{bail, Context, Result};
use clap::Args;
use leadflow::config::Config;
use leadflow::domain::time::parse_day_bound_ms;
use leadflow::projector::metrics::Window;
use leadflow::report::{self, StatsBy};
use std::path::Path;

#[derive(Args)]
pub struct StatsArgs {
    #[arg(long, value_enum, default_value = "channel")]
    by: StatsBy,
    /// First day (inclusive) of the window: a date, or a UTC midnight
    /// (metrics are kept per UTC day; a time of day is refused).
    #[arg(long, value_parser = parse_day_bound_ms)]
    from: Option<i64>,
    /// End (exclusive) of the window: a date, or a UTC midnight.
    #[arg(long, value_parser = parse_day_bound_ms)]
    to: Option<i64>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// The numbers over every engine instead of this data dir's: each
    /// engine's share from its API, merged. Comma-separated base URLs
    /// (`http://leadflow-0:8080,…`) and `dns:HOST:PORT` names resolving
    /// to every engine (a headless Service). Sends `api.read_token`.
    #[arg(long)]
    peers: Option<String>,
}

pub fn exec(dir: &Path, config: &Config, a: StatsArgs) -> Result<()> {
    let window = Window {
        from_ms: a.from,
        to_ms: a.to,
    };
    if let Some(spec) = &a.peers {
        if a.by == StatsBy::Fairness {
            bail!("--by fairness reads this data dir's policy; it is not merged across --peers");
        }
        let peers = leadflow::engine::peers::resolve(spec)?;
        if peers.is_empty() {
            bail!("--peers names no engine");
        }
        let all = leadflow::engine::peers::merged(&peers, config.api.read_token.as_deref())?;
        if a.json {
            let json = report::stats_json_sized(a.by, &all.agg, &all.pool_sizes, window);
            println!("{}", serde_json::to_string_pretty(&json)?);
        } else {
            print!(
                "{}",
                report::stats_text_sized(a.by, &all.agg, &all.pool_sizes, window)
            );
            eprintln!("merged from {} engines: {}", peers.len(), peers.join(", "));
        }
        return Ok(());
    }
    let logs = open_stores_for_reading(dir, config)?;
    let p = load_all_projections(&logs, config)?;
    if a.by == StatsBy::Fairness {
        let path = config
            .policy
            .file
            .as_ref()
            .context("--by fairness needs the policy's capacities: set [policy] file")?;
        let policy = leadflow::config::load_policy(path)?;
        let (rows, gini) = report::fairness(&p.metrics.agg, &policy, window);
        if a.json {
            let json = serde_json::json!({ "reps": rows, "gini": gini });
            println!("{}", serde_json::to_string_pretty(&json)?);
        } else {
            print!("{}", report::fairness_text(&rows, gini));
        }
        return Ok(());
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::stats_json(
                a.by,
                &p.metrics.agg,
                &p.pool,
                window
            ))?
        );
    } else {
        print!(
            "{}",
            report::stats_text(a.by, &p.metrics.agg, &p.pool, window)
        );
    }
    Ok(())
}
