//! The threads that fold each part's projections behind the append (see
//! `control::Following`): one per part, named `projections-<part>`.
//! Stopped and joined before the engine takes its state back, and on any
//! early return (dropped), so that no thread outlives [`run`](super::run).

use crate::control::{Following, Live};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The running followers.
pub struct Followers {
    threads: Vec<(Arc<Following>, JoinHandle<()>)>,
}

impl Followers {
    /// Starts a thread per part of `live`.
    pub fn spawn(live: &Live) -> std::io::Result<Followers> {
        let mut followers = Followers {
            threads: Vec::new(),
        };
        for (i, following) in live.followers().into_iter().enumerate() {
            let f = following.clone();
            let thread = std::thread::Builder::new()
                .name(format!("projections-{i}"))
                .spawn(move || f.follow())?;
            followers.threads.push((following, thread));
        }
        Ok(followers)
    }

    /// Stops and joins every thread; names the first that panicked.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<(), String> {
        for (f, _) in &self.threads {
            f.stop();
        }
        let mut panicked = Ok(());
        for (_, t) in self.threads.drain(..) {
            let name = t.thread().name().unwrap_or("projections").to_string();
            if let Err(e) = t.join() {
                if panicked.is_ok() {
                    panicked = Err(format!("the {name} thread: {e:?}"));
                }
            }
        }
        panicked
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}
