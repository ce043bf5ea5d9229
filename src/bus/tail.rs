//! `leadflow tail`: reads a topic from the beginning and prints each message
//! decoded (events, commands) or with its dead-letter headers.

use super::reader::{self, Idle};
use super::BusError;
use crate::codec;
use crate::config::KafkaConfig;
use rdkafka::message::{Headers, Message};
use std::time::Duration;

pub use reader::From;

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
    let (consumer, has_messages) = reader::assigned(k, topic, "leadflow-tail", from, &[])?;
    let mut out = Vec::new();
    let mut idle = Idle::new(idle_ms, has_messages);
    while out.len() < limit && !idle.is_over() {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m?;
        idle.seen();
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
                Ok(c) => codec::command_to_json(&c),
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
