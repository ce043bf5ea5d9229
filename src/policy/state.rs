//! The policy's state: its fold of the log (what `Processor::handle`,
//! `advance` and `apply_input` keep), saved whole in the policy snapshots
//! (`policy.v13`). Kept apart from the decisions that change it.

use super::claim::ClaimCounts;
use super::leads::{LeadId, LeadsView, Name, Names};
use super::manager::RepOverride;
use super::{calendar, PolicyFile};
use crate::projector::IdMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// An assignment commanded and not yet carried out: it holds a slot of
/// the rep's capacity until the CRM carries it out, declines it, or it
/// expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub rep: String,
    pub command_id: String,
    /// The event the assignment was decided on.
    pub cause_event_id: String,
    pub commanded_at_ms: i64,
    /// When it expires (the rules' `assign_command_ttl_ms`), if ever.
    pub expires_at_ms: Option<i64>,
}

/// A lead waiting in a pool's backlog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub pool: String,
    pub since_ms: i64,
    /// The event that made it wait; the cause of its eventual assignment
    /// when a wake-up (a new day, a cooldown's end) places it.
    pub cause_event_id: String,
}

/// The deadline rules an assignment was made under. Kept with the watch,
/// so that loading a new policy never silently moves running deadlines: it
/// applies to assignments made after it is loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub version: u32,
    pub first_follow_up_sla_ms: Option<i64>,
    pub stale_after_ms: Option<i64>,
    pub max_holding_ms: Option<i64>,
    pub reminder_lead_ms: Option<i64>,
    /// The business calendar of the pool, as it was when the assignment
    /// was made: a version that edits the calendar moves no running
    /// deadline either.
    pub calendar: Option<calendar::CalendarRef>,
    /// Where these rules come from: `tenant`, `pool P` or `pool P when
    /// <condition>` (see [`PolicyFile::lead_rules`]).
    pub scope: String,
}

/// The deadline rules whose reminder has been sent in a watch's
/// generation: a bit per rule (there are three), where each watch held a
/// set of rule names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminded(u8);

impl Reminded {
    /// The rules with a reminder, in bit order.
    const RULES: [&'static str; 3] = [
        super::RULE_FIRST_FOLLOW_UP,
        super::RULE_STALE,
        super::RULE_MAX_HOLDING,
    ];

    fn bit(rule: &str) -> Option<u8> {
        let i = Self::RULES.iter().position(|r| *r == rule)?;
        Some(1 << i)
    }

    pub fn contains(&self, rule: &str) -> bool {
        Self::bit(rule).is_some_and(|b| self.0 & b != 0)
    }

    pub fn insert(&mut self, rule: &str) {
        // Only a deadline rule has a reminder (`Deadline::rule`).
        debug_assert!(Self::bit(rule).is_some(), "a reminder of rule {rule}");
        self.0 |= Self::bit(rule).unwrap_or(0);
    }

    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// One open assignment being watched for deadlines. Kept in its lead's
/// record (`PolicyLead::watch`): the lead's owner is the assignment's, and
/// one map, not two, holds a lead and its watch.
///
/// Its two optional moments are each a value and a flag rather than an
/// `Option<i64>` (16 bytes with its padding): the watch fits 64 bytes,
/// an allocator class below the 80 it took (README, Performance). Read
/// and set them through their methods; an absent one's value is 0, so
/// equal watches compare and serialise equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// The pool it was assigned from (whose calendar, if any, counts).
    pub pool: Name,
    /// Shared by the assignments made under the same rules (see
    /// [`interned`]): one copy per rule set, not one per
    /// assignment. Stored as the `Limits` themselves.
    pub limits: Arc<Limits>,
    /// The event that set the current deadlines (assignment or follow-up).
    /// A boxed `str`, not a `String`: it never grows in place.
    pub cause_event_id: Box<str>,
    pub assigned_at_ms: i64,
    follow_up_ms: i64,
    followed_up: bool,
    due_at_ms: i64,
    due: bool,
    pub generation: u32,
    /// Rules whose reminder has been sent in this generation.
    pub reminded: Reminded,
    /// The recall has been commanded; nothing more fires for this
    /// generation.
    pub recalled: bool,
}

