//! A log as a stream of chunks, and a log made again from them: how a
//! partition store travels between engines (published to a compacted
//! Kafka topic by the engine that releases the partition, read back by the
//! one that takes it over; see `bus::snapshots`).
//!
//! A chunk is `LFS1` followed by records `(tree name, key, value)`, each
//! length-prefixed; every key of every tree of the store is in exactly one
//! chunk. Loading writes them into a fresh sled database and flushes; the
//! log is then opened as usual, which checks its format marker and its
//! counters against the stored segments, so a store put together from
//! chunks that do not belong together is refused, not misread.

use super::{EventLog, LogError};
use std::path::Path;

/// The first bytes of every chunk: the layout's name and version.
const MAGIC: &[u8] = b"LFS1";

impl EventLog {
    /// Every key of every tree of this log, as a stream of records cut
    /// into chunks of at most `chunk_bytes_max` bytes (a record may span
    /// chunks: one event segment can be larger than a broker message),
    /// handed to `out` in order. Call it on a log nothing writes to (an
    /// engine's store after its final checkpoint). Returns the records
    /// dumped.
    pub fn dump_chunks(
        &self,
        chunk_bytes_max: usize,
        out: &mut dyn FnMut(Vec<u8>) -> Result<(), String>,
    ) -> Result<u64, LogError> {
        assert!(
            chunk_bytes_max > MAGIC.len(),
            "a chunk holds more than its header"
        );
        let failed =
            |detail: String| LogError::Layout(format!("dumping {}: {detail}", self.path.display()));
        let room = chunk_bytes_max - MAGIC.len();
        let mut chunk = MAGIC.to_vec();
        let mut records = 0u64;
        let mut emit = |bytes: &[u8], chunk: &mut Vec<u8>| -> Result<(), LogError> {
            let mut rest = bytes;
            while !rest.is_empty() {
                let free = room - (chunk.len() - MAGIC.len());
                let (now, later) = rest.split_at(free.min(rest.len()));
                chunk.extend_from_slice(now);
                rest = later;
                if chunk.len() - MAGIC.len() == room {
                    out(std::mem::replace(chunk, MAGIC.to_vec())).map_err(failed)?;
                }
            }
            Ok(())
        };
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            let name_len = u8::try_from(name.len())
                .map_err(|_| failed("a tree name over 255 bytes".into()))?;
            for item in tree.iter() {
                let (k, v) = item?;
                let mut record = Vec::with_capacity(1 + name.len() + 8 + k.len() + v.len());
                record.push(name_len);
                record.extend_from_slice(&name);
                for part in [&k[..], &v[..]] {
                    let len = u32::try_from(part.len())
                        .map_err(|_| failed("a value over 4 GiB".into()))?;
                    record.extend_from_slice(&len.to_be_bytes());
                    record.extend_from_slice(part);
                }
                emit(&record, &mut chunk)?;
                records += 1;
            }
        }
        if chunk.len() > MAGIC.len() {
            out(chunk).map_err(failed)?;
        }
        Ok(records)
    }
}

/// Makes the log at `dir` (which must not hold one) from `chunks`, as
/// [`EventLog::dump_chunks`] gave them, and flushes it. Returns the records
/// loaded. The caller then opens it with [`EventLog::open`], which checks it.
pub fn load_chunks(
    dir: &Path,
    chunks: &mut dyn Iterator<Item = Result<Vec<u8>, String>>,
) -> Result<u64, LogError> {
    let mut loader = StoreLoader::new(dir)?;
    for chunk in chunks {
        loader.push(&chunk.map_err(|e| loader.bad(e))?)?;
    }
    loader.finish()
}

/// [`load_chunks`] one chunk at a time, as they arrive: memory holds one
/// chunk and at most one unfinished record.
pub struct StoreLoader {
    db: sled::Db,
    dir: std::path::PathBuf,
    /// Records may span chunks: what a chunk leaves unfinished waits here.
    pending: Vec<u8>,
    records: u64,
}

impl StoreLoader {
    /// A loader into `dir`, which must not hold a log.
    pub fn new(dir: &Path) -> Result<StoreLoader, LogError> {
        if super::stores::holds_log(dir) {
            return Err(LogError::Layout(format!(
                "{} already holds a log; a store is loaded into an empty place only",
                dir.display()
            )));
        }
        Ok(StoreLoader {
            db: sled::Config::new().path(dir).open()?,
            dir: dir.to_path_buf(),
            pending: Vec::new(),
            records: 0,
        })
    }

