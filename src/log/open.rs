//! Opening a data dir: the format marker, the counters checked against
//! the stored segments, sled's file lock, and the copy a reading command
//! opens when the disk is full.

use super::*;

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
            .flush_every_ms(None)
            .segment_size(segment_bytes(dir, options));
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
        let format = match tree.get(str_key(META, META_FORMAT))? {
            None => {
                if !tree.is_empty() {
                    return Err(LogError::Corrupt("data without a format marker".into()));
                }
                tree.insert(str_key(META, META_FORMAT), &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
                FORMAT_VERSION
            }
            Some(v) => {
                let found =
                    u64_value(&v).ok_or_else(|| LogError::Corrupt("format marker".into()))?;
                if !FORMAT_VERSIONS_READ.contains(&found) {
                    return Err(LogError::IncompatibleFormat {
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
                found
            }
        };
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
                let raw = segment::layout(&v).map_err(LogError::Corrupt)?;
                let seg = Segment::parse(&raw).map_err(LogError::Corrupt)?;
                first + seg.len() as u64 - 1
            }
        };
        if last + 1 != next_seq {
            return Err(LogError::Corrupt(format!(
                "next sequence {next_seq} does not follow last stored event {last}"
            )));
        }
        let marked = |prefix: u8| -> Result<std::collections::HashSet<u64>, LogError> {
            let mut out = std::collections::HashSet::new();
            for k in tree.scan_prefix([prefix]).keys() {
                out.insert(
                    trailing_u64(&k?).ok_or_else(|| LogError::Corrupt("marker key".into()))?,
                );
            }
            Ok(out)
        };
        // The pending commands: those from the oldest not acknowledged on,
        // and those a data dir written before kept a marker for (it has no
        // `commands_sent_below`: its unmarked commands were all sent).
        let markers = marked(OUTBOX)?;
        let outbox_markers_below = markers.iter().max().map_or(0, |m| m + 1);
        let sent_below = match tree.get(str_key(META, META_SENT_BELOW))? {
            None => next_cseq,
            Some(v) => u64_value(&v).ok_or_else(|| LogError::Corrupt("meta sent_below".into()))?,
        };
        if sent_below > next_cseq {
            return Err(LogError::Corrupt(format!(
                "commands sent below {sent_below}, but only {} were stored",
                next_cseq - 1
            )));
        }
        let commands_sent_above: std::collections::BTreeSet<u64> =
            marked(SENT_ABOVE)?.into_iter().collect();
        let mut commands_pending: std::collections::BTreeSet<u64> = markers.into_iter().collect();
        commands_pending
            .extend((sent_below..next_cseq).filter(|s| !commands_sent_above.contains(s)));
        let dead_letters_pending = marked(DEAD_LETTER)?;
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
            format,
            compression_level: options.compression_level,
            next_seq,
            next_rseq,
            next_cseq,
            index: std::cell::OnceCell::new(),
            index_checkpoint_seq: std::cell::Cell::new(0),
            index_checkpoint_rseq: std::cell::Cell::new(0),
            index_checkpoint_deltas: std::cell::Cell::new(0),
            poisoned: false,
            rules: options.rules,
            dead_letter_outbox: options.dead_letter_outbox,
            disk_free_bytes_min: options.disk_free_bytes_min,
            commands_pending: std::cell::RefCell::new(commands_pending),
            outbox_markers_below,
            commands_sent_above: std::cell::RefCell::new(commands_sent_above),
            command_ids: std::cell::OnceCell::new(),
            dead_letters_pending: std::cell::RefCell::new(dead_letters_pending),
        })
    }
}

/// Copies a data dir (files and subdirectories) to `to`.
pub(super) fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
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

/// sled's segment size for new uncompressed data dirs. sled writes a page
/// larger than a quarter of a segment to a file of its own and keeps the
/// old ones until it reclaims them, which it seldom does: with its default
/// 512 KiB, an uncompressed batch segment (~160 KB at 2,000 events) and the
/// leaf holding it went that way, and a data dir grew to 3.46 × its events
/// as protobuf. At 1 MiB they stay in sled's own log, whose segments it
/// cleans: 1.43–1.54 ×. Larger segments leave more partly filled ones
/// behind (2 MiB 1.54 ×, 8 MiB 2.13 ×; `leadflow bench --replay --leads
/// 60000`, 2026-11-27). Compressed segments (~40 KB) never went that way:
/// those data dirs keep sled's default, which measured smaller for them
/// (0.36 × vs 0.41 ×).
pub(super) const SEGMENT_BYTES_UNCOMPRESSED: usize = 1 << 20;

/// sled's default segment size, for new compressed data dirs.
pub(super) const SEGMENT_BYTES_SLED_DEFAULT: usize = 512 * 1024;

/// The segment size of the sled database in `dir`: the one it was created
/// with (sled refuses another), else the one for a new data dir with
/// `options`' compression. Data dirs made before 2026-11-27 have sled's
/// default.
fn segment_bytes(dir: &Path, options: &LogOptions) -> usize {
    // The file ends with a checksum, not text: read it lossily.
    std::fs::read(dir.join("conf"))
        .ok()
        .and_then(|conf| {
            String::from_utf8_lossy(&conf)
                .lines()
                .find_map(|l| l.strip_prefix("segment_size:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(match options.compression_level {
            None => SEGMENT_BYTES_UNCOMPRESSED,
            Some(_) => SEGMENT_BYTES_SLED_DEFAULT,
        })
}
