//! The policy processor: pure decisions about where leads go next and when
//! they must come back.
//!
//! [`Processor::handle`] folds one accepted event into the policy's own view
//! of the pools and returns the commands it causes; [`Processor::advance`]
//! fires the deadlines that are due by a given time. Neither does I/O or
//! reads a clock: the caller passes time in. In a replay or backtest,
//! `handle` advances to each event's time first, so deadlines fire on event
//! time; in `leadflow run` the engine also calls `advance` with the wall
//! clock, so deadlines fire even when no events arrive. A command's id is a
//! function of (lead, assignment generation, rule, command type) and its
//! time is the deadline (or the causing event's time), so whichever clock
//! fires it, the command is the same, and at most one exists per (lead,
//! generation, rule, type).
//!
//! **Allocation.** A lead that comes to wait in an `auto_assign` pool
//! (created into it, or recalled into it) goes to an eligible member by the
//! pool's strategy (round-robin or least-loaded). Eligible: active, below
//! capacity (open holdings plus assignments commanded but not carried out,
//! plus conversions if `converted_count_toward_capacity`), below the daily
//! assignment cap, not the rep it was just recalled from, not in cooldown
//! for it. A lead nobody can take joins the pool's backlog and goes out,
//! first come first served, as soon as someone can take it: capacity freed
//! by an event, a new UTC day under a daily cap, or a cooldown's end (the
//! last two are wake-ups on the policy's clock, so no event is needed). A
//! new lead never goes ahead of one already waiting in its pool; a waiting
//! lead nobody can take right now (everyone with room is cooling down for
//! it) does not hold up the ones behind it.
//!
//! **Deadlines**, per assignment: no first follow-up within
//! `first_follow_up_sla_ms` (rule `first-follow-up-sla`), no follow-up for
//! `stale_after_ms` since the last one (rule `stale`, moved by every
//! follow-up), not converted within `max_holding_ms` (rule `max-holding`).
//! The earliest one recalls the lead; `reminder_lead_ms` before it the owner
//! is reminded once. A follow-up or a conversion that satisfies a deadline
//! moves or cancels it. The recall that reaches `max_recalls` sends the lead
//! to `cold_pool`.
//!
//! A pool with a business calendar counts these durations in working time
//! (see [`calendar`]), the reminder lead too: "1 h before" a Monday 10:00
//! deadline in a pool open from 09:00 is 09:00, "2 h before" is Friday's
//! last working hour. At most one reminder per rule per assignment, and it
//! is sent even when time jumped over both it and its deadline (then just
//! before the recall): which commands exist never depends on how the clock
//! was sliced.
//!
//! **Determinism.** The commands are a function of the log: the events,
//! plus the policy's other inputs recorded in it in order with them
//! ([`PolicyInput`]: each policy version loaded, each wall-clock tick that
//! moved the policy's time). Replays, backtests and restarts apply them
//! where they applied live.
//! Each assignment keeps the rules, its pool's calendar and the policy
//! version it was made under, so loading a new policy never silently moves
//! running deadlines.
//!
//! The state is durable by derivation: a fold of the log, checkpointed like
//! the projections (see `replay::load_policy`).

mod allocate;
mod by_tenant;
pub mod calendar;
mod claim;
pub use claim::{ClaimCounts, DECLINE_REASONS, RULE_CLAIM};
mod manager;
pub use manager::{ManagerAction, RepOverride, RULE_MANAGER};
mod deadlines;
pub use deadlines::DueLead;
mod duplicates;
pub use duplicates::RULE_DUPLICATE_LINK;
pub mod duration;
mod explain;
mod leads;
pub use leads::{LeadId, LeadsView, Name, Names, PolicyLead};

pub use explain::{human_ms, FACT_TO_COLD_POOL};
pub mod file;
mod scores;
pub mod scoring;
mod settle;
mod state;
pub mod thin;
use state::interned;
pub use state::{Limits, Pending, PolicyState, Reminded, Waiting, Watch};
pub mod tenants;
pub use tenants::{Policies, PoliciesState, SHADOW_SNAPSHOT_NAME, SNAPSHOT_NAME};

