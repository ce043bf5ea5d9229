//! Typed configuration, read from TOML. Every field has a default, so an
//! empty file (or none at all) is a valid configuration; unknown keys are
//! errors, so a typo cannot silently fall back to a default. Units are the
//! last part of a name (`_ms`, `_bytes`, `_events`).

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read. Check the path and permissions.
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema; the message names the key.
    #[error("invalid config {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    /// A value is outside its allowed range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub log: LogConfig,
    pub projection: ProjectionConfig,
    pub kafka: KafkaConfig,
    pub policy: PolicyConfig,
    pub api: ApiConfig,
    pub report: ReportConfig,
}

/// How reports count days. `[report]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// The IANA time zone whose calendar days the numbers are kept by
    /// (`stats --by day`, `--from`/`--to`, owner and pool days, the
    /// dashboard), DST-correct: "Asia/Shanghai", "America/New_York".
    /// Default "UTC". Env `LEADFLOW_REPORT_TIME_ZONE`; `stats --tz`
    /// answers in another one. Changing it rebuilds the projections.
    pub time_zone: String,
    /// The currency every money metric is also reported in, beside the
    /// per-currency figures ("USD"; empty: none), converted with `rates`.
    pub currency: String,
    /// Dated exchange rates into `currency`: each applies from its date
    /// (a day of `time_zone`) until the next one of the same currency.
    pub rates: Vec<RateConfig>,
}

/// One dated rate: from `from`, 1 `currency` is `rate` of the reporting
/// currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub currency: String,
    /// A date, `YYYY-MM-DD`.
    pub from: String,
    /// An exact decimal, as text: "0.1392".
    pub rate: String,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            time_zone: "UTC".into(),
            currency: String::new(),
            rates: Vec::new(),
        }
    }
}

impl ReportConfig {
    /// The reporting currency and its rates, checked; `None` without a
    /// reporting currency.
    pub fn rates(&self) -> Result<Option<crate::domain::rates::Rates>, String> {
        use crate::domain::rates::{parse_rate, DatedRate, Rates, RATES_MAX};
        if self.currency.is_empty() {
            if !self.rates.is_empty() {
                return Err("report.rates without report.currency".into());
            }
            return Ok(None);
        }
        let reporting = crate::domain::Currency::parse(&self.currency).ok_or_else(|| {
            format!(
                "report.currency {:?} is not an ISO 4217 code",
                self.currency
            )
        })?;
        if self.rates.len() > RATES_MAX {
            return Err(format!("more than {RATES_MAX} report.rates"));
        }
        let mut rates = Vec::with_capacity(self.rates.len());
        for (i, r) in self.rates.iter().enumerate() {
            let at = format!("report.rates[{i}]");
            let currency = crate::domain::Currency::parse(&r.currency)
                .ok_or_else(|| format!("{at}.currency {:?} is not an ISO 4217 code", r.currency))?;
            let date = chrono::NaiveDate::parse_from_str(&r.from, "%Y-%m-%d")
                .map_err(|_| format!("{at}.from {:?} is not a date (YYYY-MM-DD)", r.from))?;
            let from_day = i64::from(
                (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")).num_days()
                    as i32,
            );
            let (num, den) = parse_rate(&r.rate).map_err(|e| format!("{at}.rate: {e}"))?;
            rates.push(DatedRate {
                currency,
                from_day,
                num,
                den,
            });
        }
        rates.sort_by_key(|r| (r.currency, r.from_day));
        if let Some(w) = rates
            .windows(2)
            .find(|w| (w[0].currency, w[0].from_day) == (w[1].currency, w[1].from_day))
        {
            return Err(format!(
                "report.rates: two rates of {} from the same day",
                w[0].currency
            ));
        }
        Ok(Some(Rates { reporting, rates }))
    }
}

/// The HTTP server of `leadflow run`. Env `LEADFLOW_API_LISTEN`,
/// `LEADFLOW_API_ADMIN_TOKEN`, `LEADFLOW_API_READ_TOKEN` and
/// `LEADFLOW_API_ADVERTISED_URL` override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on, e.g. "0.0.0.0:8080" (port 0: any free port,
    /// printed at start-up). Empty: no HTTP server.
    pub listen: String,
    /// Bearer token required by the admin endpoints; without one they are
    /// refused.
    pub admin_token: Option<String>,
    /// Bearer token required by the read endpoints (the JSON API and the
    /// dashboard's data; not probes or metrics), if set. Env
    /// `LEADFLOW_API_READ_TOKEN` overrides.
    pub read_token: Option<String>,
    /// Bearer token required by `POST /api/v1/events` (HTTP ingest); without
    /// one, HTTP ingest is off. Env `LEADFLOW_API_INGEST_TOKEN` overrides.
    pub ingest_token: Option<String>,
    /// Largest HTTP ingest request body (then 413).
    pub ingest_body_bytes_max: usize,
    /// Most events in one HTTP ingest request (then 413).
    pub ingest_events_max: usize,
    /// `/readyz` answers 200 when the log is at most this many messages
    /// behind the topic's high watermarks.
    pub ready_lag_messages_max: u64,
    /// Most items per page of a list.
    pub page_items_max: usize,
    /// Most requests per second over all clients (then 429). Probes
    /// (`/healthz`, `/readyz`) and `/metrics` are exempt, so that a flood
    /// never fails a liveness check.
    pub requests_per_s_max: u32,
    /// A client must send a request's headers within this time (also the
    /// idle time of a kept-alive connection); then the connection closes.
    pub header_read_timeout_ms: u64,
    /// Most open connections; more are closed at once.
    pub connections_max: usize,
    /// The base URL other engines reach this one's API at (e.g.
    /// `http://leadflow-0.leadflow-headless:8080`), published with its
    /// partition claims so that any engine can forward a tenant's query to
    /// the owner of the tenant's partition. Default: the address it
    /// listens on, with the host name in place of an unspecified address
    /// (`0.0.0.0`).
    pub advertised_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: String::new(),
            admin_token: None,
            read_token: None,
            ingest_token: None,
            ingest_body_bytes_max: 16 * 1024 * 1024,
            ingest_events_max: 10_000,
            ready_lag_messages_max: 1_000,
            page_items_max: 1_000,
            requests_per_s_max: 200,
            header_read_timeout_ms: 10_000,
            connections_max: 256,
            advertised_url: None,
        }
    }
}

