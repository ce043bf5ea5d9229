//! The command outbox across restarts (where the oldest pending command
//! stands, acknowledgements out of order, data dirs with a marker per
//! command, or an id key per command), the in-memory command-id index, and
//! appends that hold their flush.

use super::tests::{created, inputs, open};
use super::*;
use crate::domain::*;

pub(super) fn recall_command(id: &str) -> LeadCommand {
    LeadCommand {
        command_id: id.into(),
        lead_id: "a".into(),
        issued_at_ms: 5,
        causation_event_id: "e1".into(),
        rule_id: "stale".into(),
        rule_version: 1,
        explanation: String::new(),
        facts: Default::default(),
        tenant_id: String::new(),
        body: CommandBody::RecallLead {
            owner_id: "rep-1".into(),
            reason: RecallReason::Stale,
            to_pool: "p".into(),
        },
    }
}

fn pending_seqs(log: &EventLog) -> Vec<u64> {
    log.pending_commands(100)
        .unwrap()
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

/// A log with lead a and three commands for it, none acknowledged.
fn three_commands() -> (tempfile::TempDir, EventLog) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
    log.append_commands(vec![
        recall_command("c1"),
        recall_command("c2"),
        recall_command("c3"),
    ])
    .unwrap();
    (dir, log)
}

/// A log with lead a and one command for it (c1), not acknowledged.
fn one_command() -> (tempfile::TempDir, EventLog) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
    log.append_commands(vec![recall_command("c1")]).unwrap();
    (dir, log)
}

/// [`three_commands`] as a data dir written before the outbox kept only
/// its oldest pending command left it: a marker on each pending command
/// (the first and third), no `commands_sent_below`.
fn three_commands_marked_1_and_3() -> tempfile::TempDir {
    let (dir, log) = three_commands();
    log.tree.insert(seq_key(OUTBOX, 1), &[]).unwrap();
    log.tree.insert(seq_key(OUTBOX, 3), &[]).unwrap();
    log.tree.remove(str_key(META, META_SENT_BELOW)).unwrap();
    log.flush().unwrap();
    dir
}

#[test]
fn acknowledgements_survive_a_restart_in_order_or_not() {
    // Given three commands stored, the second acknowledged first.
    let (dir, log) = three_commands();
    log.mark_commands_sent(&[2]).unwrap();
    assert_eq!(pending_seqs(&log), vec![1, 3]);
    assert_eq!(log.command_counts().unwrap(), (3, 2));
    log.flush().unwrap();
    drop(log);
    // When the log is reopened, exactly the commands not acknowledged are
    // pending: the one acknowledged out of order is known sent.
    let log = open(&dir);
    assert_eq!(pending_seqs(&log), vec![1, 3]);
    // Then once the first is acknowledged, a restart sends only the third
    // (and the out-of-order key is gone); once all are, nothing.
    log.mark_commands_sent(&[1, 2]).unwrap();
    assert_eq!(pending_seqs(&log), vec![3]);
    assert_eq!(log.tree.scan_prefix([SENT_ABOVE]).count(), 0);
    log.flush().unwrap();
    drop(log);
    let log = open(&dir);
    assert_eq!(pending_seqs(&log), vec![3]);
    log.mark_commands_sent(&[3, 3]).unwrap();
    log.flush().unwrap();
    drop(log);
    let mut log = open(&dir);
    assert!(pending_seqs(&log).is_empty());
    assert_eq!(log.command_counts().unwrap(), (3, 0));
    // And a command stored later is pending, across a restart too.
    log.append_commands(vec![recall_command("c4")]).unwrap();
    drop(log);
    let log = open(&dir);
    assert_eq!(pending_seqs(&log), vec![4]);
}

#[test]
fn a_data_dir_with_an_outbox_marker_per_command_keeps_its_pending_commands() {
    // Given a data dir written before the outbox kept only its oldest
    // pending command: a marker per pending command (here the first and
    // third of three), no `commands_sent_below`.
    let dir = three_commands_marked_1_and_3();
    // When it is opened, exactly the marked commands are pending.
    let log = open(&dir);
    assert_eq!(pending_seqs(&log), vec![1, 3]);
    // Then acknowledging them removes their markers, and a restart finds
    // nothing pending.
    log.mark_commands_sent(&[1, 3]).unwrap();
    assert_eq!(log.tree.scan_prefix([OUTBOX]).count(), 0);
    log.flush().unwrap();
    drop(log);
    let log = open(&dir);
    assert!(pending_seqs(&log).is_empty());
}

#[test]
fn a_restart_while_an_outbox_marker_is_left_sends_nothing_acknowledged_again() {
    // Given a data dir with markers on commands 1 and 3 (2 was sent before
    // the upgrade), opened by this version, which stores 4 and 5.
    let dir = three_commands_marked_1_and_3();
    let mut log = open(&dir);
    log.append_commands(vec![recall_command("c4"), recall_command("c5")])
        .unwrap();
    assert_eq!(pending_seqs(&log), vec![1, 3, 4, 5]);
    // When 3 and 4 are acknowledged (1 is not), and the log reopened.
    log.mark_commands_sent(&[3, 4]).unwrap();
    log.flush().unwrap();
    drop(log);
    let log = open(&dir);
    // Then exactly 1 and 5 are pending: neither 2 (sent before the
    // upgrade) nor 3 and 4 (acknowledged) go again.
    assert_eq!(pending_seqs(&log), vec![1, 5]);
}

