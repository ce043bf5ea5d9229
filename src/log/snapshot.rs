//! Snapshots: projection and policy checkpoints and the index checkpoint,
//! in their own tree; a cache, never the truth.

use super::*;

impl EventLog {
    /// Stores a projection snapshot covering events up to `covered_seq`.
    pub fn save_snapshot(
        &self,
        name: &str,
        covered_seq: u64,
        bytes: &[u8],
    ) -> Result<(), LogError> {
        assert!(
            covered_seq <= self.last_seq(),
            "a snapshot cannot cover the future"
        );
        let mut v = Vec::with_capacity(8 + bytes.len());
        v.extend_from_slice(&covered_seq.to_be_bytes());
        v.extend_from_slice(bytes);
        self.room_for(v.len() as u64)?;
        self.written(self.snapshots.insert(name.as_bytes(), v))?;
        self.written(self.snapshots.flush())?;
        Ok(())
    }

    /// The latest snapshot by that name: (covered sequence, bytes).
    pub fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        match self.snapshots.get(name.as_bytes())? {
            None => Ok(None),
            Some(v) if v.len() >= 8 => {
                let seq = u64_value(&v[..8]).expect("8 bytes");
                Ok(Some((seq, v[8..].to_vec())))
            }
            Some(_) => Err(LogError::Corrupt(format!("snapshot {name}"))),
        }
    }

    pub fn delete_snapshot(&self, name: &str) -> Result<(), LogError> {
        self.written(self.snapshots.remove(name.as_bytes()))?;
        self.written(self.snapshots.flush())?;
        Ok(())
    }
}
