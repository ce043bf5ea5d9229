//! `leadflow publish`: an event file onto a topic, as an upstream system
//! would: protobuf `LeadEvent`s keyed by tenant (by lead id for the
//! default tenant) with the murmur2 partitioner, and the idempotent
//! producer. Records that do not decode are sent as they are (no key), so
//! that the engine's dead-letter path can be exercised end to end.

use super::{client_config, BusError};
use crate::codec::{self, stream::EventReader};
use crate::config::KafkaConfig;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::io::BufRead;
use std::time::Duration;

/// How often the paced publisher enqueues what came due.
const PACE_TICK: Duration = Duration::from_millis(1);

/// Most sends awaited at once; bounds memory and in-flight requests.
const IN_FLIGHT_MAX: usize = 10_000;

/// An idempotent producer (acks=all, no duplicates on retry).
pub fn producer(k: &KafkaConfig) -> Result<FutureProducer, BusError> {
    Ok(producer_config(k, 5).create()?)
}

/// The engine's producer of commands and dead letters: idempotent, with a
/// short linger ([`COMMAND_LINGER_MS`]), reporting deliveries on channels
/// (see [`super::acks`]).
pub fn command_producer(k: &KafkaConfig) -> Result<super::acks::CommandProducer, BusError> {
    Ok(command_producer_config(k).create_with_context(super::acks::AckContext)?)
}

/// How long the commands' producer waits to fill a request. A batch's
/// commands are handed over together, but with none (0 ms) librdkafka's
/// sending thread wakes at the first of them and sends requests of a few
/// commands each while the rest are still being handed over, up to five
/// in flight: at the bench's 33 k commands (scoring on) the engine filled
/// its 10,000 in flight and waited for acks. 2 ms gathers a batch's
/// commands into a few requests: `leadflow bench --scoring` used 0.82–0.85
/// CPU-s without scoring and 1.02–1.04 with it, against 0.91–0.96 and
/// 1.09–1.20 at 0 ms, and the event → command p99 was 33 and 43 ms against
/// 56 and 42 ms (2026-11-29, fresh broker, idle). librdkafka's default
/// (5 ms) added its whole wait to every command's latency.
pub const COMMAND_LINGER_MS: u32 = 2;

pub(crate) fn command_producer_config(k: &KafkaConfig) -> rdkafka::ClientConfig {
    producer_config(k, COMMAND_LINGER_MS)
}

/// The configuration of an idempotent producer that waits up to
/// `linger_ms` to fill a batch.
fn producer_config(k: &KafkaConfig, linger_ms: u32) -> rdkafka::ClientConfig {
    let mut c = client_config(k);
    // Messages keyed by tenant go where the engine expects each tenant
    // (`domain::tenant`): the Java client's murmur2, not librdkafka's
    // default CRC32.
    c.set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .set("message.timeout.ms", "60000");
    // The operator's properties win over the defaults above.
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishSummary {
    pub events: u64,
    pub undecodable: u64,
}

/// How `publish` encodes events on the topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Wire {
    /// Unframed protobuf with `content-type: application/x-protobuf`.
    #[default]
    Protobuf,
    /// proto3 JSON with `content-type: application/json`.
    Json,
    /// Confluent Schema Registry framing around protobuf (no content type).
    RegistryProtobuf,
    /// Confluent Schema Registry framing around JSON (no content type).
    RegistryJson,
    /// Each of the four in turn, event by event, every other message
    /// without its content type: a topic the way several producers leave
    /// it.
    Mixed,
}

impl Wire {
    fn format(self, n: u64, schema_id: u32) -> codec::wire::Format {
        use codec::wire::Format;
        let wire = match self {
            Wire::Mixed => [
                Wire::Protobuf,
                Wire::Json,
                Wire::RegistryProtobuf,
                Wire::RegistryJson,
            ][(n % 4) as usize],
            w => w,
        };
        match wire {
            Wire::Protobuf | Wire::Mixed => Format::Protobuf,
            Wire::Json => Format::Json,
            Wire::RegistryProtobuf => Format::RegistryProtobuf { schema_id },
            Wire::RegistryJson => Format::RegistryJson { schema_id },
        }
    }
}

/// Publishes every record of `reader` to `topic` as protobuf; returns once
/// all are acknowledged by the broker.
pub fn publish<R: BufRead>(
    k: &KafkaConfig,
    topic: &str,
    reader: &mut EventReader<R>,
    progress: &mut dyn FnMut(u64),
) -> Result<PublishSummary, BusError> {
    publish_as(k, topic, reader, Wire::Protobuf, 1, progress)
}