#[test]
fn what_follows_a_batch_is_in_its_write_judged_and_reported_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    // Given a batch of one creation, followed by two events of the
    // caller's own: a valid one, and a repeat of the batch's input.
    let mut asked = 0;
    let mut decided = Vec::new();
    let r = log
        .append_admitted(
            &inputs(vec![created("e1", "a")]),
            &[Position {
                source: "s".into(),
                next_offset: 7,
            }],
            &mut |_| None,
            &mut |seq, e| {
                decided.push((seq, e.event_id.clone()));
                Vec::new()
            },
            &mut || {
                asked += 1;
                vec![created("e2", "b"), created("e1", "a")]
            },
        )
        .unwrap();
    // Then `follow` was asked once, what follows was judged like an
    // input (the repeat refused as a duplicate) and told to `decide`, and
    // the report keeps it apart from the inputs.
    assert_eq!(asked, 1);
    assert_eq!(decided, vec![(1, "e1".to_string()), (2, "e2".to_string())]);
    assert_eq!(r.accepted, vec![(0, 1)]);
    assert_eq!(r.followed, vec![(0, 2)]);
    assert!(r.followed_rejected[0].is_duplicate(), "{r:?}");
    assert!(log.lead_state("b").unwrap().is_some());
    // And a reopened log has both with the batch's position.
    drop(log);
    let log = open(&dir);
    assert_eq!(log.last_seq(), 2);
    assert_eq!(log.position("s").unwrap(), Some(7));
    assert_eq!(log.seq_of("e2").unwrap(), Some(2));
}

#[test]
fn a_command_id_is_known_after_a_restart_and_a_hash_hit_is_checked() {
    // Given a stored command, and a log reopened (the command-id index is
    // read back from the commands).
    let (dir, log) = one_command();
    drop(log);
    let mut log = open(&dir);
    // When it is decided again, it is not stored twice.
    assert!(log
        .append_commands(vec![recall_command("c1")])
        .unwrap()
        .is_empty());
    // And an id whose hash is taken (forced: FNV collisions are not found
    // by hand) is stored all the same: the hit is checked against the
    // command it names (c1) …
    log.command_ids
        .get_mut()
        .expect("read at the first store")
        .insert(index::id_hash("c2"), 1);
    let stored = log.append_commands(vec![recall_command("c2")]).unwrap();
    assert_eq!(stored.len(), 1);
    // … and, decided again, found among all the commands: the hash still
    // names c1.
    assert_eq!(log.command_ids.get().unwrap()[&index::id_hash("c2")], 1);
    assert!(log
        .append_commands(vec![recall_command("c2")])
        .unwrap()
        .is_empty());
    drop(log);
    // After a restart too.
    let mut log = open(&dir);
    assert!(log
        .append_commands(vec![recall_command("c1"), recall_command("c2")])
        .unwrap()
        .is_empty());
}

#[test]
fn a_data_dir_with_an_id_key_per_command_keeps_its_ids_and_loses_the_keys() {
    // Given a data dir written when each command had an id key beside it.
    let (dir, log) = one_command();
    log.tree
        .insert(str_key(COMMAND_ID, "c1"), &1u64.to_be_bytes())
        .unwrap();
    log.flush().unwrap();
    drop(log);
    // When it is reopened and c1 decided again beside a new command.
    let mut log = open(&dir);
    let stored = log
        .append_commands(vec![recall_command("c1"), recall_command("c2")])
        .unwrap();
    // Then only the new one is stored, and the old id key is gone.
    assert_eq!(
        stored
            .iter()
            .map(|(s, c)| (*s, c.command_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "c2")]
    );
    assert_eq!(log.tree.scan_prefix([COMMAND_ID]).count(), 0);
}

#[test]
fn a_write_of_many_commands_is_split_into_runs_of_bounded_size_read_back_in_order() {
    // Given one write of 400 commands, each with a long explanation
    // (~200 KB in all: a tick that fires many deadlines at once).
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
    let commands: Vec<LeadCommand> = (1..=400)
        .map(|i| LeadCommand {
            explanation: format!("{i:0>500}"),
            ..recall_command(&format!("c{i}"))
        })
        .collect();
    log.append_commands(commands).unwrap();
    // Then it is stored as several runs, none much over the bound.
    let runs: Vec<usize> = log
        .tree
        .scan_prefix([COMMAND_RUN])
        .map(|kv| kv.unwrap().1.len())
        .collect();
    assert!(runs.len() >= 3, "{runs:?}");
    assert!(
        runs.iter()
            .all(|n| *n < super::outbox::RUN_BYTES_MAX + 1_000),
        "{runs:?}"
    );
    drop(log);
    // And after a restart every command reads back in order, by scan, one
    // by one, and as the outbox.
    let log = open(&dir);
    let ids: Vec<String> = log.commands().map(|c| c.unwrap().1.command_id).collect();
    let want: Vec<String> = (1..=400).map(|i| format!("c{i}")).collect();
    assert_eq!(ids, want);
    for cseq in [1, 137, 138, 139, 400] {
        let c = log.command(cseq).unwrap().unwrap();
        assert_eq!(c.command_id, format!("c{cseq}"));
        assert_eq!(c.explanation, format!("{cseq:0>500}"));
    }
    assert_eq!(log.command(401).unwrap(), None);
    assert_eq!(pending_seqs(&log).len(), 100);
    let pending = log.pending_commands_encoded_after(0, 1_000).unwrap();
    let seqs: Vec<u64> = pending.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
}
