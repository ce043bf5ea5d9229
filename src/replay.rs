//! Loading and rebuilding projections from the log: the only place where the
//! pure folds meet storage.
//!
//! `load` = latest snapshot + fold of the tail (and a fresh snapshot when the
//! tail was long); `rebuild` = fold from the first event, optionally only up
//! to an event time (`--until`), which shows the state at a past moment.

use crate::config::ProjectionConfig;
use crate::log::{EventLog, LogError, LogReader};
use crate::projector::metrics::MetricParams;
use crate::projector::{Projections, SNAPSHOT_NAME};

/// Loads projections: snapshot (if any, and made with the same parameters)
/// plus the tail of the log. Writes a new snapshot when the tail held at
/// least `snapshot_every_events` events.
pub fn load(
    log: &EventLog,
    config: &ProjectionConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<Projections, LogError> {
    let params = MetricParams::from(config);
    let mut p = match log.load_snapshot(SNAPSHOT_NAME)? {
        Some((seq, bytes)) => match Projections::from_bytes(&bytes) {
            Ok(p) if p.covered_seq == seq && *p.metrics.params() == params => p,
            Ok(_) => {
                tracing::info!("snapshot made with other parameters; rebuilding");
                Projections::new(params)
            }
            Err(e) => {
                tracing::warn!("unreadable snapshot ({e}); rebuilding");
                Projections::new(params)
            }
        },
        None => Projections::new(params),
    };
    let from = p.covered_seq;
    tracing::info!(
        snapshot_seq = from,
        last_seq = log.last_seq(),
        "folding the tail of the log"
    );
    fold_tail(log, &mut p, None, progress)?;
    if p.covered_seq - from >= config.snapshot_every_events {
        log.save_snapshot(SNAPSHOT_NAME, p.covered_seq, &p.to_bytes())?;
    }
    Ok(p)
}

/// Rebuilds projections from the first event. With `until_ms`, only events
/// whose event time is at or before it are folded: the state at that moment.
pub fn rebuild(
    log: &EventLog,
    config: &ProjectionConfig,
    until_ms: Option<i64>,
    progress: &mut dyn FnMut(u64),
) -> Result<Projections, LogError> {
    let mut p = Projections::new(MetricParams::from(config));
    fold_tail(log, &mut p, until_ms, progress)?;
    Ok(p)
}

/// [`rebuild`] with the metric parameters of existing projections.
pub fn rebuild_with(
    log: &EventLog,
    params: MetricParams,
    until_ms: Option<i64>,
) -> Result<Projections, LogError> {
    let mut p = Projections::new(params);
    fold_tail(log, &mut p, until_ms, &mut |_| {})?;
    Ok(p)
}

/// Saves projections as the current snapshot, and the log's index
/// checkpoint with them (see [`EventLog::checkpoint_index`]).
pub fn save(log: &EventLog, p: &Projections) -> Result<(), LogError> {
    log.save_snapshot(SNAPSHOT_NAME, p.covered_seq, &p.to_bytes())?;
    // The log's own index rides along, when this process has built it.
    log.checkpoint_index()?;
    Ok(())
}

/// [`rebuild_with`] through a [`LogReader`], folding the events up to
/// `up_to_seq` (the log's last sequence when the caller looked): for a
/// thread that must not hold the engine's lock while it replays.
pub fn rebuild_through(
    reader: &LogReader,
    params: MetricParams,
    until_ms: Option<i64>,
    up_to_seq: u64,
) -> Result<Projections, LogError> {
    let mut p = Projections::new(params);
    let events = reader
        .events_from(1)
        .take_while(|item| item.as_ref().map_or(true, |(seq, _)| *seq <= up_to_seq));
    fold_events(events, &mut p, until_ms, &mut |_| {})?;
    Ok(p)
}

/// Folds the events of the log after what `p` covers.
pub fn fold_tail(
    log: &EventLog,
    p: &mut Projections,
    until_ms: Option<i64>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), LogError> {
    fold_events(log.events_from(p.covered_seq + 1), p, until_ms, progress)
}

fn fold_events(
    events: impl Iterator<Item = Result<(u64, crate::domain::LeadEvent), LogError>>,
    p: &mut Projections,
    until_ms: Option<i64>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), LogError> {
    let mut covered = p.covered_seq;
    for item in events {
        let (seq, event) = item?;
        if until_ms.is_none_or(|u| event.occurred_at_ms <= u) {
            p.apply(seq, &event);
        }
        covered = seq;
        if seq % 10_000 == 0 {
            progress(seq);
        }
    }
    // Events skipped by `until` are still covered: the fold has seen them.
    p.covered_seq = covered;
    progress(covered);
    Ok(())
}

/// Loads the policy processor for `policy`: its snapshot (if any) plus the
/// tail of the log. Returns the commands the tail decides: most were stored
/// when their events were appended (same ids; [`EventLog::append_commands`]
/// drops those), but a deadline that came due without having been fired
/// before a crash is only decided here.
pub fn load_policy(
    log: &EventLog,
    policy: crate::policy::PolicyFile,
) -> Result<(crate::policy::Processor, Vec<crate::domain::LeadCommand>), LogError> {
    load_policy_named(log, policy, crate::policy::SNAPSHOT_NAME)
}

/// [`load_policy`] with the snapshot under `name` (the shadow policy has
/// its own).
pub fn load_policy_named(
    log: &EventLog,
    policy: crate::policy::PolicyFile,
    name: &str,
) -> Result<(crate::policy::Processor, Vec<crate::domain::LeadCommand>), LogError> {
    use crate::policy::Processor;
    let state = match log.load_snapshot(name)? {
        Some((seq, bytes)) => match Processor::state_from_bytes(&bytes) {
            Ok(s) if s.covered_seq == seq => s,
            Ok(_) | Err(_) => {
                tracing::warn!("unusable policy snapshot; rebuilding the policy state");
                Default::default()
            }
        },
        None => Default::default(),
    };
    let mut processor = Processor::with_state(policy, state);
    let mut decided = Vec::new();
    for item in log.events_from(processor.state().covered_seq + 1) {
        let (seq, event) = item?;
        decided.extend(processor.handle(seq, &event));
    }
    Ok((processor, decided))
}

/// Saves the policy state as its snapshot.
pub fn save_policy(log: &EventLog, p: &crate::policy::Processor) -> Result<(), LogError> {
    save_policy_named(log, p, crate::policy::SNAPSHOT_NAME)
}

/// [`save_policy`] under another snapshot name.
pub fn save_policy_named(
    log: &EventLog,
    p: &crate::policy::Processor,
    name: &str,
) -> Result<(), LogError> {
    log.save_snapshot(name, p.state().covered_seq, &p.state_to_bytes())
}
