//! The live simulator of `leadflow demo`: the upstream marketing system
//! (creating and scoring leads at a steady rate) and the downstream CRM
//! (carrying out the engine's commands, and its reps following leads up,
//! converting them or letting them go).
//!
//! It is a pure state machine driven by the caller's clock: `tick(now_ms)`
//! returns the events due by then and `on_command` the events a command
//! causes. Model time runs faster than the wall: one model hour lasts
//! `hour_ms` wall milliseconds, so reps' habits (first follow-up after 1 to
//! 30 hours, …) play out in seconds. Event times are the caller's wall-clock
//! milliseconds: this is the edge where the wall clock enters the system.
//!
//! Some reps neglect some leads (no follow-up at all); the engine's deadline
//! rules recall those, and the CRM carries the recall commands out. Reps
//! also give leads up on their own (`released` recalls).

use super::model::{self, Model, FIRST_FOLLOW_UP_LIMIT_MS, RECALLS_MAX, SIZES};
use crate::domain::time::MS_PER_HOUR;
use crate::domain::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Settings of the live simulator.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub seed: u64,
    pub leads_per_s: u32,
    pub reps: u32,
    /// Wall milliseconds per model hour.
    pub hour_ms: u64,
    /// Garbage messages per new lead, published besides the events (to
    /// show the dead-letter path).
    pub garbage_ratio: f64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            seed: 42,
            leads_per_s: 50,
            reps: 16,
            hour_ms: 50,
            garbage_ratio: 0.002,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Score,
    /// A follow-up by the owner of this assignment generation.
    FollowUp {
        generation: u32,
        left: u32,
    },
    Convert {
        generation: u32,
    },
    /// The owner gives the lead up.
    Release {
        generation: u32,
    },
}

struct LiveLead {
    channel: usize,
    size: usize,
    score: u32,
    owner: Option<usize>,
    generation: u32,
    assigned_at_ms: u64,
    recalls: u32,
}

/// What was published, by kind, for the demo's summary.
#[derive(Clone, Debug, Default)]
pub struct LiveCounts {
    pub created: u64,
    pub assigned: u64,
    pub followed_up: u64,
    pub converted: u64,
    pub recalled: u64,
    pub reminders: u64,
    pub garbage: u64,
}

/// One message to publish: a lead event, or garbage bytes keyed by a lead.
pub enum Outgoing {
    Event(Box<LeadEvent>),
    Garbage { key: String, bytes: Vec<u8> },
}

pub struct LiveSim {
    config: LiveConfig,
    model: Model,
    rng: ChaCha8Rng,
    leads: HashMap<String, LiveLead>,
    reps_by_id: HashMap<String, usize>,
    /// Due actions in wall milliseconds: (due, tie-break, lead, action).
    schedule: BinaryHeap<Reverse<(u64, u64, String, Action)>>,
    next_lead: u64,
    next_event: u64,
    started_ms: Option<u64>,
    counts: LiveCounts,
}

/// Most actions one tick performs; the rest wait for the next tick.
const ACTIONS_PER_TICK_MAX: usize = 10_000;

