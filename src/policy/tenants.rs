//! Every tenant's policy processor, behind one face.
//!
//! Tenants share nothing a decision needs: each has its own pools, reps,
//! capacities and rules (its table in the policy file, see [`super::file`]),
//! so each gets its own [`Processor`] and a rep id means a different person
//! in each. An event goes to its tenant's processor; a policy version goes
//! to all of them (each takes its own table of it).
//!
//! Each tenant keeps its own time: the latest of its own events and the
//! wall-clock ticks. A tenant lives on one partition, so its events come
//! in that partition's order whichever engine reads it, however its
//! partitions interleave with others, and however many engines share the
//! topic: what it decides is a function of its own events and the ticks,
//! never of another tenant's event times (with one clock over every
//! tenant, a partition read ahead of the others would fire everybody
//! else's deadlines early, and the commands would depend on fetch
//! timing). A tick ([`advance`](Policies::advance)) fires what is due in
//! every tenant: a due index over the tenants (each one's earliest
//! deadline, expiry or wake-up) finds those with something due without
//! visiting the others, and a tenant's time is brought up to the latest
//! tick (firing nothing) before it handles its next event. A single-tenant
//! deployment has one processor (the default tenant's) that sees every
//! event and every tick, and decides exactly as before.
//!
//! The default tenant's processor always exists, is advanced by every tick
//! and holds the whole file, so its version in force is the file's.

use super::by_tenant::ByTenant;
use super::{ManagerAction, PolicyFile, PolicyInput, PolicyState, Processor};
use crate::domain::{LeadCommand, LeadEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The snapshot name of the policies' state; the suffix changes with its
/// shape.
pub const SNAPSHOT_NAME: &str = "policy.v13";
/// The snapshot name of the shadow policies' state.
pub const SHADOW_SNAPSHOT_NAME: &str = "policy-shadow.v11";

/// What is saved of [`Policies`]: the common position and time, and each
/// tenant's own state (the due index is derived from them on resume).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoliciesState {
    /// Every event with a sequence `<= covered_seq` has been handled.
    pub covered_seq: u64,
    /// The key of the last policy input applied.
    pub covered_input: Option<(u64, u32)>,
    /// The latest tick: deadlines have fired up to it in every tenant
    /// (each tenant's own time may be later, by its own events).
    pub now_ms: i64,
    pub tenants: BTreeMap<String, PolicyState>,
    /// What a tenant that has seen no event yet stands under (see
    /// [`Policies`]' `idle`).
    pub idle: PolicyState,
}

pub struct Policies {
    covered_seq: u64,
    covered_input: Option<(u64, u32)>,
    now_ms: i64,
    /// Always holds the default tenant (`""`).
    tenants: ByTenant<Processor>,
    /// (earliest thing due, tenant) of every tenant with something due.
    due: BTreeSet<(i64, String)>,
    /// Tenant -> its key in `due`.
    due_of: ByTenant<i64>,
    /// Tenants with scores waiting to be published.
    scoring: ByTenant<()>,
    /// A processor that sees every policy version and every tick but no
    /// event: the versions (in force and waiting) of a tenant that has
    /// seen nothing yet. A tenant seen for the first time starts from it,
    /// not from the default tenant, whose own events may have moved its
    /// time past a waiting version's start: then the new tenant's first
    /// decisions would depend on whether the default tenant's partition
    /// was read ahead of its own.
    idle: Processor,
}

impl Policies {
    pub fn new(policy: PolicyFile) -> Policies {
        Policies::with_state(policy, PoliciesState::default())
    }

    /// Policies resuming from `state` with `policy` loaded (see
    /// [`load`](Self::load)).
    pub fn with_state(policy: PolicyFile, state: PoliciesState) -> Policies {
        let mut p = Policies::resume(policy.clone(), state);
        p.load(policy);
        p
    }

    /// Policies resuming from `state` as saved: each tenant keeps its
    /// version in force and any version waiting; `policy` is used where a
    /// tenant has none yet.
    pub fn resume(policy: PolicyFile, state: PoliciesState) -> Policies {
        let mut tenants: ByTenant<Processor> = state
            .tenants
            .into_iter()
            .map(|(t, s)| {
                let p = Processor::resume(policy.for_tenant(&t), s);
                (t, p)
            })
            .collect();
        tenants.get_or_insert_with("", || {
            Processor::resume(policy.clone(), PolicyState::default())
        });
        let idle = Processor::resume(policy, state.idle);
        let mut p = Policies {
            covered_seq: state.covered_seq,
            covered_input: state.covered_input,
            now_ms: state.now_ms,
            tenants,
            due: BTreeSet::new(),
            due_of: ByTenant::default(),
            scoring: ByTenant::default(),
            idle,
        };
        let names: Vec<String> = p.tenants.tenants().map(str::to_string).collect();
        for t in names {
            p.reindex(&t);
        }
        p.scoring = p
            .tenants
            .iter()
            .filter(|(_, t)| t.has_pending_scores())
            .map(|(name, _)| (name.to_string(), ()))
            .collect();
        p
    }

