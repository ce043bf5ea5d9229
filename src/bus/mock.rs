//! The demo's in-process Kafka: librdkafka's `MockCluster` with the
//! engine's topics created. For the embedded demo and fault-injection
//! tests only; the test suite's real broker is tansu.

use super::BusError;
use crate::config::KafkaConfig;
use rdkafka::mocking::MockCluster;

/// A running in-process Kafka; it stops when dropped.
pub struct InProcessKafka {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl InProcessKafka {
    /// Starts one broker with the events, commands and dead-letter topics
    /// of `k`, each with `partitions` partitions.
    pub fn start(k: &KafkaConfig, partitions: i32) -> Result<InProcessKafka, BusError> {
        let cluster = MockCluster::new(1)?;
        for topic in [&k.events_topic, &k.commands_topic, &k.dlq_topic] {
            cluster.create_topic(topic, partitions, 1)?;
        }
        Ok(InProcessKafka { cluster })
    }

    /// The `bootstrap.servers` to reach it.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
