//! Reads: events by sequence (and [`LogReader`] for another thread), one
//! lead's timeline and rejections, ids, positions, totals; and the
//! in-memory index they rest on, built on first use from its checkpoint
//! plus a scan.

use super::*;

impl EventLog {
    /// The highest sequence stored (0 for an empty log).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The in-memory indexes, built on first use: from the last checkpoint
    /// (see [`checkpoint_index`](Self::checkpoint_index)) plus a scan of the
    /// events after it, or from a scan of the whole log.
    pub(super) fn index(&self) -> Result<&Index, LogError> {
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let started = std::time::Instant::now();
        let mut index = self.load_index_checkpoint()?.unwrap_or_default();
        let mut seen = 0u64;
        for item in self.events_from(index.covered_seq + 1) {
            let (seq, event) = item?;
            // Invariant on read: stored ids are unique.
            if let Some(Seen::Event(_)) = self.seen_id(&index, &event.event_id)? {
                return Err(LogError::Corrupt(format!(
                    "event id {} is stored twice (again at {seq})",
                    event.event_id
                )));
            }
            index.fold(seq, &event).map_err(LogError::Corrupt)?;
            seen += 1;
            if seen % 1_000_000 == 0 {
                tracing::info!(events = seen, "indexing the log");
            }
        }
        // Then the ids of rejected inputs, after the events: a log written
        // before rejected ids were remembered may hold an id rejected first
        // and accepted later, and the accepted event is what it names.
        let from = seq_key(REJECTED, index.covered_rseq.saturating_add(1));
        for item in self.tree.range(from..=seq_key(REJECTED, u64::MAX)) {
            let (_, v) = item?;
            let r: StoredRejection = bincode::deserialize(&v)
                .map_err(|e| LogError::Corrupt(format!("rejection: {e}")))?;
            if let Some(id) = r.idempotency_key() {
                if self.seen_id(&index, id)?.is_none() {
                    index.insert_rejected(id, r.rseq);
                }
            }
            index.cover_rejections(r.rseq);
        }
        // Invariant on read: every stored event is indexed once.
        assert_eq!(
            index.covered_seq,
            self.last_seq(),
            "the index covers the log"
        );
        assert_eq!(
            index.events(),
            index.covered_seq,
            "one id per indexed event"
        );
        assert!(
            index.rejections() < self.next_rseq,
            "at most one id per rejection"
        );
        tracing::info!(
            from_checkpoint = index.checkpoint_seq,
            scanned = seen,
            rejected_ids = index.rejections(),
            leads = index.leads.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "log indexed"
        );
        Ok(self.index.get_or_init(|| index))
    }

    /// The index checkpoint, if there is a usable one: its base and then
    /// its deltas in order, as far as they follow each other. A checkpoint
    /// is a cache: a base that does not decode or does not fit this log is
    /// ignored (with a warning) and the index is rebuilt from the events; a
    /// delta that does not follow is ignored with the ones after it, and
    /// the events after the last piece taken are scanned.
    pub(super) fn load_index_checkpoint(&self) -> Result<Option<Index>, LogError> {
        let Some((covered, bytes)) = self.load_snapshot(INDEX_CHECKPOINT)? else {
            return Ok(None);
        };
        if covered > self.last_seq() {
            tracing::warn!(covered, "index checkpoint is ahead of the log; rebuilding");
            return Ok(None);
        }
        let mut index = match Index::from_checkpoint(&bytes) {
            Ok(index) if index.covered_seq == covered => index,
            Ok(_) => {
                tracing::warn!("index checkpoint disagrees with its header; rebuilding");
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!("index checkpoint unreadable ({e}); rebuilding");
                return Ok(None);
            }
        };
        let mut deltas = 0;
        for n in 1..=INDEX_CHECKPOINT_DELTAS_MAX {
            let Some((covered, bytes)) = self.load_snapshot(&index_delta_name(n))? else {
                break;
            };
            if covered > self.last_seq() {
                tracing::warn!(
                    delta = n,
                    covered,
                    "index delta is ahead of the log; scanning"
                );
                break;
            }
            let at = index.covered_seq;
            if let Err(e) = index.apply_delta(&bytes) {
                tracing::warn!(delta = n, "index delta not taken ({e}); scanning from {at}");
                break;
            }
            deltas = n;
        }
        self.index_checkpoint_seq.set(index.covered_seq);
        self.index_checkpoint_rseq.set(index.covered_rseq);
        self.index_checkpoint_deltas.set(deltas);
        Ok(Some(index))
    }

