//! The durable event log on sled. The only module that touches sled.
//!
//! ## Durability contract
//! - [`EventLog::append`] validates a batch of inputs, writes everything the
//!   batch produces — accepted events with their global sequence numbers,
//!   rejected inputs with their reasons, the rejection counters and the
//!   source positions the batch consumed — in **one atomic sled batch**, and
//!   then **flushes** (fsync) once. When `append` returns `Ok`, all of it
//!   survives a crash or power loss. When it returns `Err` or the process
//!   dies inside it, either all of the batch is there after reopening or none
//!   of it is; never a part.
//! - A source position (`file:…`, later a Kafka topic/partition) is stored in
//!   the same batch as the events read before it, so a restart resumes from
//!   exactly the first input that is not durable: nothing is lost, nothing is
//!   appended twice.
//! - Commands decided while appending a batch (see [`EventLog::append_with`])
//!   are stored in the same atomic batch as the events that caused them,
//!   and are pending from then on. The log keeps the pending ones in memory
//!   and stores where the oldest of them stands (with each batch that
//!   stores commands, and with each acknowledgement that moves it), plus a
//!   key for each command acknowledged above it (out of order), removed
//!   once the oldest passes it: no key per command in the usual, in-order
//!   case. A crash between the append and the acknowledgement re-sends the
//!   command after restart: delivery is at-least-once, with the command's
//!   stable id for downstream dedupe.
//! - Event ids are idempotency keys: a second input with the id of an
//!   accepted event *or of a rejected one* is kept as a `duplicate`
//!   rejection, never judged again and never appended.
//! - The policy's inputs other than events (each policy version loaded,
//!   each wall-clock tick that moved its time; see [`policy_inputs`]) are
//!   stored in order with the events, keyed by the last event before them.
//!   A tick that fired commands is stored in one atomic, flushed batch with
//!   them; one that fired nothing is flushed with the next write.
//! - Sequences start at 1 and have no gaps; reading asserts it.
//! - A write that would leave less free space on the data dir's filesystem
//!   than `log.disk_free_bytes_min` (plus twice its size) is refused before
//!   sled sees it, as [`LogError::DiskBelowFloor`]: sled is not trusted at
//!   ENOSPC (a batch failed there has come back torn after reopening), so
//!   the log never lets it get there.
//! - What follows a batch (the engine's `scored` events for the scores
//!   the batch moved) is in the batch's own atomic write: a crash keeps
//!   both or neither.
//! - The in-memory indexes (lead states, timelines, event ids) hold applied
//!   events only: they move forward after the batch's write, and a failed
//!   write or flush poisons the log until it is reopened and the indexes
//!   rebuilt.
//!
//! ## Layout
//! One sled key per batch holds the batch's events (a [`segment`], keyed by
//! its first sequence). The dedupe index and each lead's lifecycle state and
//! timeline are functions of the events, so they live in memory ([`index`])
//! and are rebuilt by scanning the log the first time they are needed after
//! opening. The commands a write stores are one key too (a run: a segment
//! of commands, see `outbox::CommandRun`; data dirs before format 4 hold a key per
//! command, read as they are). sled's cost is per key, so an append writes
//! about two keys per batch (plus one per rejection), not two per event
//! and one per command.
//! - Projection snapshots live in their own tree and are flushed when saved;
//!   they are a cache: losing one costs a replay, never correctness.

mod append;
mod batcher;
mod index;
mod keys;
mod open;
mod outbox;
mod policy_inputs;
mod read;
mod segment;
mod snapshot;
pub mod stores;
pub mod transfer;

pub use batcher::Batcher;

use crate::codec::{self, stream::Record};
use crate::domain::lifecycle::{self, Lead};
use crate::domain::{LeadCommand, LeadEvent, Rejection};
pub use index::Seen;
use index::{IdProbe, Index, LeadEntry};
use keys::*;
pub use read::LogReader;
use segment::{Segment, SegmentWriter};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A map keyed by ids (lead ids, event ids, command ids) on the append
/// path: foldhash, seeded per process, instead of std's SipHash (which was
/// ~5 % of an engine's time with a policy here).
pub(crate) type IdMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;
use std::path::Path;