/// Where the policy file is. Without one the engine decides nothing and
/// only records and projects events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Path of the policy TOML (see `deploy/policy.toml`); relative paths
    /// are taken from the working directory. Env `LEADFLOW_POLICY_FILE`
    /// overrides.
    pub file: Option<std::path::PathBuf>,
    /// A second policy run in shadow mode beside the live one: its commands
    /// are stored in the log for comparison (`leadflow inspect shadow`),
    /// never published. Env `LEADFLOW_POLICY_SHADOW_FILE` overrides.
    pub shadow_file: Option<std::path::PathBuf>,
}

/// Kafka connection and topics. Environment variables override the file:
/// `LEADFLOW_KAFKA_BROKERS`, `LEADFLOW_KAFKA_GROUP_ID`,
/// `LEADFLOW_KAFKA_OWN_PARTITIONS`, `LEADFLOW_KAFKA_REPLICAS`,
/// `LEADFLOW_KAFKA_SNAPSHOTS_TOPIC` (empty: off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    pub group_id: String,
    /// Lead events in (protobuf `LeadEvent`, keyed by lead id).
    pub events_topic: String,
    /// Commands out (protobuf `LeadCommand`, keyed by lead id).
    pub commands_topic: String,
    /// Dead letters out: the original key and bytes, with headers saying why.
    pub dlq_topic: String,
    /// Partitions of each topic created by `leadflow topics create`.
    pub partitions: i32,
    pub replication_factor: i32,
    /// How long `run` waits for the broker at start-up before giving up.
    pub startup_timeout_ms: u64,
    /// An engine with no partition assigned for this long logs an error
    /// (again every as long) until it gets one; `/readyz` fails meanwhile.
    pub unassigned_warn_ms: u64,
    /// Schema Registry ids a framed message on the events topic may carry
    /// (see README, Formats); empty: any. A message framed with another id
    /// is rejected as `undecodable` and dead-lettered.
    pub schema_ids_allowed: Vec<u32>,
    /// Which partitions of the events topic this engine owns (README,
    /// Scaling out). Empty: the consumer group decides. `"0-5,8"`: these,
    /// statically. `"ordinal"`: every partition `p` with
    /// `p % kafka.replicas == ordinal`, the ordinal being `kafka.ordinal`
    /// or else the trailing number of the host name (a StatefulSet's pod
    /// `leadflow-2` is ordinal 2). Static ownership does not depend on the
    /// group protocol, which some brokers get wrong.
    pub own_partitions: String,
    /// Engines sharing the topic, for `own_partitions = "ordinal"`.
    pub replicas: u32,
    /// Claims of partition ownership (compacted; `leadflow topics
    /// create` makes it), for engines that own partitions statically.
    pub owners_topic: String,
    /// Partition stores handed over between engines (compacted; `leadflow
    /// topics create` makes it): an engine owning partitions statically
    /// publishes each store when it stops cleanly, and an engine taking a
    /// partition over with no store loads it from here before reading the
    /// events after it. Empty: off (a partition taken over is replayed
    /// from the events topic's start).
    pub snapshots_topic: String,
    /// How long an owner's claim holds without a heartbeat (one a second):
    /// a replacement for a killed engine starts after at most this long.
    pub owner_lease_ms: u64,
    /// This engine's ordinal, for `own_partitions = "ordinal"`; default:
    /// from the host name.
    pub ordinal: Option<u32>,
    /// Passed to librdkafka as is, e.g. `"security.protocol" = "SASL_SSL"`,
    /// `"sasl.mechanisms"`, `"sasl.username"`, `"ssl.ca.location"`.
    pub properties: std::collections::BTreeMap<String, String>,
    /// Passed to librdkafka for the engine's consumers only, after
    /// `properties`, e.g. `"fetch.wait.max.ms" = "10"`. Producers and the
    /// admin client do not get them (librdkafka would warn that they
    /// ignore a consumer property).
    pub consumer_properties: std::collections::BTreeMap<String, String>,
}

