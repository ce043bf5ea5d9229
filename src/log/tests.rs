use super::*;
use crate::domain::*;

fn cny(v: i64) -> Money {
    Money::new(v, Currency::parse("CNY").unwrap())
}

pub(super) fn created(id: &str, lead: &str) -> LeadEvent {
    build::created(id, lead)
        .at(1000)
        .producer("t")
        .channel("search")
        .profile("r", "i", "s")
        .cost(cny(100))
        .event()
}

pub(super) fn assigned(id: &str, lead: &str, owner: &str) -> LeadEvent {
    build::assigned(id, lead, owner)
        .at(2000)
        .producer("t")
        .method(AssignmentMethod::Manual)
        .event()
}

pub(super) fn open(dir: &tempfile::TempDir) -> EventLog {
    EventLog::open(dir.path(), &LogOptions::default()).unwrap()
}

pub(super) fn inputs(events: Vec<LeadEvent>) -> Vec<Input> {
    events.into_iter().map(|e| Input::event(e, None)).collect()
}

#[test]
fn accepted_events_get_gapless_sequences_and_a_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    let r = log
        .append(
            &inputs(vec![
                created("e1", "a"),
                created("e2", "b"),
                assigned("e3", "a", "rep"),
            ]),
            &[],
        )
        .unwrap();
    assert_eq!(r.accepted, vec![(0, 1), (1, 2), (2, 3)]);
    assert_eq!(r.last_seq, 3);
    let all: Vec<_> = log.events_from(1).map(|r| r.unwrap().0).collect();
    assert_eq!(all, vec![1, 2, 3]);
    let timeline: Vec<_> = log
        .timeline("a")
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(timeline, vec![1, 3]);
    assert_eq!(
        log.lead_state("a").unwrap().unwrap().owner.as_deref(),
        Some("rep")
    );
}

#[test]
fn duplicates_are_rejected_within_a_batch_across_batches_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(&dir);
        let r = log
            .append(&inputs(vec![created("e1", "a"), created("e1", "b")]), &[])
            .unwrap();
        assert_eq!(r.rejected, vec![(1, Rejection::Duplicate { first_seq: 1 })]);
        let r = log.append(&inputs(vec![created("e1", "c")]), &[]).unwrap();
        assert_eq!(r.rejected[0].1.code(), "duplicate");
    }
    let mut log = open(&dir);
    let r = log.append(&inputs(vec![created("e1", "d")]), &[]).unwrap();
    assert_eq!(r.rejected, vec![(0, Rejection::Duplicate { first_seq: 1 })]);
    let stats = log.stats().unwrap();
    assert_eq!(stats.events, 1);
    assert_eq!(stats.rejected, 3);
    assert_eq!(stats.rejected_by_reason.get("duplicate"), Some(&3));
}

#[test]
fn rejected_inputs_are_kept_with_reason_origin_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    let origin = Origin {
        source: "file:x".into(),
        offset: 7,
        key: None,
    };
    let batch = vec![
        Input::event(assigned("e9", "ghost", "rep"), Some(origin.clone())),
        Input::undecodable(b"\xffjunk".to_vec(), Rejection::UnknownEventType, None),
    ];
    let r = log.append(&batch, &[]).unwrap();
    assert_eq!(r.rejected.len(), 2);
    assert_eq!(r.rejected[0].1, Rejection::UnknownLead);
    let stored: Vec<_> = log.rejections().map(Result::unwrap).collect();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].reason, Rejection::UnknownLead);
    assert_eq!(stored[0].origin, Some(origin));
    assert_eq!(
        crate::codec::decode_event(&stored[0].raw).unwrap().event_id,
        "e9"
    );
    assert_eq!(stored[1].raw, b"\xffjunk");
    assert_eq!(log.lead_rejections("ghost").unwrap().len(), 1);
    assert_eq!(log.stats().unwrap().events, 0);
}

