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
    let client: BaseConsumer = client_config(k).create()?;
    client
        .fetch_metadata(None, Duration::from_millis(k.startup_timeout_ms))
        .map_err(|e| BusError::Unreachable {
            brokers: k.brokers.clone(),
            detail: format!(
                "no answer within kafka.startup_timeout_ms = {} ({e})",
                k.startup_timeout_ms
            ),
        })?;
    Ok(())
}

/// Creates the engine's topics with `kafka.partitions` partitions. Returns,
/// per topic, "created" or "exists".
pub fn create_topics(k: &KafkaConfig) -> Result<Vec<(String, &'static str)>, BusError> {
    check_reachable(k)?;
    let admin: AdminClient<DefaultClientContext> = client_config(k).create()?;
    let new: Vec<NewTopic> = topics(k)
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                k.partitions,
                TopicReplication::Fixed(k.replication_factor),
            )
        })
        .collect();
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
    let client: BaseConsumer = client_config(k).create()?;
    let timeout = Duration::from_millis(k.startup_timeout_ms);
    let mut out = Vec::new();
    for name in names {
        let md = client
            .fetch_metadata(Some(name), timeout)
            .map_err(|e| BusError::Unreachable {
                brokers: k.brokers.clone(),
                detail: e.to_string(),
            })?;
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