/// Who decides which partitions of the events topic an engine reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The consumer group (subscribe).
    Group,
    /// These partitions, whatever the group says (assign).
    Static(Vec<i32>),
}

impl KafkaConfig {
    /// The partitions this engine owns, for a topic of `partitions`;
    /// `hostname` gives the ordinal when `kafka.ordinal` does not.
    pub fn ownership(&self, partitions: i32, hostname: &str) -> Result<Ownership, ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let spec = self.own_partitions.trim();
        if spec.is_empty() {
            return Ok(Ownership::Group);
        }
        let owned: Vec<i32> = if spec == "ordinal" {
            if self.replicas == 0 {
                return bad("kafka.own_partitions = \"ordinal\" needs kafka.replicas (the number of engines)".into());
            }
            let ordinal = match self.ordinal {
                Some(o) => o,
                None => match ordinal_of_host(hostname) {
                    Some(o) => o,
                    None => {
                        return bad(format!(
                            "kafka.own_partitions = \"ordinal\": the host name {hostname:?} ends in no number; set kafka.ordinal"
                        ))
                    }
                },
            };
            if ordinal >= self.replicas {
                return bad(format!(
                    "ordinal {ordinal} is not below kafka.replicas = {}",
                    self.replicas
                ));
            }
            (0..partitions)
                .filter(|p| *p as u32 % self.replicas == ordinal)
                .collect()
        } else {
            let mut owned = parse_partitions(spec).map_err(ConfigError::Invalid)?;
            owned.sort_unstable();
            owned.dedup();
            owned
        };
        if let Some(p) = owned.iter().find(|p| **p >= partitions) {
            return bad(format!(
                "kafka.own_partitions names partition {p}, but the events topic has {partitions} (0-{})",
                partitions - 1
            ));
        }
        if owned.is_empty() {
            return bad(format!(
                "kafka.own_partitions leaves this engine no partition of {partitions}"
            ));
        }
        Ok(Ownership::Static(owned))
    }
}

