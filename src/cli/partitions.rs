//! `leadflow partitions`: who owns which partition of the events topic,
//! how far each owner's log reaches, the lag, and restore progress — read
//! from the owners topic the engines keep (see `bus::owners`) and the
//! broker's watermarks, so it works from any machine that reaches Kafka.

use anyhow::Result;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use leadflow::bus::owners::{self, PartitionStatus};
use leadflow::config::Config;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Args)]
pub struct PartitionsArgs {
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep showing restore progress (a bar per partition) until no
    /// partition is restoring; Ctrl-C to stop earlier.
    #[arg(long)]
    pub watch: bool,
}

pub fn exec(config: &Config, a: PartitionsArgs) -> Result<()> {
    let k = &config.kafka;
    let now = leadflow::replay::wall_ms;
    if a.watch {
        return watch(config);
    }
    let rows = owners::status(k, now())?;
    if a.json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "partition": r.partition,
                    "state": r.state(),
                    "owner": r.claim.as_ref().map(|c| &c.engine),
                    "epoch": r.claim.as_ref().map(|c| c.epoch),
                    "heard_at_ms": r.claim.as_ref().map(|c| c.heard_at_ms),
                    "position": r.claim.as_ref().map(|c| c.position),
                    "end": r.end,
                    "lag": lag(r),
                    "progress": r.progress(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:>9}  {:<28} {:>5}  {:>9}  {:>10}  {:>10}  {:>8}  state",
        "partition", "owner", "epoch", "heard", "position", "end", "lag"
    );
    for r in &rows {
        let c = r.claim.as_ref();
        println!(
            "{:>9}  {:<28} {:>5}  {:>9}  {:>10}  {:>10}  {:>8}  {}",
            r.partition,
            c.map_or("-", |c| c.engine.as_str()),
            c.map_or("-".into(), |c| c.epoch.to_string()),
            c.map_or("-".into(), |c| format!(
                "{:.1}s ago",
                (now() - c.heard_at_ms).max(0) as f64 / 1000.0
            )),
            c.map_or("-".into(), |c| c.position.to_string()),
            r.end,
            lag(r),
            match r.state() {
                "restoring" => format!("restoring {:.0}%", 100.0 * r.progress()),
                s => s.to_string(),
            }
        );
    }
    if rows.iter().all(|r| r.claim.is_none()) {
        eprintln!(
            "no claims on {}: no engine owns partitions statically (kafka.own_partitions), \
             or they use another owners topic",
            k.owners_topic
        );
    }
    Ok(())
}

/// Messages behind the partition's end (the owner's own figure when it
/// has one).
fn lag(r: &PartitionStatus) -> i64 {
    match &r.claim {
        Some(c) if c.lag >= 0 => c.lag,
        Some(c) => (r.end - c.position as i64).max(0),
        None => r.end,
    }
}

/// A bar per partition, refreshed every second until none is restoring.
fn watch(config: &Config) -> Result<()> {
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("partition {prefix:>3} {bar:40} {pos}/{len} {msg}")
        .expect("a valid template");
    let mut shown: BTreeMap<i32, ProgressBar> = BTreeMap::new();
    loop {
        let rows = owners::status(&config.kafka, leadflow::replay::wall_ms())?;
        for r in &rows {
            let bar = shown.entry(r.partition).or_insert_with(|| {
                let b = bars.add(ProgressBar::new(0));
                b.set_style(style.clone());
                b.set_prefix(r.partition.to_string());
                b
            });
            bar.set_length(r.end.max(0) as u64);
            bar.set_position(r.claim.as_ref().map_or(0, |c| c.position));
            bar.set_message(format!(
                "{} {}",
                r.state(),
                r.claim.as_ref().map_or("", |c| c.engine.as_str())
            ));
        }
        if rows.iter().all(|r| r.state() != "restoring") {
            for b in shown.values() {
                b.finish();
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