use crate::domain::command::{command_id, command_id_attempt};
use crate::domain::time::DayClock;
use crate::domain::{CommandBody, EventBody, LeadCommand, LeadEvent, LeadStatus, RecallReason};
pub use file::{
    ClaimRules, DuplicateHandling, Duplicates, LeadFacts, Member, PolicyError, PolicyFile,
    PoolKind, PoolPolicy, RuleOverrides, Rules, Strategy, TenantPolicy, When,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Rule ids, as recorded in commands.
pub const RULE_AUTO_ASSIGN: &str = "auto-assign";
pub const RULE_FIRST_FOLLOW_UP: &str = "first-follow-up-sla";
pub const RULE_STALE: &str = "stale";
pub const RULE_MAX_HOLDING: &str = "max-holding";
pub const RULE_ASSIGN_TTL: &str = "assign-command-ttl";
/// The rule of `UpdateScore` commands (the policy's `[scoring]`).
pub const RULE_SCORING: &str = "scoring";

/// Most waiting leads one drain of a pool's backlog tries to place;
/// bounds the work per event. Leads beyond it wait for the next event or
/// wake-up (a full backlog is drained over several).
const BACKLOG_ATTEMPTS_PER_DRAIN_MAX: usize = 64;
const DAY_MS: i64 = 86_400_000;

/// The producer of the `scored` events the engine publishes.
pub const SCORE_PRODUCER: &str = "leadflow";

/// What the policy is told besides the events: kept in the log, in order
/// with the events (see `log::EventLog::append_policy_input`), so that any
/// replay applies them exactly where they applied live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicyInput {
    /// A policy version was loaded (at start-up or by a reload). It takes
    /// effect at once, or at its `effective_from_ms` when that is later
    /// than the policy's time.
    Version {
        /// Boxed: a file with tenant tables is large, a tick is not.
        policy: Box<PolicyFile>,
        /// Wall-clock time of the load, for people; decisions never read it.
        loaded_at_ms: i64,
    },
    /// The wall clock advanced the policy's time while no events came
    /// (`leadflow run`, caught up): deadlines due by then fired.
    Tick { at_ms: i64 },
    /// A manager acted (`POST /api/v1/admin/...`): see [`manager`].
    Manager {
        /// The tenant whose lead or rep it is.
        tenant_id: String,
        action: ManagerAction,
        /// Who, for the explanation and the audit trail.
        actor: String,
        /// Wall-clock time of the request, for people; decisions never
        /// read it (they happen at the policy's time).
        requested_at_ms: i64,
    },
}

/// What a watch has due next.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Deadline {
    rule: &'static str,
    reason: RecallReason,
    at_ms: i64,
    /// What the rule measures, for the explanation.
    what: &'static str,
    limit_ms: i64,
}

pub struct Processor {
    /// The policy in force.
    policy: PolicyFile,
    state: PolicyState,
    /// Parsed calendars, by their fingerprint (those of running
    /// assignments may come from earlier versions); filled as they are
    /// first needed.
    calendars: std::cell::RefCell<CalendarCache>,
    /// The days of the policy's `time_zone`, made when first needed and
    /// again when a version names another zone.
    days: std::cell::RefCell<Option<(String, DayClock)>>,
    /// The distinct deadline rules of open assignments, shared by their
    /// watches (see `state::interned`).
    limits: Vec<std::sync::Arc<Limits>>,
    /// The names (reps, pools, channels, …) its state holds, shared (see
    /// [`Names`]).
    names: Names,
}

/// Parsed calendars by fingerprint, with the spec each was parsed from
/// (fingerprints can collide). Shared, not cloned per deadline: a calendar
/// holds its holidays.
type CalendarCache = HashMap<u64, (calendar::CalendarSpec, std::sync::Arc<calendar::Calendar>)>;

/// At most this many parsed calendars are cached (specs of every version
/// an open assignment was made under); beyond it the cache starts over.
const CALENDARS_CACHED_MAX: usize = 1_024;

impl Processor {
    pub fn new(policy: PolicyFile) -> Processor {
        Processor::with_state(policy, PolicyState::default())
    }

    /// A processor resuming from `state` with `policy` loaded (see
    /// [`load`](Self::load)): the version in force in `state`, if any,
    /// stays until `policy` takes effect.
    pub fn with_state(policy: PolicyFile, state: PolicyState) -> Processor {
        let mut p = Processor::resume(policy.clone(), state);
        p.load(policy);
        p
    }