/// "0-5,8" → [0, 1, 2, 3, 4, 5, 8].
fn parse_partitions(spec: &str) -> Result<Vec<i32>, String> {
    let bad = || {
        format!("kafka.own_partitions = {spec:?}: expected partitions and ranges like \"0-5,8\", or \"ordinal\"")
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: i32 = lo.parse().map_err(|_| bad())?;
        let hi: i32 = hi.parse().map_err(|_| bad())?;
        if lo < 0 || hi < lo || hi - lo >= PARTITIONS_MAX {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// The most partitions `kafka.own_partitions` may name in one range.
const PARTITIONS_MAX: i32 = 100_000;

/// The trailing number of a host name: `leadflow-2` → 2.
fn ordinal_of_host(hostname: &str) -> Option<u32> {
    let digits = hostname.len()
        - hostname
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .len();
    hostname[hostname.len() - digits..].parse().ok()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "leadflow".into(),
            events_topic: "leadflow.lead-events".into(),
            commands_topic: "leadflow.lead-commands".into(),
            dlq_topic: "leadflow.lead-events.dlq".into(),
            partitions: 4,
            replication_factor: 1,
            startup_timeout_ms: 10_000,
            unassigned_warn_ms: 30_000,
            schema_ids_allowed: Vec::new(),
            own_partitions: String::new(),
            replicas: 0,
            owners_topic: "leadflow.owners".into(),
            snapshots_topic: "leadflow.snapshots".into(),
            owner_lease_ms: 10_000,
            ordinal: None,
            properties: Default::default(),
            consumer_properties: Default::default(),
        }
    }
}

/// The default free-space floor of the log (`log.disk_free_bytes_min`).
pub const DISK_FREE_BYTES_MIN_DEFAULT: u64 = 64 * 1024 * 1024;
/// The lowest floor accepted: sled grows its file 512 KiB at a time.
pub const DISK_FREE_BYTES_MIN_LOWEST: u64 = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Most events in one appended batch (one flush per batch).
    pub batch_events_max: usize,
    /// Longest time a batch stays open waiting for more events. The Kafka
    /// intake appends it sooner when nothing more is buffered.
    pub batch_wait_ms_max: u64,
    /// sled's page cache size.
    pub cache_capacity_bytes: u64,
    /// Largest record (a JSONL line, a protobuf record, a Kafka message)
    /// accepted; a larger one is rejected as `record_too_large`, keeping a
    /// 4 KiB prefix, and read past without being held in memory.
    pub record_bytes_max: usize,
    /// How far an event may be stamped before its lead's latest accepted
    /// event and still be applied; an earlier one is `out_of_order`. See
    /// `domain::lifecycle::Rules` and README, Guarantees.
    pub out_of_order_tolerance_ms: i64,
    /// Free space every write to the log leaves on the data dir's
    /// filesystem (plus about twice the write's own size); a write that
    /// would not is refused with "disk full" before anything of it is
    /// stored, and the command stops. sled is not trusted at a full disk
    /// (README, Guarantees), so this floor is what keeps the log whole.
    pub disk_free_bytes_min: u64,
    /// How each appended batch of events is stored: `zstd` (default) or
    /// `none`. Either reads both: a data dir may hold batches of each.
    pub compression: Compression,
    /// zstd's level, 1..=19 (default 1: as small as 3 here, and fastest).
    pub compression_level: i32,
}

/// How the log stores a batch of events (`log.compression`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As encoded.
    None,
    /// One zstd frame per batch.
    #[default]
    Zstd,
}

/// The default zstd level of the log (`log.compression_level`).
pub const COMPRESSION_LEVEL_DEFAULT: i32 = 1;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            batch_events_max: 2_000,
            batch_wait_ms_max: 20,
            cache_capacity_bytes: 256 * 1024 * 1024,
            record_bytes_max: crate::codec::stream::RECORD_BYTES_MAX_DEFAULT,
            out_of_order_tolerance_ms: crate::domain::lifecycle::OUT_OF_ORDER_TOLERANCE_MS_DEFAULT,
            disk_free_bytes_min: DISK_FREE_BYTES_MIN_DEFAULT,
            compression: Compression::default(),
            compression_level: COMPRESSION_LEVEL_DEFAULT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionConfig {
    /// A first follow-up within this time after assignment meets the SLA.
    pub follow_up_sla_ms: i64,
    /// A recall succeeds when the lead is reassigned and followed up by the
    /// new owner within this time after the recall.
    pub recall_success_window_ms: i64,
    /// A projection snapshot is written after at least this many new events.
    pub snapshot_every_events: u64,
    /// The report time zone (`report.time_zone`, set by `Config::load`),
    /// carried here because the fold keeps the numbers by its days.
    #[serde(skip)]
    pub time_zone: String,
    /// The reporting currency and its dated rates (`report.currency`,
    /// `report.rates`, set by `Config::load`): the fold converts each
    /// amount on the day it happened.
    #[serde(skip)]
    pub rates: Option<crate::domain::rates::Rates>,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            follow_up_sla_ms: 24 * 3_600_000,
            recall_success_window_ms: 7 * 24 * 3_600_000,
            snapshot_every_events: 200_000,
            time_zone: "UTC".into(),
            rates: None,
        }
    }
}