#[test]
fn an_id_is_spent_once_seen_even_when_its_first_copy_was_rejected() {
    // Given an assignment rejected because its lead did not exist yet.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    let r = log
        .append(&inputs(vec![assigned("a1", "l", "rep")]), &[])
        .unwrap();
    assert_eq!(r.rejected[0].1, Rejection::UnknownLead);
    // When the lead is created and the same id arrives again, in this
    // batch twice, then it is a duplicate of the first rejection, not
    // judged again.
    let r = log
        .append(
            &inputs(vec![
                created("c1", "l"),
                assigned("a1", "l", "rep"),
                assigned("b1", "zz", "rep"),
                assigned("b1", "l", "rep"),
            ]),
            &[],
        )
        .unwrap();
    assert_eq!(r.accepted, vec![(0, 1)]);
    assert_eq!(
        r.rejected,
        vec![
            (1, Rejection::DuplicateOfRejected { first_rseq: 1 }),
            (2, Rejection::UnknownLead),
            (3, Rejection::DuplicateOfRejected { first_rseq: 3 }),
        ]
    );
    assert_eq!(log.lead_state("l").unwrap().unwrap().owner, None);
    // And the same holds after reopening (the index rebuilt from the log)
    // and from a checkpoint.
    log.checkpoint_index().unwrap();
    drop(log);
    for _ in 0..2 {
        let mut log = open(&dir);
        let r = log
            .append(&inputs(vec![assigned("a1", "l", "rep")]), &[])
            .unwrap();
        assert_eq!(r.rejected[0].1.code(), "duplicate");
        assert_eq!(
            r.rejected[0].1,
            Rejection::DuplicateOfRejected { first_rseq: 1 }
        );
        log.delete_snapshot(INDEX_CHECKPOINT).unwrap();
    }
}

#[test]
fn importing_the_issue_repro_twice_changes_nothing() {
    // Issue 9 §1: a second copy of a rejected assignment was judged again
    // after the recall and accepted with its old time.
    let mut lead = created("a1", "X");
    lead.occurred_at_ms = 1_793_577_600_000;
    let mut a2 = assigned("a2", "X", "rep-1");
    a2.occurred_at_ms = 1_793_581_200_000;
    let mut a3 = assigned("a3", "X", "rep-1");
    a3.occurred_at_ms = 1_793_581_200_500;
    let a4 = LeadEvent {
        event_id: "a4".into(),
        lead_id: "X".into(),
        occurred_at_ms: 1_793_584_800_000,
        producer: "crm".into(),
        tenant_id: String::new(),
        body: EventBody::Recalled(LeadRecalled {
            previous_owner_id: "rep-1".into(),
            reason: RecallReason::Manual,
            to_pool: "smb".into(),
            command_id: String::new(),
            rule_id: String::new(),
        }),
    };
    let file = vec![lead, a2, a3, a4];
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    let first = log.append(&inputs(file.clone()), &[]).unwrap();
    assert_eq!(first.accepted.len(), 3, "a3 is already_owner");
    let second = log.append(&inputs(file), &[]).unwrap();
    assert!(second.accepted.is_empty(), "{second:?}");
    assert!(second.rejected.iter().all(|(_, r)| r.code() == "duplicate"));
    let state = log.lead_state("X").unwrap().unwrap();
    assert_eq!(state.status, crate::domain::lifecycle::LeadStatus::InPool);
    assert_eq!(log.stats().unwrap().events, 3);
}

#[test]
fn positions_are_stored_with_the_batch_and_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(&dir);
        let pos = |n| Position {
            source: "file:a".into(),
            next_offset: n,
        };
        log.append(&inputs(vec![created("e1", "a")]), &[pos(1)])
            .unwrap();
        assert_eq!(log.position("file:a").unwrap(), Some(1));
        assert!(matches!(
            log.append(&[], &[pos(0)]),
            Err(LogError::PositionRegressed { .. })
        ));
    }
    let log = open(&dir);
    assert_eq!(log.position("file:a").unwrap(), Some(1));
    assert_eq!(log.position("file:b").unwrap(), None);
}

#[test]
fn snapshots_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
    log.save_snapshot("p", 1, b"state").unwrap();
    assert_eq!(
        log.load_snapshot("p").unwrap(),
        Some((1, b"state".to_vec()))
    );
    log.delete_snapshot("p").unwrap();
    assert_eq!(log.load_snapshot("p").unwrap(), None);
}

