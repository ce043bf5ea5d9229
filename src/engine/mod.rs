//! Wiring: the only place that spawns threads. [`run`] is the live engine
//! of `leadflow run` and of the demo: the state shared by the Kafka intake
//! (`bus::ingest`) and the HTTP API (`server.rs`), started and stopped in
//! one order — the API is joined before the engine takes its state back
//! and checkpoints it. `demo.rs` adds an in-process Kafka (librdkafka's
//! `MockCluster`) and the simulated outside world around the same engine;
//! `bench.rs` measures it against a plain consumer; `rebuild.rs` is
//! `replay` on two threads (reading, decoding and the pool's fold on one, the
//! metrics' fold on the other).

mod bench;
mod demo;
mod followers;
mod latency;
pub mod peers;
mod policy_state;
mod rebuild;
mod server;

pub use bench::{bench, BenchOptions, BenchReport, HttpBenchFigures};
pub use demo::{demo, DemoOptions, DemoResult, DemoTick};
pub use latency::LatencyBenchFigures;
pub use policy_state::{bench_policy_state, PolicyStateFigures};
pub use rebuild::{bench_replay, rebuild, ReplayBenchFigures, REPLAY_RUNS_EACH};
pub use server::serve_api;

use crate::bus::{self, BusError};
use crate::config::{ApiConfig, Config};
use crate::control::{self, ControlError, Handle, IngestStats, Live, PartKey};
use crate::log::LogError;
use crate::replay::{self, Engine};
use crate::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Errors of the wiring layer: whatever a part reported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Kafka failed; see [`BusError`].
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The event log failed; see [`LogError`].
    #[error(transparent)]
    Log(#[from] LogError),
    /// The engine's shared state; see [`ControlError`].
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The HTTP API could not listen where configured (`api.listen`):
    /// the address is taken or not ours. Nothing was consumed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    /// A thread of the engine panicked: a bug; the message says where.
    #[error("engine thread panicked: {0}")]
    Panicked(String),
}

/// The HTTP API beside a running engine.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub config: ApiConfig,
    /// The policy file the admin reload route reads.
    pub policy_file: Option<PathBuf>,
    /// A failure to listen is reported to `on_start` and the engine runs
    /// on without the API (the demo), instead of failing (`run`).
    pub optional: bool,
}

/// What [`run`] runs.
pub struct Run<'a> {
    pub config: &'a Config,
    /// The folds, loaded (see `replay::start`), per part: one per owned
    /// partition (partition stores), or the whole data dir (`None`; see
    /// [`whole`]).
    pub parts: BTreeMap<PartKey, Engine>,
    /// The partitions whose store was loaded from a published snapshot
    /// (see `bus::snapshots`).
    pub restored_from_snapshot: Vec<i32>,
    pub shutdown: &'a Shutdown,
    /// The HTTP API beside the engine, if any.
    pub api: Option<ApiOptions>,
    /// How often `on_progress` is called.
    pub progress_every: Duration,
    /// Whether the policy's deadlines also fire on the wall clock while
    /// the intake is idle and caught up (a live engine: always). `leadflow
    /// bench` turns it off, so that every run of the same workload decides
    /// the same commands from the events' own times, whenever the broker
    /// happens to pause.
    pub wall_clock_ticks: bool,
}

/// What [`run`] hands `on_start` once the engine is up.
pub struct Started {
    /// The engine's control surface (what the API holds).
    pub handle: Handle,
    /// Where the API listens, or why it does not (optional API only).
    pub api: Option<std::io::Result<SocketAddr>>,
}

/// What [`run`] hands back: the folds, checkpointed, and the counters.
pub struct Finished {
    pub parts: BTreeMap<PartKey, Engine>,
    pub stats: IngestStats,
}

impl Finished {
    /// The folds of an engine over the whole data dir.
    pub fn whole(&self) -> &Engine {
        self.parts
            .get(&None)
            .expect("an engine over the whole data dir")
    }
}

/// The parts of an engine over the whole data dir: its one log.
pub fn whole(engine: Engine) -> BTreeMap<PartKey, Engine> {
    BTreeMap::from([(None, engine)])
}

