//! `leadflow replay` on both cores: a second thread reads the log's
//! segments, decodes their events and folds them into the pool state,
//! while this one folds the same events into the metrics.
//!
//! The two projections are independent folds of the same events (neither
//! reads the other), so each may run on a thread of its own and still see
//! every event in sequence order: the result is the one-thread fold's,
//! which `leadflow bench --replay` checks on every run. The work is split
//! where it balances on two cores: reading and decoding an event cost
//! about as much as the metrics' fold (cohorts, sketches, per-lead working
//! records), and the pool's fold is shared between the two threads by
//! lead (the pool state is a union of per-lead parts, so two folds of
//! disjoint leads merge into the whole; the metrics are not: a contact
//! seen twice is a duplicate across leads). A third thread would only
//! share the same two cores.

use super::EngineError;
use crate::config::ProjectionConfig;
use crate::domain::LeadEvent;
use crate::log::{EventLog, LogError};
use crate::projector::metrics::MetricParams;
use crate::projector::pool::PoolState;
use crate::projector::Projections;
use crate::replay;
use std::sync::mpsc;

/// Events per chunk handed from the decoding thread to the fold: large
/// enough that the hand-over costs nothing beside the events, small enough
/// that the fold starts at once.
const CHUNK_EVENTS: usize = 4_096;

/// Chunks decoded ahead of the fold. Bounds memory: about
/// `CHUNK_EVENTS × CHUNKS_AHEAD_MAX` events (~10 MB of decoded events).
const CHUNKS_AHEAD_MAX: usize = 8;

type Chunk = Result<Vec<(u64, LeadEvent)>, LogError>;

/// Whether a lead's pool fold runs beside the metrics' fold rather than
/// on the decoding thread: about one lead in three (measured to balance
/// the two threads on the simulated workload, `leadflow bench --replay`).
/// A function of the lead's id only, so each lead's events are folded on
/// one side, in order; how evenly real ids spread changes the balance,
/// never the result.
fn pool_beside_metrics(lead_id: &str) -> bool {
    let b = lead_id.as_bytes();
    let last_two = b
        .iter()
        .rev()
        .take(2)
        .fold(0u32, |sum, x| sum + u32::from(*x));
    last_two % 3 == 0
}

/// Rebuilds projections from the first event, as [`replay::rebuild`] does
/// (the same folds, in the same order: the same projections), the pool
/// state on a thread of its own that also reads and decodes, the metrics on
/// this one. `progress` is told the sequence folded so far.
pub fn rebuild(
    log: &EventLog,
    config: &ProjectionConfig,
    until_ms: Option<i64>,
    progress: &mut dyn FnMut(u64),
) -> Result<Projections, EngineError> {
    let mut p = Projections::new(MetricParams::from(config));
    let reader = log.reader();
    let last_seq = log.last_seq();
    let folds = |event: &LeadEvent| until_ms.is_none_or(|u| event.occurred_at_ms <= u);
    let pool = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Chunk>(CHUNKS_AHEAD_MAX);
        // Folded chunks go back to the decoding thread, which drops their
        // events and fills them again: the events' memory is freed by the
        // thread that allocated it (a free from another thread costs
        // mimalloc a deferred hand-back) and no chunk is allocated twice.
        let (back_tx, back_rx) = mpsc::sync_channel::<Vec<(u64, LeadEvent)>>(CHUNKS_AHEAD_MAX + 2);
        let fresh = move || match back_rx.try_recv() {
            Ok(mut used) => {
                used.clear();
                used
            }
            Err(_) => Vec::with_capacity(CHUNK_EVENTS),
        };
        let decoder = scope.spawn(move || {
            let mut pool = PoolState::default();
            let mut chunk = fresh();
            for item in reader.events_from(1) {
                match item {
                    Ok((seq, _)) if seq > last_seq => break,
                    Ok((seq, event)) => {
                        if folds(&event) && !pool_beside_metrics(&event.lead_id) {
                            pool.apply(&event);
                        }
                        chunk.push((seq, event));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return pool;
                    }
                }
                if chunk.len() == CHUNK_EVENTS {
                    let full = std::mem::replace(&mut chunk, fresh());
                    // The fold stopped (it failed): nothing more to do.
                    if tx.send(Ok(full)).is_err() {
                        return pool;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(Ok(chunk));
            }
            pool
        });
        // The metrics' fold, over the chunks as they come (a chunk that
        // failed to read ends it with its error).
        let metrics = &mut p.metrics;
        let mut pool_here = PoolState::default();
        let mut covered = p.covered_seq;
        let folded = rx.iter().try_for_each(|chunk| {
            let chunk = chunk?;
            covered = replay::fold_each(
                chunk.iter().map(|(seq, event)| Ok((*seq, event))),
                covered,
                until_ms,
                &mut |_, event| {
                    metrics.apply(event);
                    if pool_beside_metrics(&event.lead_id) {
                        pool_here.apply(event);
                    }
                },
                progress,
            )?;
            // A full return channel (the decoder has finished) drops the
            // chunk here instead.
            let _ = back_tx.try_send(chunk);
            Ok::<(), LogError>(())
        });
        let folded = folded.map(|()| p.covered_seq = covered);
        // A failed fold drops the receiver above only here: the decoder's
        // next send fails and it returns.
        drop(rx);
        let pool = decoder
            .join()
            .map_err(|e| EngineError::Panicked(format!("the replay's decoding thread: {e:?}")))?;
        folded
            .map(|()| {
                let mut pool = pool;
                pool.absorb(pool_here);
                pool
            })
            .map_err(EngineError::from)
    })?;
    p.pool = pool;
    Ok(p)
}

