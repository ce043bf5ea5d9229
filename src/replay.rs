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

/// Folds the events after what `p` covers, up to `up_to_seq`, through a
/// [`LogReader`] (without the engine's lock): brings a view kept aside
/// up to date.
pub fn fold_through(
    reader: &LogReader,
    p: &mut Projections,
    up_to_seq: u64,
) -> Result<(), LogError> {
    if p.covered_seq >= up_to_seq {
        return Ok(());
    }
    let events = reader
        .events_from(p.covered_seq + 1)
        .take_while(|item| item.as_ref().map_or(true, |(seq, _)| *seq <= up_to_seq));
    fold_events(events, p, None, &mut |_| {})
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

/// Every how many events a fold tells its progress.
pub const PROGRESS_EVERY: u64 = 10_000;

/// Folds `events` into `p` in order (those after `until_ms` are covered,
/// not folded), telling `progress` every [`PROGRESS_EVERY`] and at the end.
pub fn fold_events(
    events: impl Iterator<Item = Result<(u64, crate::domain::LeadEvent), LogError>>,
    p: &mut Projections,
    until_ms: Option<i64>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), LogError> {
    p.covered_seq = fold_each(
        events,
        p.covered_seq,
        until_ms,
        &mut |seq, event| p.apply(seq, event),
        progress,
    )?;
    Ok(())
}

/// The shape of every fold of the log's events after `covered_seq`, in
/// order: `fold` is given those at or before `until_ms`; the later ones are
/// covered all the same (the fold has seen them). `progress` is told every
/// [`PROGRESS_EVERY`] and at the end. Returns the sequence covered (the
/// last one read; `covered_seq` if there were none). Events come owned or
/// borrowed.
pub fn fold_each<E: std::borrow::Borrow<crate::domain::LeadEvent>>(
    events: impl Iterator<Item = Result<(u64, E), LogError>>,
    covered_seq: u64,
    until_ms: Option<i64>,
    fold: &mut dyn FnMut(u64, &crate::domain::LeadEvent),
    progress: &mut dyn FnMut(u64),
) -> Result<u64, LogError> {
    let mut covered = covered_seq;
    for item in events {
        let (seq, event) = item?;
        let event = event.borrow();
        assert!(
            seq > covered,
            "event {seq} folded again (covered {covered})"
        );
        if until_ms.is_none_or(|u| event.occurred_at_ms <= u) {
            fold(seq, event);
        }
        covered = seq;
        if seq % PROGRESS_EVERY == 0 {
            progress(seq);
        }
    }
    progress(covered);
    Ok(covered)
}

/// Loads the policy processor: its snapshot (if any) plus the tail of the
/// log, applying the policy inputs recorded in it (versions loaded, clock
/// ticks) where they stand among the events. Then `policy` (the file
/// configured now) is loaded: when it differs from the latest version the
/// log knows, a version record is appended first, so that any later replay
/// applies it from exactly here.
///
/// Returns the commands the tail decides: most were stored when their
/// events were appended (same ids; [`EventLog::store_policy_input`] and
/// [`EventLog::append_commands`] drop those), but a deadline that came due
/// without having been fired before a crash is only decided here.
pub fn load_policy(
    log: &mut EventLog,
    policy: crate::policy::PolicyFile,
) -> Result<(crate::policy::Policies, Vec<crate::domain::LeadCommand>), LogError> {
    let (mut processor, decided) = fold_policy(
        log,
        policy.clone(),
        true,
        Some(crate::policy::SNAPSHOT_NAME),
    )?;
    // A log that records no version yet gets the one it runs under.
    let force = !log.has_policy_inputs()?;
    load_version(log, &mut processor, policy, force)?;
    Ok((processor, decided))
}

/// Loads a policy version into a running processor, recording it in the
/// log first (at start-up, or by a reload), unless it is the latest
/// version the log already knows (and `force` is off). Returns whether it
/// was recorded.
pub fn load_version(
    log: &mut EventLog,
    processor: &mut crate::policy::Policies,
    policy: crate::policy::PolicyFile,
    force: bool,
) -> Result<bool, LogError> {
    if *processor.latest_loaded() == policy && !force {
        return Ok(false);
    }
    let input = crate::policy::PolicyInput::Version {
        policy: Box::new(policy),
        loaded_at_ms: wall_ms(),
    };
    let key = log.next_policy_input_key(&input)?;
    log.store_policy_input(key, &input, Vec::new())?;
    let fired = processor.apply_input(key, &input);
    debug_assert!(fired.is_empty(), "loading a version fires nothing");
    Ok(true)
}

/// The live policy's fold of the whole log from its first event, ignoring
/// any snapshot, with every command it decides: what `run` decided, by the
/// determinism rule (for audits and tests). Writes nothing. `policy` is
/// used only for a log that records no version.
pub fn replay_policy(
    log: &EventLog,
    policy: crate::policy::PolicyFile,
) -> Result<(crate::policy::Policies, Vec<crate::domain::LeadCommand>), LogError> {
    fold_policy(log, policy, true, None)
}

/// The live policy's state as of the log's end, for read commands (`inspect
/// lead`'s score now): from its snapshot and the log's tail, writing
/// nothing. `None` when the log records no policy version (no engine ran
/// a policy over it).
pub fn read_policy(log: &EventLog) -> Result<Option<crate::policy::Policies>, LogError> {
    let mut first = None;
    for item in log.policy_inputs_from((0, 0)) {
        if let (_, crate::policy::PolicyInput::Version { policy, .. }) = item? {
            first = Some(*policy);
            break;
        }
    }
    let Some(first) = first else {
        return Ok(None);
    };
    let (policies, _) = fold_policy(log, first, true, Some(crate::policy::SNAPSHOT_NAME))?;
    Ok(Some(policies))
}

/// The shadow policy's processor: like [`load_policy`], under its own
/// snapshot, with `policy` in force throughout. It follows the recorded
/// clock ticks but not the live policy's versions, and records nothing.
pub fn load_shadow_policy(
    log: &EventLog,
    policy: crate::policy::PolicyFile,
) -> Result<crate::policy::Policies, LogError> {
    let (processor, _) = fold_policy(
        log,
        policy,
        false,
        Some(crate::policy::SHADOW_SNAPSHOT_NAME),
    )?;
    Ok(processor)
}

/// The policy's fold of the log from the snapshot `name` on (from the
/// start without one), applying the recorded inputs in order with the
/// events: the ticks always, the versions when `versions` (the live
/// policy). `fallback` is in force when nothing says otherwise: for the
/// live policy, a log without recorded versions (written before they were
/// recorded); for the shadow, always.
fn fold_policy(
    log: &EventLog,
    fallback: crate::policy::PolicyFile,
    versions: bool,
    name: Option<&str>,
) -> Result<(crate::policy::Policies, Vec<crate::domain::LeadCommand>), LogError> {
    use crate::policy::{Policies, PolicyInput};
    let snapshot = match name {
        Some(name) => log.load_snapshot(name)?,
        None => None,
    };
    let state = match snapshot {
        Some((seq, bytes)) => match Policies::state_from_bytes(&bytes) {
            Ok(s) if s.covered_seq == seq => s,
            Ok(_) | Err(_) => {
                tracing::warn!("unusable policy snapshot; rebuilding the policy state");
                Default::default()
            }
        },
        None => Default::default(),
    };
    let mut processor = if !versions {
        Policies::with_state(fallback, state)
    } else if state.tenants.get("").is_some_and(|s| s.in_force.is_some()) {
        Policies::resume(fallback, state)
    } else {
        // From the start: the first version recorded was loaded before
        // the first event it applies to.
        let mut first = None;
        for item in log.policy_inputs_from((0, 0)) {
            if let (_, PolicyInput::Version { policy, .. }) = item? {
                first = Some(*policy);
                break;
            }
        }
        Policies::resume(first.unwrap_or(fallback), state)
    };
    let from = processor.covered_input().unwrap_or((0, 0));
    let mut inputs = log.policy_inputs_from(from).peekable();
    let mut decided = Vec::new();
    let apply = |processor: &mut Policies, key, input: &PolicyInput| match input {
        PolicyInput::Version { .. } if !versions => Vec::new(),
        _ => processor.apply_input(key, input),
    };
    for item in log.events_from(processor.covered_seq() + 1) {
        let (seq, event) = item?;
        // The inputs recorded before this event apply before it.
        while let Some(next) = inputs.next_if(|i| i.as_ref().map_or(true, |(k, _)| k.0 < seq)) {
            let (key, input) = next?;
            decided.extend(apply(&mut processor, key, &input));
        }
        decided.extend(processor.handle(seq, &event));
    }
    for next in inputs {
        let (key, input) = next?;
        decided.extend(apply(&mut processor, key, &input));
    }
    Ok((processor, decided))
}

/// The wall clock moves the policy's time to `now_ms` (`leadflow run`,
/// caught up, no events): the tick is recorded in the log with the commands
/// it fires, in one write, so that a replay fires them at the same point.
/// Returns the commands stored (not already in the log).
pub fn tick(
    log: &mut EventLog,
    processor: &mut crate::policy::Policies,
    now_ms: i64,
) -> Result<Vec<(u64, crate::domain::LeadCommand)>, LogError> {
    if now_ms <= processor.now_ms() {
        return Ok(Vec::new());
    }
    let input = crate::policy::PolicyInput::Tick { at_ms: now_ms };
    let key = log.next_policy_input_key(&input)?;
    let fired = processor.apply_input(key, &input);
    log.store_policy_input(key, &input, fired)
}

/// The clock ticks recorded in the log, as (after event sequence, time):
/// what a backtest needs to advance its policies where the live one did.
pub fn recorded_ticks(log: &EventLog) -> Result<Vec<(u64, i64)>, LogError> {
    let mut out = Vec::new();
    for item in log.policy_inputs_from((0, 0)) {
        if let (key, crate::policy::PolicyInput::Tick { at_ms }) = item? {
            out.push((key.0, at_ms));
        }
    }
    Ok(out)
}

/// The wall clock in UTC milliseconds: when a version was loaded (people
/// read it; decisions never do) and the time of a tick (`bus::ingest`).
/// Nothing in the pure core reads it.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Saves the policy state as its snapshot.
pub fn save_policy(log: &EventLog, p: &crate::policy::Policies) -> Result<(), LogError> {
    save_policy_named(log, p, crate::policy::SNAPSHOT_NAME)
}

/// [`save_policy`] under another snapshot name.
pub fn save_policy_named(
    log: &EventLog,
    p: &crate::policy::Policies,
    name: &str,
) -> Result<(), LogError> {
    log.save_snapshot(name, p.covered_seq(), &p.state_to_bytes())
}

/// What a live engine folds, loaded from its log and ready to run: every
/// fold has caught up with the whole log, so they start from the same
/// point (the ingest asserts it).
pub struct Engine {
    pub log: EventLog,
    pub projections: Projections,
    /// The policy in force, when there is one.
    pub processor: Option<crate::policy::Policies>,
    /// A shadow policy deciding beside it (stored, never published).
    pub shadow: Option<crate::policy::Policies>,
}

/// The start-up sequence shared by `run` and `demo`: the projections
/// (snapshot + tail), the policy (snapshot + tail with its recorded inputs,
/// then `policy` loaded as a version when it is new; commands the tail
/// decides that the log did not hold yet are stored, and their count
/// returned) and the shadow policy. `progress` sees the projections' fold.
pub fn start(
    mut log: EventLog,
    config: &ProjectionConfig,
    policy: Option<crate::policy::PolicyFile>,
    shadow: Option<crate::policy::PolicyFile>,
    progress: &mut dyn FnMut(u64),
) -> Result<(Engine, usize), LogError> {
    let projections = load(&log, config, progress)?;
    let mut caught_up = 0;
    let processor = match policy {
        None => None,
        Some(policy) => {
            let (processor, decided) = load_policy(&mut log, policy)?;
            caught_up = log.append_commands(decided)?.len();
            Some(processor)
        }
    };
    // What the shadow decides while catching up was stored when those
    // events were appended: storing it again would count it twice in the
    // comparison.
    let shadow = shadow
        .map(|policy| load_shadow_policy(&log, policy))
        .transpose()?;
    Ok((
        Engine {
            log,
            projections,
            processor,
            shadow,
        },
        caught_up,
    ))
}

/// The exit checkpoint shared by `run` and `demo`: the projections, the
/// policy state and the shadow's, so that the next start folds only what
/// came after.
pub fn checkpoint(engine: &Engine) -> Result<(), LogError> {
    save(&engine.log, &engine.projections)?;
    if let Some(p) = &engine.processor {
        save_policy(&engine.log, p)?;
    }
    if let Some(p) = &engine.shadow {
        save_policy_named(&engine.log, p, crate::policy::SHADOW_SNAPSHOT_NAME)?;
    }
    Ok(())
}
