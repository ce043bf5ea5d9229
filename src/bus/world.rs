//! The simulated outside world of `leadflow demo` on Kafka: publishes what
//! the live simulator's marketing system and CRM do, and feeds the engine's
//! commands back to the CRM.

use super::{client_config, BusError};
use crate::codec;
use crate::config::KafkaConfig;
use crate::shutdown::Shutdown;
use crate::sim::live::{LiveSim, Outgoing};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// Most commands taken from the consumer per loop turn.
const COMMANDS_PER_TURN_MAX: usize = 1_000;

/// Runs the world until `shutdown` is set. `now_ms` is the wall clock (the
/// edge where it enters: the simulator itself is pure). Returns how many
/// messages it published to the events topic.
pub fn run(
    k: &KafkaConfig,
    sim: &mut LiveSim,
    shutdown: &Shutdown,
    now_ms: &dyn Fn() -> u64,
) -> Result<u64, BusError> {
    let partitions = super::admin::check_topics(k, &[&k.commands_topic])?[0];
    let producer = super::publish::producer(k)?;
    let mut c = client_config(k);
    c.set("group.id", "leadflow-demo-crm")
        .set("enable.auto.commit", "false");
    super::operator_consumer_properties(&mut c, k);
    let consumer: BaseConsumer = c.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(&k.commands_topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut published = 0u64;
    while !shutdown.is_triggered() {
        let mut out = Vec::new();
        let mut taken = 0;
        while taken < COMMANDS_PER_TURN_MAX {
            let wait = if taken == 0 { 20 } else { 0 };
            match consumer.poll(Duration::from_millis(wait)) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!("demo CRM consumer: {e}");
                    break;
                }
                Some(Ok(m)) => {
                    taken += 1;
                    match codec::decode_command(m.payload().unwrap_or_default()) {
                        Ok(c) => out.extend(sim.on_command(&c, now_ms())),
                        Err(e) => tracing::warn!("demo CRM: undecodable command: {e}"),
                    }
                }
            }
        }
        out.extend(sim.tick(now_ms()));
        for o in out {
            published += u64::from(send(&producer, &k.events_topic, o, shutdown));
        }
    }
    let _ = producer.flush(Duration::from_secs(10));
    Ok(published)
}

/// Enqueues one message, waiting while librdkafka's queue is full; says
/// whether it was enqueued.
fn send(producer: &FutureProducer, topic: &str, o: Outgoing, shutdown: &Shutdown) -> bool {
    let (key, payload) = match o {
        Outgoing::Event(e) => (
            crate::domain::tenant::message_key(&e).to_string(),
            codec::encode_event(&e),
        ),
        Outgoing::Garbage { key, bytes } => (key, bytes),
    };
    loop {
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        match producer.send_result(record) {
            // Delivery is the producer's job from here; the idempotent
            // producer retries without duplicates.
            Ok(_delivery) => return true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                if shutdown.is_triggered() {
                    return false;
                }
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => {
                tracing::warn!("demo: could not publish: {e}");
                return false;
            }
        }
    }
}
