//! The log's in-memory indexes: each lead's lifecycle state and timeline,
//! and the event-id index used for dedupe.
//!
//! An event id is an idempotency key whatever became of its first copy:
//! the id index holds the ids of accepted events *and* of rejected ones,
//! so a second copy of a rejected event is a `duplicate` too, never judged
//! again against a lead state that has moved on since.
//!
//! Why in memory and not in sled: both are functions of the stored events
//! alone, and sled's cost is per key. Writing them as keys cost two sled
//! inserts (plus an index lookup) per event, which was most of an append;
//! without them an append writes about one key per *batch*. The price is
//! memory, and the work of building them on first use (appending,
//! `inspect`, the API's lead view; not replay or export): from the last
//! checkpoint (saved with the projection snapshots and at shutdown) plus a
//! scan of the events after it, or from a scan of the whole log.
//!
//! Memory: about 20 bytes per event (id hash and sequence, plus the
//! timeline entry), about 16 per rejected input that had an id, and about
//! 150 bytes per lead (state and map entry).
//!
//! The id index keeps a 64-bit hash of each id, not the id: a hit is
//! confirmed by reading the stored event, and the rare id whose hash is
//! already taken by another id is kept whole in a side map, so dedupe stays
//! exact.

use crate::domain::lifecycle::{self, Lead};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// One lead as the log knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadEntry {
    pub lead: Lead,
    /// Sequences of the lead's accepted events, ascending.
    pub timeline: Vec<u64>,
}

/// Hashes an event id to the key of the id index: 64-bit FNV-1a, written
/// out here because checkpoints persist these hashes, so the function must
/// never change (std's `DefaultHasher` may, between Rust releases). A
/// collision costs one extra look-up, never a wrong verdict.
pub fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Id hashes ([`id_hash`]), each with a sequence (the command-id index).
pub type IdSeqs = std::collections::HashMap<u64, u64, BuildHasherDefault<PassThrough>>;

/// The id index's keys are hashes already; hashing them again is waste.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with this; fold anything else anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Names the layout of a checkpoint and the id hash it was made with.
/// Layout 2 added the ids of rejected inputs, layout 3 each lead's latest
/// event time, layout 4 each lead's tenant; an older checkpoint lacks them, so it is ignored and the
/// index rebuilt.
const CHECKPOINT_FORMAT: &str = "leadflow-log-index/5 fnv1a64";

/// One piece of the index's checkpoint: the whole index (a base, `from_*`
/// 0), or what changed after the piece before it (a delta): the leads with
/// an event after `from_seq` (whole: their state and timeline) and the ids
/// of the events after `from_seq` and of the rejections after `from_rseq`.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    format: String,
    from_seq: u64,
    from_rseq: u64,
    covered_seq: u64,
    covered_rseq: u64,
    leads: Vec<(String, Lead, Vec<u64>)>,
    ids: Vec<(u64, u64)>,
    collided: Vec<(String, u64)>,
}

/// Where the first copy of an id went: an accepted event (by sequence) or
/// a rejection (by rejection sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Event(u64),
    Rejection(u64),
}

/// The tag bit of a packed [`Seen`]: sequences stay far below 2^63, so the
/// top bit tells a rejection from an event and an entry stays 8 bytes.
const REJECTION_TAG: u64 = 1 << 63;

impl Seen {
    fn pack(self) -> u64 {
        match self {
            Seen::Event(seq) => {
                assert!(seq < REJECTION_TAG, "sequence {seq} out of range");
                seq
            }
            Seen::Rejection(rseq) => {
                assert!(
                    rseq < REJECTION_TAG,
                    "rejection sequence {rseq} out of range"
                );
                rseq | REJECTION_TAG
            }
        }
    }

    fn unpack(v: u64) -> Seen {
        if v & REJECTION_TAG == 0 {
            Seen::Event(v)
        } else {
            Seen::Rejection(v & !REJECTION_TAG)
        }
    }
}

