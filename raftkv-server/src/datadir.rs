//! The identity of a data dir: the cluster, the shard count, the storage
//! backend and the members (group, node id) it was created for, recorded
//! once in `<data_dir>/IDENTITY` and compared on every start. A process
//! asked to be anything else is refused before it opens the storage, so a
//! replica started on another member's, group's or cluster's data dir, or
//! with another shard count, neither starts empty nor touches what is there.
//!
//! The file is text, one `key value` per line, ending with a CRC-32C of
//! everything before that line:
//!
//! ```text
//! # RaftKV data dir identity: written once, when the data dir was created; checked on every start. Do not edit.
//! format 1
//! cluster raftkv
//! shards 10
//! storage redb
//! member 1 1
//! crc32c 5a0b2c1d
//! ```
//!
//! It is written atomically: a temporary file, fsynced, linked to its name
//! (which fails if another process created it meanwhile), and the directory
//! fsynced. `mem` storage keeps nothing, so it has no identity file.
//!
//! A data dir that holds Raft state but no identity file was made by an
//! older version, which recorded none. Its snapshot directories name the
//! members it holds (`snapshots/g<group>-n<node>`): another member is
//! refused. The cluster and the shard count cannot be read back from it, so
//! it is refused too, after writing the record this start would make to
//! `IDENTITY.proposed`; an operator who checked those values adopts the dir
//! by renaming that file to `IDENTITY`.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use raftkv_core::storage::codec::crc32c;
use raftkv_core::{GroupId, NodeId};

use crate::backend::Storage;
use crate::config::{Config, Role, StorageKind};
use crate::node::CTRL_GROUP;

/// Name of the identity file in a data dir.
pub const IDENTITY_FILE: &str = "IDENTITY";

/// Name of the record proposed for a data dir made by an older version.
pub const PROPOSED_FILE: &str = "IDENTITY.proposed";

/// The identity file format this build writes (and the only one it reads).
pub const FORMAT_VERSION: u32 = 1;

const HEADER: &str =
    "# RaftKV data dir identity: written once, when the data dir was created; checked on every start. Do not edit.";

/// Names of the files and directories the storage backends keep in a data dir.
const STATE_NAMES: [&str; 7] = [
    "raftkv.redb",
    "raftkv.wal",
    "raftkv.sqlite",
    "raftkv.sqlite-wal",
    "raftkv.sqlite-shm",
    "raftkv.sqlite-journal",
    "snapshots",
];

/// One Raft member a data dir holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// Its group (the controller's is group 0).
    pub group: GroupId,
    /// Its node id in the group (its position in `peers`, from 1).
    pub node: NodeId,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group == CTRL_GROUP {
            write!(f, "member {} of the controller group", self.node)
        } else {
            write!(f, "member {} of group {}", self.node, self.group)
        }
    }
}

/// A set of members in words: `member 1 of group 1, member 2 of group 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Members(pub BTreeSet<Member>);

impl fmt::Display for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no member");
        }
        let words: Vec<String> = self.0.iter().map(Member::to_string).collect();
        f.write_str(&words.join(", "))
    }
}

/// What a data dir was created for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The cluster's name (configuration key `cluster`).
    pub cluster: String,
    /// Shards in the cluster.
    pub shards: usize,
    /// The storage backend that keeps the Raft state.
    pub storage: StorageKind,
    /// The members the process hosts.
    pub members: BTreeSet<Member>,
}

fn storage_name(kind: StorageKind) -> &'static str {
    match kind {
        StorageKind::Redb => "redb",
        StorageKind::Sqlite => "sqlite",
        StorageKind::Mem => "mem",
    }
}

