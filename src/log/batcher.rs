//! Group commit: collects inputs until the batch is full or has waited long
//! enough, so that many events share one flush (the Kafka intake also
//! appends it as soon as nothing more is buffered). Pure: the caller passes
//! the time in, so the batching decision is testable and the clock stays at
//! the edge.

use super::Input;

pub struct Batcher {
    items: Vec<Input>,
    opened_at_ms: Option<u64>,
    batch_events_max: usize,
    batch_wait_ms_max: u64,
}

impl Batcher {
    pub fn new(batch_events_max: usize, batch_wait_ms_max: u64) -> Batcher {
        assert!(batch_events_max > 0, "a batch must hold at least one event");
        Batcher {
            items: Vec::with_capacity(batch_events_max),
            opened_at_ms: None,
            batch_events_max,
            batch_wait_ms_max,
        }
    }

    /// Adds an input; returns true when the batch should be appended now.
    pub fn push(&mut self, input: Input, now_ms: u64) -> bool {
        assert!(
            self.items.len() < self.batch_events_max,
            "push into a full batch"
        );
        self.opened_at_ms.get_or_insert(now_ms);
        self.items.push(input);
        self.is_ready(now_ms)
    }

    /// True when the batch is full or its oldest input has waited long enough.
    pub fn is_ready(&self, now_ms: u64) -> bool {
        self.items.len() >= self.batch_events_max
            || self
                .opened_at_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= self.batch_wait_ms_max)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes the batch out, leaving an empty one.
    pub fn take(&mut self) -> Vec<Input> {
        self.opened_at_ms = None;
        std::mem::replace(&mut self.items, Vec::with_capacity(self.batch_events_max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rejection;

    fn input() -> Input {
        Input::undecodable(b"x".to_vec(), Rejection::UnknownEventType, None)
    }

    #[test]
    fn a_batch_is_ready_when_full_or_old_enough() {
        let mut b = Batcher::new(3, 10);
        assert!(!b.push(input(), 100));
        assert!(!b.is_ready(109), "waited 9 ms of 10");
        assert!(!b.push(input(), 105));
        assert!(b.is_ready(110), "waited 10 ms");
        assert!(b.push(input(), 106), "full");
        assert_eq!(b.take().len(), 3);
        assert!(
            b.is_empty() && !b.is_ready(1_000),
            "an empty batch never is"
        );
    }
}
