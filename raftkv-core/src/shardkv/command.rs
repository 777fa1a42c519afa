//! The commands a ShardKV group replicates through its log, and their
//! binary encoding.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::api::{KvOp, RequestId, ShardConfig, ShardData};
use crate::binary::{BinaryError, Decoder, Encoder};
use crate::ctrler::{get_config, put_config};
use crate::types::{ClientId, ConfigNum, GroupId, ShardId};

/// Where a shard gained from "no group" (`GroupId(0)`) is to be pulled from:
/// the last group that held it, which froze it when it lost it in `frozen_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSource {
    /// The group that last held the shard.
    pub group: GroupId,
    /// Its servers, as of the last configuration it was part of.
    pub servers: Vec<String>,
    /// The configuration in which it lost the shard.
    pub frozen_at: ConfigNum,
}

/// One replicated command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A client's write (Put, Append or Delete).
    Client {
        /// Deduplication identity.
        id: RequestId,
        /// The write.
        op: KvOp,
    },
    /// Move to the next configuration. `sources` says, for each shard this
    /// group gains from no group, which earlier holder still has its data
    /// (a shard absent there was never held: it starts empty).
    Config {
        /// The next configuration.
        config: ShardConfig,
        /// Holders of shards gained from no group.
        sources: BTreeMap<ShardId, ShardSource>,
    },
    /// Runs of shards pulled from their previous holder, for configuration
    /// `config`: the first shard's run starts after key `after` (from its
    /// start when `None`), the others' at their start. A run applies only
    /// where the shard's installed data ends, so runs land in order, once.
    Install {
        /// The configuration the shards were gained in.
        config: ConfigNum,
        /// Where the first shard's run starts (exclusive).
        after: Option<Bytes>,
        /// The runs.
        shards: Vec<ShardData>,
    },
    /// The new holder has the shards frozen here at `frozen_at`: delete them.
    Delete {
        /// The configuration in which this group lost them.
        frozen_at: ConfigNum,
        /// The shards.
        shards: Vec<ShardId>,
    },
    /// The previous holder deleted its copy of these shards, installed here
    /// in `config`: they are settled.
    Collected {
        /// The configuration the shards were gained in.
        config: ConfigNum,
        /// The shards.
        shards: Vec<ShardId>,
    },
}

const CLIENT: u8 = 1;
const CONFIG: u8 = 2;
const INSTALL: u8 = 3;
const DELETE: u8 = 4;
const COLLECTED: u8 = 5;
/// Runs of shards (with a start key and a `more` flag each); tag `INSTALL`
/// is the older form holding whole shards, still read from existing logs.
const INSTALL_RUNS: u8 = 6;

const PUT: u8 = 1;
const APPEND: u8 = 2;
const DEL: u8 = 3;

fn put_shards(e: &mut Encoder, shards: &[ShardId]) {
    e.u64(shards.len() as u64);
    for s in shards {
        e.u64(s.0);
    }
}

fn get_shards(d: &mut Decoder) -> Result<Vec<ShardId>, BinaryError> {
    let n = d.count("shards")?;
    (0..n).map(|_| d.u64("shard").map(ShardId)).collect()
}

/// Append one shard's data (entries in key order, then its duplicate table).
pub fn put_shard_data(e: &mut Encoder, s: &ShardData) {
    e.u64(s.shard.0).u64(s.entries.len() as u64);
    for (k, v) in &s.entries {
        e.bytes(k).bytes(v);
    }
    put_dedup(e, s.dedup.iter().copied());
}

/// The part of [`put_shard_data`] after the entries: the duplicate table.
pub(crate) fn put_dedup(e: &mut Encoder, dedup: impl ExactSizeIterator<Item = (ClientId, u64)>) {
    e.u64(dedup.len() as u64);
    for (c, seq) in dedup {
        e.u64(c.0).u64(seq);
    }
}