/// Runs the live engine until `shutdown`: the API (when asked) on its own
/// thread, the Kafka intake on this one. Then, in this order: the API stops
/// accepting, finishes the requests it is serving and its thread is
/// joined; the intake appends its open batch and drains the outboxes
/// (commands and dead letters of those last requests included); and the
/// engine takes its state back and checkpoints projections and policies
/// (the exit checkpoint of `run` and the demo alike).
pub fn run(
    parts: Run<'_>,
    on_start: &mut dyn FnMut(Started),
    on_progress: &mut dyn FnMut(bus::ingest::Progress<'_>),
) -> Result<Finished, EngineError> {
    let Run {
        config,
        parts,
        restored_from_snapshot,
        shutdown,
        api,
        progress_every,
        wall_clock_ticks,
    } = parts;
    let mut live = Live::with_parts(parts);
    live.restored_from_snapshot = restored_from_snapshot;
    // Scores a crash left announced and unpublished go into the log first.
    live.publish_pending_scores()?;
    // The projections fold on threads of their own, behind the append.
    let followers = followers::Followers::spawn(&live)
        .map_err(|e| EngineError::Panicked(format!("cannot start a projections thread: {e}")))?;
    let live = control::share(live);
    let handle = Handle::new(live.clone())?;
    let api_stop = Shutdown::new();
    let mut api_thread = None;
    let mut api_addr = None;
    if let Some(api) = api.filter(|a| !a.config.listen.is_empty()) {
        match serve_api(
            &api.config,
            api.policy_file,
            handle.clone(),
            api_stop.clone(),
        ) {
            Ok((addr, thread)) => {
                api_thread = Some(thread);
                api_addr = Some(Ok(addr));
                handle.set_api_url(advertised_url(&api.config, addr))?;
            }
            Err(e) if api.optional => api_addr = Some(Err(e)),
            Err(source) => {
                return Err(EngineError::Listen {
                    addr: api.config.listen.clone(),
                    source,
                })
            }
        }
    }
    on_start(Started {
        handle,
        api: api_addr,
    });
    // The API stops before the intake's final drain: the commands and dead
    // letters of the requests it finishes are then published with the rest.
    let mut api_panicked = None;
    let mut stop_api = || {
        api_stop.trigger();
        if let Some(t) = api_thread.take() {
            if let Err(e) = t.join() {
                api_panicked = Some(format!("the API thread: {e:?}"));
            }
        }
    };
    let consumed = bus::ingest::consume(
        config,
        &live,
        shutdown,
        progress_every,
        wall_clock_ticks,
        on_progress,
        &mut stop_api,
    );
    // However the intake ended, the API is stopped before the state is
    // taken back.
    stop_api();
    let live = control::take(&live).ok_or(ControlError::Stopped)?;
    let followers_stopped = followers.stop();
    consumed?;
    if let Some(e) = api_panicked {
        return Err(EngineError::Panicked(e));
    }
    followers_stopped.map_err(EngineError::Panicked)?;
    let stats = live.stats.clone();
    let released = live.released.clone();
    let parts = live.into_parts()?;
    for engine in parts.values() {
        replay::checkpoint(engine)?;
    }
    publish_snapshots(config, &parts, &released);
    Ok(Finished { parts, stats })
}

/// Publishes the stores of the partitions this engine released cleanly,
/// for their next owner (`bus::snapshots`). A failure costs the next owner
/// a replay from the events topic, so it is a warning, not an error.
fn publish_snapshots(config: &Config, parts: &BTreeMap<PartKey, Engine>, released: &[i32]) {
    if config.kafka.snapshots_topic.is_empty() {
        return;
    }
    let engine = bus::owners::engine_id();
    for p in released {
        let Some(e) = parts.get(&Some(*p)) else {
            continue;
        };
        let started = std::time::Instant::now();
        match bus::snapshots::publish(&config.kafka, *p, &e.log, &engine) {
            Ok(m) => tracing::info!(
                partition = p,
                chunks = m.chunks,
                bytes = m.bytes,
                ms = started.elapsed().as_millis() as u64,
                topic = %config.kafka.snapshots_topic,
                "published the partition's store for its next owner"
            ),
            Err(e) => {
                // One failure (a broker gone) says the rest would fail too,
                // each after its own timeout: the stop must not wait that out.
                tracing::warn!(
                    partition = p,
                    "the partition's store was not published ({e}); this and the remaining partitions' next owners replay them from the events topic"
                );
                return;
            }
        }
    }
}

/// The URL other engines reach this one's API at: `api.advertised_url`, or
/// where it listens, with the host name for an unspecified address.
fn advertised_url(config: &ApiConfig, addr: SocketAddr) -> String {
    if let Some(url) = &config.advertised_url {
        return url.trim_end_matches('/').to_string();
    }
    if addr.ip().is_unspecified() {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        format!("http://{host}:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}