/// Why a data dir may not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// Reading or writing the data dir failed.
    #[error("data dir: {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The identity file does not read back as written.
    #[error("identity file {} is damaged ({reason}); the data dir is left as it is", file.display())]
    Damaged {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The identity file is of a format this build does not know.
    #[error(
        "identity file {} is of format version {version}, which this build does not read (it reads version {newest}): it was written by a newer raftkv-server",
        file.display(), newest = FORMAT_VERSION
    )]
    UnsupportedFormat {
        /// The file.
        file: PathBuf,
        /// The version it names.
        version: String,
    },
    /// The data dir was created for something else than this start asks.
    #[error("{0}")]
    Mismatch(Box<Mismatch>),
    /// A data dir made by an older version holds Raft state of other members.
    #[error(
        "data dir {} has no identity file (an older raftkv-server made it) and holds {found}, not {asked}; it is left as it is",
        dir.display()
    )]
    OlderOtherMembers {
        /// The data dir.
        dir: PathBuf,
        /// The members its snapshot directories name.
        found: Members,
        /// The members asked for.
        asked: Members,
    },
    /// A data dir made by an older version, which recorded no identity.
    #[error(
        "data dir {} holds Raft state ({}) but no identity file: an older raftkv-server made it, which did not record the cluster, shard count and members it belongs to, so they cannot be checked. If it is {identity}, adopt it by checking and renaming {} to {}",
        dir.display(), found.join(", "), proposed.display(), dir.join(IDENTITY_FILE).display()
    )]
    Older {
        /// The data dir.
        dir: PathBuf,
        /// The storage files and directories it holds.
        found: Vec<String>,
        /// What this start would record, in words.
        identity: String,
        /// Where that record was written.
        proposed: PathBuf,
    },
}

/// What differs between a data dir's identity and the one asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// Another cluster.
    #[error("data dir {} belongs to cluster {recorded:?}, not {asked:?} (`cluster` / --cluster); it is left as it is", dir.display())]
    Cluster {
        /// The data dir.
        dir: PathBuf,
        /// The cluster it records.
        recorded: String,
        /// The cluster asked for.
        asked: String,
    },
    /// Other members.
    #[error("data dir {} belongs to {recorded}, not {asked}; it is left as it is", dir.display())]
    Members {
        /// The data dir.
        dir: PathBuf,
        /// The members it records.
        recorded: Members,
        /// The members asked for.
        asked: Members,
    },
    /// Another shard count.
    #[error(
        "data dir {} belongs to a cluster of {recorded} shards, not {asked} (`shards` / --shards): the shard count is fixed when a cluster is created; it is left as it is",
        dir.display()
    )]
    Shards {
        /// The data dir.
        dir: PathBuf,
        /// The count it records.
        recorded: usize,
        /// The count asked for.
        asked: usize,
    },
    /// Another storage backend.
    #[error(
        "data dir {} holds {} storage, not {} (`storage` / --storage); it is left as it is",
        dir.display(), storage_name(*recorded), storage_name(*asked)
    )]
    Storage {
        /// The data dir.
        dir: PathBuf,
        /// The backend it records.
        recorded: StorageKind,
        /// The backend asked for.
        asked: StorageKind,
    },
}

impl From<Mismatch> for DataDirError {
    fn from(m: Mismatch) -> Self {
        Self::Mismatch(Box::new(m))
    }
}

/// What [`claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The data dir was new: its identity is recorded now.
    Created,
    /// The data dir's identity is the one asked for.
    Matched,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io { path: path.to_path_buf(), source }
}

impl Identity {
    /// What a process of `cfg` hosts: the `dev` role every controller and
    /// every group's replicas, the other roles their one member.
    #[must_use]
    pub fn of(cfg: &Config) -> Self {
        let me = NodeId(cfg.me as u64);
        let members = match cfg.role {
            Role::Ctrler => BTreeSet::from([Member { group: CTRL_GROUP, node: me }]),
            Role::Shardkv => BTreeSet::from([Member { group: GroupId(cfg.group), node: me }]),
            Role::Dev => {
                let ctrlers = (1..=cfg.dev.ctrlers as u64).map(|n| Member { group: CTRL_GROUP, node: NodeId(n) });
                let groups = (1..=cfg.dev.groups as u64).flat_map(|g| {
                    (1..=cfg.dev.replicas as u64).map(move |n| Member { group: GroupId(g), node: NodeId(n) })
                });
                ctrlers.chain(groups).collect()
            }
        };
        Self { cluster: cfg.cluster.clone(), shards: cfg.shards, storage: cfg.storage, members }
    }