    /// Saves the in-memory index (if this process has built it), so that
    /// the next open scans only the events after it: what changed since
    /// the checkpoint stored (a delta), or, when there is none or
    /// [`INDEX_CHECKPOINT_DELTAS_MAX`] deltas are stored already, the whole
    /// index (about 20 bytes per event) as a new base with no deltas. It is
    /// written at checkpoints and shutdown, not per batch; after a crash
    /// the next open scans from the last piece stored. Returns whether it
    /// saved.
    pub fn checkpoint_index(&self) -> Result<bool, LogError> {
        let Some(index) = self.index.get() else {
            return Ok(false);
        };
        let (from_seq, from_rseq) = (
            self.index_checkpoint_seq.get(),
            self.index_checkpoint_rseq.get(),
        );
        if from_seq == index.covered_seq && from_rseq == index.covered_rseq {
            return Ok(false);
        }
        let deltas = self.index_checkpoint_deltas.get();
        let stored = if from_seq == 0 || deltas >= INDEX_CHECKPOINT_DELTAS_MAX {
            // A new base; the deltas of the old one no longer follow it.
            // Written first: a crash between the two leaves a base whose
            // old deltas do not start where it ends, which the next open
            // ignores.
            self.save_snapshot(INDEX_CHECKPOINT, index.covered_seq, &index.to_checkpoint())?;
            0
        } else {
            let n = deltas + 1;
            let bytes = index.to_checkpoint_since(from_seq, from_rseq);
            self.save_snapshot(&index_delta_name(n), index.covered_seq, &bytes)?;
            n
        };
        // Deltas after the one just written are stale (an earlier run's
        // beyond a piece the last open did not take).
        for n in stored + 1..=INDEX_CHECKPOINT_DELTAS_MAX {
            let name = index_delta_name(n);
            if self.snapshot_stored_bytes(&name)?.is_some() {
                self.delete_snapshot(&name)?;
            }
        }
        self.index_checkpoint_seq.set(index.covered_seq);
        self.index_checkpoint_rseq.set(index.covered_rseq);
        self.index_checkpoint_deltas.set(stored);
        Ok(true)
    }

    /// Where the first input with this id went according to `index`,
    /// confirming a hash hit against the stored event or rejection (so a
    /// hash collision is never a false duplicate).
    pub(super) fn seen_id(&self, index: &Index, event_id: &str) -> Result<Option<Seen>, LogError> {
        let IdProbe::Candidate(candidate) = index.probe(event_id) else {
            return Ok(None);
        };
        let stored_id = match candidate {
            Seen::Event(seq) => {
                self.event(seq)?
                    .ok_or_else(|| LogError::Corrupt(format!("id index points at missing {seq}")))?
                    .event_id
            }
            Seen::Rejection(rseq) => {
                self.rejection(rseq)?
                    .and_then(|r| r.event_id)
                    .ok_or_else(|| {
                        LogError::Corrupt(format!("id index points at missing rejection {rseq}"))
                    })?
            }
        };
        if stored_id == event_id {
            return Ok(Some(candidate));
        }
        Ok(index.collided(event_id))
    }

    pub(super) fn lead_entry(&self, lead_id: &str) -> Result<Option<&LeadEntry>, LogError> {
        Ok(self.index()?.leads.get(lead_id))
    }

    /// The lifecycle state of one lead, as validation sees it.
    pub fn lead_state(&self, lead_id: &str) -> Result<Option<Lead>, LogError> {
        Ok(self.lead_entry(lead_id)?.map(|r| r.lead.clone()))
    }

    /// Accepted events with sequence `>= from_seq`, in order.
    pub fn events_from(
        &self,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<(u64, LeadEvent), LogError>> + '_ {
        events_in(&self.tree, from_seq)
    }

    /// A read-only view of the stored events for another thread.
    pub fn reader(&self) -> LogReader {
        LogReader {
            tree: (*self.tree).clone(),
        }
    }

