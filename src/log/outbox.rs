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
        if next_cseq > self.next_cseq {
            // They went in as a run (`stage_run`), which raised the marker.
            self.format = self.format.max(FORMAT_COMMAND_RUNS);
        }
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
        self.stored_commands().map(|stored| {
            let (cseq, value, range) = stored?;
            let id = codec::command_id_of(&value[range])
                .map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}")))?;
            Ok((cseq, id.into_owned()))
        })
    }

    /// Every stored command's sequence and bytes (a range of a stored
    /// value), in sequence order: the keys of one command each that formats
    /// before 4 wrote, then the runs (only ever written after them).
    fn stored_commands(&self) -> impl Iterator<Item = Result<StoredCommand, LogError>> + '_ {
        let singles = self.tree.scan_prefix([COMMAND]).map(|kv| {
            let (k, v) = kv?;
            let cseq = trailing_u64(&k).ok_or_else(|| LogError::Corrupt("command key".into()))?;
            let all = 0..v.len();
            Ok((cseq, v, all))
        });
        let runs = self.tree.scan_prefix([COMMAND_RUN]).flat_map(|kv| {
            let run = kv.map_err(LogError::from).and_then(|(k, v)| {
                let first =
                    trailing_u64(&k).ok_or_else(|| LogError::Corrupt("command run key".into()))?;
                let (layout, entries) = run_commands(first, &v)?;
                Ok((first, layout, entries))
            });
            let each: Vec<Result<StoredCommand, LogError>> = match run {
                Err(e) => vec![Err(e)],
                Ok((first, v, entries)) => (first..)
                    .zip(entries)
                    .map(|(cseq, range)| Ok((cseq, v.clone(), range)))
                    .collect(),
            };
            each
        });
        singles.chain(runs)
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
        match CommandReader::default().read(self, cseq)? {
            None => Ok(None),
            Some((v, range)) => codec::command_id_of(&v[range])
                .map(|id| Some(id.into_owned()))
                .map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}"))),
        }
    }

    /// Stages the commands whose ids the log does not hold yet (and the
    /// next command sequence, when there are any) into `batch`.
    pub(super) fn stage_new_commands(
        &self,
        batch: &mut sled::Batch,
        commands: Vec<LeadCommand>,
    ) -> Result<StagedCommands, LogError> {
        let mut in_batch = IdMap::default();
        let mut stored = Vec::new();
        let mut next_cseq = self.next_cseq;
        let mut run = CommandRun::default();
        for mut command in commands {
            if self.command_known(&command.command_id, &in_batch)? {
                continue;
            }
            command.tenant_id = self.tenant_of(&command.lead_id, &IdMap::default())?;
            let cseq = next_cseq;
            next_cseq += 1;
            stage_command(&mut run, &mut in_batch, cseq, &command);
            stored.push((cseq, command));
        }
        let bytes = self.stage_run(batch, run);
        if !stored.is_empty() {
            batch.insert(str_key(META, META_NEXT_CSEQ), &next_cseq.to_be_bytes());
            batch.insert(
                str_key(META, META_SENT_BELOW),
                &self.commands_sent_below().to_be_bytes(),
            );
        }
        Ok(StagedCommands {
            stored,
            next_cseq,
            bytes,
        })
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
        let StagedCommands {
            stored,
            next_cseq,
            bytes,
        } = self.stage_new_commands(&mut batch, commands)?;
        if stored.is_empty() {
            return Ok(stored);
        }
        if let Err(e) = self.write(batch, bytes) {
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
        let mut staged_bytes = 0u64;
        for c in commands {
            let encoded = codec::encode_command(c);
            staged_bytes += encoded.len() as u64;
            batch.insert(&seq_key(SHADOW, next), encoded);
            next += 1;
        }
        batch.insert(str_key(META, META_NEXT_HSEQ), &next.to_be_bytes());
        self.apply(batch, staged_bytes)?;
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
        let mut reader = CommandReader::default();
        for cseq in pending {
            let (stored, range) = reader
                .read(self, cseq)?
                .ok_or_else(|| LogError::Corrupt(format!("outbox entry {cseq} has no command")))?;
            let item = read(&stored[range])
                .map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}")))?;
            out.push((cseq, item));
        }
        Ok(out)
    }

    /// One stored command.
    pub fn command(&self, cseq: u64) -> Result<Option<LeadCommand>, LogError> {
        match CommandReader::default().read(self, cseq)? {
            None => Ok(None),
            Some((v, range)) => codec::decode_command(&v[range])
                .map(Some)
                .map_err(|e| LogError::Corrupt(format!("command {cseq}: {e}"))),
        }
    }

    /// Every command decided so far, in decision order.
    pub fn commands(&self) -> impl Iterator<Item = Result<(u64, LeadCommand), LogError>> + '_ {
        self.stored_commands().map(|stored| {
            let (cseq, v, range) = stored?;
            let command = codec::decode_command(&v[range])
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

/// Commands staged into a batch: those new (with their sequences), the
/// next command sequence once the batch is written, and the bytes staged
/// (for the free-space check).
pub(super) struct StagedCommands {
    pub(super) stored: Vec<(u64, LeadCommand)>,
    pub(super) next_cseq: u64,
    pub(super) bytes: u64,
}

/// A stored command as a dispatcher publishes it: its key and headers, and
/// its protobuf as stored.
pub type EncodedCommand = (codec::CommandHeader, Vec<u8>);

/// Puts a command into the run of its write: its id goes into the
/// in-memory command-id index once the batch is written
/// (`commands_stored`), so that no id is ever stored twice. It is pending
/// from then on (see `mark_commands_sent`).
pub(super) fn stage_command(
    run: &mut CommandRun,
    ids_in_batch: &mut IdMap<String, u64>,
    cseq: u64,
    command: &LeadCommand,
) {
    run.push(cseq, &codec::encode_command(command));
    ids_in_batch.insert(command.command_id.clone(), cseq);
}

/// A stored command: its sequence, and its bytes as a range of the value
/// that holds them (a run, or a key of its own before format 4).
type StoredCommand = (u64, sled::IVec, std::ops::Range<usize>);

/// The commands of one write, stored under one key (`g + first cseq`)
/// per [`RUN_BYTES_MAX`], their sequences following on from it. A key per
/// command cost sled about 5 µs each on the write path (it links, logs and
/// later consolidates every key apart), as much as a few events. The value
/// is a [`segment`] of encoded commands, stored as the events' segments
/// are (one zstd frame with `log.compression`, or raw): one container and
/// one checked parse for both.
#[derive(Debug, Default)]
pub(super) struct CommandRun {
    first_cseq: u64,
    segment: SegmentWriter,
    /// The write's earlier runs, each full, with their first sequences.
    full: Vec<(u64, SegmentWriter)>,
}

/// A run is closed once its commands hold this many bytes, and the write's
/// next command starts another. sled stores a value over a quarter of its
/// segment (128 KiB of sled's default 512 KiB) as a file of its own and is
/// slow to remove old ones (see `open.rs`): a tick that fires thousands of
/// deadlines must not make a megabyte value, even uncompressed.
pub(super) const RUN_BYTES_MAX: usize = 64 * 1024;

impl CommandRun {
    /// Adds the command `cseq` (the run's next sequence), as encoded.
    pub(super) fn push(&mut self, cseq: u64, encoded: &[u8]) {
        if self.segment.body_bytes() >= RUN_BYTES_MAX {
            let full = std::mem::take(&mut self.segment);
            self.full.push((self.first_cseq, full));
        }
        if self.segment.is_empty() {
            self.first_cseq = cseq;
        }
        assert_eq!(
            cseq,
            self.first_cseq + self.segment.len() as u64,
            "a run's commands follow on"
        );
        self.segment.push(encoded);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.segment.is_empty() && self.full.is_empty()
    }

    /// The key and stored value of each of its runs, once every command is
    /// in, compressed at `level` (or not).
    fn finish(mut self, level: Option<i32>) -> impl Iterator<Item = ([u8; 9], Vec<u8>)> {
        if !self.segment.is_empty() {
            self.full.push((self.first_cseq, self.segment));
        }
        self.full.into_iter().map(move |(first, run)| {
            (
                seq_key(COMMAND_RUN, first),
                segment::stored(run.finish(), level),
            )
        })
    }
}

impl EventLog {
    /// Puts a run of commands into `batch` (nothing if it is empty), with
    /// the format marker raised to 4 in the same batch if the data dir is
    /// older (the in-memory format follows once the batch is written: see
    /// `commands_stored`). Returns the bytes it staged, for the free-space
    /// check.
    pub(super) fn stage_run(&self, batch: &mut sled::Batch, run: CommandRun) -> u64 {
        if run.is_empty() {
            return 0;
        }
        if self.format < FORMAT_COMMAND_RUNS {
            batch.insert(
                str_key(META, META_FORMAT),
                &FORMAT_COMMAND_RUNS.to_be_bytes(),
            );
        }
        let mut staged_bytes = 0;
        for (key, value) in run.finish(self.compression_level) {
            staged_bytes += value.len() as u64;
            batch.insert(&key, value);
        }
        staged_bytes
    }
}

/// The commands of the run stored from `first_cseq` as `stored`: the
/// run's layout (decompressed if it was compressed) and each command's
/// byte range in it. A value that does not parse is corruption.
pub(super) fn run_commands(
    first_cseq: u64,
    stored: &sled::IVec,
) -> Result<(sled::IVec, Vec<std::ops::Range<usize>>), LogError> {
    let corrupt = |why: String| LogError::Corrupt(format!("command run from {first_cseq}: {why}"));
    let layout = match segment::layout(stored).map_err(corrupt)? {
        std::borrow::Cow::Borrowed(_) => stored.clone(),
        std::borrow::Cow::Owned(bytes) => sled::IVec::from(bytes),
    };
    // The parse checks the table against the bytes before anything is
    // sized by it.
    let run = Segment::parse(&layout).map_err(corrupt)?;
    let ranges = (0..run.len()).map(|i| run.range(i)).collect();
    Ok((layout, ranges))
}

/// Reads stored commands by sequence, keeping the last run it read: the
/// dispatcher reads the pending commands in order, many from one run.
#[derive(Default)]
struct CommandReader {
    run: Option<(u64, sled::IVec, Vec<std::ops::Range<usize>>)>,
}

impl CommandReader {
    /// The bytes of the command stored at `cseq`, if there is one: in the
    /// run that starts at or before it, or under a key of its own (written
    /// before format 4).
    fn read(
        &mut self,
        log: &EventLog,
        cseq: u64,
    ) -> Result<Option<(sled::IVec, std::ops::Range<usize>)>, LogError> {
        let within = |run: &(u64, sled::IVec, Vec<std::ops::Range<usize>>)| {
            let (first, value, entries) = run;
            let i = usize::try_from(cseq.checked_sub(*first)?).ok()?;
            Some((value.clone(), entries.get(i)?.clone()))
        };
        if let Some(found) = self.run.as_ref().and_then(within) {
            return Ok(Some(found));
        }
        let last_run = log
            .tree
            .range(seq_key(COMMAND_RUN, 0)..=seq_key(COMMAND_RUN, cseq))
            .next_back()
            .transpose()?;
        if let Some((k, v)) = last_run {
            let first =
                trailing_u64(&k).ok_or_else(|| LogError::Corrupt("command run key".into()))?;
            let (layout, entries) = run_commands(first, &v)?;
            let run = (first, layout, entries);
            let found = within(&run);
            self.run = Some(run);
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(log.tree.get(seq_key(COMMAND, cseq))?.map(|v| {
            let all = 0..v.len();
            (v, all)
        }))
    }
}
