//! `leadflow bench`: end-to-end ingest throughput against the ceiling of a
//! plain consumer, side by side on one fresh topic of the configured
//! broker, and HTTP ingest of the same workload.

use super::demo::wall_ms;
use super::{ApiOptions, EngineError, Run, Started};
use crate::bus::{self, BusError};
use crate::config::Config;
use crate::log::{EventLog, LogOptions};
use crate::projector::metrics::MetricParams;
use crate::projector::Projections;
use crate::replay::Engine;
use crate::shutdown::Shutdown;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// The workload carries the marketing system's interactions
    /// (`engaged` events) too.
    pub engagement: bool,
    /// Also run the engine again over the same topic under the policy
    /// with this `[scoring]` (the first run's policy has none), to
    /// measure what scoring costs. Needs `policy`.
    pub scoring: Option<crate::policy::scoring::Scoring>,
}

/// The order of `bench --scoring`'s runs after its first: with scoring on
/// (true) and off, as many of each, neither side always later.
pub const SCORING_RUN_ORDER: [bool; 6] = [true, false, false, true, true, false];

/// The engine with scoring beside the same without, best of
/// `runs_each` runs each (after the first run of the bench).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScoringBenchFigures {
    pub engine_s: f64,
    pub engine_per_s: f64,
    pub without_per_s: f64,
    /// Over the run without scoring (same workload, same policy
    /// otherwise).
    pub ratio_to_without: f64,
    pub runs_each: u32,
    /// The `scored` events the engine appended of its own.
    pub scores_published: u64,
    /// Commands the last run of each side sent to its own commands topic
    /// (every command it decided: no run finds another's on its topic).
    pub commands_sent_with: u64,
    pub commands_sent_without: u64,
    /// The process's CPU seconds over each side's run (best of its runs),
    /// and their ratio the way round of `ratio_to_without` (without / with:
    /// 1.0 means scoring took no CPU): the machine's neighbours sway CPU
    /// time much less than wall-clock time.
    pub cpu_s_with: f64,
    pub cpu_s_without: f64,
    pub cpu_ratio_to_without: f64,
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
    /// The engine, first message consumed to last message durable: the
    /// best of `runs_each` runs (each a fresh engine, log and group).
    pub engine_s: f64,
    pub engine_per_s: f64,
    /// The first of them, which also pays for the process's memory coming
    /// in (a cold start).
    pub engine_first_per_s: f64,
    /// Runs of the ceiling and of the engine, alternating; the best of
    /// each side is reported.
    pub runs_each: u32,
    pub ratio: f64,
    pub batches: u64,
    /// Commands the reported (best) run decided.
    pub commands: u64,
    /// Commands each engine run decided, in run order. With a policy they
    /// can differ: the policy's time follows the events in the order the
    /// partitions were read, so runs over the same topic may fire
    /// different deadlines (a run deciding less is faster; read the ratio
    /// beside them).
    pub commands_per_run: Vec<u64>,
    /// HTTP ingest of the same workload, per request size.
    pub http: Vec<HttpBenchFigures>,
    pub scoring: Option<ScoringBenchFigures>,
    /// With a policy: event-to-command latency at [`LATENCY_LOAD_SHARE`]
    /// of the engine's sustained rate.
    pub latency: Option<super::LatencyBenchFigures>,
}

/// Runs of the ceiling and of the engine each (alternating) in a bench.
pub const ENGINE_RUNS: u32 = 3;

/// The latency run's steady publish rate, as a share of the engine's
/// sustained rate in the same bench.
pub const LATENCY_LOAD_SHARE: f64 = 0.5;

/// An engine over a fresh log in `data_dir`, with `policy` if any.
fn fresh_engine(
    config: &Config,
    data_dir: &std::path::Path,
    policy: Option<crate::policy::PolicyFile>,
) -> Result<Engine, EngineError> {
    Ok(Engine {
        log: EventLog::open(data_dir, &LogOptions::from(&config.log))?,
        projections: Projections::new(MetricParams::from(&config.projection)),
        processor: policy.map(crate::policy::Policies::new),
        shadow: None,
    })
}

