//! `leadflow run`: the engine on the configured Kafka until SIGINT/SIGTERM
//! (or `--duration-s`), with the HTTP API when `api.listen` is set.

use super::spinner;
use anyhow::{bail, Context, Result};
use clap::Args;
use leadflow::config::Config;
use leadflow::config::Ownership;
use leadflow::engine::{self, ApiOptions, Run, Started};
use leadflow::log::{stores, EventLog, LogOptions};
use leadflow::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
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
    let partitions = leadflow::bus::admin::check_topics(k, &leadflow::bus::admin::topics(k))?;
    let hostname = std::env::var("HOSTNAME").unwrap_or_default();
    let ownership = k.ownership(i32::try_from(partitions[0]).unwrap_or(i32::MAX), &hostname)?;
    let shutdown = Shutdown::new()
        .with_deadline(a.duration_s.map(Duration::from_secs))
        .on_signals()?;
    let options = LogOptions {
        dead_letter_outbox: true,
        ..LogOptions::from(&config.log)
    };
    // Where each part's log lives: a partition store per owned partition
    // (static ownership), or the data dir itself (consumer group).
    let stores: Vec<(Option<i32>, PathBuf)> = match &ownership {
        Ownership::Static(owned) => {
            if stores::holds_log(dir) {
                bail!(
                    "{} holds one log over every partition it read (consumer-group mode, or a data dir \
                     from before partition stores), but kafka.own_partitions keeps a store per partition \
                     in {}/partitions/N: start with an empty data dir (each partition is restored from \
                     the events topic), or run without kafka.own_partitions",
                    dir.display(),
                    dir.display()
                );
            }
            // Stores of partitions another engine owns now (after a
            // rescale) are moved aside: their new owner restores them, and
            // this engine's numbers must not count them beside its.
            for (p, _) in stores::partition_stores(dir)? {
                if !owned.contains(&p) {
                    let aside = stores::retire(dir, p, leadflow::replay::wall_ms())?;
                    eprintln!(
                        "partition {p} is not this engine's any more: its store was moved aside to {} (delete it once its new owner has caught up)",
                        aside.display()
                    );
                }
            }
            owned
                .iter()
                .map(|p| (Some(*p), stores::partition_dir(dir, *p)))
                .collect()
        }
        Ownership::Group => {
            let found = stores::partition_stores(dir)?;
            if !found.is_empty() {
                bail!(
                    "{} holds partition stores (partitions {:?}) written with kafka.own_partitions; a \
                     consumer-group engine keeps one log over every partition: run it with \
                     kafka.own_partitions, or give it another data dir",
                    dir.display(),
                    found.iter().map(|(p, _)| *p).collect::<Vec<_>>()
                );
            }
            vec![(None, dir.to_path_buf())]
        }
    };
    // The page cache (`log.cache_capacity_bytes`) is the engine's, shared
    // out among its stores.
    let options = LogOptions {
        cache_capacity_bytes: options.cache_capacity_bytes / stores.len().max(1) as u64,
        ..options
    };
    // The partitions this engine has no store for: their previous owners'
    // published stores, if there are some (else they are replayed from the
    // events topic once the intake has claimed them).
    let missing: Vec<(i32, PathBuf)> = stores
        .iter()
        .filter_map(|(key, path)| {
            key.filter(|_| !stores::holds_log(path))
                .map(|p| (p, path.clone()))
        })
        .collect();
    let restored_from_snapshot = fetch_snapshots(k, &missing)?;
    let mut logs = Vec::new();
    for (key, path) in stores {
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating the data dir {}", path.display()))?;
        let mut log = EventLog::open(&path, &options)
            .with_context(|| format!("opening the event log in {}", path.display()))?;
        if a.reset_positions {
            let prefix = leadflow::bus::source_prefix(&config.kafka.events_topic);
            let forgotten = log.reset_positions(&prefix)?;
            eprintln!(
                "forgot {} stored positions of {} in {} ({}); reading it from the start, held events become duplicates",
                forgotten.len(),
                config.kafka.events_topic,
                path.display(),
                forgotten
                    .iter()
                    .map(|(source, next)| format!("{source}@{next}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        logs.push((key, log));
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
    let mut parts = BTreeMap::new();
    let mut caught_up = 0;
    let mut last_seqs = Vec::new();
    for (key, log) in logs {
        let what = match key {
            Some(p) => format!("loading partition {p}'s projections"),
            None => "loading projections".to_string(),
        };
        let pb = spinner(Some(log.last_seq()), &what);
        let (loaded, decided) = leadflow::replay::start(
            log,
            &config.projection,
            policy.clone(),
            shadow.clone(),
            &mut |seq| pb.set_position(seq),
        )?;
        pb.finish_and_clear();
        caught_up += decided;
        last_seqs.push(match key {
            Some(p) => format!("partition {p} at sequence {}", loaded.log.last_seq()),
            None => format!("log at sequence {}", loaded.log.last_seq()),
        });
        parts.insert(key, loaded);
    }
    if caught_up > 0 {
        eprintln!("{caught_up} commands decided while catching up");
    }
    eprintln!(
        "leadflow run: consuming {} from {} as group {} ({}); Ctrl-C to stop",
        config.kafka.events_topic,
        config.kafka.brokers,
        config.kafka.group_id,
        last_seqs.join(", ")
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
            parts,
            restored_from_snapshot,
            shutdown: &shutdown,
            api: Some(api),
            progress_every: Duration::from_secs(1),
            wall_clock_ticks: true,
        },
        &mut |s: Started| {
            if let Some(Ok(addr)) = s.api {
                eprintln!("api listening on http://{addr}");
            }
        },
        &mut |p| {
            // A failed read of the log shows as zeros on this line; the
            // engine's own next read reports it.
            let sizes = p.live.pool_sizes().unwrap_or_default();
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
        "stopped after {:.1}s: consumed {}, skipped {} redelivered, accepted {}, rejected {}, {} dead letters sent, {} commands decided, {} sent, {} rewinds; {}",
        started.elapsed().as_secs_f64(),
        stats.consumed,
        stats.skipped,
        stats.accepted,
        stats.rejected,
        stats.dead_letters_sent,
        stats.commands_decided,
        stats.commands_sent,
        stats.rewinds,
        done.parts
            .iter()
            .map(|(key, e)| match key {
                Some(p) => format!("partition {p} at sequence {}", e.log.last_seq()),
                None => format!("log at sequence {}", e.log.last_seq()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Loads the published stores of the partitions in `missing` into their
/// places; returns those it loaded. A snapshot that cannot be read whole
/// is a warning: that partition is then replayed from the events topic.
fn fetch_snapshots(
    k: &leadflow::config::KafkaConfig,
    missing: &[(i32, PathBuf)],
) -> Result<Vec<i32>> {
    if k.snapshots_topic.is_empty() || missing.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let fetched = match leadflow::bus::snapshots::fetch(k, missing) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "the published stores could not be read ({e}); partitions {:?} are replayed from the events topic",
                missing.iter().map(|(p, _)| *p).collect::<Vec<_>>()
            );
            for (_, path) in missing {
                if path.exists() {
                    std::fs::remove_dir_all(path).with_context(|| {
                        format!("removing the half-loaded store {}", path.display())
                    })?;
                }
            }
            return Ok(Vec::new());
        }
    };
    let mut loaded = Vec::new();
    for (p, path) in missing {
        match &fetched[p] {
            Ok(Some(m)) => {
                eprintln!(
                    "partition {p}: loaded the store {} published ({} records, {} bytes in {} chunks, position {})",
                    m.engine,
                    m.records,
                    m.bytes,
                    m.chunks,
                    m.position.map_or("-".into(), |n| n.to_string()),
                );
                loaded.push(*p);
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("partition {p}: its published store could not be loaded ({e}); replaying it from the events topic");
                if path.exists() {
                    std::fs::remove_dir_all(path).with_context(|| {
                        format!("removing the half-loaded store {}", path.display())
                    })?;
                }
            }
        }
    }
    if !loaded.is_empty() {
        eprintln!(
            "loaded {} published stores in {:.1}s",
            loaded.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(loaded)
}
