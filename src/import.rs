//! File import: reads an event file and appends it to the log in group-
//! committed batches, storing the file position with each batch so that an
//! interrupted import resumes exactly after its last durable record.
//!
//! The source position counts records (not bytes): record `n` (0-based) is
//! durable iff the stored position is greater than `n`.

use crate::codec::stream::EventReader;
use crate::config::LogConfig;
use crate::log::{Batcher, EventLog, Input, LogError, Origin, Position};
use std::io::{self, BufRead};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read (I/O error or a truncated record). What
    /// was appended before stays; rerun to resume.
    #[error("reading input: {0}")]
    Read(#[from] io::Error),
    /// The log refused the batch; see [`LogError`].
    #[error(transparent)]
    Log(#[from] LogError),
    /// The file ends inside a record (a cut tail, or bytes that are not
    /// length-delimited protobuf). Every record before it is appended or
    /// rejected, and the broken part is kept as one `undecodable` rejection;
    /// a rerun appends nothing new. Repair or re-export the file.
    #[error("the file ends inside a record that starts at byte {byte_offset}: the records before it are imported, the broken part is kept as an undecodable rejection")]
    Truncated { byte_offset: u64 },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Records read and appended by this run.
    pub records: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Records skipped because an earlier run already made them durable.
    pub skipped: u64,
}

/// What one durable batch covered.
#[derive(Clone, Copy, Debug)]
pub struct BatchDone {
    /// Records of the source that are now durable.
    pub next_offset: u64,
    pub last_seq: u64,
}

/// Imports every record of `reader` not yet durable for `source`.
pub fn import<R: BufRead>(
    log: &mut EventLog,
    reader: &mut EventReader<R>,
    source: &str,
    config: &LogConfig,
    on_batch: &mut dyn FnMut(BatchDone, &EventReader<R>),
) -> Result<ImportSummary, ImportError> {
    let resume_at = log.position(source)?.unwrap_or(0);
    let started = Instant::now();
    let mut batcher = Batcher::new(config.batch_events_max, config.batch_wait_ms_max);
    let mut summary = ImportSummary::default();
    let mut offset: u64 = 0;
    let mut flush = |batcher: &mut Batcher,
                     offset: u64,
                     summary: &mut ImportSummary,
                     reader: &EventReader<R>|
     -> Result<(), ImportError> {
        let batch = batcher.take();
        let position = Position {
            source: source.to_string(),
            next_offset: offset,
        };
        let report = log.append(&batch, &[position])?;
        summary.accepted += report.accepted.len() as u64;
        summary.rejected += report.rejected.len() as u64;
        on_batch(
            BatchDone {
                next_offset: offset,
                last_seq: report.last_seq,
            },
            reader,
        );
        Ok(())
    };
    while let Some(record) = reader.next_record()? {
        offset += 1;
        if offset <= resume_at {
            summary.skipped += 1;
            continue;
        }
        summary.records += 1;
        let origin = Some(Origin {
            source: source.to_string(),
            offset: offset - 1,
            key: None,
        });
        let now_ms = started.elapsed().as_millis() as u64;
        let input = Input {
            record,
            origin,
            original: None,
            original_is_encoding: false,
        };
        if batcher.push(input, now_ms) {
            flush(&mut batcher, offset, &mut summary, reader)?;
        }
    }
    if !batcher.is_empty() {
        flush(&mut batcher, offset, &mut summary, reader)?;
    }
    if let Some(byte_offset) = reader.truncated_at() {
        return Err(ImportError::Truncated { byte_offset });
    }
    Ok(summary)
}
