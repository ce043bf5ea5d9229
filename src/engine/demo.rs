//! `leadflow demo`, live: an in-process Kafka (librdkafka's `MockCluster`),
//! the engine (with its API and dashboard) consuming the events topic and
//! deciding commands, and the simulated marketing system and CRM publishing
//! events and carrying the commands out.

use super::{ApiOptions, EngineError, Run, Started};
use crate::bus;
use crate::config::Config;
use crate::log::{EventLog, LogOptions};
use crate::replay;
use crate::shutdown::Shutdown;
use crate::sim::live::{LiveConfig, LiveCounts, LiveSim};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Settings of `leadflow demo`.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub live: LiveConfig,
    /// Most open leads per rep.
    pub capacity: u32,
    pub partitions: i32,
    /// Where the demo's event log lives (a throwaway directory).
    pub data_dir: PathBuf,
    /// Where the HTTP API and dashboard listen (empty: not at all).
    pub api_listen: String,
}

/// One line of the demo's live summary.
#[derive(Clone, Debug, Default)]
pub struct DemoTick {
    pub elapsed_s: f64,
    pub events_per_s: f64,
    pub accepted: u64,
    pub rejected: u64,
    pub waiting: u64,
    pub held: u64,
    pub converted: u64,
    pub recalls: u64,
    pub commands_sent: u64,
    pub dead_letters: u64,
}

/// What the demo leaves behind.
pub struct DemoResult {
    /// The engine's folds, checkpointed.
    pub engine: replay::Engine,
    pub world: LiveCounts,
    pub stats: crate::control::IngestStats,
}

/// Longest the demo waits, once the world has stopped, for the engine to
/// take in what the world published.
const TAKE_IN_WAIT_MAX: Duration = Duration::from_secs(10);

pub(super) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the live demo until `shutdown`. `on_tick` gets a summary about
/// once a second; `on_api` where the dashboard listens (or why it does not).
pub fn demo(
    config: &Config,
    options: DemoOptions,
    shutdown: &Shutdown,
    on_tick: &mut (dyn FnMut(&DemoTick) + Send),
    on_api: &mut (dyn FnMut(std::io::Result<std::net::SocketAddr>) + Send),
) -> Result<DemoResult, EngineError> {
    let mock = bus::mock::InProcessKafka::start(&config.kafka, options.partitions)?;
    let mut config = config.clone();
    config.kafka.brokers = mock.bootstrap_servers();
    let mut sim = LiveSim::new(options.live.clone());
    let log = EventLog::open(
        &options.data_dir,
        &LogOptions {
            dead_letter_outbox: true,
            ..LogOptions::from(&config.log)
        },
    )?;
    // The same start-up as `run`, with the simulated CRM's policy.
    let (engine, _) = replay::start(
        log,
        &config.projection,
        Some(sim.demo_policy(options.capacity)),
        None,
        &mut |_| {},
    )?;
    let api = ApiOptions {
        config: crate::config::ApiConfig {
            listen: options.api_listen.clone(),
            ..config.api.clone()
        },
        policy_file: None,
        optional: true,
    };
    // The engine stops after the world, so that it takes in what the world
    // published last.
    let engine_shutdown = Shutdown::new();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let result = std::thread::scope(|scope| -> Result<_, EngineError> {
        let engine_config = &config;
        let engine_stop = &engine_shutdown;
        let world_stop = shutdown.clone();
        let engine = scope.spawn(move || {
            let started = Instant::now();
            let mut last = (0.0f64, 0u64);
            let result = super::run(
                Run {
                    config: engine_config,
                    parts: super::whole(engine),
                    restored_from_snapshot: Vec::new(),
                    shutdown: engine_stop,
                    api: Some(api),
                    progress_every: Duration::from_secs(1),
                    wall_clock_ticks: true,
                },
                &mut |s: Started| {
                    if let Some(addr) = s.api {
                        on_api(addr);
                    }
                    let _ = handle_tx.send(s.handle);
                },
                &mut |p| {
                    let elapsed_s = started.elapsed().as_secs_f64();
                    // A failed read of the log shows as zeros here; the
                    // engine's own next read reports it.
                    let sizes = p.live.pool_sizes().unwrap_or_default();
                    let recalls = p.live.whole().projections().map_or(0, |projections| {
                        projections
                            .pool
                            .leads
                            .values()
                            .map(|l| u64::from(l.recall_count))
                            .sum()
                    });
                    let done = p.stats.accepted + p.stats.rejected;
                    let tick = DemoTick {
                        elapsed_s,
                        events_per_s: (done - last.1) as f64 / (elapsed_s - last.0).max(1e-3),
                        accepted: p.stats.accepted,
                        rejected: p.stats.rejected,
                        waiting: sizes.values().map(|s| s.waiting).sum(),
                        held: sizes.values().map(|s| s.held).sum(),
                        converted: sizes.values().map(|s| s.converted).sum(),
                        recalls,
                        commands_sent: p.stats.commands_sent,
                        dead_letters: p.stats.dead_letters_sent,
                    };
                    last = (elapsed_s, done);
                    on_tick(&tick);
                },
            );
            // However the engine ended, the world stops with it.
            world_stop.trigger();
            result
        });
        let world = bus::world::run(&config.kafka, &mut sim, shutdown, &wall_ms);
        // The world has stopped publishing: let the engine take in what is
        // on the topic (its log covers every message), then stop it (it
        // drains). Bounded: a message the broker lost must not hang the
        // demo's exit.
        if let (Ok(published), Ok(handle)) = (&world, handle_rx.recv_timeout(TAKE_IN_WAIT_MAX)) {
            let prefix = bus::source_prefix(&config.kafka.events_topic);
            let covered = || {
                handle
                    .with_log(|log| {
                        log.positions(&prefix)
                            .map(|p| p.iter().map(|(_, n)| n).sum::<u64>())
                    })
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0)
            };
            let deadline = Instant::now() + TAKE_IN_WAIT_MAX;
            while covered() < *published && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        engine_shutdown.trigger();
        let finished = engine
            .join()
            .map_err(|e| EngineError::Panicked(format!("{e:?}")))??;
        world?;
        Ok(finished)
    })?;
    drop(mock);
    Ok(DemoResult {
        engine: result
            .parts
            .into_values()
            .next()
            .expect("the demo's engine has its whole data dir"),
        world: sim.counts().clone(),
        stats: result.stats,
    })
}
