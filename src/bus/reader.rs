//! A consumer that reads a topic from its start (or a chosen offset) by
//! assignment, outside any consumer group's coordination: what `tail` and
//! the bench's ceiling both need. Also the rule for when such a read is
//! over: `limit` messages, or nothing new for `idle_ms` — counted from the
//! first message, since the first fetch of a secured or busy broker can
//! take longer than the idle time itself.

use super::{client_config, BusError};
use crate::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Longest a read waits for its first message when the topic has some.
pub const FIRST_MESSAGE_WAIT_MS: u64 = 15_000;

/// Where to start reading.
#[derive(Clone, Copy, Debug, Default)]
pub struct From {
    /// Only this partition (all when `None`).
    pub partition: Option<i32>,
    /// From this offset (the beginning when `None`).
    pub offset: Option<i64>,
}

/// A consumer of `topic` assigned its partitions from `from`, with the
/// config's connection properties plus `extra`. Returns it with whether
/// the chosen partitions hold any message at all (as far as the broker's
/// watermarks tell; `true` when they cannot be read).
pub fn assigned(
    k: &KafkaConfig,
    topic: &str,
    group_id: &str,
    from: From,
    extra: &[(&str, &str)],
) -> Result<(BaseConsumer, bool), BusError> {
    let partitions = super::admin::check_topics(k, &[topic])?[0];
    let mut c = client_config(k);
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false");
    for (key, value) in extra {
        c.set(*key, *value);
    }
    super::operator_consumer_properties(&mut c, k);
    let consumer: BaseConsumer = c.create()?;
    let mut tpl = TopicPartitionList::new();
    let offset = from.offset.map_or(Offset::Beginning, Offset::Offset);
    let mut any = false;
    for p in 0..partitions as i32 {
        if from.partition.is_none_or(|only| only == p) {
            tpl.add_partition_offset(topic, p, offset)?;
            any |= consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_or(true, |(low, high)| high > low);
        }
    }
    consumer.assign(&tpl)?;
    Ok((consumer, any))
}

/// What a read to the end hands each message's key and payload to.
pub type OnMessage<'a> = &'a mut dyn FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<(), BusError>;

/// Reads `consumer` until nothing new has come for `quiet_ms` after a
/// message (a broker's watermarks may lag its end, so they are not
/// trusted to say where it is), handing each message to `f`; an error from
/// `f` ends the read. With no message at all within `stall_ms_max` it is
/// [`BusError::Unreachable`], naming `what` (the caller has seen that the
/// topic holds messages).
pub fn read_to_quiet(
    consumer: &BaseConsumer,
    k: &KafkaConfig,
    what: &str,
    (quiet_ms, stall_ms_max): (u64, u64),
    f: OnMessage<'_>,
) -> Result<(), BusError> {
    use rdkafka::message::Message;
    let started = Instant::now();
    let mut last: Option<Instant> = None;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m?;
                last = Some(Instant::now());
                f(m.key(), m.payload())?;
            }
            None => match last {
                Some(t) if t.elapsed() >= Duration::from_millis(quiet_ms) => return Ok(()),
                None if started.elapsed() >= Duration::from_millis(stall_ms_max) => {
                    return Err(BusError::Unreachable {
                        brokers: k.brokers.clone(),
                        detail: format!("{what} did not deliver its records"),
                    });
                }
                _ => {}
            },
        }
    }
}

/// When a read is over (see the module doc).
pub struct Idle {
    idle: Duration,
    first_wait: Duration,
    started: Instant,
    last: Option<Instant>,
}

impl Idle {
    /// `has_messages`: whether the topic holds any (else the read ends
    /// after `idle_ms` like any quiet one).
    pub fn new(idle_ms: u64, has_messages: bool) -> Idle {
        let idle = Duration::from_millis(idle_ms);
        Idle {
            idle,
            first_wait: if has_messages {
                idle.max(Duration::from_millis(FIRST_MESSAGE_WAIT_MS))
            } else {
                idle
            },
            started: Instant::now(),
            last: None,
        }
    }

    /// A message arrived.
    pub fn seen(&mut self) {
        self.last = Some(Instant::now());
    }

    /// Whether the read is over.
    pub fn is_over(&self) -> bool {
        match self.last {
            None => self.started.elapsed() >= self.first_wait,
            Some(t) => t.elapsed() >= self.idle,
        }
    }

    /// When the last message arrived.
    pub fn last_seen(&self) -> Option<Instant> {
        self.last
    }
}
