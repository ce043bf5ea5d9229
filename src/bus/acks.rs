//! The engine's producer of commands and dead letters, which reports each
//! delivery on a channel instead of through a future per message.
//!
//! A command handed to librdkafka carries, as its delivery opaque, the
//! sender of the channel of whoever handed it over and its sequence; the
//! producer's polling thread calls [`AckContext::delivery`] once per
//! message (acknowledged, or failed after `message.timeout.ms`), which puts
//! an [`Acked`] on that channel. The dispatcher then reads only the
//! deliveries that happened, and can wait for the first one.
//!
//! With a future per command (rdkafka's `FutureProducer`) the dispatcher
//! polled every command in flight, up to 10,000, at every pick-up (each
//! millisecond while the in-flight bound was reached): with scoring on,
//! `perf` put 5 % of the engine's samples in those polls.

use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One message's delivery: its sequence as handed over (a command's
/// `cseq`, a dead letter's `rseq`) and whether the broker acknowledged it.
#[derive(Debug)]
pub struct Acked {
    pub seq: u64,
    pub result: rdkafka::error::KafkaResult<()>,
}

/// What travels with a message through librdkafka and comes back with its
/// delivery.
pub struct Delivery {
    pub acks: mpsc::Sender<Acked>,
    pub seq: u64,
}

/// The producer's context: reports every delivery on its message's channel.
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Box<Delivery>) {
        let result = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        // A closed channel means whoever handed the message over is gone
        // (the engine is stopping): nobody is left to tell, and the outbox
        // still holds the message, so it is sent again at the next start.
        let _ = delivery.acks.send(Acked {
            seq: delivery.seq,
            result,
        });
    }
}

/// The producer of commands and dead letters.
pub type CommandProducer = ThreadedProducer<AckContext>;

/// Hands `record` to the producer, waiting up to `wait` while its queue is
/// full (`queue.buffering.max.messages`); the error of a record not handed
/// over otherwise. Its delivery is reported on the record's channel.
pub fn send_waiting<K, P>(
    producer: &CommandProducer,
    record: BaseRecord<'_, K, P, Box<Delivery>>,
    wait: Duration,
) -> rdkafka::error::KafkaResult<()>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let deadline = Instant::now() + wait;
    let mut record = record;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, back))
                if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
                    && Instant::now() < deadline =>
            {
                // The polling thread drains the queue as acks come.
                std::thread::sleep(Duration::from_millis(10));
                record = back;
            }
            Err((e, _)) => return Err(e),
        }
    }
}
