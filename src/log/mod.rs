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
//!   together with an outbox marker each; the marker is removed when the
//!   command's publication is acknowledged. A crash between the append and
//!   the acknowledgement re-sends the command after restart: delivery is
//!   at-least-once, with the command's stable id for downstream dedupe.
//! - Event ids are idempotency keys: a second input with the id of an
//!   accepted event *or of a rejected one* is kept as a `duplicate`
//!   rejection, never judged again and never appended.
//! - The policy's inputs other than events (each policy version loaded,
//!   each wall-clock tick that moved its time; see [`policy_inputs`]) are
//!   stored in order with the events, keyed by the last event before them.
//!   A tick that fired commands is stored in one atomic, flushed batch with
//!   them; one that fired nothing is flushed with the next write.
//! - Sequences start at 1 and have no gaps; reading asserts it.
//! - The in-memory indexes (lead states, timelines, event ids) hold durable
//!   events only: they move forward after the batch's flush, and a failed
//!   write poisons the log until it is reopened and the indexes rebuilt.
//!
//! ## Layout
//! One sled key per batch holds the batch's events (a [`segment`], keyed by
//! its first sequence). The dedupe index and each lead's lifecycle state and
//! timeline are functions of the events, so they live in memory ([`index`])
//! and are rebuilt by scanning the log the first time they are needed after
//! opening. sled's cost is per key, so an append writes about one key per
//! batch (plus one per rejection and per command), not two per event.
//! - Projection snapshots live in their own tree and are flushed when saved;
//!   they are a cache: losing one costs a replay, never correctness.

mod batcher;
mod index;
mod keys;
mod policy_inputs;
mod segment;

pub use batcher::Batcher;

use crate::codec::{self, stream::Record};
use crate::domain::lifecycle::{self, Lead};
use crate::domain::{LeadCommand, LeadEvent, Rejection};
pub use index::Seen;
use index::{IdProbe, Index, LeadEntry};
use keys::*;
use segment::{Segment, SegmentWriter};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The on-disk format this build writes and reads. Format 1 also stored
/// the id index and lead records as sled keys.
pub const FORMAT_VERSION: u64 = 2;

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
    /// The disk of the data dir is full, and copying the data dir elsewhere
    /// to read it failed too (see [`EventLog::open_for_reading`]). Free
    /// space on either disk, or point `TMPDIR` at one with room.
    #[error("disk full at {path}, and reading a copy of it failed: {detail}")]
    CopyForReading { path: String, detail: String },
    /// A reading command was pointed at a directory that holds no log (a
    /// missing or mistyped `--data-dir`). Nothing was created there.
    #[error("no log at {path} (only import, run and simulate create one; check --data-dir)")]
    NoLog { path: String },
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
    /// Next sequence to assign; sequences start at 1.
    next_seq: u64,
    next_rseq: u64,
    /// Next command sequence; starts at 1.
    next_cseq: u64,
    /// Lead states, timelines and the id index, built from the events on
    /// first use. Holds durable events only.
    index: std::cell::OnceCell<Index>,
    /// The sequence the stored index checkpoint covers (0: none known), so
    /// that saving an unchanged index costs no I/O.
    index_checkpoint_seq: std::cell::Cell<u64>,
    /// Set when a write failed: memory may be ahead of the disk, so the
    /// log refuses further work until it is reopened.
    poisoned: bool,
    /// The lifecycle rules inputs are judged by.
    rules: lifecycle::Rules,

    dead_letter_outbox: bool,
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
/// Snapshot name of the in-memory index's checkpoint.
const INDEX_CHECKPOINT: &str = "log-index";

impl EventLog {
    /// Opens the log in `dir` for a command that only reads it: a missing
    /// directory, or one without a log in it, is [`LogError::NoLog`], and
    /// nothing is created.
    pub fn open_existing(dir: &Path, options: &LogOptions) -> Result<EventLog, LogError> {
        // sled keeps its configuration in `conf` and its pages in `db`.
        if !(dir.join("conf").is_file() && dir.join("db").is_file()) {
            return Err(LogError::NoLog {
                path: dir.display().to_string(),
            });
        }
        EventLog::open(dir, options)
    }

