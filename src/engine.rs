//! Wiring: the only place that spawns threads. `leadflow run` is a single
//! ingest loop (see [`crate::bus::ingest`]); `leadflow demo` adds an
//! in-process Kafka (librdkafka's `MockCluster`) and the simulated outside
//! world around the same engine.

use crate::bus::{self, BusError};
use crate::config::Config;
use crate::log::{EventLog, LogError, LogOptions};
use crate::policy::Processor;
use crate::projector::metrics::MetricParams;
use crate::projector::Projections;
use crate::sim::live::{LiveConfig, LiveCounts, LiveSim};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// The in-process Kafka of the demo could not start.
    #[error("in-process Kafka: {0}")]
    Mock(rdkafka::error::KafkaError),
    /// A thread of the engine panicked: a bug; the message says where.
    #[error("engine thread panicked: {0}")]
    Panicked(String),
}

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
    pub log: EventLog,
    pub projections: Projections,
    pub processor: Option<Processor>,
    pub world: LiveCounts,
    pub stats: bus::ingest::IngestStats,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the live demo until `shutdown` is set: an in-process Kafka, the
/// engine consuming the events topic and deciding commands, and the
/// simulated marketing system and CRM publishing events and carrying the
/// commands out. `on_tick` gets a summary about once a second.
pub fn demo(
    config: &Config,
    options: DemoOptions,
    shutdown: Arc<AtomicBool>,
    on_tick: &mut (dyn FnMut(&DemoTick) + Send),
    on_api: &mut (dyn FnMut(std::io::Result<std::net::SocketAddr>) + Send),
) -> Result<DemoResult, EngineError> {
    let mock = rdkafka::mocking::MockCluster::new(1).map_err(EngineError::Mock)?;
    let mut config = config.clone();
    config.kafka.brokers = mock.bootstrap_servers();
    for topic in [
        &config.kafka.events_topic,
        &config.kafka.commands_topic,
        &config.kafka.dlq_topic,
    ] {
        mock.create_topic(topic, options.partitions, 1)
            .map_err(EngineError::Mock)?;
    }
    let mut sim = LiveSim::new(options.live.clone());
    let processor = Processor::new(sim.demo_policy(options.capacity));
    let log = EventLog::open(
        &options.data_dir,
        &LogOptions {
            dead_letter_outbox: true,
            ..LogOptions::from(&config.log)
        },
    )?;
    let projections = Projections::new(MetricParams::from(&config.projection));

    let engine_shutdown = Arc::new(AtomicBool::new(false));
    let engine_config = config.clone();
    let flag = engine_shutdown.clone();
    let world_shutdown = shutdown.clone();
    let result = std::thread::scope(|scope| -> Result<_, EngineError> {
        let engine = scope.spawn(move || {
            let started = Instant::now();
            let mut last = (0.0f64, 0u64);
            let api_config = crate::config::ApiConfig {
                listen: options.api_listen.clone(),
                ..engine_config.api.clone()
            };
            let api_stop = flag.clone();
            let mut api_thread = None;
            let result = bus::ingest::run_full(
                &engine_config,
                log,
                projections,
                Some(processor),
                None,
                &flag,
                Duration::from_secs(1),
                &mut |p| {
                    let elapsed_s = started.elapsed().as_secs_f64();
                    let sizes = p.projections.pool.pool_sizes();
                    let done = p.stats.accepted + p.stats.rejected;
                    let tick = DemoTick {
                        elapsed_s,
                        events_per_s: (done - last.1) as f64 / (elapsed_s - last.0).max(1e-3),
                        accepted: p.stats.accepted,
                        rejected: p.stats.rejected,
                        waiting: sizes.values().map(|s| s.waiting).sum(),
                        held: sizes.values().map(|s| s.held).sum(),
                        converted: sizes.values().map(|s| s.converted).sum(),
                        recalls: p
                            .projections
                            .pool
                            .leads
                            .values()
                            .map(|l| u64::from(l.recall_count))
                            .sum(),
                        commands_sent: p.stats.commands_sent,
                        dead_letters: p.stats.dead_letters_sent,
                    };
                    last = (elapsed_s, done);
                    on_tick(&tick);
                },
                &mut |handle| {
                    if api_config.listen.is_empty() {
                        return;
                    }
                    match serve_api(&api_config, None, handle, api_stop.clone()) {
                        Ok((addr, thread)) => {
                            api_thread = Some(thread);
                            on_api(Ok(addr));
                        }
                        Err(e) => on_api(Err(e)),
                    }
                },
            );
            // However the engine ended, the world stops with it.
            world_shutdown.store(true, Ordering::Relaxed);
            if let Some(t) = api_thread {
                let _ = t.join();
            }
            result
        });
        let world = bus::world::run(&config.kafka, &mut sim, &shutdown, &wall_ms);
        // The world has stopped publishing: give the engine a moment to take
        // in what is already on the topic, then stop it (it drains).
        std::thread::sleep(Duration::from_millis(500));
        engine_shutdown.store(true, Ordering::Relaxed);
        let finished = engine
            .join()
            .map_err(|e| EngineError::Panicked(format!("{e:?}")))??;
        world?;
        Ok(finished)
    })?;
    drop(mock);
    Ok(DemoResult {
        log: result.log,
        projections: result.projections,
        processor: result.processor,
        world: sim.counts().clone(),
        stats: result.stats,
    })
}