#[test]
fn snapshots_are_compressed_with_the_log_and_older_ones_read_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
    // A policy's snapshot repeats its ids and rule names.
    let state: Vec<u8> = (0..2_000)
        .flat_map(|i| format!("lead-{i:06} rep-{} first_follow_up ", i % 100).into_bytes())
        .collect();
    // Given a snapshot saved as a build before 2026-11-28 stored it (its
    // sequence, then its bytes as they are), even bytes that begin like a
    // zstd frame, it reads as it is.
    let mut older = 1u64.to_be_bytes().to_vec();
    older.extend_from_slice(&[0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3]);
    log.snapshots.insert("old", older).unwrap();
    assert_eq!(
        log.load_snapshot("old").unwrap(),
        Some((1, vec![0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3]))
    );
    // When one is saved with compression (the default), it is stored
    // several times smaller and reads back the same.
    log.save_snapshot("p", 1, &state).unwrap();
    let stored = log.snapshot_stored_bytes("p").unwrap().unwrap();
    assert!(
        stored * 4 < state.len() as u64,
        "{stored} of {}",
        state.len()
    );
    assert_eq!(log.load_snapshot("p").unwrap(), Some((1, state.clone())));
    // Without compression, it is stored as it is.
    drop(log);
    let options = LogOptions {
        compression_level: None,
        ..LogOptions::default()
    };
    let log = EventLog::open(dir.path(), &options).unwrap();
    assert_eq!(log.load_snapshot("p").unwrap(), Some((1, state.clone())));
    log.save_snapshot("q", 1, &state).unwrap();
    assert_eq!(
        log.snapshot_stored_bytes("q").unwrap(),
        Some(8 + state.len() as u64)
    );
    assert_eq!(log.load_snapshot("q").unwrap(), Some((1, state)));
    // A damaged frame is a snapshot that cannot be read: none, so that its
    // user rebuilds, never a panic, an error that stops it, or a huge
    // allocation.
    let v = log.snapshots.get("p").unwrap().unwrap();
    let mut claims_huge = v[..8].to_vec();
    claims_huge.extend_from_slice(&[0x28, 0xB5, 0x2F, 0xFD, 0xE0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    for damaged in [v[..v.len() / 2].to_vec(), v[..12].to_vec(), claims_huge] {
        log.snapshots.insert("p", damaged).unwrap();
        assert_eq!(log.load_snapshot("p").unwrap(), None);
    }
}

#[test]
fn a_data_dir_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(&dir);
        log.tree
            .insert(str_key(META, META_FORMAT), &99u64.to_be_bytes())
            .unwrap();
        log.db.flush().unwrap();
    }
    let reopened = EventLog::open(dir.path(), &LogOptions::default());
    assert!(
        matches!(
            reopened,
            Err(LogError::IncompatibleFormat {
                found: 99,
                expected: FORMAT_VERSION
            })
        ),
        "{:?}",
        reopened.err()
    );
}

#[test]
fn rejections_queue_dead_letters_until_marked_sent() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        dead_letter_outbox: true,
        ..LogOptions::default()
    };
    {
        let mut log = EventLog::open(dir.path(), &options).unwrap();
        let batch = vec![
            Input::event(created("e1", "a"), None),
            Input::event(created("e1", "b"), None),
            Input::undecodable(b"x".to_vec(), Rejection::UnknownEventType, None),
        ];
        log.append(&batch, &[]).unwrap();
        let pending: Vec<u64> = log
            .pending_dead_letters(10)
            .unwrap()
            .iter()
            .map(|r| r.rseq)
            .collect();
        assert_eq!(pending, vec![1, 2]);
        assert_eq!(log.dead_letters_pending().unwrap(), 2);
        log.mark_dead_letters_sent(&[1]).unwrap();
        log.mark_dead_letters_sent(&[1]).unwrap();
        assert_eq!(log.dead_letters_pending().unwrap(), 1);
        log.flush().unwrap();
    }
    let log = EventLog::open(dir.path(), &options).unwrap();
    assert_eq!(
        log.dead_letters_pending().unwrap(),
        1,
        "counted again at open"
    );
    let pending: Vec<u64> = log
        .pending_dead_letters(10)
        .unwrap()
        .iter()
        .map(|r| r.rseq)
        .collect();
    assert_eq!(pending, vec![2], "survives a restart until marked sent");
}

