//! `leadflow bench`'s latency run: an upstream system publishes the
//! workload at a steady rate (half of what the engine sustained in the same
//! bench) while the engine runs with its policy, and the engine measures,
//! for each command an event caused, the time from that event's publish
//! (its Kafka timestamp) to the broker's ack of the command — the same
//! figure `/metrics` keeps as `leadflow_event_to_command_seconds`.

use super::bench::{engine_pass, Beside};
use super::EngineError;
use crate::bus;
use crate::config::Config;
use crate::domain::LeadEvent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The latency run's consumer's `fetch.wait.max.ms` (see `latency_pass`).
pub const FETCH_WAIT_MS: u32 = 5;

/// Longest the publisher waits for the engine to have its partitions.
const ENGINE_READY_WAIT_MAX: Duration = Duration::from_secs(120);

/// What the latency run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LatencyBenchFigures {
    /// The steady publish rate (events a second).
    pub published_per_s: f64,
    /// The engine's sustained rate it is a share of.
    pub sustained_per_s: f64,
    pub events: u64,
    /// Commands caused by a consumed event and acknowledged: the samples.
    pub commands: u64,
    pub latency_ms_p50: u64,
    pub latency_ms_p99: u64,
    pub latency_ms_max: u64,
    /// The engine's share of each: from the event's consumption (not its
    /// publish) to the command's ack.
    pub engine_ms_p50: u64,
    pub engine_ms_p99: u64,
    /// The consumers' `fetch.wait.max.ms` in the run (see `latency_pass`).
    pub fetch_wait_ms_max: String,
}

/// Publishes `events` at `share` of `sustained_per_s` to fresh topics while
/// a fresh engine (its log in `data_dir`, under `policy`) consumes them,
/// and returns the engine's event-to-command latencies. The publisher
/// starts once the engine has its partitions, so that no backlog built
/// while it started counts.
pub fn latency_pass(
    config: &Config,
    data_dir: &std::path::Path,
    policy: crate::policy::PolicyFile,
    events: &[LeadEvent],
    sustained_per_s: f64,
    share: f64,
) -> Result<LatencyBenchFigures, EngineError> {
    let mut c = config.clone();
    let k = &mut c.kafka;
    k.events_topic = format!("{}-paced", config.kafka.events_topic);
    k.commands_topic = format!("{}-paced", config.kafka.commands_topic);
    k.dlq_topic = format!("{}-paced", config.kafka.dlq_topic);
    k.group_id = format!("{}-paced", config.kafka.group_id);
    // The test broker (tansu 0.6) holds every fetch for part of
    // fetch.wait.max.ms even once data is there (its fetch sleeps after each
    // pass), where Kafka answers as soon as fetch.min.bytes have arrived:
    // at librdkafka's 500 ms that alone is ~300 ms on every event. So the
    // run's consumer waits at most FETCH_WAIT_MS, unless the operator set
    // it.
    if !k.properties.contains_key("fetch.wait.max.ms") {
        k.consumer_properties
            .entry("fetch.wait.max.ms".into())
            .or_insert_with(|| FETCH_WAIT_MS.to_string());
    }
    let fetch_wait_ms_max = k
        .consumer_properties
        .get("fetch.wait.max.ms")
        .or(k.properties.get("fetch.wait.max.ms"))
        .cloned()
        .unwrap_or_default();
    bus::admin::create_topics(k)?;
    let per_s = (sustained_per_s * share).max(1.0);
    let total = events.len() as u64;
    let ready = AtomicBool::new(false);
    // Either side stopping early stops the other: a publisher that stopped
    // short ends the engine's pass (which waits for every event), an engine
    // that ended before it was ready ends the publisher's wait.
    let abort = AtomicBool::new(false);
    let (pass, published) = std::thread::scope(|scope| {
        let kafka = &c.kafka;
        let (ready, abort) = (&ready, &abort);
        let publisher = scope.spawn(move || -> Result<u64, EngineError> {
            let waiting = Instant::now();
            let timed_out = AtomicBool::new(false);
            let start = || {
                while !ready.load(Ordering::Acquire) {
                    if abort.load(Ordering::Acquire) {
                        return false;
                    }
                    if waiting.elapsed() > ENGINE_READY_WAIT_MAX {
                        timed_out.store(true, Ordering::Release);
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                true
            };
            let published =
                bus::publish::publish_paced(kafka, &kafka.events_topic, events, per_s, &start);
            if published.is_err() || timed_out.load(Ordering::Acquire) {
                abort.store(true, Ordering::Release);
            }
            if timed_out.load(Ordering::Acquire) {
                return Err(EngineError::Panicked(format!(
                    "the engine had no partitions after {} s",
                    ENGINE_READY_WAIT_MAX.as_secs()
                )));
            }
            Ok(published?)
        });
        let beside = Beside { ready, abort };
        let pass = engine_pass(&c, data_dir, Some(policy), total, Some(&beside));
        abort.store(true, Ordering::Release);
        let published = publisher
            .join()
            .map_err(|e| EngineError::Panicked(format!("the paced publisher: {e:?}")));
        (pass, published)
    });
    let pass = pass?;
    let published = published??;
    let l = &pass.event_to_command_ms;
    Ok(LatencyBenchFigures {
        published_per_s: per_s,
        sustained_per_s,
        events: published,
        commands: l.count(),
        latency_ms_p50: l.quantile_ms(0.5).unwrap_or(0),
        latency_ms_p99: l.quantile_ms(0.99).unwrap_or(0),
        latency_ms_max: l.quantile_ms(1.0).unwrap_or(0),
        engine_ms_p50: pass.consumed_to_command_ms.quantile_ms(0.5).unwrap_or(0),
        engine_ms_p99: pass.consumed_to_command_ms.quantile_ms(0.99).unwrap_or(0),
        fetch_wait_ms_max,
    })
}
