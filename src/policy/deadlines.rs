//! Deadlines of open assignments: when each rule's recall falls (in
//! working time under the pool's calendar as the assignment knew it), when
//! its reminder falls, the due index, and firing them.

use super::*;

/// A held lead's next recall deadline, for a manager's view of a rep's
/// work (`GET /api/v1/reps/{id}/due`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DueLead {
    pub lead_id: String,
    /// The pool it was assigned from.
    pub pool: String,
    /// The rule whose recall falls first (`first-follow-up-sla`, `stale`,
    /// `max-holding`).
    pub rule: &'static str,
    /// What the rule measures: "no first follow-up", "no follow-up", "not
    /// converted".
    pub what: &'static str,
    /// When the recall falls (in working time under the pool's calendar).
    pub deadline_ms: i64,
    pub assigned_at_ms: i64,
    pub last_follow_up_ms: Option<i64>,
    /// The reminder of this rule has been sent.
    pub reminded: bool,
    /// The recall has been commanded; the CRM has not carried it out yet.
    pub recall_commanded: bool,
    /// The policy version the assignment was made under (its rules hold
    /// until it ends).
    pub policy_version: u32,
}

impl Processor {
    /// The leads `rep` holds whose next recall deadline falls at or before
    /// `until_ms` (those past it included), earliest first, at most `max`
    /// of them, and how many there are in all. Leads without a deadline
    /// (no rule applies) are not listed. Costs one pass over the leads the
    /// policy knows (a watch is kept in its lead's record).
    pub fn due_of_rep(&self, rep: &str, until_ms: i64, max: usize) -> (Vec<DueLead>, usize) {
        let mut due: Vec<DueLead> = Vec::new();
        for (lead, l) in &self.state.pool.leads {
            let Some(w) = l.watch.as_deref() else {
                continue;
            };
            if l.owner.as_deref() != Some(rep) {
                continue;
            }
            let Some(d) = self.deadline(w) else {
                continue;
            };
            if d.at_ms > until_ms {
                continue;
            }
            due.push(DueLead {
                lead_id: lead.to_string(),
                pool: w.pool.to_string(),
                rule: d.rule,
                what: d.what,
                deadline_ms: d.at_ms,
                assigned_at_ms: w.assigned_at_ms,
                last_follow_up_ms: w.last_follow_up_ms(),
                reminded: w.reminded.contains(d.rule),
                recall_commanded: w.recalled,
                policy_version: w.limits.version,
            });
        }
        // The leads are a hash map: sorted here, so the answer does not
        // depend on its order.
        due.sort_by(|a, b| (a.deadline_ms, &a.lead_id).cmp(&(b.deadline_ms, &b.lead_id)));
        let total = due.len();
        due.truncate(max);
        (due, total)
    }

    /// The parsed calendar of `cal` (validated when its file was loaded).
    pub(super) fn calendar(
        &self,
        cal: &calendar::CalendarRef,
    ) -> Option<std::sync::Arc<calendar::Calendar>> {
        let mut cache = self.calendars.borrow_mut();
        if let Some((spec, c)) = cache.get(&cal.id) {
            if *spec == cal.spec {
                return Some(c.clone());
            }
        }
        let parsed = std::sync::Arc::new(calendar::Calendar::parse(&cal.spec).ok()?);
        if cache.len() >= CALENDARS_CACHED_MAX {
            cache.clear();
        }
        cache.insert(cal.id, (cal.spec.clone(), parsed.clone()));
        Some(parsed)
    }

    /// `start + duration`, counting working time only under a calendar.
    pub(super) fn after(
        &self,
        cal: Option<&calendar::CalendarRef>,
        start_ms: i64,
        duration_ms: i64,
    ) -> i64 {
        match cal.and_then(|c| self.calendar(c)) {
            Some(c) => c.add_working(start_ms, duration_ms),
            None => start_ms.saturating_add(duration_ms),
        }
    }

    /// `end - duration`, counting working time only under a calendar: a
    /// reminder "2 h before" a Monday 10:00 deadline in a pool open
    /// 09:00-18:00 comes on Friday at 17:00, not at Monday 08:00.
    pub(super) fn before(
        &self,
        cal: Option<&calendar::CalendarRef>,
        end_ms: i64,
        duration_ms: i64,
    ) -> i64 {
        match cal.and_then(|c| self.calendar(c)) {
            Some(c) => c.sub_working(end_ms, duration_ms),
            None => end_ms.saturating_sub(duration_ms),
        }
    }