#[test]
fn decided_commands_land_in_the_outbox_with_their_batch_until_marked_sent() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions::default();
    let assign = |lead: &str, seq: u64| LeadCommand {
        command_id: format!("cmd-{lead}-{seq}"),
        lead_id: lead.into(),
        issued_at_ms: 1000,
        causation_event_id: format!("cause-{seq}"),
        rule_id: "rr".into(),
        rule_version: 1,
        explanation: "test".into(),
        facts: Default::default(),
        tenant_id: String::new(),
        body: CommandBody::AssignLead {
            owner_id: "rep-1".into(),
            pool: "general".into(),
        },
    };
    {
        let mut log = EventLog::open(dir.path(), &options).unwrap();
        let batch = vec![
            Input::event(created("e1", "a"), None),
            // A rejected event decides nothing.
            Input::event(created("e1", "b"), None),
            Input::event(created("e2", "c"), None),
        ];
        let mut asked = Vec::new();
        let report = log
            .append_with(&batch, &[], &mut |seq, e| {
                asked.push(seq);
                vec![assign(&e.lead_id, seq)]
            })
            .unwrap();
        assert_eq!(asked, vec![1, 2], "asked once per accepted event, in order");
        assert_eq!(
            report.commands,
            vec![(1, assign("a", 1)), (2, assign("c", 2))]
        );
        assert_eq!(log.command_counts().unwrap(), (2, 2));
        log.mark_commands_sent(&[1]).unwrap();
        // A second acknowledgement of the same copy counts once.
        log.mark_commands_sent(&[1]).unwrap();
        assert_eq!(log.command_counts().unwrap(), (2, 1));
        log.flush().unwrap();
    }
    let mut log = EventLog::open(dir.path(), &options).unwrap();
    assert_eq!(
        log.command_counts().unwrap(),
        (2, 1),
        "counted again at open"
    );
    assert_eq!(
        log.pending_commands(10).unwrap(),
        vec![(2, assign("c", 2))],
        "survives a restart until marked sent"
    );
    // Command sequences continue after a reopen.
    let report = log
        .append_with(
            &[Input::event(created("e3", "d"), None)],
            &[],
            &mut |seq, e| vec![assign(&e.lead_id, seq)],
        )
        .unwrap();
    assert_eq!(report.commands[0].0, 3);
    assert_eq!(log.command_counts().unwrap(), (3, 2));
    let all: Vec<u64> = log.commands().map(|c| c.unwrap().0).collect();
    assert_eq!(all, vec![1, 2, 3]);
}

#[test]
fn a_command_id_is_stored_once_whichever_path_decides_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
    let recall = super::outbox_tests::recall_command;
    // Decided with an event, then fired again by the wall clock: once.
    let report = log
        .append_with(
            &[Input::event(created("e1", "a"), None)],
            &[],
            &mut |_, _| vec![recall("cmd-1"), recall("cmd-1")],
        )
        .unwrap();
    assert_eq!(report.commands.len(), 1);
    assert_eq!(report.commands_deduplicated, 1);
    let stored = log
        .append_commands(vec![recall("cmd-1"), recall("cmd-2"), recall("cmd-2")])
        .unwrap();
    assert_eq!(stored.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![2]);
    drop(log);
    let log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
    let ids: Vec<String> = log.commands().map(|c| c.unwrap().1.command_id).collect();
    assert_eq!(ids, vec!["cmd-1", "cmd-2"]);
    assert_eq!(log.command_counts().unwrap(), (2, 2));
}

#[test]
fn an_id_whose_hash_is_taken_is_neither_a_false_duplicate_nor_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
    // Given a stored id whose hash "e2" shares (forced: SipHash collisions
    // cannot be found by hand).
    log.index.get_mut().unwrap().claim_hash("e2", 1);
    // When "e2" arrives, it is accepted: the hash hit is checked against
    // the stored event.
    let r = log
        .append(&inputs(vec![assigned("e2", "a", "rep")]), &[])
        .unwrap();
    assert_eq!(r.accepted, vec![(0, 2)]);
    // And a redelivery of "e2" is still a duplicate of sequence 2.
    let r = log
        .append(&inputs(vec![assigned("e2", "a", "rep")]), &[])
        .unwrap();
    assert_eq!(r.rejected, vec![(0, Rejection::Duplicate { first_seq: 2 })]);
    assert_eq!(log.seq_of("e2").unwrap(), Some(2));
    assert_eq!(log.seq_of("e1").unwrap(), Some(1));
    assert_eq!(log.seq_of("e3").unwrap(), None);
}

