//! The stored format across builds: compressed segments, and a format-2
//! data dir read as it is and upgraded by its first compressed segment.

use super::tests::{created, inputs};
use super::*;

fn options(compression_level: Option<i32>) -> LogOptions {
    LogOptions {
        compression_level,
        ..LogOptions::default()
    }
}

fn stored_format(log: &EventLog) -> u64 {
    log.tree
        .get(str_key(META, META_FORMAT))
        .unwrap()
        .and_then(|v| u64_value(&v))
        .unwrap()
}

/// Whether the segment holding `seq` is stored as a zstd frame.
fn compressed_at(log: &EventLog, seq: u64) -> bool {
    let (_, v) = log
        .tree
        .range(seq_key(EVENT, 0)..=seq_key(EVENT, seq))
        .next_back()
        .unwrap()
        .unwrap();
    segment::is_compressed(&v)
}

#[test]
fn a_format_2_data_dir_is_read_as_it_is_and_upgraded_by_its_first_compressed_segment() {
    let dir = tempfile::tempdir().unwrap();
    // Given a data dir as a format-2 build left it: raw segments, marker 2.
    {
        let mut log = EventLog::open(dir.path(), &options(None)).unwrap();
        log.append(&inputs(vec![created("e1", "a"), created("e2", "b")]), &[])
            .unwrap();
        log.tree
            .insert(str_key(META, META_FORMAT), &2u64.to_be_bytes())
            .unwrap();
        log.flush().unwrap();
    }
    // When this build opens it and only reads, then it reads the events
    // and leaves the marker at 2 (a format-2 build can still open it).
    {
        let log = EventLog::open(dir.path(), &options(Some(1))).unwrap();
        assert_eq!(log.event(2).unwrap().unwrap().event_id, "e2");
        assert_eq!(stored_format(&log), 2);
    }
    // When it appends without compression, the marker stays at 2 too.
    {
        let mut log = EventLog::open(dir.path(), &options(None)).unwrap();
        log.append(&inputs(vec![created("e3", "c")]), &[]).unwrap();
        assert!(!compressed_at(&log, 3));
        assert_eq!(stored_format(&log), 2);
    }
    // When it appends with compression, then that segment is a zstd frame
    // and the data dir is format 3, in the same batch.
    let mut log = EventLog::open(dir.path(), &options(Some(1))).unwrap();
    log.append(&inputs(vec![created("e4", "d")]), &[]).unwrap();
    assert!(compressed_at(&log, 4) && !compressed_at(&log, 3));
    assert_eq!(stored_format(&log), FORMAT_VERSION);
    drop(log);
    // And a reopened log reads both kinds in order, and judges a repeat of
    // either kind a duplicate.
    let mut log = EventLog::open(dir.path(), &options(None)).unwrap();
    let ids: Vec<String> = log.events_from(1).map(|e| e.unwrap().1.event_id).collect();
    assert_eq!(ids, ["e1", "e2", "e3", "e4"]);
    let again = log
        .append(&inputs(vec![created("e2", "b"), created("e4", "d")]), &[])
        .unwrap();
    assert!(
        again.rejected.iter().all(|(_, r)| r.is_duplicate()),
        "{again:?}"
    );
}

#[test]
fn a_damaged_compressed_segment_is_reported_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = EventLog::open(dir.path(), &options(Some(1))).unwrap();
        log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
        // Given its one segment cut in half (a frame with its magic and
        // header, without the rest).
        let (k, v) = log.tree.scan_prefix([EVENT]).next().unwrap().unwrap();
        assert!(segment::is_compressed(&v));
        log.tree.insert(k, &v[..v.len() / 2]).unwrap();
        log.flush().unwrap();
    }
    // When the log is opened, then it is refused as corrupt, not a panic.
    let reopened = EventLog::open(dir.path(), &LogOptions::default());
    assert!(
        matches!(reopened, Err(LogError::Corrupt(ref m)) if m.contains("compressed segment")),
        "{:?}",
        reopened.err()
    );
}
