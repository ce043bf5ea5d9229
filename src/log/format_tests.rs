//! The stored format across builds: compressed segments, and a format-2
//! data dir read as it is and upgraded by its first compressed segment, a
//! format-3 one by its first run of commands.

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
    assert_eq!(stored_format(&log), FORMAT_COMPRESSED_SEGMENTS);
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

/// The commands of `log`, run by run, rewritten as a format-3 build stored
/// them (a key each), with the marker at 3.
fn as_format_3(log: &EventLog) {
    let runs: Vec<_> = log
        .tree
        .scan_prefix([COMMAND_RUN])
        .map(|kv| kv.unwrap())
        .collect();
    for (k, v) in runs {
        let first = trailing_u64(&k).unwrap();
        let (layout, ranges) = super::outbox::run_commands(first, &v).unwrap();
        for (cseq, range) in (first..).zip(ranges) {
            log.tree
                .insert(seq_key(COMMAND, cseq), &layout[range])
                .unwrap();
        }
        log.tree.remove(k).unwrap();
    }
    log.tree
        .insert(str_key(META, META_FORMAT), &3u64.to_be_bytes())
        .unwrap();
    log.flush().unwrap();
}

fn ids(commands: Vec<(u64, LeadCommand)>) -> Vec<(u64, String)> {
    commands
        .into_iter()
        .map(|(cseq, c)| (cseq, c.command_id))
        .collect()
}

#[test]
fn a_format_3_data_dir_keeps_its_commands_and_stores_new_ones_as_a_run() {
    use super::outbox_tests::recall_command;
    let dir = tempfile::tempdir().unwrap();
    // Given a data dir as a format-3 build left it: three commands under a
    // key each, the second acknowledged.
    {
        let mut log = EventLog::open(dir.path(), &options(Some(1))).unwrap();
        log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
        let c = ["c1", "c2", "c3"].map(recall_command).to_vec();
        log.append_commands(c).unwrap();
        log.mark_commands_sent(&[2]).unwrap();
        as_format_3(&log);
    }
    // When this build opens it and only reads, then it reads the commands
    // and leaves the marker at 3.
    {
        let log = EventLog::open(dir.path(), &options(Some(1))).unwrap();
        let pending = log.pending_commands(10).unwrap();
        assert_eq!(ids(pending), [(1, "c1".into()), (3, "c3".into())]);
        assert_eq!(log.command(2).unwrap().unwrap().command_id, "c2");
        assert_eq!(stored_format(&log), 3);
    }
    // When it stores commands (one already stored among them), then the
    // new ones go in as one run and the data dir is format 4, in the same
    // batch.
    let mut log = EventLog::open(dir.path(), &options(Some(1))).unwrap();
    let again = ["c2", "c4", "c5"].map(recall_command).to_vec();
    let stored = log.append_commands(again).unwrap();
    assert_eq!(ids(stored), [(4, "c4".into()), (5, "c5".into())]);
    assert_eq!(log.tree.scan_prefix([COMMAND_RUN]).count(), 1);
    assert_eq!(log.tree.scan_prefix([COMMAND]).count(), 3);
    assert_eq!(stored_format(&log), FORMAT_COMMAND_RUNS);
    drop(log);
    // And a reopened log reads both kinds in order, pending and all, and
    // judges a repeat of either kind already stored.
    let mut log = EventLog::open(dir.path(), &options(Some(1))).unwrap();
    let all: Vec<_> = log.commands().map(|c| c.unwrap()).collect();
    let want: Vec<(u64, String)> = (1..=5).map(|i| (i, format!("c{i}"))).collect();
    assert_eq!(ids(all), want);
    let pending = log.pending_commands(10).unwrap();
    assert_eq!(
        ids(pending),
        [
            (1, "c1".into()),
            (3, "c3".into()),
            (4, "c4".into()),
            (5, "c5".into())
        ]
    );
    let pending = log.pending_commands_encoded_after(3, 10).unwrap();
    let pending: Vec<_> = pending
        .iter()
        .map(|(s, (h, _))| (*s, h.command_id.as_str()))
        .collect();
    assert_eq!(pending, [(4, "c4"), (5, "c5")]);
    let repeats = ["c1", "c5"].map(recall_command).to_vec();
    assert!(log.append_commands(repeats).unwrap().is_empty());
}

