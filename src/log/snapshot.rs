//! Snapshots: projection and policy checkpoints and the index checkpoint,
//! in their own tree; a cache, never the truth.
//!
//! A snapshot is stored as its covered sequence (u64, big-endian) and its
//! bytes, which since 2026-11-28 are one zstd frame when the log compresses
//! (`log.compression`): a policy's snapshot compresses about 3× (its ids
//! and rule names repeat), and a smaller value is less for sled to copy
//! and write. The top bit of the sequence says which: no sequence reaches
//! it, so a snapshot saved by an older build (never compressed, that bit
//! clear) reads as it is, whatever its bytes begin with.

use super::*;

/// Set in a stored snapshot's sequence when its bytes are a zstd frame.
const SNAPSHOT_COMPRESSED: u64 = 1 << 63;

/// Largest snapshot read back once decompressed: a frame claiming more is
/// corrupt and is refused before anything is allocated for it. Far above
/// any snapshot a data dir this engine runs holds (a million open
/// assignments take ~300 MB raw).
const SNAPSHOT_BYTES_MAX: u64 = 64 << 30;

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
        assert!(
            covered_seq < SNAPSHOT_COMPRESSED,
            "sequences stay below 2^63"
        );
        let (seq, body) = match self.compression_level {
            Some(level) => (
                covered_seq | SNAPSHOT_COMPRESSED,
                std::borrow::Cow::Owned(segment::compress(bytes, level)),
            ),
            None => (covered_seq, std::borrow::Cow::Borrowed(bytes)),
        };
        let mut v = Vec::with_capacity(8 + body.len());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&body);
        self.room_for(v.len() as u64)?;
        self.written(self.snapshots.insert(name.as_bytes(), v))?;
        self.written(self.snapshots.flush())?;
        Ok(())
    }

    /// The latest snapshot by that name: (covered sequence, bytes).
    pub fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        let Some(v) = self.snapshots.get(name.as_bytes())? else {
            return Ok(None);
        };
        let seq = v
            .get(..8)
            .and_then(u64_value)
            .ok_or_else(|| LogError::Corrupt(format!("snapshot {name}")))?;
        if seq & SNAPSHOT_COMPRESSED == 0 {
            return Ok(Some((seq, v[8..].to_vec())));
        }
        // A snapshot is a cache: a frame that does not decompress is one
        // that does not decode, ignored (the caller rebuilds), not an error
        // that stops the engine.
        match segment::decompress(&v[8..], SNAPSHOT_BYTES_MAX) {
            Ok(bytes) => Ok(Some((seq & !SNAPSHOT_COMPRESSED, bytes))),
            Err(why) => {
                tracing::warn!(name, "unreadable snapshot ({why}); ignored");
                Ok(None)
            }
        }
    }

    /// The bytes the snapshot by that name takes as stored (its sequence,
    /// and its bytes compressed or not), if there is one.
    pub fn snapshot_stored_bytes(&self, name: &str) -> Result<Option<u64>, LogError> {
        Ok(self.snapshots.get(name.as_bytes())?.map(|v| v.len() as u64))
    }

    pub fn delete_snapshot(&self, name: &str) -> Result<(), LogError> {
        self.written(self.snapshots.remove(name.as_bytes()))?;
        self.written(self.snapshots.flush())?;
        Ok(())
    }
}
