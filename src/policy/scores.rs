//! The processor's side of lead scoring: every event goes through the
//! scoring fold (`scoring::fold`), and a score it announces waits in the
//! policy state until its `scored` event is in the log — the engine
//! appends those right after each batch (`control::Live::publish_scores`),
//! and at start for what a crash left unpublished.

use super::*;

impl Processor {
    /// The scoring fold's part of an event: a score announced goes
    /// pending until its `scored` event is in the log (the engine appends
    /// it right after the batch: [`scores_to_publish`](Self::scores_to_publish)).
    pub(super) fn score(&mut self, seq: u64, event: &LeadEvent) {
        let lead_id = &event.lead_id;
        match &event.body {
            EventBody::Scored(_) if event.producer == SCORE_PRODUCER => {
                if self
                    .state
                    .scores_pending
                    .get(lead_id)
                    .is_some_and(|(id, _)| *id == event.event_id)
                {
                    self.state.scores_pending.remove(lead_id);
                }
                return;
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
