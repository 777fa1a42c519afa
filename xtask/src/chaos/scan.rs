//! After the run, with every server stopped: open each replica's durable
//! log as the server would, read all of it, and check it — the store opens
//! (its checksums hold), indices are contiguous, terms never go down along
//! the log, the hard state's commit is within it, and where two replicas of
//! a group hold the same index in the same term, or both count it
//! committed, they hold the same entry.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use raftkv_core::raft::Entry;
use raftkv_core::storage::LogStore;
use raftkv_core::{GroupId, LogIndex, NodeId};

/// One replica's log as read back.
pub struct ReplicaLog {
    pub name: String,
    pub commit: LogIndex,
    pub entries: BTreeMap<u64, Entry>,
}

async fn open(storage: &str, dir: &Path, group: GroupId, me: NodeId) -> Result<Arc<dyn LogStore>> {
    Ok(match storage {
        "redb" => {
            let s = raftkv_storage_redb::RedbStorage::open(dir, raftkv_storage_redb::RedbOptions::default()).await?;
            Arc::new(s.member(group, me).await?.0)
        }
        "sqlite" => {
            let s = raftkv_storage_sqlite::SqliteStorage::open(dir, raftkv_storage_sqlite::SqliteOptions::default())
                .await?;
            Arc::new(s.member(group, me).await?.0)
        }
        other => bail!("storage {other} keeps nothing on disk to scan"),
    })
}

/// Read back one replica's log and check it on its own.
pub async fn read(storage: &str, name: &str, dir: &Path, group: GroupId, me: NodeId) -> Result<ReplicaLog> {
    let log =
        open(storage, dir, group, me).await.with_context(|| format!("{name}: opening its log in {}", dir.display()))?;
    let state = log.state().await.with_context(|| format!("{name}: reading its log state"))?;
    let entries = if state.first_index <= state.last_index {
        log.entries(state.first_index, state.last_index.next())
            .await
            .with_context(|| format!("{name}: reading its log"))?
    } else {
        Vec::new()
    };
    let mut prev: Option<&Entry> = None;
    for e in &entries {
        if let Some(p) = prev {
            if e.index != p.index.next() {
                bail!("{name}: index {} follows {}", e.index, p.index);
            }
            if e.term < p.term {
                bail!("{name}: term goes down from {} to {} at index {}", p.term, e.term, e.index);
            }
        }
        prev = Some(e);
    }
    if state.hard_state.commit > state.last_index {
        bail!("{name}: commit {} is past its last index {}", state.hard_state.commit, state.last_index);
    }
    Ok(ReplicaLog {
        name: name.to_string(),
        commit: state.hard_state.commit,
        entries: entries.into_iter().map(|e| (e.index.0, e)).collect(),
    })
}

/// Check the replicas of one group against each other; the number of
/// entries compared.
pub fn compare(replicas: &[ReplicaLog]) -> Result<u64> {
    let mut compared = 0;
    for (i, a) in replicas.iter().enumerate() {
        for b in &replicas[i + 1..] {
            let committed = a.commit.min(b.commit).0;
            for (idx, ea) in &a.entries {
                let Some(eb) = b.entries.get(idx) else { continue };
                compared += 1;
                if (ea.term == eb.term || *idx <= committed) && ea != eb {
                    bail!(
                        "{} and {} disagree at index {idx} (terms {} and {}; both committed through {committed})",
                        a.name,
                        b.name,
                        ea.term,
                        eb.term
                    );
                }
            }
        }
    }
    Ok(compared)
}
