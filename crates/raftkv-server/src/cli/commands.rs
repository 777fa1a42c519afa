//! The CLI's commands in the seed's syntax — `Join gid:addr1,addr2 ...`,
//! `Leave gid1,gid2`, `Move shard gid`, `Query [num]`; `Put key value`,
//! `Get key`, `Append key suffix`, `Delete key` — parsed (case-insensitive
//! command words) and carried out, each answer printed in the chosen format.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftkv_core::client::{ClerkError, CtrlClerk, KvClerk};
use raftkv_core::{ConfigNum, GroupId, ShardId};

use super::format::{self, Format};

/// The controller REPL's banner.
pub const CTRL_BANNER: &str =
    "Supported commands:\n  Join gid:addr1,addr2 ...\n  Leave gid1,gid2,...\n  Move shard gid\n  Query [num]";
/// The KV REPL's banner.
pub const KV_BANNER: &str = "Supported commands: Put key value | Get key | Append key suffix | Delete key";

/// A controller command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlCommand {
    /// Add groups.
    Join(BTreeMap<GroupId, Vec<String>>),
    /// Remove groups.
    Leave(Vec<GroupId>),
    /// Assign a shard.
    Move(ShardId, GroupId),
    /// Read a configuration (`None`: the latest).
    Query(Option<ConfigNum>),
}

/// A key-value command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvCommand {
    /// Set a key.
    Put(String, String),
    /// Read a key.
    Get(String),
    /// Append to a key.
    Append(String, String),
    /// Remove a key.
    Delete(String),
}

const JOIN_FORMAT: &str = "Invalid Join format; expected gid:addr1,addr2";
const LEAVE_FORMAT: &str = "Invalid Leave format; expected gid1,gid2,...";

/// Split off the first word of `line` and the rest (trimmed).
fn split(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim()),
        None => (line, ""),
    }
}

/// Parse one controller line; `Ok(None)` for a blank line; `Err` is what to print.
pub fn parse_ctrl(line: &str) -> Result<Option<CtrlCommand>, String> {
    let (word, rest) = split(line);
    if word.is_empty() {
        return Ok(None);
    }
    match word.to_ascii_lowercase().as_str() {
        "join" => {
            let mut groups = BTreeMap::new();
            for part in rest.split_whitespace() {
                let (gid, addrs) = part.split_once(':').ok_or(JOIN_FORMAT)?;
                let gid: u64 = gid.parse().map_err(|_| JOIN_FORMAT)?;
                let servers: Vec<String> = addrs.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
                if gid == 0 || servers.is_empty() || groups.insert(GroupId(gid), servers).is_some() {
                    return Err(JOIN_FORMAT.into());
                }
            }
            if groups.is_empty() {
                return Err(JOIN_FORMAT.into());
            }
            Ok(Some(CtrlCommand::Join(groups)))
        }
        "leave" => {
            let gids: Vec<GroupId> = rest
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(|g| g.parse().map(GroupId).map_err(|_| LEAVE_FORMAT.to_string()))
                .collect::<Result<_, _>>()?;
            if gids.is_empty() {
                return Err(LEAVE_FORMAT.into());
            }
            Ok(Some(CtrlCommand::Leave(gids)))
        }
        "move" => {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            match parts.as_slice() {
                [s, g] => match (s.parse(), g.parse()) {
                    (Ok(s), Ok(g)) => Ok(Some(CtrlCommand::Move(ShardId(s), GroupId(g)))),
                    _ => Err("usage: Move shard gid (two numbers)".into()),
                },
                _ => Err("usage: Move shard gid".into()),
            }
        }
        "query" => match rest {
            "" | "-1" => Ok(Some(CtrlCommand::Query(None))),
            n => {
                n.parse().map(|n| Some(CtrlCommand::Query(Some(ConfigNum(n))))).map_err(|_| "usage: Query [num]".into())
            }
        },
        _ => Err("Unknown command; supported: Join, Leave, Move, Query".into()),
    }
}

/// Parse one key-value line; `Ok(None)` for a blank line; `Err` is what to print.
pub fn parse_kv(line: &str) -> Result<Option<KvCommand>, String> {
    let (word, rest) = split(line);
    if word.is_empty() {
        return Ok(None);
    }
    let (key, value) = split(rest);
    match word.to_ascii_lowercase().as_str() {
        "put" if !key.is_empty() && !value.is_empty() => Ok(Some(KvCommand::Put(key.into(), value.into()))),
        "put" => Err("usage: Put key value".into()),
        "append" if !key.is_empty() && !value.is_empty() => Ok(Some(KvCommand::Append(key.into(), value.into()))),
        "append" => Err("usage: Append key suffix".into()),
        "get" if !key.is_empty() && value.is_empty() => Ok(Some(KvCommand::Get(key.into()))),
        "get" => Err("usage: Get key".into()),
        "delete" if !key.is_empty() && value.is_empty() => Ok(Some(KvCommand::Delete(key.into()))),
        "delete" => Err("usage: Delete key".into()),
        _ => Err("Unknown command; supported: Put, Get, Append, Delete".into()),
    }
}