/// What `leadflow bench --replay` measured: one log, three passes over it,
/// each the best of [`REPLAY_RUNS_EACH`] runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayBenchFigures {
    pub events: u64,
    /// The same events as length-delimited protobuf (`simulate --format
    /// protobuf`).
    pub protobuf_bytes: u64,
    /// Every file of the data dir after the log was flushed, segments
    /// compressed (zstd, the default level: the log the passes read).
    pub data_dir_bytes: u64,
    /// The same, with `log.compression = "none"`.
    pub data_dir_bytes_uncompressed: u64,
    /// Read and decode every event, fold nothing: the ceiling.
    pub decode_only_per_s: f64,
    /// Read, decode and fold on one thread (as before `replay` used two).
    pub one_thread_per_s: f64,
    /// `leadflow replay`'s rebuild: reading, decoding and the pool's fold
    /// beside the metrics' fold.
    pub replay_per_s: f64,
    pub runs_each: u32,
}

/// Runs of each pass in [`bench_replay`], alternating.
pub const REPLAY_RUNS_EACH: u32 = 3;

/// Events per append while the bench fills its log (the engine's batch).
const BENCH_BATCH_EVENTS: usize = 2_000;

/// `leadflow bench --replay`: simulates `leads` into a fresh log in
/// `data_dir` (and, for its size only, into an uncompressed one beside it)
/// and times, alternating, a pass that only decodes it, the one-thread
/// rebuild and [`rebuild`]. No broker.
pub fn bench_replay(
    leads: u64,
    seed: u64,
    data_dir: &std::path::Path,
    say: &mut dyn FnMut(&str),
) -> Result<ReplayBenchFigures, EngineError> {
    use crate::log::LogOptions;
    use std::time::{Duration, Instant};
    let uncompressed_dir = data_dir.with_extension("uncompressed");
    say(&format!(
        "replay: simulating {leads} leads into a fresh log, uncompressed"
    ));
    let uncompressed = LogOptions {
        compression_level: None,
        ..LogOptions::default()
    };
    fill(
        leads,
        seed,
        &mut EventLog::open(&uncompressed_dir, &uncompressed)?,
    )?;
    let data_dir_bytes_uncompressed = crate::log::dir_bytes(&uncompressed_dir);
    say(&format!(
        "replay: simulating {leads} leads into a fresh log, compressed"
    ));
    let mut log = EventLog::open(data_dir, &LogOptions::default())?;
    let protobuf_bytes = fill(leads, seed, &mut log)?;
    let events = log.last_seq();
    let data_dir_bytes = crate::log::dir_bytes(data_dir);
    let config = ProjectionConfig::default();
    let (mut decode, mut one, mut two) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for run in 1..=REPLAY_RUNS_EACH {
        say(&format!(
            "replay: {events} events, decode only / one thread / replay, run {run} of {REPLAY_RUNS_EACH}"
        ));
        let started = Instant::now();
        let mut decoded = 0u64;
        for item in log.events_from(1) {
            item?;
            decoded += 1;
        }
        decode = decode.min(started.elapsed());
        debug_assert_eq!(decoded, events);
        let started = Instant::now();
        let serial = replay::rebuild(&log, &config, None, &mut |_| {})?;
        one = one.min(started.elapsed());
        let started = Instant::now();
        let parallel = rebuild(&log, &config, None, &mut |_| {})?;
        two = two.min(started.elapsed());
        // Both folds must agree, or the faster one is measuring something
        // else.
        if parallel != serial {
            return Err(EngineError::Panicked(
                "replay's rebuild differs from the one-thread rebuild".into(),
            ));
        }
    }
    let per_s = |d: Duration| events as f64 / d.as_secs_f64().max(1e-9);
    Ok(ReplayBenchFigures {
        events,
        protobuf_bytes,
        data_dir_bytes,
        data_dir_bytes_uncompressed,
        decode_only_per_s: per_s(decode),
        one_thread_per_s: per_s(one),
        replay_per_s: per_s(two),
        runs_each: REPLAY_RUNS_EACH,
    })
}

