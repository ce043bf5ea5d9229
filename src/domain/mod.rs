//! The pure domain: money, lead events (past tense), commands (imperative),
//! typed rejections, the lead lifecycle state machine and where a tenant's
//! events live (`tenant`).
//!
//! Nothing in here does I/O or reads a clock: time is always the event time
//! carried by the event (`occurred_at_ms`, UTC milliseconds). That is what
//! makes replays and backtests deterministic.

pub mod build;
pub mod command;
pub mod event;
pub mod lifecycle;
pub mod money;
pub mod rates;
pub mod rejection;
pub mod tenant;
pub mod time;

pub use command::{CommandBody, LeadCommand};
pub use event::{
    AssignmentMethod, EventBody, EventKind, FollowUpKind, LeadAssigned, LeadClaimRequested,
    LeadCommandDeclined, LeadConverted, LeadCreated, LeadEngaged, LeadEvent, LeadFollowedUp,
    LeadMoved, LeadRecalled, LeadScored, RecallReason,
};
pub use lifecycle::{Lead, LeadStatus};
pub use money::{Currency, Money};
pub use rejection::Rejection;