    /// The identity file's text.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut body = format!(
            "{HEADER}\nformat {FORMAT_VERSION}\ncluster {}\nshards {}\nstorage {}\n",
            self.cluster,
            self.shards,
            storage_name(self.storage)
        );
        for m in &self.members {
            body.push_str(&format!("member {} {}\n", m.group.0, m.node.0));
        }
        let crc = crc32c(body.as_bytes());
        body.push_str(&format!("crc32c {crc:08x}\n"));
        body
    }

    /// Read an identity file's text (`file` names it in errors).
    pub fn decode(file: &Path, text: &[u8]) -> Result<Self, DataDirError> {
        let damaged = |reason: String| DataDirError::Damaged { file: file.to_path_buf(), reason };
        let text = std::str::from_utf8(text).map_err(|_| damaged("not UTF-8 text".into()))?;
        let version = text.lines().find(|l| !l.starts_with('#')).and_then(|l| l.strip_prefix("format "));
        let supported = version == Some(&FORMAT_VERSION.to_string());
        let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
        let (body, last) = text.split_at(body_end);
        let checksum =
            last.trim_end_matches('\n').strip_prefix("crc32c ").and_then(|h| u32::from_str_radix(h, 16).ok());
        let unsupported = || match version {
            Some(v) if v.parse::<u32>().is_ok() => {
                DataDirError::UnsupportedFormat { file: file.to_path_buf(), version: v.to_string() }
            }
            _ => damaged("it names no format version".into()),
        };
        match checksum {
            // Intact: a newer format is named as such.
            Some(c) if c == crc32c(body.as_bytes()) && last.ends_with('\n') => {
                if !supported {
                    return Err(unsupported());
                }
            }
            Some(c) if c == crc32c(body.as_bytes()) => return Err(damaged("it is cut short".into())),
            Some(_) => return Err(damaged("its crc32c checksum does not match its contents".into())),
            // No checksum this build knows: a newer format, or damage.
            None if !supported && version.is_some_and(|v| v.parse::<u32>().is_ok()) => return Err(unsupported()),
            None => {
                return Err(damaged("its last line is not its crc32c checksum: it is cut short or was edited".into()))
            }
        }
        let (mut cluster, mut shards, mut storage, mut members) = (None, None, None, BTreeSet::new());
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let (key, value) = line.split_once(' ').ok_or_else(|| damaged(format!("line {line:?} has no value")))?;
            let number =
                |what: &str| value.parse::<u64>().map_err(|_| damaged(format!("{what} {value:?} is not a number")));
            match key {
                "format" => {}
                "cluster" if cluster.is_none() => cluster = Some(value.to_string()),
                "shards" if shards.is_none() => shards = Some(number("shards")? as usize),
                "storage" if storage.is_none() => {
                    storage = Some(match value {
                        "redb" => StorageKind::Redb,
                        "sqlite" => StorageKind::Sqlite,
                        "mem" => StorageKind::Mem,
                        other => return Err(damaged(format!("unknown storage {other:?}"))),
                    });
                }
                "member" => {
                    let (g, n) = value.split_once(' ').ok_or_else(|| damaged(format!("line {line:?}")))?;
                    let parse = |s: &str| s.parse::<u64>().map_err(|_| damaged(format!("line {line:?}")));
                    members.insert(Member { group: GroupId(parse(g)?), node: NodeId(parse(n)?) });
                }
                other => return Err(damaged(format!("unexpected line {other:?}"))),
            }
        }
        match (cluster, shards, storage) {
            (Some(cluster), Some(shards), Some(storage)) if !members.is_empty() => {
                Ok(Self { cluster, shards, storage, members })
            }
            _ => Err(damaged("it lacks its cluster, shards, storage or members".into())),
        }
    }

    /// The first difference between this, a data dir's record, and `asked`.
    fn compare(&self, dir: &Path, asked: &Self) -> Result<(), Mismatch> {
        let dir = dir.to_path_buf();
        if self.cluster != asked.cluster {
            return Err(Mismatch::Cluster { dir, recorded: self.cluster.clone(), asked: asked.cluster.clone() });
        }
        if self.members != asked.members {
            let (recorded, asked) = (Members(self.members.clone()), Members(asked.members.clone()));
            return Err(Mismatch::Members { dir, recorded, asked });
        }
        if self.shards != asked.shards {
            return Err(Mismatch::Shards { dir, recorded: self.shards, asked: asked.shards });
        }
        if self.storage != asked.storage {
            return Err(Mismatch::Storage { dir, recorded: self.storage, asked: asked.storage });
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "{} of cluster {:?} with {} shards on {} storage",
            Members(self.members.clone()),
            self.cluster,
            self.shards,
            storage_name(self.storage)
        )
    }
}

