//! The policy's inputs besides the events, kept in the log in order with
//! them: each policy version loaded and each wall-clock tick that moved the
//! policy's time (see `policy::PolicyInput`). With them, the log alone
//! determines every command: a replay, a backtest or a restart after a
//! crash applies each input exactly where it applied live.
//!
//! An input is keyed by the last event sequence before it and a counter
//! (`t + after_seq + n`). Ticks come every 100 ms while the engine is idle,
//! so consecutive ticks with no event or other input between them share
//! one key, whose time moves forward: replaying the latest of them is the
//! same as replaying each (a tick fires everything due by its time, and
//! time never goes back). Stored as JSON, so that a policy file recorded by
//! an older build still reads after fields are added.

use super::keys::{input_key, parse_input_key, POLICY_INPUT};
use super::{EventLog, LogError};
use crate::domain::LeadCommand;
use crate::policy::PolicyInput;

impl EventLog {
    /// The key the next policy input gets: after the last event, and
    /// after the inputs already there, except that a tick following a
    /// tick takes the earlier one's key (and moves its time on).
    pub fn next_policy_input_key(&self, input: &PolicyInput) -> Result<(u64, u32), LogError> {
        let after = self.last_seq();
        let last = self
            .tree
            .scan_prefix(&input_key(after, 0)[..9])
            .next_back()
            .transpose()?;
        let Some((k, v)) = last else {
            return Ok((after, 0));
        };
        let key =
            parse_input_key(&k).ok_or_else(|| LogError::Corrupt("policy input key".into()))?;
        let was_tick = matches!(decode(&v, key)?, PolicyInput::Tick { .. });
        if was_tick && matches!(input, PolicyInput::Tick { .. }) {
            Ok(key)
        } else {
            Ok((key.0, key.1 + 1))
        }
    }

    /// Stores a policy input under `key` (from
    /// [`next_policy_input_key`](Self::next_policy_input_key)), with the
    /// commands it made, dropping any whose id the log already holds. With
    /// commands, or for a version, the write is flushed before this
    /// returns (the commands may be published next); a bare tick rides
    /// along with the next flush. Returns the commands stored.
    pub fn store_policy_input(
        &mut self,
        key: (u64, u32),
        input: &PolicyInput,
        commands: Vec<LeadCommand>,
    ) -> Result<Vec<(u64, LeadCommand)>, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let mut batch = sled::Batch::default();
        let bytes = serde_json::to_vec(input).expect("policy inputs serialise");
        let bytes_len = bytes.len() as u64;
        batch.insert(&input_key(key.0, key.1), bytes);
        let super::outbox::StagedCommands {
            stored,
            next_cseq,
            bytes: command_bytes,
        } = self.stage_new_commands(&mut batch, commands)?;
        // A manager's action is answered once durable, commands or not.
        let flush = !stored.is_empty()
            || matches!(
                input,
                PolicyInput::Version { .. } | PolicyInput::Manager { .. }
            );
        let staged_bytes = command_bytes + bytes_len;
        let result = if flush {
            self.write(batch, staged_bytes)
        } else {
            self.apply(batch, staged_bytes)
        };
        if let Err(e) = result {
            self.poisoned = true;
            return Err(e);
        }
        self.commands_stored(
            next_cseq,
            stored
                .iter()
                .map(|(cseq, c)| (c.command_id.as_str(), *cseq)),
        );
        Ok(stored)
    }

    /// The policy inputs with keys at or after `from`, in order.
    pub fn policy_inputs_from(
        &self,
        from: (u64, u32),
    ) -> impl Iterator<Item = Result<((u64, u32), PolicyInput), LogError>> + '_ {
        let start = input_key(from.0, from.1);
        let end = input_key(u64::MAX, u32::MAX);
        self.tree.range(start..=end).map(|kv| {
            let (k, v) = kv?;
            let key =
                parse_input_key(&k).ok_or_else(|| LogError::Corrupt("policy input key".into()))?;
            Ok((key, decode(&v, key)?))
        })
    }

    /// Whether the log holds any policy input (a log written before they
    /// were recorded holds none).
    pub fn has_policy_inputs(&self) -> Result<bool, LogError> {
        Ok(self
            .tree
            .scan_prefix([POLICY_INPUT])
            .next()
            .transpose()?
            .is_some())
    }
}

fn decode(bytes: &[u8], key: (u64, u32)) -> Result<PolicyInput, LogError> {
    serde_json::from_slice(bytes)
        .map_err(|e| LogError::Corrupt(format!("policy input {key:?}: {e}")))
}
