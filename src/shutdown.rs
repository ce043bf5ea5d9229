//! One stop signal for every loop and thread of a process (the pattern of
//! tokio's mini-redis): SIGINT or SIGTERM, a deadline (`--duration-s`), or
//! a part that failed sets it; every loop checks it between units of work
//! and then drains instead of stopping mid-batch. A second SIGINT or
//! SIGTERM while draining ends the process at once (status 130), the way
//! people expect from a second Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cloneable stop signal. Clones share it: triggering one triggers all.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    /// The signal sets itself at this moment (no sleeper thread needed).
    deadline: Option<Instant>,
}

/// Status of a process ended by a second signal while it drained.
pub const FORCED_EXIT_STATUS: i32 = 130;

impl Shutdown {
    /// A signal that only [`Shutdown::trigger`] sets.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// This signal, also set once `after` has passed (when given).
    pub fn with_deadline(mut self, after: Option<Duration>) -> Shutdown {
        self.deadline = after.map(|d| Instant::now() + d);
        self
    }

    /// This signal, also set by SIGINT and SIGTERM; a second one exits.
    pub fn on_signals(self) -> std::io::Result<Shutdown> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as it was before this
            // signal: set only if an earlier signal set it.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                FORCED_EXIT_STATUS,
                self.flag.clone(),
            )?;
            signal_hook::flag::register(signal, self.flag.clone())?;
        }
        Ok(self)
    }

    /// Asks every holder to stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether the holders should stop now.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Sleeps up to `d`, waking early (within 50 ms) when triggered.
    /// Returns whether it was triggered.
    pub fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.is_triggered() {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_sees_the_trigger_and_a_deadline_triggers_by_itself() {
        let s = Shutdown::new();
        let seen_by = s.clone();
        assert!(!seen_by.is_triggered());
        s.trigger();
        assert!(seen_by.is_triggered());

        let timed = Shutdown::new().with_deadline(Some(Duration::from_millis(30)));
        assert!(!timed.is_triggered());
        assert!(timed.sleep(Duration::from_secs(5)), "woken by its deadline");
        assert!(timed.is_triggered());
        assert!(!Shutdown::new().sleep(Duration::from_millis(1)));
    }
}
