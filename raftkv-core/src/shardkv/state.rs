//! [`ShardKvState`]: what a ShardKV group replicates — its configuration
//! and, for every shard it holds, the data, the duplicate table and where
//! the shard stands in a reconfiguration.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::command::{get_shard_data, put_dedup, Command, ShardSource};
use super::cursor::PullCursor;
use crate::api::{shard_of, ApiError, KvOp, RequestId, ShardConfig, ShardData, ShardState, ShardStatus};
use crate::binary::{BinaryError, Decoder, Encoder};
use crate::ctrler::{get_config, put_config};
use crate::dedup::DedupTable;
use crate::types::{ConfigNum, GroupId, ShardId};

/// What applying a command answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Done (or a retry of a write already done).
    Ok,
    /// This group does not serve the key's shard in its configuration.
    WrongGroup {
        /// The group's configuration.
        config: ConfigNum,
    },
    /// A reconfiguration step that no longer applies (already done, or for
    /// another configuration).
    Stale,
    /// The command could not be decoded.
    Malformed(String),
    /// The write was refused and changed nothing (it would make a value
    /// larger than [`MAX_STORED_VALUE_BYTES`]); retrying will not help.
    Refused(String),
    /// A configuration with another number of shards than this replica was
    /// started with: the replica's settings are wrong, and applying on would
    /// make it diverge from the others.
    ShardCountMismatch {
        /// Shards in the replicated configuration.
        replicated: usize,
        /// Shards this replica was started with.
        configured: usize,
    },
}

/// Most bytes a key's value may hold, Appends included: the same on every
/// replica (applying decides), and small enough that a run of a shard with
/// a value this large always fits in one message.
pub const MAX_STORED_VALUE_BYTES: usize = 4 << 20;

/// Where a held shard stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Owned; serving.
    Serving,
    /// Owned since the current configuration; waiting for the data of the
    /// previous holder `from` (which froze it at `frozen_at`).
    Pulling {
        /// The previous holder.
        from: GroupId,
        /// Its servers.
        servers: Vec<String>,
        /// The configuration in which it lost the shard.
        frozen_at: ConfigNum,
    },
    /// Installed in the current configuration and serving; the previous
    /// holder has not yet confirmed deleting its copy.
    Collecting {
        /// The previous holder.
        from: GroupId,
        /// Its servers.
        servers: Vec<String>,
        /// The configuration in which it lost the shard.
        frozen_at: ConfigNum,
    },
    /// Lost in configuration `at`: frozen until the new holder has it.
    /// `to_nobody`: the shard went to no group; holding it does not keep
    /// this group from moving on.
    Frozen {
        /// The configuration in which this group lost the shard.
        at: ConfigNum,
        /// Whether it went to no group.
        to_nobody: bool,
    },
}

/// One held shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) phase: Phase,
    /// Shared with snapshot images being written: a write while one holds
    /// it copies the map first.
    pub(crate) data: Arc<BTreeMap<Bytes, Bytes>>,
    pub(crate) dedup: DedupTable<()>,
}

impl Shard {
    fn empty(phase: Phase) -> Self {
        Self { phase, data: Arc::default(), dedup: DedupTable::new() }
    }

    /// Shard `id`'s part of the snapshot encoding, in pieces of about `chunk` bytes.
    fn pieces(&self, id: ShardId, chunk: usize) -> impl Iterator<Item = Bytes> + Send + '_ {
        let mut head = Encoder::with_capacity(chunk + 64);
        put_phase(&mut head, &self.phase);
        head.u64(id.0).u64(self.data.len() as u64);
        let mut next = Some(head);
        let mut entries = self.data.iter();
        std::iter::from_fn(move || {
            let mut e = next.take()?;
            for (k, v) in entries.by_ref() {
                e.bytes(k).bytes(v);
                if e.len() >= chunk {
                    next = Some(Encoder::with_capacity(chunk + 64));
                    return Some(e.finish());
                }
            }
            put_dedup(&mut e, self.dedup.entries().map(|(c, seq, ())| (c, seq)));
            Some(e.finish())
        })
    }

    /// The data, to change.
    fn data_mut(&mut self) -> &mut BTreeMap<Bytes, Bytes> {
        Arc::make_mut(&mut self.data)
    }

    fn serving(&self) -> bool {
        matches!(self.phase, Phase::Serving | Phase::Collecting { .. })
    }

    fn bytes(&self) -> usize {
        self.data.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// A point-in-time copy of a [`ShardKvState`], made by
/// [`ShardKvState::image`] and encoded in pieces.
#[derive(Clone, Debug)]
pub struct ShardKvImage {
    header: Bytes,
    shards: Vec<(ShardId, Shard)>,
}

impl ShardKvImage {
    /// The state's encoding in pieces of about `chunk` bytes each (a piece
    /// ends after the entry that reaches `chunk`, or where a shard ends);
    /// together they are [`ShardKvState::encode`].
    pub fn pieces(&self, chunk: usize) -> impl Iterator<Item = Bytes> + Send + '_ {
        std::iter::once(self.header.clone()).chain(self.shards.iter().flat_map(move |(id, s)| s.pieces(*id, chunk)))
    }
}

/// A pending exchange with another group, for the migration task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The other group.
    pub group: GroupId,
    /// Its servers.
    pub servers: Vec<String>,
    /// The configuration in which it lost the shards.
    pub frozen_at: ConfigNum,
    /// The shards.
    pub shards: Vec<ShardId>,
}

/// The replicated state of one ShardKV group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardKvState {
    group: GroupId,
    config: ShardConfig,
    shards: BTreeMap<ShardId, Shard>,
}

