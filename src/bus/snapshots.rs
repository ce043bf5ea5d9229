//! Partition stores handed over through Kafka: an engine that releases a
//! partition cleanly publishes its store (`log::transfer`) to a compacted
//! topic (`kafka.snapshots_topic`), cut into chunks under the broker's
//! message size limit; an engine that takes the partition over with no
//! store of its own loads the latest one and goes on from the position
//! stored in it, reading only the events after it from the events topic.
//! Without a snapshot (the first start, an owner that died without
//! releasing) the partition is replayed from the events topic's start.
//!
//! Keys, per partition of the events topic: `EVENTS_TOPIC/P/chunk/NNNNNNNN`
//! and `EVENTS_TOPIC/P/manifest`. The manifests live in the topic's
//! partition 0 and the chunks in its partition 1 (`topics create` makes
//! two), so finding the latest manifests reads no chunk; a topic with one
//! partition holds both. The chunks come first and the manifest last (and
//! only once they are acknowledged), so a manifest names a complete
//! snapshot; each chunk carries its
//! snapshot's id, so a chunk left from an older snapshot (compaction keeps
//! the latest value per key, and an older snapshot may have had more
//! chunks) is never taken for a newer one's.

use super::BusError;
use crate::config::KafkaConfig;
use crate::log::EventLog;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest chunk, in bytes: under Kafka's default message size limit
/// (1 MiB) with room for the key and the record's overhead.
pub const CHUNK_BYTES_MAX: usize = 512 * 1024;
/// A read of the snapshots topic is over after this long without a message.
const READ_QUIET_MS: u64 = 1_000;
/// Longest a read waits for the first message of a topic that has some.
const FIRST_MESSAGE_WAIT_MS: u64 = 15_000;

/// What a published snapshot is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// When it was published (wall clock, ms): its chunks carry it.
    pub id: i64,
    pub chunks: u64,
    pub records: u64,
    pub bytes: u64,
    /// The store's next offset in its partition: the restoring engine
    /// reads the events topic from here.
    pub position: Option<u64>,
    /// Who published it.
    pub engine: String,
}

/// The partitions of the snapshots topic that hold the manifests and the
/// chunks.
fn layout(k: &KafkaConfig) -> Result<(i32, i32), BusError> {
    let partitions = super::admin::check_topics(k, &[&k.snapshots_topic])?[0];
    Ok((0, if partitions >= 2 { 1 } else { 0 }))
}

fn prefix(events_topic: &str, partition: i32) -> String {
    format!("{events_topic}/{partition}/")
}

/// Publishes `log` (partition `partition`'s store, nothing writing to it)
/// as the partition's latest snapshot. Returns its manifest.
pub fn publish(
    k: &KafkaConfig,
    partition: i32,
    log: &EventLog,
    engine: &str,
) -> Result<Manifest, BusError> {
    let mut c = super::client_config(k);
    c.set("linger.ms", "20")
        .set("message.timeout.ms", "60000")
        .set("message.max.bytes", (2 * CHUNK_BYTES_MAX).to_string());
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    let producer: BaseProducer = c.create()?;
    let (manifests_at, chunks_at) = layout(k)?;
    let prefix = prefix(&k.events_topic, partition);
    let id = crate::replay::wall_ms();
    let mut chunks = 0u64;
    let mut bytes = 0u64;
    let send = |at: i32, key: String, payload: Vec<u8>| -> Result<(), String> {
        loop {
            let record = BaseRecord::to(&k.snapshots_topic)
                .partition(at)
                .key(&key)
                .payload(&payload);
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e.to_string()),
            }
        }
    };
    let records = log.dump_chunks(CHUNK_BYTES_MAX, &mut |chunk| {
        let mut payload = Vec::with_capacity(16 + chunk.len());
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&chunks.to_be_bytes());
        payload.extend_from_slice(&chunk);
        bytes += chunk.len() as u64;
        send(chunks_at, format!("{prefix}chunk/{chunks:08}"), payload)?;
        chunks += 1;
        Ok(())
    })?;
    // The manifest only once every chunk is on the broker.
    producer.flush(Duration::from_secs(60))?;
    let manifest = Manifest {
        id,
        chunks,
        records,
        bytes,
        position: log.position(&super::source_name(&k.events_topic, partition))?,
        engine: engine.to_string(),
    };
    let json = serde_json::to_vec(&manifest).expect("a manifest serialises");
    send(manifests_at, format!("{prefix}manifest"), json).map_err(|detail| {
        BusError::Unreachable {
            brokers: k.brokers.clone(),
            detail,
        }
    })?;
    producer.flush(Duration::from_secs(60))?;
    Ok(manifest)
}