    fn bad(&self, detail: String) -> LogError {
        LogError::Corrupt(format!(
            "a store's chunks for {}: {detail}",
            self.dir.display()
        ))
    }

    /// Writes the records `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), LogError> {
        let body = chunk
            .strip_prefix(MAGIC)
            .ok_or_else(|| self.bad("not a store chunk".into()))?;
        self.pending.extend_from_slice(body);
        let mut batches: std::collections::BTreeMap<Vec<u8>, sled::Batch> = Default::default();
        let mut rest = &self.pending[..];
        while let Some((name, key, value, r)) = record(rest) {
            batches.entry(name.to_vec()).or_default().insert(key, value);
            self.records += 1;
            rest = r;
        }
        let consumed = self.pending.len() - rest.len();
        for (name, batch) in batches {
            self.db.open_tree(name)?.apply_batch(batch)?;
        }
        self.pending.drain(..consumed);
        Ok(())
    }

    /// Checks nothing is left unfinished and flushes; returns the records
    /// loaded.
    pub fn finish(self) -> Result<u64, LogError> {
        if !self.pending.is_empty() {
            return Err(self.bad(format!(
                "a cut record ({} bytes left over)",
                self.pending.len()
            )));
        }
        self.db.flush()?;
        Ok(self.records)
    }
}

/// The first whole record of `b` (tree name, key, value) and what follows
/// it; `None` when `b` holds no whole record.
#[allow(clippy::type_complexity)]
fn record(b: &[u8]) -> Option<(&[u8], &[u8], &[u8], &[u8])> {
    let (name, r) = take(b, usize::from(*b.first()?), 1)?;
    let (key, r) = take_u32(r)?;
    let (value, r) = take_u32(r)?;
    Some((name, key, value, r))
}

/// `len` bytes after `skip` bytes of `b`, and what follows them.
fn take(b: &[u8], len: usize, skip: usize) -> Option<(&[u8], &[u8])> {
    let b = b.get(skip..)?;
    Some((b.get(..len)?, b.get(len..)?))
}

/// A u32-length-prefixed field of `b`, and what follows it.
fn take_u32(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    take(b, len, 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::build;
    use crate::log::{Input, LogOptions, Origin, Position};

    #[test]
    fn a_store_dumped_in_chunks_loads_into_the_same_log() {
        // Given a log with 300 events, a rejection and a position.
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(&dir.path().join("a"), &LogOptions::default()).unwrap();
        let inputs: Vec<Input> = (0..300)
            .map(|n| {
                let e = build::created(&format!("e-{n}"), &format!("lead-{}", n % 250))
                    .at(1_790_000_000_000 + n)
                    .event();
                let origin = Origin {
                    source: "kafka:t/3".into(),
                    offset: n as u64,
                    key: None,
                };
                Input::event(e, Some(origin))
            })
            .collect();
        let positions = [Position {
            source: "kafka:t/3".into(),
            next_offset: 300,
        }];
        log.append(&inputs, &positions).unwrap();
        // When it is dumped in small chunks and loaded elsewhere.
        let mut chunks = Vec::new();
        let dumped = log
            .dump_chunks(4_096, &mut |c| {
                chunks.push(c);
                Ok(())
            })
            .unwrap();
        assert!(chunks.len() > 3, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= 4_096), "every chunk fits");
        let to = dir.path().join("b");
        let loaded = load_chunks(&to, &mut chunks.clone().into_iter().map(Ok)).unwrap();
        assert_eq!(loaded, dumped);
        // Then the loaded log holds the same events, rejections and
        // position, and passes the checks of opening.
        let copy = EventLog::open(&to, &LogOptions::default()).unwrap();
        assert_eq!(copy.last_seq(), log.last_seq());
        assert_eq!(
            copy.stats().unwrap().rejected,
            log.stats().unwrap().rejected
        );
        assert_eq!(copy.position("kafka:t/3").unwrap(), Some(300));
        let ids = |l: &EventLog| -> Vec<String> {
            l.events_from(1).map(|e| e.unwrap().1.event_id).collect()
        };
        assert_eq!(ids(&copy), ids(&log));
        // And loading over an existing log, or a damaged chunk, is refused.
        assert!(load_chunks(&to, &mut chunks.clone().into_iter().map(Ok)).is_err());
        let mut cut = chunks[0].clone();
        cut.truncate(cut.len() - 3);
        let err = load_chunks(&dir.path().join("c"), &mut std::iter::once(Ok(cut))).unwrap_err();
        assert!(err.to_string().contains("a cut record"), "{err}");
    }
}