/// Settings of `leadflow bench`.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub leads: u64,
    pub seed: u64,
    /// A fresh directory for the engine's log.
    pub data_dir: PathBuf,
    /// Run the engine with this policy (commands decided and published).
    pub policy: Option<crate::policy::PolicyFile>,
    /// Also post the same workload to `POST /api/v1/events` of a fresh
    /// engine, in requests of each of these sizes (events per request).
    pub http_batches: Vec<usize>,
}

/// Figures of HTTP ingest for one request size.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HttpBenchFigures {
    pub events_per_request: usize,
    pub requests: u64,
    pub events: u64,
    /// First request sent to last answer received (every event durable).
    pub seconds: f64,
    pub events_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
}

/// Figures of one `leadflow bench` run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub topic: String,
    pub partitions: usize,
    pub messages: u64,
    pub payload_bytes: u64,
    /// Plain consumer, first to last message.
    pub ceiling_s: f64,
    pub ceiling_per_s: f64,
    /// The engine, first message consumed to last message durable.
    pub engine_s: f64,
    pub engine_per_s: f64,
    pub ratio: f64,
    pub batches: u64,
    pub commands: u64,
    /// HTTP ingest of the same workload, per request size.
    pub http: Vec<HttpBenchFigures>,
}

/// Posts `events` to the HTTP ingest of a fresh engine (its log in
/// `data_dir`) in requests of `per_request` events, one client, each
/// request sent when the last is answered (so each answer means durable).
fn bench_http(
    config: &Config,
    events: &[crate::domain::LeadEvent],
    per_request: usize,
    data_dir: &std::path::Path,
    policy: Option<crate::policy::PolicyFile>,
) -> Result<HttpBenchFigures, EngineError> {
    use crate::codec::stream::{EventWriter, Format};
    const TOKEN: &str = "leadflow-bench";
    let mut config = config.clone();
    config.api = crate::config::ApiConfig {
        listen: "127.0.0.1:0".into(),
        ingest_token: Some(TOKEN.into()),
        requests_per_s_max: 1_000_000,
        ..config.api.clone()
    };
    let bodies: Vec<Vec<u8>> = events
        .chunks(per_request.max(1))
        .map(|chunk| {
            let mut w = EventWriter::new(Vec::new(), Format::Protobuf);
            for e in chunk {
                w.write(e).expect("writing to memory");
            }
            w.into_inner()
        })
        .collect();
    let log = EventLog::open(data_dir, &LogOptions::from(&config.log))?;
    let projections = Projections::new(MetricParams::from(&config.projection));
    let processor = policy.map(Processor::new);
    let stop = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| -> Result<HttpBenchFigures, EngineError> {
        let engine = {
            let config = &config;
            let stop = stop.clone();
            scope.spawn(move || {
                let mut api_thread = None;
                let result = bus::ingest::run_full(
                    config,
                    log,
                    projections,
                    processor,
                    None,
                    &stop,
                    Duration::from_secs(1),
                    &mut |_| {},
                    &mut |handle| match serve_api(&config.api, None, handle, stop.clone()) {
                        Ok((addr, thread)) => {
                            api_thread = Some(thread);
                            let _ = addr_tx.send(Ok(addr));
                        }
                        Err(e) => {
                            let _ = addr_tx.send(Err(e));
                        }
                    },
                );
                if let Some(t) = api_thread {
                    let _ = t.join();
                }
                result
            })
        };
        let run = || -> Result<HttpBenchFigures, EngineError> {
            let addr = addr_rx
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| EngineError::Panicked("the engine's API did not start".into()))?
                .map_err(BusError::from)?;
            let url = format!("http://{addr}/api/v1/events");
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build();
            let mut latencies_ms = Vec::with_capacity(bodies.len());
            let started = Instant::now();
            for body in &bodies {
                let sent = Instant::now();
                agent
                    .post(&url)
                    .set("Content-Type", "application/x-protobuf")
                    .set("Authorization", &format!("Bearer {TOKEN}"))
                    .send_bytes(body)
                    .map_err(|e| EngineError::Panicked(format!("POST {url}: {e}")))?;
                latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
            }
            let seconds = started.elapsed().as_secs_f64();
            latencies_ms.sort_by(f64::total_cmp);
            let at = |q: f64| {
                let i = ((latencies_ms.len() as f64 - 1.0) * q).round() as usize;
                latencies_ms.get(i).copied().unwrap_or(0.0)
            };
            Ok(HttpBenchFigures {
                events_per_request: per_request,
                requests: bodies.len() as u64,
                events: events.len() as u64,
                seconds,
                events_per_s: events.len() as f64 / seconds.max(1e-9),
                latency_ms_p50: at(0.5),
                latency_ms_p99: at(0.99),
                latency_ms_max: at(1.0),
            })
        };
        let figures = run();
        stop.store(true, Ordering::Relaxed);
        engine
            .join()
            .map_err(|e| EngineError::Panicked(format!("{e:?}")))??;
        figures
    })
}

