//! The controller's binary formats: commands in the Raft log, and shard
//! configurations (in snapshots, and in ShardKV's log and snapshots).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::api::{CtrlOp, RequestId, ShardConfig};
use crate::binary::{BinaryError, Decoder, Encoder};
use crate::types::{ClientId, ConfigNum, GroupId, ShardId};

const JOIN: u8 = 1;
const LEAVE: u8 = 2;
const MOVE: u8 = 3;

/// Append `config` to `e`.
pub fn put_config(e: &mut Encoder, config: &ShardConfig) {
    e.u64(config.num.0).u64(config.shards.len() as u64);
    for g in &config.shards {
        e.u64(g.0);
    }
    put_groups(e, &config.groups);
}

fn put_groups(e: &mut Encoder, groups: &BTreeMap<GroupId, Vec<String>>) {
    e.u64(groups.len() as u64);
    for (g, servers) in groups {
        e.u64(g.0).u64(servers.len() as u64);
        for s in servers {
            e.str(s);
        }
    }
}

fn get_groups(d: &mut Decoder) -> Result<BTreeMap<GroupId, Vec<String>>, BinaryError> {
    let n = d.count("groups")?;
    let mut groups = BTreeMap::new();
    for _ in 0..n {
        let g = GroupId(d.u64("group id")?);
        let m = d.count("servers")?;
        let servers = (0..m).map(|_| d.string("server address")).collect::<Result<_, _>>()?;
        groups.insert(g, servers);
    }
    Ok(groups)
}

/// Read a configuration written by [`put_config`].
pub fn get_config(d: &mut Decoder) -> Result<ShardConfig, BinaryError> {
    let num = ConfigNum(d.u64("config number")?);
    let n = d.count("shards")?;
    let shards = (0..n).map(|_| d.u64("shard owner").map(GroupId)).collect::<Result<_, _>>()?;
    Ok(ShardConfig { num, shards, groups: get_groups(d)? })
}

/// A Join, Leave or Move as a log command.
#[must_use]
pub fn encode_command(id: RequestId, op: &CtrlOp) -> Option<Bytes> {
    let mut e = Encoder::new();
    e.u64(id.client.0).u64(id.seq);
    match op {
        CtrlOp::Join { groups } => {
            e.u8(JOIN);
            put_groups(&mut e, groups);
        }
        CtrlOp::Leave { groups } => {
            e.u8(LEAVE).u64(groups.len() as u64);
            for g in groups {
                e.u64(g.0);
            }
        }
        CtrlOp::Move { shard, group } => {
            e.u8(MOVE).u64(shard.0).u64(group.0);
        }
        CtrlOp::Query { .. } => return None,
    }
    Some(e.finish())
}

/// A log command written by [`encode_command`].
pub fn decode_command(b: Bytes) -> Result<(RequestId, CtrlOp), BinaryError> {
    let mut d = Decoder::new(b);
    let id = RequestId { client: ClientId(d.u64("client")?), seq: d.u64("seq")? };
    let op = match d.u8("operation")? {
        JOIN => CtrlOp::Join { groups: get_groups(&mut d)? },
        LEAVE => {
            let n = d.count("groups")?;
            CtrlOp::Leave { groups: (0..n).map(|_| d.u64("group id").map(GroupId)).collect::<Result<_, _>>()? }
        }
        MOVE => CtrlOp::Move { shard: ShardId(d.u64("shard")?), group: GroupId(d.u64("group id")?) },
        other => return Err(BinaryError::Invalid { what: "operation", reason: format!("unknown tag {other}") }),
    };
    d.end("command")?;
    Ok((id, op))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_configs_round_trip() {
        let id = RequestId { client: ClientId(7), seq: 3 };
        for op in [
            CtrlOp::Join { groups: BTreeMap::from([(GroupId(1), vec!["a:1".into(), "b:2".into()])]) },
            CtrlOp::Leave { groups: vec![GroupId(1), GroupId(9)] },
            CtrlOp::Move { shard: ShardId(4), group: GroupId(2) },
        ] {
            let b = encode_command(id, &op).unwrap();
            assert_eq!(decode_command(b.clone()).unwrap(), (id, op));
            for cut in 0..b.len() {
                assert!(decode_command(b.slice(..cut)).is_err());
            }
        }
        assert!(encode_command(id, &CtrlOp::Query { num: None }).is_none());
        let config = ShardConfig {
            num: ConfigNum(5),
            shards: vec![GroupId(1), GroupId(2), GroupId(0)],
            groups: BTreeMap::from([(GroupId(1), vec!["x".into()]), (GroupId(2), vec![])]),
        };
        let mut e = Encoder::new();
        put_config(&mut e, &config);
        assert_eq!(get_config(&mut Decoder::new(e.finish())).unwrap(), config);
    }
}
