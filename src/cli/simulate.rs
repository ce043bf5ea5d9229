//! `leadflow simulate`: a seeded, deterministic workload into a file.

use super::spinner;
use anyhow::{bail, Context, Result};
use clap::Args;
use leadflow::codec::stream::{EventWriter, Format};
use leadflow::domain::time::parse_time_ms;
use leadflow::sim::{SimConfig, Simulator};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct SimulateArgs {
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 10_000)]
    pub leads: u64,
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    #[arg(long, default_value_t = 40)]
    pub reps: u32,
    /// Start of the simulated history (event time).
    #[arg(long, value_parser = parse_time_ms)]
    pub start: Option<i64>,
    /// Probability per valid event of also writing one bad input.
    #[arg(long, default_value_t = 0.0)]
    pub bad_ratio: f64,
    /// Spread the leads over this many tenants (`tenant-00`, …); 0 keeps
    /// every lead in the default tenant.
    #[arg(long, default_value_t = 0)]
    pub tenants: u32,
    /// Also write the marketing system's interactions (`engaged` events:
    /// web visits, email opens and replies, forms, downloads, events),
    /// more of them the likelier a lead is to buy; the other events are
    /// the same as without.
    #[arg(long)]
    pub engagement: bool,
}

pub fn exec(a: SimulateArgs) -> Result<leadflow::sim::SimSummary> {
    let format = a.format.unwrap_or_else(|| Format::from_path(&a.out));
    let mut config = SimConfig {
        seed: a.seed,
        leads: a.leads,
        days: a.days,
        reps: a.reps,
        bad_ratio: a.bad_ratio,
        tenants: a.tenants,
        engagement: a.engagement,
        ..SimConfig::default()
    };
    if let Some(s) = a.start {
        config.start_ms = s;
    }
    if !(0.0..=1.0).contains(&config.bad_ratio) {
        bail!("--bad-ratio must be between 0 and 1");
    }
    let file = File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut w = EventWriter::new(BufWriter::with_capacity(1 << 20, file), format);
    let pb = spinner(None, "simulating");
    let started = Instant::now();
    let mut sim = Simulator::new(config);
    let mut n = 0u64;
    for item in sim.by_ref() {
        item.write_to(&mut w)?;
        n += 1;
        if n % 50_000 == 0 {
            pb.set_message(format!("simulating: {n} records"));
            pb.tick();
        }
    }
    w.into_inner().flush()?;
    pb.finish_and_clear();
    let summary = sim.summary().clone();
    eprintln!(
        "simulated {n} records ({} bad) into {} in {:.2}s",
        summary.bad_by_reason.values().sum::<u64>(),
        a.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(summary)
}