    /// A processor resuming from `state` as it was saved: its version in
    /// force (or `policy` when it has none yet) and any version waiting.
    pub fn resume(policy: PolicyFile, mut state: PolicyState) -> Processor {
        let in_force = state.in_force.take().unwrap_or(policy);
        state.in_force = Some(in_force.clone());
        let mut p = Processor {
            calendars: Default::default(),
            days: Default::default(),
            limits: Vec::new(),
            names: Names::default(),
            policy: in_force,
            state,
        };
        p.state.share_again(&mut p.names, &mut p.limits);
        p
    }

    /// The day (of the policy's `time_zone`) that holds `at_ms`: the
    /// days the daily caps and the claims per day count.
    fn day_of(&self, at_ms: i64) -> i64 {
        self.with_days(|d| d.day_of(at_ms))
    }

    /// When the day after the one holding `at_ms` starts: when a daily
    /// cap lets its rep have leads again.
    fn next_day_ms(&self, at_ms: i64) -> i64 {
        self.with_days(|d| d.start_ms(d.day_of(at_ms) + 1))
    }

    fn with_days<T>(&self, f: impl FnOnce(&DayClock) -> T) -> T {
        let mut days = self.days.borrow_mut();
        if days
            .as_ref()
            .is_none_or(|(zone, _)| *zone != self.policy.time_zone)
        {
            // Validated with the file; an unknown zone counts UTC days.
            let clock = DayClock::new(&self.policy.time_zone).unwrap_or_else(|_| DayClock::utc());
            *days = Some((self.policy.time_zone.clone(), clock));
        }
        f(&days.as_ref().expect("made above").1)
    }

    /// The latest version loaded: the one waiting for its start, or the
    /// one in force.
    pub fn latest_loaded(&self) -> &PolicyFile {
        self.state.next.as_ref().unwrap_or(&self.policy)
    }

    /// Loads a policy version. It takes effect at once, unless its
    /// `effective_from_ms` is later than the policy's time: then the
    /// version in force stays until time reaches it (a later load replaces
    /// a waiting one; loading the version in force cancels it). Running
    /// assignments keep the rules they were made under either way.
    /// Returns whether anything changed.
    pub fn load(&mut self, policy: PolicyFile) -> bool {
        if *self.latest_loaded() == policy {
            return false;
        }
        if policy == self.policy {
            self.state.next = None;
            return true;
        }
        let waits = policy
            .effective_from_ms
            .is_some_and(|from| from > self.state.now_ms);
        if waits {
            self.state.next = Some(policy);
        } else {
            self.state.next = None;
            self.put_in_force(policy);
        }
        true
    }

    /// Applies one recorded policy input (at log key `key`); returns the
    /// commands a tick fires.
    pub fn apply_input(&mut self, key: (u64, u32), input: &PolicyInput) -> Vec<LeadCommand> {
        self.state.covered_input = Some(key);
        match input {
            PolicyInput::Version { policy, .. } => {
                self.load(PolicyFile::clone(policy));
                Vec::new()
            }
            PolicyInput::Tick { at_ms } => self.advance(*at_ms),
            PolicyInput::Manager { action, actor, .. } => self.manage(key, action, actor),
        }
    }

    fn put_in_force(&mut self, policy: PolicyFile) {
        if policy.version != self.policy.version {
            tracing::info!(
                from = self.policy.version,
                to = policy.version,
                "policy version takes effect"
            );
        }
        self.state.in_force = Some(policy.clone());
        self.policy = policy;
    }

    /// Switches to the waiting version once time reaches its start.
    fn switch_if_due(&mut self, now_ms: i64) {
        let due = self
            .state
            .next
            .as_ref()
            .is_some_and(|n| n.effective_from_ms.is_none_or(|f| now_ms >= f));
        if due {
            let next = self.state.next.take().expect("checked");
            self.put_in_force(next);
        }
    }

    pub fn state(&self) -> &PolicyState {
        &self.state
    }

