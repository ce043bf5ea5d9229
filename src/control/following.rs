//! [`Following`]: a part's projections, folded from its log behind the
//! append rather than inside it.
//!
//! No decision reads the projections (validation has the log's index, the
//! policy its own view), so the engine's append path need not fold them:
//! it only says where the log now ends ([`ask`](Following::ask)), and a
//! thread of their own (spawned by `engine::run`) reads the new events
//! back through a [`LogReader`] and folds them, on the core the append
//! leaves idle. What the projections answer is unchanged: every reader
//! first brings them up to where the log ended when it asked
//! ([`caught_up`](Following::caught_up)), folding any tail the thread has
//! not reached yet itself. So correctness never depends on the thread —
//! without it (tests, a `Live` made by hand) the readers do the whole
//! fold — and the answer is the one an inline fold gave.
//!
//! The lag is bounded: when the thread is more than [`LAG_EVENTS_MAX`]
//! events behind (it is starved, or slower than the intake), the append
//! path folds the tail itself before it goes on ([`bound_lag`](Following::bound_lag)), which holds the intake back to the fold's pace.
//! A reader therefore never waits for more than that many events' fold,
//! and the exit checkpoint never for more.
//!
//! Errors of the thread's fold (a corrupt segment) are logged and left to
//! the next reader, whose own catch-up meets the same error and reports
//! it where it can be acted on.

use crate::log::{LogError, LogReader};
use crate::projector::metrics::MetricParams;
use crate::projector::Projections;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The most events the projections may be behind the log before the
/// append path folds them itself (about 0.1 s of the fold's work).
pub const LAG_EVENTS_MAX: u64 = 100_000;

/// The most events the thread folds in one hold of the projections' lock,
/// so that a reader waiting for it waits for at most this many.
pub const FOLD_CHUNK_EVENTS_MAX: u64 = 4_096;

/// What the thread is asked to do.
#[derive(Default)]
struct Signal {
    /// The log's last sequence to reach.
    wanted_seq: u64,
    /// A fold up to this sequence failed; the thread waits for more.
    failed_at_seq: Option<u64>,
    stop: bool,
}

/// A part's projections and how far they are asked to go.
pub struct Following {
    projections: Mutex<Projections>,
    /// The events the projections cover, for gauges read without their
    /// lock.
    covered_seq: AtomicU64,
    /// The metrics' parameters (fixed for the projections' life).
    params: MetricParams,
    reader: LogReader,
    signal: Mutex<Signal>,
    wake: Condvar,
}

impl Following {
    /// Follows the log `reader` reads from, starting with `projections`.
    pub fn new(projections: Projections, reader: LogReader) -> Following {
        Following {
            covered_seq: AtomicU64::new(projections.covered_seq),
            params: projections.metrics.params().clone(),
            signal: Mutex::new(Signal {
                wanted_seq: projections.covered_seq,
                ..Signal::default()
            }),
            projections: Mutex::new(projections),
            reader,
            wake: Condvar::new(),
        }
    }

    /// The metrics' parameters of the projections.
    pub fn params(&self) -> &MetricParams {
        &self.params
    }

    /// The events the projections cover (not caught up: for gauges).
    pub fn covered_seq(&self) -> u64 {
        self.covered_seq.load(Ordering::Relaxed)
    }

    /// The log now ends at `last_seq`: the thread folds up to there.
    pub fn ask(&self, last_seq: u64) {
        let mut s = super::lock(&self.signal);
        if last_seq > s.wanted_seq {
            s.wanted_seq = last_seq;
            self.wake.notify_one();
        }
    }

    /// Folds the tail here when the projections are more than
    /// `lag_events_max` (the engine's: [`LAG_EVENTS_MAX`]) behind
    /// `last_seq`.
    pub fn bound_lag(&self, last_seq: u64, lag_events_max: u64) -> Result<(), LogError> {
        if last_seq.saturating_sub(self.covered_seq()) > lag_events_max {
            tracing::debug!(
                behind = last_seq - self.covered_seq(),
                "the projections' fold is behind the log; folding inline"
            );
            drop(self.caught_up(last_seq)?);
        }
        Ok(())
    }