fn failure(e: &ClerkError, format: Format) -> String {
    format::error(&format!("Error: {e}"), format)
}

/// Carry out a controller command; the text to print.
pub async fn run_ctrl(clerk: &mut CtrlClerk, command: CtrlCommand, format: Format) -> String {
    let result = match command {
        CtrlCommand::Join(groups) => clerk.join(groups).await.map(|()| None),
        CtrlCommand::Leave(groups) => clerk.leave(groups).await.map(|()| None),
        CtrlCommand::Move(shard, group) => clerk.move_shard(shard, group).await.map(|()| None),
        CtrlCommand::Query(num) => clerk.query(num).await.map(Some),
    };
    match result {
        Ok(Some(config)) => format::config(&config, format),
        Ok(None) => format::ok(format),
        Err(e) => failure(&e, format),
    }
}

/// Carry out a key-value command; the text to print.
pub async fn run_kv(clerk: &mut KvClerk, command: KvCommand, format: Format) -> String {
    let result = match command {
        KvCommand::Put(k, v) => clerk.put(k, v).await.map(|()| None),
        KvCommand::Append(k, v) => clerk.append(k, v).await.map(|()| None),
        KvCommand::Delete(k) => clerk.delete(k).await.map(|()| None),
        KvCommand::Get(k) => clerk.get(Bytes::from(k)).await.map(|v| Some(v.unwrap_or_default())),
    };
    match result {
        Ok(Some(v)) => format::value(Some(&v), format),
        Ok(None) => format::ok(format),
        Err(e) => failure(&e, format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_controller_syntax_parses_and_mistakes_say_what_was_expected() {
        let join = parse_ctrl("Join 1:shardkv1-0:8000,shardkv1-1:8000,shardkv1-2:8000").unwrap_or_default();
        let Some(CtrlCommand::Join(groups)) = join else { panic!("join did not parse: {join:?}") };
        assert_eq!(groups[&GroupId(1)], vec!["shardkv1-0:8000", "shardkv1-1:8000", "shardkv1-2:8000"]);
        assert_eq!(
            parse_ctrl("join 1:a:1 2:b:2,c:3")
                .unwrap_or_default()
                .map(|c| matches!(c, CtrlCommand::Join(g) if g.len() == 2)),
            Some(true)
        );
        assert_eq!(parse_ctrl("Leave 1,2"), Ok(Some(CtrlCommand::Leave(vec![GroupId(1), GroupId(2)]))));
        assert_eq!(parse_ctrl("Move 3 2"), Ok(Some(CtrlCommand::Move(ShardId(3), GroupId(2)))));
        assert_eq!(parse_ctrl("Query"), Ok(Some(CtrlCommand::Query(None))));
        assert_eq!(parse_ctrl("Query 1"), Ok(Some(CtrlCommand::Query(Some(ConfigNum(1))))));
        assert_eq!(parse_ctrl("   "), Ok(None));
        assert_eq!(parse_ctrl("Join 3"), Err(JOIN_FORMAT.to_string()), "the seed's message for a join without servers");
        assert_eq!(parse_ctrl("Join x:a:1"), Err(JOIN_FORMAT.to_string()));
        assert_eq!(parse_ctrl("Joni 1:a:1"), Err("Unknown command; supported: Join, Leave, Move, Query".to_string()));
        assert_eq!(parse_ctrl("Leave one"), Err(LEAVE_FORMAT.to_string()));
        assert!(parse_ctrl("Move 3").unwrap_err().starts_with("usage: Move"));
        assert_eq!(parse_ctrl("Query abc"), Err("usage: Query [num]".to_string()));
    }

    #[test]
    fn the_seeds_kv_syntax_parses_and_mistakes_say_what_was_expected() {
        assert_eq!(parse_kv("Put a 1"), Ok(Some(KvCommand::Put("a".into(), "1".into()))));
        assert_eq!(parse_kv("put a hello world"), Ok(Some(KvCommand::Put("a".into(), "hello world".into()))));
        assert_eq!(parse_kv("Append a 2"), Ok(Some(KvCommand::Append("a".into(), "2".into()))));
        assert_eq!(parse_kv("Get a"), Ok(Some(KvCommand::Get("a".into()))));
        assert_eq!(parse_kv("Delete a"), Ok(Some(KvCommand::Delete("a".into()))));
        assert_eq!(parse_kv("Put b"), Err("usage: Put key value".to_string()), "the seed's message");
        assert_eq!(parse_kv("Get"), Err("usage: Get key".to_string()));
        assert_eq!(parse_kv("Gte a"), Err("Unknown command; supported: Put, Get, Append, Delete".to_string()));
        assert_eq!(parse_kv(""), Ok(None));
    }
}