impl Watch {
    /// A watch of an assignment made at `assigned_at_ms` by the event
    /// `cause_event_id`, not followed up yet and not in the due index.
    pub fn new(
        pool: Name,
        limits: Arc<Limits>,
        generation: u32,
        assigned_at_ms: i64,
        cause_event_id: &str,
    ) -> Watch {
        Watch {
            pool,
            limits,
            cause_event_id: cause_event_id.into(),
            assigned_at_ms,
            follow_up_ms: 0,
            followed_up: false,
            due_at_ms: 0,
            due: false,
            generation,
            reminded: Reminded::default(),
            recalled: false,
        }
    }

    /// When the holder last followed the lead up in this generation.
    pub fn last_follow_up_ms(&self) -> Option<i64> {
        self.followed_up.then_some(self.follow_up_ms)
    }

    pub fn set_last_follow_up_ms(&mut self, at_ms: i64) {
        self.follow_up_ms = at_ms;
        self.followed_up = true;
    }

    /// The key of this watch in the due index, if any.
    pub fn due_ms(&self) -> Option<i64> {
        self.due.then_some(self.due_at_ms)
    }

    pub fn set_due_ms(&mut self, due_ms: Option<i64>) {
        self.due_at_ms = due_ms.unwrap_or(0);
        self.due = due_ms.is_some();
    }
}

/// The policy's fold of the log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyState {
    /// Every event with a sequence `<= covered_seq` has been handled.
    pub covered_seq: u64,
    /// Deadlines have been fired up to this time.
    pub now_ms: i64,
    /// What the policy knows of each lead (its own lean view, see
    /// [`LeadsView`]).
    pub pool: LeadsView,
    /// Per pool: index of the member to try first next time.
    pub round_robin: BTreeMap<String, usize>,
    /// Assignments commanded and not yet carried out, by lead.
    pub pending: IdMap<String, Pending>,
    pub pending_by_rep: IdMap<String, u32>,
    /// (expires, lead) of every pending assignment with a time to live.
    pub expiries: BTreeSet<(i64, String)>,
    /// Per lead: assignments decided again in its current generation after
    /// one expired or was declined (each gets its own command id).
    pub assign_attempts: IdMap<String, u32>,
    /// Per lead: the rep who declined it or let it expire, skipped when it
    /// is decided again (until it is assigned).
    pub passed_over_by: IdMap<String, String>,
    /// Assignments declined by the CRM, per rep.
    pub declined_by_rep: BTreeMap<String, u64>,
    /// Assignments that expired, per rep.
    pub expired_by_rep: BTreeMap<String, u64>,
    /// Declines that matched no pending assignment (of a recall or a
    /// reminder, or of an assignment already carried out or expired).
    pub declines_unmatched: u64,
    /// Per pool: leads waiting for a member with room, by (since, lead).
    pub backlog: BTreeMap<String, BTreeSet<(i64, String)>>,
    /// Lead -> its backlog entry.
    pub backlog_index: IdMap<String, Waiting>,
    /// Moments at which a waiting lead may become placeable without any
    /// event: the next UTC day (daily caps) and cooldown ends.
    pub wakeups: BTreeSet<i64>,
    /// The rep each waiting lead was last recalled from.
    pub recalled_from: IdMap<String, String>,
    /// Per lead: reps that may not get it back before the time given.
    pub cooldowns: IdMap<String, Vec<(String, i64)>>,
    /// Assignments commanded per (rep, UTC day).
    pub assigned_per_day: HashMap<(String, i64), u32>,
    /// Assignments commanded per (rep, pool, UTC day), for the pools with
    /// a daily cap of their own.
    pub assigned_per_pool_day: HashMap<(String, String, i64), u32>,
    /// Conversions per rep (for `converted_count_toward_capacity` and the
    /// `score_priority` ranking).
    pub converted_by_rep: IdMap<String, u32>,
    /// Assignments received per rep (carried out), for the ranking.
    pub received_by_rep: IdMap<String, u32>,
    /// The policy in force when the state was saved; a newly loaded version
    /// with a later `effective_from_ms` waits behind it.
    pub in_force: Option<PolicyFile>,
    /// The loaded version waiting for its `effective_from_ms`.
    pub next: Option<PolicyFile>,
    /// The key of the last policy input (see [`PolicyInput`]) applied.
    pub covered_input: Option<(u64, u32)>,
    /// Claims granted and declined per (rep, pool).
    pub claims: BTreeMap<(String, String), ClaimCounts>,
    /// Reps' capacity and active flag as managers changed them, over the
    /// policy file's.
    pub rep_overrides: BTreeMap<String, RepOverride>,
    /// Contact fingerprint -> the open lead that first had it.
    pub fingerprints: IdMap<String, String>,
    /// Every open lead's score and the model learned (`[scoring]`).
    pub scorer: super::scoring::fold::Scorer,
    /// Per lead, the latest score announced whose `scored` event is not in
    /// the log yet: (the id it gets, the card). At most one per lead.
    pub scores_pending: BTreeMap<String, (String, super::scoring::fold::ScoreCard)>,
    /// Open lead -> its fingerprint (the leads in `fingerprints`).
    pub fingerprint_of: IdMap<String, String>,
    /// Waiting leads a manager is moving (a `MoveLead` commanded, the
    /// CRM's `moved` not seen yet) and their new pool: not allocated
    /// meanwhile.
    pub moving: IdMap<String, String>,
    /// Claims granted per (rep, pool, UTC day), for `claims_per_day_max`.
    pub claims_per_day: HashMap<(String, String, i64), u32>,
    /// Per open lead: who lost it when (recalled, released, moved to
    /// someone else), the latest few, for `reclaim_after_ms`.
    pub losses: IdMap<String, Vec<(String, i64)>>,
    /// (due, lead) of every watch (see [`Watch`], kept in its lead's
    /// record in `pool`) with something left to fire.
    pub due: BTreeSet<(i64, LeadId)>,
}