/// Appends the simulated events of `leads` to `log` in the engine's batches
/// and flushes; returns their size as length-delimited protobuf.
fn fill(leads: u64, seed: u64, log: &mut EventLog) -> Result<u64, EngineError> {
    use crate::codec::stream::{EventWriter, Format};
    use crate::log::Input;
    use crate::sim::{SimConfig, SimItem, Simulator};
    let mut protobuf = EventWriter::new(ByteCount::default(), Format::Protobuf);
    let mut batch = Vec::with_capacity(BENCH_BATCH_EVENTS);
    let sim = Simulator::new(SimConfig {
        seed,
        leads,
        ..SimConfig::default()
    });
    for item in sim {
        let SimItem::Event(e) = item else { continue };
        protobuf
            .write(&e)
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        batch.push(Input::event(e, None));
        if batch.len() == BENCH_BATCH_EVENTS {
            log.append(&batch, &[])?;
            batch.clear();
        }
    }
    log.append(&batch, &[])?;
    log.flush()?;
    Ok(protobuf.into_inner().0)
}

/// A writer that only counts.
#[derive(Default)]
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool's fold beside the metrics takes about a third of the
    /// leads, of the simulator's ids and of UUID-like ones, so that the
    /// two threads stay near balance (and neither side takes none or all).
    #[test]
    fn about_a_third_of_the_leads_pools_fold_beside_the_metrics() {
        let share = |ids: Vec<String>| {
            let n = ids.len() as f64;
            ids.iter().filter(|id| pool_beside_metrics(id)).count() as f64 / n
        };
        let simulated: Vec<String> = crate::sim::Simulator::new(crate::sim::SimConfig {
            seed: 5,
            leads: 3_000,
            ..crate::sim::SimConfig::default()
        })
        .events()
        .filter(|e| matches!(e.body, crate::domain::EventBody::Created(_)))
        .map(|e| e.lead_id)
        .collect();
        let uuid_like: Vec<String> = (0..3_000u64)
            .map(|i| format!("{:032x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .collect();
        for (what, ids) in [("simulated", simulated), ("uuid-like", uuid_like)] {
            let s = share(ids);
            assert!((0.25..0.42).contains(&s), "{what}: {s}");
        }
    }
}