#[test]
fn indexes_are_rebuilt_from_the_events_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(&dir);
        log.append(
            &inputs(vec![created("e1", "a"), assigned("e2", "a", "rep")]),
            &[],
        )
        .unwrap();
    }
    let mut log = open(&dir);
    assert_eq!(
        log.lead_state("a").unwrap().unwrap().owner.as_deref(),
        Some("rep")
    );
    let r = log
        .append(
            &inputs(vec![created("e1", "b"), assigned("e3", "zz", "rep")]),
            &[],
        )
        .unwrap();
    assert_eq!(
        r.rejected,
        vec![
            (0, Rejection::Duplicate { first_seq: 1 }),
            (1, Rejection::UnknownLead)
        ]
    );
    let timeline: Vec<u64> = log.timeline("a").unwrap().iter().map(|(s, _)| *s).collect();
    assert_eq!(timeline, vec![1, 2]);
}

#[test]
fn an_index_checkpoint_plus_the_tail_is_the_index_of_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(&dir);
        assert!(
            !log.checkpoint_index().unwrap(),
            "nothing built, nothing saved"
        );
        log.append(
            &inputs(vec![created("e1", "a"), assigned("e2", "a", "rep")]),
            &[],
        )
        .unwrap();
        assert!(log.checkpoint_index().unwrap());
        assert!(!log.checkpoint_index().unwrap(), "unchanged since");
        // Events after the checkpoint: the next open scans only these.
        log.append(&inputs(vec![created("e3", "b")]), &[]).unwrap();
    }
    let mut log = open(&dir);
    let index = log.index().unwrap();
    assert_eq!((index.checkpoint_seq, index.covered_seq), (2, 3));
    assert_eq!(index.leads["a"].timeline, vec![1, 2]);
    assert_eq!(index.leads["b"].timeline, vec![3]);
    // Dedupe works across the checkpoint and the tail.
    let r = log
        .append(
            &inputs(vec![
                created("e1", "x"),
                created("e3", "y"),
                created("e4", "b"),
            ]),
            &[],
        )
        .unwrap();
    assert_eq!(
        r.rejected,
        vec![
            (0, Rejection::Duplicate { first_seq: 1 }),
            (1, Rejection::Duplicate { first_seq: 3 }),
            (
                2,
                Rejection::LeadAlreadyExists {
                    created_at_ms: 1000
                }
            ),
        ]
    );
}

#[test]
fn an_unreadable_index_checkpoint_is_ignored_and_the_index_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(&dir);
        log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
        log.save_snapshot(INDEX_CHECKPOINT, 1, b"not an index")
            .unwrap();
    }
    let mut log = open(&dir);
    assert_eq!(log.seq_of("e1").unwrap(), Some(1));
    assert_eq!(
        log.index().unwrap().checkpoint_seq,
        0,
        "rebuilt from the log"
    );
    let r = log.append(&inputs(vec![created("e1", "b")]), &[]).unwrap();
    assert_eq!(r.rejected, vec![(0, Rejection::Duplicate { first_seq: 1 })]);
}

