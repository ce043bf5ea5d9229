//! `leadflow publish`: an event file onto a topic, as an upstream system
//! would: protobuf `LeadEvent`s keyed by lead id, with the idempotent
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

/// Most sends awaited at once; bounds memory and in-flight requests.
const IN_FLIGHT_MAX: usize = 10_000;

/// An idempotent producer (acks=all, no duplicates on retry).
pub fn producer(k: &KafkaConfig) -> Result<FutureProducer, BusError> {
    let mut c = client_config(k);
    c.set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    // The operator's properties win over the defaults above.
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    Ok(c.create()?)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishSummary {
    pub events: u64,
    pub undecodable: u64,
}

/// Publishes every record of `reader` to `topic`; returns once all are
/// acknowledged by the broker.
pub fn publish<R: BufRead>(
    k: &KafkaConfig,
    topic: &str,
    reader: &mut EventReader<R>,
    progress: &mut dyn FnMut(u64),
) -> Result<PublishSummary, BusError> {
    super::admin::check_reachable(k)?;
    let producer = producer(k)?;
    let mut summary = PublishSummary::default();
    let mut pending = Vec::with_capacity(IN_FLIGHT_MAX);
    let mut sent = 0u64;
    let headers = || {
        OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some(&b"application/x-protobuf; messageType=leadflow.v1.LeadEvent"[..]),
        })
    };
    while let Some(record) = reader.next_record()? {
        if reader.truncated_at().is_some() {
            // A cut-off tail is not a record: the caller reports it.
            break;
        }
        let (key, payload) = match record {
            Ok(event) => {
                summary.events += 1;
                (Some(event.lead_id.clone()), codec::encode_event(&event))
            }
            Err((_, raw)) => {
                summary.undecodable += 1;
                (None, raw)
            }
        };
        let producer = &producer;
        let h = headers();
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