    /// The earliest recall deadline of a watch, under the rules it was
    /// assigned under.
    pub(super) fn deadline(&self, w: &Watch) -> Option<Deadline> {
        let r = &w.limits;
        let mut candidates = Vec::with_capacity(3);
        match (
            w.last_follow_up_ms(),
            r.first_follow_up_sla_ms,
            r.stale_after_ms,
        ) {
            (None, Some(sla), _) => candidates.push(Deadline {
                rule: RULE_FIRST_FOLLOW_UP,
                reason: RecallReason::NoFirstFollowUp,
                at_ms: self.after(r.calendar.as_ref(), w.assigned_at_ms, sla),
                what: "no first follow-up",
                limit_ms: sla,
            }),
            (Some(last), _, Some(stale)) => candidates.push(Deadline {
                rule: RULE_STALE,
                reason: RecallReason::Stale,
                at_ms: self.after(r.calendar.as_ref(), last, stale),
                what: "no follow-up",
                limit_ms: stale,
            }),
            _ => {}
        }
        if let Some(hold) = r.max_holding_ms {
            candidates.push(Deadline {
                rule: RULE_MAX_HOLDING,
                reason: RecallReason::NotConverted,
                at_ms: self.after(r.calendar.as_ref(), w.assigned_at_ms, hold),
                what: "not converted",
                limit_ms: hold,
            });
        }
        candidates.into_iter().min_by_key(|d| (d.at_ms, d.rule))
    }

    /// When the watch has something to fire next: the reminder of its
    /// earliest deadline (if not sent) or the recall itself.
    pub(super) fn next_due(&self, w: &Watch) -> Option<i64> {
        if w.recalled {
            return None;
        }
        let d = self.deadline(w)?;
        match w.limits.reminder_lead_ms {
            Some(lead) if !w.reminded.contains(d.rule) => Some(
                self.before(w.limits.calendar.as_ref(), d.at_ms, lead)
                    .min(d.at_ms),
            ),
            _ => Some(d.at_ms),
        }
    }

    /// Watches `lead_id`'s assignment, in place of the one it had if any,
    /// in the lead's record (a lead the view does not know has no
    /// assignment to watch). A lead's watch is replaced or changed in
    /// place (see [`rewatch`](Self::rewatch)) rather than removed and
    /// inserted again: a hash map that removes and inserts on every event
    /// fills with tombstones and rehashes itself over and over (measured:
    /// the policy bench's processor took 12 % less time per event without
    /// it).
    pub(super) fn watch(&mut self, lead_id: &str, mut w: Watch) {
        let due_ms = self.next_due(&w);
        w.set_due_ms(due_ms);
        let Some((id, _)) = self.state.pool.leads.get_key_value(lead_id) else {
            debug_assert!(false, "a watch of lead {lead_id}, unknown to the view");
            return;
        };
        let id = id.clone();
        if let Some(due) = w.due_ms() {
            self.state.due.insert((due, id.clone()));
        }
        let lead = self
            .state
            .pool
            .leads
            .get_mut(lead_id)
            .expect("looked up above");
        match &mut lead.watch {
            Some(old) => {
                if let Some(due) = old.due_ms() {
                    if w.due_ms() != Some(due) {
                        self.state.due.remove(&(due, id));
                    }
                }
                **old = w;
            }
            None => lead.watch = Some(Box::new(w)),
        }
    }

    /// Changes a watch in place and moves its entry in the due index if
    /// its next moment moved: what `unwatch` then `watch` would do, without
    /// taking the watch out of its lead (a follow-up, on the path of most
    /// events, does this). `change` is given the lead's owner beside the
    /// watch.
    pub(super) fn rewatch(
        &mut self,
        lead_id: &str,
        change: impl FnOnce(&mut Watch, Option<&Name>),
    ) {
        let Some(lead) = self.state.pool.leads.get_mut(lead_id) else {
            return;
        };
        let Some(w) = lead.watch.as_deref_mut() else {
            return;
        };
        change(w, lead.owner.as_ref());
        let (id, lead) = self
            .state
            .pool
            .leads
            .get_key_value(lead_id)
            .expect("looked up above");
        let w = lead.watch.as_deref().expect("looked up above");
        let before = w.due_ms();
        let after = self.next_due(w);
        if after == before {
            return;
        }
        let id = id.clone();
        if let Some(due) = before {
            self.state.due.remove(&(due, id.clone()));
        }
        if let Some(due) = after {
            self.state.due.insert((due, id));
        }
        if let Some(w) = self
            .state
            .pool
            .leads
            .get_mut(lead_id)
            .and_then(|l| l.watch.as_deref_mut())
        {
            w.set_due_ms(after);
        }
    }