/// The on-disk format this build writes. Format 1 also stored the id index
/// and lead records as sled keys; format 3 may hold compressed segments
/// (`log.compression`), which builds of format 2 cannot read; format 4
/// stores the commands of one write under one key (a run: `COMMAND_RUN`)
/// instead of one key each, which builds of format 3 cannot read.
pub const FORMAT_VERSION: u64 = 4;

/// The format a data dir takes with its first compressed segment.
pub const FORMAT_COMPRESSED_SEGMENTS: u64 = 3;

/// The format a data dir takes with its first run of commands.
pub const FORMAT_COMMAND_RUNS: u64 = 4;

/// The formats this build reads: a format-2 or -3 data dir is read as it
/// is and takes the format of the first thing written to it that its
/// format cannot hold (a compressed segment: 3; a run of commands: 4), in
/// that write's own batch (so a read, or appends of what it can hold,
/// leave it readable by the builds before).
pub const FORMAT_VERSIONS_READ: [u64; 3] = [2, 3, 4];

/// Errors of the log layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// sled failed (I/O error, disk full, another process holds the lock).
    /// The batch in flight is not durable; retry after fixing the cause.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// Another process holds the data dir (sled takes an exclusive file
    /// lock). Stop the other `leadflow` or use another `--data-dir`.
    #[error("data dir {path} is in use by another process")]
    Locked { path: String },
    /// The data dir was written by a different, incompatible version.
    /// Use the matching binary, or export with it and import here.
    #[error("data dir format {found} is not supported by this build (expects {expected})")]
    IncompatibleFormat { found: u64, expected: u64 },
    /// Stored data breaks an invariant (a gap in sequences, an undecodable
    /// stored event). Stop; restore the data dir from a backup.
    #[error("log is corrupt: {0}")]
    Corrupt(String),
    /// The data dir's filesystem is full. The batch being written is not
    /// durable; everything acknowledged before it is. Free space (or move
    /// the data dir) and run the command again: it resumes after the last
    /// durable batch.
    #[error("disk full: the data dir {path} has no space left; everything acknowledged before is intact; free space and run again to resume")]
    DiskFull { path: String },
    /// A write would have left less free space on the data dir's
    /// filesystem than `log.disk_free_bytes_min`, so nothing of it was
    /// written (sled is not trusted at a full disk; see the durability
    /// contract). Everything acknowledged before is intact: free space (or
    /// move the data dir, or lower the floor) and run the command again.
    #[error("disk full: the data dir {path} has {} free, below the floor of {} (log.disk_free_bytes_min) plus this write's {}; nothing of it was written and everything acknowledged before is intact; free space and run again to resume", mib(*.free_bytes), mib(*.floor_bytes), mib(*.write_bytes))]
    DiskBelowFloor {
        path: String,
        free_bytes: u64,
        floor_bytes: u64,
        write_bytes: u64,
    },
    /// The disk of the data dir is full, and copying the data dir elsewhere
    /// to read it failed too (see [`EventLog::open_for_reading`]). Free
    /// space on either disk, or point `TMPDIR` at one with room.
    #[error("disk full at {path}, and reading a copy of it failed: {detail}")]
    CopyForReading { path: String, detail: String },
    /// A reading command was pointed at a directory that holds no log (a
    /// missing or mistyped `--data-dir`). Nothing was created there.
    #[error("no log at {path} (only import, run and simulate create one; check --data-dir)")]
    NoLog { path: String },
    /// The data dir's layout does not fit the command (its partition
    /// stores cannot be listed, or they are where one log was expected, or
    /// the reverse); the message says what was found and what to do.
    #[error("data dir layout: {0}")]
    Layout(String),
    /// An earlier write failed, so the log's memory is ahead of its disk.
    /// Stop and reopen the log (the engine exits; a restart recovers).
    #[error("an earlier write failed; reopen the log")]
    Poisoned,
    /// A batch tried to move a source position backwards, which would
    /// re-append inputs already consumed. A bug in the caller.
    #[error("position of {source_name} would go back from {stored} to {proposed}")]
    PositionRegressed {
        source_name: String,
        stored: u64,
        proposed: u64,
    },
}