/// What one [`engine_pass`] measured.
pub(super) struct Pass {
    /// From the first message consumed to the last one durable.
    took: Duration,
    /// The process's CPU time over the same span (every thread: the
    /// engine's, librdkafka's, sled's): less swayed by a noisy neighbour
    /// than `took`.
    cpu: Duration,
    batches: u64,
    commands_decided: u64,
    commands_sent: u64,
    /// From each consumed event's publish to the ack of a command it
    /// caused.
    pub(super) event_to_command_ms: crate::control::LatencyMs,
    /// The engine's share: from each event's consumption to the ack.
    pub(super) consumed_to_command_ms: crate::control::LatencyMs,
}

/// The CPU time this process has used so far.
fn process_cpu() -> Duration {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }
    #[cfg(not(unix))]
    {
        Duration::ZERO
    }
}

/// Flags an engine pass shares with a publisher running beside it.
pub(super) struct Beside<'a> {
    /// Set by the pass once the engine has its partitions and their
    /// positions.
    pub ready: &'a std::sync::atomic::AtomicBool,
    /// Set when either side stops early (the publisher short of its
    /// events, or the pass): the pass ends then.
    pub abort: &'a std::sync::atomic::AtomicBool,
}

/// One run of the engine over the bench topic from its start, under its
/// own consumer group, until every message is covered (or `beside` aborts).
pub(super) fn engine_pass(
    config: &Config,
    data_dir: &std::path::Path,
    policy: Option<crate::policy::PolicyFile>,
    total: u64,
    beside: Option<&Beside<'_>>,
) -> Result<Pass, EngineError> {
    let engine = fresh_engine(config, data_dir, policy)?;
    let shutdown = Shutdown::new();
    let mut first: Option<(Instant, Duration)> = None;
    let mut done_at: Option<(Instant, Duration)> = None;
    let finished = super::run(
        Run {
            config,
            parts: super::whole(engine),
            restored_from_snapshot: Vec::new(),
            shutdown: &shutdown,
            api: None,
            progress_every: Duration::from_millis(5),
            wall_clock_ticks: false,
        },
        &mut |_| {},
        &mut |p| {
            if p.stats.consumed > 0 {
                first.get_or_insert_with(|| (Instant::now(), process_cpu()));
            }
            if let Some(b) = beside {
                use std::sync::atomic::Ordering;
                let t = p.live.metrics.intake();
                if t.assigned_partitions > 0 && t.lag.len() >= t.assigned_partitions {
                    b.ready.store(true, Ordering::Release);
                }
                if b.abort.load(Ordering::Acquire) {
                    shutdown.trigger();
                }
            }
            if p.covered >= total && done_at.is_none() {
                done_at = Some((Instant::now(), process_cpu()));
                shutdown.trigger();
            }
        },
    )?;
    let (took, cpu) = match (first, done_at) {
        (Some((f, f_cpu)), Some((d, d_cpu))) => (d.duration_since(f), d_cpu.saturating_sub(f_cpu)),
        _ => (Duration::ZERO, Duration::ZERO),
    };
    Ok(Pass {
        took,
        cpu,
        batches: finished.stats.batches,
        commands_decided: finished.stats.commands_decided,
        commands_sent: finished.stats.commands_sent,
        event_to_command_ms: finished.stats.event_to_command_ms.clone(),
        consumed_to_command_ms: finished.stats.consumed_to_command_ms.clone(),
    })
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
    let engine = fresh_engine(&config, data_dir, policy)?;
    let stop = Shutdown::new();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| -> Result<HttpBenchFigures, EngineError> {
        let engine = {
            let config = &config;
            let stop = &stop;
            let api = ApiOptions {
                config: config.api.clone(),
                policy_file: None,
                optional: true,
            };
            scope.spawn(move || {
                super::run(
                    Run {
                        config,
                        parts: super::whole(engine),
                        restored_from_snapshot: Vec::new(),
                        shutdown: stop,
                        api: Some(api),
                        progress_every: Duration::from_secs(1),
                        wall_clock_ticks: false,
                    },
                    &mut |s: Started| {
                        if let Some(addr) = s.api {
                            let _ = addr_tx.send(addr);
                        }
                    },
                    &mut |_| {},
                )
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
        stop.trigger();
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
            engagement: options.engagement,
            ..SimConfig::default()
        }) {
            item.write_to(&mut w).map_err(BusError::from)?;
        }
    }
    say(&format!(
        "publishing a simulated workload of {} leads to {}",
        options.leads, k.events_topic
    ));
    // The HTTP runs and the latency run (with a policy) publish the same
    // events again.
    let buffer_copy = if options.http_batches.is_empty() && options.policy.is_none() {
        Vec::new()
    } else {
        buffer.clone()
    };
    let events = || -> Result<Vec<crate::domain::LeadEvent>, EngineError> {
        let mut events = Vec::new();
        let mut reader = EventReader::new(std::io::Cursor::new(&buffer_copy), Format::Protobuf);
        while let Some(r) = reader.next_record().map_err(BusError::from)? {
            if let Ok(e) = r {
                events.push(e);
            }
        }
        Ok(events)
    };
    let mut reader = EventReader::new(std::io::Cursor::new(buffer), Format::Protobuf);
    let published = bus::publish::publish(k, &k.events_topic, &mut reader, &mut |_| {})?;
    let total = published.events + published.undecodable;

    let mut policy = options.policy.clone();
    if options.scoring.is_some() {
        if let Some(p) = policy.as_mut() {
            p.scoring = Default::default();
        }
    }
    // The ceiling and the engine alternate, `ENGINE_RUNS` each, and the
    // best of each side counts (on a shared machine a run is only ever
    // slowed down by its neighbours). The engine's first run also pays for
    // the process's memory coming in (page faults, a third of its time
    // here): it is reported apart, as `engine_first_per_s`.
    let mut ceiling = Duration::MAX;
    let (mut counted, mut payload_bytes) = (0, 0);
    let mut engine = Duration::MAX;
    let mut engine_first = Duration::MAX;
    let (mut batches, mut commands) = (0, 0);
    let mut commands_per_run = Vec::new();
    for run in 0..ENGINE_RUNS {
        say(&format!(
            "ceiling: a plain consumer counting the topic, run {} of {ENGINE_RUNS}",
            run + 1
        ));
        let (n, bytes, took) = bus::ceiling::count(k, &k.events_topic, total, 10_000)?;
        if n != total {
            say(&format!(
                "warning: the plain consumer saw {n} of {total} messages"
            ));
        }
        if took < ceiling {
            (ceiling, counted, payload_bytes) = (took, n, bytes);
        }
        say(&format!(
            "engine: consume, validate, append durably with offsets, commit, run {} of {ENGINE_RUNS}",
            run + 1
        ));
        // Each run its own group, log and commands topic (see the scoring
        // runs below for why the topic).
        let name = format!("run-{run}");
        let mut again = config.clone();
        again.kafka.group_id = format!("{}-{name}", config.kafka.group_id);
        again.kafka.commands_topic = format!("{}-{name}", config.kafka.commands_topic);
        again.kafka.dlq_topic = format!("{}-{name}", config.kafka.dlq_topic);
        bus::admin::create_topics(&again.kafka)?;
        let dir = options.data_dir.with_extension(&name);
        let pass = engine_pass(&again, &dir, policy.clone(), total, None)?;
        commands_per_run.push(pass.commands_decided);
        if run == 0 {
            engine_first = pass.took;
        }
        if pass.took < engine {
            (engine, batches, commands) = (pass.took, pass.batches, pass.commands_decided);
        }
    }
    let latency = match &policy {
        Some(policy) => {
            let sustained = total as f64 / engine.as_secs_f64().max(1e-9);
            say(&format!(
                "latency: the workload published at {:.0} events/s (half the engine's rate) while a fresh engine runs",
                sustained * LATENCY_LOAD_SHARE
            ));
            Some(super::latency::latency_pass(
                &config,
                &options.data_dir.with_extension("paced"),
                policy.clone(),
                &events()?,
                sustained,
                LATENCY_LOAD_SHARE,
            )?)
        }
        None => None,
    };
    let scoring = match (&options.scoring, policy) {
        (Some(scoring), Some(without)) => {
            // After the first run (which also pays for the process's
            // memory coming in: its page faults are a large share of it),
            // runs go with, without, without, with, with, without — each its
            // own group, log and commands topic — and the best of each side counts: on a
            // shared machine a run is only ever slowed down by its
            // neighbours (two runs each were seen to swing the ratio from
            // 0.53 to 0.99), and the order gives neither side the later,
            // warmer places.
            let mut with = without.clone();
            with.scoring = scoring.clone();
            let mut best_without = Duration::MAX;
            let mut best_with = Duration::MAX;
            let mut cpu_without = Duration::MAX;
            let mut cpu_with = Duration::MAX;
            let mut scores_published = 0;
            let (mut commands_sent_with, mut commands_sent_without) = (0, 0);
            let order = SCORING_RUN_ORDER;
            for (run, on) in order.into_iter().enumerate() {
                say(&format!(
                    "engine again ({}), run {} of {}",
                    if on {
                        "every scoring rule on"
                    } else {
                        "no scoring"
                    },
                    run + 1,
                    order.len()
                ));
                let policy = if on { &with } else { &without };
                let mut again = config.clone();
                let name = format!("{}-{run}", if on { "scoring" } else { "plain" });
                again.kafka.group_id = format!("{}-{name}", config.kafka.group_id);
                // Its own commands topic too: on a shared one a run would
                // find the earlier runs' commands (same workload, same ids)
                // and skip them as published by a previous owner, so the
                // run without scoring would send no command at all.
                again.kafka.commands_topic = format!("{}-{name}", config.kafka.commands_topic);
                again.kafka.dlq_topic = format!("{}-{name}", config.kafka.dlq_topic);
                bus::admin::create_topics(&again.kafka)?;
                let dir = options.data_dir.with_extension(&name);
                let pass = engine_pass(&again, &dir, Some(policy.clone()), total, None)?;
                if on {
                    best_with = best_with.min(pass.took);
                    cpu_with = cpu_with.min(pass.cpu);
                    commands_sent_with = pass.commands_sent;
                    let log = EventLog::open(&dir, &LogOptions::from(&config.log))?;
                    scores_published = log
                        .events_from(1)
                        .filter_map(Result::ok)
                        .filter(|(_, e)| e.producer == crate::policy::SCORE_PRODUCER)
                        .count() as u64;
                } else {
                    best_without = best_without.min(pass.took);
                    cpu_without = cpu_without.min(pass.cpu);
                    commands_sent_without = pass.commands_sent;
                }
            }
            let per_s = |d: Duration| total as f64 / d.as_secs_f64().max(1e-9);
            Some(ScoringBenchFigures {
                engine_s: best_with.as_secs_f64(),
                engine_per_s: per_s(best_with),
                without_per_s: per_s(best_without),
                ratio_to_without: per_s(best_with) / per_s(best_without),
                runs_each: (order.len() / 2) as u32,
                scores_published,
                commands_sent_with,
                commands_sent_without,
                cpu_s_with: cpu_with.as_secs_f64(),
                cpu_s_without: cpu_without.as_secs_f64(),
                cpu_ratio_to_without: cpu_without.as_secs_f64() / cpu_with.as_secs_f64().max(1e-9),
            })
        }
        // Scoring is the policy's: without one there is nothing to compare
        // (the CLI asks for one).
        _ => None,
    };
    let mut http = Vec::new();
    if !options.http_batches.is_empty() {
        let events = events()?;
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
        engine_first_per_s: per_s(total, engine_first),
        runs_each: ENGINE_RUNS,
        ratio: per_s(total, engine) / per_s(counted, ceiling),
        batches,
        commands,
        commands_per_run,
        http,
        scoring,
        latency,
    })
}
