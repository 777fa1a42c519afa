//! `forged_delete`: a forged `Migration/DeleteShards` from a caller without
//! the cluster token (or with a wrong one) is refused, and the shard's keys
//! stay readable.
//!
//! Two groups are joined; keys are written to a shard of one of them; the
//! forgery — "group N installed this shard, delete your copy", for the
//! current configuration and the next — goes to every member of the holder.

use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use raftkv_core::api::{DeleteShardsRequest, ServiceClient, ServiceRequest};
use raftkv_core::{ConfigNum, GroupId, ShardId};
use raftkv_transport_grpc::GrpcClient;

use super::cluster::{key_in, Cluster, Setup};
use super::findings::Findings;
use super::forgery::{check_refused, net_config, ATTEMPTS};

/// Keys written to the attacked shard.
const KEYS: usize = 16;

pub async fn run(setup: &Setup) -> Result<Findings> {
    let mut cluster = Cluster::start(setup, 2, &[]).await?;
    let mut f = Findings::default();
    if !setup.token {
        f.note("the cluster is open (--token off): anyone is a member, the forgery will be delivered");
    }
    let outcome = attack(&mut cluster, &mut f).await;
    Ok(cluster.conclude(f, outcome))
}

async fn attack(cluster: &mut Cluster, f: &mut Findings) -> Result<()> {
    let config = cluster.ctrl_clerk(Duration::from_secs(10)).query(None).await?;
    let Some((shard, holder)) =
        config.shards.iter().enumerate().find(|(_, g)| g.0 == 1).map(|(s, g)| (ShardId(s as u64), *g))
    else {
        bail!("group 1 holds no shard in configuration {}: {:?}", config.num, config.shards);
    };
    let other = GroupId(2);
    let holders = cluster.groups[&holder].clone();
    f.note(format!(
        "configuration {}: shards {:?}; attacking shard {shard} of group {holder}",
        config.num, config.shards
    ));
    let mut clerk = cluster.clerk(Duration::from_secs(10));
    let written: Vec<(Bytes, Bytes)> =
        (0..KEYS).map(|i| (key_in(shard, "precious", i), Bytes::from(format!("value-{i}")))).collect();
    for (k, v) in &written {
        clerk.put(k.clone(), v.clone()).await?;
    }
    f.note(format!("wrote {KEYS} keys to shard {shard}"));

    for (label, token) in ATTEMPTS {
        let client = GrpcClient::new(net_config(token)?)?;
        for config_num in [config.num, ConfigNum(config.num.0 + 1)] {
            let mut answers = Vec::new();
            for addr in &holders {
                let forged = DeleteShardsRequest { config: config_num, shards: vec![shard], group: other };
                answers
                    .push((cluster.name(addr), client.call_service(addr, ServiceRequest::DeleteShards(forged)).await));
            }
            let what =
                format!("DeleteShards of shard {shard} for group {other} at configuration {config_num} with {label}");
            check_refused(f, &what, &answers);
        }
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut intact = 0;
    let mut clerk = cluster.clerk(Duration::from_secs(10));
    for (k, v) in &written {
        match clerk.get(k.clone()).await {
            Ok(Some(got)) if got == v => intact += 1,
            other => f.note(format!("{k:?} reads {other:?}, not {v:?}")),
        }
    }
    f.check(intact == KEYS, format!("every key of shard {shard} still reads its value ({intact} of {KEYS})"));
    for addr in &holders {
        let state = cluster.status(addr).await.and_then(|s| s.shards.into_iter().find(|s| s.shard == shard));
        f.note(format!("{}: shard {shard} {state:?}", cluster.name(addr)));
    }
    let write = clerk.put(key_in(shard, "after", 0), Bytes::from_static(b"1")).await;
    f.check(
        write.is_ok(),
        format!("shard {shard} still takes writes{}", write.err().map(|e| format!(": {e}")).unwrap_or_default()),
    );
    Ok(())
}