    /// Opens an existing log for a command that only reads it (`inspect`,
    /// `stats`, `export`, `backtest`), even on a full disk: sled needs some
    /// space to open a data dir, so when the disk is full the data dir is
    /// copied to a temporary directory on another filesystem (`TMPDIR`)
    /// and read there, with a warning; the copy is removed when the log is
    /// dropped. This is what makes `export`, the backup route, work exactly
    /// when the disk has filled up.
    pub fn open_for_reading(dir: &Path, options: &LogOptions) -> Result<EventLog, LogError> {
        match EventLog::open_existing(dir, options) {
            Err(LogError::DiskFull { path }) => {
                let copy = tempfile::Builder::new()
                    .prefix("leadflow-read-")
                    .tempdir()
                    .map_err(|e| LogError::CopyForReading {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                tracing::warn!(
                    data_dir = %path,
                    copy = %copy.path().display(),
                    "the data dir's disk is full; reading a copy of it"
                );
                copy_dir(dir, copy.path()).map_err(|e| LogError::CopyForReading {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                let mut log = EventLog::open(copy.path(), options)?;
                log.read_copy = Some(copy);
                Ok(log)
            }
            other => other,
        }
    }

    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path, options: &LogOptions) -> Result<EventLog, LogError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_capacity_bytes)
            .mode(sled::Mode::HighThroughput)
            // Durability comes from the explicit flush per batch, not from a
            // background timer.
            .flush_every_ms(None);
        // sled releases its file lock from a background thread after the
        // last handle drops, so a handle of this very process that was just
        // closed may hold it for a moment: retry briefly before calling the
        // data dir taken.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    attempts += 1;
                    if attempts >= OPEN_LOCK_ATTEMPTS_MAX {
                        return Err(LogError::Locked {
                            path: dir.display().to_string(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(OPEN_LOCK_RETRY_MS));
                }
                // sled zeroes the tail of its write segment when it opens,
                // which needs a little space.
                Err(sled::Error::Io(e)) if is_disk_full(&e) => {
                    return Err(LogError::DiskFull {
                        path: dir.display().to_string(),
                    })
                }
                Err(e) => return Err(e.into()),
            }
        };
        let tree = db.open_tree("log")?;
        let snapshots = db.open_tree("snapshots")?;
        let format = tree.get(str_key(META, META_FORMAT))?;
        match format {
            None => {
                if !tree.is_empty() {
                    return Err(LogError::Corrupt("data without a format marker".into()));
                }
                tree.insert(str_key(META, META_FORMAT), &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) => {
                let found =
                    u64_value(&v).ok_or_else(|| LogError::Corrupt("format marker".into()))?;
                if found != FORMAT_VERSION {
                    return Err(LogError::IncompatibleFormat {
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
            }
        }
        let meta_u64 = |name: &str| -> Result<u64, LogError> {
            match tree.get(str_key(META, name))? {
                None => Ok(1),
                Some(v) => u64_value(&v).ok_or_else(|| LogError::Corrupt(format!("meta {name}"))),
            }
        };
        let next_seq = meta_u64(META_NEXT_SEQ)?;
        let next_rseq = meta_u64(META_NEXT_RSEQ)?;
        let next_cseq = meta_u64(META_NEXT_CSEQ)?;
        // Invariant on read: the counter agrees with the last stored segment.
        let last = match tree.scan_prefix([EVENT]).next_back().transpose()? {
            None => 0,
            Some((k, v)) => {
                let first =
                    trailing_u64(&k).ok_or_else(|| LogError::Corrupt("segment key".into()))?;
                let seg = Segment::parse(&v).map_err(LogError::Corrupt)?;
                first + seg.len() as u64 - 1
            }
        };
        if last + 1 != next_seq {
            return Err(LogError::Corrupt(format!(
                "next sequence {next_seq} does not follow last stored event {last}"
            )));
        }
        tracing::info!(
            path = %dir.display(),
            last_seq = next_seq - 1,
            rejected = next_rseq - 1,
            "event log opened"
        );
        Ok(EventLog {
            db: std::mem::ManuallyDrop::new(db),
            tree: std::mem::ManuallyDrop::new(tree),
            snapshots: std::mem::ManuallyDrop::new(snapshots),
            path: dir.to_path_buf(),
            write_failed: std::cell::Cell::new(false),
            marks_unflushed_since: std::cell::Cell::new(None),
            read_copy: None,
            next_seq,
            next_rseq,
            next_cseq,
            index: std::cell::OnceCell::new(),
            index_checkpoint_seq: std::cell::Cell::new(0),
            poisoned: false,
            rules: options.rules,
            dead_letter_outbox: options.dead_letter_outbox,
        })
    }

    /// The highest sequence stored (0 for an empty log).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The in-memory indexes, built on first use: from the last checkpoint
    /// (see [`checkpoint_index`](Self::checkpoint_index)) plus a scan of the
    /// events after it, or from a scan of the whole log.
    fn index(&self) -> Result<&Index, LogError> {
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let started = std::time::Instant::now();
        let mut index = self.load_index_checkpoint()?.unwrap_or_default();
        let mut seen = 0u64;
        for item in self.events_from(index.covered_seq + 1) {
            let (seq, event) = item?;
            // Invariant on read: stored ids are unique.
            if let Some(Seen::Event(_)) = self.seen_id(&index, &event.event_id)? {
                return Err(LogError::Corrupt(format!(
                    "event id {} is stored twice (again at {seq})",
                    event.event_id
                )));
            }
            index.fold(seq, &event).map_err(LogError::Corrupt)?;
            seen += 1;
            if seen % 1_000_000 == 0 {
                tracing::info!(events = seen, "indexing the log");
            }
        }
        // Then the ids of rejected inputs, after the events: a log written
        // before rejected ids were remembered may hold an id rejected first
        // and accepted later, and the accepted event is what it names.
        let from = seq_key(REJECTED, index.covered_rseq.saturating_add(1));
        for item in self.tree.range(from..=seq_key(REJECTED, u64::MAX)) {
            let (_, v) = item?;
            let r: StoredRejection = bincode::deserialize(&v)
                .map_err(|e| LogError::Corrupt(format!("rejection: {e}")))?;
            if let Some(id) = r.idempotency_key() {
                if self.seen_id(&index, id)?.is_none() {
                    index.insert_rejected(id, r.rseq);
                }
            }
            index.cover_rejections(r.rseq);
        }
        // Invariant on read: every stored event is indexed once.
        assert_eq!(
            index.covered_seq,
            self.last_seq(),
            "the index covers the log"
        );
        assert_eq!(
            index.events(),
            index.covered_seq,
            "one id per indexed event"
        );
        assert!(
            index.rejections() < self.next_rseq,
            "at most one id per rejection"
        );
        tracing::info!(
            from_checkpoint = index.checkpoint_seq,
            scanned = seen,
            rejected_ids = index.rejections(),
            leads = index.leads.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "log indexed"
        );
        Ok(self.index.get_or_init(|| index))
    }

    /// The index checkpoint, if there is a usable one. A checkpoint is a
    /// cache: one that does not decode or does not fit this log is ignored
    /// (with a warning) and the index is rebuilt from the events.
    fn load_index_checkpoint(&self) -> Result<Option<Index>, LogError> {
        let Some((covered, bytes)) = self.load_snapshot(INDEX_CHECKPOINT)? else {
            return Ok(None);
        };
        if covered > self.last_seq() {
            tracing::warn!(covered, "index checkpoint is ahead of the log; rebuilding");
            return Ok(None);
        }
        match Index::from_checkpoint(&bytes) {
            Ok(index) if index.covered_seq == covered => {
                self.index_checkpoint_seq.set(covered);
                Ok(Some(index))
            }
            Ok(_) => {
                tracing::warn!("index checkpoint disagrees with its header; rebuilding");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!("index checkpoint unreadable ({e}); rebuilding");
                Ok(None)
            }
        }
    }

    /// Saves the in-memory index (if this process has built it), so that
    /// the next open scans only the events after it. Its size grows with
    /// the log (about 20 bytes per event), so it is written at checkpoints
    /// and shutdown, not per batch; after a crash the next open scans from
    /// the last one. Returns whether it saved.
    pub fn checkpoint_index(&self) -> Result<bool, LogError> {
        let Some(index) = self.index.get() else {
            return Ok(false);
        };
        if self.index_checkpoint_seq.get() == index.covered_seq {
            return Ok(false);
        }
        self.save_snapshot(INDEX_CHECKPOINT, index.covered_seq, &index.to_checkpoint())?;
        self.index_checkpoint_seq.set(index.covered_seq);
        Ok(true)
    }

    /// Where the first input with this id went according to `index`,
    /// confirming a hash hit against the stored event or rejection (so a
    /// hash collision is never a false duplicate).
    fn seen_id(&self, index: &Index, event_id: &str) -> Result<Option<Seen>, LogError> {
        let IdProbe::Candidate(candidate) = index.probe(event_id) else {
            return Ok(None);
        };
        let stored_id = match candidate {
            Seen::Event(seq) => {
                self.event(seq)?
                    .ok_or_else(|| LogError::Corrupt(format!("id index points at missing {seq}")))?
                    .event_id
            }
            Seen::Rejection(rseq) => {
                self.rejection(rseq)?
                    .and_then(|r| r.event_id)
                    .ok_or_else(|| {
                        LogError::Corrupt(format!("id index points at missing rejection {rseq}"))
                    })?
            }
        };
        if stored_id == event_id {
            return Ok(Some(candidate));
        }
        Ok(index.collided(event_id))
    }

    fn lead_entry(&self, lead_id: &str) -> Result<Option<&LeadEntry>, LogError> {
        Ok(self.index()?.leads.get(lead_id))
    }

    /// The lifecycle state of one lead, as validation sees it.
    pub fn lead_state(&self, lead_id: &str) -> Result<Option<Lead>, LogError> {
        Ok(self.lead_entry(lead_id)?.map(|r| r.lead.clone()))
    }

    /// Validates and appends a batch atomically and durably; see the module
    /// docs for the contract. `positions` are stored in the same batch.
    pub fn append(
        &mut self,
        inputs: &[Input],
        positions: &[Position],
    ) -> Result<AppendReport, LogError> {
        self.append_with(inputs, positions, &mut |_, _| Vec::new())
    }

    /// Like [`append`](Self::append), and asks `decide` after each accepted
    /// event (in sequence order) which commands it causes; they go into the
    /// outbox in the same atomic batch. `decide` is called before the batch
    /// is durable: if the append fails, whatever state `decide` folded is
    /// ahead of the log and the caller must rebuild it (the engine stops).
    pub fn append_with(
        &mut self,
        inputs: &[Input],
        positions: &[Position],
        decide: &mut dyn FnMut(u64, &LeadEvent) -> Vec<LeadCommand>,
    ) -> Result<AppendReport, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        self.index()?;
        let mut next_cseq = self.next_cseq;
        let started = std::time::Instant::now();
        let mut batch = sled::Batch::default();
        let mut report = AppendReport::default();
        let mut next_seq = self.next_seq;
        let mut next_rseq = self.next_rseq;
        // In-batch views: lead states and ids written by earlier inputs of
        // this batch are not in sled yet.
        let mut overlay: HashMap<&str, Lead> = HashMap::new();
        let mut segment = SegmentWriter::new();
        let mut ids_in_batch: HashMap<&str, Seen> = HashMap::new();
        // Rejected inputs whose ids become idempotency keys, for the index.
        let mut rejected_ids: Vec<(&str, u64)> = Vec::new();
        let mut counters: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut command_ids_in_batch: HashMap<String, u64> = HashMap::new();

        for (index, input) in inputs.iter().enumerate() {
            let outcome = match &input.record {
                Err((reason, _)) => Err(reason.clone()),
                Ok(event) => self.validate(event, &overlay, &ids_in_batch)?,
            };
            match outcome {
                Ok(lead) => {
                    let event = input.record.as_ref().expect("validated events decode");
                    let seq = next_seq;
                    next_seq += 1;
                    // The bytes as received decode to this very event, so
                    // they are stored as they are (no re-encoding).
                    match &input.original {
                        Some(bytes) if input.original_is_encoding => segment.push(bytes),
                        _ => segment.push(&codec::encode_event(event)),
                    }
                    ids_in_batch.insert(&event.event_id, Seen::Event(seq));
                    overlay.insert(&event.lead_id, lead);
                    report.accepted.push((index, seq));
                    for command in decide(seq, event) {
                        if self.command_known(&command.command_id, &command_ids_in_batch)? {
                            report.commands_deduplicated += 1;
                            continue;
                        }
                        let cseq = next_cseq;
                        next_cseq += 1;
                        stage_command(&mut batch, &mut command_ids_in_batch, cseq, &command);
                        report.commands.push((cseq, command));
                    }
                }
                Err(reason) => {
                    let rseq = next_rseq;
                    next_rseq += 1;
                    let (event_id, lead_id, occurred_at_ms, raw) = match &input.record {
                        Ok(e) => (
                            Some(e.event_id.clone()),
                            Some(e.lead_id.clone()),
                            Some(e.occurred_at_ms),
                            input
                                .original
                                .clone()
                                .unwrap_or_else(|| codec::encode_event(e)),
                        ),
                        Err((_, raw)) => (None, None, None, raw.clone()),
                    };
                    if let Some(lead) = &lead_id {
                        if !lead.is_empty() && lead.len() <= lifecycle::ID_LEN_BYTES_MAX {
                            batch.insert(lead_seq_key(LEAD_REJECTED, lead, rseq), &[]);
                        }
                    }
                    *counters.entry(reason.code()).or_default() += 1;
                    if let Ok(e) = &input.record {
                        if is_indexable_id(&e.event_id) && !reason.is_duplicate() {
                            ids_in_batch.insert(&e.event_id, Seen::Rejection(rseq));
                            rejected_ids.push((&e.event_id, rseq));
                        }
                    }
                    let stored = StoredRejection {
                        rseq,
                        reason: reason.clone(),
                        event_id,
                        lead_id,
                        occurred_at_ms,
                        origin: input.origin.clone(),
                        raw,
                    };
                    let bytes = bincode::serialize(&stored).expect("rejections serialise");
                    batch.insert(&seq_key(REJECTED, rseq), bytes);
                    if self.dead_letter_outbox {
                        batch.insert(&seq_key(DEAD_LETTER, rseq), &[]);
                    }
                    report.rejected.push((index, reason));
                }
            }
        }

        if !segment.is_empty() {
            batch.insert(&seq_key(EVENT, self.next_seq), segment.finish());
        }
        for (code, n) in &counters {
            let key = str_key(COUNTER, code);
            let old = self
                .tree
                .get(&key)?
                .and_then(|v| u64_value(&v))
                .unwrap_or(0);
            batch.insert(key, &(old + n).to_be_bytes());
        }
        for p in positions {
            let key = str_key(POSITION, &p.source);
            if let Some(stored) = self.tree.get(&key)?.and_then(|v| u64_value(&v)) {
                if p.next_offset < stored {
                    return Err(LogError::PositionRegressed {
                        source_name: p.source.clone(),
                        stored,
                        proposed: p.next_offset,
                    });
                }
            }
            batch.insert(key, &p.next_offset.to_be_bytes());
        }
        batch.insert(str_key(META, META_NEXT_SEQ), &next_seq.to_be_bytes());
        batch.insert(str_key(META, META_NEXT_RSEQ), &next_rseq.to_be_bytes());
        batch.insert(str_key(META, META_NEXT_CSEQ), &next_cseq.to_be_bytes());

        let prepared = started.elapsed();
        // `decide` has folded the batch into the caller's state: if the
        // write fails, that state is ahead of the disk, and so is ours.
        if let Err(e) = self.write(batch) {
            self.poisoned = true;
            return Err(e);
        }
        let written = started.elapsed();

        // Only now, with the batch durable, does memory move forward.
        self.next_seq = next_seq;
        self.next_rseq = next_rseq;
        self.next_cseq = next_cseq;
        let index = self.index.get_mut().expect("indexed above");
        for (lead_id, lead) in overlay {
            index.set_lead(lead_id, lead);
        }
        for (i, seq) in &report.accepted {
            let event = inputs[*i].record.as_ref().expect("accepted events decode");
            index.insert(&event.event_id, &event.lead_id, *seq);
        }
        for (id, rseq) in rejected_ids {
            index.insert_rejected(id, rseq);
        }
        index.cover_rejections(self.next_rseq - 1);
        report.last_seq = self.next_seq - 1;
        tracing::debug!(
            accepted = report.accepted.len(),
            rejected = report.rejected.len(),
            last_seq = report.last_seq,
            prepare_us = prepared.as_micros() as u64,
            write_us = (written - prepared).as_micros() as u64,
            "batch appended"
        );
        debug_assert_eq!(
            report.accepted.len() + report.rejected.len(),
            inputs.len(),
            "every input is accepted or rejected"
        );
        Ok(report)
    }

    /// Applies one atomic batch and flushes (fsync): durable on `Ok`.
    fn write(&self, batch: sled::Batch) -> Result<(), LogError> {
        self.written(self.tree.apply_batch(batch))?;
        self.flush()
    }

    /// The outcome of a write to sled: a failure is remembered (see
    /// `write_failed`) and a full disk named as such.
    fn written<T>(&self, r: sled::Result<T>) -> Result<T, LogError> {
        r.map_err(|e| {
            self.write_failed.set(true);
            match &e {
                sled::Error::Io(io) if is_disk_full(io) => LogError::DiskFull {
                    path: self.path.display().to_string(),
                },
                _ => LogError::Storage(e),
            }
        })
    }

    /// The lifecycle verdict for one event; `Err` only for storage errors,
    /// which abort the whole batch rather than turn into a wrong verdict.
    fn validate(
        &self,
        event: &LeadEvent,
        overlay: &HashMap<&str, Lead>,
        ids_in_batch: &HashMap<&str, Seen>,
    ) -> Result<Result<Lead, Rejection>, LogError> {
        let index = self.index()?;
        // Malformed ids are the lifecycle's to reject; only well-formed ones
        // are looked up in the id index.
        if is_indexable_id(&event.event_id) {
            let seen = match ids_in_batch.get(event.event_id.as_str()) {
                Some(seen) => Some(*seen),
                None => self.seen_id(index, &event.event_id)?,
            };
            match seen {
                Some(Seen::Event(first_seq)) => return Ok(Err(Rejection::Duplicate { first_seq })),
                Some(Seen::Rejection(first_rseq)) => {
                    return Ok(Err(Rejection::DuplicateOfRejected { first_rseq }))
                }
                None => {}
            }
        }
        let state = match overlay.get(event.lead_id.as_str()) {
            Some(lead) => Some(lead),
            None => index.leads.get(&event.lead_id).map(|e| &e.lead),
        };
        Ok(lifecycle::handle_with(state, event, &self.rules))
    }

    /// Accepted events with sequence `>= from_seq`, in order.
    pub fn events_from(
        &self,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<(u64, LeadEvent), LogError>> + '_ {
        events_in(&self.tree, from_seq)
    }

    /// A read-only view of the stored events for another thread.
    pub fn reader(&self) -> LogReader {
        LogReader {
            tree: (*self.tree).clone(),
        }
    }

    /// One event by sequence.
    pub fn event(&self, seq: u64) -> Result<Option<LeadEvent>, LogError> {
        let Some((k, v)) = self
            .tree
            .range(seq_key(EVENT, 0)..=seq_key(EVENT, seq))
            .next_back()
            .transpose()?
        else {
            return Ok(None);
        };
        let first = trailing_u64(&k).ok_or_else(|| LogError::Corrupt("segment key".into()))?;
        let seg = Segment::parse(&v).map_err(LogError::Corrupt)?;
        let index = (seq - first) as usize;
        if index >= seg.len() {
            return Ok(None);
        }
        codec::decode_event(seg.get(index))
            .map(Some)
            .map_err(|e| LogError::Corrupt(format!("event {seq}: {e}")))
    }

    /// Where the first copy of an event id went, if the log holds it: an
    /// accepted event, or a rejection kept as an idempotency key (see
    /// [`StoredRejection::idempotency_key`]).
    pub fn first_copy_of(&self, event_id: &str) -> Result<Option<Seen>, LogError> {
        self.seen_id(self.index()?, event_id)
    }

    /// The sequence of a stored event id.
    pub fn seq_of(&self, event_id: &str) -> Result<Option<u64>, LogError> {
        Ok(match self.seen_id(self.index()?, event_id)? {
            Some(Seen::Event(seq)) => Some(seq),
            _ => None,
        })
    }

    /// One lead's accepted events, in log order.
    pub fn timeline(&self, lead_id: &str) -> Result<Vec<(u64, LeadEvent)>, LogError> {
        let Some(record) = self.lead_entry(lead_id)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(record.timeline.len());
        for &seq in &record.timeline {
            let event = self.event(seq)?.ok_or_else(|| {
                LogError::Corrupt(format!("timeline points at missing event {seq}"))
            })?;
            assert_eq!(event.lead_id, lead_id, "timeline names the wrong lead");
            out.push((seq, event));
        }
        Ok(out)
    }

    /// One lead's rejected events, in arrival order.
    pub fn lead_rejections(&self, lead_id: &str) -> Result<Vec<StoredRejection>, LogError> {
        let mut out = Vec::new();
        for k in self
            .tree
            .scan_prefix(lead_prefix(LEAD_REJECTED, lead_id))
            .keys()
        {
            let rseq =
                trailing_u64(&k?).ok_or_else(|| LogError::Corrupt("rejection key".into()))?;
            if let Some(r) = self.rejection(rseq)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub fn rejection(&self, rseq: u64) -> Result<Option<StoredRejection>, LogError> {
        match self.tree.get(seq_key(REJECTED, rseq))? {
            None => Ok(None),
            Some(v) => bincode::deserialize(&v)
                .map(Some)
                .map_err(|e| LogError::Corrupt(format!("rejection {rseq}: {e}"))),
        }
    }

    /// All rejected inputs, in arrival order.
    pub fn rejections(&self) -> impl Iterator<Item = Result<StoredRejection, LogError>> + '_ {
        self.tree.scan_prefix([REJECTED]).values().map(|v| {
            bincode::deserialize(&v?).map_err(|e| LogError::Corrupt(format!("rejection: {e}")))
        })
    }

    /// Rejections queued for the dead-letter topic and not yet marked sent,
    /// oldest first, at most `limit`.
    pub fn pending_dead_letters(&self, limit: usize) -> Result<Vec<StoredRejection>, LogError> {
        let mut out = Vec::new();
        for k in self.tree.scan_prefix([DEAD_LETTER]).keys().take(limit) {
            let rseq =
                trailing_u64(&k?).ok_or_else(|| LogError::Corrupt("dead letter key".into()))?;
            let r = self
                .rejection(rseq)?
                .ok_or_else(|| LogError::Corrupt(format!("dead letter {rseq} has no rejection")))?;
            out.push(r);
        }
        Ok(out)
    }

    /// How many dead letters wait for publication (keys only: cheap enough
    /// for every metrics scrape).
    pub fn dead_letters_pending(&self) -> Result<u64, LogError> {
        let mut n = 0;
        for k in self.tree.scan_prefix([DEAD_LETTER]).keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// Marks dead letters as published. Not flushed by itself (one fsync
    /// per acknowledgement would cost more than the publishing): the
    /// caller flushes within a bound with
    /// [`flush_marks_older_than`](Self::flush_marks_older_than); a crash
    /// before that re-sends them (at-least-once).
    pub fn mark_dead_letters_sent(&self, rseqs: &[u64]) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        for r in rseqs {
            batch.remove(&seq_key(DEAD_LETTER, *r));
        }
        self.written(self.tree.apply_batch(batch))?;
        self.marks_written(rseqs.len());
        Ok(())
    }

    fn marks_written(&self, n: usize) {
        if n > 0 && self.marks_unflushed_since.get().is_none() {
            self.marks_unflushed_since
                .set(Some(std::time::Instant::now()));
        }
    }

    /// Flushes when "sent" marks have waited at least `age` for one, and
    /// says whether it did. With the engine calling it on every turn of its
    /// loop, a mark is durable at most `age` (plus one turn) after it was
    /// made: that bounds what a crash sends again.
    pub fn flush_marks_older_than(&self, age: std::time::Duration) -> Result<bool, LogError> {
        match self.marks_unflushed_since.get() {
            Some(since) if since.elapsed() >= age => {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn command_known(&self, id: &str, in_batch: &HashMap<String, u64>) -> Result<bool, LogError> {
        Ok(in_batch.contains_key(id) || self.tree.get(str_key(COMMAND_ID, id))?.is_some())
    }

    /// Stages the commands whose ids the log does not hold yet (and the
    /// next command sequence, when there are any) into `batch`. Returns
    /// them with their sequences, and the next sequence once the batch is
    /// written.
    fn stage_new_commands(
        &self,
        batch: &mut sled::Batch,
        commands: Vec<LeadCommand>,
    ) -> Result<(Vec<(u64, LeadCommand)>, u64), LogError> {
        let mut in_batch = HashMap::new();
        let mut stored = Vec::new();
        let mut next_cseq = self.next_cseq;
        for command in commands {
            if self.command_known(&command.command_id, &in_batch)? {
                continue;
            }
            let cseq = next_cseq;
            next_cseq += 1;
            stage_command(batch, &mut in_batch, cseq, &command);
            stored.push((cseq, command));
        }
        if !stored.is_empty() {
            batch.insert(str_key(META, META_NEXT_CSEQ), &next_cseq.to_be_bytes());
        }
        Ok((stored, next_cseq))
    }

    /// Stores commands decided outside any event batch (deadlines fired by
    /// the wall clock) in the outbox, atomically and durably, dropping any
    /// whose id the log already holds. Returns those stored.
    pub fn append_commands(
        &mut self,
        commands: Vec<LeadCommand>,
    ) -> Result<Vec<(u64, LeadCommand)>, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let mut batch = sled::Batch::default();
        let (stored, next_cseq) = self.stage_new_commands(&mut batch, commands)?;
        if stored.is_empty() {
            return Ok(stored);
        }
        if let Err(e) = self.write(batch) {
            self.poisoned = true;
            return Err(e);
        }
        self.next_cseq = next_cseq;
        Ok(stored)
    }

    /// Stores commands of the shadow policy: kept for comparison, never
    /// published. One small batch and flush of its own, after the events'
    /// batch (a crash in between loses shadow commands, never live ones).
    pub fn append_shadow(&mut self, commands: &[LeadCommand]) -> Result<(), LogError> {
        if commands.is_empty() {
            return Ok(());
        }
        let mut next = match self.tree.get(str_key(META, META_NEXT_HSEQ))? {
            None => 1,
            Some(v) => u64_value(&v).ok_or_else(|| LogError::Corrupt("meta next_hseq".into()))?,
        };
        let mut batch = sled::Batch::default();
        for c in commands {
            batch.insert(&seq_key(SHADOW, next), codec::encode_command(c));
            next += 1;
        }
        batch.insert(str_key(META, META_NEXT_HSEQ), &next.to_be_bytes());
        self.written(self.tree.apply_batch(batch))?;
        self.written(self.db.flush())?;
        Ok(())
    }

    /// Every command the shadow policy decided, in order.
    pub fn shadow_commands(&self) -> impl Iterator<Item = Result<LeadCommand, LogError>> + '_ {
        self.tree.scan_prefix([SHADOW]).map(|kv| {
            let (k, v) = kv?;
            codec::decode_command(&v).map_err(|e| {
                LogError::Corrupt(format!("shadow command {:?}: {e}", trailing_u64(&k)))
            })
        })
    }

    /// Commands whose publication has not been acknowledged, oldest first.
    pub fn pending_commands(&self, limit: usize) -> Result<Vec<(u64, LeadCommand)>, LogError> {
        self.pending_commands_after(0, limit)
    }

    /// Like [`pending_commands`](Self::pending_commands), only those with a
    /// command sequence above `after_cseq` (the ones a dispatcher has not
    /// sent yet).
    pub fn pending_commands_after(
        &self,
        after_cseq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, LeadCommand)>, LogError> {
        let mut out = Vec::new();
        let from = seq_key(OUTBOX, after_cseq.saturating_add(1));
        let to = seq_key(OUTBOX, u64::MAX);
        for k in self.tree.range(from..=to).keys().take(limit) {
            let cseq = trailing_u64(&k?).ok_or_else(|| LogError::Corrupt("outbox key".into()))?;
            let command = self
                .command(cseq)?
                .ok_or_else(|| LogError::Corrupt(format!("outbox entry {cseq} has no command")))?;
            out.push((cseq, command));
        }
        Ok(out)
    }

    /// One stored command.
    pub fn command(&self, cseq: u64) -> Result<Option<LeadCommand>, LogError> {
        match self.tree.get(seq_key(COMMAND, cseq))? {
            None => Ok(None),
            Some(v) => codec::decode_command(&v)
                .map(Some)
                .map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}"))),
        }
    }

    /// Every command decided so far, in decision order.
    pub fn commands(&self) -> impl Iterator<Item = Result<(u64, LeadCommand), LogError>> + '_ {
        self.tree.scan_prefix([COMMAND]).map(|kv| {
            let (k, v) = kv?;
            let cseq = trailing_u64(&k).ok_or_else(|| LogError::Corrupt("command key".into()))?;
            let command = codec::decode_command(&v)
                .map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}")))?;
            Ok((cseq, command))
        })
    }

    /// The command sequences still waiting for publication (the outbox).
    pub fn pending_command_seqs(&self) -> Result<std::collections::HashSet<u64>, LogError> {
        let mut out = std::collections::HashSet::new();
        for k in self.tree.scan_prefix([OUTBOX]).keys() {
            out.insert(trailing_u64(&k?).ok_or_else(|| LogError::Corrupt("outbox key".into()))?);
        }
        Ok(out)
    }

    /// The data dir this log lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commands decided and commands still waiting for publication.
    pub fn command_counts(&self) -> Result<(u64, u64), LogError> {
        let mut pending = 0;
        for k in self.tree.scan_prefix([OUTBOX]).keys() {
            k?;
            pending += 1;
        }
        Ok((self.next_cseq - 1, pending))
    }

    /// Marks commands as published. Not flushed by itself: see
    /// [`mark_dead_letters_sent`](Self::mark_dead_letters_sent).
    pub fn mark_commands_sent(&self, cseqs: &[u64]) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        for c in cseqs {
            batch.remove(&seq_key(OUTBOX, *c));
        }
        self.written(self.tree.apply_batch(batch))?;
        self.marks_written(cseqs.len());
        Ok(())
    }

    /// Flushes everything written so far to disk.
    pub fn flush(&self) -> Result<(), LogError> {
        // Marks made before the flush starts are in it.
        let marks = self.marks_unflushed_since.take();
        if let Err(e) = self.written(self.db.flush()) {
            self.marks_unflushed_since.set(marks);
            return Err(e);
        }
        Ok(())
    }

    /// All stored source positions whose name starts with `prefix`.
    pub fn positions(&self, prefix: &str) -> Result<Vec<(String, u64)>, LogError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(str_key(POSITION, prefix)) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            out.push((name, u64_value(&v).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Forgets the stored positions of every source whose name starts with
    /// `prefix` (durably), so that the source is read from its start again;
    /// returns what was forgotten. Safe for exactness: every event id the
    /// log holds is still remembered, so a re-read event is a `duplicate`.
    pub fn reset_positions(&mut self, prefix: &str) -> Result<Vec<(String, u64)>, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let forgotten = self.positions(prefix)?;
        let mut batch = sled::Batch::default();
        for (source, _) in &forgotten {
            batch.remove(str_key(POSITION, source));
        }
        self.write(batch)?;
        Ok(forgotten)
    }

    /// The stored next offset of a source, if it has one.
    pub fn position(&self, source: &str) -> Result<Option<u64>, LogError> {
        Ok(self
            .tree
            .get(str_key(POSITION, source))?
            .and_then(|v| u64_value(&v)))
    }

    pub fn stats(&self) -> Result<LogStats, LogError> {
        let mut by_reason = BTreeMap::new();
        for kv in self.tree.scan_prefix([COUNTER]) {
            let (k, v) = kv?;
            let code = String::from_utf8_lossy(&k[1..]).into_owned();
            by_reason.insert(code, u64_value(&v).unwrap_or(0));
        }
        Ok(LogStats {
            events: self.next_seq - 1,
            rejected: self.next_rseq - 1,
            rejected_by_reason: by_reason,
        })
    }

    /// Stores a projection snapshot covering events up to `covered_seq`.
    pub fn save_snapshot(
        &self,
        name: &str,
        covered_seq: u64,
        bytes: &[u8],
    ) -> Result<(), LogError> {
        assert!(
            covered_seq <= self.last_seq(),
            "a snapshot cannot cover the future"
        );
        let mut v = Vec::with_capacity(8 + bytes.len());
        v.extend_from_slice(&covered_seq.to_be_bytes());
        v.extend_from_slice(bytes);
        self.written(self.snapshots.insert(name.as_bytes(), v))?;
        self.written(self.snapshots.flush())?;
        Ok(())
    }

    /// The latest snapshot by that name: (covered sequence, bytes).
    pub fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        match self.snapshots.get(name.as_bytes())? {
            None => Ok(None),
            Some(v) if v.len() >= 8 => {
                let seq = u64_value(&v[..8]).expect("8 bytes");
                Ok(Some((seq, v[8..].to_vec())))
            }
            Some(_) => Err(LogError::Corrupt(format!("snapshot {name}"))),
        }
    }

    pub fn delete_snapshot(&self, name: &str) -> Result<(), LogError> {
        self.written(self.snapshots.remove(name.as_bytes()))?;
        self.written(self.snapshots.flush())?;
        Ok(())
    }
}

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

/// Copies a data dir (files and subdirectories) to `to`.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// ENOSPC (or EDQUOT, a quota reached): the disk is full for us.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122)) || e.kind() == std::io::ErrorKind::StorageFull
}

/// A read-only view of the log's stored events, for a reader on another
/// thread (the HTTP API's replays of a past moment): sled trees are safe to
/// share, so reading through it takes no engine lock and never stalls
/// ingestion. It sees every batch made durable before each step.
#[derive(Clone)]
pub struct LogReader {
    tree: sled::Tree,
}

impl LogReader {
    /// Accepted events with sequence `>= from_seq`, in order.
    pub fn events_from(
        &self,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<(u64, LeadEvent), LogError>> + '_ {
        events_in(&self.tree, from_seq)
    }
}

/// Accepted events of `tree` with sequence `>= from_seq`, in order.
fn events_in(
    tree: &sled::Tree,
    from_seq: u64,
) -> impl Iterator<Item = Result<(u64, LeadEvent), LogError>> + '_ {
    let from_seq = from_seq.max(1);
    // Start at the segment that contains `from_seq`.
    let start = match tree
        .range(seq_key(EVENT, 0)..=seq_key(EVENT, from_seq))
        .next_back()
    {
        Some(Ok((k, _))) => trailing_u64(&k).unwrap_or(from_seq),
        _ => from_seq,
    };
    let mut expected = start;
    tree.range(seq_key(EVENT, start)..=seq_key(EVENT, u64::MAX))
        .flat_map(move |kv| -> Vec<Result<(u64, LeadEvent), LogError>> {
            let decoded = (|| {
                let (k, v) = kv?;
                let first =
                    trailing_u64(&k).ok_or_else(|| LogError::Corrupt("segment key".into()))?;
                // Invariant on read: segments follow each other without gaps.
                if first != expected {
                    return Err(LogError::Corrupt(format!(
                        "expected a segment at {expected}, found {first}"
                    )));
                }
                let seg = Segment::parse(&v).map_err(LogError::Corrupt)?;
                expected += seg.len() as u64;
                let mut out = Vec::with_capacity(seg.len());
                for i in 0..seg.len() {
                    let seq = first + i as u64;
                    if seq < from_seq {
                        continue;
                    }
                    let event = codec::decode_event(seg.get(i))
                        .map_err(|e| LogError::Corrupt(format!("event {seq}: {e}")))?;
                    out.push(Ok((seq, event)));
                }
                Ok(out)
            })();
            match decoded {
                Ok(events) => events,
                Err(e) => vec![Err(e)],
            }
        })
}

/// Puts a command into a batch: the command, its outbox marker and its id
/// in the id index (so that no id is ever stored twice).
fn stage_command(
    batch: &mut sled::Batch,
    ids_in_batch: &mut HashMap<String, u64>,
    cseq: u64,
    command: &LeadCommand,
) {
    batch.insert(&seq_key(COMMAND, cseq), codec::encode_command(command));
    batch.insert(&seq_key(OUTBOX, cseq), &[]);
    batch.insert(
        str_key(COMMAND_ID, &command.command_id),
        &cseq.to_be_bytes(),
    );
    ids_in_batch.insert(command.command_id.clone(), cseq);
}
