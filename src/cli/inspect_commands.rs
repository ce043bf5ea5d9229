//! `leadflow inspect commands`: the audit trail of the policy's decisions.
//! Every stored command with its rule and version, the facts it rested
//! on, its one-line explanation and its delivery state (`pending` until
//! the broker acknowledged it, then `sent`), oldest first.

use anyhow::{bail, Result};
use clap::Args;
use leadflow::domain::time::format_ms;
use leadflow::domain::{CommandBody, LeadCommand};
use leadflow::log::EventLog;

#[derive(Args, Debug)]
pub struct InspectCommandsArgs {
    /// Only the commands about this lead.
    #[arg(long)]
    pub lead: Option<String>,
    /// Only the commands not yet acknowledged by the broker.
    #[arg(long)]
    pub pending: bool,
    /// Show at most this many (the oldest first).
    #[arg(long, default_value_t = 1_000)]
    pub limit: usize,
    /// One JSON array instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Over the logs of a data dir (its own, or its partition stores one after
/// another; a command's `cseq` counts within its store).
pub fn run(logs: &[(Option<i32>, EventLog)], a: &InspectCommandsArgs) -> Result<()> {
    if let Some(lead) = &a.lead {
        let mut known = false;
        for (_, log) in logs {
            known |= log.lead_state(lead)?.is_some();
        }
        if !known {
            let at: Vec<String> = logs
                .iter()
                .map(|(_, l)| l.path().display().to_string())
                .collect();
            bail!("no lead {lead:?} in the log at {}", at.join(", "));
        }
    }
    let mut rows: Vec<(Option<i32>, u64, LeadCommand, bool)> = Vec::new();
    'logs: for (partition, log) in logs {
        let pending = log.pending_command_seqs()?;
        for item in log.commands() {
            let (cseq, c) = item?;
            let is_pending = pending.contains(&cseq);
            if a.pending && !is_pending {
                continue;
            }
            if a.lead.as_ref().is_some_and(|l| *l != c.lead_id) {
                continue;
            }
            rows.push((*partition, cseq, c, is_pending));
            if rows.len() >= a.limit {
                break 'logs;
            }
        }
    }
    if a.json {
        let out: Vec<_> = rows
            .iter()
            .map(|(partition, cseq, c, p)| {
                serde_json::json!({
                    "partition_store": partition,
                    "cseq": cseq,
                    "command_id": c.command_id,
                    "type": c.body.type_name(),
                    "lead_id": c.lead_id,
                    "tenant_id": c.tenant_id,
                    "owner_id": owner(&c.body),
                    "issued_at_ms": c.issued_at_ms,
                    "causation_event_id": c.causation_event_id,
                    "rule_id": c.rule_id,
                    "rule_version": c.rule_version,
                    "explanation": c.explanation,
                    "facts": c.facts,
                    "body": c.body,
                    "delivery": if *p { "pending" } else { "sent" },
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if rows.is_empty() {
        let what = match (&a.lead, a.pending) {
            (Some(l), true) => format!("no pending commands for lead {l}"),
            (Some(l), false) => format!("no commands for lead {l}"),
            (None, true) => "no pending commands".to_string(),
            (None, false) => "no commands in the log".to_string(),
        };
        let mut decided = 0;
        for (_, log) in logs {
            decided += log.command_counts()?.0;
        }
        eprintln!("{what} ({decided} decided in all)");
        return Ok(());
    }
    for (_, cseq, c, p) in &rows {
        println!(
            "#{cseq:<7} {}  {:<16} {:<14} {:<10} {} v{}  [{}]",
            format_ms(c.issued_at_ms),
            c.body.type_name(),
            c.lead_id,
            owner(&c.body),
            c.rule_id,
            c.rule_version,
            if *p { "pending" } else { "sent" }
        );
        println!("    {}", c.explanation);
        let facts: Vec<String> = c.facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "    id {}  caused by {}  {}",
            c.command_id,
            c.causation_event_id,
            facts.join(" ")
        );
    }
    Ok(())
}

fn owner(body: &CommandBody) -> &str {
    body.owner_id()
}