impl LiveSim {
    pub fn new(config: LiveConfig) -> LiveSim {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let model = Model::new(config.reps, &mut rng);
        let reps_by_id = model
            .reps
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        LiveSim {
            config,
            model,
            rng,
            leads: HashMap::new(),
            reps_by_id,
            schedule: BinaryHeap::new(),
            next_lead: 0,
            next_event: 0,
            started_ms: None,
            counts: LiveCounts::default(),
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn counts(&self) -> &LiveCounts {
        &self.counts
    }

    /// The policy the demo runs the engine with: each pool auto-assigns to
    /// the reps who work it; leads without a first follow-up within 36
    /// model hours, or without any follow-up for 4 model days, are recalled
    /// (with a reminder 12 model hours before); the third recall sends a
    /// lead to the claimable `cold` pool. Durations are in event time, which
    /// in the demo is the wall clock, so model hours are scaled by `hour_ms`.
    pub fn demo_policy(&self, capacity: u32) -> crate::policy::PolicyFile {
        use crate::policy::{Member, PolicyFile, PoolKind, PoolPolicy, Rules, Strategy};
        let hours = |h: i64| h * self.config.hour_ms as i64;
        let mut pools: Vec<PoolPolicy> = model::POOLS
            .iter()
            .enumerate()
            .map(|(i, name)| PoolPolicy {
                name: name.to_string(),
                kind: PoolKind::AutoAssign,
                strategy: if i == 0 {
                    Strategy::RoundRobin
                } else {
                    Strategy::LeastLoaded
                },
                members: self
                    .model
                    .reps
                    .iter()
                    .filter(|r| r.pool == i)
                    .map(|r| Member {
                        id: r.id.clone(),
                        capacity,
                        active: true,
                        regions: Vec::new(),
                        industries: Vec::new(),
                    })
                    .collect(),
                calendar: None,
                rules: Default::default(),
                when: Vec::new(),
                claim: Default::default(),
            })
            .collect();
        pools.push(PoolPolicy {
            name: "cold".into(),
            kind: PoolKind::Claimable,
            strategy: Strategy::RoundRobin,
            members: Vec::new(),
            calendar: None,
            rules: Default::default(),
            when: Vec::new(),
            claim: Default::default(),
        });
        PolicyFile {
            version: 1,
            effective_from_ms: None,
            rules: Rules {
                first_follow_up_sla_ms: Some(hours(36)),
                stale_after_ms: Some(hours(96)),
                reminder_lead_ms: Some(hours(12)),
                cooldown_ms: Some(hours(24 * 7)),
                max_recalls: Some(3),
                cold_pool: Some("cold".into()),
                ..Rules::default()
            },
            pools,
            time_zone: String::new(),
            scoring: Default::default(),
            duplicates: Default::default(),
            tenants: Default::default(),
        }
    }

    /// Model milliseconds to wall milliseconds.
    fn wall(&self, model_ms: f64) -> u64 {
        (model_ms / MS_PER_HOUR as f64 * self.config.hour_ms as f64).max(1.0) as u64
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.rng.gen::<f64>()).ln()
    }

    fn schedule_at(&mut self, due_ms: u64, lead: &str, action: Action) {
        self.next_event += 1;
        self.schedule
            .push(Reverse((due_ms, self.next_event, lead.to_string(), action)));
    }

    fn event(&mut self, lead: &str, now_ms: u64, body: EventBody) -> Outgoing {
        self.next_event += 1;
        match &body {
            EventBody::Created(_) => self.counts.created += 1,
            EventBody::Assigned(_) => self.counts.assigned += 1,
            EventBody::FollowedUp(_) => self.counts.followed_up += 1,
            EventBody::Converted(_) => self.counts.converted += 1,
            EventBody::Recalled(_) => self.counts.recalled += 1,
            EventBody::Scored(_)
            | EventBody::CommandDeclined(_)
            | EventBody::ClaimRequested(_)
            | EventBody::Moved(_)
            | EventBody::Engaged(_) => {}
        }
        Outgoing::Event(Box::new(LeadEvent {
            event_id: format!("live-{}-{}", self.config.seed, self.next_event),
            lead_id: lead.to_string(),
            occurred_at_ms: now_ms as i64,
            producer: "leadflow-demo".into(),
            tenant_id: String::new(),
            body,
        }))
    }

    /// Everything due by `now_ms`: new leads at the configured rate, scores,
    /// follow-ups, conversions, releases.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Outgoing> {
        let started = *self.started_ms.get_or_insert(now_ms);
        let mut out = Vec::new();
        let due_leads = (now_ms - started) * u64::from(self.config.leads_per_s) / 1000;
        while self.next_lead < due_leads && out.len() < ACTIONS_PER_TICK_MAX {
            let e = self.create(now_ms);
            out.push(e);
            // Now and then a corrupt message besides (never instead of an
            // event, so the lifecycle stays whole).
            if self.rng.gen_bool(self.config.garbage_ratio.clamp(0.0, 1.0)) {
                self.counts.garbage += 1;
                out.push(Outgoing::Garbage {
                    key: format!("garbage-{}", self.next_lead),
                    bytes: vec![0xff, 0x00, 0x13, 0x37],
                });
            }
        }
        while out.len() < ACTIONS_PER_TICK_MAX {
            match self.schedule.peek() {
                Some(Reverse((due, ..))) if *due <= now_ms => {}
                _ => break,
            }
            let Reverse((_, _, lead, action)) = self.schedule.pop().expect("peeked");
            out.extend(self.act(&lead, action, now_ms));
        }
        out
    }