    pub(super) fn unwatch(&mut self, lead_id: &str) -> Option<Watch> {
        let (id, lead) = self.state.pool.leads.get_key_value(lead_id)?;
        let due = lead.watch.as_ref()?.due_ms();
        if let Some(due) = due {
            self.state.due.remove(&(due, id.clone()));
        }
        let w = self.state.pool.leads.get_mut(lead_id)?.watch.take()?;
        Some(*w)
    }

    /// Decides what is due for one watch at `now_ms`: the commands, and
    /// what firing them changes in the watch (for [`Fired::apply`]).
    pub(super) fn fire(
        &self,
        lead_id: &str,
        lead: &PolicyLead,
        now_ms: i64,
    ) -> (Vec<LeadCommand>, Fired) {
        let mut out = Vec::new();
        let Some(w) = lead.watch.as_deref() else {
            return (out, Fired::Nothing);
        };
        let owner = lead.owner.as_deref().unwrap_or_default();
        let Some(d) = self.deadline(w) else {
            return (out, Fired::Nothing);
        };
        let version = w.limits.version;
        let deadline = explain::Deadline {
            owner,
            what: d.what,
            limit_ms: d.limit_ms,
            at_ms: d.at_ms,
            assigned_at_ms: w.assigned_at_ms,
            last_follow_up_ms: w.last_follow_up_ms(),
            generation: w.generation,
            reminders_sent: w.reminded.len(),
            rule: d.rule,
            scope: &w.limits.scope,
            version,
        };
        if let Some(lead_ms) = w.limits.reminder_lead_ms {
            let remind_at = self.before(w.limits.calendar.as_ref(), d.at_ms, lead_ms);
            // At most one reminder per rule per assignment. It is sent even
            // when its moment passed together with the deadline (the
            // clock jumped over both): whether a reminder exists must not
            // depend on which clock advanced the policy, or how often.
            if !w.reminded.contains(d.rule) && remind_at <= now_ms {
                let body = CommandBody::RemindFollowUp {
                    owner_id: owner.to_string(),
                    deadline_ms: d.at_ms,
                };
                let explain::Explained { explanation, facts } = explain::remind(&deadline);
                out.push(LeadCommand {
                    command_id: command_id(lead_id, w.generation, d.rule, &body),
                    lead_id: lead_id.to_string(),
                    issued_at_ms: remind_at,
                    causation_event_id: w.cause_event_id.to_string(),
                    rule_id: d.rule.to_string(),
                    rule_version: version,
                    explanation,
                    facts,
                    tenant_id: String::new(),
                    body,
                });
                // The caller indexes the watch again: the recall is due at
                // the deadline, in this advance if it has passed too.
                return (out, Fired::Reminded(d.rule));
            }
        }
        if d.at_ms > now_ms {
            return (out, Fired::Nothing);
        }
        let recalls_after = lead.recall_count + 1;
        let home = lead.pool.to_string();
        // The cold-pool rule of the pool the lead was assigned from, as the
        // version in force has it.
        let (rules, _) = self.policy.lead_rules(&w.pool, &self.lead_facts(lead_id));
        let (to_pool, to_cold) = match (rules.max_recalls, &rules.cold_pool) {
            (Some(max), Some(cold)) if recalls_after >= max => (cold.clone(), true),
            _ => (home, false),
        };
        let body = CommandBody::RecallLead {
            owner_id: owner.to_string(),
            reason: d.reason,
            to_pool: to_pool.clone(),
        };
        let explain::Explained { explanation, facts } =
            explain::recall(&deadline, &to_pool, recalls_after, to_cold);
        out.push(LeadCommand {
            command_id: command_id(lead_id, w.generation, d.rule, &body),
            lead_id: lead_id.to_string(),
            issued_at_ms: d.at_ms,
            causation_event_id: w.cause_event_id.to_string(),
            rule_id: d.rule.to_string(),
            rule_version: version,
            explanation,
            facts,
            tenant_id: String::new(),
            body,
        });
        (out, Fired::Recalled)
    }
}

/// What firing a watch changed in it (see [`Processor::fire`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fired {
    Nothing,
    /// The reminder of this rule was sent.
    Reminded(&'static str),
    /// The recall was commanded: nothing more fires for this generation.
    Recalled,
}

impl Fired {
    pub(super) fn apply(self, w: &mut Watch) {
        match self {
            Fired::Nothing => {}
            Fired::Reminded(rule) => {
                w.reminded.insert(rule);
            }
            Fired::Recalled => w.recalled = true,
        }
    }
}