/// Where an input came from, for tracing a rejection back to its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub source: String,
    pub offset: u64,
    /// The message key at the source (Kafka), kept for dead letters.
    pub key: Option<Vec<u8>>,
}

/// One input to [`EventLog::append`]: a decoded event, or bytes that could
/// not be decoded together with the reason.
#[derive(Clone, Debug)]
pub struct Input {
    pub record: Record,
    pub origin: Option<Origin>,
    /// The bytes as received, when the caller has them: stored with a
    /// rejection so that a dead letter carries the original message, not a
    /// re-encoding of it.
    pub original: Option<Vec<u8>>,
    /// Whether `original` is the event's own protobuf encoding: then an
    /// accepted event is stored as received; otherwise (JSON, a Schema
    /// Registry frame) it is stored re-encoded, and `original` only goes
    /// with a rejection.
    pub original_is_encoding: bool,
}

impl Input {
    pub fn event(event: LeadEvent, origin: Option<Origin>) -> Input {
        Input {
            record: Ok(event),
            origin,
            original: None,
            original_is_encoding: false,
        }
    }

    pub fn undecodable(raw: Vec<u8>, reason: Rejection, origin: Option<Origin>) -> Input {
        Input {
            record: Err((reason, raw)),
            origin,
            original: None,
            original_is_encoding: false,
        }
    }
}

/// A source position to store with a batch: the next offset to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub source: String,
    pub next_offset: u64,
}

/// What one append did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Accepted events, with their sequence numbers, in input order.
    pub accepted: Vec<(usize, u64)>,
    /// Rejected inputs (index into the batch) and why.
    pub rejected: Vec<(usize, Rejection)>,
    /// The highest sequence in the log after the append (0: empty log).
    pub last_seq: u64,
    /// Commands decided for the batch, stored in its outbox, with their
    /// command sequence numbers.
    pub commands: Vec<(u64, LeadCommand)>,
    /// Commands decided again whose id the log already holds (a re-fired
    /// deadline after a restart): dropped, so no id is ever stored twice.
    pub commands_deduplicated: u64,
    /// Events the caller had follow the batch (`append_admitted`'s
    /// `follow`) and the log accepted: index among them, sequence.
    pub followed: Vec<(usize, u64)>,
    /// Events that were to follow the batch and were rejected, and why.
    pub followed_rejected: Vec<Rejection>,
}

/// A rejected input as kept in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRejection {
    pub rseq: u64,
    pub reason: Rejection,
    pub event_id: Option<String>,
    pub lead_id: Option<String>,
    pub occurred_at_ms: Option<i64>,
    pub origin: Option<Origin>,
    /// The original bytes; for decoded events, their protobuf encoding.
    pub raw: Vec<u8>,
}

impl StoredRejection {
    /// The id this rejection makes an idempotency key of: a well-formed
    /// event id, unless the input was itself a duplicate (its id is held
    /// by the first copy already).
    pub fn idempotency_key(&self) -> Option<&str> {
        let id = self.event_id.as_deref()?;
        (is_indexable_id(id) && !self.reason.is_duplicate()).then_some(id)
    }
}

/// Whether an event id is well-formed enough to be an idempotency key
/// (malformed ids are the lifecycle's to reject, and are not remembered).
fn is_indexable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= lifecycle::ID_LEN_BYTES_MAX
}

/// Totals of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub events: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
}

