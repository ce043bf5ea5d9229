//! `leadflow inspect`: one lead, the rejected inputs, the log's totals, the
//! policy's commands (`inspect_commands.rs`) and the shadow comparison.

use super::{inspect_commands, open_stores_for_reading};
use anyhow::{bail, Result};
use clap::Subcommand;
use leadflow::config::Config;
use leadflow::domain::time::format_ms;
use leadflow::domain::{EventBody, LeadEvent};
use leadflow::log::EventLog;
use leadflow::policy::scoring::fold::ScoreCard;
use std::path::Path;

#[derive(Subcommand)]
pub enum InspectWhat {
    /// Timeline and current state of one lead, and its score now with the
    /// rules and model features that moved it (when the engine scores).
    Lead {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Rejected inputs, newest last.
    Rejections {
        /// Only this reason code (e.g. `duplicate`, `not_owner`).
        #[arg(long)]
        reason: Option<String>,
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Totals of the log.
    Log,
    /// The policy's stored commands: rule, facts, explanation and delivery
    /// state (pending or sent), oldest first.
    Commands(inspect_commands::InspectCommandsArgs),
    /// The live policy's commands beside the shadow policy's, counted by
    /// type, rule and reason.
    Shadow {
        #[arg(long)]
        json: bool,
    },
}

/// The logs of a data dir: its own, or its partition stores by partition.
type Logs = [(Option<i32>, EventLog)];

pub fn exec(dir: &Path, config: &Config, what: InspectWhat) -> Result<()> {
    let logs = open_stores_for_reading(dir, config)?;
    match what {
        InspectWhat::Lead { id, json } => lead(&logs, &id, json),
        InspectWhat::Rejections { reason, limit } => rejections(&logs, reason.as_deref(), limit),
        InspectWhat::Commands(a) => inspect_commands::run(&logs, &a),
        InspectWhat::Shadow { json } => shadow(&logs, json),
        InspectWhat::Log => totals(&logs),
    }
}

fn lead(logs: &Logs, id: &str, json: bool) -> Result<()> {
    // A lead lives in one log (its tenant's partition store).
    let mut found = None;
    for (_, log) in logs {
        if let Some(report) = leadflow::views::lead_report(log, id)? {
            found = Some((log, report));
            break;
        }
    }
    let Some((log, report)) = found else {
        bail!("no lead {id:?} in the log");
    };
    let tenant = report
        .timeline
        .first()
        .and_then(|t| t.event["tenantId"].as_str())
        .unwrap_or_default();
    let card = score_now(log, tenant, id)?;
    if json {
        // The same document as `GET /api/v1/leads/{id}`: `score` only
        // when there is one.
        let mut doc = serde_json::to_value(&report)?;
        if let Some(card) = &card {
            doc["score"] = serde_json::to_value(card)?;
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("lead {id}");
    if let Some(v) = &report.state {
        println!(
            "  status {}  pool {}  owner {}  score {}  channel {}",
            v.status.as_str(),
            v.pool,
            v.owner.as_deref().unwrap_or("-"),
            v.score.map_or("-".into(), |s| s.to_string()),
            v.channel
        );
        println!(
            "  assignments {}  recalls {}  previous owners [{}]",
            v.generation,
            v.recall_count,
            v.previous_owners.join(", ")
        );
    }
    if let Some(c) = &card {
        print_score_card(c);
    }
    println!("timeline:");
    for (seq, e) in &log.timeline(id)? {
        println!(
            "  #{seq:<8} {}  {:<11} {}",
            format_ms(e.occurred_at_ms),
            e.body.kind().as_str(),
            describe(e)
        );
    }
    if !report.rejected.is_empty() {
        println!("rejected:");
        for r in &report.rejected {
            println!(
                "  {} ({}): {}",
                r.event_id.as_deref().unwrap_or("?"),
                r.reason,
                r.message
            );
        }
    }
    Ok(())
}

/// The lead's score now, as the policy's scoring fold has it (with what
/// moved it): `None` for a lead that is converted, a log no engine ran a
/// policy over, or a policy without `[scoring]`.
fn score_now(log: &EventLog, tenant: &str, id: &str) -> Result<Option<ScoreCard>> {
    let Some(policies) = leadflow::replay::read_policy(log)? else {
        return Ok(None);
    };
    Ok(policies.tenant(tenant).and_then(|p| p.score_card(id)))
}

fn print_score_card(c: &ScoreCard) {
    let part = |v: Option<u32>| v.map_or("-".into(), |v| v.to_string());
    let model = if c.model_version.is_empty() {
        String::new()
    } else {
        format!(" by {}", c.model_version)
    };
    println!(
        "  score now {} (attribute {}, behaviour {}, predictive {}{model}) as of {}",
        c.combined,
        part(c.attribute),
        part(c.behaviour),
        part(c.predictive),
        format_ms(c.at_ms)
    );
    let list = |items: &[leadflow::policy::scoring::rules::Contribution], unit: &str| {
        items
            .iter()
            .map(|x| format!("{} {:+.2}{unit}", x.what, x.points))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.rules.is_empty() {
        println!("    rules: {}", list(&c.rules, " points"));
    }
    if !c.features.is_empty() {
        println!(
            "    model's top features (log-odds): {}",
            list(&c.features, "")
        );
    }
}

fn rejections(logs: &Logs, reason: Option<&str>, limit: usize) -> Result<()> {
    let mut shown = 0;
    for r in logs.iter().flat_map(|(_, log)| log.rejections()) {
        if shown >= limit {
            break;
        }
        let r = r?;
        if reason.is_some_and(|c| c != r.reason.code()) {
            continue;
        }
        let origin = r
            .origin
            .as_ref()
            .map_or(String::new(), |o| format!(" [{}@{}]", o.source, o.offset));
        println!(
            "#{:<6} {:<20} event {} lead {}: {}{origin}",
            r.rseq,
            r.reason.code(),
            r.event_id.as_deref().unwrap_or("-"),
            r.lead_id.as_deref().unwrap_or("-"),
            r.reason
        );
        shown += 1;
    }
    Ok(())
}

fn shadow(logs: &Logs, json: bool) -> Result<()> {
    // Counts per row, summed over the logs.
    let mut by_command: std::collections::BTreeMap<String, leadflow::views::ShadowRow> =
        Default::default();
    for (_, log) in logs {
        for r in leadflow::views::shadow_comparison(log)? {
            match by_command.get_mut(&r.command) {
                Some(mine) => {
                    mine.live += r.live;
                    mine.shadow += r.shadow;
                }
                None => {
                    by_command.insert(r.command.clone(), r);
                }
            }
        }
    }
    let rows: Vec<_> = by_command.into_values().collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<50} {:>10} {:>10}", "command", "live", "shadow");
        for r in rows {
            println!("{:<50} {:>10} {:>10}", r.command, r.live, r.shadow);
        }
    }
    Ok(())
}

fn totals(logs: &Logs) -> Result<()> {
    let (mut events, mut rejected) = (0u64, 0u64);
    let mut by_reason: std::collections::BTreeMap<String, u64> = Default::default();
    let mut positions = Vec::new();
    for (partition, log) in logs {
        let s = log.stats()?;
        events += s.events;
        rejected += s.rejected;
        for (code, n) in s.rejected_by_reason {
            *by_reason.entry(code).or_default() += n;
        }
        for (source, next) in log.positions("")? {
            // A source other than the partition itself (HTTP) is named
            // with its store.
            let name = match partition {
                Some(p) if !source.starts_with("kafka:") => {
                    format!("{source} (partition {p}'s store)")
                }
                _ => source,
            };
            positions.push((name, next));
        }
    }
    println!("events   {events}");
    println!("rejected {rejected}");
    for (code, n) in by_reason {
        println!("  {code:<20} {n}");
    }
    if logs.iter().any(|(p, _)| p.is_some()) {
        let stores: Vec<String> = logs
            .iter()
            .filter_map(|(p, _)| p.map(|p| p.to_string()))
            .collect();
        println!("partition stores {}", stores.join(","));
    }
    if !positions.is_empty() {
        println!("source positions (next offset to read)");
        for (source, next) in positions {
            println!("  {source:<40} {next}");
        }
    }
    Ok(())
}

/// One line about an event, for the text timeline.
fn describe(e: &LeadEvent) -> String {
    use EventBody::*;
    match &e.body {
        Created(c) => format!(
            "channel {} campaign {} pool {} cost {}",
            c.channel, c.campaign, c.pool, c.acquisition_cost
        ),
        Scored(s) => format!(
            "score {} (attribute {}, behaviour {}, predictive {}{})",
            s.score,
            s.attribute_score,
            s.behaviour_score,
            s.predictive_score,
            if s.model_version.is_empty() {
                String::new()
            } else {
                format!(", model {}", s.model_version)
            }
        ),
        Assigned(a) => format!("to {} ({:?})", a.owner_id, a.method),
        FollowedUp(f) => format!("by {} ({:?}) {}", f.owner_id, f.kind, f.outcome),
        Recalled(r) => format!("from {} ({})", r.previous_owner_id, r.reason.as_str()),
        Converted(c) => format!("by {} deal {}", c.owner_id, c.deal_value),
        CommandDeclined(d) => format!("declined {} ({})", d.command_id, d.reason),
        ClaimRequested(c) => format!("claim by {}", c.rep_id),
        Moved(m) => format!("to pool {}", m.to_pool),
        Engaged(g) => match g.points {
            Some(p) => format!("{} ({p:+} points) {}", g.kind, g.detail),
            None => format!("{} {}", g.kind, g.detail),
        },
    }
}