#[test]
fn the_order_rule_holds_across_sources_and_after_reopening() {
    // Given a log with a 100 ms tolerance, a lead created and assigned
    // through two sources (two partitions of one producer mis-keyed).
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        rules: lifecycle::Rules {
            out_of_order_tolerance_ms: 100,
        },
        ..LogOptions::default()
    };
    let from = |source: &str, offset: u64| {
        Some(Origin {
            source: source.into(),
            offset,
            key: None,
        })
    };
    let at = |mut e: LeadEvent, ms: i64| {
        e.occurred_at_ms = ms;
        e
    };
    let follow = |id: &str, ms: i64| LeadEvent {
        event_id: id.into(),
        lead_id: "a".into(),
        occurred_at_ms: ms,
        producer: "crm".into(),
        tenant_id: String::new(),
        body: EventBody::FollowedUp(LeadFollowedUp {
            owner_id: "rep".into(),
            kind: FollowUpKind::Call,
            outcome: String::new(),
        }),
    };
    {
        let mut log = EventLog::open(dir.path(), &options).unwrap();
        let r = log
            .append(
                &[
                    Input::event(at(created("c", "a"), 1000), from("p0", 0)),
                    Input::event(at(assigned("s", "a", "rep"), 5000), from("p1", 0)),
                    // When late events arrive through the other source:
                    Input::event(follow("late", 4800), from("p0", 1)),
                    Input::event(follow("skewed", 4950), from("p0", 2)),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(r.accepted, vec![(0, 1), (1, 2), (3, 3)]);
        assert_eq!(
            r.rejected,
            vec![(
                2,
                Rejection::OutOfOrder {
                    occurred_at_ms: 4800,
                    latest_at_ms: 5000,
                    tolerance_ms: 100
                }
            )]
        );
    }
    // Then after reopening (the index rebuilt from the log), the lead's
    // latest time is still the assignment's, so the rule decides the same.
    let mut log = EventLog::open(dir.path(), &options).unwrap();
    assert_eq!(log.lead_state("a").unwrap().unwrap().latest_at_ms, 5000);
    let r = log
        .append(&[Input::event(follow("late-2", 4899), from("p1", 1))], &[])
        .unwrap();
    assert_eq!(r.rejected[0].1.code(), "out_of_order");
}

#[test]
fn a_regressed_position_refuses_the_batch_before_anything_is_folded() {
    // Given a log holding file:a up to offset 2.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    let pos = |n| Position {
        source: "file:a".into(),
        next_offset: n,
    };
    log.append(&inputs(vec![created("e1", "a")]), &[pos(2)])
        .unwrap();
    // When a batch claims an earlier position, then it is refused and the
    // caller's folds never saw its events.
    let mut folded = 0;
    let refused = log.append_with(&inputs(vec![created("e2", "b")]), &[pos(1)], &mut |_, _| {
        folded += 1;
        Vec::new()
    });
    assert!(
        matches!(
            refused,
            Err(LogError::PositionRegressed {
                stored: 2,
                proposed: 1,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(folded, 0, "refused before the fold");
    // And the log and its caller still agree, so it goes on.
    let report = log
        .append(&inputs(vec![created("e2", "b")]), &[pos(3)])
        .unwrap();
    assert_eq!(report.accepted, vec![(0, 2)]);
}

#[test]
fn an_error_after_the_fold_poisons_the_log_until_it_is_reopened() {
    // Given a log whose stored segment of e1 has been damaged on disk.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
    log.tree
        .insert(seq_key(EVENT, 1), b"not a segment".to_vec())
        .unwrap();
    // When a batch folds e2 and then needs e1's stored copy (its id comes
    // again) to judge the next input ...
    let mut folded = Vec::new();
    let failed = log.append_with(
        &inputs(vec![created("e2", "b"), created("e1", "a")]),
        &[],
        &mut |seq, _| {
            folded.push(seq);
            Vec::new()
        },
    );
    assert!(matches!(failed, Err(LogError::Corrupt(_))), "{failed:?}");
    assert_eq!(folded, vec![2], "e2 reached the caller's folds");
    // ... then the caller's state is ahead of the log, and the log refuses
    // further work instead of letting the two drift apart.
    let next = log.append(&inputs(vec![created("e3", "c")]), &[]);
    assert!(matches!(next, Err(LogError::Poisoned)), "{next:?}");
    assert!(matches!(
        log.reset_positions("file:"),
        Err(LogError::Poisoned)
    ));
}

#[test]
fn a_data_dir_held_by_another_handle_is_locked_not_a_storage_error() {
    // Given a data dir open in this process (sled holds its file lock).
    let dir = tempfile::tempdir().unwrap();
    let _holder = open(&dir);
    // When it is opened again, then the error names the lock and the dir
    // (after a short retry, which covers a handle of this process that is
    // still being closed).
    let second = EventLog::open(dir.path(), &LogOptions::default());
    match second {
        Err(LogError::Locked { path }) => assert_eq!(path, dir.path().display().to_string()),
        Err(other) => panic!("expected Locked, got {other:?}"),
        Ok(_) => panic!("opened a data dir another handle holds"),
    }
}

#[test]
fn commands_count_toward_the_free_space_floor() {
    // Given a log whose floor leaves 64 MiB of the disk's free space to
    // write into (others' writes in the meantime move it a little: the
    // sizes below keep well clear of that),
    let dir = tempfile::tempdir().unwrap();
    open(&dir)
        .append(&inputs(vec![created("e1", "a")]), &[])
        .unwrap();
    let free_bytes = disk_free_bytes(dir.path()).expect("a unix filesystem");
    let options = LogOptions {
        disk_free_bytes_min: free_bytes.saturating_sub(64 << 20),
        compression_level: None,
        ..LogOptions::default()
    };
    let mut log = EventLog::open(dir.path(), &options).unwrap();
    // A command of 48 MiB: about twice that to write.
    let huge = |id: &str| {
        let mut c = super::outbox_tests::recall_command(id);
        c.explanation = "x".repeat(48 << 20);
        c
    };
    let refused_as_below_floor = |r: Result<(), LogError>| {
        assert!(
            matches!(r, Err(LogError::DiskBelowFloor { write_bytes, .. }) if write_bytes > 48 << 20),
            "{r:?}"
        );
    };
    // When a huge command is stored, then it is refused before sled
    // writes anything,
    refused_as_below_floor(log.append_commands(vec![huge("huge")]).map(drop));
    assert!(!log.write_failed.get());
    drop(log);
    // and a small one under the same floor is stored.
    let mut log = EventLog::open(dir.path(), &options).unwrap();
    let small = super::outbox_tests::recall_command("small");
    assert_eq!(log.append_commands(vec![small.clone()]).unwrap().len(), 1);
    assert_eq!(log.commands().count(), 1);
    // The shadow policy's commands count too.
    refused_as_below_floor(log.append_shadow(&[huge("shadow-huge")]));
    log.append_shadow(&[small]).unwrap();
    assert_eq!(log.shadow_commands().count(), 1);
}

#[test]
fn a_write_that_would_go_below_the_free_space_floor_stores_nothing_of_it() {
    // Given a log that has stored e1, reopened with a floor no disk meets.
    let dir = tempfile::tempdir().unwrap();
    open(&dir)
        .append(&inputs(vec![created("e1", "a")]), &[])
        .unwrap();
    let options = LogOptions {
        disk_free_bytes_min: u64::MAX / 4,
        ..LogOptions::default()
    };
    let mut log = EventLog::open(dir.path(), &options).unwrap();
    // When a batch with a position is appended, then it is refused as a
    // full disk, naming the floor, before sled is asked to write anything.
    let pos = Position {
        source: "file:x".into(),
        next_offset: 2,
    };
    let refused = log.append(&inputs(vec![created("e2", "b")]), &[pos]);
    match &refused {
        Err(e @ LogError::DiskBelowFloor { .. }) => {
            assert!(e.to_string().starts_with("disk full"), "{e}");
            assert!(e.to_string().contains("log.disk_free_bytes_min"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A snapshot is refused the same way.
    assert!(matches!(
        log.save_snapshot("s", 1, b"state"),
        Err(LogError::DiskBelowFloor { .. })
    ));
    assert!(
        !log.write_failed.get(),
        "sled never failed, so it may flush"
    );
    drop(log);
    // And after reopening, the log holds e1 only, no position moved and
    // nothing is torn.
    let log = open(&dir);
    assert_eq!(log.last_seq(), 1);
    assert!(log.positions("file:").unwrap().is_empty());
    assert!(log.load_snapshot("s").unwrap().is_none());
}

#[test]
fn a_command_carries_the_tenant_of_its_lead() {
    // Given a lead of tenant t1 and one of the default tenant, created in
    // one batch whose first event decides a command for each.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(&dir);
    let command = |lead: &str, id: &str| LeadCommand {
        command_id: id.into(),
        lead_id: lead.into(),
        issued_at_ms: 1000,
        causation_event_id: "c".into(),
        rule_id: "r".into(),
        rule_version: 1,
        explanation: String::new(),
        facts: Default::default(),
        tenant_id: String::new(),
        body: CommandBody::RemindFollowUp {
            owner_id: "rep".into(),
            deadline_ms: 5,
        },
    };
    let mut t1 = created("e1", "a");
    t1.tenant_id = "t1".into();
    let report = log
        .append_with(&inputs(vec![t1, created("e2", "b")]), &[], &mut |seq, _| {
            if seq == 2 {
                vec![command("a", "k1"), command("b", "k2")]
            } else {
                Vec::new()
            }
        })
        .unwrap();
    // Then each is stamped with its lead's tenant, whatever the policy
    // left in the field; so is a command stored outside any batch.
    let tenants: Vec<_> = report
        .commands
        .iter()
        .map(|(_, c)| c.tenant_id.as_str())
        .collect();
    assert_eq!(tenants, vec!["t1", ""]);
    let stored = log.append_commands(vec![command("a", "k3")]).unwrap();
    assert_eq!(stored[0].1.tenant_id, "t1");
    let read: Vec<_> = log.commands().map(|c| c.unwrap().1.tenant_id).collect();
    assert_eq!(read, vec!["t1", "", "t1"]);
}

#[test]
fn a_new_uncompressed_data_dir_gets_larger_segments_and_an_older_one_keeps_its_own() {
    // sled's `conf` ends with a checksum, not text.
    let conf = |dir: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(dir.join("conf")).unwrap()).into_owned()
    };
    let uncompressed = LogOptions {
        compression_level: None,
        ..LogOptions::default()
    };
    // Given new data dirs, when the log is opened, then sled's segments
    // are the larger ones without compression, sled's default with it.
    for (options, bytes) in [
        (&uncompressed, super::open::SEGMENT_BYTES_UNCOMPRESSED),
        (
            &LogOptions::default(),
            super::open::SEGMENT_BYTES_SLED_DEFAULT,
        ),
    ] {
        let new = tempfile::tempdir().unwrap();
        drop(EventLog::open(new.path(), options).unwrap());
        assert!(
            conf(new.path()).contains(&format!("segment_size: {bytes}\n")),
            "{}",
            conf(new.path())
        );
    }
    // Given an uncompressed one made with sled's default 512 KiB (every
    // data dir before the change), when the log is opened, then it opens
    // (sled refuses a segment size other than the one a database was made
    // with) and keeps its own.
    let old = tempfile::tempdir().unwrap();
    drop(sled::Config::new().path(old.path()).open().unwrap());
    assert!(conf(old.path()).contains("segment_size: 524288\n"));
    let mut log = EventLog::open(old.path(), &uncompressed).unwrap();
    let report = log.append(&inputs(vec![created("e1", "a")]), &[]).unwrap();
    assert_eq!(report.accepted.len(), 1);
    drop(log);
    assert!(conf(old.path()).contains("segment_size: 524288\n"));
}

/// Reading from any sequence gives exactly the events from it on, across
/// segments (one per batch) and inside them, whether segments are stored
/// compressed or as they are: the reader decodes a segment's events one at
/// a time and keeps one buffer for every segment it decompresses.
#[test]
fn reading_from_any_sequence_gives_the_rest_compressed_or_not() {
    for compression_level in [None, Some(3)] {
        // Given a log of 3 segments of 4, 1 and 3 events.
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions {
            compression_level,
            ..LogOptions::default()
        };
        let mut log = EventLog::open(dir.path(), &options).unwrap();
        let leads = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let mut n = 0;
        for size in [4, 1, 3] {
            let batch: Vec<LeadEvent> = leads[n..n + size]
                .iter()
                .map(|l| created(&format!("e-{l}"), l))
                .collect();
            n += size;
            log.append(&inputs(batch), &[]).unwrap();
        }
        // When it is read from every sequence, and from past its end.
        for from in 0..=10u64 {
            let read: Vec<(u64, String)> = log
                .events_from(from)
                .map(|r| r.map(|(seq, e)| (seq, e.lead_id)))
                .collect::<Result<_, _>>()
                .unwrap();
            // Then it is the events from there on, in order.
            let want: Vec<(u64, String)> = (from.max(1)..=8)
                .map(|seq| (seq, leads[seq as usize - 1].to_string()))
                .collect();
            assert_eq!(read, want, "from {from}, compression {compression_level:?}");
        }
    }
}
