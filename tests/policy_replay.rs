//! Property: replaying the same log under the same policy yields the
//! identical command sequence, ids included — whether the policy folds the
//! log in one go, or is checkpointed at a random point and restored — and
//! it equals what the engine stored in the outbox while appending.
//!
//! The logs are simulated histories (seeded, with recalls, reassignments
//! and bad inputs) under a policy with every rule switched on.

use leadflow::domain::LeadCommand;
use leadflow::log::{EventLog, Input, LogOptions};
use leadflow::policy::{PolicyFile, Processor};
use leadflow::sim::{BadInput, SimConfig, SimItem, Simulator};
use proptest::prelude::*;

fn policy(sla_h: i64, strategy: &str, cap: u32) -> PolicyFile {
    let h = 3_600_000;
    PolicyFile::parse(&format!(
        "version = 5\n[rules]\nfirst_follow_up_sla_ms = {}\nstale_after_ms = {}\nmax_holding_ms = {}\n\
         reminder_lead_ms = {}\ncooldown_ms = {}\nmax_recalls = 2\ncold_pool = \"cold\"\n\
         daily_assignment_cap = {cap}\n\
         [[pools]]\nname = \"smb\"\nkind = \"auto_assign\"\nstrategy = \"{strategy}\"\n\
         members = [{{ id = \"rep-000\", capacity = 30 }}, {{ id = \"rep-001\", capacity = 20 }},\n\
                    {{ id = \"rep-002\", capacity = 25, active = false }}, {{ id = \"rep-003\", capacity = 40 }}]\n\
         [[pools]]\nname = \"enterprise\"\nkind = \"auto_assign\"\n\
         members = [{{ id = \"rep-004\", capacity = 10 }}, {{ id = \"rep-008\", capacity = 10 }}]\n\
         [[pools]]\nname = \"cold\"\nkind = \"claimable\"\n",
        sla_h * h,
        3 * sla_h * h,
        30 * 24 * h,
        sla_h * h / 2,
        7 * 24 * h
    ))
    .unwrap()
}

fn replay(policy: &PolicyFile, log: &EventLog, checkpoint_at: Option<u64>) -> Vec<LeadCommand> {
    let mut p = Processor::new(policy.clone());
    let mut out = Vec::new();
    for item in log.events_from(1) {
        let (seq, e) = item.unwrap();
        out.extend(p.handle(seq, &e));
        if Some(seq) == checkpoint_at {
            let state = Processor::state_from_bytes(&p.state_to_bytes()).unwrap();
            p = Processor::with_state(policy.clone(), state);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn the_same_log_and_policy_decide_the_same_commands(
        seed in 0u64..1_000,
        leads in 40u64..200,
        sla_h in 1i64..48,
        least_loaded in any::<bool>(),
        cap in 1u32..20,
        checkpoint in 0.0f64..1.0,
    ) {
        let policy = policy(sla_h, if least_loaded { "least_loaded" } else { "round_robin" }, cap);
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), &LogOptions::default()).unwrap();
        let mut engine = Processor::new(policy.clone());
        let items: Vec<Input> = Simulator::new(SimConfig {
            seed,
            leads,
            days: 10,
            reps: 12,
            bad_ratio: 0.02,
            ..SimConfig::default()
        })
        .map(|item| match item {
            SimItem::Event(e) => Input::event(e, None),
            SimItem::Bad { input: BadInput::Invalid(e), .. } => Input::event(*e, None),
            SimItem::Bad { input: BadInput::Garbage(b), .. } => {
                Input::undecodable(b, leadflow::domain::Rejection::UnknownEventType, None)
            }
        })
        .collect();
        // The engine appends in batches, deciding as it goes.
        for batch in items.chunks(97) {
            log.append_with(batch, &[], &mut |seq, e| engine.handle(seq, e)).unwrap();
        }
        let stored: Vec<LeadCommand> = log.commands().map(|c| c.unwrap().1).collect();
        prop_assert!(!stored.is_empty());

        let once = replay(&policy, &log, None);
        let last = log.last_seq();
        let at = 1 + (checkpoint * last as f64) as u64;
        let restored = replay(&policy, &log, Some(at.min(last)));
        prop_assert_eq!(&once, &stored, "a replay decides what the engine stored");
        prop_assert_eq!(&restored, &stored, "a checkpoint changes nothing");
        let mut ids: Vec<&str> = stored.iter().map(|c| c.command_id.as_str()).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        prop_assert_eq!(ids.len(), n, "no command id twice");
    }
}