    /// What the policy knows of a lead for its pool's `when` clauses.
    pub(crate) fn lead_facts(&self, lead_id: &str) -> LeadFacts<'_> {
        let view = self.state.pool.leads.get(lead_id);
        LeadFacts {
            channel: view.map_or("", |l| &l.channel),
            region: view.map_or("", |l| &l.region),
            industry: view.map_or("", |l| &l.industry),
            score: view.and_then(|l| l.score()),
        }
    }

    pub fn policy(&self) -> &PolicyFile {
        &self.policy
    }

    /// Folds the accepted event with sequence `seq` and returns the commands
    /// it causes: first the deadlines due by the event's time, then the
    /// decisions the event itself prompts. Sequences must arrive in order.
    pub fn handle(&mut self, seq: u64, event: &LeadEvent) -> Vec<LeadCommand> {
        assert!(
            seq > self.state.covered_seq,
            "event {seq} handled again (policy covers {})",
            self.state.covered_seq
        );
        self.state.covered_seq = seq;
        let mut out = self.advance(event.occurred_at_ms);
        // Whoever held the lead before this event (for capacity freed).
        let holder = self
            .state
            .pool
            .leads
            .get(event.lead_id.as_str())
            .and_then(|l| l.owner.clone());
        self.state.pool.apply(event, &mut self.names);
        let lead_id = &event.lead_id;
        let at = event.occurred_at_ms;
        match &event.body {
            EventBody::Created(c) => {
                let original = self.note_fingerprint(lead_id, &c.contact_fingerprint);
                let linked = original.is_some_and(|o| {
                    self.link_duplicate(lead_id, &o, &event.event_id, at, &mut out)
                });
                if !linked {
                    self.offer(lead_id, &event.event_id, at, &mut out);
                }
            }
            EventBody::Recalled(r) => {
                self.clear_pending(lead_id);
                // The cooldown is the rule of the pool the lead was held
                // from (without a watch: the pool it returns to).
                let held_from = match self.unwatch(lead_id) {
                    Some(w) => w.pool,
                    None => self
                        .state
                        .pool
                        .leads
                        .get(lead_id.as_str())
                        .map(|l| l.pool.clone())
                        .unwrap_or_default(),
                };
                let (rules, _) = self
                    .policy
                    .lead_rules(&held_from, &self.lead_facts(lead_id));
                if let Some(c) = rules.cooldown_ms {
                    self.state
                        .cooldowns
                        .entry(lead_id.clone())
                        .or_default()
                        .push((r.previous_owner_id.clone(), at.saturating_add(c)));
                }
                self.state
                    .recalled_from
                    .insert(lead_id.clone(), r.previous_owner_id.clone());
                self.record_loss(lead_id, &r.previous_owner_id, at);
                self.offer(lead_id, &event.event_id, at, &mut out);
                self.drain_for(&r.previous_owner_id, &event.event_id, at, &mut out);
            }
            EventBody::Assigned(a) => {
                self.state.moving.remove(lead_id);
                *self
                    .state
                    .received_by_rep
                    .entry(a.owner_id.clone())
                    .or_default() += 1;
                self.clear_pending(lead_id);
                self.leave_backlog(lead_id);
                self.state.recalled_from.remove(lead_id);
                self.state.assign_attempts.remove(lead_id);
                self.state.passed_over_by.remove(lead_id);
                let view = self.state.pool.leads.get(lead_id.as_str());
                let generation = view.map_or(0, |l| l.generation);
                let pool = view.map_or_else(|| self.names.share(""), |l| l.pool.clone());
                let (r, scope) = self.policy.lead_rules(&pool, &self.lead_facts(lead_id));
                let limits = Limits {
                    version: self.policy.version,
                    first_follow_up_sla_ms: r.first_follow_up_sla_ms,
                    stale_after_ms: r.stale_after_ms,
                    max_holding_ms: r.max_holding_ms,
                    reminder_lead_ms: r.reminder_lead_ms,
                    calendar: self
                        .policy
                        .pool(&pool)
                        .and_then(|p| p.calendar.as_ref())
                        .map(calendar::CalendarRef::new),
                    scope,
                };
                let limits = interned(&mut self.limits, &limits);
                self.watch(
                    lead_id,
                    Watch::new(pool, limits, generation, at, &event.event_id),
                );
                if let Some(prev) = holder {
                    if *prev != *a.owner_id {
                        self.record_loss(lead_id, &prev, at);
                    }
                    // A reassignment frees the previous holder.
                    self.drain_for(&prev, &event.event_id, at, &mut out);
                }
            }
            EventBody::FollowedUp(f) => {
                self.rewatch(lead_id, |w, owner| {
                    if owner.is_some_and(|o| **o == *f.owner_id) {
                        w.set_last_follow_up_ms(at);
                        w.cause_event_id = event.event_id.as_str().into();
                    }
                });
            }
            EventBody::Converted(_) => {
                self.clear_pending(lead_id);
                self.leave_backlog(lead_id);
                self.unwatch(lead_id);
                self.state.recalled_from.remove(lead_id);
                self.state.cooldowns.remove(lead_id);
                self.state.losses.remove(lead_id);
                self.state.moving.remove(lead_id);
                self.forget_fingerprint(lead_id);
                self.state.assign_attempts.remove(lead_id);
                self.state.passed_over_by.remove(lead_id);
                if let Some(owner) = holder {
                    *self
                        .state
                        .converted_by_rep
                        .entry(owner.to_string())
                        .or_default() += 1;
                    self.drain_for(&owner, &event.event_id, at, &mut out);
                }
            }
            EventBody::CommandDeclined(d) => {
                let matches = self
                    .state
                    .pending
                    .get(lead_id)
                    .is_some_and(|p| p.command_id == d.command_id);
                if matches {
                    let rep = self.pass_over(lead_id);
                    *self.state.declined_by_rep.entry(rep.clone()).or_default() += 1;
                    self.decide_again(lead_id, &rep, &event.event_id, at, &mut out);
                } else {
                    self.state.declines_unmatched += 1;
                }
            }
            EventBody::ClaimRequested(c) => {
                self.arbitrate_claim(lead_id, &c.rep_id, &event.event_id, at, &mut out);
            }
            EventBody::Moved(_) => {
                // A waiting lead waits in its new pool now (and may be
                // allocated from it); a held one keeps its deadlines.
                self.state.moving.remove(lead_id);
                if self.state.backlog_index.contains_key(lead_id.as_str()) {
                    self.leave_backlog(lead_id);
                }
                if self.placeable(lead_id) {
                    self.offer(lead_id, &event.event_id, at, &mut out);
                }
            }
            // An interaction allocates nothing by itself; a score does
            // (a `scored` event), through the lead's score.
            EventBody::Scored(_) | EventBody::Engaged(_) => {}
        }
        out.extend(self.score(seq, event));
        out
    }

    /// Moves the policy's time to `now_ms` (never back) and puts a waiting
    /// version in force if its start has come, firing nothing: what
    /// [`advance`](Self::advance) does before it fires. [`Policies`] uses
    /// it to bring a tenant to the common time; whatever that tenant has
    /// overdue (made due by a late event) fires at the next advance, as it
    /// would in one processor.
    pub fn set_time(&mut self, now_ms: i64) {
        if now_ms < self.state.now_ms {
            return;
        }
        self.state.now_ms = now_ms;
        self.switch_if_due(now_ms);
        // Outcomes known by now are learned and the model retrained first:
        // a score at `now_ms` comes from what was known before it.
        self.state.scorer.advance(&self.policy.scoring, now_ms);
    }

    /// Fires everything due at or before `now_ms`, in time order:
    /// reminders, recalls, and wake-ups that let waiting leads out (ties:
    /// wake-ups first, then deadlines by lead id). Time never goes back: an
    /// earlier `now_ms` than already seen fires nothing. There is no cap
    /// on how much one call fires: stopping half-way would let the next
    /// event land among deadlines that came due before it, and the result
    /// would depend on how the clock was sliced.
    pub fn advance(&mut self, now_ms: i64) -> Vec<LeadCommand> {
        let mut out = Vec::new();
        if now_ms < self.state.now_ms {
            return out;
        }
        self.state.now_ms = now_ms;
        self.switch_if_due(now_ms);
        self.state.scorer.advance(&self.policy.scoring, now_ms);
        loop {
            let wake = self.state.wakeups.first().copied().filter(|w| *w <= now_ms);
            // Filtered before they are cloned: on the path of every event,
            // where nothing is due most of the time.
            let expiry = self
                .state
                .expiries
                .first()
                .filter(|(e, _)| *e <= now_ms)
                .cloned();
            let due = self
                .state
                .due
                .first()
                .filter(|(d, _)| *d <= now_ms)
                .cloned();
            // Ties: wake-ups, then expiries, then deadlines.
            let expiry_first = expiry
                .as_ref()
                .is_some_and(|(e, _)| due.as_ref().is_none_or(|(d, _)| e <= d));
            match (wake, expiry, due) {
                (Some(w), e, d)
                    if e.as_ref().is_none_or(|(e, _)| w <= *e)
                        && d.as_ref().is_none_or(|(d, _)| w <= *d) =>
                {
                    self.state.wakeups.remove(&w);
                    self.wake(w, &mut out);
                }
                (_, Some((at, lead)), _) if expiry_first => {
                    self.state.expiries.remove(&(at, lead.clone()));
                    self.expire(&lead, at, &mut out);
                }
                (_, _, Some((due, lead))) => {
                    let l = self.state.pool.leads.get(&*lead).map(|l| &**l);
                    let watched =
                        |l: &&PolicyLead| l.watch.as_ref().is_some_and(|w| w.due_ms() == Some(due));
                    let Some(l) = l.filter(watched) else {
                        // Cannot happen (`watch`, `rewatch` and `unwatch`
                        // keep the two together); never loop on it.
                        debug_assert!(false, "due index entry ({due}, {lead}) without its watch");
                        self.state.due.remove(&(due, lead));
                        continue;
                    };
                    let (commands, fired) = self.fire(&lead, l, now_ms);
                    out.extend(commands);
                    // A recalled watch stays (with nothing due) until the
                    // CRM's `recalled` ends it: a manager's view lists the
                    // lead as overdue meanwhile. Its entry in the due index
                    // moves (or goes), so this loop moves on.
                    self.rewatch(&lead, |w, _| fired.apply(w));
                }
                _ => break,
            }
        }
        out
    }

    /// A wake-up at `at_ms`: every pool with waiting leads is drained at
    /// that moment, and day counts older than yesterday are forgotten.
    fn wake(&mut self, at_ms: i64, out: &mut Vec<LeadCommand>) {
        let today = self.day_of(at_ms);
        self.state
            .assigned_per_day
            .retain(|(_, day), _| *day >= today - 1);
        self.state
            .assigned_per_pool_day
            .retain(|(_, _, day), _| *day >= today - 1);
        self.state
            .claims_per_day
            .retain(|(_, _, day), _| *day >= today - 1);
        let pools: Vec<String> = self.state.backlog.keys().cloned().collect();
        for pool in pools {
            self.drain_pool(&pool, None, at_ms, out);
        }
        // Whoever still waits may fit under tomorrow's cap. (Cooldown
        // ends were scheduled when the lead came to wait.)
        let capped = self
            .state
            .backlog
            .keys()
            .any(|p| self.policy.pool_rules(p).daily_assignment_cap.is_some());
        if capped {
            self.state
                .wakeups
                .insert((today + 1).saturating_mul(DAY_MS));
        }
    }

    pub fn state_to_bytes(&self) -> Vec<u8> {
        bincode::serialize(&self.state).expect("policy state serialises")
    }

    pub fn state_from_bytes(bytes: &[u8]) -> Result<PolicyState, bincode::Error> {
        bincode::deserialize(bytes)
    }

    /// The earliest moment something is due (a wake-up, an expiry, a
    /// deadline, or the start of a waiting version), if anything is: [`advance`](Self::advance) to an earlier
    /// time fires nothing.
    pub fn next_due_ms(&self) -> Option<i64> {
        [
            self.state.wakeups.first().copied(),
            self.state.expiries.first().map(|(at, _)| *at),
            self.state.due.first().map(|(at, _)| *at),
            self.state.next.as_ref().and_then(|n| n.effective_from_ms),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod deadline_tests;

#[cfg(test)]
mod contract_tests;

#[cfg(test)]
mod tenant_tests;

#[cfg(test)]
mod pool_rules_tests;

#[cfg(test)]
mod claim_tests;

#[cfg(test)]
mod manager_tests;

#[cfg(test)]
mod duplicate_tests;
