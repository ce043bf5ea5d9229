//! `leadflow demo`: the live demo (in-process Kafka, the engine, a
//! simulated marketing system and CRM) or, with `--offline`, a simulated
//! history imported, replayed and reported.

use super::import::{import, ImportArgs};
use super::simulate::{self, SimulateArgs};
use super::{indent, open_log};
use anyhow::{bail, Result};
use clap::Args;
use leadflow::codec::stream::Format;
use leadflow::config::Config;
use leadflow::projector::metrics::Window;
use leadflow::report::{self, StatsBy};
use leadflow::shutdown::Shutdown;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DemoArgs {
    /// Run the offline demo instead: simulate a 30-day history into a file,
    /// import it, replay it and print the metrics (no Kafka at all).
    #[arg(long)]
    offline: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration_s: Option<u64>,
    /// New leads per second from the simulated marketing system.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Sales reps in the simulated CRM.
    #[arg(long, default_value_t = 16)]
    reps: u32,
    /// Most open leads a rep holds (the policy's capacity).
    #[arg(long, default_value_t = 30)]
    capacity: u32,
    /// Wall milliseconds per simulated hour (smaller is faster).
    #[arg(long, default_value_t = 50)]
    hour_ms: u64,
    /// Leads to simulate (offline demo).
    #[arg(long, default_value_t = 20_000)]
    leads: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of bad inputs mixed in (to show the rejection path).
    #[arg(long, default_value_t = 0.002)]
    bad_ratio: f64,
    /// Keep the demo's data dir instead of deleting it.
    #[arg(long)]
    keep: bool,
}

pub fn exec(config: &Config, data_dir: Option<&Path>, a: DemoArgs) -> Result<()> {
    // Scratch space (the offline demo's event file, and the log unless
    // --data-dir names one) in a temporary directory, removed at the end
    // unless --keep. A log dir the user named is kept, and must be new: the
    // demo's in-process Kafka starts empty, so positions stored by an
    // earlier run would be ahead of it.
    let scratch = std::env::temp_dir().join(format!("leadflow-demo-{}", std::process::id()));
    let log_dir = match data_dir {
        Some(d) if d.join("conf").exists() => bail!(
            "the demo starts from an empty log, and {} already holds one: name a new --data-dir (or leave it out for a temporary one)",
            d.display()
        ),
        Some(d) => d.to_path_buf(),
        None => scratch.join("log"),
    };
    std::fs::create_dir_all(&scratch)?;
    if a.offline {
        return demo_offline(config, &scratch, &log_dir, a);
    }
    demo_live(config, &scratch, &log_dir, a)
}