    fn default_tenant(&self) -> &Processor {
        self.tenants
            .get("")
            .expect("the default tenant always exists")
    }

    /// The version in force (the whole file, every tenant's table).
    pub fn policy(&self) -> &PolicyFile {
        self.default_tenant().policy()
    }

    /// The latest version loaded: the one waiting for its start, or the
    /// one in force.
    pub fn latest_loaded(&self) -> &PolicyFile {
        self.default_tenant().latest_loaded()
    }

    pub fn covered_seq(&self) -> u64 {
        self.covered_seq
    }

    pub fn covered_input(&self) -> Option<(u64, u32)> {
        self.covered_input
    }

    /// The latest tick (or end of history) advanced to: a tick at or
    /// before it moves nothing.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// One tenant's processor, if it has seen anything.
    pub fn tenant(&self, tenant: &str) -> Option<&Processor> {
        self.tenants.get(tenant)
    }

    /// Every tenant's processor, by tenant id (the default tenant first).
    pub fn tenants(&self) -> impl Iterator<Item = (&str, &Processor)> {
        self.tenants.iter()
    }

    /// Loads a policy version into every tenant (see
    /// [`Processor::load`]); returns whether anything changed.
    pub fn load(&mut self, policy: PolicyFile) -> bool {
        let now = self.now_ms;
        let mut changed = false;
        self.idle.set_time(now);
        self.idle.load(policy.clone());
        for (t, p) in self.tenants.iter_mut() {
            p.set_time(now);
            changed |= p.load(policy.for_tenant(t));
        }
        changed
    }

    /// Applies one recorded policy input (at log key `key`); returns the
    /// commands a tick fires.
    pub fn apply_input(&mut self, key: (u64, u32), input: &PolicyInput) -> Vec<LeadCommand> {
        self.covered_input = Some(key);
        match input {
            PolicyInput::Version { policy, .. } => {
                self.load(PolicyFile::clone(policy));
                Vec::new()
            }
            PolicyInput::Tick { at_ms } => self.advance(*at_ms),
            PolicyInput::Manager {
                tenant_id,
                action,
                actor,
                ..
            } => {
                let now = self.now_ms;
                let Some(p) = self.tenants.get_mut(tenant_id) else {
                    return Vec::new();
                };
                p.set_time(now);
                let mut out = p.manage(key, action, actor);
                stamp(&mut out, tenant_id);
                self.reindex(tenant_id);
                out
            }
        }
    }

    /// The rejection of `event` at intake, if its tenant's policy refuses
    /// it (see [`Processor::admit`]). A tenant not seen yet has no open
    /// leads, so nothing of it is a duplicate.
    pub fn admit(&self, event: &LeadEvent) -> Option<crate::domain::Rejection> {
        self.tenants.get(&event.tenant_id)?.admit(event)
    }

    /// Why a manager's action cannot be carried out in `tenant` now, if it
    /// cannot (see [`Processor::check_manager`]).
    pub fn check_manager(&self, tenant: &str, action: &ManagerAction) -> Result<(), String> {
        match self.tenants.get(tenant) {
            Some(p) => p.check_manager(action),
            None => Err(format!("tenant {tenant:?} has no leads yet")),
        }
    }

    /// Folds the accepted event with sequence `seq` into its tenant's
    /// processor and returns the commands: first what is due in that
    /// tenant by the event's time, then what the event prompts.
    pub fn handle(&mut self, seq: u64, event: &LeadEvent) -> Vec<LeadCommand> {
        assert!(
            seq > self.covered_seq,
            "event {seq} handled again (policies cover {})",
            self.covered_seq
        );
        self.covered_seq = seq;
        let tenant = event.tenant_id.as_str();
        let ticked = self.now_ms;
        if !self.tenants.contains(tenant) {
            let fresh = self.fresh(tenant);
            self.tenants.insert(tenant, fresh);
        }
        let p = self.tenants.get_mut(tenant).expect("inserted above");
        // What was due by the latest tick fired then (the due index).
        p.set_time(ticked);
        let mut out = p.handle(seq, event);
        let next = p.next_due_ms();
        if p.has_pending_scores() {
            if !self.scoring.contains(tenant) {
                self.scoring.insert(tenant, ());
            }
        } else if !self.scoring.is_empty() {
            self.scoring.remove(tenant);
        }
        stamp(&mut out, tenant);
        self.reindex_at(tenant, next);
        out
    }