/// Loads the latest published snapshot of each partition of `wanted` into
/// its directory (which holds no log), reading the snapshots topic twice
/// whatever their number: once for the manifests, once for the chunks.
/// Per partition: `Ok(Some(manifest))` loaded, `Ok(None)` none published
/// (its directory untouched), `Err` a snapshot that could not be read
/// whole (its directory may hold part of it: remove it and replay).
#[allow(clippy::type_complexity)]
pub fn fetch(
    k: &KafkaConfig,
    wanted: &[(i32, std::path::PathBuf)],
) -> Result<BTreeMap<i32, Result<Option<Manifest>, String>>, BusError> {
    let mut out: BTreeMap<i32, Result<Option<Manifest>, String>> =
        wanted.iter().map(|(p, _)| (*p, Ok(None))).collect();
    if k.snapshots_topic.is_empty() || wanted.is_empty() {
        return Ok(out);
    }
    // "EVENTS_TOPIC/P/" -> P, for the partitions wanted.
    let by_prefix: BTreeMap<String, i32> = wanted
        .iter()
        .map(|(p, _)| (prefix(&k.events_topic, *p), *p))
        .collect();
    let split = |key: &[u8]| -> Option<(i32, String)> {
        let key = std::str::from_utf8(key).ok()?;
        let cut = key.rfind('/')?;
        // "T/P/manifest" or "T/P/chunk/N": the prefix ends before the kind.
        let (head, _) = key.split_at(cut);
        let head = head.strip_suffix("/chunk").unwrap_or(head);
        let p = *by_prefix.get(&format!("{head}/"))?;
        Some((p, key[head.len() + 1..].to_string()))
    };
    let (manifests_at, chunks_at) = layout(k)?;
    // First pass: the latest manifest of each (chunks are skipped).
    let mut manifests: BTreeMap<i32, Manifest> = BTreeMap::new();
    read_all(k, manifests_at, &mut |key, payload| {
        if let Some((p, rest)) = split(key) {
            if rest == "manifest" {
                if let Ok(m) = serde_json::from_slice(payload) {
                    manifests.insert(p, m);
                }
            }
        }
        Ok(())
    })?;
    if manifests.is_empty() {
        return Ok(out);
    }
    // Second pass: their chunks, in order, streamed into the stores.
    let dirs: BTreeMap<i32, &std::path::PathBuf> = wanted.iter().map(|(p, d)| (*p, d)).collect();
    let mut loaders: BTreeMap<i32, (crate::log::transfer::StoreLoader, u64)> = BTreeMap::new();
    for p in manifests.keys() {
        match crate::log::transfer::StoreLoader::new(dirs[p]) {
            Ok(l) => {
                loaders.insert(*p, (l, 0));
            }
            Err(e) => {
                out.insert(*p, Err(e.to_string()));
            }
        }
    }
    read_all(k, chunks_at, &mut |key, payload| {
        let Some((p, rest)) = split(key) else {
            return Ok(());
        };
        if !rest.starts_with("chunk/") || payload.len() < 16 {
            return Ok(());
        }
        let (Some(m), Some((loader, next))) = (manifests.get(&p), loaders.get_mut(&p)) else {
            return Ok(());
        };
        let id = i64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
        let n = u64::from_be_bytes(payload[8..16].try_into().expect("8 bytes"));
        if id != m.id || n >= m.chunks || out.get(&p).is_some_and(Result::is_err) {
            return Ok(());
        }
        if n != *next {
            out.insert(
                p,
                Err(format!(
                    "chunk {n} of snapshot {id} came where chunk {next} was expected"
                )),
            );
            return Ok(());
        }
        if let Err(e) = loader.push(&payload[16..]) {
            out.insert(p, Err(e.to_string()));
            return Ok(());
        }
        *next += 1;
        Ok(())
    })?;
    for (p, (loader, next)) in loaders {
        if out.get(&p).is_some_and(Result::is_err) {
            continue;
        }
        let m = &manifests[&p];
        let result = if next != m.chunks {
            Err(format!(
                "snapshot {} has {next} of its {} chunks on {}",
                m.id, m.chunks, k.snapshots_topic
            ))
        } else {
            match loader.finish() {
                Ok(records) if records == m.records => Ok(Some(m.clone())),
                Ok(records) => Err(format!(
                    "snapshot {} loaded {records} records of {}",
                    m.id, m.records
                )),
                Err(e) => Err(e.to_string()),
            }
        };
        out.insert(p, result);
    }
    Ok(out)
}

/// What a read of the snapshots topic hands each record to.
type OnRecord<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<(), String>;

/// Reads partition `at` of the snapshots topic from its start to its end,
/// handing each record's key and payload to `f`; an error from `f` ends
/// the read.
fn read_all(k: &KafkaConfig, at: i32, f: OnRecord<'_>) -> Result<(), BusError> {
    let (consumer, any) = super::reader::assigned(
        k,
        &k.snapshots_topic,
        &format!("{}-snapshots", k.group_id),
        super::reader::From {
            partition: Some(at),
            offset: None,
        },
        &[(
            "fetch.message.max.bytes",
            &(2 * CHUNK_BYTES_MAX).to_string(),
        )],
    )?;
    if !any {
        return Ok(());
    }
    super::reader::read_to_quiet(
        &consumer,
        k,
        &k.snapshots_topic,
        (READ_QUIET_MS, FIRST_MESSAGE_WAIT_MS),
        &mut |key, payload| match (key, payload) {
            (Some(key), Some(payload)) => f(key, payload).map_err(BusError::Snapshot),
            _ => Ok(()),
        },
    )?;
    consumer.unassign()?;
    Ok(())
}
