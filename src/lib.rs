//! # Leadflow
//!
//! An event-sourced lead lifecycle engine. Lead events (created, scored,
//! assigned, followed up, recalled, converted) are validated against each
//! lead's lifecycle and appended, exactly once, to a durable sled event log.
//! Projectors fold the log into pool state and metric aggregates; ops replay
//! the log to rebuild them, to see a past moment and to inspect one lead.
//!
//! ## Codemap
//! - [`domain`]: the lifecycle state machine, events, commands, typed
//!   rejections, money and event time. Pure.
//! - [`codec`]: protobuf/JSON <-> domain; the only user of generated types.
//! - [`log`]: the sled event log; the only user of sled.
//! - [`projector`]: pure folds of the log into pool state and metrics.
//! - [`replay`]: loads projections (snapshot + tail) and rebuilds them.
//! - [`import`]: event files into the log, resuming from the stored position.
//! - [`report`]: terminal tables and JSON rows of the metrics.
//! - [`sim`]: a seeded, deterministic workload generator.
//! - [`config`]: typed TOML configuration.
//!
//! ## Invariants
//! - Folds and lifecycle decisions do no I/O and read no clock; domain time
//!   is event time.
//! - An event id is in the log at most once; every rejected input is kept
//!   with its typed reason.
//! - A batch is atomic and durable when `append` returns, together with the
//!   source positions it consumed.
//! - Money is never summed across currencies.

pub mod api;
pub mod backtest;
pub mod bus;
pub mod codec;
pub mod config;
pub mod domain;
pub mod engine;
pub mod import;
pub mod log;
pub mod policy;
pub mod projector;
pub mod replay;
pub mod report;
pub mod sim;
