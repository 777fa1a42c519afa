//! A randomized nemesis for the sharded store: concurrent clients on a few
//! keys while groups join, leave and shards move, servers, whole groups and
//! controllers crash and restart, partitions come and go, the network
//! turns unreliable and an outsider forges shard deletes (naming any group,
//! at configurations around the current one); then everything heals. Checked: the history is
//! linearizable, no append lands twice, no acknowledged append is lost, and
//! at every step no two groups' leaders serve one shard in the same
//! configuration, each serving only what that configuration gives it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{sleep, Instant};

use super::lab5_shardkv::key;
use super::shard_cluster::{gid, server_name, ShardCluster, ShardClusterConfig};
use crate::linearizability::{check, KvInput, Operation, Outcome, Verdict, DEFAULT_BUDGET};
use raftkv_core::api::{DeleteShardsRequest, ServiceClient, ServiceRequest, ShardConfig};
use raftkv_core::rng::DetRng;
use raftkv_core::types::{ConfigNum, GroupId, NodeId, ShardId};

/// What one run did.
#[derive(Clone, Debug, Default)]
pub struct ShardNemesisReport {
    /// The seed.
    pub seed: u64,
    /// Client operations completed.
    pub operations: u64,
    /// Configurations the controller published.
    pub configs: u64,
    /// Joins, leaves and moves.
    pub reconfigurations: u64,
    /// Server, group and controller crashes.
    pub crashes: u64,
    /// Partitions made.
    pub partitions: u64,
    /// Forged `DeleteShards` requests sent by an outsider.
    pub forgeries: u64,
    /// Whether the linearizability check decided (`false`: budget ran out; the other checks still ran).
    pub decided: bool,
    /// Virtual seconds the run took.
    pub virtual_secs: f64,
}

const GROUPS: usize = 3;
const KEYS: usize = 8;
const CLIENTS: usize = 5;
const FAULT_TIME: Duration = Duration::from_secs(20);

/// Run the nemesis with `seed`; a failure is an `Err` naming the seed.
pub fn shard_nemesis(seed: u64) -> Result<ShardNemesisReport, String> {
    super::run_seed("shard_nemesis", seed, scenario)
}