fn demo_live(config: &Config, dir: &Path, log_dir: &Path, a: DemoArgs) -> Result<()> {
    use leadflow::engine::{DemoOptions, DemoTick};
    use leadflow::sim::live::LiveConfig;
    let shutdown = Shutdown::new()
        .with_deadline(a.duration_s.map(Duration::from_secs))
        .on_signals()?;
    println!(
        "Leadflow live demo: in-process Kafka (librdkafka MockCluster), the engine, a simulated"
    );
    println!(
        "marketing system publishing {} leads/s and a simulated CRM with {} reps carrying out",
        a.rate, a.reps
    );
    println!(
        "the engine's commands. One simulated hour lasts {} ms. Data in {}.",
        a.hour_ms,
        log_dir.display()
    );
    println!(
        "{}",
        match a.duration_s {
            Some(s) => format!("Running for {s} s (Ctrl-C stops earlier).\n"),
            None => "Ctrl-C to stop.\n".to_string(),
        }
    );
    println!("  time   events/s   accepted  rejected | waiting   held  converted  recalls | commands  dead letters");
    let options = DemoOptions {
        live: LiveConfig {
            seed: a.seed,
            leads_per_s: a.rate,
            reps: a.reps,
            hour_ms: a.hour_ms,
            garbage_ratio: a.bad_ratio,
        },
        capacity: a.capacity,
        partitions: config.kafka.partitions,
        data_dir: log_dir.to_path_buf(),
        // The dashboard on a free port unless the config names one.
        api_listen: if config.api.listen.is_empty() {
            "127.0.0.1:0".to_string()
        } else {
            config.api.listen.clone()
        },
    };
    let result = leadflow::engine::demo(
        config,
        options,
        &shutdown,
        &mut |t: &DemoTick| {
            println!(
                "{:>5.0}s {:>10.0} {:>10} {:>9} | {:>7} {:>6} {:>10} {:>8} | {:>8} {:>13}",
                t.elapsed_s,
                t.events_per_s,
                t.accepted,
                t.rejected,
                t.waiting,
                t.held,
                t.converted,
                t.recalls,
                t.commands_sent,
                t.dead_letters
            );
        },
        &mut |api| {
            match api {
        Ok(addr) => println!("dashboard: http://{addr}/dashboard  (API under http://{addr}/api/v1, metrics at /metrics)"),
        Err(e) => eprintln!("the dashboard could not start: {e}"),
    }
        },
    );
    // The engine saved its exit checkpoint (projections and policy).
    let outcome = result.map_err(anyhow::Error::from).and_then(|r| {
        let w = &r.world;
        println!(
            "\nThe world published {} leads, {} assignments (from the engine's commands), {} follow-ups, {} conversions, {} recalls, {} garbage messages; the CRM got {} reminders.",
            w.created, w.assigned, w.followed_up, w.converted, w.recalled, w.garbage, w.reminders
        );
        println!(
            "The engine appended {} events, rejected {} (all sent to the dead-letter topic: {}), decided {} commands and published {}.",
            r.stats.accepted, r.stats.rejected, r.stats.dead_letters_sent, r.stats.commands_decided, r.stats.commands_sent
        );
        let p = &r.engine.projections;
        for (code, n) in r.engine.log.stats()?.rejected_by_reason {
            println!("   rejected {code:<20} {n}");
        }
        println!("\nPools now:");
        print!("{}", indent(&report::pool_summary(&p.pool)));
        println!("\nCohort metrics by channel:");
        print!(
            "{}",
            indent(&report::stats_text(StatsBy::Channel, &p.metrics.agg, &p.pool, Window::default()))
        );
        Ok(())
    });
    if !a.keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    outcome
}

fn demo_offline(config: &Config, dir: &Path, log_dir: &Path, a: DemoArgs) -> Result<()> {
    println!("Leadflow demo: data in {}", log_dir.display());
    let events = dir.join("events.pb");
    println!(
        "\n1. simulating {} leads over 30 days (seed {})",
        a.leads, a.seed
    );
    let summary = simulate::exec(SimulateArgs {
        out: events.clone(),
        format: Some(Format::Protobuf),
        seed: a.seed,
        leads: a.leads,
        days: 30,
        reps: 40,
        start: None,
        bad_ratio: a.bad_ratio,
        tenants: 0,
        engagement: false,
    })?;
    for (k, n) in &summary.events_by_kind {
        println!("   {k:<12} {n}");
    }
    println!("\n2. importing into the event log (validated, deduplicated, durable)");
    let result = (|| -> Result<()> {
        let mut log = open_log(log_dir, config)?;
        let s = import(
            &mut log,
            config,
            &ImportArgs {
                file: events.clone(),
                format: Some(Format::Protobuf),
                source: None,
                print_acks: false,
            },
        )?;
        println!("   {} accepted, {} rejected", s.accepted, s.rejected);
        for (code, n) in log.stats()?.rejected_by_reason {
            println!("   rejected {code:<20} {n}");
        }
        println!("\n3. replaying the log into projections");
        let started = Instant::now();
        let p = leadflow::replay::rebuild(&log, &config.projection, None, &mut |_| {})?;
        leadflow::replay::save(&log, &p)?;
        println!(
            "   {} events folded in {:.2}s",
            p.covered_seq,
            started.elapsed().as_secs_f64()
        );
        print!("{}", indent(&report::pool_summary(&p.pool)));
        let w = Window::default();
        println!("\n4. cohort metrics by channel");
        print!(
            "{}",
            indent(&report::stats_text(
                StatsBy::Channel,
                &p.metrics.agg,
                &p.pool,
                w
            ))
        );
        println!("\n5. pool metrics");
        print!(
            "{}",
            indent(&report::stats_text(
                StatsBy::Pools,
                &p.metrics.agg,
                &p.pool,
                w
            ))
        );
        if a.keep {
            println!(
                "\nData kept. Try: leadflow --data-dir {} stats --by owner",
                log_dir.display()
            );
            println!(
                "           leadflow --data-dir {} inspect lead lead-{}-0000001",
                log_dir.display(),
                a.seed
            );
        }
        Ok(())
    })();
    if !a.keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}
