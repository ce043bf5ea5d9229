//! Restoring a partition without publishing its history twice.
//!
//! An engine that takes over partitions it holds no state for (a fresh
//! data dir after a node loss, a rescale) rebuilds that state by reading
//! the events topic partitions from their start through the same
//! lifecycle and policy: the log is a function of the topic. The policy
//! then decides again every command the previous owner decided, with the
//! same deterministic ids. Those the previous owner had published are on
//! the commands topic; before consuming, the engine reads that topic to
//! its end (the high watermarks taken when it starts) and keeps the ids of
//! the commands of its partitions' tenants, and its dispatcher marks such
//! commands sent instead of publishing them. Only what the previous owner
//! had not had acknowledged is published.
//!
//! The retention this needs: the events topic must keep every event of a
//! partition since its first (`retention.ms = -1`, or compaction off and
//! retention longer than the engine's history), and the commands topic at
//! least as long as a lead may still receive commands; README, Scaling out.

use super::BusError;
use crate::codec;
use crate::config::KafkaConfig;
use crate::domain::tenant;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// Longest the scan of the commands topic may go without a message while
/// some partition is still below the high watermark it had at the start.
const SCAN_STALL_MS_MAX: u64 = 30_000;

/// How long the scan reads on, past the watermarks, until nothing new
/// comes.
const SCAN_QUIET_MS: u64 = 1_000;

/// Most command ids a restore keeps in memory (about 100 bytes each).
pub const IDS_MAX: usize = 20_000_000;

/// What the scan of the commands topic found.
#[derive(Debug, Default)]
pub struct Published {
    /// Ids of the commands of the owned partitions' tenants (or leads, for
    /// the default tenant) on the topic.
    pub ids: HashSet<String>,
    /// Messages read.
    pub scanned: u64,
}

/// Reads the commands topic from its start to the high watermarks it has
/// now, keeping the ids of commands whose lead belongs to one of `owned`
/// partitions of the events topic (of `partitions`); `None` owns all.
pub fn published_commands(
    k: &KafkaConfig,
    owned: Option<&[i32]>,
    partitions: i32,
    on_progress: &mut dyn FnMut(u64, u64),
) -> Result<Published, BusError> {
    let topic = &k.commands_topic;
    let count = super::admin::check_topics(k, &[topic])?[0] as i32;
    let consumer = super::side_consumer(k, "restore")?;
    // Where each partition ends now: commands published after this are
    // the new owner's own.
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..count {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    let total: i64 = ends.values().sum();
    let mut out = Published::default();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let mut last = Instant::now();
    // Past the watermarks, the read goes on until the topic is quiet for a
    // moment: a broker may answer a watermark below the end (tansu 0.6
    // answered 1 for a partition holding 5 messages produced in one batch),
    // which would otherwise hide the commands after it.
    while !ends.is_empty() || last.elapsed() < Duration::from_millis(SCAN_QUIET_MS) {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            if ends.is_empty() {
                continue;
            }
            if last.elapsed() >= Duration::from_millis(SCAN_STALL_MS_MAX) {
                return Err(BusError::Unreachable {
                    brokers: k.brokers.clone(),
                    detail: format!(
                        "reading {topic} to restore stalled for {} s with partitions {:?} unfinished",
                        SCAN_STALL_MS_MAX / 1000,
                        ends.keys().collect::<Vec<_>>()
                    ),
                });
            }
            continue;
        };
        let m = m?;
        last = Instant::now();
        out.scanned += 1;
        if let Ok(command) = codec::decode_command(m.payload().unwrap_or_default()) {
            // A tenant's commands are of its home partition's leads only;
            // the default tenant's leads may be on any partition (their
            // producers need not use murmur2), so those are all kept. An
            // id kept needlessly costs memory, never a wrong skip: only
            // this engine's own leads' decisions can carry it.
            let ours = match tenant::home_partition(&command.tenant_id, partitions) {
                Some(home) => owned.is_none_or(|o| o.contains(&home)),
                None => true,
            };
            if ours {
                if out.ids.len() >= IDS_MAX {
                    return Err(BusError::RestoreTooLarge { ids_max: IDS_MAX });
                }
                out.ids.insert(command.command_id);
            }
        }
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
        if out.scanned % 10_000 == 0 {
            on_progress(out.scanned, total as u64);
        }
    }
    on_progress(out.scanned, total as u64);
    Ok(out)
}