#[test]
fn a_damaged_command_run_is_reported_as_corruption() {
    use super::outbox_tests::recall_command;
    for compression_level in [None, Some(1)] {
        let dir = tempfile::tempdir().unwrap();
        let log = {
            let mut log = EventLog::open(dir.path(), &options(compression_level)).unwrap();
            log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
            log.append_commands(vec![recall_command("c1"), recall_command("c2")])
                .unwrap();
            log
        };
        let (k, v) = log.tree.scan_prefix([COMMAND_RUN]).next().unwrap().unwrap();
        assert_eq!(segment::is_compressed(&v), compression_level.is_some());
        // Given its run cut short, given a count larger than it, given
        // bytes after its last command, given a well-formed frame around a
        // layout cut short: each is corruption, never a panic or a wrong
        // command.
        let mut huge = v.to_vec();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut longer = v.to_vec();
        longer.push(0);
        let layout = segment::layout(&v).unwrap();
        let framed_short = zstd::bulk::compress(&layout[..layout.len() - 1], 1).unwrap();
        for damaged in [
            v[..v.len() - 3].to_vec(),
            huge,
            longer,
            Vec::new(),
            framed_short,
        ] {
            log.tree.insert(&k, damaged).unwrap();
            let read = log.command(2);
            assert!(
                matches!(read, Err(LogError::Corrupt(ref m)) if m.contains("command run")),
                "{compression_level:?}: {read:?}"
            );
            let all: Result<Vec<_>, _> = log.commands().collect();
            assert!(matches!(all, Err(LogError::Corrupt(_))), "{all:?}");
        }
    }
}

#[test]
fn commands_are_compressed_like_events_and_a_data_dir_reads_runs_of_either_kind() {
    use super::outbox_tests::recall_command;
    let dir = tempfile::tempdir().unwrap();
    let raw_bytes = {
        // Given runs stored without compression,
        let mut log = EventLog::open(dir.path(), &options(None)).unwrap();
        log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
        let first: Vec<_> = (1..=40).map(|i| recall_command(&format!("c{i}"))).collect();
        log.append_commands(first).unwrap();
        let (_, v) = log.tree.scan_prefix([COMMAND_RUN]).next().unwrap().unwrap();
        assert!(!segment::is_compressed(&v));
        v.len()
    };
    // when the data dir is reopened with compression and stores more,
    let mut log = EventLog::open(dir.path(), &options(Some(1))).unwrap();
    let more: Vec<_> = (41..=80)
        .map(|i| recall_command(&format!("c{i}")))
        .collect();
    assert_eq!(log.append_commands(more).unwrap().len(), 40);
    // then the new run is one zstd frame, several times smaller than the
    // same count of commands raw (they differ in little but their ids),
    let runs: Vec<_> = log
        .tree
        .scan_prefix([COMMAND_RUN])
        .map(|kv| kv.unwrap().1)
        .collect();
    assert_eq!(runs.len(), 2);
    assert!(segment::is_compressed(&runs[1]));
    assert!(
        runs[1].len() * 3 < raw_bytes,
        "{} vs {raw_bytes}",
        runs[1].len()
    );
    // and every command reads back in order, by scan, by sequence and as
    // the outbox, raw and compressed alike.
    let all: Vec<_> = log.commands().map(|c| c.unwrap()).collect();
    let expected: Vec<_> = (1..=80).map(|i| (i, format!("c{i}"))).collect();
    assert_eq!(ids(all), expected);
    assert_eq!(log.command(40).unwrap().unwrap().command_id, "c40");
    assert_eq!(log.command(41).unwrap().unwrap().command_id, "c41");
    let pending: Vec<_> = log
        .pending_commands_encoded_after(38, 4)
        .unwrap()
        .into_iter()
        .map(|(s, (h, bytes))| {
            let decoded = crate::codec::decode_command(&bytes).unwrap();
            assert_eq!(decoded.command_id, h.command_id);
            (s, h.command_id)
        })
        .collect();
    assert_eq!(
        pending,
        (39..=42).map(|i| (i, format!("c{i}"))).collect::<Vec<_>>()
    );
}
