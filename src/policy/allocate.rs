//! Allocation: the pools' strategies, who is eligible (capacity, daily
//! cap, cooldown, last owner), and the first-come-first-served backlog
//! with its wake-ups.

use super::*;

/// The daily cap on assignments from one pool.
pub(super) struct DayCap<'a> {
    pub cap: Option<u32>,
    /// The pool, when the cap is its own and counts its assignments only.
    pub own_pool: Option<&'a str>,
}

impl Processor {
    pub(super) fn clear_pending(&mut self, lead_id: &str) {
        if let Some(p) = self.state.pending.remove(lead_id) {
            if let Some(at) = p.expires_at_ms {
                self.state.expiries.remove(&(at, lead_id.to_string()));
            }
            let rep = p.rep;
            if let Some(n) = self.state.pending_by_rep.get_mut(&rep) {
                *n -= 1;
                if *n == 0 {
                    self.state.pending_by_rep.remove(&rep);
                }
            }
        }
    }

    /// An assignment commanded (by the allocation, a claim or a manager):
    /// it holds a slot of the rep's holdings, and expires at its time to
    /// live, until the CRM carries it out or declines it.
    pub(super) fn reserve(&mut self, lead_id: &str, p: Pending) {
        if let Some(e) = p.expires_at_ms {
            self.state.expiries.insert((e, lead_id.to_string()));
        }
        *self.state.pending_by_rep.entry(p.rep.clone()).or_default() += 1;
        self.state.pending.insert(lead_id.to_string(), p);
    }

    pub(super) fn leave_backlog(&mut self, lead_id: &str) {
        if let Some(w) = self.state.backlog_index.remove(lead_id) {
            if let Some(set) = self.state.backlog.get_mut(&w.pool) {
                set.remove(&(w.since_ms, lead_id.to_string()));
                if set.is_empty() {
                    self.state.backlog.remove(&w.pool);
                }
            }
        }
    }

    /// Puts a lead in its pool's backlog (once), and schedules the moments
    /// at which it may become placeable without any event.
    pub(super) fn wait(
        &mut self,
        lead_id: &str,
        pool: &str,
        since_ms: i64,
        cause_event_id: &str,
        at_ms: i64,
    ) {
        if !self.state.backlog_index.contains_key(lead_id) {
            self.state
                .backlog
                .entry(pool.to_string())
                .or_default()
                .insert((since_ms, lead_id.to_string()));
            self.state.backlog_index.insert(
                lead_id.to_string(),
                Waiting {
                    pool: pool.to_string(),
                    since_ms,
                    cause_event_id: cause_event_id.to_string(),
                },
            );
        }
        if self.policy.pool_rules(pool).daily_assignment_cap.is_some() {
            self.state.wakeups.insert(self.next_day_ms(at_ms));
        }
        if let Some(c) = self.state.cooldowns.get(lead_id) {
            for (_, until) in c.iter().filter(|(_, until)| *until > at_ms) {
                self.state.wakeups.insert(*until);
            }
        }
    }

    /// A lead comes to wait in its pool at `at_ms` (created, or recalled
    /// into it). First come, first served: when others already wait there,
    /// it queues behind them and the backlog is drained; otherwise it is
    /// placed at once, or waits.
    pub(super) fn offer(
        &mut self,
        lead_id: &str,
        cause_event_id: &str,
        at_ms: i64,
        out: &mut Vec<LeadCommand>,
    ) {
        let Some(pool) = self.state.pool.leads.get(lead_id).map(|l| l.pool.clone()) else {
            return;
        };
        if self
            .state
            .backlog
            .get(&*pool)
            .is_some_and(|b| !b.is_empty())
        {
            if self.auto_assigns(&pool) {
                self.wait(lead_id, &pool, at_ms, cause_event_id, at_ms);
                self.drain_pool(&pool, Some(cause_event_id), at_ms, out);
            }
            return;
        }
        let exclude = self.skipped_for(lead_id);
        match self.allocate(lead_id, cause_event_id, at_ms, exclude.as_deref(), at_ms) {
            Some(c) => out.push(c),
            None if self.auto_assigns(&pool) && self.placeable(lead_id) => {
                self.wait(lead_id, &pool, at_ms, cause_event_id, at_ms);
            }
            None => {}
        }
    }

    /// The rep a lead must not go to next: the one it was just recalled
    /// from, or the one who declined it or let it expire.
    pub(super) fn skipped_for(&self, lead_id: &str) -> Option<String> {
        self.state
            .recalled_from
            .get(lead_id)
            .or_else(|| self.state.passed_over_by.get(lead_id))
            .cloned()
    }

