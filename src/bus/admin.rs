//! Topic creation and the start-up checks that turn a missing topic or an
//! unreachable broker into a clear error instead of a silent hang.

use super::{client_config, BusError};
use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// The topics the engine needs: events, commands, dead letters.
pub fn topics(k: &KafkaConfig) -> [&str; 3] {
    [&k.events_topic, &k.commands_topic, &k.dlq_topic]
}

/// Checks that a broker answers within `kafka.startup_timeout_ms`: the
/// commands that talk to Kafka call it first, so that a dead broker is one
/// clear error after a bounded wait, never a hang.
pub fn check_reachable(k: &KafkaConfig) -> Result<(), BusError> {
    fetch_metadata(k, &startup_client(k)?, None).map(|_| ())
}

/// One client for the start-up checks: on a secured cluster each client
/// makes its own TLS and SASL handshake, so all the checks share it.
fn startup_client(k: &KafkaConfig) -> Result<BaseConsumer<StartupContext>, BusError> {
    Ok(client_config(k).create_with_context(StartupContext::default())?)
}

/// How often the start-up check looks at what librdkafka reported while it
/// waits for metadata: a rejected password or certificate ends the wait at
/// once instead of after the whole `kafka.startup_timeout_ms`.
const STARTUP_POLL_MS: u64 = 200;

/// Records the first error librdkafka reports that retrying cannot cure:
/// authentication (SASL) and TLS failures. Everything else (a broker not up
/// yet, a refused connection) is left to the timeout, because it may heal.
#[derive(Default)]
struct StartupContext {
    fatal: std::sync::Mutex<Option<BusError>>,
}

impl rdkafka::ClientContext for StartupContext {
    /// librdkafka's own log lines during the check go to debug: a failure
    /// is reported once, as the check's error, not as a stream of
    /// reconnect attempts before it.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, "librdkafka: {log_message}");
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        let found = match code {
            Some(RDKafkaErrorCode::Authentication)
            | Some(RDKafkaErrorCode::SaslAuthenticationFailed) => Some(BusError::Authentication {
                detail: reason.to_string(),
            }),
            Some(RDKafkaErrorCode::SSL) => Some(BusError::Tls {
                detail: reason.to_string(),
            }),
            _ => None,
        };
        tracing::debug!(?code, reason, "librdkafka error during start-up");
        if let Some(found) = found {
            let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
            fatal.get_or_insert(found);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for StartupContext {}

/// Fetches metadata (of one topic, or of the cluster) within
/// `kafka.startup_timeout_ms`, failing at once on a credentials or
/// certificate error.
fn fetch_metadata(
    k: &KafkaConfig,
    client: &BaseConsumer<StartupContext>,
    topic: Option<&str>,
) -> Result<rdkafka::metadata::Metadata, BusError> {
    let deadline = std::time::Instant::now() + Duration::from_millis(k.startup_timeout_ms);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let slice = left.min(Duration::from_millis(STARTUP_POLL_MS));
        let result = client.fetch_metadata(topic, slice);
        // Serves librdkafka's error events to the context (no message can
        // arrive: nothing is assigned to this consumer).
        let _ = client.poll(Duration::ZERO);
        if let Some(fatal) = client
            .context()
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(fatal);
        }
        match result {
            Ok(md) => return Ok(md),
            Err(e) if left <= slice => {
                return Err(BusError::Unreachable {
                    brokers: k.brokers.clone(),
                    detail: format!(
                        "no answer within kafka.startup_timeout_ms = {} ({e})",
                        k.startup_timeout_ms
                    ),
                })
            }
            Err(_) => continue,
        }
    }
}

/// Creates the engine's topics with `kafka.partitions` partitions, and the
/// owners topic (one partition, compacted). Returns, per topic, "created"
/// or "exists".
pub fn create_topics(k: &KafkaConfig) -> Result<Vec<(String, &'static str)>, BusError> {
    check_reachable(k)?;
    let admin: AdminClient<DefaultClientContext> = client_config(k).create()?;
    let mut new: Vec<NewTopic> = topics(k)
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                k.partitions,
                TopicReplication::Fixed(k.replication_factor),
            )
        })
        .collect();
    // One record per partition claim, the latest kept (`owners`).
    new.push(
        NewTopic::new(
            &k.owners_topic,
            1,
            TopicReplication::Fixed(k.replication_factor),
        )
        .set("cleanup.policy", "compact"),
    );
    // The latest snapshot of each partition store (`snapshots`): the
    // manifests in partition 0, the chunks in partition 1.
    if !k.snapshots_topic.is_empty() {
        new.push(
            NewTopic::new(
                &k.snapshots_topic,
                2,
                TopicReplication::Fixed(k.replication_factor),
            )
            .set("cleanup.policy", "compact")
            .set("max.message.bytes", "2097152"),
        );
    }
    let timeout = Duration::from_millis(k.startup_timeout_ms);
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = futures::executor::block_on(admin.create_topics(&new, &options))?;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(t) => out.push((t, "created")),
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => out.push((t, "exists")),
            Err((t, code)) => {
                tracing::error!(topic = %t, ?code, "topic creation failed");
                return Err(BusError::Kafka(rdkafka::error::KafkaError::AdminOp(code)));
            }
        }
    }
    Ok(out)
}

/// Checks that a broker answers and that each topic exists; returns the
/// partition count of each.
pub fn check_topics(k: &KafkaConfig, names: &[&str]) -> Result<Vec<usize>, BusError> {
    let client = startup_client(k)?;
    let mut out = Vec::new();
    for name in names {
        let md = fetch_metadata(k, &client, Some(name))?;
        let topic = md.topics().iter().find(|t| t.name() == *name);
        match topic {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                out.push(t.partitions().len())
            }
            _ => return Err(BusError::MissingTopic(name.to_string())),
        }
    }
    Ok(out)
}