#[derive(Default)]
pub struct Index {
    /// Looked up at every event appended (see [`super::IdMap`]).
    pub leads: super::IdMap<String, LeadEntry>,
    /// `id_hash(event_id)` → the first input with that hash (packed [`Seen`]).
    ids: HashMap<u64, u64, BuildHasherDefault<PassThrough>>,
    /// Ids whose hash an earlier, different id holds: id → packed [`Seen`].
    collided: HashMap<String, u64>,
    /// The highest sequence folded in.
    pub covered_seq: u64,
    /// The highest rejection sequence whose id was considered.
    pub covered_rseq: u64,
    /// The sequence the index was loaded at from a checkpoint (0: built
    /// from the whole log).
    pub checkpoint_seq: u64,
    /// How many entries name events and rejections (an invariant check:
    /// every stored event is indexed once).
    event_ids: u64,
    rejection_ids: u64,
}

/// Where an id lookup by hash landed.
pub enum IdProbe {
    /// No stored id has this hash, nor is this id among the collided ones.
    Absent,
    /// A stored input with this hash: confirm that its id is this one.
    Candidate(Seen),
}

impl Index {
    /// Looks an id up. `Candidate` must be confirmed by the caller (who can
    /// read the stored event or rejection); if it is not, call
    /// [`collided`](Self::collided).
    pub fn probe(&self, id: &str) -> IdProbe {
        match self.ids.get(&id_hash(id)) {
            Some(v) => IdProbe::Candidate(Seen::unpack(*v)),
            None => IdProbe::Absent,
        }
    }

    /// Where an id whose hash belongs to another id went.
    pub fn collided(&self, id: &str) -> Option<Seen> {
        self.collided.get(id).copied().map(Seen::unpack)
    }

    /// Records the id of a stored rejection whose id is not held yet. The
    /// caller has checked that.
    pub fn insert_rejected(&mut self, event_id: &str, rseq: u64) {
        self.covered_rseq = self.covered_rseq.max(rseq);
        self.insert_id(event_id, Seen::Rejection(rseq));
        self.rejection_ids += 1;
    }

    /// Notes that rejections up to `rseq` have been considered (those
    /// without an id, or duplicates, are not indexed).
    pub fn cover_rejections(&mut self, rseq: u64) {
        self.covered_rseq = self.covered_rseq.max(rseq);
    }