    fn create(&mut self, now_ms: u64) -> Outgoing {
        let n = self.next_lead;
        self.next_lead += 1;
        let id = format!("lead-live-{}-{n:07}", self.config.seed);
        let channel = self.model.pick_channel(&mut self.rng);
        let size = self.model.pick_size(&mut self.rng);
        let pool = model::pool_for_size(size);
        let c = &self.model.channels[channel];
        let cost = (c.cost_minor_units as f64 * self.rng.gen_range(0.7..1.3)) as i64;
        let body = EventBody::Created(LeadCreated {
            channel: c.name.to_string(),
            campaign: format!("{}-{}", c.name, n % 3),
            pool: model::POOLS[pool].to_string(),
            region: model::REGIONS[self.rng.gen_range(0..model::REGIONS.len())].to_string(),
            industry: model::INDUSTRIES[self.rng.gen_range(0..model::INDUSTRIES.len())].to_string(),
            company_size: SIZES[size].name.to_string(),
            acquisition_cost: Money::new(cost, self.model.currency),
            contact_fingerprint: format!("{:016x}", self.rng.gen::<u64>()),
            attributes: Default::default(),
        });
        let quality = c.quality;
        self.leads.insert(
            id.clone(),
            LiveLead {
                channel,
                size,
                score: ((quality * 70.0) + self.rng.gen_range(0.0..30.0)).min(100.0) as u32,
                owner: None,
                generation: 0,
                assigned_at_ms: 0,
                recalls: 0,
            },
        );
        let score_after_ms = self.rng.gen_range(0.05..0.5) * MS_PER_HOUR as f64;
        let score_in = self.wall(score_after_ms);
        self.schedule_at(now_ms + score_in, &id, Action::Score);
        self.event(&id, now_ms, body)
    }

    /// The CRM carries out a command: an assignment becomes a `LeadAssigned`
    /// event right away and the new owner's habits are scheduled.
    pub fn on_command(&mut self, command: &LeadCommand, now_ms: u64) -> Vec<Outgoing> {
        let (owner_id, pool) = match &command.body {
            CommandBody::AssignLead { owner_id, pool } => (owner_id, pool),
            CommandBody::RecallLead {
                owner_id,
                reason,
                to_pool,
            } => return self.carry_out_recall(command, owner_id, *reason, to_pool, now_ms),
            CommandBody::RemindFollowUp { .. } => {
                self.counts.reminders += 1;
                return Vec::new();
            }
            // The simulated CRM carries out every assignment at once, so
            // none ever expires; its reps never claim; a score it would
            // only write down.
            CommandBody::CancelCommand { .. }
            | CommandBody::DeclineClaim { .. }
            | CommandBody::MoveLead { .. }
            | CommandBody::UpdateScore { .. } => return Vec::new(),
        };
        let Some(&rep) = self.reps_by_id.get(owner_id) else {
            return Vec::new();
        };
        let Some(lead) = self.leads.get_mut(&command.lead_id) else {
            return Vec::new();
        };
        if lead.owner.is_some() {
            // Already carried out (a redelivered command): dedupe.
            return Vec::new();
        }
        lead.owner = Some(rep);
        lead.generation += 1;
        lead.assigned_at_ms = now_ms;
        let generation = lead.generation;
        let lead_id = command.lead_id.clone();
        let first_ms = self.exp(self.model.reps[rep].first_follow_up_mean_ms);
        if first_ms as i64 > FIRST_FOLLOW_UP_LIMIT_MS {
            // Neglected: the rep never calls. The engine's deadline rules
            // recall the lead; the CRM carries the recall out.
        } else {
            let at = now_ms + self.wall(first_ms);
            let left = self.rng.gen_range(1..=3);
            self.schedule_at(at, &lead_id, Action::FollowUp { generation, left });
        }
        let body = EventBody::Assigned(LeadAssigned {
            owner_id: owner_id.clone(),
            pool: pool.clone(),
            method: AssignmentMethod::Rule,
            command_id: command.command_id.clone(),
        });
        vec![self.event(&lead_id, now_ms, body)]
    }

