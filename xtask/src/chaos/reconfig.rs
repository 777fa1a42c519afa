//! Reconfigurations during the chaos run, at the schedule's times: Leave a
//! group while two serve (its shards move to the other), Join it back when
//! one serves, otherwise Move a shard to the group that does not hold it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftkv_core::{GroupId, ShardId};

use super::cluster::{Cluster, SHARDS};
use super::nemesis::Reconfig;

/// Run `reconfigs` (times from `started`) until `duration`; a line for each.
pub async fn run(cluster: Arc<Cluster>, reconfigs: Vec<Reconfig>, started: Instant, duration: Duration) -> Vec<String> {
    let mut done = Vec::new();
    for r in reconfigs {
        if r.at >= duration {
            break;
        }
        tokio::time::sleep_until((started + r.at).into()).await;
        let at = started.elapsed().as_secs_f64();
        let mut ctrl = cluster.ctrl_clerk(Duration::from_secs(20));
        let config = match ctrl.query(None).await {
            Ok(c) => c,
            Err(e) => {
                done.push(format!("[{at:7.1} s] reconfiguration skipped: the controller did not answer a Query: {e}"));
                continue;
            }
        };
        let joined: Vec<GroupId> = config.groups.keys().copied().collect();
        let other = (r.roll / 100) as usize;
        let (what, result) = if joined.len() == 2 && r.roll % 100 < 25 {
            let g = joined[other % 2];
            (format!("Leave {g}"), ctrl.leave(vec![g]).await)
        } else if let Some((&g, addrs)) = cluster.groups.iter().find(|(g, _)| !joined.contains(g)) {
            (format!("Join {g}"), ctrl.join(BTreeMap::from([(g, addrs.clone())])).await)
        } else {
            let shard = ShardId((other % SHARDS) as u64);
            let owner = config.shards.get(other % SHARDS).copied().unwrap_or_default();
            let to = joined.iter().copied().find(|&g| g != owner).unwrap_or(owner);
            (format!("Move {shard} {to}"), ctrl.move_shard(shard, to).await)
        };
        let line = match result {
            Ok(()) => format!("[{at:7.1} s] reconfiguration: {what} (from config {}): done", config.num),
            Err(e) => format!("[{at:7.1} s] reconfiguration: {what} (from config {}): no answer: {e}", config.num),
        };
        println!("{line}");
        done.push(line);
    }
    done
}
