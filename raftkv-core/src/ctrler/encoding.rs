//! The controller's binary formats: commands in the Raft log, and shard
//! configurations (in snapshots, and in ShardKV's log and snapshots).
//!
//! A command is, in version 2 (written by this build):
//!
//! ```text
//! 0x80 0x00 | version (u8) = 2 | 0xFF | shard count | client | seq | op tag | op fields
//! ```
//!
//! `0x80 0x00` is an overlong varint zero, which no version-1 encoder writes,
//! so the two versions cannot be confused; `0xFF` reads, to a version-1
//! decoder, as an unknown operation, so an older replica refuses the command
//! instead of misreading it. The shard count is the one of the proposer's
//! configurations: the first command applied fixes a new controller's count,
//! and a command proposed for another count is refused (see
//! [`CtrlState`](super::CtrlState)).
//!
//! Version 1 (no header) is `client | seq | op tag | op fields` and carries
//! no shard count; it is still read. Numbers are LEB128 varints.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::error::{CommandError, COMMAND_VERSION};
use crate::api::{CtrlOp, RequestId, ShardConfig};
use crate::binary::{BinaryError, Decoder, Encoder};
use crate::types::{ClientId, ConfigNum, GroupId, ShardId};

const JOIN: u8 = 1;
const LEAVE: u8 = 2;
const MOVE: u8 = 3;

/// What starts a command of version 2 or later: an overlong varint zero.
const HEADER: [u8; 2] = [0x80, 0x00];
/// After the version: an operation tag version 1 does not know.
const GUARD: u8 = 0xFF;

/// A decoded log command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodedCommand {
    /// The request (client, seq).
    pub id: RequestId,
    /// The operation.
    pub op: CtrlOp,
    /// The proposer's shard count (`None`: a version-1 command, which has none).
    pub shards: Option<usize>,
}

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