pub struct EventLog {
    // The sled handles are dropped by hand (see `Drop`): after a failed
    // write, sled's own drop would wait forever for a flush that cannot
    // happen.
    db: std::mem::ManuallyDrop<sled::Db>,
    tree: std::mem::ManuallyDrop<sled::Tree>,
    snapshots: std::mem::ManuallyDrop<sled::Tree>,
    /// The data dir, for errors.
    path: std::path::PathBuf,
    /// Set when a write to sled failed (I/O, disk full): sled then cannot
    /// flush again, so the handles are leaked at drop instead of flushed.
    /// What was durable before stays durable.
    write_failed: std::cell::Cell<bool>,
    /// Since when "sent" marks (commands, dead letters) wait for a flush
    /// (see [`EventLog::flush_marks_older_than`]).
    marks_unflushed_since: std::cell::Cell<Option<std::time::Instant>>,
    /// The temporary copy this log reads, when its own disk was full (see
    /// [`EventLog::open_for_reading`]); removed after the handles drop.
    read_copy: Option<tempfile::TempDir>,
    /// The data dir's format (one of [`FORMAT_VERSIONS_READ`]).
    format: u64,
    /// zstd's level for appended segments, or `None` (stored as encoded).
    compression_level: Option<i32>,
    /// Next sequence to assign; sequences start at 1.
    next_seq: u64,
    next_rseq: u64,
    /// Next command sequence; starts at 1.
    next_cseq: u64,
    /// Lead states, timelines and the id index, built from the events on
    /// first use. Holds durable events only.
    index: std::cell::OnceCell<Index>,
    /// The sequence the stored index checkpoint covers (0: none known), so
    /// that saving an unchanged index costs no I/O, and a delta starts
    /// there.
    index_checkpoint_seq: std::cell::Cell<u64>,
    /// The rejection sequence it covers, where a delta's rejections start.
    index_checkpoint_rseq: std::cell::Cell<u64>,
    /// The deltas stored after the checkpoint's base (see
    /// [`INDEX_CHECKPOINT_DELTAS_MAX`]).
    index_checkpoint_deltas: std::cell::Cell<u32>,
    /// Set when a write failed: memory may be ahead of the disk, so the
    /// log refuses further work until it is reopened.
    poisoned: bool,
    /// The free space a write must leave on the data dir's filesystem
    /// (see `room_for`).
    disk_free_bytes_min: u64,
    /// The lifecycle rules inputs are judged by.
    rules: lifecycle::Rules,

    dead_letter_outbox: bool,
    /// The sequences with an outbox marker (commands) and a dead-letter
    /// marker (rejections), read once at open and kept by every write that
    /// adds or removes one: a metrics scrape never scans keys, and marking
    /// a copy sent twice reads no key to count once.
    commands_pending: std::cell::RefCell<std::collections::BTreeSet<u64>>,
    /// The command-id index: each stored command id's hash
    /// ([`index::id_hash`]) and the sequence of the first command stored
    /// with it, read from the commands themselves the first time a command
    /// is stored after opening (their first field: no full decode). It is
    /// the only id index of commands (no key per id): a hit is checked
    /// against the command it names, and another id of the same hash
    /// (rare) is looked for among all commands. 16 bytes and a slot per
    /// command stored.
    command_ids: std::cell::OnceCell<index::IdSeqs>,
    /// Commands acknowledged above the oldest pending one (out of order:
    /// a retry, or acks of different partitions), each with a key, so that
    /// a restart knows them sent.
    commands_sent_above: std::cell::RefCell<std::collections::BTreeSet<u64>>,
    /// Commands below this sequence may have an outbox marker of their own
    /// (data dirs written before the outbox kept only its oldest pending
    /// command): one past the highest marker found at open (0: none). Those
    /// are pending by their markers, removed as they are acknowledged;
    /// `commands_sent_below` only counts the commands from here on, so a
    /// restart while a marker is left sends again nothing acknowledged.
    outbox_markers_below: u64,
    dead_letters_pending: std::cell::RefCell<std::collections::HashSet<u64>>,
}

