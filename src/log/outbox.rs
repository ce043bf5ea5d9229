//! The outboxes: commands (and the shadow policy's), dead letters, and
//! their "sent" marks, flushed within a bound.

use super::*;

impl EventLog {
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

    /// How many dead letters wait for publication (kept in memory: no
    /// scan).
    pub fn dead_letters_pending(&self) -> Result<u64, LogError> {
        Ok(self.dead_letters_pending.borrow().len() as u64)
    }

    /// The oldest command not acknowledged yet above the markers of an
    /// older data dir (the next one to come when none waits): every command
    /// from `outbox_markers_below` up to it was published. Stored with
    /// every batch that stores commands and with every mark, so that a
    /// restart sends again from here (see `mark_commands_sent`).
    pub(super) fn commands_sent_below(&self) -> u64 {
        self.commands_pending
            .borrow()
            .range(self.outbox_markers_below..)
            .next()
            .copied()
            .unwrap_or(self.next_cseq)
    }

    /// Commands durably stored up to `next_cseq`, with these ids and
    /// sequences: each is pending.
    pub(super) fn commands_stored<'a>(
        &mut self,
        next_cseq: u64,
        ids: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        if let Some(known) = self.command_ids.get_mut() {
            for (id, cseq) in ids {
                known.entry(index::id_hash(id)).or_insert(cseq);
            }
        }
        debug_assert!(next_cseq >= self.next_cseq, "command sequences only grow");
        self.commands_pending
            .get_mut()
            .extend(self.next_cseq..next_cseq);
        self.next_cseq = next_cseq;
    }

    /// Removes the markers of `prefix` that `pending` still holds, in one
    /// batch (a copy marked sent twice is removed once).
    fn remove_markers(
        &self,
        prefix: u8,
        pending: &std::cell::RefCell<std::collections::HashSet<u64>>,
        seqs: &[u64],
    ) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        let mut removed = Vec::new();
        for s in seqs {
            if pending.borrow().contains(s) {
                batch.remove(&seq_key(prefix, *s));
                removed.push(*s);
            }
        }
        self.apply(batch, 0)?;
        let mut pending = pending.borrow_mut();
        for s in removed {
            pending.remove(&s);
        }
        Ok(())
    }

    /// Marks dead letters as published. Not flushed by itself (one fsync
    /// per acknowledgement would cost more than the publishing): the
    /// caller flushes within a bound with
    /// [`flush_marks_older_than`](Self::flush_marks_older_than); a crash
    /// before that re-sends them (at-least-once).
    pub fn mark_dead_letters_sent(&self, rseqs: &[u64]) -> Result<(), LogError> {
        self.remove_markers(DEAD_LETTER, &self.dead_letters_pending, rseqs)?;
        self.marks_written(rseqs.len());
        Ok(())
    }

    pub(super) fn marks_written(&self, n: usize) {
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

    pub(super) fn command_known(
        &self,
        id: &str,
        in_batch: &IdMap<String, u64>,
    ) -> Result<bool, LogError> {
        if in_batch.contains_key(id) {
            return Ok(true);
        }
        if self.command_ids.get().is_none() {
            let mut known = index::IdSeqs::default();
            for stored in self.stored_command_ids() {
                let (cseq, stored) = stored?;
                known.entry(index::id_hash(&stored)).or_insert(cseq);
            }
            let _ = self.command_ids.set(known);
            self.drop_command_id_keys()?;
        }
        let Some(cseq) = self
            .command_ids
            .get()
            .and_then(|known| known.get(&index::id_hash(id)))
            .copied()
        else {
            return Ok(false);
        };
        if self.command_id_at(cseq)?.as_deref() == Some(id) {
            return Ok(true);
        }
        // Another id has this hash: look for this one among them all.
        for stored in self.stored_command_ids() {
            if stored?.1 == id {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every stored command's sequence and id (read from its first field).
    fn stored_command_ids(&self) -> impl Iterator<Item = Result<(u64, String), LogError>> + '_ {
        self.tree.scan_prefix([COMMAND]).map(|kv| {
            let (k, v) = kv?;
            let cseq = trailing_u64(&k).ok_or_else(|| LogError::Corrupt("command key".into()))?;
            let id = codec::command_id_of(&v)
                .map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}")))?;
            Ok((cseq, id.into_owned()))
        })
    }

    /// Removes the id key per command that data dirs written before the
    /// in-memory command-id index kept (nothing reads them now), a bounded
    /// batch at a time. Runs once per open, at the first store: only a
    /// writer ever removes them.
    fn drop_command_id_keys(&self) -> Result<(), LogError> {
        const KEYS_PER_BATCH_MAX: usize = 10_000;
        loop {
            let keys = self
                .tree
                .scan_prefix([COMMAND_ID])
                .keys()
                .take(KEYS_PER_BATCH_MAX)
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() {
                return Ok(());
            }
            let mut batch = sled::Batch::default();
            for k in keys {
                batch.remove(k);
            }
            self.apply(batch, 0)?;
        }
    }

    /// The id of the command stored at `cseq`.
    fn command_id_at(&self, cseq: u64) -> Result<Option<String>, LogError> {
        match self.tree.get(seq_key(COMMAND, cseq))? {
            None => Ok(None),
            Some(v) => codec::command_id_of(&v)
                .map(|id| Some(id.into_owned()))
                .map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}"))),
        }
    }

    /// Stages the commands whose ids the log does not hold yet (and the
    /// next command sequence, when there are any) into `batch`. Returns
    /// them with their sequences, and the next sequence once the batch is
    /// written.
    pub(super) fn stage_new_commands(
        &self,
        batch: &mut sled::Batch,
        commands: Vec<LeadCommand>,
    ) -> Result<(Vec<(u64, LeadCommand)>, u64), LogError> {
        let mut in_batch = IdMap::default();
        let mut stored = Vec::new();
        let mut next_cseq = self.next_cseq;
        for mut command in commands {
            if self.command_known(&command.command_id, &in_batch)? {
                continue;
            }
            command.tenant_id = self.tenant_of(&command.lead_id, &IdMap::default())?;
            let cseq = next_cseq;
            next_cseq += 1;
            stage_command(batch, &mut in_batch, cseq, &command);
            stored.push((cseq, command));
        }
        if !stored.is_empty() {
            batch.insert(str_key(META, META_NEXT_CSEQ), &next_cseq.to_be_bytes());
            batch.insert(
                str_key(META, META_SENT_BELOW),
                &self.commands_sent_below().to_be_bytes(),
            );
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
        if let Err(e) = self.write(batch, 0) {
            self.poisoned = true;
            return Err(e);
        }
        self.commands_stored(
            next_cseq,
            stored
                .iter()
                .map(|(cseq, c)| (c.command_id.as_str(), *cseq)),
        );
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
        self.apply(batch, 0)?;
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
        self.pending_stored_after(after_cseq, limit, codec::decode_command)
    }

    /// Like [`pending_commands_after`](Self::pending_commands_after), each
    /// as its key and headers and the protobuf it is stored as: what a
    /// dispatcher publishes, without decoding the rest or encoding again.
    pub fn pending_commands_encoded_after(
        &self,
        after_cseq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EncodedCommand)>, LogError> {
        self.pending_stored_after(after_cseq, limit, |bytes| {
            codec::decode_command_header(bytes).map(|h| (h, bytes.to_vec()))
        })
    }

    /// The pending commands above `after_cseq`, at most `limit`, each read
    /// with `read`.
    fn pending_stored_after<T>(
        &self,
        after_cseq: u64,
        limit: usize,
        read: impl Fn(&[u8]) -> Result<T, Rejection>,
    ) -> Result<Vec<(u64, T)>, LogError> {
        let pending: Vec<u64> = self
            .commands_pending
            .borrow()
            .range(after_cseq.saturating_add(1)..)
            .take(limit)
            .copied()
            .collect();
        let mut out = Vec::with_capacity(pending.len());
        for cseq in pending {
            let stored = self
                .tree
                .get(seq_key(COMMAND, cseq))?
                .ok_or_else(|| LogError::Corrupt(format!("outbox entry {cseq} has no command")))?;
            let item =
                read(&stored).map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}")))?;
            out.push((cseq, item));
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
    pub fn pending_command_seqs(&self) -> Result<std::collections::BTreeSet<u64>, LogError> {
        Ok(self.commands_pending.borrow().clone())
    }

    /// Commands decided and commands still waiting for publication (kept
    /// in memory: no scan).
    pub fn command_counts(&self) -> Result<(u64, u64), LogError> {
        Ok((
            self.next_cseq - 1,
            self.commands_pending.borrow().len() as u64,
        ))
    }

    /// Marks commands as published. Not flushed by itself: see
    /// [`mark_dead_letters_sent`](Self::mark_dead_letters_sent).
    ///
    /// No key per command in the usual, in-order case: the log keeps the
    /// pending ones in memory and stores where the oldest of them stands
    /// (`commands_sent_below`), one key per mark that moves it, plus a key
    /// per command acknowledged above it (out of order: a retry, or acks
    /// of different partitions), removed once the oldest passes it. After
    /// a crash exactly the commands not acknowledged (and flushed) are sent
    /// again. Data dirs written before kept one marker per pending command;
    /// those are read at open and removed here as their commands are
    /// acknowledged, and the oldest pending command is counted only among
    /// the commands above them (`outbox_markers_below`).
    pub fn mark_commands_sent(&self, cseqs: &[u64]) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        let mut removed = std::collections::BTreeSet::new();
        {
            let pending = self.commands_pending.borrow();
            for s in cseqs {
                if pending.contains(s) && removed.insert(*s) && *s < self.outbox_markers_below {
                    batch.remove(&seq_key(OUTBOX, *s));
                }
            }
        }
        if removed.is_empty() {
            return Ok(());
        }
        let before = self.commands_sent_below();
        let after = self
            .commands_pending
            .borrow()
            .range(self.outbox_markers_below..)
            .find(|s| !removed.contains(s))
            .copied()
            .unwrap_or(self.next_cseq);
        if after != before {
            batch.insert(str_key(META, META_SENT_BELOW), &after.to_be_bytes());
        }
        // Acknowledged above the oldest pending one: a key each, until the
        // oldest catches up (then the keys below it go).
        let mut sent_above = self.commands_sent_above.borrow_mut();
        let mut gone = Vec::new();
        for s in sent_above.range(..after) {
            batch.remove(&seq_key(SENT_ABOVE, *s));
            gone.push(*s);
        }
        let mut above = Vec::new();
        for s in removed.range(after..) {
            batch.insert(&seq_key(SENT_ABOVE, *s), &[]);
            above.push(*s);
        }
        self.apply(batch, 0)?;
        for s in gone {
            sent_above.remove(&s);
        }
        sent_above.extend(above);
        drop(sent_above);
        let mut pending = self.commands_pending.borrow_mut();
        for s in &removed {
            pending.remove(s);
        }
        drop(pending);
        self.marks_written(cseqs.len());
        Ok(())
    }
}

/// A stored command as a dispatcher publishes it: its key and headers, and
/// its protobuf as stored.
pub type EncodedCommand = (codec::CommandHeader, Vec<u8>);

/// Puts a command into a batch, one key: its id goes into the in-memory
/// command-id index once the batch is written (`commands_stored`), so that
/// no id is ever stored twice. It is pending from then on (see
/// `mark_commands_sent`).
pub(super) fn stage_command(
    batch: &mut sled::Batch,
    ids_in_batch: &mut IdMap<String, u64>,
    cseq: u64,
    command: &LeadCommand,
) {
    batch.insert(&seq_key(COMMAND, cseq), codec::encode_command(command));
    ids_in_batch.insert(command.command_id.clone(), cseq);
}
