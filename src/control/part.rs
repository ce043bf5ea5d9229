//! [`Part`]: one part of the running engine (see [`PartKey`]) — its log,
//! its policies and its projections followed off the append path (see
//! [`following`](super::following)).
//!
//! A `Part` is a loaded [`Engine`] while it runs: made from one at start,
//! handed back as one (projections caught up with the log) at the stop,
//! for the exit checkpoint.

use super::following::Following;
use crate::log::{EventLog, LogError};
use crate::policy::Policies;
use crate::projector::Projections;
use crate::replay::Engine;
use std::sync::{Arc, MutexGuard};

/// A running part's folds.
pub struct Part {
    pub log: EventLog,
    /// Folded behind the append; read them through
    /// [`projections`](Self::projections).
    pub following: Arc<Following>,
    /// The policy in force, when there is one.
    pub processor: Option<Policies>,
    /// A shadow policy deciding beside it (stored, never published).
    pub shadow: Option<Policies>,
}

impl Part {
    /// A running part from a loaded engine.
    pub fn new(engine: Engine) -> Part {
        let Engine {
            log,
            projections,
            processor,
            shadow,
        } = engine;
        let following = Arc::new(Following::new(projections, log.reader()));
        Part {
            log,
            following,
            processor,
            shadow,
        }
    }

    /// The projections, caught up with everything the log holds now.
    pub fn projections(&self) -> Result<MutexGuard<'_, Projections>, LogError> {
        self.following.caught_up(self.log.last_seq())
    }

    /// The loaded engine again, its projections caught up with the log.
    /// The thread following it should have been stopped and joined; if it
    /// still holds a reference, it is told to stop and the projections are
    /// copied out.
    pub fn into_engine(self) -> Result<Engine, LogError> {
        let Part {
            log,
            following,
            processor,
            shadow,
        } = self;
        let last_seq = log.last_seq();
        let projections = match Arc::try_unwrap(following) {
            Ok(f) => f.into_projections(last_seq)?,
            Err(shared) => {
                shared.stop();
                shared.caught_up(last_seq)?.clone()
            }
        };
        Ok(Engine {
            log,
            projections,
            processor,
            shadow,
        })
    }
}