    /// The projections, brought up to `last_seq` (where the log ended when
    /// the caller looked) if they are not there yet.
    pub fn caught_up(&self, last_seq: u64) -> Result<MutexGuard<'_, Projections>, LogError> {
        let mut p = super::lock(&self.projections);
        self.fold(&mut p, last_seq)?;
        Ok(p)
    }

    /// Replaces the projections with `fresh` once it is brought up to
    /// `last_seq` (a rebuild).
    pub fn replace(&self, mut fresh: Projections, last_seq: u64) -> Result<u64, LogError> {
        let mut p = super::lock(&self.projections);
        self.fold(&mut fresh, last_seq)?;
        *p = fresh;
        self.covered_seq.store(p.covered_seq, Ordering::Relaxed);
        Ok(p.covered_seq)
    }

    fn fold(&self, p: &mut Projections, last_seq: u64) -> Result<(), LogError> {
        crate::replay::fold_through(&self.reader, p, last_seq)?;
        self.covered_seq.store(p.covered_seq, Ordering::Relaxed);
        Ok(())
    }

    /// The thread's loop: folds up to what it is asked, a chunk per hold
    /// of the lock, until [`stop`](Self::stop).
    pub fn follow(&self) {
        loop {
            let target = {
                let mut s = super::lock(&self.signal);
                loop {
                    if s.stop {
                        return;
                    }
                    let behind = s.wanted_seq > self.covered_seq();
                    let failed_here = s.failed_at_seq.is_some_and(|f| f >= s.wanted_seq);
                    if behind && !failed_here {
                        break;
                    }
                    s = self
                        .wake
                        .wait(s)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                s.wanted_seq
            };
            let mut p = super::lock(&self.projections);
            let chunk_end = target.min(p.covered_seq + FOLD_CHUNK_EVENTS_MAX);
            if let Err(e) = self.fold(&mut p, chunk_end) {
                tracing::warn!(
                    "the projections' fold stopped at event {}: {e}; readers will meet it",
                    p.covered_seq + 1
                );
                super::lock(&self.signal).failed_at_seq = Some(target);
            }
        }
    }

    /// Ends [`follow`](Self::follow) (it returns after the chunk it is
    /// folding, if any).
    pub fn stop(&self) {
        super::lock(&self.signal).stop = true;
        self.wake.notify_all();
    }

    /// The projections, brought up to `last_seq`, once nothing else holds
    /// this.
    pub fn into_projections(self, last_seq: u64) -> Result<Projections, LogError> {
        let mut p = self
            .projections
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::replay::fold_through(&self.reader, &mut p, last_seq)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProjectionConfig;
    use crate::control::Live;
    use crate::log::{EventLog, Input, LogOptions};
    use crate::projector::metrics::MetricParams;
    use crate::sim::{SimConfig, Simulator};
    use std::time::{Duration, Instant};

    /// A policy-less engine over a fresh log in `dir`, and the simulator's
    /// history (300 leads, 15 days, with interactions) to feed it.
    fn engine_and_history(dir: &std::path::Path) -> (Live, Vec<crate::domain::LeadEvent>) {
        let log = EventLog::open(dir, &LogOptions::default()).unwrap();
        let (engine, _) =
            crate::replay::start(log, &ProjectionConfig::default(), None, None, &mut |_| {})
                .unwrap();
        let events = Simulator::new(SimConfig {
            leads: 300,
            days: 15,
            engagement: true,
            ..SimConfig::default()
        })
        .events()
        .collect();
        (Live::new(engine), events)
    }

    /// Appends `events` through the engine's append path, 500 a batch.
    fn append(live: &mut Live, events: &[crate::domain::LeadEvent]) {
        for chunk in events.chunks(500) {
            let inputs: Vec<Input> = chunk
                .iter()
                .map(|e| Input::event(e.clone(), None))
                .collect();
            live.append_inputs(None, &inputs, &[]).unwrap();
        }
    }

    /// The projections an inline fold of the whole log gives.
    fn inline_fold(live: &Live) -> Projections {
        let part = live.whole();
        let mut p = Projections::new(MetricParams::from(&ProjectionConfig::default()));
        crate::replay::fold_tail(&part.log, &mut p, None, &mut |_| {}).unwrap();
        assert_eq!(p.covered_seq, part.log.last_seq());
        p
    }

    #[test]
    fn without_a_thread_a_reader_folds_the_tail_and_reads_what_an_inline_fold_gives() {
        // Given a log appended through the engine's path and nothing
        // following it.
        let dir = tempfile::tempdir().unwrap();
        let (mut live, events) = engine_and_history(dir.path());
        append(&mut live, &events);
        let part = live.whole();
        assert!(part.log.last_seq() > 1_000, "a history worth folding");
        assert_eq!(part.following.covered_seq(), 0, "the append did not fold");
        // When a reader asks, then it reads every event, folded as inline.
        let read = part.projections().unwrap().clone();
        assert_eq!(read, inline_fold(&live));
        assert_eq!(part.following.covered_seq(), part.log.last_seq());
    }

    #[test]
    fn the_thread_folds_behind_the_append_to_the_same_projections() {
        // Given a thread following the part while batches are appended.
        let dir = tempfile::tempdir().unwrap();
        let (mut live, events) = engine_and_history(dir.path());
        let following = live.whole().following.clone();
        let thread = {
            let f = following.clone();
            std::thread::spawn(move || f.follow())
        };
        append(&mut live, &events);
        // When nobody reads, then the thread alone reaches the log's end
        // (waited for, not timed: the bound only stops a hung test).
        let last_seq = live.whole().log.last_seq();
        let deadline = Instant::now() + Duration::from_secs(60);
        while following.covered_seq() < last_seq {
            assert!(Instant::now() < deadline, "the thread never caught up");
            std::thread::sleep(Duration::from_millis(5));
        }
        // And what it folded is what an inline fold gives; the thread stops
        // when told.
        following.stop();
        thread.join().unwrap();
        assert_eq!(*live.whole().projections().unwrap(), inline_fold(&live));
        // And the engine handed back at the stop carries them.
        let expected = inline_fold(&live);
        drop(following);
        let parts = live.into_parts().unwrap();
        assert_eq!(parts[&None].projections, expected);
    }

    #[test]
    fn the_append_path_folds_the_tail_itself_once_the_lag_passes_its_bound() {
        // Given a log 1,000 events ahead of projections nobody follows.
        let dir = tempfile::tempdir().unwrap();
        let (mut live, events) = engine_and_history(dir.path());
        append(&mut live, &events[..1_000]);
        let part = live.whole();
        let last_seq = part.log.last_seq();
        assert_eq!(part.following.covered_seq(), 0);
        // When the lag is within the bound, then nothing is folded.
        part.following.bound_lag(last_seq, last_seq).unwrap();
        assert_eq!(part.following.covered_seq(), 0);
        // When it is past the bound, then the tail is folded here.
        part.following.bound_lag(last_seq, last_seq - 1).unwrap();
        assert_eq!(part.following.covered_seq(), last_seq);
    }

    #[test]
    fn a_rebuilt_projections_replace_the_followed_ones_caught_up() {
        // Given a followed part and a fresh fold of half its log.
        let dir = tempfile::tempdir().unwrap();
        let (mut live, events) = engine_and_history(dir.path());
        append(&mut live, &events);
        let part = live.whole();
        let last_seq = part.log.last_seq();
        let mut fresh = Projections::new(MetricParams::from(&ProjectionConfig::default()));
        crate::replay::fold_through(&part.log.reader(), &mut fresh, last_seq / 2).unwrap();
        // When it replaces them, then it is brought up to the log's end
        // first.
        let covered = part.following.replace(fresh, last_seq).unwrap();
        assert_eq!(covered, last_seq);
        assert_eq!(*part.projections().unwrap(), inline_fold(&live));
    }
}