/// End-to-end ingest throughput against the ceiling of a plain consumer,
/// side by side on one fresh topic of the configured broker: publish a
/// simulated workload, count it with a plain consumer, then consume it with
/// the engine (decode, validate, durable append with offsets, commits).
pub fn bench(
    config: &Config,
    options: BenchOptions,
    say: &mut dyn FnMut(&str),
) -> Result<BenchReport, EngineError> {
    use crate::codec::stream::{EventReader, EventWriter, Format};
    use crate::sim::{SimConfig, Simulator};
    let stamp = wall_ms();
    let mut config = config.clone();
    let k = &mut config.kafka;
    k.events_topic = format!("leadflow-bench-{stamp}");
    k.commands_topic = format!("leadflow-bench-{stamp}-commands");
    k.dlq_topic = format!("leadflow-bench-{stamp}-dlq");
    k.group_id = format!("leadflow-bench-{stamp}");
    bus::admin::create_topics(k)?;
    let k = &config.kafka;

    let mut buffer = Vec::new();
    {
        let mut w = EventWriter::new(&mut buffer, Format::Protobuf);
        for item in Simulator::new(SimConfig {
            seed: options.seed,
            leads: options.leads,
            ..SimConfig::default()
        }) {
            item.write_to(&mut w).map_err(BusError::from)?;
        }
    }
    say(&format!(
        "publishing a simulated workload of {} leads to {}",
        options.leads, k.events_topic
    ));
    let buffer_copy = if options.http_batches.is_empty() {
        Vec::new()
    } else {
        buffer.clone()
    };
    let mut reader = EventReader::new(std::io::Cursor::new(buffer), Format::Protobuf);
    let published = bus::publish::publish(k, &k.events_topic, &mut reader, &mut |_| {})?;
    let total = published.events + published.undecodable;

    say("ceiling: a plain consumer counting the topic");
    let (counted, payload_bytes, ceiling) = bus::ceiling::count(k, &k.events_topic, total, 10_000)?;
    if counted != total {
        say(&format!(
            "warning: the plain consumer saw {counted} of {total} messages"
        ));
    }

    say("engine: consume, validate, append durably with offsets, commit");
    let log = EventLog::open(&options.data_dir, &LogOptions::from(&config.log))?;
    let projections = Projections::new(MetricParams::from(&config.projection));
    let processor = options.policy.clone().map(Processor::new);
    let shutdown = AtomicBool::new(false);
    let mut first: Option<Instant> = None;
    let mut done_at: Option<Instant> = None;
    let finished = bus::ingest::run(
        &config,
        log,
        projections,
        processor,
        &shutdown,
        Duration::from_millis(5),
        &mut |p| {
            if p.stats.consumed > 0 {
                first.get_or_insert_with(Instant::now);
            }
            if p.covered >= total && done_at.is_none() {
                done_at = Some(Instant::now());
                shutdown.store(true, Ordering::Relaxed);
            }
        },
    )?;
    let mut http = Vec::new();
    if !options.http_batches.is_empty() {
        let mut events = Vec::new();
        let mut reader = EventReader::new(std::io::Cursor::new(&buffer_copy), Format::Protobuf);
        while let Some(r) = reader.next_record().map_err(BusError::from)? {
            if let Ok(e) = r {
                events.push(e);
            }
        }
        for (i, n) in options.http_batches.iter().enumerate() {
            say(&format!(
                "http: {} events to POST /api/v1/events, {n} per request",
                events.len()
            ));
            http.push(bench_http(
                &config,
                &events,
                *n,
                &options.data_dir.with_extension(format!("http-{i}")),
                options.policy.clone(),
            )?);
        }
    }
    let engine = match (first, done_at) {
        (Some(f), Some(d)) => d.duration_since(f),
        _ => Duration::ZERO,
    };
    let per_s = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let partitions = bus::admin::check_topics(k, &[&k.events_topic])?[0];
    Ok(BenchReport {
        topic: k.events_topic.clone(),
        partitions,
        messages: total,
        payload_bytes,
        ceiling_s: ceiling.as_secs_f64(),
        ceiling_per_s: per_s(counted, ceiling),
        engine_s: engine.as_secs_f64(),
        engine_per_s: per_s(total, engine),
        ratio: per_s(total, engine) / per_s(counted, ceiling),
        batches: finished.stats.batches,
        commands: finished.stats.commands_decided,
        http,
    })
}