impl ShardKvState {
    /// The state of group `group` before any configuration (`n_shards` shards, none held).
    #[must_use]
    pub fn new(group: GroupId, n_shards: usize) -> Self {
        Self {
            group,
            config: ShardConfig { num: ConfigNum(0), shards: vec![GroupId(0); n_shards], groups: BTreeMap::new() },
            shards: BTreeMap::new(),
        }
    }

    /// The group.
    #[must_use]
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The configuration the group is at.
    #[must_use]
    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// Whether every shard is settled, so the group may move to the next
    /// configuration: nothing to pull, nothing to hand over, nothing to collect.
    #[must_use]
    pub fn settled(&self) -> bool {
        self.shards.values().all(|s| matches!(s.phase, Phase::Serving | Phase::Frozen { to_nobody: true, .. }))
    }

    /// The shard `key` falls in.
    fn shard_of(&self, key: &[u8]) -> ShardId {
        shard_of(key, self.config.shards.len())
    }

    /// Apply one command.
    pub fn apply(&mut self, command: Bytes) -> Applied {
        match Command::decode(command) {
            Ok(Command::Client { id, op }) => self.apply_write(id, &op),
            Ok(Command::Config { config, sources }) => self.apply_config(config, &sources),
            Ok(Command::Install { config, after, shards }) => self.apply_install(config, after, shards),
            Ok(Command::Delete { frozen_at, shards }) => self.apply_delete(frozen_at, &shards),
            Ok(Command::Collected { config, shards }) => self.apply_collected(config, &shards),
            Err(e) => Applied::Malformed(e.to_string()),
        }
    }

    fn apply_write(&mut self, id: RequestId, op: &KvOp) -> Applied {
        let shard_id = self.shard_of(op.key());
        let config = self.config.num;
        let Some(shard) = self.shards.get_mut(&shard_id).filter(|s| s.serving()) else {
            return Applied::WrongGroup { config };
        };
        if shard.dedup.seen(id).is_some() {
            return Applied::Ok;
        }
        match op {
            // Stored keys and values are copies of their own, sized to fit: the
            // command's bytes are a slice of a whole network or log buffer, which
            // a stored slice would keep alive.
            KvOp::Put { key, value } => {
                if value.len() > MAX_STORED_VALUE_BYTES {
                    return Applied::Refused(format!(
                        "a value of {} bytes exceeds the limit of {MAX_STORED_VALUE_BYTES} bytes a key may hold",
                        value.len()
                    ));
                }
                let value = Bytes::copy_from_slice(value);
                let data = shard.data_mut();
                match data.get_mut(key.as_ref()) {
                    Some(stored) => *stored = value,
                    None => {
                        data.insert(Bytes::copy_from_slice(key), value);
                    }
                }
            }
            KvOp::Append { key, value } => {
                let held = shard.data.get(key).map_or(0, Bytes::len);
                if held.saturating_add(value.len()) > MAX_STORED_VALUE_BYTES {
                    return Applied::Refused(format!(
                        "appending {} bytes to a value of {held} bytes would exceed the limit of {MAX_STORED_VALUE_BYTES} bytes a key may hold",
                        value.len()
                    ));
                }
                let data = shard.data_mut();
                let mut v = BytesMut::from(data.get(key).map(Bytes::as_ref).unwrap_or_default());
                v.extend_from_slice(value);
                match data.get_mut(key.as_ref()) {
                    Some(stored) => *stored = v.freeze(),
                    None => {
                        data.insert(Bytes::copy_from_slice(key), v.freeze());
                    }
                }
            }
            KvOp::Delete { key } => {
                shard.data_mut().remove(key);
            }
            KvOp::Get { .. } => {}
        }
        shard.dedup.record(id, ());
        Applied::Ok
    }

    /// Whether moving to `next` must wait: it gives this group a shard this
    /// group still holds frozen (parked after it went to no group) for
    /// someone who has not fetched it yet — the shard comes from another
    /// group, or from no group with another group as its last holder
    /// (`sources`). The copy goes once that group has installed it and asked
    /// for its deletion.
    #[must_use]
    pub fn waits_for_parked(&self, next: &ShardConfig, sources: &BTreeMap<ShardId, ShardSource>) -> bool {
        let me = self.group;
        self.config.shards.iter().zip(&next.shards).enumerate().any(|(i, (&was, &now))| {
            let id = ShardId(i as u64);
            let reclaimed = was == GroupId(0) && sources.get(&id).is_some_and(|src| src.group == me);
            now == me
                && was != me
                && !reclaimed
                && self.shards.get(&id).is_some_and(|s| matches!(s.phase, Phase::Frozen { .. }))
        })
    }

    fn apply_config(&mut self, next: ShardConfig, sources: &BTreeMap<ShardId, ShardSource>) -> Applied {
        if next.shards.len() != self.config.shards.len() {
            return Applied::ShardCountMismatch { replicated: next.shards.len(), configured: self.config.shards.len() };
        }
        if self.config.num.0.checked_add(1) != Some(next.num.0)
            || !self.settled()
            || self.waits_for_parked(&next, sources)
        {
            return Applied::Stale;
        }
        let me = self.group;
        for (i, (&was, &now)) in self.config.shards.iter().zip(&next.shards).enumerate() {
            let id = ShardId(i as u64);
            if now == me && was != me {
                // Where the data is: the previous owner, or for a shard that
                // had no owner, the last group that held it (found by the
                // proposer in the controller's history).
                let source = if was == GroupId(0) {
                    sources.get(&id).cloned()
                } else {
                    Some(ShardSource {
                        group: was,
                        servers: self.config.groups.get(&was).cloned().unwrap_or_default(),
                        frozen_at: next.num,
                    })
                };
                match source {
                    Some(src) if src.group == me => {
                        // Parked here when it went to no group: ours again, untouched since.
                        match self.shards.get_mut(&id) {
                            Some(s) if s.phase == (Phase::Frozen { at: src.frozen_at, to_nobody: true }) => {
                                s.phase = Phase::Serving;
                            }
                            _ => {
                                tracing::warn!(group = %me, shard = %id, "parked shard missing; starting it empty");
                                self.shards.insert(id, Shard::empty(Phase::Serving));
                            }
                        }
                    }
                    Some(src) => {
                        let phase = Phase::Pulling { from: src.group, servers: src.servers, frozen_at: src.frozen_at };
                        self.shards.insert(id, Shard::empty(phase));
                    }
                    // Never held by anyone: it starts empty.
                    None => {
                        self.shards.insert(id, Shard::empty(Phase::Serving));
                    }
                }
            } else if was == me && now != me {
                if let Some(s) = self.shards.get_mut(&id) {
                    s.phase = Phase::Frozen { at: next.num, to_nobody: now == GroupId(0) };
                }
            }
        }
        tracing::info!(group = %me, config = %next.num, "config change");
        self.config = next;
        Applied::Ok
    }

