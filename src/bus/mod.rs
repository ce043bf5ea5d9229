//! Kafka in and out (rdkafka). The only module that talks to a broker.
//!
//! - [`admin`]: topic creation and start-up checks.
//! - [`publish`]: event files onto the events topic (`leadflow publish`).
//! - [`ingest`]: the consumer side of `leadflow run`: partitions in order,
//!   batches appended to the log together with the partition offsets, dead
//!   letters published from the log's outbox.
//! - [`tail`]: reading a topic back for humans (`leadflow tail`).
//!
//! Any librdkafka property can be passed through `[kafka.properties]`.

pub mod acks;
pub mod admin;
pub mod ceiling;
pub mod dead_letter;
pub mod ingest;
pub mod mock;
pub mod outbox;
pub mod owners;
pub mod publish;
pub mod reader;
pub mod restore;
pub mod snapshots;
pub mod tail;
pub mod world;

use crate::config::KafkaConfig;
use rdkafka::ClientConfig;

/// Errors of the Kafka layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// librdkafka reported an error. Usually transient (the client retries);
    /// when it reaches here it was not, so check the broker and the config.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// No broker answered within `kafka.startup_timeout_ms`. Check
    /// `kafka.brokers` and that the broker is up.
    #[error("no Kafka broker reachable at {brokers}: {detail}")]
    Unreachable { brokers: String, detail: String },
    /// The broker refused the credentials (SASL). Check `sasl.mechanisms`,
    /// `sasl.username` and `sasl.password` in `[kafka.properties]`; retrying
    /// with the same ones cannot succeed.
    #[error("Kafka authentication failed (check sasl.mechanisms, sasl.username, sasl.password in [kafka.properties]): {detail}")]
    Authentication { detail: String },
    /// The TLS handshake failed: the broker's certificate is not trusted by
    /// `ssl.ca.location` (or does not name the broker's host), or the broker
    /// refused ours. Retrying with the same settings cannot succeed.
    #[error("TLS with the Kafka broker failed (check ssl.ca.location and the broker's certificate; security.protocol must be SSL or SASL_SSL): {detail}")]
    Tls { detail: String },
    /// The commands topic holds more commands of the partitions being
    /// restored than a restore keeps in memory. Shorten the commands
    /// topic's retention, or split the partitions over more engines.
    #[error("restoring would keep more than {ids_max} published command ids in memory")]
    RestoreTooLarge { ids_max: usize },
    /// Another engine kept a live claim on a partition this one is to own
    /// (`kafka.owners_topic`) for twice `kafka.owner_lease_ms`: two engines
    /// were given the same partition. Fix `kafka.own_partitions` (or
    /// `kafka.replicas`), or stop the other engine.
    #[error("partition {partition} is owned by engine {engine}, which kept its claim alive for {waited_ms} ms: two engines were given the same partition; stop the other one or fix kafka.own_partitions")]
    Owned {
        partition: i32,
        engine: String,
        waited_ms: u64,
    },
    /// A newer owner claimed one of this engine's partitions: this engine
    /// stops before publishing another command (fencing). Two engines were
    /// given the same partition, or this one lost its lease (it was
    /// paused longer than `kafka.owner_lease_ms`).
    #[error("fenced: engine {engine} took partition {partition} at epoch {epoch} (ours was {ours}); stopping before publishing another command")]
    Fenced {
        partition: i32,
        engine: String,
        epoch: u64,
        ours: u64,
    },
    /// `kafka.own_partitions` does not fit the events topic (a partition
    /// beyond its count, an ordinal without replicas). Fix the config.
    #[error("partition ownership: {0}")]
    Ownership(String),
    /// A partition's published snapshot could not be read whole (chunks
    /// missing or out of order). The partition is restored from the
    /// events topic instead; the message says which snapshot.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A topic the engine needs does not exist. Create it with
    /// `leadflow topics create` (or your own tooling).
    #[error("topic {0} does not exist: create it with `leadflow topics create`")]
    MissingTopic(String),
    /// The log holds a position beyond the end of a partition (the broker's
    /// high watermark stays below it, or the first message after seeking
    /// there has a lower offset): the topic was recreated or truncated (e.g. a compose setup without a Kafka
    /// volume). Reading on would skip every new event as already held, so
    /// the engine stops. If the topic really starts over, run once with
    /// `leadflow run --reset-positions`: it forgets the stored positions of
    /// the events topic and reads it from the start; events already in the
    /// log come back as `duplicate` rejections, so nothing is counted twice.
    #[error("the log holds offset {stored} for {topic}/{partition}, but the partition ends at {found}: it starts over below the log's position (the topic was recreated or truncated); if it really starts over, run `leadflow run --reset-positions` once (events already held become duplicates, nothing is counted twice)")]
    PositionAhead {
        topic: String,
        partition: i32,
        stored: u64,
        found: u64,
    },
    /// The event log failed; see [`crate::log::LogError`].
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// Reading an input file failed.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
}

