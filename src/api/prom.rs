//! Prometheus text exposition of the engine's telemetry. Labels are bounded
//! sets only (event type, rejection reason, partition, pool, state); never a
//! lead or owner id.

use crate::bus::ingest::{Histogram, Telemetry};
use std::fmt::Write;

fn counter(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, n) in h.bounds.iter().zip(&h.counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

pub fn render(t: &Telemetry) -> String {
    let mut out = String::new();
    counter(
        &mut out,
        "leadflow_events_accepted_total",
        "Events appended to the log, by type (this run).",
    );
    for (kind, n) in &t.stats.accepted_by_type {
        let _ = writeln!(out, "leadflow_events_accepted_total{{type=\"{kind}\"}} {n}");
    }
    for (name, help, n) in [
        (
            "leadflow_assignments_declined_total",
            "AssignLead commands the CRM declined (policy state: the whole log).",
            t.assignments_declined,
        ),
        (
            "leadflow_assignments_expired_total",
            "AssignLead commands not carried out within assign_command_ttl_ms (the whole log).",
            t.assignments_expired,
        ),
        (
            "leadflow_declines_unmatched_total",
            "Declines of a command that was not a pending assignment (a recall, a reminder, one already settled).",
            t.declines_unmatched,
        ),
    ] {
        counter(&mut out, name, help);
        let _ = writeln!(out, "{name} {n}");
    }
    counter(
        &mut out,
        "leadflow_messages_decoded_total",
        "Messages of the events topic decoded, by the format they came in (this run).",
    );
    for (format, n) in &t.stats.decoded_by_format {
        let _ = writeln!(
            out,
            "leadflow_messages_decoded_total{{format=\"{format}\"}} {n}"
        );
    }
    counter(
        &mut out,
        "leadflow_events_rejected_total",
        "Rejected inputs in the log, by reason.",
    );
    for (reason, n) in &t.rejected_by_reason {
        let _ = writeln!(
            out,
            "leadflow_events_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }
    counter(
        &mut out,
        "leadflow_messages_consumed_total",
        "Messages consumed from the events topic (this run).",
    );
    let _ = writeln!(out, "leadflow_messages_consumed_total {}", t.stats.consumed);
    gauge(
        &mut out,
        "leadflow_consumer_lag_messages",
        "Messages behind the partition's high watermark.",
    );
    for (p, lag) in &t.lag {
        let _ = writeln!(
            out,
            "leadflow_consumer_lag_messages{{partition=\"{p}\"}} {lag}"
        );
    }
    histogram(
        &mut out,
        "leadflow_batch_size_inputs",
        "Inputs per appended batch.",
        &t.batch_sizes,
    );
    histogram(
        &mut out,
        "leadflow_append_seconds",
        "Time to validate, fold and durably append one batch.",
        &t.append_seconds,
    );
    counter(
        &mut out,
        "leadflow_commands_decided_total",
        "Commands decided by the policy (this run).",
    );
    let _ = writeln!(
        out,
        "leadflow_commands_decided_total {}",
        t.stats.commands_decided
    );
    counter(
        &mut out,
        "leadflow_commands_sent_total",
        "Commands acknowledged by the broker (this run).",
    );
    let _ = writeln!(
        out,
        "leadflow_commands_sent_total {}",
        t.stats.commands_sent
    );
    gauge(
        &mut out,
        "leadflow_outbox_pending_commands",
        "Commands in the outbox not yet acknowledged.",
    );
    let _ = writeln!(
        out,
        "leadflow_outbox_pending_commands {}",
        t.commands_pending
    );
    counter(
        &mut out,
        "leadflow_dead_letters_sent_total",
        "Dead letters acknowledged (this run).",
    );
    let _ = writeln!(
        out,
        "leadflow_dead_letters_sent_total {}",
        t.stats.dead_letters_sent
    );
    gauge(
        &mut out,
        "leadflow_dead_letters_pending",
        "Dead letters not yet acknowledged.",
    );
    let _ = writeln!(
        out,
        "leadflow_dead_letters_pending {}",
        t.dead_letters_pending
    );
    gauge(
        &mut out,
        "leadflow_projection_sequence",
        "Log sequence the projections cover.",
    );
    let _ = writeln!(out, "leadflow_projection_sequence {}", t.projection_seq);
    gauge(&mut out, "leadflow_pool_leads", "Leads per pool and state.");
    for (pool, size) in &t.pool_sizes {
        for (state, n) in [
            ("waiting", size.waiting),
            ("held", size.held),
            ("converted", size.converted),
        ] {
            let _ = writeln!(
                out,
                "leadflow_pool_leads{{pool=\"{pool}\",state=\"{state}\"}} {n}"
            );
        }
    }
    out
}