    fn apply_install(&mut self, config: ConfigNum, after: Option<Bytes>, shards: Vec<ShardData>) -> Applied {
        if config != self.config.num {
            return Applied::Stale;
        }
        let mut installed = 0;
        let mut start = after;
        for run in shards {
            let start = start.take();
            let Some(shard) = self.shards.get_mut(&run.shard) else { continue };
            let Phase::Pulling { from, servers, frozen_at } = &shard.phase else { continue };
            // A run lands only where the installed data ends (a pulling shard
            // holds nothing else), with keys in order after it: a repeated
            // or out-of-order run changes nothing.
            let end = shard.data.last_key_value().map(|(k, _)| k);
            if end != start.as_ref() || !ascending_after(end, &run.entries) {
                continue;
            }
            // Copies of their own: the entries are slices of a whole log buffer.
            let data = Arc::make_mut(&mut shard.data);
            for (k, v) in &run.entries {
                data.insert(Bytes::copy_from_slice(k), Bytes::copy_from_slice(v));
            }
            installed += 1;
            if !run.more {
                shard.phase = Phase::Collecting { from: *from, servers: servers.clone(), frozen_at: *frozen_at };
                shard.dedup.merge(run.dedup.into_iter().map(|(c, s)| (c, s, ())));
                tracing::info!(group = %self.group, config = %config, shard = %run.shard, keys = shard.data.len(), "shard installed");
            }
        }
        if installed == 0 {
            Applied::Stale
        } else {
            Applied::Ok
        }
    }

    fn apply_delete(&mut self, frozen_at: ConfigNum, shards: &[ShardId]) -> Applied {
        for id in shards {
            if self.shards.get(id).is_some_and(|s| matches!(s.phase, Phase::Frozen { at, .. } if at == frozen_at)) {
                self.shards.remove(id);
                tracing::info!(group = %self.group, config = %frozen_at, shard = %id, "shard deleted (gc)");
            }
        }
        Applied::Ok
    }

    fn apply_collected(&mut self, config: ConfigNum, shards: &[ShardId]) -> Applied {
        if config != self.config.num {
            return Applied::Stale;
        }
        for id in shards {
            if let Some(s) = self.shards.get_mut(id) {
                if matches!(s.phase, Phase::Collecting { .. }) {
                    s.phase = Phase::Serving;
                }
            }
        }
        Applied::Ok
    }

    /// Whether `shard` is held here frozen since `at`.
    #[must_use]
    pub fn holds_frozen(&self, at: ConfigNum, shard: ShardId) -> bool {
        self.shards.get(&shard).is_some_and(|s| matches!(s.phase, Phase::Frozen { at: a, .. } if a == at))
    }

    /// Those of `shards` held frozen at `at`, each with whether it went to no group.
    pub(crate) fn held_frozen(&self, at: ConfigNum, shards: &[ShardId]) -> Vec<(ShardId, bool)> {
        shards
            .iter()
            .filter_map(|id| match self.shards.get(id)?.phase {
                Phase::Frozen { at: a, to_nobody } if a == at => Some((*id, to_nobody)),
                _ => None,
            })
            .collect()
    }