/// A client config with the bootstrap servers and every pass-through
/// property of `[kafka.properties]`.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

/// Sets the operator's properties on a consumer's config, after the
/// consumer's own settings so that the operator's win: `kafka.properties`,
/// then `kafka.consumer_properties` (which producers and the admin client
/// never get, so librdkafka does not warn that they ignore them).
pub(crate) fn operator_consumer_properties(c: &mut ClientConfig, k: &KafkaConfig) {
    for (key, value) in k.properties.iter().chain(&k.consumer_properties) {
        c.set(key, value);
    }
}

/// A consumer beside the engine's own, in a group of its own
/// (`<group_id>-<purpose>`) that never commits: it reads by assignment
/// (the owners topic, the commands topic while restoring, watermarks).
/// The operator's properties win over these settings.
pub(crate) fn side_consumer(
    k: &KafkaConfig,
    purpose: &str,
) -> Result<rdkafka::consumer::BaseConsumer, BusError> {
    let mut c = client_config(k);
    c.set("group.id", format!("{}-{purpose}", k.group_id))
        .set("enable.auto.commit", "false");
    operator_consumer_properties(&mut c, k);
    Ok(c.create()?)
}

/// The log's source name for one partition of a topic.
pub fn source_name(topic: &str, partition: i32) -> String {
    format!("{}{partition}", source_prefix(topic))
}

/// The common prefix of a topic's partition sources.
pub fn source_prefix(topic: &str) -> String {
    format!("kafka:{topic}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka refuses a property value its build cannot serve
    /// ("Unsupported value ... OpenSSL not available at build time"), at
    /// client creation, before any connection: so creating a client with
    /// each secured setting proves the build carries TLS and the mechanism.
    #[test]
    fn the_client_is_built_with_tls_and_every_documented_sasl_mechanism() {
        for (protocol, mechanism) in [
            ("SSL", None),
            ("SASL_SSL", Some("PLAIN")),
            ("SASL_SSL", Some("SCRAM-SHA-256")),
            ("SASL_SSL", Some("SCRAM-SHA-512")),
            ("SASL_SSL", Some("OAUTHBEARER")),
            ("SASL_PLAINTEXT", Some("SCRAM-SHA-512")),
        ] {
            let mut k = KafkaConfig::default();
            k.properties
                .insert("security.protocol".into(), protocol.into());
            if let Some(m) = mechanism {
                k.properties.insert("sasl.mechanisms".into(), m.into());
                k.properties.insert("sasl.username".into(), "u".into());
                k.properties.insert("sasl.password".into(), "p".into());
            }
            if mechanism == Some("OAUTHBEARER") {
                k.properties.remove("sasl.username");
                k.properties.remove("sasl.password");
                k.properties
                    .insert("enable.sasl.oauthbearer.unsecure.jwt".into(), "true".into());
            }
            let created: Result<rdkafka::consumer::BaseConsumer, _> = client_config(&k).create();
            assert!(
                created.is_ok(),
                "{protocol} {mechanism:?}: {:?}",
                created.err()
            );
        }
    }

    /// `kafka.consumer_properties` reach the consumers, after (and over)
    /// both their own settings and `kafka.properties`; producers never get
    /// them.
    #[test]
    fn consumer_properties_go_to_consumers_only_and_win() {
        let mut k = KafkaConfig::default();
        k.properties.insert("client.id".into(), "all".into());
        k.properties
            .insert("fetch.wait.max.ms".into(), "300".into());
        k.consumer_properties
            .insert("fetch.wait.max.ms".into(), "10".into());
        k.consumer_properties
            .insert("enable.auto.commit".into(), "true".into());
        let mut c = client_config(&k);
        c.set("enable.auto.commit", "false");
        operator_consumer_properties(&mut c, &k);
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(c.get("enable.auto.commit"), Some("true"));
        assert_eq!(c.get("client.id"), Some("all"));
        let producer = crate::bus::publish::command_producer_config(&k);
        assert_eq!(producer.get("enable.auto.commit"), None);
        assert_eq!(producer.get("client.id"), Some("all"));
    }

    /// The tenant rule (`domain::tenant`) picks the partition librdkafka's
    /// own `murmur2_random` partitioner picks, for any key and count: the
    /// engine's `wrong_partition` check and the producers agree.
    #[test]
    fn a_tenants_home_partition_is_librdkafkas_murmur2_partition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        for i in 0..5_000 {
            let len = rng.gen_range(1..40);
            let key: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let partitions = 1 + (i % 64);
            // SAFETY: librdkafka's murmur2 partitioner reads `keylen` bytes
            // of `key` and uses neither the topic nor the opaques.
            let theirs = unsafe {
                rdkafka::bindings::rd_kafka_msg_partitioner_murmur2(
                    std::ptr::null(),
                    key.as_ptr().cast(),
                    key.len(),
                    partitions,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(
                crate::domain::tenant::partition_of(&key, partitions),
                theirs,
                "{key:?} over {partitions}"
            );
        }
    }
}
