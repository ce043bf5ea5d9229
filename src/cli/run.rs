//! `leadflow run`: the engine on the configured Kafka until SIGINT/SIGTERM
//! (or `--duration-s`), with the HTTP API when `api.listen` is set.

use super::spinner;
use anyhow::{Context, Result};
use clap::Args;
use leadflow::config::Config;
use leadflow::engine::{self, ApiOptions, Run, Started};
use leadflow::log::{EventLog, LogOptions};
use leadflow::shutdown::Shutdown;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct RunArgs {
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    duration_s: Option<u64>,
    /// Forget the log's stored positions in the events topic and read it
    /// from its start: the way out when the topic was recreated (the engine
    /// refuses to start while a stored position is beyond a partition's
    /// end). Events the log already holds come back as duplicates, so
    /// nothing is counted twice.
    #[arg(long)]
    reset_positions: bool,
}

pub fn exec(dir: &Path, config: &Config, a: RunArgs) -> Result<()> {
    // The broker, the credentials and the topics first: a wrong password
    // or certificate is one error before anything is opened or printed.
    let k = &config.kafka;
    leadflow::bus::admin::check_topics(k, &leadflow::bus::admin::topics(k))?;
    let shutdown = Shutdown::new()
        .with_deadline(a.duration_s.map(Duration::from_secs))
        .on_signals()?;
    let options = LogOptions {
        dead_letter_outbox: true,
        ..LogOptions::from(&config.log)
    };
    let mut log = EventLog::open(dir, &options)
        .with_context(|| format!("opening the event log in {}", dir.display()))?;
    if a.reset_positions {
        let prefix = leadflow::bus::source_prefix(&config.kafka.events_topic);
        let forgotten = log.reset_positions(&prefix)?;
        eprintln!(
            "forgot {} stored positions of {} ({}); reading it from the start, held events become duplicates",
            forgotten.len(),
            config.kafka.events_topic,
            forgotten
                .iter()
                .map(|(source, next)| format!("{source}@{next}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let policy = match &config.policy.file {
        None => None,
        Some(path) => {
            let policy = leadflow::config::load_policy(path)?;
            let tenants = match policy.tenants.len() {
                0 => String::new(),
                n => format!(" and {n} tenant tables"),
            };
            eprintln!(
                "policy {} version {} ({} pools{tenants})",
                path.display(),
                policy.version,
                policy.pools.len()
            );
            Some(policy)
        }
    };
    let shadow = match &config.policy.shadow_file {
        None => None,
        Some(path) => {
            let policy = leadflow::config::load_policy(path)?;
            eprintln!(
                "shadow policy {} version {}: decides beside the live one, publishes nothing",
                path.display(),
                policy.version
            );
            Some(policy)
        }
    };
    let pb = spinner(Some(log.last_seq()), "loading projections");
    let (loaded, caught_up) =
        leadflow::replay::start(log, &config.projection, policy, shadow, &mut |seq| {
            pb.set_position(seq)
        })?;
    pb.finish_and_clear();
    if caught_up > 0 {
        eprintln!("{caught_up} commands decided while catching up");
    }
    eprintln!(
        "leadflow run: consuming {} from {} as group {} (log at sequence {}); Ctrl-C to stop",
        config.kafka.events_topic,
        config.kafka.brokers,
        config.kafka.group_id,
        loaded.log.last_seq()
    );
    let started = Instant::now();
    let api = ApiOptions {
        config: config.api.clone(),
        policy_file: config.policy.file.clone(),
        optional: false,
    };
    let done = engine::run(
        Run {
            config,
            engine: loaded,
            shutdown: &shutdown,
            api: Some(api),
            progress_every: Duration::from_secs(1),
        },
        &mut |s: Started| {
            if let Some(Ok(addr)) = s.api {
                eprintln!("api listening on http://{addr}");
            }
        },
        &mut |p| {
            let sizes = p.projections.pool.pool_sizes();
            let waiting: u64 = sizes.values().map(|s| s.waiting).sum();
            let held: u64 = sizes.values().map(|s| s.held).sum();
            let converted: u64 = sizes.values().map(|s| s.converted).sum();
            eprintln!(
                "{:>6.1}s  covered {}  consumed {}  accepted {}  rejected {}  dead letters {}  commands {}/{} sent  | waiting {waiting} held {held} converted {converted}",
                started.elapsed().as_secs_f64(),
                p.covered,
                p.stats.consumed,
                p.stats.accepted,
                p.stats.rejected,
                p.stats.dead_letters_sent,
                p.stats.commands_sent,
                p.stats.commands_decided,
            );
        },
    )?;
    let stats = done.stats;
    eprintln!(
        "stopped after {:.1}s: consumed {}, skipped {} redelivered, accepted {}, rejected {}, {} dead letters sent, {} commands decided, {} sent, {} rewinds; log at sequence {}",
        started.elapsed().as_secs_f64(),
        stats.consumed,
        stats.skipped,
        stats.accepted,
        stats.rejected,
        stats.dead_letters_sent,
        stats.commands_decided,
        stats.commands_sent,
        stats.rewinds,
        done.engine.log.last_seq()
    );
    Ok(())
}
