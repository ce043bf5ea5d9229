//! Read views of the log that people look at through both the CLI and the
//! HTTP API, built here once so that `leadflow inspect lead --json` and
//! `GET /api/v1/leads/{id}` answer the same question with the same shape,
//! and `inspect shadow` and any later route count the same way.

use crate::codec;
use crate::domain::{CommandBody, LeadCommand};
use crate::log::{EventLog, LogError};
use crate::projector::pool::{LeadView, PoolState};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Everything the log knows about one lead.
#[derive(Clone, Debug, Serialize)]
pub struct LeadReport {
    pub lead_id: String,
    /// The pool fold of this lead's events alone (a lead's state depends
    /// on its own events only); `None` when only rejected inputs name it.
    pub state: Option<LeadView>,
    /// Accepted events, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Rejected inputs that named this lead, oldest first.
    pub rejected: Vec<RejectedEntry>,
    /// `rejected.len()`, for a quick look.
    pub rejected_events: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimelineEntry {
    pub seq: u64,
    /// The event in the schema's JSON mapping (as `leadflow export` writes it).
    pub event: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct RejectedEntry {
    pub event_id: Option<String>,
    /// The reason's code (`not_owner`, `duplicate`, ...).
    pub reason: String,
    /// The reason in words.
    pub message: String,
}

/// The lead's report, or `None` when the log has neither an event nor a
/// rejected input of it.
pub fn lead_report(log: &EventLog, lead_id: &str) -> Result<Option<LeadReport>, LogError> {
    let events = log.timeline(lead_id)?;
    let rejections = log.lead_rejections(lead_id)?;
    if events.is_empty() && rejections.is_empty() {
        return Ok(None);
    }
    let mut state = PoolState::default();
    for (_, e) in &events {
        state.apply(e);
    }
    let timeline = events
        .iter()
        .map(|(seq, e)| TimelineEntry {
            seq: *seq,
            event: serde_json::from_str(&codec::event_to_json(e)).unwrap_or(Value::Null),
        })
        .collect();
    let rejected: Vec<RejectedEntry> = rejections
        .iter()
        .map(|r| RejectedEntry {
            event_id: r.event_id.clone(),
            reason: r.reason.code().to_string(),
            message: r.reason.to_string(),
        })
        .collect();
    Ok(Some(LeadReport {
        lead_id: lead_id.to_string(),
        state: state.leads.remove(lead_id),
        timeline,
        rejected_events: rejected.len(),
        rejected,
    }))
}

/// One row of the live policy's commands beside the shadow policy's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShadowRow {
    /// Type, rule and (for recalls) reason, e.g. `RecallLead stale-recall (stale)`.
    pub command: String,
    pub live: u64,
    pub shadow: u64,
}

/// The live policy's stored commands and the shadow policy's, counted by
/// type, rule and reason, sorted by that key.
pub fn shadow_comparison(log: &EventLog) -> Result<Vec<ShadowRow>, LogError> {
    let key = |c: &LeadCommand| {
        let reason = match &c.body {
            CommandBody::RecallLead { reason, .. } => format!(" ({})", reason.as_str()),
            _ => String::new(),
        };
        format!("{} {}{reason}", c.body.type_name(), c.rule_id)
    };
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in log.commands() {
        counts.entry(key(&c?.1)).or_default().0 += 1;
    }
    for c in log.shadow_commands() {
        counts.entry(key(&c?)).or_default().1 += 1;
    }
    Ok(counts
        .into_iter()
        .map(|(command, (live, shadow))| ShadowRow {
            command,
            live,
            shadow,
        })
        .collect())
}