    fn insert_id(&mut self, event_id: &str, seen: Seen) {
        match self.ids.entry(id_hash(event_id)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(seen.pack());
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                let previous = self.collided.insert(event_id.to_string(), seen.pack());
                assert!(previous.is_none(), "event id {event_id} indexed twice");
            }
        }
    }

    /// Sets a lead's state (creating its entry with an empty timeline).
    pub fn set_lead(&mut self, lead_id: &str, lead: Lead) {
        match self.leads.get_mut(lead_id) {
            Some(entry) => entry.lead = lead,
            None => {
                self.leads.insert(
                    lead_id.to_string(),
                    LeadEntry {
                        lead,
                        timeline: Vec::new(),
                    },
                );
            }
        }
    }

    /// Records a newly stored event of a lead whose state is set. The
    /// caller has checked that the id is not stored yet.
    pub fn insert(&mut self, event_id: &str, lead_id: &str, seq: u64) {
        assert!(seq > self.covered_seq, "events are indexed in log order");
        self.covered_seq = seq;
        self.insert_id(event_id, Seen::Event(seq));
        self.event_ids += 1;
        self.leads
            .get_mut(lead_id)
            .expect("a lead's state is set before its events are indexed")
            .timeline
            .push(seq);
    }

    /// Folds one stored event in, for [`build`](Self::build): events in the
    /// log are facts, so they are applied without being judged again (a
    /// later build with stricter rules must still open an older log).
    /// A stored event for a lead with no stored creation is corruption, not
    /// a fact, and is refused.
    pub fn fold(&mut self, seq: u64, event: &crate::domain::LeadEvent) -> Result<(), String> {
        let state = self.leads.get(&event.lead_id).map(|e| e.lead.clone());
        if state.is_none() && !matches!(event.body, crate::domain::EventBody::Created(_)) {
            return Err(format!(
                "stored event {seq} ({}) is for lead {} that was never created",
                event.body.kind().as_str(),
                event.lead_id
            ));
        }
        self.set_lead(&event.lead_id, lifecycle::apply(state, event));
        self.insert(&event.event_id, &event.lead_id, seq);
        Ok(())
    }

    /// The whole index as bytes, a checkpoint's base (see
    /// [`from_checkpoint`]).
    ///
    /// [`from_checkpoint`]: Self::from_checkpoint
    pub fn to_checkpoint(&self) -> Vec<u8> {
        self.to_checkpoint_since(0, 0)
    }

    /// What changed after the index covered `from_seq` and `from_rseq`, as
    /// bytes: a checkpoint's delta (see [`apply_delta`]). Its size is the
    /// change's, not the index's: the leads with an event after `from_seq`
    /// and the ids stored after it. Finding them passes over the index in
    /// memory, which costs far less than writing it whole.
    ///
    /// [`apply_delta`]: Self::apply_delta
    pub fn to_checkpoint_since(&self, from_seq: u64, from_rseq: u64) -> Vec<u8> {
        let newer = |packed: u64| match Seen::unpack(packed) {
            Seen::Event(seq) => seq > from_seq,
            Seen::Rejection(rseq) => rseq > from_rseq,
        };
        let c = Checkpoint {
            format: CHECKPOINT_FORMAT.to_string(),
            from_seq,
            from_rseq,
            covered_seq: self.covered_seq,
            covered_rseq: self.covered_rseq,
            leads: self
                .leads
                .iter()
                .filter(|(_, e)| e.timeline.last().is_some_and(|seq| *seq > from_seq))
                .map(|(id, e)| (id.clone(), e.lead.clone(), e.timeline.clone()))
                .collect(),
            ids: self
                .ids
                .iter()
                .filter(|(_, s)| newer(**s))
                .map(|(h, s)| (*h, *s))
                .collect(),
            collided: self
                .collided
                .iter()
                .filter(|(_, s)| newer(**s))
                .map(|(id, s)| (id.clone(), *s))
                .collect(),
        };
        bincode::serialize(&c).expect("an index serialises")
    }

    /// An index from a checkpoint's base written by [`to_checkpoint`];
    /// `Err` when the bytes are of another format or a delta (the caller
    /// rebuilds from the log).
    ///
    /// [`to_checkpoint`]: Self::to_checkpoint
    pub fn from_checkpoint(bytes: &[u8]) -> Result<Index, String> {
        let c = decode_checkpoint(bytes)?;
        if (c.from_seq, c.from_rseq) != (0, 0) {
            return Err(format!(
                "a delta from {}/{} where a base was expected",
                c.from_seq, c.from_rseq
            ));
        }
        let mut index = Index::default();
        index.take(c);
        Ok(index)
    }

    /// Brings the index forward by a checkpoint's delta written by
    /// [`to_checkpoint_since`] where the index stands now; `Err` (the index
    /// unchanged) when the bytes are of another format or the delta starts
    /// elsewhere (a piece was lost or is stale: the caller scans the log
    /// from where the index stands).
    ///
    /// [`to_checkpoint_since`]: Self::to_checkpoint_since
    pub fn apply_delta(&mut self, bytes: &[u8]) -> Result<(), String> {
        let c = decode_checkpoint(bytes)?;
        if (c.from_seq, c.from_rseq) != (self.covered_seq, self.covered_rseq) {
            return Err(format!(
                "a delta from {}/{} for an index at {}/{}",
                c.from_seq, c.from_rseq, self.covered_seq, self.covered_rseq
            ));
        }
        if c.covered_seq < c.from_seq || c.covered_rseq < c.from_rseq {
            return Err("a delta that ends before it starts".into());
        }
        self.take(c);
        Ok(())
    }

    /// Takes a checkpoint piece's entries in (checked by the caller to
    /// start where the index stands).
    fn take(&mut self, c: Checkpoint) {
        self.covered_seq = c.covered_seq;
        self.covered_rseq = c.covered_rseq;
        self.checkpoint_seq = c.covered_seq;
        let packed = c.ids.iter().map(|(_, v)| *v);
        for v in packed.chain(c.collided.iter().map(|(_, v)| *v)) {
            match Seen::unpack(v) {
                Seen::Event(_) => self.event_ids += 1,
                Seen::Rejection(_) => self.rejection_ids += 1,
            }
        }
        self.ids.reserve(c.ids.len());
        self.ids.extend(c.ids);
        self.collided.extend(c.collided);
        self.leads.reserve(c.leads.len());
        for (id, lead, timeline) in c.leads {
            self.leads.insert(id, LeadEntry { lead, timeline });
        }
    }

    /// Test hook: claims `id`'s hash for `seq`, as a colliding id would.
    #[cfg(test)]
    pub fn claim_hash(&mut self, id: &str, seq: u64) {
        self.ids.insert(id_hash(id), Seen::Event(seq).pack());
    }

    /// Indexed ids of accepted events.
    pub fn events(&self) -> u64 {
        self.event_ids
    }

    /// Indexed ids of rejected inputs.
    pub fn rejections(&self) -> u64 {
        self.rejection_ids
    }
}

