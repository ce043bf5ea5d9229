//! The processor's side of lead scoring: every event goes through the
//! scoring fold (`scoring::fold`), and a score it announces waits in the
//! policy state until its `scored` event is in the log — the engine
//! appends those after each batch's events, in the batch's own write,
//! and at start for what an older version left unpublished
//! (`control::Live::publish_scores`). When that event is
//! folded, the CRM is told through an `UpdateScore` command (id derived
//! from the event's, so a replay decides the same one).

use super::*;

impl Processor {
    /// The scoring fold's part of an event: a score announced goes
    /// pending until its `scored` event is in the log (the engine appends
    /// it after the batch's events: [`scores_to_publish`](Self::scores_to_publish)).
    pub(super) fn score(&mut self, seq: u64, event: &LeadEvent) -> Option<LeadCommand> {
        let lead_id = &event.lead_id;
        match &event.body {
            EventBody::Scored(s) if event.producer == SCORE_PRODUCER => {
                let published = self
                    .state
                    .scores_pending
                    .get(lead_id)
                    .is_some_and(|(id, _)| *id == event.event_id);
                if !published {
                    return None;
                }
                let (_, card) = self.state.scores_pending.remove(lead_id)?;
                return Some(self.update_score(event, s, &card));
            }
            // A converted lead takes no score.
            EventBody::Converted(_) => {
                self.state.scores_pending.remove(lead_id);
            }
            _ => {}
        }
        if let Some(card) = self.state.scorer.apply(&self.policy.scoring, event) {
            let id = format!("{SCORE_PRODUCER}-score-{lead_id}-{seq}");
            self.state
                .scores_pending
                .insert(lead_id.clone(), (id, card));
        }
        None
    }

    /// The CRM's copy of a score the engine published: an `UpdateScore`
    /// with the parts, and the rules and features that moved it.
    fn update_score(
        &self,
        event: &LeadEvent,
        s: &crate::domain::LeadScored,
        card: &scoring::fold::ScoreCard,
    ) -> LeadCommand {
        let body = CommandBody::UpdateScore {
            score: s.score,
            attribute_score: s.attribute_score,
            behaviour_score: s.behaviour_score,
            predictive_score: s.predictive_score,
            model_version: s.model_version.clone(),
            scored_event_id: event.event_id.clone(),
        };
        let explain::Explained { explanation, facts } =
            explain::score_update(card, self.policy.version);
        LeadCommand {
            // One per `scored` event of the engine's: its id names it.
            command_id: command_id(&event.lead_id, 0, &event.event_id, &body),
            lead_id: event.lead_id.clone(),
            issued_at_ms: event.occurred_at_ms,
            causation_event_id: event.event_id.clone(),
            rule_id: RULE_SCORING.to_string(),
            rule_version: self.policy.version,
            explanation,
            facts,
            tenant_id: String::new(),
            body,
        }
    }

    /// Whether scores wait to be published.
    pub fn has_pending_scores(&self) -> bool {
        !self.state.scores_pending.is_empty()
    }

    /// The `scored` events of the scores announced and not yet in the log
    /// (ids derived from the event that moved each score; stamped no
    /// earlier than the lead's latest event), for the engine to append.
    pub fn scores_to_publish(&self, tenant_id: &str) -> Vec<LeadEvent> {
        self.state
            .scores_pending
            .iter()
            .map(|(lead_id, (id, card))| {
                let at = self
                    .state
                    .scorer
                    .latest_at_ms(lead_id)
                    .map_or(card.at_ms, |l| l.max(card.at_ms));
                LeadEvent {
                    event_id: id.clone(),
                    lead_id: lead_id.clone(),
                    occurred_at_ms: at,
                    producer: SCORE_PRODUCER.to_string(),
                    tenant_id: tenant_id.to_string(),
                    body: EventBody::Scored(crate::domain::LeadScored {
                        score: card.combined,
                        attribute_score: card.attribute.unwrap_or(0),
                        behaviour_score: card.behaviour.unwrap_or(0),
                        predictive_score: card.predictive.unwrap_or(0),
                        model_version: card.model_version.clone(),
                    }),
                }
            })
            .collect()
    }

    /// An open lead's score now, with its parts and what moved them.
    pub fn score_card(&self, lead_id: &str) -> Option<scoring::fold::ScoreCard> {
        self.state
            .scorer
            .card(&self.policy.scoring, lead_id, self.state.now_ms)
    }
}