/// Options for opening a log.
#[derive(Clone, Debug)]
pub struct LogOptions {
    pub cache_capacity_bytes: u64,
    /// The lifecycle rules inputs are judged by (the order rule's
    /// tolerance).
    pub rules: lifecycle::Rules,
    /// Queue every rejection for publication to a dead-letter topic, in the
    /// same batch that records it (see [`EventLog::pending_dead_letters`]).
    pub dead_letter_outbox: bool,
    /// A write that would leave less free space than this on the data
    /// dir's filesystem is refused with [`LogError::DiskBelowFloor`].
    pub disk_free_bytes_min: u64,
    /// zstd's level for the batches appended, or `None` to store them as
    /// encoded (`log.compression`).
    pub compression_level: Option<i32>,
}

impl Default for LogOptions {
    fn default() -> Self {
        let c = crate::config::LogConfig::default();
        LogOptions::from(&c)
    }
}

impl From<&crate::config::LogConfig> for LogOptions {
    fn from(c: &crate::config::LogConfig) -> Self {
        LogOptions {
            cache_capacity_bytes: c.cache_capacity_bytes,
            rules: lifecycle::Rules {
                out_of_order_tolerance_ms: c.out_of_order_tolerance_ms,
            },
            dead_letter_outbox: false,
            disk_free_bytes_min: c.disk_free_bytes_min,
            compression_level: match c.compression {
                crate::config::Compression::Zstd => Some(c.compression_level),
                crate::config::Compression::None => None,
            },
        }
    }
}

const OPEN_LOCK_ATTEMPTS_MAX: u32 = 30;
const OPEN_LOCK_RETRY_MS: u64 = 100;

const META_FORMAT: &str = "format";
const META_NEXT_SEQ: &str = "next_seq";
const META_NEXT_RSEQ: &str = "next_rseq";
const META_NEXT_CSEQ: &str = "next_cseq";
const META_NEXT_HSEQ: &str = "next_hseq";
/// Every command below this sequence was acknowledged by the broker.
const META_SENT_BELOW: &str = "commands_sent_below";
/// Snapshot name of the in-memory index's checkpoint (its base: the whole
/// index); its deltas are `log-index.1`, `log-index.2`, ...
const INDEX_CHECKPOINT: &str = "log-index";

/// Deltas stored after an index checkpoint's base before the next
/// checkpoint writes a whole base again: bounds what an open reads and
/// applies (a delta holds each lead it names whole, so deltas of one busy
/// set of leads repeat them) while most checkpoints write only what
/// changed.
const INDEX_CHECKPOINT_DELTAS_MAX: u32 = 8;

/// The snapshot name of the index checkpoint's delta `n` (1-based).
fn index_delta_name(n: u32) -> String {
    format!("{INDEX_CHECKPOINT}.{n}")
}

#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
mod tests;

impl Drop for EventLog {
    fn drop(&mut self) {
        if self.write_failed.get() {
            // sled's drop flushes, and after a failed write that flush waits
            // forever (seen on a full disk: the process hung at 0% CPU).
            // Leak the handles instead: what was durable stays durable, and
            // the process can report the error and exit.
            tracing::warn!("a write to the log failed; closing it without a final flush");
            return;
        }
        // SAFETY: each handle is dropped once, here, and never used again.
        unsafe {
            std::mem::ManuallyDrop::drop(&mut self.db);
            std::mem::ManuallyDrop::drop(&mut self.tree);
            std::mem::ManuallyDrop::drop(&mut self.snapshots);
        }
    }
}

/// A byte count for people: "3.2 MiB".
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The bytes an unprivileged writer may still use on the filesystem that
/// holds `path`; `None` where that cannot be known (then no floor holds).
#[cfg(unix)]
fn disk_free_bytes(path: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
fn disk_free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// The bytes of every file under `dir` (a data dir's size on disk, as `du`
/// counts file lengths); 0 for what cannot be read.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// ENOSPC (or EDQUOT, a quota reached): the disk is full for us.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122)) || e.kind() == std::io::ErrorKind::StorageFull
}