/// A checkpoint piece's bytes decoded and its format checked.
fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint, String> {
    let c: Checkpoint = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
    if c.format != CHECKPOINT_FORMAT {
        return Err(format!("checkpoint format {:?}", c.format));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::LeadStatus;

    fn lead() -> Lead {
        Lead {
            status: LeadStatus::InPool,
            pool: "p".into(),
            owner: None,
            created_at_ms: 1,
            tenant_id: String::new(),
            latest_at_ms: 1,
            generation: 0,
            recall_count: 0,
        }
    }

    #[test]
    fn a_second_id_with_a_taken_hash_goes_to_the_side_map() {
        let mut index = Index::default();
        index.set_lead("a", lead());
        index.insert("e1", "a", 1);
        // Force a collision: put e2's hash under e1's sequence by hand.
        index.claim_hash("e2", 1);
        index.insert("e2", "a", 2);
        assert!(matches!(
            index.probe("e2"),
            IdProbe::Candidate(Seen::Event(1))
        ));
        assert_eq!(index.collided("e2"), Some(Seen::Event(2)));
        assert_eq!(index.collided("e1"), None);
        assert_eq!(index.leads["a"].timeline, vec![1, 2]);
        assert_eq!(index.events(), 2);
        // A rejected id is told apart from an event by its tag.
        index.insert_rejected("r1", 7);
        assert!(matches!(
            index.probe("r1"),
            IdProbe::Candidate(Seen::Rejection(7))
        ));
        let back = Index::from_checkpoint(&index.to_checkpoint()).unwrap();
        // Counted from the entries: the forced one counts as an event too.
        assert_eq!((back.events(), back.rejections()), (3, 1));
        assert_eq!(back.covered_rseq, 7);
        assert_eq!(back.collided("e2"), Some(Seen::Event(2)));
    }

    #[test]
    fn folding_an_event_of_a_lead_never_created_is_refused() {
        use crate::domain::{EventBody, LeadEvent, LeadScored};
        let mut index = Index::default();
        let scored = LeadEvent {
            event_id: "e1".into(),
            lead_id: "ghost".into(),
            occurred_at_ms: 1,
            producer: "t".into(),
            tenant_id: String::new(),
            body: EventBody::Scored(LeadScored {
                score: 10,
                attribute_score: 0,
                behaviour_score: 0,
                predictive_score: 0,
                model_version: "m".into(),
            }),
        };
        let err = index.fold(1, &scored).unwrap_err();
        assert!(err.contains("never created"), "{err}");
        assert!(index.leads.is_empty() && index.events() == 0);
    }
}