/// A Join, Leave or Move as a log command (format [`COMMAND_VERSION`]),
/// proposed by a controller whose configurations have `shards` shards.
#[must_use]
pub fn encode_command(id: RequestId, op: &CtrlOp, shards: usize) -> Option<Bytes> {
    let mut e = Encoder::new();
    for b in HEADER {
        e.u8(b);
    }
    e.u8(COMMAND_VERSION).u8(GUARD).u64(shards as u64);
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

/// A log command written by [`encode_command`], or by version 1.
pub(crate) fn decode_command(b: Bytes) -> Result<DecodedCommand, CommandError> {
    let versioned = b.starts_with(&HEADER);
    let mut d = Decoder::new(b);
    let mut shards = None;
    if versioned {
        d.u8("header")?;
        d.u8("header")?;
        let version = d.u8("format version")?;
        if version != COMMAND_VERSION {
            return Err(CommandError::UnsupportedVersion { version });
        }
        if d.u8("format guard")? != GUARD {
            return Err(BinaryError::Invalid { what: "format guard", reason: "not 0xFF".into() }.into());
        }
        let n = d.len("shard count")?;
        if n == 0 || n > super::MAX_SHARDS {
            let reason = format!("{n} is not from 1 to {}", super::MAX_SHARDS);
            return Err(BinaryError::Invalid { what: "shard count", reason }.into());
        }
        shards = Some(n);
    }
    let id = RequestId { client: ClientId(d.u64("client")?), seq: d.u64("seq")? };
    let op = match d.u8("operation")? {
        JOIN => CtrlOp::Join { groups: get_groups(&mut d)? },
        LEAVE => {
            let n = d.count("groups")?;
            CtrlOp::Leave { groups: (0..n).map(|_| d.u64("group id").map(GroupId)).collect::<Result<_, _>>()? }
        }
        MOVE => CtrlOp::Move { shard: ShardId(d.u64("shard")?), group: GroupId(d.u64("group id")?) },
        other => return Err(BinaryError::Invalid { what: "operation", reason: format!("unknown tag {other}") }.into()),
    };
    d.end("command")?;
    Ok(DecodedCommand { id, op, shards })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<_>>().into()
    }

    #[test]
    fn commands_and_configs_round_trip() {
        let id = RequestId { client: ClientId(7), seq: 3 };
        for op in [
            CtrlOp::Join { groups: BTreeMap::from([(GroupId(1), vec!["a:1".into(), "b:2".into()])]) },
            CtrlOp::Leave { groups: vec![GroupId(1), GroupId(9)] },
            CtrlOp::Move { shard: ShardId(4), group: GroupId(2) },
        ] {
            let b = encode_command(id, &op, 10).unwrap();
            assert_eq!(decode_command(b.clone()).unwrap(), DecodedCommand { id, op, shards: Some(10) });
            for cut in 0..b.len() {
                assert!(decode_command(b.slice(..cut)).is_err());
            }
        }
        assert!(encode_command(id, &CtrlOp::Query { num: None }, 10).is_none());
        let config = ShardConfig {
            num: ConfigNum(5),
            shards: vec![GroupId(1), GroupId(2), GroupId(0)],
            groups: BTreeMap::from([(GroupId(1), vec!["x".into()]), (GroupId(2), vec![])]),
        };
        let mut e = Encoder::new();
        put_config(&mut e, &config);
        assert_eq!(get_config(&mut Decoder::new(e.finish())).unwrap(), config);
    }

    /// Commands written by the version-1 encoder (captured from it: client
    /// 0x1234_5678_9abc, seq 40 to 42) still decode, without a shard count.
    #[test]
    fn version_1_commands_still_decode() {
        let id = |seq| RequestId { client: ClientId(0x1234_5678_9abc), seq };
        let join =
            hex("bcb5e2b3c5c60428010201020e3132372e302e302e313a383130300e3132372e302e302e313a38313031020103683a31");
        let groups = BTreeMap::from([
            (GroupId(1), vec!["127.0.0.1:8100".into(), "127.0.0.1:8101".into()]),
            (GroupId(2), vec!["h:1".into()]),
        ]);
        assert_eq!(
            decode_command(join).unwrap(),
            DecodedCommand { id: id(40), op: CtrlOp::Join { groups }, shards: None }
        );
        assert_eq!(
            decode_command(hex("bcb5e2b3c5c60429020102")).unwrap(),
            DecodedCommand { id: id(41), op: CtrlOp::Leave { groups: vec![GroupId(2)] }, shards: None }
        );
        assert_eq!(
            decode_command(hex("bcb5e2b3c5c6042a030301")).unwrap(),
            DecodedCommand { id: id(42), op: CtrlOp::Move { shard: ShardId(3), group: GroupId(1) }, shards: None }
        );
    }

    #[test]
    fn a_command_of_an_unknown_version_is_refused_naming_the_version() {
        let op = CtrlOp::Move { shard: ShardId(1), group: GroupId(2) };
        let mut b = encode_command(RequestId { client: ClientId(1), seq: 1 }, &op, 10).unwrap().to_vec();
        b[2] = 3;
        let e = decode_command(b.into()).unwrap_err();
        assert_eq!(e, CommandError::UnsupportedVersion { version: 3 });
        assert_eq!(
            e.to_string(),
            "controller command format version 3 is not supported (this build reads versions 1 and 2)"
        );
    }

    /// A version-1 decoder (client, seq, operation tag) meets the 0xFF guard
    /// where it expects an operation tag, so it refuses a version-2 command.
    #[test]
    fn a_version_2_command_reads_as_an_unknown_operation_to_version_1() {
        let op = CtrlOp::Join { groups: BTreeMap::from([(GroupId(1), vec!["a:1".into()])]) };
        let b = encode_command(RequestId { client: ClientId(5), seq: 9 }, &op, 1).unwrap();
        let mut d = Decoder::new(b);
        assert_eq!((d.u64("client").unwrap(), d.u64("seq").unwrap()), (0, 2));
        assert_eq!(d.u8("operation").unwrap(), 0xFF);
    }
}
