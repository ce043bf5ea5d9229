//! The engine's Prometheus metrics, on `prometheus-client`: updated by the
//! engine as it works (counters and histograms as things happen; gauges of
//! the log after each write; pool, backlog and policy gauges once a second
//! by the intake's loop), and encoded by a scrape **without the engine's
//! state lock and without reading the log**. Labels are bounded sets only
//! (event type, rejection reason, recall reason, format, partition, pool,
//! state); never a lead or rep id.

use super::IntakeStatus;
use crate::domain::{CommandBody, LeadCommand};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// One label.
type Label = [(&'static str, String); 1];
/// Two labels.
type Labels2 = [(&'static str, String); 2];

/// Bucket bounds of the batch-size histogram (inputs per batch).
pub const BATCH_SIZE_BOUNDS: [f64; 8] = [1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0];
/// Bucket bounds of the append-time histogram (seconds).
pub const APPEND_SECONDS_BOUNDS: [f64; 9] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Bucket bounds of the event-to-command histogram (seconds).
pub const EVENT_TO_COMMAND_SECONDS_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric the engine exposes.
pub struct Metrics {
    registry: Registry,
    pub events_accepted: Family<Label, Counter>,
    pub events_rejected: Family<Label, Counter>,
    pub messages_decoded: Family<Label, Counter>,
    pub messages_consumed: Counter,
    pub consumer_lag: Family<Label, Gauge>,
    pub batch_size: Histogram,
    pub append_seconds: Histogram,
    pub event_to_command_seconds: Histogram,
    pub consumed_to_command_seconds: Histogram,
    pub commands_decided: Counter,
    pub commands_sent: Counter,
    pub outbox_pending: Gauge,
    pub dead_letters_sent: Counter,
    pub dead_letters_pending: Gauge,
    pub projection_sequence: Gauge,
    pub pool_leads: Family<Labels2, Gauge>,
    pub backlog_leads: Family<Label, Gauge>,
    pub recalls: Family<Label, Counter>,
    pub sla_breaches: Counter,
    pub assignments_declined: Counter,
    pub assignments_expired: Counter,
    pub declines_unmatched: Counter,
    pub assigned_partitions: Gauge,
    process: Process,
    /// Where the Kafka intake stands, for `/readyz` (its own small lock,
    /// never the engine's).
    intake: Mutex<IntakeStatus>,
}

/// The process's own figures, read from `/proc` at each scrape.
#[derive(Default)]
struct Process {
    cpu_seconds: Counter<f64, AtomicU64>,
    resident_memory_bytes: Gauge,
    virtual_memory_bytes: Gauge,
    open_fds: Gauge,
    threads: Gauge,
    start_time_seconds: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            events_accepted: Family::default(),
            events_rejected: Family::default(),
            messages_decoded: Family::default(),
            messages_consumed: Counter::default(),
            consumer_lag: Family::default(),
            batch_size: Histogram::new(BATCH_SIZE_BOUNDS),
            append_seconds: Histogram::new(APPEND_SECONDS_BOUNDS),
            event_to_command_seconds: Histogram::new(EVENT_TO_COMMAND_SECONDS_BOUNDS),
            consumed_to_command_seconds: Histogram::new(EVENT_TO_COMMAND_SECONDS_BOUNDS),
            commands_decided: Counter::default(),
            commands_sent: Counter::default(),
            outbox_pending: Gauge::default(),
            dead_letters_sent: Counter::default(),
            dead_letters_pending: Gauge::default(),
            projection_sequence: Gauge::default(),
            pool_leads: Family::default(),
            backlog_leads: Family::default(),
            recalls: Family::default(),
            sla_breaches: Counter::default(),
            assignments_declined: Counter::default(),
            assignments_expired: Counter::default(),
            declines_unmatched: Counter::default(),
            assigned_partitions: Gauge::default(),
            process: Process::default(),
            intake: Mutex::new(IntakeStatus::default()),
        };
        let r = &mut m.registry;
        let build_info: Family<Label, Gauge> = Family::default();
        build_info
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        r.register(
            "leadflow_build_info",
            "The running build (value 1)",
            build_info,
        );
        r.register(
            "leadflow_events_accepted",
            "Events appended to the log, by type (this run)",
            m.events_accepted.clone(),
        );
        r.register(
            "leadflow_events_rejected",
            "Rejected inputs in the log, by reason (the whole log)",
            m.events_rejected.clone(),
        );
        r.register(
            "leadflow_messages_decoded",
            "Messages of the events topic decoded, by the format they came in (this run)",
            m.messages_decoded.clone(),
        );
        r.register(
            "leadflow_messages_consumed",
            "Messages consumed from the events topic (this run)",
            m.messages_consumed.clone(),
        );
        r.register(
            "leadflow_consumer_lag_messages",
            "Messages behind the partition's high watermark",
            m.consumer_lag.clone(),
        );
        r.register(
            "leadflow_batch_size_inputs",
            "Inputs per appended batch",
            m.batch_size.clone(),
        );
        r.register(
            "leadflow_append_seconds",
            "Time to validate, fold and durably append one batch",
            m.append_seconds.clone(),
        );
        r.register(
            "leadflow_event_to_command_seconds",
            "From a consumed event's publish (its Kafka timestamp) to the broker's ack of a command it caused",
            m.event_to_command_seconds.clone(),
        );
        r.register(
            "leadflow_consumed_to_command_seconds",
            "The engine's share of it: from the event's consumption to the broker's ack of a command it caused",
            m.consumed_to_command_seconds.clone(),
        );
        r.register(
            "leadflow_commands_decided",
            "Commands decided by the policy (this run)",
            m.commands_decided.clone(),
        );
        r.register(
            "leadflow_commands_sent",
            "Commands acknowledged by the broker (this run)",
            m.commands_sent.clone(),
        );
        r.register(
            "leadflow_outbox_pending_commands",
            "Commands in the outbox not yet acknowledged",
            m.outbox_pending.clone(),
        );
        r.register(
            "leadflow_dead_letters_sent",
            "Dead letters acknowledged (this run)",
            m.dead_letters_sent.clone(),
        );
        r.register(
            "leadflow_dead_letters_pending",
            "Dead letters not yet acknowledged",
            m.dead_letters_pending.clone(),
        );
        r.register(
            "leadflow_projection_sequence",
            "Log sequence the projections cover",
            m.projection_sequence.clone(),
        );
        r.register(
            "leadflow_pool_leads",
            "Leads per pool and state (refreshed every second)",
            m.pool_leads.clone(),
        );
        r.register(
            "leadflow_backlog_leads",
            "Leads waiting in a pool's backlog for a rep with room (refreshed every second)",
            m.backlog_leads.clone(),
        );
        r.register(
            "leadflow_recalls",
            "RecallLead commands decided, by reason (this run)",
            m.recalls.clone(),
        );
        r.register(
            "leadflow_sla_breaches",
            "Recalls for a missed first-follow-up SLA (this run)",
            m.sla_breaches.clone(),
        );
        r.register(
            "leadflow_assignments_declined",
            "AssignLead commands the CRM declined (the whole log)",
            m.assignments_declined.clone(),
        );
        r.register(
            "leadflow_assignments_expired",
            "AssignLead commands not carried out within assign_command_ttl_ms (the whole log)",
            m.assignments_expired.clone(),
        );
        r.register(
            "leadflow_declines_unmatched",
            "Declines of a command that was not a pending assignment (the whole log)",
            m.declines_unmatched.clone(),
        );
        r.register(
            "leadflow_assigned_partitions",
            "Partitions of the events topic assigned to this engine",
            m.assigned_partitions.clone(),
        );
        let p = &m.process;
        r.register(
            "process_cpu_seconds",
            "User and system CPU time",
            p.cpu_seconds.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory",
            p.resident_memory_bytes.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory",
            p.virtual_memory_bytes.clone(),
        );
        r.register(
            "process_open_fds",
            "Open file descriptors",
            p.open_fds.clone(),
        );
        r.register("process_threads", "OS threads", p.threads.clone());
        r.register(
            "process_start_time_seconds",
            "Start time since the Unix epoch",
            p.start_time_seconds.clone(),
        );
        m
    }

    /// The text exposition (OpenMetrics), read without any engine lock.
    pub fn encode(&self) -> String {
        self.process.refresh();
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The content type of [`encode`](Self::encode)'s output.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Counts commands as decided (recalls by reason, SLA breaches).
    pub fn decided<'a>(&self, commands: impl IntoIterator<Item = &'a LeadCommand>) {
        for c in commands {
            self.commands_decided.inc();
            if let CommandBody::RecallLead { reason, .. } = &c.body {
                self.recalls
                    .get_or_create(&[("reason", reason.as_str().to_string())])
                    .inc();
                if c.rule_id == crate::policy::RULE_FIRST_FOLLOW_UP {
                    self.sla_breaches.inc();
                }
            }
        }
    }

    /// The messages decoded so far this run, by format (synced once per
    /// batch rather than counted per message).
    pub fn decoded_totals(&self, totals: &std::collections::BTreeMap<&'static str, u64>) {
        for (format, n) in totals {
            Metrics::catch_up(
                &self
                    .messages_decoded
                    .get_or_create(&[("format", format.to_string())]),
                *n,
            );
        }
    }

    /// Moves a counter kept as a total elsewhere (the policy state's, the
    /// log's) up to `total`.
    pub fn catch_up(counter: &Counter, total: u64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// The intake's status as it last reported it.
    pub fn intake(&self) -> IntakeStatus {
        super::lock(&self.intake).clone()
    }

    /// The intake reports where it stands.
    pub fn set_intake(&self, status: IntakeStatus) {
        self.assigned_partitions
            .set(status.assigned_partitions as i64);
        for (p, lag) in &status.lag {
            self.consumer_lag
                .get_or_create(&[("partition", p.to_string())])
                .set(*lag);
        }
        *super::lock(&self.intake) = status;
    }
}

/// This process's resident memory (`VmRSS` of `/proc/self/status`), or
/// `None` where there is no `/proc`: for benches that measure what a
/// structure costs in memory.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field(&status, "VmRSS:").map(|kib| kib.unsigned_abs() * 1024)
}

/// A number field of `/proc/self/status` (`VmRSS:`, `Threads:`, …).
fn status_field(status: &str, name: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// USER_HZ, the unit of the CPU times in `/proc/<pid>/stat`: fixed at 100
/// in Linux's user-space ABI.
const TICKS_PER_S: f64 = 100.0;

impl Process {
    /// Reads the figures from `/proc` (Linux); elsewhere they stay 0.
    fn refresh(&self) {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kib = |name: &str| status_field(&status, name);
            if let Some(v) = kib("VmRSS:") {
                self.resident_memory_bytes.set(v * 1024);
            }
            if let Some(v) = kib("VmSize:") {
                self.virtual_memory_bytes.set(v * 1024);
            }
            if let Some(v) = kib("Threads:") {
                self.threads.set(v);
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // The fields after the command name, which is in parentheses
            // and may hold spaces: utime is the 14th field, stime the
            // 15th, starttime the 22nd (1-based, counting pid as 1).
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
                if let (Some(u), Some(s)) = (field(14), field(15)) {
                    let total = (u + s) / TICKS_PER_S;
                    let now = self.cpu_seconds.get();
                    if total > now {
                        self.cpu_seconds.inc_by(total - now);
                    }
                }
                if let (Some(start), Some(boot)) = (field(22), boot_time_s()) {
                    self.start_time_seconds
                        .set((boot + start / TICKS_PER_S) as i64);
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as i64);
        }
    }
}

/// The machine's boot time (`btime` in `/proc/stat`), in Unix seconds.
fn boot_time_s() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_what_dashboards_and_alerts_query() {
        let m = Metrics::new();
        m.events_accepted
            .get_or_create(&[("type", "created".into())])
            .inc_by(4);
        m.batch_size.observe(3.0);
        m.set_intake(IntakeStatus {
            lag: [(0, 5)].into(),
            assigned_partitions: 1,
            unassigned_ms: 0,
        });
        let text = m.encode();
        for needle in [
            "leadflow_build_info{version=\"",
            "leadflow_events_accepted_total{type=\"created\"} 4",
            "leadflow_batch_size_inputs_bucket{le=\"+Inf\"} 1",
            "leadflow_consumer_lag_messages{partition=\"0\"} 5",
            "leadflow_assigned_partitions 1",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        let rss: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(rss > 1 << 20, "a test process holds more than 1 MiB: {rss}");
    }
}