    /// How many times this lead's assignment was decided again in its
    /// current generation (after a decline or an expiry).
    pub(super) fn attempt(&self, lead_id: &str) -> u32 {
        self.state
            .assign_attempts
            .get(lead_id)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `pool` is an `auto_assign` pool with members.
    pub(super) fn auto_assigns(&self, pool: &str) -> bool {
        self.policy
            .pool(pool)
            .is_some_and(|p| p.kind == PoolKind::AutoAssign && !p.members.is_empty())
    }

    /// Whether a lead is in a pool and not already promised to someone
    /// (nor being moved by a manager).
    pub(super) fn placeable(&self, lead_id: &str) -> bool {
        self.state
            .pool
            .leads
            .get(lead_id)
            .is_some_and(|l| l.status == LeadStatus::InPool)
            && !self.state.pending.contains_key(lead_id)
            && !self.state.moving.contains_key(lead_id)
    }

    /// `rep` has room again (by the event `cause_event_id`): drain the
    /// backlogs of the pools they work.
    pub(super) fn drain_for(
        &mut self,
        rep: &str,
        cause_event_id: &str,
        at_ms: i64,
        out: &mut Vec<LeadCommand>,
    ) {
        let pools: Vec<String> = self
            .policy
            .pools
            .iter()
            .filter(|p| p.kind == PoolKind::AutoAssign && p.members.iter().any(|m| m.id == rep))
            .map(|p| p.name.clone())
            .collect();
        for pool in pools {
            self.drain_pool(&pool, Some(cause_event_id), at_ms, out);
        }
    }

    /// Places waiting leads of `pool` at `at_ms`, in backlog order (oldest
    /// first; under `score_priority` the highest score, then the oldest).
    /// A lead nobody can take now (everyone with room is in cooldown for
    /// it, or was its last owner) keeps its place and the next one is
    /// tried: it does not hold up leads someone can take. The assignment's
    /// cause is the event that prompted the drain, or for a wake-up
    /// (`None`) the event that made the lead wait.
    pub(super) fn drain_pool(
        &mut self,
        pool: &str,
        prompted_by: Option<&str>,
        at_ms: i64,
        out: &mut Vec<LeadCommand>,
    ) {
        if !self.anyone_has_room(pool, at_ms) {
            return;
        }
        let by_score = self
            .policy
            .pool(pool)
            .is_some_and(|p| p.strategy == Strategy::ScorePriority);
        let mut ranked = if by_score {
            self.backlog_by_score(pool).into_iter()
        } else {
            Vec::new().into_iter()
        };
        let mut tried: Option<(i64, String)> = None;
        for _ in 0..BACKLOG_ATTEMPTS_PER_DRAIN_MAX {
            // The next candidate: by rank, or the oldest after the last
            // one tried (one key at a time: most drains stop at the first).
            let next = if by_score {
                ranked.next()
            } else {
                let backlog = self.state.backlog.get(pool);
                match &tried {
                    None => backlog.and_then(|b| b.first().cloned()),
                    Some(k) => backlog.and_then(|b| {
                        b.range((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))
                            .next()
                            .cloned()
                    }),
                }
            };
            let Some((since, lead)) = next else {
                break;
            };
            tried = Some((since, lead.clone()));
            let exclude = self.skipped_for(&lead);
            let cause = match prompted_by {
                Some(id) => id.to_string(),
                None => self
                    .state
                    .backlog_index
                    .get(&lead)
                    .map(|w| w.cause_event_id.clone())
                    .unwrap_or_default(),
            };
            if let Some(c) = self.allocate(&lead, &cause, at_ms, exclude.as_deref(), since) {
                self.leave_backlog(&lead);
                out.push(c);
                if !self.anyone_has_room(pool, at_ms) {
                    break;
                }
            } else if !self.placeable(&lead) {
                // Gone from the pool meanwhile (cannot happen while the
                // backlog follows the events, but never wait forever).
                self.leave_backlog(&lead);
            }
        }
    }

    /// Whether some active member of `pool` is below capacity and below
    /// the daily cap at `at_ms` (per-lead rules aside): otherwise draining
    /// is pointless.
    pub(super) fn anyone_has_room(&self, pool: &str, at_ms: i64) -> bool {
        let Some(p) = self.policy.pool(pool) else {
            return false;
        };
        let cap = self.day_cap(pool);
        p.members.iter().any(|m| {
            let (capacity, active) = self.member_limits(m);
            active && self.load_of(&m.id) < capacity && self.under_day_cap(&m.id, &cap, at_ms)
        })
    }

    /// The daily cap that applies to assignments from `pool`: the pool's
    /// own (counted per pool) or the tenant's (counted over all pools).
    pub(super) fn day_cap<'a>(&self, pool: &'a str) -> DayCap<'a> {
        DayCap {
            cap: self.policy.pool_rules(pool).daily_assignment_cap,
            own_pool: self.policy.pool_has_own_cap(pool).then_some(pool),
        }
    }

    /// Whether `rep` may get one more assignment on `at_ms`'s UTC day
    /// under `cap`.
    pub(super) fn under_day_cap(&self, rep: &str, cap: &DayCap<'_>, at_ms: i64) -> bool {
        let Some(max) = cap.cap else {
            return true;
        };
        let day = self.day_of(at_ms);
        let today = match cap.own_pool {
            Some(pool) => {
                self.state
                    .assigned_per_pool_day
                    .get(&(rep.to_string(), pool.to_string(), day))
            }
            None => self.state.assigned_per_day.get(&(rep.to_string(), day)),
        };
        today.copied().unwrap_or(0) < max
    }

    /// The backlog entries of a `score_priority` pool to try, best first
    /// (the highest score, then the oldest), at most
    /// `BACKLOG_ATTEMPTS_PER_DRAIN_MAX`.
    pub(super) fn backlog_by_score(&self, pool: &str) -> Vec<(i64, String)> {
        let Some(backlog) = self.state.backlog.get(pool) else {
            return Vec::new();
        };
        let score = |lead: &str| {
            self.state
                .pool
                .leads
                .get(lead)
                .and_then(|l| l.score())
                .unwrap_or(0)
        };
        let mut all: Vec<(u32, i64, &String)> = backlog
            .iter()
            .map(|(since, lead)| (score(lead), *since, lead))
            .collect();
        all.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| (a.1, a.2).cmp(&(b.1, b.2))));
        all.into_iter()
            .take(BACKLOG_ATTEMPTS_PER_DRAIN_MAX)
            .map(|(_, since, lead)| (since, lead.clone()))
            .collect()
    }

    /// Conversion rate of a rep as an exact fraction (conversions,
    /// assignments); a rep without history ranks as 0/1.
    pub(super) fn conversion_rate(&self, rep: &str) -> (u64, u64) {
        let won = u64::from(self.state.converted_by_rep.get(rep).copied().unwrap_or(0));
        let got = u64::from(self.state.received_by_rep.get(rep).copied().unwrap_or(0));
        (won, got.max(1))
    }

    /// How well a member's preferences match a lead: 2 both, 1 one, 0 none.
    pub(super) fn preference_match(&self, m: &Member, lead_id: &str) -> u8 {
        let Some(lead) = self.state.pool.leads.get(lead_id) else {
            return 0;
        };
        u8::from(m.regions.iter().any(|r| **r == *lead.region))
            + u8::from(m.industries.iter().any(|i| **i == *lead.industry))
    }

    pub(super) fn load_of(&self, rep: &str) -> u32 {
        let held = self.state.pool.held_by(rep);
        let converted = if self.policy.rules.converted_count_toward_capacity {
            self.state.converted_by_rep.get(rep).copied().unwrap_or(0)
        } else {
            0
        };
        held + converted + self.state.pending_by_rep.get(rep).copied().unwrap_or(0)
    }

    pub(super) fn eligible(
        &self,
        m: &Member,
        lead_id: &str,
        exclude: Option<&str>,
        cap: &DayCap<'_>,
        at_ms: i64,
    ) -> bool {
        let (capacity, active) = self.member_limits(m);
        if !active || Some(m.id.as_str()) == exclude || self.load_of(&m.id) >= capacity {
            return false;
        }
        if !self.under_day_cap(&m.id, cap, at_ms) {
            return false;
        }
        let cooling = self
            .state
            .cooldowns
            .get(lead_id)
            .is_some_and(|c| c.iter().any(|(rep, until)| *rep == m.id && at_ms < *until));
        !cooling
    }

    /// Picks a member by the pool's strategy at `at`, or `None` when
    /// nobody can take the lead (the caller decides whether it waits).
    /// `cause_event_id` is the event that prompted the decision.
    pub(super) fn allocate(
        &mut self,
        lead_id: &str,
        cause_event_id: &str,
        at: i64,
        exclude: Option<&str>,
        waiting_since_ms: i64,
    ) -> Option<LeadCommand> {
        if !self.placeable(lead_id) {
            return None;
        }
        let lead = self.state.pool.leads.get(lead_id)?;
        let pool = self.policy.pool(&lead.pool)?;
        if pool.kind != PoolKind::AutoAssign || pool.members.is_empty() {
            return None;
        }
        let n = pool.members.len();
        let cap = self.day_cap(&pool.name);
        let found = match pool.strategy {
            Strategy::RoundRobin => {
                let start = self.state.round_robin.get(&pool.name).copied().unwrap_or(0) % n;
                (0..n)
                    .map(|i| (start + i) % n)
                    .map(|i| (i, &pool.members[i]))
                    .find(|(_, m)| self.eligible(m, lead_id, exclude, &cap, at))
            }
            Strategy::LeastLoaded => pool
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| self.eligible(m, lead_id, exclude, &cap, at))
                // load / capacity, compared exactly as cross products.
                .min_by(|(_, a), (_, b)| {
                    let (ca, cb) = (self.member_limits(a).0, self.member_limits(b).0);
                    let la = u64::from(self.load_of(&a.id)) * u64::from(cb);
                    let lb = u64::from(self.load_of(&b.id)) * u64::from(ca);
                    la.cmp(&lb).then_with(|| a.id.cmp(&b.id))
                }),
            Strategy::ScorePriority => pool
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| self.eligible(m, lead_id, exclude, &cap, at))
                // Highest conversion rate first (exact fractions), then the
                // smaller id.
                .max_by(|(_, a), (_, b)| {
                    let (wa, ga) = self.conversion_rate(&a.id);
                    let (wb, gb) = self.conversion_rate(&b.id);
                    (wa * gb).cmp(&(wb * ga)).then_with(|| b.id.cmp(&a.id))
                }),
            Strategy::Preference => {
                let start = self.state.round_robin.get(&pool.name).copied().unwrap_or(0) % n;
                let turn = |i: usize| (i + n - start) % n;
                pool.members
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| self.eligible(m, lead_id, exclude, &cap, at))
                    // The best match wins; among equals, whose turn it is.
                    .max_by(|(ia, a), (ib, b)| {
                        self.preference_match(a, lead_id)
                            .cmp(&self.preference_match(b, lead_id))
                            .then_with(|| turn(*ib).cmp(&turn(*ia)))
                    })
            }
        };
        let (index, member) = found?;
        let load = self.load_of(&member.id);
        let body = CommandBody::AssignLead {
            owner_id: member.id.clone(),
            pool: pool.name.clone(),
        };
        let strategy = match pool.strategy {
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastLoaded => "least-loaded",
            Strategy::ScorePriority => "score-priority",
            Strategy::Preference if self.preference_match(member, lead_id) > 0 => "preference",
            Strategy::Preference => "preference fallback",
        };
        let version = self.policy.version;
        let skipped = exclude.map(|prev| {
            if self
                .state
                .recalled_from
                .get(lead_id)
                .is_some_and(|r| r == prev)
            {
                explain::Skipped::RecalledFrom(prev)
            } else {
                explain::Skipped::PassedOver(prev)
            }
        });
        let attempt = self.attempt(lead_id);
        let (rules, scope) = self
            .policy
            .lead_rules(&pool.name, &self.lead_facts(lead_id));
        let expires_at_ms = rules
            .assign_command_ttl_ms
            .map(|ttl| at.saturating_add(ttl));
        let explain::Explained { explanation, facts } = explain::assign(explain::Assign {
            rep: &member.id,
            pool: &pool.name,
            strategy,
            holdings: load,
            capacity: self.member_limits(member).0,
            waiting_since_ms,
            skipped,
            attempt,
            expires_at_ms,
            rule: RULE_AUTO_ASSIGN,
            scope: &scope,
            version,
        });
        let command = LeadCommand {
            command_id: command_id_attempt(
                lead_id,
                lead.generation,
                attempt,
                RULE_AUTO_ASSIGN,
                &body,
            ),
            lead_id: lead_id.to_string(),
            issued_at_ms: at,
            causation_event_id: cause_event_id.to_string(),
            rule_id: RULE_AUTO_ASSIGN.to_string(),
            rule_version: version,
            explanation,
            facts,
            tenant_id: String::new(),
            body,
        };
        let pool_name = pool.name.clone();
        let rep = member.id.clone();
        let own_cap_pool = cap.own_pool.map(str::to_string);
        self.state.round_robin.insert(pool_name, (index + 1) % n);
        self.reserve(
            lead_id,
            Pending {
                rep: rep.clone(),
                command_id: command.command_id.clone(),
                cause_event_id: cause_event_id.to_string(),
                commanded_at_ms: at,
                expires_at_ms,
            },
        );
        if let Some(pool) = own_cap_pool {
            *self
                .state
                .assigned_per_pool_day
                .entry((rep.clone(), pool, self.day_of(at)))
                .or_default() += 1;
        }
        *self
            .state
            .assigned_per_day
            .entry((rep, self.day_of(at)))
            .or_default() += 1;
        Some(command)
    }
}