/// What one client may hold of the HTTP server.
struct ConnectionLimits {
    header_read_timeout: Duration,
    connections_max: usize,
}

/// Accepts connections until `stop`: at most `connections_max` open (one
/// more is closed at once), each closed when a request's headers (or the
/// next request on a kept-alive connection) do not arrive within
/// `header_read_timeout`. axum's own `serve` has neither bound, and a
/// handful of silent clients could hold the server forever.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: &ConnectionLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let open = Arc::new(tokio::sync::Semaphore::new(limits.connections_max));
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!("api: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(
                connections_max = limits.connections_max,
                "api: connection refused, too many open"
            );
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!("api: connection ended: {e}");
            }
        });
    }
}

/// Starts the HTTP API on `config.listen` in a thread of its own (a
/// single-threaded tokio runtime) and returns the bound address. It stops
/// when `shutdown` is set.
pub fn serve_api(
    config: &crate::config::ApiConfig,
    policy_file: Option<PathBuf>,
    handle: bus::ingest::Handle,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<(std::net::SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind(&config.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let router = crate::api::router(handle, config.clone(), policy_file);
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        connections_max: config.connections_max,
    };
    let thread = std::thread::Builder::new()
        .name("leadflow-api".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("api: {e}");
                        return;
                    }
                };
                let stop = async move {
                    while !shutdown.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                serve_connections(listener, router, &limits, stop).await;
            });
        })?;
    Ok((addr, thread))
}
