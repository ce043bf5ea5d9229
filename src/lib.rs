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
