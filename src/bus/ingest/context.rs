//! The rdkafka callbacks of the intake: librdkafka's statistics (lag and
//! high watermarks) and the rebalance handler that makes the log, not the
//! group, decide where an assigned partition resumes.

use super::intake::Intake;
use super::live_mut;
use crate::bus::BusError;
use crate::control::{self, lock};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub(super) struct IngestContext {
    pub intake: Arc<Mutex<Intake>>,
    pub live: control::Shared,
    /// Revocations served (group mode): shutdown waits for the one its
    /// unsubscribe starts.
    pub revocations: std::sync::atomic::AtomicU64,
    /// Set at shutdown once the partitions are back with the group: a
    /// rebalance event after it (the consumer's close) is not served,
    /// since any request to the group coordinator can then wait for ever
    /// (seen on the test broker: `assign` and `rebalance_protocol` from
    /// the close never returned).
    pub closing: std::sync::atomic::AtomicBool,
}

impl ClientContext for IngestContext {
    /// librdkafka's statistics (every `statistics.interval.ms`, served by
    /// `poll`, which never holds a lock): the partitions' high watermarks
    /// give the lag behind the log's positions.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut i = lock(&self.intake);
        let Some(topic) = statistics.topics.get(&i.topic) else {
            return;
        };
        let mut lag = BTreeMap::new();
        let mut high = BTreeMap::new();
        for (p, stats) in &topic.partitions {
            // Only assigned partitions with a known watermark (-1001 and
            // the internal partition -1 are "unknown").
            let Some(taken) = i.in_batch.get(p).or(i.durable.get(p)).copied() else {
                continue;
            };
            if *p >= 0 && stats.hi_offset >= 0 {
                lag.insert(*p, (stats.hi_offset - taken as i64).max(0));
                high.insert(*p, stats.hi_offset);
                i.check_not_ahead(*p, taken, stats.hi_offset);
                i.check_not_stalled(*p, taken, stats.hi_offset);
            }
        }
        i.lag = lag;
        i.high = high;
        i.lag_changed = true;
    }
}

impl ConsumerContext for IngestContext {
    /// Replaces rdkafka's default rebalance handling so that the log, not
    /// the group, decides where an assigned partition resumes, and so that a
    /// revoked partition's open batch is appended before it is released.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::debug!(?err, "rebalance event while closing: not served");
            return;
        }
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut i = lock(&self.intake);
        let mut guard = lock(&self.live);
        let live = live_mut(&mut guard);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut positions = Vec::new();
                for e in tpl.elements() {
                    positions.push((e.topic().to_string(), e.partition()));
                }
                let mut seek = Ok(());
                for (topic, partition) in &positions {
                    // A partition the log has never seen starts at offset 0
                    // (or, if retention removed it, at the earliest offset
                    // via auto.offset.reset): the log must hold every
                    // event, whatever offsets the group remembers.
                    let offset = match i.resume_from(live, *partition) {
                        Ok(offset) => offset,
                        Err(e) => {
                            seek = Err(e);
                            continue;
                        }
                    };
                    if let Err(e) = tpl.set_partition_offset(topic, *partition, offset) {
                        seek = Err(e.into());
                    }
                }
                tracing::info!(
                    partitions = positions.len(),
                    "partitions assigned; resuming from the log's positions"
                );
                seek.and_then(|()| {
                    if cooperative {
                        consumer.incremental_assign(tpl)?;
                    } else {
                        consumer.assign(tpl)?;
                    }
                    Ok(())
                })
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revocations
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(
                    partitions = tpl.count(),
                    "partitions revoked: appending the open batch"
                );
                let appended = i.append_batch(live, consumer, CommitMode::Sync);
                for e in tpl.elements() {
                    i.durable.remove(&e.partition());
                    i.fetch.remove(&e.partition());
                    i.stalled.remove(&e.partition());
                }
                appended.and_then(|()| {
                    if cooperative {
                        consumer.incremental_unassign(tpl)?;
                    } else {
                        consumer.unassign()?;
                    }
                    Ok(())
                })
            }
            other => {
                tracing::error!("rebalance error: {other:?}");
                consumer.unassign().map_err(BusError::from)
            }
        };
        if let Err(e) = result {
            i.failed = Some(e);
        }
    }
}