    /// One event by sequence.
    pub fn event(&self, seq: u64) -> Result<Option<LeadEvent>, LogError> {
        let Some((k, v)) = self
            .tree
            .range(seq_key(EVENT, 0)..=seq_key(EVENT, seq))
            .next_back()
            .transpose()?
        else {
            return Ok(None);
        };
        let first = trailing_u64(&k).ok_or_else(|| LogError::Corrupt("segment key".into()))?;
        let raw = segment::layout(&v).map_err(LogError::Corrupt)?;
        let seg = Segment::parse(&raw).map_err(LogError::Corrupt)?;
        let index = (seq - first) as usize;
        if index >= seg.len() {
            return Ok(None);
        }
        codec::decode_event(seg.get(index))
            .map(Some)
            .map_err(|e| LogError::Corrupt(format!("event {seq}: {e}")))
    }

    /// Where the first copy of an event id went, if the log holds it: an
    /// accepted event, or a rejection kept as an idempotency key (see
    /// [`StoredRejection::idempotency_key`]).
    pub fn first_copy_of(&self, event_id: &str) -> Result<Option<Seen>, LogError> {
        self.seen_id(self.index()?, event_id)
    }

    /// The sequence of a stored event id.
    pub fn seq_of(&self, event_id: &str) -> Result<Option<u64>, LogError> {
        Ok(match self.seen_id(self.index()?, event_id)? {
            Some(Seen::Event(seq)) => Some(seq),
            _ => None,
        })
    }

    /// One lead's accepted events, in log order.
    pub fn timeline(&self, lead_id: &str) -> Result<Vec<(u64, LeadEvent)>, LogError> {
        let Some(record) = self.lead_entry(lead_id)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(record.timeline.len());
        for &seq in &record.timeline {
            let event = self.event(seq)?.ok_or_else(|| {
                LogError::Corrupt(format!("timeline points at missing event {seq}"))
            })?;
            assert_eq!(event.lead_id, lead_id, "timeline names the wrong lead");
            out.push((seq, event));
        }
        Ok(out)
    }

    /// One lead's rejected events, in arrival order.
    pub fn lead_rejections(&self, lead_id: &str) -> Result<Vec<StoredRejection>, LogError> {
        let mut out = Vec::new();
        for k in self
            .tree
            .scan_prefix(lead_prefix(LEAD_REJECTED, lead_id))
            .keys()
        {
            let rseq =
                trailing_u64(&k?).ok_or_else(|| LogError::Corrupt("rejection key".into()))?;
            if let Some(r) = self.rejection(rseq)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub fn rejection(&self, rseq: u64) -> Result<Option<StoredRejection>, LogError> {
        match self.tree.get(seq_key(REJECTED, rseq))? {
            None => Ok(None),
            Some(v) => bincode::deserialize(&v)
                .map(Some)
                .map_err(|e| LogError::Corrupt(format!("rejection {rseq}: {e}"))),
        }
    }

    /// All rejected inputs, in arrival order.
    pub fn rejections(&self) -> impl Iterator<Item = Result<StoredRejection, LogError>> + '_ {
        self.tree.scan_prefix([REJECTED]).values().map(|v| {
            bincode::deserialize(&v?).map_err(|e| LogError::Corrupt(format!("rejection: {e}")))
        })
    }

    /// All stored source positions whose name starts with `prefix`.
    pub fn positions(&self, prefix: &str) -> Result<Vec<(String, u64)>, LogError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(str_key(POSITION, prefix)) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[1..]).into_owned();
            out.push((name, u64_value(&v).unwrap_or(0)));
        }
        Ok(out)
    }

    /// The stored next offset of a source, if it has one.
    pub fn position(&self, source: &str) -> Result<Option<u64>, LogError> {
        Ok(self
            .tree
            .get(str_key(POSITION, source))?
            .and_then(|v| u64_value(&v)))
    }

    pub fn stats(&self) -> Result<LogStats, LogError> {
        let mut by_reason = BTreeMap::new();
        for kv in self.tree.scan_prefix([COUNTER]) {
            let (k, v) = kv?;
            let code = String::from_utf8_lossy(&k[1..]).into_owned();
            by_reason.insert(code, u64_value(&v).unwrap_or(0));
        }
        Ok(LogStats {
            events: self.next_seq - 1,
            rejected: self.next_rseq - 1,
            rejected_by_reason: by_reason,
        })
    }

    /// The data dir this log lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A read-only view of the log's stored events, for a reader on another
/// thread (the HTTP API's replays of a past moment): sled trees are safe to
/// share, so reading through it takes no engine lock and never stalls
/// ingestion. It sees every batch made durable before each step.
#[derive(Clone)]
pub struct LogReader {
    pub(super) tree: sled::Tree,
}