/// Like [`publish`], in the given wire format (`schema_id` for the
/// Schema Registry frames).
pub fn publish_as<R: BufRead>(
    k: &KafkaConfig,
    topic: &str,
    reader: &mut EventReader<R>,
    wire: Wire,
    schema_id: u32,
    progress: &mut dyn FnMut(u64),
) -> Result<PublishSummary, BusError> {
    super::admin::check_reachable(k)?;
    let producer = producer(k)?;
    let mut summary = PublishSummary::default();
    let mut pending = Vec::with_capacity(IN_FLIGHT_MAX);
    let mut sent = 0u64;
    let headers = |content_type: Option<&str>| match content_type {
        Some(t) => OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some(t.as_bytes()),
        }),
        None => OwnedHeaders::new(),
    };
    while let Some(record) = reader.next_record()? {
        if reader.truncated_at().is_some() {
            // A cut-off tail is not a record: the caller reports it.
            break;
        }
        let (key, payload, content_type) = match record {
            Ok(event) => {
                let (bytes, mut content_type) =
                    codec::wire::encode_message(&event, wire.format(sent, schema_id));
                if wire == Wire::Mixed && (sent / 4) % 2 == 1 {
                    content_type = None;
                }
                summary.events += 1;
                (
                    Some(crate::domain::tenant::message_key(&event).to_string()),
                    bytes,
                    content_type,
                )
            }
            Err((_, raw)) => {
                summary.undecodable += 1;
                (None, raw, None)
            }
        };
        let producer = &producer;
        let h = headers(content_type);
        pending.push(async move {
            let mut r = FutureRecord::to(topic).payload(&payload).headers(h);
            if let Some(k) = &key {
                r = r.key(k);
            }
            producer
                .send(r, Timeout::After(Duration::from_secs(60)))
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        });
        if pending.len() >= IN_FLIGHT_MAX {
            for r in futures::executor::block_on(join_all(pending.drain(..))) {
                r?;
            }
        }
        sent += 1;
        if sent % 10_000 == 0 {
            progress(sent);
        }
    }
    for r in futures::executor::block_on(join_all(pending.drain(..))) {
        r?;
    }
    producer.flush(Timeout::After(Duration::from_secs(60)))?;
    progress(sent);
    Ok(summary)
}

/// Publishes `events` at `per_s` events a second (spread evenly, each
/// enqueued within a millisecond of its time: the messages' Kafka
/// timestamps are their publish times), as protobuf keyed like
/// [`publish`], once `start` has returned `true` (`false` publishes
/// nothing). For
/// `leadflow bench`'s latency run: an upstream system publishing at a
/// steady rate while the engine runs.
pub fn publish_paced(
    k: &KafkaConfig,
    topic: &str,
    events: &[crate::domain::LeadEvent],
    per_s: f64,
    start: &dyn Fn() -> bool,
) -> Result<u64, BusError> {
    use rdkafka::producer::BaseRecord;
    // An upstream producer with librdkafka's default linger (5 ms): at
    // 1 ms its sending thread took over half a core at 10 k messages/s,
    // which on a small machine was taken from the engine being measured.
    let producer: rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
        producer_config(k, 5).create()?;
    // A producer's first messages wait for the topic's metadata and, being
    // idempotent, for its producer id: measured, that put up to 550 ms on
    // the first half second's events. An upstream system's producer has
    // long been warm, so this one is warmed before the clock starts.
    producer
        .client()
        .fetch_metadata(Some(topic), Timeout::After(Duration::from_secs(30)))?;
    if !start() {
        return Ok(0);
    }
    let headers = OwnedHeaders::new().insert(Header {
        key: "content-type",
        value: Some(codec::wire::CONTENT_TYPE_PROTOBUF.as_bytes()),
    });
    let started = std::time::Instant::now();
    let per_s = per_s.max(1.0);
    for (n, event) in events.iter().enumerate() {
        // Whatever came due is enqueued at once, then the thread sleeps a
        // millisecond: one wake-up a millisecond rather than one a
        // message, on a machine the engine being measured shares.
        let due = started + Duration::from_secs_f64(n as f64 / per_s);
        while due > std::time::Instant::now() {
            std::thread::sleep(PACE_TICK);
        }
        let payload = codec::encode_event(event);
        let key = crate::domain::tenant::message_key(event).to_string();
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .headers(headers.clone());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                    record = back;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Timeout::After(Duration::from_secs(60)))?;
    Ok(events.len() as u64)
}