    /// A read of `key`, if this group serves its shard.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, ApiError> {
        match self.shards.get(&self.shard_of(key)).filter(|s| s.serving()) {
            Some(s) => Ok(s.data.get(key).cloned()),
            None => Err(ApiError::WrongGroup { config: self.config.num }),
        }
    }

    /// The frozen data of `shards`, in order, for the group that gained
    /// them: the first shard's entries after key `after` (all when `None`),
    /// then the others', within `max_bytes` counting a few bytes of framing
    /// per entry (one entry when not even that fits). A shard cut short is
    /// the last run, marked `more`. The shards must have been frozen here at
    /// `frozen_at`.
    pub fn frozen(
        &self,
        frozen_at: ConfigNum,
        shards: &[ShardId],
        after: Option<&[u8]>,
        max_bytes: usize,
    ) -> Result<Vec<ShardData>, ApiError> {
        if self.config.num < frozen_at {
            return Err(ApiError::NotReady { config: self.config.num });
        }
        let mut out = Vec::with_capacity(shards.len());
        let mut budget = max_bytes;
        let mut start = after.map_or(Bound::Unbounded, Bound::Excluded);
        for id in shards {
            let Some(s) =
                self.shards.get(id).filter(|s| matches!(s.phase, Phase::Frozen { at, .. } if at == frozen_at))
            else {
                return Err(ApiError::Unavailable {
                    reason: format!("shard {id} is not held frozen at config {frozen_at} here"),
                });
            };
            let mut run = ShardData { shard: *id, ..ShardData::default() };
            for (k, v) in s.data.range::<[u8], _>((start, Bound::Unbounded)) {
                // An entry that does not fit waits for the next answer,
                // unless nothing was taken yet.
                let cost = k.len() + v.len() + ENTRY_FRAMING;
                if cost > budget && (!run.entries.is_empty() || !out.is_empty()) {
                    run.more = true;
                    break;
                }
                budget = budget.saturating_sub(cost);
                run.entries.push((k.clone(), v.clone()));
            }
            start = Bound::Unbounded;
            if run.more && run.entries.is_empty() {
                // Nothing of this shard fits: it starts the next answer.
                break;
            }
            if !run.more {
                run.dedup = s.dedup.entries().map(|(c, seq, ())| (c, seq)).collect();
                budget = budget.saturating_sub(run.dedup.len() * DEDUP_FRAMING);
            }
            let full = run.more || budget == 0;
            out.push(run);
            if full {
                break;
            }
        }
        Ok(out)
    }

    /// Where pulling `shards` stands: those still pulling, in the given
    /// order, resuming after the last key installed of the first one. Runs
    /// arrive in order, so the others have nothing installed; the cursor
    /// stops before any that has. `None` if none is pulling.
    #[must_use]
    pub(crate) fn pull_cursor(&self, shards: &[ShardId]) -> Option<PullCursor> {
        let mut pulling = shards
            .iter()
            .filter_map(|id| Some((*id, self.shards.get(id)?)))
            .filter(|(_, s)| matches!(s.phase, Phase::Pulling { .. }));
        let (first, shard) = pulling.next()?;
        let after = shard.data.last_key_value().map(|(k, _)| k.clone());
        let mut ids = vec![first];
        ids.extend(pulling.take_while(|(_, s)| s.data.is_empty()).map(|(id, _)| id));
        Some(PullCursor { shards: ids, after })
    }

    /// Shards to pull, by previous holder.
    #[must_use]
    pub fn pulls(&self) -> Vec<Exchange> {
        self.exchanges(|p| match p {
            Phase::Pulling { from, servers, frozen_at } => Some((*from, servers, *frozen_at)),
            _ => None,
        })
    }

    /// Installed shards whose previous holder must still delete its copy, by holder.
    #[must_use]
    pub fn collections(&self) -> Vec<Exchange> {
        self.exchanges(|p| match p {
            Phase::Collecting { from, servers, frozen_at } => Some((*from, servers, *frozen_at)),
            _ => None,
        })
    }

    fn exchanges<'a>(
        &'a self,
        pick: impl Fn(&'a Phase) -> Option<(GroupId, &'a Vec<String>, ConfigNum)>,
    ) -> Vec<Exchange> {
        let mut by: BTreeMap<(GroupId, ConfigNum), Exchange> = BTreeMap::new();
        for (&id, s) in &self.shards {
            if let Some((group, servers, frozen_at)) = pick(&s.phase) {
                by.entry((group, frozen_at))
                    .or_insert_with(|| Exchange { group, servers: servers.clone(), frozen_at, shards: Vec::new() })
                    .shards
                    .push(id);
            }
        }
        by.into_values().collect()
    }

    /// Where every held shard stands, in shard order.
    #[must_use]
    pub fn shard_status(&self) -> Vec<ShardStatus> {
        self.shards
            .iter()
            .map(|(&shard, s)| {
                let (state, from, frozen_at) = match s.phase {
                    Phase::Serving => (ShardState::Serving, None, None),
                    Phase::Pulling { from, frozen_at, .. } => (ShardState::Pulling, Some(from), Some(frozen_at)),
                    Phase::Collecting { from, frozen_at, .. } => (ShardState::Collecting, Some(from), Some(frozen_at)),
                    Phase::Frozen { at, .. } => (ShardState::Sending, None, Some(at)),
                };
                ShardStatus { shard, state, from, frozen_at }
            })
            .collect()
    }

    /// Bytes of keys and values held (frozen shards included).
    #[must_use]
    pub fn data_bytes(&self) -> usize {
        self.shards.values().map(Shard::bytes).sum()
    }

    /// The state's snapshot encoding (what [`ShardKvImage::pieces`] writes).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut all = BytesMut::new();
        for piece in self.image().pieces(1 << 20) {
            all.extend_from_slice(&piece);
        }
        all.freeze()
    }

    /// A copy of the state as it is now, for a snapshot written while the
    /// state goes on changing. It shares each shard's data instead of
    /// copying it (the next write to a shard copies that shard's map).
    #[must_use]
    pub fn image(&self) -> ShardKvImage {
        let mut e = Encoder::new();
        e.u64(self.group.0);
        put_config(&mut e, &self.config);
        e.u64(self.shards.len() as u64);
        ShardKvImage { header: e.finish(), shards: self.shards.iter().map(|(id, s)| (*id, s.clone())).collect() }
    }

    /// A state encoded by [`ShardKvState::encode`].
    pub fn decode(b: Bytes) -> Result<Self, BinaryError> {
        let mut d = Decoder::new(b);
        let group = GroupId(d.u64("group")?);
        let config = get_config(&mut d)?;
        let n = d.count("shards")?;
        let mut shards = BTreeMap::new();
        for _ in 0..n {
            let phase = get_phase(&mut d)?;
            let data = get_shard_data(&mut d)?;
            let mut dedup = DedupTable::new();
            for (client, seq) in data.dedup {
                dedup.record(RequestId { client, seq }, ());
            }
            shards.insert(data.shard, Shard { phase, data: Arc::new(data.entries.into_iter().collect()), dedup });
        }
        d.end("shardkv snapshot")?;
        Ok(Self { group, config, shards })
    }
}