impl LogReader {
    /// Accepted events with sequence `>= from_seq`, in order.
    pub fn events_from(
        &self,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<(u64, LeadEvent), LogError>> + '_ {
        events_in(&self.tree, from_seq)
    }
}

/// Accepted events of `tree` with sequence `>= from_seq`, in order.
fn events_in(
    tree: &sled::Tree,
    from_seq: u64,
) -> impl Iterator<Item = Result<(u64, LeadEvent), LogError>> + '_ {
    let from_seq = from_seq.max(1);
    // Start at the segment that contains `from_seq`.
    let start = match tree
        .range(seq_key(EVENT, 0)..=seq_key(EVENT, from_seq))
        .next_back()
    {
        Some(Ok((k, _))) => trailing_u64(&k).unwrap_or(from_seq),
        _ => from_seq,
    };
    EventsIn {
        segments: tree.range(seq_key(EVENT, start)..=seq_key(EVENT, u64::MAX)),
        expected: start,
        from_seq,
        layout: Layout::None,
        first: 0,
        next: 0,
        count: 0,
        decompressor: None,
        ended: false,
    }
}

/// A segment's layout bytes as [`EventsIn`] holds them: as stored (sled's
/// reference-counted value), or decompressed into a buffer kept from one
/// segment to the next.
enum Layout {
    None,
    Stored(sled::IVec),
    Decompressed(Vec<u8>),
}

impl Layout {
    fn bytes(&self) -> &[u8] {
        match self {
            Layout::None => &[],
            Layout::Stored(v) => v,
            Layout::Decompressed(v) => v,
        }
    }
}

/// The events of a range of segments, decoded one at a time as they are
/// asked for: no segment's events are collected first, and a compressed
/// segment is decompressed into the buffer of the one before (a replay
/// reads hundreds of thousands of events a second, and each collected or
/// freshly allocated copy showed in its profile). After an error it ends.
struct EventsIn {
    segments: sled::Iter,
    expected: u64,
    from_seq: u64,
    layout: Layout,
    /// The sequence of the segment's first event.
    first: u64,
    /// The index of the next event in the segment, and how many it holds.
    next: usize,
    count: usize,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    ended: bool,
}

impl EventsIn {
    /// Takes the next segment's layout, checked; `Ok(false)` at the end.
    fn next_segment(&mut self) -> Result<bool, LogError> {
        let Some(kv) = self.segments.next() else {
            return Ok(false);
        };
        let (k, v) = kv?;
        let first = trailing_u64(&k).ok_or_else(|| LogError::Corrupt("segment key".into()))?;
        // Invariant on read: segments follow each other without gaps.
        if first != self.expected {
            return Err(LogError::Corrupt(format!(
                "expected a segment at {}, found {first}",
                self.expected
            )));
        }
        if segment::is_compressed(&v) {
            let mut buf = match std::mem::replace(&mut self.layout, Layout::None) {
                Layout::Decompressed(buf) => buf,
                _ => Vec::new(),
            };
            let d = match &mut self.decompressor {
                Some(d) => d,
                None => self.decompressor.insert(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| LogError::Corrupt(format!("a zstd decompressor: {e}")))?,
                ),
            };
            segment::decompress_into(d, &v, &mut buf)
                .map_err(|why| LogError::Corrupt(format!("compressed segment: {why}")))?;
            self.layout = Layout::Decompressed(buf);
        } else {
            self.layout = Layout::Stored(v);
        }
        let count = Segment::parse(self.layout.bytes())
            .map_err(LogError::Corrupt)?
            .len();
        self.expected += count as u64;
        self.first = first;
        // Events of the first segment before `from_seq` are skipped.
        self.next = self.from_seq.saturating_sub(first).min(count as u64) as usize;
        self.count = count;
        Ok(true)
    }
}

impl Iterator for EventsIn {
    type Item = Result<(u64, LeadEvent), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let step = (|| {
            while self.next == self.count {
                if !self.next_segment()? {
                    return Ok(None);
                }
            }
            let i = self.next;
            self.next += 1;
            let seq = self.first + i as u64;
            // Checked when the segment was taken.
            let bytes = Segment::parse_checked(self.layout.bytes()).get(i);
            let event = codec::decode_event(bytes)
                .map_err(|e| LogError::Corrupt(format!("event {seq}: {e}")))?;
            Ok(Some((seq, event)))
        })();
        match step {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.ended = true;
                None
            }
            Err(e) => {
                self.ended = true;
                Some(Err(e))
            }
        }
    }
}
