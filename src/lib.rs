//! # Leadflow
//!
//! An event-sourced lead lifecycle engine. Lead events (created, scored,
//! assigned, followed up, recalled, converted) are validated against each
//! lead's lifecycle and appended, exactly once, to a durable sled event log.
//! Projectors fold the log into pool state and metric aggregates; a policy
//! processor decides commands; ops replay the log to rebuild them, to see a
//! past moment and to inspect one lead.
//!
//! The map of the modules, what each may use, and the invariants are in
//! `ARCHITECTURE.md` (one codemap, checked by `tests/boundaries.rs`).

pub mod api;
pub mod backtest;
pub mod bus;
pub mod codec;
pub mod config;
pub mod control;
pub mod domain;
pub mod engine;
pub mod flat;
pub mod import;
pub mod log;
pub mod policy;
pub mod projector;
pub mod replay;
pub mod report;
pub mod shutdown;
pub mod sim;
pub mod views;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets up mimalloc as the `leadflow` binary runs it; the binary and the
/// criterion benches (which install mimalloc as their global allocator
/// too, so that their figures are the engine's) call it first.
///
/// mimalloc returns freed memory to the OS after 10 ms by default; with
/// transparent huge pages every re-use then faults in and zeroes 2 MiB,
/// which took half of an import's CPU. Freed memory is kept instead.
pub fn keep_freed_memory() {
    // SAFETY: setting an option is thread-safe and takes plain integers.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