    /// The CRM recalls the lead as commanded, if the rep still holds it (a
    /// redelivered or overtaken command is ignored).
    fn carry_out_recall(
        &mut self,
        command: &LeadCommand,
        owner_id: &str,
        reason: RecallReason,
        to_pool: &str,
        now_ms: u64,
    ) -> Vec<Outgoing> {
        let Some(lead) = self.leads.get_mut(&command.lead_id) else {
            return Vec::new();
        };
        let holds = lead
            .owner
            .is_some_and(|r| self.model.reps[r].id == owner_id);
        if !holds {
            return Vec::new();
        }
        lead.owner = None;
        lead.recalls += 1;
        let lead_id = command.lead_id.clone();
        let body = EventBody::Recalled(LeadRecalled {
            previous_owner_id: owner_id.to_string(),
            reason,
            to_pool: to_pool.to_string(),
            command_id: command.command_id.clone(),
            rule_id: command.rule_id.clone(),
        });
        vec![self.event(&lead_id, now_ms, body)]
    }

    fn act(&mut self, lead_id: &str, action: Action, now_ms: u64) -> Vec<Outgoing> {
        let Some(lead) = self.leads.get(lead_id) else {
            return Vec::new();
        };
        let current = lead.generation;
        let owner = lead.owner;
        let stale = |g: u32| g != current || owner.is_none();
        match action {
            Action::Score => {
                let s = lead.score;
                let body = EventBody::Scored(LeadScored {
                    score: s,
                    attribute_score: s,
                    behaviour_score: s / 2,
                    predictive_score: s,
                    model_version: "demo-1".into(),
                });
                vec![self.event(lead_id, now_ms, body)]
            }
            Action::FollowUp { generation, left } => {
                if stale(generation) {
                    return Vec::new();
                }
                let rep = owner.expect("checked");
                let (channel, score) = (lead.channel, lead.score);
                let first_delay = (now_ms - lead.assigned_at_ms) as f64
                    / self.config.hour_ms as f64
                    * MS_PER_HOUR as f64;
                let body = EventBody::FollowedUp(LeadFollowedUp {
                    owner_id: self.model.reps[rep].id.clone(),
                    kind: FollowUpKind::Call,
                    outcome: "talked".into(),
                });
                let gap = self.exp(self.model.reps[rep].follow_up_gap_mean_ms);
                let at = now_ms + self.wall(gap);
                if left > 1 {
                    self.schedule_at(
                        at,
                        lead_id,
                        Action::FollowUp {
                            generation,
                            left: left - 1,
                        },
                    );
                } else {
                    let p =
                        self.model
                            .conversion_probability(channel, score, rep, first_delay as i64);
                    // Spread over the follow-ups of this generation.
                    let next = if self.rng.gen_bool((p * 2.0).clamp(0.0, 1.0)) {
                        Action::Convert { generation }
                    } else {
                        Action::Release { generation }
                    };
                    self.schedule_at(at, lead_id, next);
                }
                vec![self.event(lead_id, now_ms, body)]
            }
            Action::Convert { generation } => {
                if stale(generation) {
                    return Vec::new();
                }
                let rep = owner.expect("checked");
                let deal = (SIZES[lead.size].deal_minor_units as f64 * self.rng.gen_range(0.5..1.5))
                    as i64;
                let lead = self.leads.get_mut(lead_id).expect("present");
                lead.owner = None;
                lead.generation = u32::MAX; // Terminal: nothing more happens.
                let body = EventBody::Converted(LeadConverted {
                    owner_id: self.model.reps[rep].id.clone(),
                    deal_value: Money::new(deal, self.model.currency),
                    customer_id: format!("cust-{lead_id}"),
                    expected_lifetime_value: Some(Money::new(deal * 3, self.model.currency)),
                });
                vec![self.event(lead_id, now_ms, body)]
            }
            Action::Release { generation } => {
                if stale(generation) {
                    return Vec::new();
                }
                let rep = owner.expect("checked");
                let lead = self.leads.get_mut(lead_id).expect("present");
                if lead.recalls >= RECALLS_MAX {
                    // Worked enough: the rep keeps it on the back burner.
                    return Vec::new();
                }
                lead.recalls += 1;
                lead.owner = None;
                let body = EventBody::Recalled(LeadRecalled {
                    previous_owner_id: self.model.reps[rep].id.clone(),
                    reason: RecallReason::Released,
                    to_pool: String::new(),
                    command_id: String::new(),
                    rule_id: String::new(),
                });
                vec![self.event(lead_id, now_ms, body)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sim: &mut LiveSim, from_ms: u64, to_ms: u64) -> Vec<LeadEvent> {
        let mut out = Vec::new();
        for now in (from_ms..=to_ms).step_by(10) {
            for o in sim.tick(now) {
                if let Outgoing::Event(e) = o {
                    out.push(*e);
                }
            }
        }
        out
    }

    #[test]
    fn leads_arrive_at_the_configured_rate_and_are_scored() {
        let mut sim = LiveSim::new(LiveConfig {
            leads_per_s: 100,
            garbage_ratio: 0.0,
            ..LiveConfig::default()
        });
        let events = run(&mut sim, 1_000, 3_000);
        let created = events
            .iter()
            .filter(|e| matches!(e.body, EventBody::Created(_)))
            .count();
        assert_eq!(created, 200, "2 s at 100 leads/s");
        assert!(events
            .iter()
            .any(|e| matches!(e.body, EventBody::Scored(_))));
    }

    #[test]
    fn an_assign_command_is_carried_out_once_and_the_owner_works_the_lead() {
        let mut sim = LiveSim::new(LiveConfig {
            leads_per_s: 1,
            garbage_ratio: 0.0,
            ..LiveConfig::default()
        });
        let created = run(&mut sim, 0, 1_000);
        let lead = created[0].lead_id.clone();
        let rep = sim.model().reps[0].id.clone();
        let command = LeadCommand {
            command_id: "cmd-1".into(),
            lead_id: lead.clone(),
            issued_at_ms: 1_000,
            causation_event_id: created[0].event_id.clone(),
            rule_id: "r".into(),
            rule_version: 1,
            explanation: String::new(),
            facts: Default::default(),
            tenant_id: String::new(),
            body: CommandBody::AssignLead {
                owner_id: rep.clone(),
                pool: "smb".into(),
            },
        };
        let out = sim.on_command(&command, 1_000);
        assert!(matches!(
            &out[..],
            [Outgoing::Event(e)]
                if matches!(&e.body, EventBody::Assigned(a) if a.owner_id == rep && a.command_id == "cmd-1")
        ));
        assert!(
            sim.on_command(&command, 1_001).is_empty(),
            "redelivery deduped"
        );
        // Within a few model days the rep follows up, converts or lets go.
        let until = 1_000 + 200 * sim.config.hour_ms;
        let later = run(&mut sim, 1_010, until);
        assert!(later.iter().any(|e| e.lead_id == lead
            && matches!(
                e.body,
                EventBody::FollowedUp(_) | EventBody::Converted(_) | EventBody::Recalled(_)
            )));
    }
}
