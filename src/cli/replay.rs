//! `leadflow replay`: rebuild every projection from the log, or look at
//! the state as of a past moment.

use super::{open_existing_log, open_stores, spinner};
use anyhow::Result;
use clap::Args;
use leadflow::config::Config;
use leadflow::domain::time::{format_ms, parse_time_ms};
use leadflow::report;
use std::path::Path;
use std::time::Instant;

#[derive(Args)]
pub struct ReplayArgs {
    /// Only fold events at or before this event time (RFC 3339, date or epoch
    /// ms): the state at a past moment. Not saved as a snapshot.
    #[arg(long, value_parser = parse_time_ms)]
    until: Option<i64>,
    /// Print pool state as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(dir: &Path, config: &Config, a: ReplayArgs) -> Result<()> {
    // Every log of the data dir (its partition stores, if it has them),
    // each rebuilt and saved on its own, shown summed.
    let logs = open_stores(dir, config, open_existing_log)?;
    let started = Instant::now();
    let mut merged: Option<leadflow::projector::Projections> = None;
    for (partition, log) in &logs {
        let what = match partition {
            Some(p) => format!("replaying partition {p}"),
            None => "replaying".to_string(),
        };
        let pb = spinner(Some(log.last_seq()), &what);
        let p = leadflow::engine::rebuild(log, &config.projection, a.until, &mut |seq| {
            pb.set_position(seq)
        })?;
        pb.finish_and_clear();
        if a.until.is_none() {
            leadflow::replay::save(log, &p)?;
        }
        match merged.as_mut() {
            None => merged = Some(p),
            Some(m) => m.merge_for_reading(&p),
        }
    }
    let p = merged.expect("a data dir has at least one log");
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        let sizes = p.pool.pool_sizes();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "covered_seq": p.covered_seq,
                "until_ms": a.until,
                "pools": sizes,
                "holdings": p.pool.holdings_by_rep(),
            }))?
        );
    } else {
        if let Some(u) = a.until {
            println!("state as of {}", format_ms(u));
        }
        print!("{}", report::pool_summary(&p.pool));
    }
    eprintln!(
        "replayed {} events in {:.2}s ({:.0} events/s){}",
        p.covered_seq,
        secs,
        p.covered_seq as f64 / secs.max(1e-9),
        if a.until.is_none() {
            "; snapshot saved"
        } else {
            ""
        }
    );
    Ok(())
}