    /// Whether any tenant's scores wait to be published.
    pub fn has_pending_scores(&self) -> bool {
        !self.scoring.is_empty()
    }

    /// The `scored` events of every tenant's scores announced and not yet
    /// in the log (see [`Processor::scores_to_publish`]).
    pub fn scores_to_publish(&self) -> Vec<LeadEvent> {
        self.scoring
            .tenants()
            .filter_map(|t| Some(self.tenants.get(t)?.scores_to_publish(t)))
            .flatten()
            .collect()
    }

    /// A processor for a tenant seen for the first time: under the
    /// versions of a tenant that saw only the versions and the ticks (the
    /// one in force at the latest tick, and the one waiting for its start,
    /// if any), at the latest tick.
    fn fresh(&self, tenant: &str) -> Processor {
        let mut p = Processor::new(self.idle.policy().for_tenant(tenant));
        p.load(self.idle.latest_loaded().for_tenant(tenant));
        p.set_time(self.now_ms);
        p
    }

    /// The wall clock (a tick), or the end of a history: fires everything
    /// due at or before `now_ms` in every tenant (see
    /// [`Processor::advance`]). Time never goes back.
    pub fn advance(&mut self, now_ms: i64) -> Vec<LeadCommand> {
        let mut out = Vec::new();
        if now_ms < self.now_ms {
            return out;
        }
        self.now_ms = now_ms;
        self.idle.set_time(now_ms);
        // The default tenant keeps the file's version current.
        if let Some(p) = self.tenants.get_mut("") {
            out.extend(p.advance(now_ms));
        }
        self.reindex("");
        // Each tenant due by the tick is advanced once, in the due index's
        // order (advancing one tenant never makes another due). A tenant
        // whose own time is ahead of the tick (its events are stamped
        // later than the engine's wall clock: a producer's clock running
        // fast) fires nothing — time never goes back — and may stay due
        // before the tick, with what a late event made overdue: that fires
        // when its time moves on. So the list is taken before advancing,
        // or such a tenant would be picked again for ever.
        let due: Vec<String> = self
            .due
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .map(|(_, tenant)| tenant.clone())
            .filter(|tenant| !tenant.is_empty())
            .collect();
        let mut from = out.len();
        for tenant in due {
            let Some(p) = self.tenants.get_mut(&tenant) else {
                continue;
            };
            out.extend(p.advance(now_ms));
            let ahead = p.state().now_ms > now_ms;
            stamp(&mut out[from..], &tenant);
            from = out.len();
            self.reindex(&tenant);
            assert!(
                ahead || self.due_of.get(&tenant).is_none_or(|d| *d > now_ms),
                "tenant {tenant:?} still has something due by {now_ms} after advancing"
            );
        }
        out
    }

    /// Puts `tenant` at its earliest due moment in the due index.
    fn reindex(&mut self, tenant: &str) {
        let next = self.tenants.get(tenant).and_then(Processor::next_due_ms);
        self.reindex_at(tenant, next);
    }

    /// Puts `tenant` at `next`, its earliest due moment, in the due index.
    fn reindex_at(&mut self, tenant: &str, next: Option<i64>) {
        if self.due_of.get(tenant).copied() == next {
            // The usual case (the earliest moment did not move): no work,
            // no allocation, on the path of every event.
            return;
        }
        if let Some(old) = self.due_of.remove(tenant) {
            self.due.remove(&(old, tenant.to_string()));
        }
        if let Some(at) = next {
            self.due.insert((at, tenant.to_string()));
            self.due_of.insert(tenant, at);
        }
    }

    pub fn state_to_bytes(&self) -> Vec<u8> {
        bincode::serialize(&PoliciesStateRef {
            covered_seq: self.covered_seq,
            covered_input: self.covered_input,
            now_ms: self.now_ms,
            tenants: self.tenants.iter().map(|(t, p)| (t, p.state())).collect(),
            idle: self.idle.state(),
        })
        .expect("policy state serialises")
    }

    pub fn state_from_bytes(bytes: &[u8]) -> Result<PoliciesState, bincode::Error> {
        bincode::deserialize(bytes)
    }
}

/// Every command carries its tenant (the log stamps it again from the lead
/// where it stores a command; here it is known for backtests too).
fn stamp(commands: &mut [LeadCommand], tenant: &str) {
    for c in commands {
        if !crate::domain::tenant::same_tenant(&c.tenant_id, tenant) {
            c.tenant_id = tenant.to_string();
        }
    }
}

/// [`PoliciesState`] borrowed, for saving without copying every tenant.
#[derive(Serialize)]
struct PoliciesStateRef<'a> {
    covered_seq: u64,
    covered_input: Option<(u64, u32)>,
    now_ms: i64,
    tenants: BTreeMap<&'a str, &'a PolicyState>,
    idle: &'a PolicyState,
}