fn put_phase(e: &mut Encoder, p: &Phase) {
    let mut exchange = |tag: u8, from: GroupId, servers: &[String], at: ConfigNum| {
        e.u8(tag).u64(from.0).u64(at.0).u64(servers.len() as u64);
        for s in servers {
            e.str(s);
        }
    };
    match p {
        Phase::Serving => {
            e.u8(0);
        }
        Phase::Pulling { from, servers, frozen_at } => exchange(1, *from, servers, *frozen_at),
        Phase::Collecting { from, servers, frozen_at } => exchange(2, *from, servers, *frozen_at),
        Phase::Frozen { at, to_nobody } => {
            e.u8(3).u64(at.0).u8(u8::from(*to_nobody));
        }
    }
}

fn get_phase(d: &mut Decoder) -> Result<Phase, BinaryError> {
    let tag = d.u8("phase")?;
    let exchange = |d: &mut Decoder| -> Result<(GroupId, Vec<String>, ConfigNum), BinaryError> {
        let from = GroupId(d.u64("from")?);
        let at = ConfigNum(d.u64("frozen at")?);
        let n = d.count("servers")?;
        let servers = (0..n).map(|_| d.string("server")).collect::<Result<_, _>>()?;
        Ok((from, servers, at))
    };
    Ok(match tag {
        0 => Phase::Serving,
        1 => {
            let (from, servers, frozen_at) = exchange(d)?;
            Phase::Pulling { from, servers, frozen_at }
        }
        2 => {
            let (from, servers, frozen_at) = exchange(d)?;
            Phase::Collecting { from, servers, frozen_at }
        }
        3 => Phase::Frozen { at: ConfigNum(d.u64("frozen at")?), to_nobody: d.u8("to nobody")? != 0 },
        other => return Err(BinaryError::Invalid { what: "phase", reason: format!("unknown tag {other}") }),
    })
}

/// Bytes counted for one entry of a pull's answer beyond its key and value:
/// the lengths and tags of its encoding.
const ENTRY_FRAMING: usize = 16;
/// Bytes counted for one entry of a duplicate table in a pull's answer.
const DEDUP_FRAMING: usize = 24;