impl Config {
    /// Loads a config file, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: p.display().to_string(),
                    source,
                })?
            }
        };
        let mut config = config;
        if let Ok(b) = std::env::var("LEADFLOW_KAFKA_BROKERS") {
            config.kafka.brokers = b;
        }
        if let Ok(g) = std::env::var("LEADFLOW_KAFKA_GROUP_ID") {
            config.kafka.group_id = g;
        }
        if let Ok(o) = std::env::var("LEADFLOW_KAFKA_OWN_PARTITIONS") {
            config.kafka.own_partitions = o;
        }
        if let Ok(t) = std::env::var("LEADFLOW_KAFKA_SNAPSHOTS_TOPIC") {
            config.kafka.snapshots_topic = t;
        }
        if let Ok(r) = std::env::var("LEADFLOW_KAFKA_REPLICAS") {
            config.kafka.replicas = r.parse().map_err(|_| {
                ConfigError::Invalid(format!("LEADFLOW_KAFKA_REPLICAS = {r:?} is not a number"))
            })?;
        }
        if let Ok(f) = std::env::var("LEADFLOW_POLICY_FILE") {
            config.policy.file = Some(f.into());
        }
        if let Ok(l) = std::env::var("LEADFLOW_API_LISTEN") {
            config.api.listen = l;
        }
        if let Ok(t) = std::env::var("LEADFLOW_API_ADMIN_TOKEN") {
            config.api.admin_token = Some(t);
        }
        if let Ok(t) = std::env::var("LEADFLOW_API_READ_TOKEN") {
            config.api.read_token = Some(t);
        }
        if let Ok(t) = std::env::var("LEADFLOW_API_INGEST_TOKEN") {
            config.api.ingest_token = Some(t);
        }
        if let Ok(u) = std::env::var("LEADFLOW_API_ADVERTISED_URL") {
            config.api.advertised_url = Some(u);
        }
        if let Ok(f) = std::env::var("LEADFLOW_POLICY_SHADOW_FILE") {
            config.policy.shadow_file = Some(f.into());
        }
        if let Ok(z) = std::env::var("LEADFLOW_REPORT_TIME_ZONE") {
            config.report.time_zone = z;
        }
        config.projection.time_zone = config.report.time_zone.clone();
        config.projection.rates = config.report.rates().map_err(ConfigError::Invalid)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        crate::domain::time::DayClock::new(&self.report.time_zone)
            .map_err(|e| ConfigError::Invalid(format!("report.time_zone: {e}")))?;
        let own = self.kafka.own_partitions.trim();
        if !own.is_empty() && own != "ordinal" {
            parse_partitions(own).map_err(ConfigError::Invalid)?;
        }
        if !(1..=100_000).contains(&self.log.batch_events_max) {
            return bad("log.batch_events_max must be in 1..=100000");
        }
        if self.log.batch_wait_ms_max > 60_000 {
            return bad("log.batch_wait_ms_max must be at most 60000");
        }
        if self.log.disk_free_bytes_min < DISK_FREE_BYTES_MIN_LOWEST {
            return bad("log.disk_free_bytes_min must be at least 1048576 (1 MiB): below that, sled itself meets the full disk");
        }
        if !(1..=19).contains(&self.log.compression_level) {
            return bad("log.compression_level must be in 1..=19 (zstd's levels)");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.log.record_bytes_max) {
            return bad("log.record_bytes_max must be in 1024..=67108864 (1 KiB to 64 MiB)");
        }
        if !(0..=crate::domain::lifecycle::OUT_OF_ORDER_TOLERANCE_MS_MAX)
            .contains(&self.log.out_of_order_tolerance_ms)
        {
            return bad("log.out_of_order_tolerance_ms must be in 0..=86400000 (up to one day)");
        }
        if self.log.cache_capacity_bytes < 1024 * 1024 {
            return bad("log.cache_capacity_bytes must be at least 1 MiB");
        }
        if self.projection.follow_up_sla_ms <= 0 {
            return bad("projection.follow_up_sla_ms must be positive");
        }
        if self.projection.recall_success_window_ms <= 0 {
            return bad("projection.recall_success_window_ms must be positive");
        }
        if self.projection.snapshot_every_events == 0 {
            return bad("projection.snapshot_every_events must be positive");
        }
        if !(100..=600_000).contains(&self.api.header_read_timeout_ms) {
            return bad("api.header_read_timeout_ms must be in 100..=600000");
        }
        if !(1..=100_000).contains(&self.api.connections_max) {
            return bad("api.connections_max must be in 1..=100000");
        }
        if self.kafka.brokers.trim().is_empty() {
            return bad("kafka.brokers must name at least one broker");
        }
        if !(100..=3_600_000).contains(&self.kafka.unassigned_warn_ms) {
            return bad("kafka.unassigned_warn_ms must be in 100..=3600000");
        }
        if !(1..=10_000).contains(&self.kafka.partitions) {
            return bad("kafka.partitions must be in 1..=10000");
        }
        Ok(())
    }
}

/// Reads, parses and validates a policy file.
pub fn load_policy(path: &Path) -> Result<crate::policy::PolicyFile, crate::policy::PolicyError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| crate::policy::PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
    crate::policy::PolicyFile::parse_named(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests;