/// The identity recorded in `dir`, if it has an identity file.
pub fn recorded(dir: &Path) -> Result<Option<Identity>, DataDirError> {
    let file = dir.join(IDENTITY_FILE);
    match fs::read(&file) {
        Ok(text) => Identity::decode(&file, &text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&file)(e)),
    }
}

/// Check that `dir` belongs to `asked`, recording `asked` in it if it is
/// new (absent, or holding no Raft state). Changes nothing in a data dir
/// it refuses, except writing [`PROPOSED_FILE`] into one made by an older
/// version.
pub fn claim(dir: &Path, asked: &Identity) -> Result<Claim, DataDirError> {
    if let Some(recorded) = recorded(dir)? {
        recorded.compare(dir, asked)?;
        return Ok(Claim::Matched);
    }
    let found = storage_entries(dir)?;
    if !found.is_empty() {
        let held = snapshot_members(dir)?;
        if !held.is_empty() && held != asked.members {
            return Err(DataDirError::OlderOtherMembers {
                dir: dir.to_path_buf(),
                found: Members(held),
                asked: Members(asked.members.clone()),
            });
        }
        let proposed = dir.join(PROPOSED_FILE);
        write_atomically(dir, &proposed, asked.encode().as_bytes(), Replace::Yes)?;
        return Err(DataDirError::Older { dir: dir.to_path_buf(), found, identity: asked.describe(), proposed });
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    match write_atomically(dir, &dir.join(IDENTITY_FILE), asked.encode().as_bytes(), Replace::No) {
        Ok(()) => Ok(Claim::Created),
        // Another process created it meanwhile: it must be the same.
        Err(DataDirError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            match recorded(dir)? {
                Some(recorded) => recorded.compare(dir, asked).map(|()| Claim::Matched).map_err(Into::into),
                None => Err(io(dir)(source)),
            }
        }
        Err(e) => Err(e),
    }
}

/// Open the storage `cfg` names in its data dir, once the data dir's
/// identity is checked (a new data dir's recorded first). `mem` storage
/// keeps nothing, so it has no identity.
pub async fn open_storage(cfg: &Config) -> anyhow::Result<Storage> {
    if cfg.storage != StorageKind::Mem {
        let (dir, asked) = (cfg.data_dir.clone(), Identity::of(cfg));
        let claimed = tokio::task::spawn_blocking(move || claim(&dir, &asked)).await??;
        if claimed == Claim::Created {
            tracing::info!(dir = %cfg.data_dir.display(), "new data dir: recorded its identity in {IDENTITY_FILE}");
        }
    }
    Storage::open(cfg.storage, &cfg.data_dir).await
}

/// The storage files and directories in `dir` (none if it does not exist).
fn storage_entries(dir: &Path) -> Result<Vec<String>, DataDirError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let name = entry.map_err(io(dir))?.file_name().to_string_lossy().into_owned();
        if STATE_NAMES.contains(&name.as_str()) {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

/// The members whose snapshot directories (`snapshots/g<group>-n<node>`,
/// made by both durable backends) `dir` holds.
fn snapshot_members(dir: &Path) -> Result<BTreeSet<Member>, DataDirError> {
    let snapshots = dir.join("snapshots");
    let entries = match fs::read_dir(&snapshots) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(io(&snapshots)(e)),
    };
    let mut members = BTreeSet::new();
    for entry in entries {
        let name = entry.map_err(io(&snapshots))?.file_name().to_string_lossy().into_owned();
        let parsed = name
            .strip_prefix('g')
            .and_then(|rest| rest.split_once("-n"))
            .and_then(|(g, n)| Some(Member { group: GroupId(g.parse().ok()?), node: NodeId(n.parse().ok()?) }));
        members.extend(parsed);
    }
    Ok(members)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

/// Write `bytes` to `file` in `dir` atomically: a temporary file, fsynced,
/// then linked to `file` (`Replace::No`: fails with `AlreadyExists` if it
/// exists) or renamed over it, then `dir` fsynced.
fn write_atomically(dir: &Path, file: &Path, bytes: &[u8], replace: Replace) -> Result<(), DataDirError> {
    let name = file.file_name().map_or_else(|| "identity".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    let placed = match replace {
        Replace::Yes => fs::rename(&tmp, file),
        Replace::No => match fs::hard_link(&tmp, file) {
            Ok(()) => fs::remove_file(&tmp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
            // A file system without hard links: rename (which would replace
            // the file of a process creating it at this very moment).
            Err(_) => fs::rename(&tmp, file),
        },
    };
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(io(file)(e));
    }
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn member(g: u64, n: u64) -> Member {
        Member { group: GroupId(g), node: NodeId(n) }
    }

    fn identity(members: &[(u64, u64)]) -> Identity {
        Identity {
            cluster: "raftkv".into(),
            shards: 10,
            storage: StorageKind::Redb,
            members: members.iter().map(|&(g, n)| member(g, n)).collect(),
        }
    }

    fn message(e: impl std::fmt::Display) -> String {
        e.to_string()
    }

    #[test]
    fn an_identity_round_trips_through_its_file() {
        let id = identity(&[(0, 1), (0, 2), (1, 1), (2, 3)]);
        let text = id.encode();
        assert!(text.starts_with("# RaftKV data dir identity"));
        assert!(text.contains("\nformat 1\ncluster raftkv\nshards 10\nstorage redb\nmember 0 1\n"), "{text}");
        assert_eq!(Identity::decode(Path::new("d/IDENTITY"), text.as_bytes()).unwrap(), id);
    }

    #[test]
    fn a_damaged_identity_file_is_refused_naming_the_file() {
        let text = identity(&[(1, 1)]).encode().into_bytes();
        let file = Path::new("d/g1-1/IDENTITY");
        // Any changed byte, and any cut, is caught.
        for i in 0..text.len() {
            let mut bad = text.clone();
            bad[i] ^= 0x04;
            let e = Identity::decode(file, &bad).expect_err("a changed byte is caught");
            assert!(message(&e).contains("d/g1-1/IDENTITY"), "{e}");
        }
        for cut in 0..text.len() {
            let e = Identity::decode(file, &text[..cut]).expect_err("a cut file is caught");
            assert!(message(&e).contains("identity file d/g1-1/IDENTITY is damaged"), "{e}");
        }
        let e = Identity::decode(file, b"member 2 2\n").unwrap_err();
        assert_eq!(
            message(e),
            "identity file d/g1-1/IDENTITY is damaged (its last line is not its crc32c checksum: it is cut short \
             or was edited); the data dir is left as it is"
        );
        // An edit that keeps the lines well formed is caught by the checksum.
        let edited = String::from_utf8(text).unwrap().replace("member 1 1", "member 2 1");
        assert_eq!(
            message(Identity::decode(file, edited.as_bytes()).unwrap_err()),
            "identity file d/g1-1/IDENTITY is damaged (its crc32c checksum does not match its contents); the data \
             dir is left as it is"
        );
    }

    #[test]
    fn an_identity_file_of_another_format_version_is_refused_naming_the_version() {
        let body = format!("{HEADER}\nformat 2\ncluster raftkv\nwhatever new\n");
        let text = format!("{body}crc32c {:08x}\n", crc32c(body.as_bytes()));
        let e = Identity::decode(Path::new("d/IDENTITY"), text.as_bytes()).unwrap_err();
        assert_eq!(
            message(e),
            "identity file d/IDENTITY is of format version 2, which this build does not read (it reads version 1): \
             it was written by a newer raftkv-server"
        );
        // Even when the newer format checks itself another way.
        let e = Identity::decode(Path::new("d/IDENTITY"), b"format 3\nsha256 abc\n").unwrap_err();
        assert!(message(e).contains("format version 3"));
    }

    #[test]
    fn a_data_dir_is_recorded_once_and_refused_to_anyone_else() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("g1-1");
        let mine = identity(&[(1, 1)]);
        assert_eq!(claim(&dir, &mine).unwrap(), Claim::Created);
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec![IDENTITY_FILE.to_string()], "no temporary file is left");
        assert_eq!(claim(&dir, &mine).unwrap(), Claim::Matched);
        let written = fs::read(dir.join(IDENTITY_FILE)).unwrap();
        let d = dir.display();

        let other_group = identity(&[(2, 1)]);
        assert_eq!(
            message(claim(&dir, &other_group).unwrap_err()),
            format!("data dir {d} belongs to member 1 of group 1, not member 1 of group 2; it is left as it is")
        );
        let ctrler = identity(&[(0, 1)]);
        assert_eq!(
            message(claim(&dir, &ctrler).unwrap_err()),
            format!(
                "data dir {d} belongs to member 1 of group 1, not member 1 of the controller group; it is left as it is"
            )
        );
        let other_cluster = Identity { cluster: "prod-b".into(), ..mine.clone() };
        assert_eq!(
            message(claim(&dir, &other_cluster).unwrap_err()),
            format!("data dir {d} belongs to cluster \"raftkv\", not \"prod-b\" (`cluster` / --cluster); it is left as it is")
        );
        let other_shards = Identity { shards: 20, ..mine.clone() };
        assert_eq!(
            message(claim(&dir, &other_shards).unwrap_err()),
            format!(
                "data dir {d} belongs to a cluster of 10 shards, not 20 (`shards` / --shards): the shard count is \
                 fixed when a cluster is created; it is left as it is"
            )
        );
        let other_storage = Identity { storage: StorageKind::Sqlite, ..mine.clone() };
        assert_eq!(
            message(claim(&dir, &other_storage).unwrap_err()),
            format!("data dir {d} holds redb storage, not sqlite (`storage` / --storage); it is left as it is")
        );
        assert_eq!(fs::read(dir.join(IDENTITY_FILE)).unwrap(), written, "refusals change nothing");
    }

    #[test]
    fn a_data_dir_of_an_older_version_is_refused_with_a_record_to_adopt_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("g1-1");
        fs::create_dir_all(dir.join("snapshots").join("g1-n1")).unwrap();
        fs::write(dir.join("raftkv.redb"), b"state").unwrap();
        let e = claim(&dir, &identity(&[(2, 1)])).unwrap_err();
        assert_eq!(
            message(e),
            format!(
                "data dir {} has no identity file (an older raftkv-server made it) and holds member 1 of group 1, \
                 not member 1 of group 2; it is left as it is",
                dir.display()
            )
        );
        assert!(!dir.join(PROPOSED_FILE).exists());
        let mine = identity(&[(1, 1)]);
        let e = claim(&dir, &mine).unwrap_err();
        let m = message(&e);
        assert!(m.contains("holds Raft state (raftkv.redb, snapshots) but no identity file"), "{m}");
        assert!(m.contains("If it is member 1 of group 1 of cluster \"raftkv\" with 10 shards on redb storage"), "{m}");
        assert!(m.contains(&format!("renaming {}", dir.join(PROPOSED_FILE).display())), "{m}");
        assert!(!dir.join(IDENTITY_FILE).exists(), "refused, not adopted");
        fs::rename(dir.join(PROPOSED_FILE), dir.join(IDENTITY_FILE)).unwrap();
        assert_eq!(claim(&dir, &mine).unwrap(), Claim::Matched, "adopted by the operator");
        assert_eq!(fs::read(dir.join("raftkv.redb")).unwrap(), b"state");
    }

    #[test]
    fn a_dev_process_records_every_member_and_the_other_roles_their_one() {
        let mut cfg = Config { cluster: "c".into(), ..Config::default() };
        cfg.dev.ctrlers = 2;
        cfg.dev.groups = 2;
        cfg.dev.replicas = 1;
        let dev = Identity::of(&cfg);
        assert_eq!(dev.members, BTreeSet::from([member(0, 1), member(0, 2), member(1, 1), member(2, 1)]));
        assert_eq!(dev.cluster, "c");
        let kv = Identity::of(&Config { role: Role::Shardkv, group: 3, me: 2, ..cfg.clone() });
        assert_eq!(kv.members, BTreeSet::from([member(3, 2)]));
        let ctrl = Identity::of(&Config { role: Role::Ctrler, me: 1, ..cfg });
        assert_eq!(ctrl.members, BTreeSet::from([member(0, 1)]));
    }
}