/// At most this many distinct deadline rules are shared (versions × pools
/// × `when` clauses in use); beyond it the table starts over, and watches
/// keep the copies they hold.
const LIMITS_INTERNED_MAX: usize = 256;

/// The shared copy of `limits` in `table`: assignments made under the same
/// rules hold one `Limits` (its scope and calendar spec included) between
/// them, where each held its own (200 bytes of a 344-byte watch).
pub(super) fn interned(table: &mut Vec<Arc<Limits>>, limits: &Limits) -> Arc<Limits> {
    if let Some(shared) = table.iter().find(|l| l.as_ref() == limits) {
        return shared.clone();
    }
    if table.len() >= LIMITS_INTERNED_MAX {
        table.clear();
    }
    let shared = Arc::new(limits.clone());
    table.push(shared.clone());
    shared
}

impl PolicyState {
    /// A state read back from its snapshot holds a copy of the rules per
    /// watch, of each name per use and of each lead's id per map: shared
    /// again (once, when a processor resumes from it).
    pub(super) fn share_again(&mut self, names: &mut Names, limits: &mut Vec<Arc<Limits>>) {
        self.pool.share_names(names);
        for w in self
            .pool
            .leads
            .values_mut()
            .filter_map(|l| l.watch.as_mut())
        {
            w.limits = interned(limits, &w.limits);
        }
        // The due index shares the view's ids.
        let due = std::mem::take(&mut self.due);
        self.due = due
            .into_iter()
            .map(|(at, id)| (at, self.pool.id_of(&id)))
            .collect();
    }

    /// The open assignment of `lead` being watched, if any.
    pub fn watch(&self, lead: &str) -> Option<&Watch> {
        self.pool.leads.get(lead)?.watch.as_deref()
    }

    /// Every watched assignment, in the view's (arbitrary) order.
    pub fn watches(&self) -> impl Iterator<Item = (&LeadId, &Watch)> {
        self.pool
            .leads
            .iter()
            .filter_map(|(id, l)| Some((id, l.watch.as_deref()?)))
    }
}
