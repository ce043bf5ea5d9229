//! `leadflow bench --policy-state`: what the policy keeps per open
//! assignment, in memory and in its snapshot. An open assignment is the
//! state that grows with the floor (one per lead a rep holds, each with a
//! pending follow-up deadline), so its size is what sizes an engine.

use super::EngineError;
use crate::log::{EventLog, LogOptions};
use crate::policy::{Policies, PolicyFile};

/// The policy of the measure: claims only, a first follow-up due a day
/// after each assignment (so every assignment holds a pending deadline).
const POLICY: &str = "version = 1\n[rules]\nfirst_follow_up_sla_ms = 86400000\n\
                      [[pools]]\nname = \"manual\"\nkind = \"claimable\"\n";

/// Event time of the first lead.
const T0_MS: i64 = 1_793_491_200_000;

/// What [`bench_policy_state`] measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyStateFigures {
    pub assignments: u64,
    /// Resident memory the policy state took, over the assignments (the
    /// process's growth while it was built: what the allocator holds for
    /// it, not only what is live).
    pub memory_bytes_per_assignment: f64,
    /// The policy state's snapshot as the engine stores it (the log's
    /// default compression, zstd level 1), over the assignments.
    pub snapshot_bytes_per_assignment: f64,
    /// The same snapshot before compression (`log.compression = "none"`).
    pub snapshot_raw_bytes_per_assignment: f64,
    pub build_s: f64,
}

/// Builds a policy state with `assignments` open assignments
/// (`sim::assignments`) and measures it, its snapshot stored as the engine
/// stores it by a fresh log in `data_dir`.
pub fn bench_policy_state(
    assignments: u64,
    data_dir: &std::path::Path,
) -> Result<PolicyStateFigures, EngineError> {
    let policy = PolicyFile::parse(POLICY).expect("the bench's policy parses");
    let before = crate::control::resident_bytes().unwrap_or(0);
    let started = std::time::Instant::now();
    let mut p = Policies::new(policy);
    for (seq, event) in (1..).zip(crate::sim::assignments::open_assignments(
        assignments,
        T0_MS,
    )) {
        p.handle(seq, &event);
    }
    let build_s = started.elapsed().as_secs_f64();
    let after = crate::control::resident_bytes().unwrap_or(0);
    let snapshot = p.state_to_bytes();
    let log = EventLog::open(data_dir, &LogOptions::default())?;
    log.save_snapshot(SNAPSHOT_NAME, 0, &snapshot)?;
    let stored = log
        .snapshot_stored_bytes(SNAPSHOT_NAME)?
        .expect("the snapshot just saved");
    let n = assignments.max(1) as f64;
    Ok(PolicyStateFigures {
        assignments,
        memory_bytes_per_assignment: after.saturating_sub(before) as f64 / n,
        snapshot_bytes_per_assignment: stored as f64 / n,
        snapshot_raw_bytes_per_assignment: snapshot.len() as f64 / n,
        build_s,
    })
}

/// The name the bench stores its snapshot under.
const SNAPSHOT_NAME: &str = "bench-policy-state";
