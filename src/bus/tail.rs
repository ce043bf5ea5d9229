//! `leadflow tail`: reads a topic from the beginning and prints each message
//! decoded (events, commands) or with its dead-letter headers.

use super::{client_config, BusError};
use crate::codec;
use crate::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// How to show the payloads of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Events,
    Commands,
    Dlq,
}

/// One message as read back.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tailed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The decoded payload as JSON, or the decode error.
    pub body: serde_json::Value,
    /// The payload bytes as stored in the topic.
    #[serde(skip)]
    pub payload: Vec<u8>,
}

/// Where to start reading.
#[derive(Clone, Copy, Debug, Default)]
pub struct From {
    /// Only this partition (all when `None`).
    pub partition: Option<i32>,
    /// From this offset (the beginning when `None`).
    pub offset: Option<i64>,
}

/// Reads up to `limit` messages of `topic` from the beginning; stops when
/// nothing new arrives for `idle_ms`.
pub fn tail(
    k: &KafkaConfig,
    topic: &str,
    kind: Kind,
    limit: usize,
    idle_ms: u64,
) -> Result<Vec<Tailed>, BusError> {
    tail_from(k, topic, kind, From::default(), limit, idle_ms)
}

/// Like [`tail`], from a chosen partition and offset.
pub fn tail_from(
    k: &KafkaConfig,
    topic: &str,
    kind: Kind,
    from: From,
    limit: usize,
    idle_ms: u64,
) -> Result<Vec<Tailed>, BusError> {
    let partitions = super::admin::check_topics(k, &[topic])?[0];
    let consumer: BaseConsumer = client_config(k)
        .set("group.id", "leadflow-tail")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let offset = from.offset.map_or(Offset::Beginning, Offset::Offset);
    for p in 0..partitions as i32 {
        if from.partition.is_none_or(|only| only == p) {
            tpl.add_partition_offset(topic, p, offset)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let mut last = Instant::now();
    while out.len() < limit && last.elapsed() < Duration::from_millis(idle_ms) {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m?;
        last = Instant::now();
        let payload = m.payload().unwrap_or_default();
        let headers: Vec<(String, String)> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        (
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Events in any format the engine takes, decoded by its own rule
        // (a dead letter keeps the original message's bytes, not its
        // headers, so its format is told by the bytes alone).
        let mut wire_headers = codec::wire::Headers::default();
        if kind == Kind::Events {
            for (k, v) in &headers {
                wire_headers.set(k, v.as_bytes());
            }
        }
        let accept = codec::wire::Accept::default();
        let body = match kind {
            Kind::Events | Kind::Dlq => {
                match codec::wire::decode_message(payload, &wire_headers, &accept) {
                    Ok((e, _)) => {
                        serde_json::from_str(&codec::event_to_json(&e)).expect("valid json")
                    }
                    Err(r) => {
                        serde_json::json!({ "undecodable": r.to_string(), "bytes": payload.len() })
                    }
                }
            }
            Kind::Commands => match codec::decode_command(payload) {
                Ok(c) => serde_json::to_value(codec::command_to_pb(&c)).expect("serialisable"),
                Err(r) => serde_json::json!({ "undecodable": r.to_string() }),
            },
        };
        out.push(Tailed {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            headers,
            body,
            payload: payload.to_vec(),
        });
    }
    Ok(out)
}