/// Whether `entries` are in strictly ascending key order, all after `end`.
fn ascending_after(end: Option<&Bytes>, entries: &[(Bytes, Bytes)]) -> bool {
    let mut last = end;
    for (k, _) in entries {
        if last.is_some_and(|l| l >= k) {
            return false;
        }
        last = Some(k);
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::ClientId;

    const N: usize = 10;

    fn config(num: u64, owners: &[u64]) -> ShardConfig {
        let groups = owners
            .iter()
            .filter(|&&g| g != 0)
            .map(|&g| (GroupId(g), vec![format!("server-{g}-0")]))
            .collect::<BTreeMap<_, _>>();
        ShardConfig { num: ConfigNum(num), shards: owners.iter().map(|&g| GroupId(g)).collect(), groups }
    }

    fn cfg_cmd(c: ShardConfig, sources: BTreeMap<ShardId, ShardSource>) -> Bytes {
        Command::Config { config: c, sources }.encode()
    }

    fn write(client: u64, seq: u64, op: KvOp) -> Bytes {
        Command::Client { id: RequestId { client: ClientId(client), seq }, op }.encode()
    }

    fn put(k: &str, v: &str) -> KvOp {
        KvOp::Put { key: Bytes::from(k.to_string()), value: Bytes::from(v.to_string()) }
    }

    fn append(k: &str, v: &str) -> KvOp {
        KvOp::Append { key: Bytes::from(k.to_string()), value: Bytes::from(v.to_string()) }
    }

    /// A key in shard `s`.
    fn key_in(s: u64) -> String {
        (0..).map(|i| format!("k{i}")).find(|k| shard_of(k.as_bytes(), N) == ShardId(s)).unwrap()
    }

    #[test]
    fn a_shard_moves_between_groups_with_its_data_and_duplicate_table() {
        let mut g1 = ShardKvState::new(GroupId(1), N);
        let mut g2 = ShardKvState::new(GroupId(2), N);
        let all1 = [1; N];
        assert_eq!(g1.apply(cfg_cmd(config(1, &all1), BTreeMap::new())), Applied::Ok);
        assert_eq!(g2.apply(cfg_cmd(config(1, &all1), BTreeMap::new())), Applied::Ok);
        assert!(g1.settled() && g2.settled());
        let k0 = key_in(0);
        let k9 = key_in(9);
        assert_eq!(g1.apply(write(7, 1, put(&k0, "a"))), Applied::Ok);
        assert_eq!(g1.apply(write(7, 2, append(&k0, "b"))), Applied::Ok);
        assert_eq!(g1.apply(write(7, 3, put(&k9, "z"))), Applied::Ok);
        assert_eq!(g2.apply(write(8, 1, put(&k0, "x"))), Applied::WrongGroup { config: ConfigNum(1) });

        // Config 2: shards 0..5 go to group 2.
        let c2 = config(2, &[2, 2, 2, 2, 2, 1, 1, 1, 1, 1]);
        assert_eq!(g1.apply(cfg_cmd(c2.clone(), BTreeMap::new())), Applied::Ok);
        assert_eq!(g2.apply(cfg_cmd(c2, BTreeMap::new())), Applied::Ok);
        assert!(!g1.settled(), "group 1 holds frozen shards for group 2");
        assert_eq!(
            g1.get(k0.as_bytes()),
            Err(ApiError::WrongGroup { config: ConfigNum(2) }),
            "a frozen shard is not served"
        );
        assert_eq!(g1.get(k9.as_bytes()), Ok(Some(Bytes::from_static(b"z"))), "unaffected shards keep serving");
        assert_eq!(
            g2.get(k0.as_bytes()),
            Err(ApiError::WrongGroup { config: ConfigNum(2) }),
            "not served before it arrives"
        );
        assert_eq!(
            g1.apply(cfg_cmd(config(3, &all1), BTreeMap::new())),
            Applied::Stale,
            "no next config before settling"
        );

        let pulls = g2.pulls();
        assert_eq!(pulls.len(), 1);
        assert_eq!((pulls[0].group, pulls[0].frozen_at), (GroupId(1), ConfigNum(2)));
        assert_eq!(
            g1.frozen(ConfigNum(3), &pulls[0].shards, None, usize::MAX),
            Err(ApiError::NotReady { config: ConfigNum(2) })
        );
        let data = g1.frozen(pulls[0].frozen_at, &pulls[0].shards, None, usize::MAX).unwrap();
        let install = |config, shards| Command::Install { config: ConfigNum(config), after: None, shards }.encode();
        assert_eq!(g2.apply(install(1, data.clone())), Applied::Stale);
        assert_eq!(g2.apply(install(2, data.clone())), Applied::Ok);
        assert_eq!(g2.apply(install(2, data)), Applied::Stale, "installed once");
        assert_eq!(g2.get(k0.as_bytes()), Ok(Some(Bytes::from_static(b"ab"))), "served as soon as installed");
        assert_eq!(g2.apply(write(7, 2, append(&k0, "b"))), Applied::Ok);
        assert_eq!(
            g2.get(k0.as_bytes()),
            Ok(Some(Bytes::from_static(b"ab"))),
            "a retry is not applied twice after moving"
        );
        assert!(!g2.settled(), "collecting until the old holder deletes its copy");

        let gc = g2.collections();
        assert_eq!(
            g1.apply(Command::Delete { frozen_at: gc[0].frozen_at, shards: gc[0].shards.clone() }.encode()),
            Applied::Ok
        );
        assert!(g1.settled());
        assert!(g1.frozen(ConfigNum(2), &gc[0].shards, None, usize::MAX).is_err(), "deleted");
        assert_eq!(
            g2.apply(Command::Collected { config: ConfigNum(2), shards: gc[0].shards.clone() }.encode()),
            Applied::Ok
        );
        assert!(g2.settled());
        assert_eq!(g2.shard_status().len(), 5);
        assert_eq!(g1.data_bytes(), k9.len() + 1);

        let restored = ShardKvState::decode(g2.encode()).unwrap();
        assert_eq!(restored, g2);
        assert!(ShardKvState::decode(g2.encode().slice(..10)).is_err());
    }

    #[test]
    fn a_large_shard_moves_in_runs_that_land_in_order_once() {
        let mut g1 = ShardKvState::new(GroupId(1), N);
        let mut g2 = ShardKvState::new(GroupId(2), N);
        let all1 = [1; N];
        g1.apply(cfg_cmd(config(1, &all1), BTreeMap::new()));
        g2.apply(cfg_cmd(config(1, &all1), BTreeMap::new()));
        let keys: Vec<String> =
            (0..).map(|i| format!("key{i:04}")).filter(|k| shard_of(k.as_bytes(), N).0 < 2).take(60).collect();
        for (seq, k) in keys.iter().enumerate() {
            assert_eq!(g1.apply(write(5, seq as u64 + 1, put(k, "0123456789"))), Applied::Ok);
        }
        let c2 = config(2, &[2, 2, 1, 1, 1, 1, 1, 1, 1, 1]);
        g1.apply(cfg_cmd(c2.clone(), BTreeMap::new()));
        g2.apply(cfg_cmd(c2, BTreeMap::new()));
        let ex = g2.pulls().remove(0);
        assert_eq!(ex.shards, vec![ShardId(0), ShardId(1)]);

        let one = g1.frozen(ex.frozen_at, &ex.shards, None, 1).unwrap();
        assert_eq!(
            (one.len(), one[0].entries.len(), one[0].more),
            (1, 1, true),
            "an entry larger than the budget moves alone"
        );
        let mut cursor = g2.pull_cursor(&ex.shards).unwrap();
        assert_eq!(cursor.after, None);
        let mut runs_applied = 0;
        let mut before = None;
        loop {
            let runs = g1.frozen(ex.frozen_at, &cursor.shards, cursor.after.as_deref(), 100).unwrap();
            let taken: usize = runs.iter().flat_map(|r| &r.entries).map(|(k, v)| k.len() + v.len() + 16).sum();
            assert!(taken <= 100, "an answer stays within its byte budget: {taken}");
            let command = Command::Install { config: ConfigNum(2), after: cursor.after.clone(), shards: runs };
            assert_eq!(g2.apply(command.encode()), Applied::Ok);
            assert_eq!(g2.apply(command.encode()), Applied::Stale, "a repeated run changes nothing");
            if let Some(earlier) = before.replace(command) {
                assert_eq!(g2.apply(earlier.encode()), Applied::Stale, "an out-of-order run changes nothing");
            }
            runs_applied += 1;
            let Some(next) = g2.pull_cursor(&ex.shards) else { break };
            if next.shards[0] == ShardId(1) {
                let in0 = keys.iter().find(|k| shard_of(k.as_bytes(), N) == ShardId(0)).unwrap();
                assert!(g2.get(in0.as_bytes()).is_ok(), "a shard serves once its last run lands");
            }
            cursor = next;
        }
        assert!(runs_applied > 5, "{runs_applied} runs");
        for k in &keys {
            assert_eq!(g2.get(k.as_bytes()), Ok(Some(Bytes::from_static(b"0123456789"))), "{k}");
        }
        assert_eq!(g2.apply(write(5, 1, put(&keys[0], "again"))), Applied::Ok, "the duplicate table came last");
        assert_eq!(g2.get(keys[0].as_bytes()), Ok(Some(Bytes::from_static(b"0123456789"))));
        assert_eq!(g2.shard_status().iter().filter(|s| s.state == ShardState::Collecting).count(), 2);
    }

    #[test]
    fn an_image_keeps_the_state_it_was_taken_from_and_encodes_in_pieces() {
        let mut g = ShardKvState::new(GroupId(1), N);
        g.apply(cfg_cmd(config(1, &[1; N]), BTreeMap::new()));
        let keys: Vec<String> = (0..200).map(|i| format!("key{i:04}")).collect();
        for (seq, k) in keys.iter().enumerate() {
            assert_eq!(g.apply(write(5, seq as u64 + 1, put(k, "0123456789"))), Applied::Ok);
        }
        let before = g.clone();
        let image = g.image();
        // Writes after the image, to a shard it shares and to a new key.
        assert_eq!(g.apply(write(6, 1, put(&keys[0], "changed"))), Applied::Ok);
        assert_eq!(g.apply(write(6, 2, put("another", "x"))), Applied::Ok);
        assert_eq!(g.apply(write(6, 3, KvOp::Delete { key: Bytes::from(keys[1].clone()) })), Applied::Ok);

        let pieces: Vec<Bytes> = image.pieces(64).collect();
        assert!(pieces.len() > N + 1, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() < 64 + 32), "a piece ends right after the entry that fills it");
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(Bytes::from(joined), before.encode(), "the image encodes the state as it was taken");
        assert_eq!(ShardKvState::decode(before.encode()).unwrap(), before);
        assert_ne!(g.encode(), before.encode(), "the live state moved on");
        assert_eq!(g.get(keys[0].as_bytes()), Ok(Some(Bytes::from_static(b"changed"))));
    }

    #[test]
    fn a_run_out_of_key_order_is_refused() {
        let mut g2 = ShardKvState::new(GroupId(2), N);
        g2.apply(cfg_cmd(config(1, &[1; N]), BTreeMap::new()));
        let mut c2 = [1; N];
        c2[0] = 2;
        g2.apply(cfg_cmd(config(2, &c2), BTreeMap::new()));
        let entries = vec![(Bytes::from_static(b"b"), Bytes::new()), (Bytes::from_static(b"a"), Bytes::new())];
        let run = ShardData { shard: ShardId(0), entries, dedup: vec![], more: false };
        let command = Command::Install { config: ConfigNum(2), after: None, shards: vec![run] };
        assert_eq!(g2.apply(command.encode()), Applied::Stale);
        assert_eq!(g2.shard_status()[0].state, ShardState::Pulling);
    }

    #[test]
    fn a_shard_given_to_no_group_stays_parked_until_someone_gains_it() {
        let mut g1 = ShardKvState::new(GroupId(1), N);
        g1.apply(cfg_cmd(config(1, &[1; N]), BTreeMap::new()));
        let k3 = key_in(3);
        g1.apply(write(1, 1, put(&k3, "kept")));
        // Everyone leaves: the shards go to no group; group 1 may move on.
        assert_eq!(g1.apply(cfg_cmd(config(2, &[0; N]), BTreeMap::new())), Applied::Ok);
        assert!(g1.settled(), "parked shards do not hold the group back");
        assert!(g1.holds_frozen(ConfigNum(2), ShardId(3)));
        // Group 1 joins again: the proposer found it as the last holder.
        let sources = (0..N as u64)
            .map(|s| (ShardId(s), ShardSource { group: GroupId(1), servers: vec![], frozen_at: ConfigNum(2) }))
            .collect();
        assert_eq!(g1.apply(cfg_cmd(config(3, &[1; N]), sources)), Applied::Ok);
        assert_eq!(g1.get(k3.as_bytes()), Ok(Some(Bytes::from_static(b"kept"))));
        assert!(g1.settled());

        // Another group gaining a parked shard pulls it from its last holder.
        let mut g2 = ShardKvState::new(GroupId(2), N);
        g2.apply(cfg_cmd(config(1, &[1; N]), BTreeMap::new()));
        let source = ShardSource { group: GroupId(1), servers: vec!["server-1-0".into()], frozen_at: ConfigNum(2) };
        g2.apply(cfg_cmd(config(2, &[0; N]), BTreeMap::new()));
        let mut owners = [0; N];
        owners[3] = 2;
        assert_eq!(g2.apply(cfg_cmd(config(3, &owners), BTreeMap::from([(ShardId(3), source)]))), Applied::Ok);
        let pulls = g2.pulls();
        assert_eq!(
            (pulls[0].group, pulls[0].frozen_at, pulls[0].shards.clone()),
            (GroupId(1), ConfigNum(2), vec![ShardId(3)])
        );
        // A shard nobody ever held starts empty and serves at once.
        let mut g3 = ShardKvState::new(GroupId(3), N);
        g3.apply(cfg_cmd(config(1, &[3; N]), BTreeMap::new()));
        assert!(g3.settled());
        assert_eq!(g3.get(k3.as_bytes()), Ok(None));
    }

    #[test]
    fn a_parked_copy_is_not_overwritten_before_its_new_holder_fetched_it() {
        // c1: group 1 holds everything; c2: it goes to no group (parked at 1);
        // c3: group 2 gains shard 3 from nobody (pulling from group 1's parked copy);
        // c4: group 1 gains shard 3 from group 2 — it must wait until group 2
        // has fetched the parked copy and asked to delete it.
        let mut g1 = ShardKvState::new(GroupId(1), N);
        g1.apply(cfg_cmd(config(1, &[1; N]), BTreeMap::new()));
        let k3 = key_in(3);
        g1.apply(write(1, 1, put(&k3, "precious")));
        g1.apply(cfg_cmd(config(2, &[0; N]), BTreeMap::new()));
        let mut c3 = [0; N];
        c3[3] = 2;
        assert_eq!(g1.apply(cfg_cmd(config(3, &c3), BTreeMap::new())), Applied::Ok);
        let mut c4 = [0; N];
        c4[3] = 1;
        let next = config(4, &c4);
        assert!(g1.waits_for_parked(&next, &BTreeMap::new()));
        assert_eq!(
            g1.apply(cfg_cmd(next.clone(), BTreeMap::new())),
            Applied::Stale,
            "must not overwrite the parked copy"
        );
        assert!(g1.holds_frozen(ConfigNum(2), ShardId(3)));
        // Group 2 fetched it and asks for deletion: now group 1 may move on.
        let data = g1.frozen(ConfigNum(2), &[ShardId(3)], None, usize::MAX).unwrap();
        assert_eq!(data[0].entries.len(), 1);
        g1.apply(Command::Delete { frozen_at: ConfigNum(2), shards: vec![ShardId(3)] }.encode());
        assert!(!g1.waits_for_parked(&next, &BTreeMap::new()));
        assert_eq!(g1.apply(cfg_cmd(next, BTreeMap::new())), Applied::Ok);
        assert_eq!(g1.pulls()[0].group, GroupId(2), "and now pulls it from group 2");
    }

    #[test]
    fn a_parked_copy_waits_for_its_fetcher_when_regained_from_no_group() {
        // c2: everything to no group (parked at 1); c3: group 2 gains shard 3
        // (pulling group 1's parked copy); c4: shard 3 to no group again; c5:
        // group 1 gains it from no group, its last holder being group 2 —
        // group 1 must keep its parked copy until group 2 fetched it.
        let mut g1 = ShardKvState::new(GroupId(1), N);
        g1.apply(cfg_cmd(config(1, &[1; N]), BTreeMap::new()));
        g1.apply(write(1, 1, put(&key_in(3), "precious")));
        g1.apply(cfg_cmd(config(2, &[0; N]), BTreeMap::new()));
        let mut c3 = [0; N];
        c3[3] = 2;
        assert_eq!(g1.apply(cfg_cmd(config(3, &c3), BTreeMap::new())), Applied::Ok);
        assert_eq!(g1.apply(cfg_cmd(config(4, &[0; N]), BTreeMap::new())), Applied::Ok);
        let mut c5 = [0; N];
        c5[3] = 1;
        let from_g2 = BTreeMap::from([(
            ShardId(3),
            ShardSource { group: GroupId(2), servers: vec!["server-2-0".into()], frozen_at: ConfigNum(4) },
        )]);
        assert!(g1.waits_for_parked(&config(5, &c5), &from_g2));
        assert_eq!(g1.apply(cfg_cmd(config(5, &c5), from_g2.clone())), Applied::Stale);
        assert!(g1.holds_frozen(ConfigNum(2), ShardId(3)), "the copy group 2 is pulling stays");
        // Its own parked copy, when group 1 is the last holder, is reclaimed at once.
        let from_g1 =
            BTreeMap::from([(ShardId(3), ShardSource { group: GroupId(1), servers: vec![], frozen_at: ConfigNum(2) })]);
        assert!(!g1.waits_for_parked(&config(5, &c5), &from_g1));
        g1.apply(Command::Delete { frozen_at: ConfigNum(2), shards: vec![ShardId(3)] }.encode());
        assert_eq!(g1.apply(cfg_cmd(config(5, &c5), from_g2)), Applied::Ok, "after group 2 deleted it");
        assert_eq!(g1.pulls()[0].group, GroupId(2));
    }

    #[test]
    fn malformed_and_oversize_commands_do_not_corrupt_the_state() {
        let mut g = ShardKvState::new(GroupId(1), N);
        assert!(matches!(g.apply(Bytes::from_static(b"\xff\x00")), Applied::Malformed(_)));
        assert_eq!(g.apply(cfg_cmd(config(5, &[1; N]), BTreeMap::new())), Applied::Stale, "configs advance one by one");
        assert_eq!(g.config().num, ConfigNum(0));
    }

    #[test]
    fn appends_stop_at_the_size_a_key_may_hold_and_a_refused_one_changes_nothing() {
        let mut g = ShardKvState::new(GroupId(1), N);
        assert_eq!(g.apply(cfg_cmd(config(1, &[1; N]), BTreeMap::new())), Applied::Ok);
        let k = key_in(3);
        let mb = "x".repeat(1 << 20);
        for seq in 1..=4 {
            assert_eq!(g.apply(write(7, seq, append(&k, &mb))), Applied::Ok, "append {seq} of 1 MiB");
        }
        let refused = g.apply(write(7, 5, append(&k, "y")));
        assert!(matches!(&refused, Applied::Refused(why) if why.contains("limit")), "{refused:?}");
        assert_eq!(g.get(k.as_bytes()).unwrap().map(|v| v.len()), Some(MAX_STORED_VALUE_BYTES));
        // Not recorded as done: the same request is judged again, and a delete makes room.
        assert_eq!(g.apply(write(8, 1, KvOp::Delete { key: Bytes::from(k.clone()) })), Applied::Ok);
        assert_eq!(g.apply(write(7, 5, append(&k, "y"))), Applied::Ok);
        assert_eq!(g.get(k.as_bytes()), Ok(Some(Bytes::from_static(b"y"))));
        let too_big = "z".repeat(MAX_STORED_VALUE_BYTES + 1);
        assert!(matches!(g.apply(write(7, 6, put(&k, &too_big))), Applied::Refused(_)));
    }
}
