//! The layout of a data dir: one log over everything the engine reads (the
//! data dir itself), or **partition stores** — one complete log per
//! events-topic partition, in `DATA_DIR/partitions/N` — when the engine
//! owns partitions statically (`kafka.own_partitions`).
//!
//! A partition store holds exactly one partition's events, rejections,
//! policy state, outboxes and position (plus the events of its tenants that
//! came over HTTP), so it can be opened, checkpointed, exported, dropped or
//! moved alone: after a rescale an engine opens the stores of the
//! partitions it owns now, restores the ones it has none for, and leaves
//! the others alone (`leadflow partitions drop` removes them). Stores are
//! separate sled databases: separate files, no shared lock.

use super::LogError;
use std::path::{Path, PathBuf};

/// The folder of the partition stores inside a data dir.
pub const PARTITIONS_DIR: &str = "partitions";

/// Where partition `partition`'s store lives in `data_dir`.
pub fn partition_dir(data_dir: &Path, partition: i32) -> PathBuf {
    data_dir.join(PARTITIONS_DIR).join(partition.to_string())
}

/// Whether `dir` holds a log (sled keeps its configuration in `conf` and
/// its pages in `db`).
pub fn holds_log(dir: &Path) -> bool {
    dir.join("conf").is_file() && dir.join("db").is_file()
}

/// The partition stores `data_dir` holds, by partition, in order. A folder
/// under `partitions/` whose name is not a partition number, or that holds
/// no log, is not a store and is left out.
pub fn partition_stores(data_dir: &Path) -> Result<Vec<(i32, PathBuf)>, LogError> {
    let root = data_dir.join(PARTITIONS_DIR);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(LogError::Layout(format!(
                "cannot list {}: {e}",
                root.display()
            )))
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::Layout(format!("{}: {e}", root.display())))?;
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|p| *p >= 0)
        else {
            continue;
        };
        if holds_log(&entry.path()) {
            out.push((p, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Where partition stores an engine no longer owns are moved aside.
pub const RETIRED_DIR: &str = "retired";

/// Moves partition `partition`'s store out of the way (an engine that no
/// longer owns the partition, after a rescale): into
/// `partitions/retired/N-AT_MS`, where no command reads it and from where
/// an operator deletes it once the partition's new owner has caught up.
/// Returns where it went.
pub fn retire(data_dir: &Path, partition: i32, at_ms: i64) -> Result<PathBuf, LogError> {
    let from = partition_dir(data_dir, partition);
    let root = data_dir.join(PARTITIONS_DIR).join(RETIRED_DIR);
    let to = root.join(format!("{partition}-{at_ms}"));
    std::fs::create_dir_all(&root)
        .and_then(|()| std::fs::rename(&from, &to))
        .map_err(|e| {
            LogError::Layout(format!(
                "moving partition {partition}'s store {} aside to {}: {e}",
                from.display(),
                to.display()
            ))
        })?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_listed_by_partition_and_other_folders_are_not_stores() {
        // Given a data dir with stores 10 and 2, an empty folder 3 and a
        // folder that is not a partition number.
        let dir = tempfile::tempdir().unwrap();
        for p in [10, 2] {
            let d = partition_dir(dir.path(), p);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("conf"), "").unwrap();
            std::fs::write(d.join("db"), "").unwrap();
        }
        std::fs::create_dir_all(partition_dir(dir.path(), 3)).unwrap();
        std::fs::create_dir_all(dir.path().join(PARTITIONS_DIR).join("tmp")).unwrap();
        // When they are listed, then 2 and 10 come, in partition order.
        let got: Vec<i32> = partition_stores(dir.path())
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, vec![2, 10]);
        // And a retired store is not listed any more, and is kept aside.
        let aside = retire(dir.path(), 2, 7).unwrap();
        assert!(aside.ends_with("partitions/retired/2-7") && aside.join("conf").is_file());
        let got: Vec<i32> = partition_stores(dir.path())
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, vec![10]);
        // And a data dir without stores lists none.
        assert!(partition_stores(&dir.path().join("nothing"))
            .unwrap()
            .is_empty());
    }
}