/// Leaders' view at this moment: no shard served by two groups in one
/// configuration, and each serving only shards its configuration gives it.
async fn check_ownership(c: &mut ShardCluster, configs: &mut BTreeMap<ConfigNum, ShardConfig>, seed: u64) {
    let mut serving: BTreeMap<(ConfigNum, usize), GroupId> = BTreeMap::new();
    for g in 0..GROUPS {
        let Some(l) = c.group_leader(g).await else { continue };
        let Some(server) = c.server(g, l) else { continue };
        let (num, served): (ConfigNum, Vec<usize>) = {
            let state = server.state().read();
            let served = state
                .shard_status()
                .into_iter()
                .filter(|s| {
                    matches!(s.state, raftkv_core::api::ShardState::Serving | raftkv_core::api::ShardState::Collecting)
                })
                .map(|s| s.shard.0 as usize)
                .collect();
            (state.config().num, served)
        };
        if num == ConfigNum(0) {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = configs.entry(num) {
            slot.insert(c.query_num(num).await);
        }
        let config = &configs[&num];
        for s in served {
            assert_eq!(
                config.shards[s],
                gid(g),
                "seed {seed}: group {} serves shard {s} at config {num}, which gives it to {}",
                gid(g),
                config.shards[s]
            );
            if let Some(other) = serving.insert((num, s), gid(g)) {
                panic!("seed {seed}: groups {other} and {} both serve shard {s} at config {num}", gid(g));
            }
        }
    }
}

/// No append token twice in any value; every acknowledged append after the
/// key's last overwrite is present.
fn check_values(history: &[Operation], finals: &BTreeMap<Bytes, Option<Bytes>>, seed: u64) {
    for (k, v) in finals {
        let v = v.as_deref().unwrap_or_default();
        let text = String::from_utf8_lossy(v);
        let tokens: Vec<&str> = text.split(';').filter(|t| !t.is_empty()).collect();
        let unique: BTreeSet<&str> = tokens.iter().copied().collect();
        assert_eq!(unique.len(), tokens.len(), "seed {seed}: key {k:?}: an append was applied twice: {text}");
        let ops: Vec<&Operation> = history.iter().filter(|o| o.key == *k).collect();
        let last_overwrite = ops
            .iter()
            .filter(|o| matches!(o.input, KvInput::Put(_) | KvInput::Delete))
            .map(|o| match o.outcome {
                Outcome::Returned { at, .. } => at,
                Outcome::Unknown => u64::MAX,
            })
            .max();
        for o in &ops {
            if let (KvInput::Append(token), Outcome::Returned { .. }) = (&o.input, &o.outcome) {
                if last_overwrite.is_none_or(|t| o.call > t) {
                    let token = String::from_utf8_lossy(token);
                    assert!(
                        text.contains(token.as_ref()),
                        "seed {seed}: key {k:?}: acknowledged append {token} is lost: {text}"
                    );
                }
            }
        }
    }
}

/// A forged delete and the server (group, index) to send it to: most often
/// of a shard some server holds frozen, in transit, claiming the group the
/// configuration gave it to (which may not have installed it yet); else any
/// shards, claiming any group, at a configuration around the latest.
fn forged_delete(
    c: &ShardCluster,
    configs: &BTreeMap<ConfigNum, ShardConfig>,
    rng: &mut DetRng,
) -> (DeleteShardsRequest, (usize, usize)) {
    let mut in_transit = Vec::new();
    for (num, config) in configs.iter().rev().take(3) {
        for (g, i) in (0..GROUPS).flat_map(|g| (0..3).map(move |i| (g, i))) {
            let Some(server) = c.server(g, i) else { continue };
            let state = server.state().read();
            for (s, owner) in config.shards.iter().enumerate() {
                if state.holds_frozen(*num, ShardId(s as u64)) {
                    in_transit.push((
                        DeleteShardsRequest { config: *num, shards: vec![ShardId(s as u64)], group: *owner },
                        (g, i),
                    ));
                }
            }
        }
    }
    if !in_transit.is_empty() && rng.chance(3, 4) {
        return in_transit.swap_remove(rng.below(in_transit.len()));
    }
    let latest = configs.keys().next_back().map_or(0, |n| n.0);
    let config = ConfigNum((latest + rng.below(3) as u64).saturating_sub(1));
    let shards = (0..10).filter(|_| rng.chance(1, 3)).map(|s| ShardId(s as u64)).collect();
    let group = gid(rng.below(GROUPS + 1));
    (DeleteShardsRequest { config, shards, group }, (rng.below(GROUPS), rng.below(3)))
}

async fn scenario(seed: u64) -> ShardNemesisReport {
    let began = Instant::now();
    let mut rng = DetRng::new(seed ^ 0x5ead_beef);
    let maxraftstate = [0, 300, 2000][rng.below(3)];
    let unreliable = rng.chance(1, 3);
    let mut c = ShardCluster::new(ShardClusterConfig::sharded(GROUPS, unreliable, maxraftstate), seed).await;
    let mut report = ShardNemesisReport { seed, ..ShardNemesisReport::default() };
    c.join(&[0]).await;
    let mut joined: BTreeSet<usize> = BTreeSet::from([0]);

    let stop = Arc::new(AtomicBool::new(false));
    let done_ops = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for me in 0..CLIENTS {
        let mut ck = c.recorded_clerk();
        let mut r = rng.fork();
        let (stop, done_ops) = (stop.clone(), done_ops.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let k = key(r.below(KEYS));
                let dice = r.below(100);
                n += 1;
                let token = format!("c{me}.{n};");
                if dice < 60 {
                    ck.append(&k, &token).await;
                } else if dice < 90 {
                    ck.get(&k).await;
                } else if dice < 97 {
                    ck.put(&k, &token).await;
                } else {
                    ck.delete(&k).await;
                }
                done_ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let mut configs = BTreeMap::new();
    let mut down: Vec<(usize, usize, Instant)> = Vec::new();
    let mut groups_down: Vec<(usize, Instant)> = Vec::new();
    let mut ctrl_down: Option<(usize, Instant)> = None;
    let forger_id = NodeId(77_777);
    let forger = c.net.service_client(forger_id);
    c.net.connect(forger_id);
    let every_server: Vec<String> = (0..GROUPS).flat_map(|g| c.group_names(g)).collect();
    c.net.set_reach(forger_id, &every_server);
    let fault_until = Instant::now() + FAULT_TIME;
    while Instant::now() < fault_until {
        sleep(Duration::from_millis(200 + rng.range_inclusive(0, 400))).await;
        let now = Instant::now();
        for (g, i, _) in down.iter().filter(|d| d.2 <= now).copied().collect::<Vec<_>>() {
            c.start_server(g, i).await;
        }
        down.retain(|d| d.2 > now);
        for (g, _) in groups_down.iter().filter(|d| d.1 <= now).copied().collect::<Vec<_>>() {
            c.start_group(g).await;
        }
        groups_down.retain(|d| d.1 > now);
        if let Some((i, at)) = ctrl_down {
            if at <= now {
                c.start_ctrler(i).await;
                ctrl_down = None;
            }
        }
        let dice = rng.below(100);
        match dice {
            0..=34 => {
                report.reconfigurations += 1;
                let g = rng.below(GROUPS);
                match rng.below(3) {
                    0 if !joined.contains(&g) => {
                        c.join(&[g]).await;
                        joined.insert(g);
                    }
                    1 if joined.contains(&g) && joined.len() > 1 => {
                        c.leave(&[g]).await;
                        joined.remove(&g);
                    }
                    _ => {
                        let to = *joined.iter().nth(rng.below(joined.len())).unwrap_or(&0);
                        c.move_shard(rng.below(10), to).await;
                    }
                }
            }
            35..=54 => {
                let (g, i) = (rng.below(GROUPS), rng.below(3));
                if !down.iter().any(|d| d.0 == g && d.1 == i) && !groups_down.iter().any(|d| d.0 == g) {
                    report.crashes += 1;
                    c.shutdown_server(g, i);
                    down.push((g, i, now + Duration::from_millis(300 + rng.range_inclusive(0, 2000))));
                }
            }
            55..=69 => {
                report.partitions += 1;
                let g = rng.below(GROUPS);
                for i in 0..3 {
                    c.set_side(g, i, Some(u32::from(rng.chance(1, 2))));
                }
            }
            70..=79 => c.connect_all(),
            80..=84 if ctrl_down.is_none() => {
                report.crashes += 1;
                let i = rng.below(3);
                c.shutdown_ctrler(i);
                ctrl_down = Some((i, now + Duration::from_millis(500 + rng.range_inclusive(0, 1500))));
            }
            85..=89 => c.net.set_reliable(rng.chance(1, 2)),
            90..=93 => {
                let g = rng.below(GROUPS);
                if !groups_down.iter().any(|d| d.0 == g) {
                    report.crashes += 1;
                    down.retain(|d| d.0 != g);
                    c.shutdown_group(g);
                    groups_down.push((g, now + Duration::from_millis(500 + rng.range_inclusive(0, 1500))));
                }
            }
            _ => {}
        }
        if rng.chance(1, 3) {
            report.forgeries += 1;
            let (request, (g, i)) = forged_delete(&c, &configs, &mut rng);
            let request = ServiceRequest::DeleteShards(request);
            let _ = tokio::time::timeout(Duration::from_millis(500), forger.call_service(&server_name(g, i), request))
                .await;
        }
        check_ownership(&mut c, &mut configs, seed).await;
    }

    // Heal.
    c.net.set_reliable(true);
    for (g, i, _) in std::mem::take(&mut down) {
        c.start_server(g, i).await;
    }
    for (g, _) in std::mem::take(&mut groups_down) {
        c.start_group(g).await;
    }
    if let Some((i, _)) = ctrl_down.take() {
        c.start_ctrler(i).await;
    }
    c.connect_all();
    let healed = Instant::now();
    stop.store(true, Ordering::SeqCst);
    for (me, t) in clients.into_iter().enumerate() {
        let left = Duration::from_secs(60).saturating_sub(healed.elapsed());
        match tokio::time::timeout(left, t).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("seed {seed}: client {me} failed: {e}"),
            Err(_) => panic!("seed {seed}: client {me} still stuck 60 s after healing"),
        }
    }
    check_ownership(&mut c, &mut configs, seed).await;
    let mut reader = c.recorded_clerk();
    let mut finals = BTreeMap::new();
    for i in 0..KEYS {
        let k = key(i);
        let v = reader.get(&k).await;
        finals.insert(Bytes::from(k), (!v.is_empty()).then(|| Bytes::from(v)));
    }
    let history = c.recorder.operations();
    check_values(&history, &finals, seed);
    report.decided = match check(&history, DEFAULT_BUDGET) {
        Verdict::Ok => true,
        Verdict::Unknown { .. } => false,
        Verdict::Illegal { key, ops, longest_prefix } => panic!(
            "seed {seed}: not linearizable on key {key:?} ({ops} operations; longest legal prefix {} ops)",
            longest_prefix.len()
        ),
    };
    report.operations = done_ops.load(Ordering::Relaxed);
    report.configs = c.query().await.num.0;
    report.virtual_secs = began.elapsed().as_secs_f64();
    c.shutdown();
    report
}
