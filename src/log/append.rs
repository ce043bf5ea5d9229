//! The append path: validation against each lead's lifecycle and the id
//! index, one atomic sled batch with the positions and the commands it
//! causes, one flush. See the durability contract in `mod.rs`.

use super::outbox::{stage_command, CommandRun};
use super::*;

impl EventLog {
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
        self.append_admitted(inputs, positions, &mut |_| None, decide, &mut Vec::new)
    }

    /// Like [`append_with`](Self::append_with), and asks `admit` about
    /// each event the lifecycle accepts, just before it is appended (after
    /// `decide` has seen every event before it, this batch's too): a
    /// rejection it returns is stored like the lifecycle's own (the
    /// policy's duplicate-contact rule).
    ///
    /// After the last input, `follow` is asked once for events of the
    /// caller's own that follow the batch in the same atomic write (the
    /// engine's `scored` events for the scores the batch moved): each goes
    /// through the same validation, `admit` and `decide` as an input, and
    /// is reported in `followed` or `followed_rejected`, not among the
    /// inputs. One write and one flush for both, so a crash keeps the
    /// batch with what follows it or neither.
    pub fn append_admitted(
        &mut self,
        inputs: &[Input],
        positions: &[Position],
        admit: &mut dyn FnMut(&LeadEvent) -> Option<Rejection>,
        decide: &mut dyn FnMut(u64, &LeadEvent) -> Vec<LeadCommand>,
        follow: &mut dyn FnMut() -> Vec<LeadEvent>,
    ) -> Result<AppendReport, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        self.index()?;
        // Positions are checked before anything is validated or folded: a
        // regressed one refuses the batch while the caller's state and the
        // log still agree, so nothing needs poisoning.
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
        }
        let mut next_cseq = self.next_cseq;
        let started = std::time::Instant::now();
        let mut batch = sled::Batch::default();
        let mut report = AppendReport::default();
        // What `follow` adds, kept here so that the in-batch views below
        // may borrow it as they borrow `inputs`.
        let followed: std::cell::OnceCell<Vec<Input>> = std::cell::OnceCell::new();
        let mut next_seq = self.next_seq;
        let mut next_rseq = self.next_rseq;
        // In-batch views: lead states and ids written by earlier inputs of
        // this batch are not in sled yet.
        let mut overlay: IdMap<&str, Lead> = IdMap::default();
        let mut segment = SegmentWriter::new();
        // What the batch writes, for the free-space check (see `room_for`).
        let mut staged_bytes = 0u64;
        let mut ids_in_batch: IdMap<&str, Seen> = IdMap::default();
        // Rejected inputs whose ids become idempotency keys, for the index.
        let mut rejected_ids: Vec<(&str, u64)> = Vec::new();
        let mut counters: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut command_ids_in_batch: IdMap<String, u64> = IdMap::default();
        // The batch's commands, stored under one key (see `CommandRun`).
        let mut run = CommandRun::default();
        // Whether `decide` has folded an event of this batch into the
        // caller's state: from then on any error leaves that state ahead
        // of the log, which must then refuse work until it is reopened.
        let mut folded = false;
        // Whether this batch makes the data dir format 3 (or more).
        let mut upgraded = false;

        let staged = (|| -> Result<(), LogError> {
            // The inputs, then what follows them (one round: what follows
            // is asked for once).
            let mut round: &[Input] = inputs;
            let mut following = false;
            loop {
                for (index, input) in round.iter().enumerate() {
                    let outcome = match &input.record {
                        Err((reason, _)) => Err(reason.clone()),
                        Ok(event) => match self.validate(event, &overlay, &ids_in_batch)? {
                            Ok(lead) => match admit(event) {
                                Some(refused) => Err(refused),
                                None => Ok(lead),
                            },
                            refused => refused,
                        },
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
                            if following {
                                report.followed.push((index, seq));
                            } else {
                                report.accepted.push((index, seq));
                            }
                            folded = true;
                            for mut command in decide(seq, event) {
                                command.tenant_id = self.tenant_of(&command.lead_id, &overlay)?;
                                if self.command_known(&command.command_id, &command_ids_in_batch)? {
                                    report.commands_deduplicated += 1;
                                    continue;
                                }
                                let cseq = next_cseq;
                                next_cseq += 1;
                                stage_command(&mut run, &mut command_ids_in_batch, cseq, &command);
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
                            staged_bytes += bytes.len() as u64;
                            batch.insert(&seq_key(REJECTED, rseq), bytes);
                            if self.dead_letter_outbox {
                                batch.insert(&seq_key(DEAD_LETTER, rseq), &[]);
                            }
                            if following {
                                report.followed_rejected.push(reason);
                            } else {
                                report.rejected.push((index, reason));
                            }
                        }
                    }
                }
                if following {
                    break;
                }
                following = true;
                let more = follow();
                if more.is_empty() {
                    break;
                }
                round = followed
                    .get_or_init(|| more.into_iter().map(|e| Input::event(e, None)).collect());
            }

            if !segment.is_empty() {
                let bytes = segment::stored(segment.finish(), self.compression_level);
                if segment::is_compressed(&bytes) && self.format < FORMAT_COMPRESSED_SEGMENTS {
                    // The first compressed segment makes the data dir
                    // format 3, in its own batch (see `FORMAT_VERSIONS_READ`;
                    // a run of commands staged below raises it to 4).
                    batch.insert(
                        str_key(META, META_FORMAT),
                        &FORMAT_COMPRESSED_SEGMENTS.to_be_bytes(),
                    );
                    upgraded = true;
                }
                staged_bytes += bytes.len() as u64;
                batch.insert(&seq_key(EVENT, self.next_seq), bytes);
            }
            staged_bytes += self.stage_run(&mut batch, std::mem::take(&mut run));
            for (code, n) in &counters {
                let key = str_key(COUNTER, code);
                let old = self
                    .tree
                    .get(&key)?
                    .and_then(|v| u64_value(&v))
                    .unwrap_or(0);
                batch.insert(key, &(old + n).to_be_bytes());
            }
            Ok(())
        })();
        if let Err(e) = staged {
            if folded {
                self.poisoned = true;
            }
            return Err(e);
        }
        for p in positions {
            batch.insert(str_key(POSITION, &p.source), &p.next_offset.to_be_bytes());
        }
        batch.insert(str_key(META, META_NEXT_SEQ), &next_seq.to_be_bytes());
        batch.insert(str_key(META, META_NEXT_RSEQ), &next_rseq.to_be_bytes());
        batch.insert(str_key(META, META_NEXT_CSEQ), &next_cseq.to_be_bytes());
        if next_cseq > self.next_cseq {
            batch.insert(
                str_key(META, META_SENT_BELOW),
                &self.commands_sent_below().to_be_bytes(),
            );
        }

        let prepared = started.elapsed();
        // `decide` has folded the batch into the caller's state: if the
        // write fails, that state is ahead of the disk, and so is ours.
        if let Err(e) = self.write(batch, staged_bytes) {
            self.poisoned = true;
            return Err(e);
        }
        let written = started.elapsed();

        // Only now, with the batch durable, does memory move forward.
        if upgraded {
            self.format = self.format.max(FORMAT_COMPRESSED_SEGMENTS);
        }
        self.next_seq = next_seq;
        if self.dead_letter_outbox {
            // Every rejection of the batch is queued for the DLQ.
            self.dead_letters_pending
                .get_mut()
                .extend(self.next_rseq..next_rseq);
        }
        self.next_rseq = next_rseq;
        self.commands_stored(
            next_cseq,
            command_ids_in_batch
                .iter()
                .map(|(id, cseq)| (id.as_str(), *cseq)),
        );
        let index = self.index.get_mut().expect("indexed above");
        for (lead_id, lead) in overlay {
            index.set_lead(lead_id, lead);
        }
        for (i, seq) in &report.accepted {
            let event = inputs[*i].record.as_ref().expect("accepted events decode");
            index.insert(&event.event_id, &event.lead_id, *seq);
        }
        for (i, seq) in &report.followed {
            let event = followed.get().expect("followed events were staged")[*i]
                .record
                .as_ref()
                .expect("followed events are events");
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
        debug_assert_eq!(
            report.followed.len() + report.followed_rejected.len(),
            followed.get().map_or(0, Vec::len),
            "every event that followed is accepted or rejected"
        );
        Ok(report)
    }

    /// Applies one atomic batch and flushes (fsync): durable on `Ok`.
    /// `bytes` is about what the batch holds, for the free-space check.
    pub(super) fn write(&self, batch: sled::Batch, bytes: u64) -> Result<(), LogError> {
        self.apply(batch, bytes)?;
        self.flush()
    }

    /// Applies one atomic batch without flushing, if the disk has room.
    pub(super) fn apply(&self, batch: sled::Batch, bytes: u64) -> Result<(), LogError> {
        self.room_for(bytes)?;
        self.written(self.tree.apply_batch(batch))
    }

    /// Refuses a write that would leave less than the configured floor
    /// (`log.disk_free_bytes_min`) free on the data dir's filesystem.
    ///
    /// sled is not trusted at ENOSPC: a batch that fails there has been
    /// seen to come back torn after reopening (its metadata keys without
    /// its events, "next sequence does not follow last stored event"), and
    /// a write has been seen to hang. So the log stops well before the
    /// disk is full, with nothing of the refused write stored, and sled
    /// never meets a full disk through us. Nothing is poisoned by the check
    /// itself; callers that folded the batch already poison as for any
    /// failed write.
    pub(super) fn room_for(&self, bytes: u64) -> Result<(), LogError> {
        let Some(free_bytes) = disk_free_bytes(&self.path) else {
            return Ok(());
        };
        // sled writes a value into its log and may write it again as a
        // blob file, so a write needs about twice its size.
        let needed = self
            .disk_free_bytes_min
            .saturating_add(bytes.saturating_mul(2));
        if free_bytes < needed {
            return Err(LogError::DiskBelowFloor {
                path: self.path.display().to_string(),
                free_bytes,
                floor_bytes: self.disk_free_bytes_min,
                write_bytes: bytes,
            });
        }
        Ok(())
    }

    /// The outcome of a write to sled: a failure is remembered (see
    /// `write_failed`) and a full disk named as such.
    pub(super) fn written<T>(&self, r: sled::Result<T>) -> Result<T, LogError> {
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

    /// The tenant of a lead the log holds (or this batch created): a
    /// command's tenant is its lead's. Empty for an unknown lead.
    pub(super) fn tenant_of(
        &self,
        lead_id: &str,
        overlay: &IdMap<&str, Lead>,
    ) -> Result<String, LogError> {
        Ok(match overlay.get(lead_id) {
            Some(lead) => lead.tenant_id.clone(),
            None => self
                .index()?
                .leads
                .get(lead_id)
                .map(|e| e.lead.tenant_id.clone())
                .unwrap_or_default(),
        })
    }

    /// The lifecycle verdict for one event; `Err` only for storage errors,
    /// which abort the whole batch rather than turn into a wrong verdict.
    pub(super) fn validate(
        &self,
        event: &LeadEvent,
        overlay: &IdMap<&str, Lead>,
        ids_in_batch: &IdMap<&str, Seen>,
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
        self.write(batch, 0)?;
        Ok(forgotten)
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
}
