//! The index checkpoint written as a base and deltas, read back whole.

use super::tests::{assigned, created, inputs, open};
use super::*;
use crate::domain::*;

/// Appends `batch`'s events, with an assignment of an unknown lead (a
/// rejection) named after the batch.
fn append_with_a_rejection(log: &mut EventLog, n: usize, leads: &[&str]) {
    let mut events: Vec<LeadEvent> = leads
        .iter()
        .map(|l| created(&format!("c{n}-{l}"), l))
        .collect();
    events.push(assigned(&format!("x{n}"), "nobody", "rep"));
    log.append(&inputs(events), &[]).unwrap();
}

/// Every id appended so far is known again (events and rejections alike)
/// and every lead's state is the log's.
fn assert_index_knows(log: &mut EventLog, batches: usize) {
    for n in 0..batches {
        let again = vec![
            created(&format!("c{n}-l{n}"), &format!("l{n}")),
            assigned(&format!("x{n}"), "nobody", "rep"),
        ];
        let r = log.append(&inputs(again), &[]).unwrap();
        let codes: Vec<&str> = r.rejected.iter().map(|(_, why)| why.code()).collect();
        assert_eq!(codes, vec!["duplicate", "duplicate"], "batch {n}: {r:?}");
        assert!(log.lead_state(&format!("l{n}")).unwrap().is_some());
    }
}

/// The index checkpoint is a base and then deltas of what changed: after
/// the base, each checkpoint writes only the leads and ids that are new,
/// and an open reads the base and the deltas back into the whole index,
/// scanning nothing.
#[test]
fn the_index_checkpoint_is_written_as_deltas_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Given a log checkpointed after each of three batches.
        let mut log = open(&dir);
        for n in 0..3 {
            append_with_a_rejection(&mut log, n, &[&format!("l{n}")]);
            assert!(log.checkpoint_index().unwrap());
        }
        // Then the first wrote the base, the next two a delta each.
        assert!(log
            .snapshot_stored_bytes(INDEX_CHECKPOINT)
            .unwrap()
            .is_some());
        for n in 1..=2 {
            assert!(log
                .snapshot_stored_bytes(&index_delta_name(n))
                .unwrap()
                .is_some());
        }
        assert!(log
            .snapshot_stored_bytes(&index_delta_name(3))
            .unwrap()
            .is_none());
        // And a checkpoint with nothing new writes nothing.
        assert!(!log.checkpoint_index().unwrap());
    }
    // When the log is opened again.
    let mut log = open(&dir);
    // Then the index stands where the last delta left it, nothing scanned,
    // and knows every id and lead.
    assert_eq!(log.index().unwrap().checkpoint_seq, log.last_seq());
    assert_eq!(log.index().unwrap().covered_rseq, 3);
    assert_index_knows(&mut log, 3);
}

/// A delta holds what changed, not the index: of a thousand leads, a
/// delta after one more names one lead and its id.
#[test]
fn a_delta_holds_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    let leads: Vec<String> = (0..1_000).map(|i| format!("lead-{i}")).collect();
    let names: Vec<&str> = leads.iter().map(String::as_str).collect();
    append_with_a_rejection(&mut log, 0, &names);
    append_with_a_rejection(&mut log, 1, &["one-more"]);
    let index = log.index().unwrap();
    let whole = index.to_checkpoint().len();
    let delta = index.to_checkpoint_since(1_000, 1).len();
    assert!(delta * 100 < whole, "delta {delta} B, whole {whole} B");
    let mut back =
        crate::log::index::Index::from_checkpoint(&index.to_checkpoint_since(0, 0)).unwrap();
    assert!(back
        .apply_delta(&index.to_checkpoint_since(1_000, 1))
        .is_err());
}

/// After the most deltas a base takes, the next checkpoint writes a whole
/// base again and drops the deltas; an open then reads it alone.
#[test]
fn after_the_last_delta_a_checkpoint_writes_a_base_again() {
    let dir = tempfile::tempdir().unwrap();
    let batches = INDEX_CHECKPOINT_DELTAS_MAX as usize + 2;
    {
        let mut log = open(&dir);
        for n in 0..batches {
            append_with_a_rejection(&mut log, n, &[&format!("l{n}")]);
            log.checkpoint_index().unwrap();
        }
        // The base, its eight deltas, then a new base (and no deltas).
        for n in 1..=INDEX_CHECKPOINT_DELTAS_MAX {
            assert!(
                log.snapshot_stored_bytes(&index_delta_name(n))
                    .unwrap()
                    .is_none(),
                "{n}"
            );
        }
    }
    let mut log = open(&dir);
    assert_eq!(log.index().unwrap().checkpoint_seq, log.last_seq());
    assert_index_knows(&mut log, batches);
}

/// A delta that does not follow the piece before it (damaged, or left by
/// an earlier run) is ignored with the ones after it: the index is the
/// base's and the pieces' that follow, and the events after them are
/// scanned, so nothing is missed.
#[test]
fn a_delta_that_does_not_follow_is_ignored_and_the_rest_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let base_seq;
    {
        let mut log = open(&dir);
        append_with_a_rejection(&mut log, 0, &["l0"]);
        log.checkpoint_index().unwrap();
        base_seq = log.last_seq();
        for n in 1..3 {
            append_with_a_rejection(&mut log, n, &[&format!("l{n}")]);
            log.checkpoint_index().unwrap();
        }
        log.save_snapshot(&index_delta_name(1), log.last_seq(), b"not an index")
            .unwrap();
    }
    let mut log = open(&dir);
    assert_eq!(log.index().unwrap().checkpoint_seq, base_seq);
    assert_index_knows(&mut log, 3);
    // And the next checkpoint writes the delta after the base again,
    // dropping the stale one after it.
    log.checkpoint_index().unwrap();
    assert!(log
        .snapshot_stored_bytes(&index_delta_name(2))
        .unwrap()
        .is_none());
    drop(log);
    let mut log = open(&dir);
    assert_eq!(log.index().unwrap().checkpoint_seq, log.last_seq());
    assert_index_knows(&mut log, 3);
}