/// Read one shard's data written by [`put_shard_data`] (a whole shard: `more` is false).
pub fn get_shard_data(d: &mut Decoder) -> Result<ShardData, BinaryError> {
    let shard = ShardId(d.u64("shard")?);
    let n = d.count("entries")?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push((d.bytes("key")?, d.bytes("value")?));
    }
    let m = d.count("dedup")?;
    let mut dedup = Vec::with_capacity(m);
    for _ in 0..m {
        dedup.push((ClientId(d.u64("client")?), d.u64("seq")?));
    }
    Ok(ShardData { shard, entries, dedup, more: false })
}

impl Command {
    /// The command's encoding.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut e = Encoder::with_capacity(self.encoded_len_hint());
        match self {
            Self::Client { id, op } => {
                e.u8(CLIENT).u64(id.client.0).u64(id.seq);
                match op {
                    KvOp::Put { key, value } => e.u8(PUT).bytes(key).bytes(value),
                    KvOp::Append { key, value } => e.u8(APPEND).bytes(key).bytes(value),
                    KvOp::Delete { key } => e.u8(DEL).bytes(key),
                    // Reads are never logged: a Get encodes to a tag `decode` refuses.
                    KvOp::Get { key } => e.u8(0).bytes(key),
                };
            }
            Self::Config { config, sources } => {
                e.u8(CONFIG);
                put_config(&mut e, config);
                e.u64(sources.len() as u64);
                for (shard, src) in sources {
                    e.u64(shard.0).u64(src.group.0).u64(src.frozen_at.0).u64(src.servers.len() as u64);
                    for s in &src.servers {
                        e.str(s);
                    }
                }
            }
            // Whole shards keep the older form, which every version reads.
            Self::Install { config, after: None, shards } if shards.iter().all(|s| !s.more) => {
                e.u8(INSTALL).u64(config.0).u64(shards.len() as u64);
                for s in shards {
                    put_shard_data(&mut e, s);
                }
            }
            Self::Install { config, after, shards } => {
                e.u8(INSTALL_RUNS).u64(config.0);
                match after {
                    Some(key) => e.u8(1).bytes(key),
                    None => e.u8(0),
                };
                e.u64(shards.len() as u64);
                for s in shards {
                    put_shard_data(&mut e, s);
                    e.u8(u8::from(s.more));
                }
            }
            Self::Delete { frozen_at, shards } => {
                e.u8(DELETE).u64(frozen_at.0);
                put_shards(&mut e, shards);
            }
            Self::Collected { config, shards } => {
                e.u8(COLLECTED).u64(config.0);
                put_shards(&mut e, shards);
            }
        }
        e.finish()
    }

    /// About the size of the encoding (exact enough that an install's
    /// megabytes are written into one buffer, not grown into it).
    fn encoded_len_hint(&self) -> usize {
        match self {
            Self::Install { after, shards, .. } => {
                let entries = shards.iter().flat_map(|s| &s.entries).map(|(k, v)| k.len() + v.len() + 20);
                64 + after.as_ref().map_or(0, Bytes::len)
                    + entries.sum::<usize>()
                    + 20 * shards.iter().map(|s| s.dedup.len()).sum::<usize>()
            }
            _ => 64,
        }
    }

    /// A command encoded by [`Command::encode`].
    pub fn decode(b: Bytes) -> Result<Self, BinaryError> {
        let mut d = Decoder::new(b);
        let command = match d.u8("command")? {
            CLIENT => {
                let id = RequestId { client: ClientId(d.u64("client")?), seq: d.u64("seq")? };
                let op = match d.u8("operation")? {
                    PUT => KvOp::Put { key: d.bytes("key")?, value: d.bytes("value")? },
                    APPEND => KvOp::Append { key: d.bytes("key")?, value: d.bytes("value")? },
                    DEL => KvOp::Delete { key: d.bytes("key")? },
                    other => {
                        return Err(BinaryError::Invalid { what: "operation", reason: format!("unknown tag {other}") })
                    }
                };
                Self::Client { id, op }
            }
            CONFIG => {
                let config = get_config(&mut d)?;
                let n = d.count("sources")?;
                let mut sources = BTreeMap::new();
                for _ in 0..n {
                    let shard = ShardId(d.u64("shard")?);
                    let group = GroupId(d.u64("group")?);
                    let frozen_at = ConfigNum(d.u64("frozen at")?);
                    let m = d.count("servers")?;
                    let servers = (0..m).map(|_| d.string("server")).collect::<Result<_, _>>()?;
                    sources.insert(shard, ShardSource { group, servers, frozen_at });
                }
                Self::Config { config, sources }
            }
            INSTALL => {
                let config = ConfigNum(d.u64("config")?);
                let n = d.count("shards")?;
                let shards = (0..n).map(|_| get_shard_data(&mut d)).collect::<Result<_, _>>()?;
                Self::Install { config, after: None, shards }
            }
            INSTALL_RUNS => {
                let config = ConfigNum(d.u64("config")?);
                let after = match d.u8("run start")? {
                    0 => None,
                    1 => Some(d.bytes("run start key")?),
                    other => {
                        return Err(BinaryError::Invalid { what: "run start", reason: format!("unknown tag {other}") })
                    }
                };
                let n = d.count("shards")?;
                let mut shards = Vec::with_capacity(n);
                for _ in 0..n {
                    let mut run = get_shard_data(&mut d)?;
                    run.more = match d.u8("more")? {
                        0 => false,
                        1 => true,
                        other => {
                            return Err(BinaryError::Invalid { what: "more", reason: format!("unknown flag {other}") })
                        }
                    };
                    shards.push(run);
                }
                Self::Install { config, after, shards }
            }
            DELETE => Self::Delete { frozen_at: ConfigNum(d.u64("config")?), shards: get_shards(&mut d)? },
            COLLECTED => Self::Collected { config: ConfigNum(d.u64("config")?), shards: get_shards(&mut d)? },
            other => return Err(BinaryError::Invalid { what: "command", reason: format!("unknown tag {other}") }),
        };
        d.end("command")?;
        Ok(command)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips_and_truncation_is_an_error() {
        let id = RequestId { client: ClientId(3), seq: 9 };
        let config = ShardConfig {
            num: ConfigNum(4),
            shards: vec![GroupId(1), GroupId(2)],
            groups: BTreeMap::from([(GroupId(1), vec!["a".into()]), (GroupId(2), vec!["b".into(), "c".into()])]),
        };
        let data = ShardData {
            shard: ShardId(1),
            entries: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))],
            dedup: vec![(ClientId(3), 9)],
            more: false,
        };
        let run = ShardData { more: true, dedup: vec![], ..data.clone() };
        let commands = [
            Command::Client { id, op: KvOp::Put { key: Bytes::from_static(b"k"), value: Bytes::from_static(b"v") } },
            Command::Client { id, op: KvOp::Append { key: Bytes::from_static(b"k"), value: Bytes::from_static(b"w") } },
            Command::Client { id, op: KvOp::Delete { key: Bytes::from_static(b"k") } },
            Command::Config {
                config,
                sources: BTreeMap::from([(
                    ShardId(0),
                    ShardSource { group: GroupId(7), servers: vec!["x:1".into()], frozen_at: ConfigNum(2) },
                )]),
            },
            Command::Install { config: ConfigNum(4), after: None, shards: vec![data.clone()] },
            Command::Install {
                config: ConfigNum(4),
                after: Some(Bytes::from_static(b"a")),
                shards: vec![run, data.clone()],
            },
            Command::Delete { frozen_at: ConfigNum(4), shards: vec![ShardId(0), ShardId(1)] },
            Command::Collected { config: ConfigNum(4), shards: vec![ShardId(1)] },
        ];
        // The older whole-shard form, as earlier versions logged it.
        let mut old = Encoder::new();
        old.u8(INSTALL).u64(4).u64(1);
        put_shard_data(&mut old, &data);
        assert_eq!(
            Command::decode(old.finish()).unwrap(),
            Command::Install { config: ConfigNum(4), after: None, shards: vec![data] }
        );
        for c in commands {
            let b = c.encode();
            assert_eq!(Command::decode(b.clone()).unwrap(), c);
            for cut in 0..b.len() {
                assert!(Command::decode(b.slice(..cut)).is_err(), "{c:?} cut at {cut}");
            }
        }
    }
}
