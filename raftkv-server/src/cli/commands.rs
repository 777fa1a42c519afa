//! The CLI's commands in the compatible syntax — `Join gid:addr1,addr2 ...`,
//! `Leave gid1,gid2`, `Move shard gid`, `Query [num]`; `Put key value`,
//! `Get key`, `Append key suffix`, `Delete key` — parsed (case-insensitive
//! command words) and carried out, each answer printed in the chosen format.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftkv_core::client::{ClerkError, CtrlClerk, KvClerk};
use raftkv_core::{ConfigNum, GroupId, ShardId};

use super::format::{self, Format};
use super::words::{MixedWords, Words};

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

/// Parse one controller line of the REPL; `Ok(None)` for a blank line;
/// `Err` is what to print.
pub fn parse_ctrl_line(line: &str) -> Result<Option<CtrlCommand>, String> {
    parse_ctrl(&Words::from_line(line).map_err(|e| e.to_string())?)
}

/// Parse one key-value line of the REPL; `Ok(None)` for a blank line;
/// `Err` is what to print.
pub fn parse_kv_line(line: &str) -> Result<Option<KvCommand>, String> {
    parse_kv(&Words::from_line(line).map_err(|e| e.to_string())?)
}

/// Parse a controller command; `Ok(None)` for no words; `Err` is what to print.
pub fn parse_ctrl(words: &Words) -> Result<Option<CtrlCommand>, String> {
    let Some(word) = words.get(0) else { return Ok(None) };
    let args: Vec<&str> = words.texts_from(1).collect();
    match word.to_ascii_lowercase().as_str() {
        "join" => {
            let mut groups = BTreeMap::new();
            for part in &args {
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
            let gids: Vec<GroupId> = args
                .iter()
                .flat_map(|a| a.split(','))
                .filter(|s| !s.is_empty())
                .map(|g| g.parse().map(GroupId).map_err(|_| LEAVE_FORMAT.to_string()))
                .collect::<Result<_, _>>()?;
            if gids.is_empty() {
                return Err(LEAVE_FORMAT.into());
            }
            Ok(Some(CtrlCommand::Leave(gids)))
        }
        "move" => match args.as_slice() {
            [s, g] => match (s.parse(), g.parse()) {
                (Ok(s), Ok(g)) => Ok(Some(CtrlCommand::Move(ShardId(s), GroupId(g)))),
                _ => Err("usage: Move shard gid (two numbers)".into()),
            },
            _ => Err("usage: Move shard gid".into()),
        },
        "query" => match args.as_slice() {
            [] | ["-1"] => Ok(Some(CtrlCommand::Query(None))),
            [n] => {
                n.parse().map(|n| Some(CtrlCommand::Query(Some(ConfigNum(n))))).map_err(|_| "usage: Query [num]".into())
            }
            _ => Err("usage: Query [num]".into()),
        },
        _ => Err("Unknown command; supported: Join, Leave, Move, Query".into()),
    }
}

/// Parse a key-value command; `Ok(None)` for no words; `Err` is what to
/// print. The key is one word; the value is the words after it
/// ([`Words::rest`]): one quoted word, or the unquoted rest of the line.
pub fn parse_kv(words: &Words) -> Result<Option<KvCommand>, String> {
    let Some(word) = words.get(0) else { return Ok(None) };
    let word = word.to_ascii_lowercase();
    let key = words.get(1).filter(|k| !k.is_empty()).map(str::to_string);
    let (usage, takes_value) = match word.as_str() {
        "put" => ("usage: Put key value", true),
        "append" => ("usage: Append key suffix", true),
        "get" => ("usage: Get key", false),
        "delete" => ("usage: Delete key", false),
        _ => return Err("Unknown command; supported: Put, Get, Append, Delete".into()),
    };
    let Some(key) = key else { return Err(usage.into()) };
    if !takes_value {
        return match (words.len(), word.as_str()) {
            (2, "get") => Ok(Some(KvCommand::Get(key))),
            (2, _) => Ok(Some(KvCommand::Delete(key))),
            _ => Err(usage.into()),
        };
    }
    match words.rest(2) {
        Ok(Some(value)) if word == "put" => Ok(Some(KvCommand::Put(key, value))),
        Ok(Some(value)) => Ok(Some(KvCommand::Append(key, value))),
        Ok(None) => Err(usage.into()),
        Err(MixedWords) => {
            Err(format!("{usage} (a value with quoted parts must be one quoted word, e.g. \"two words\")"))
        }
    }
}

/// The text to print for a request that failed with `e`, with `hint` (what
/// to do about it) if there is one.
#[must_use]
pub fn failure(e: &ClerkError, hint: Option<&str>, format: Format) -> String {
    format::failure(&format!("Error: {e}"), hint, format)
}

/// Carry out a controller command; the text to print, or why it failed.
pub async fn run_ctrl(clerk: &mut CtrlClerk, command: CtrlCommand, format: Format) -> Result<String, ClerkError> {
    let answer = match command {
        CtrlCommand::Join(groups) => clerk.join(groups).await.map(|()| None),
        CtrlCommand::Leave(groups) => clerk.leave(groups).await.map(|()| None),
        CtrlCommand::Move(shard, group) => clerk.move_shard(shard, group).await.map(|()| None),
        CtrlCommand::Query(num) => clerk.query(num).await.map(Some),
    }?;
    Ok(match answer {
        Some(config) => format::config(&config, format),
        None => format::ok(format),
    })
}

/// Carry out a key-value command; the text to print, or why it failed.
pub async fn run_kv(clerk: &mut KvClerk, command: KvCommand, format: Format) -> Result<String, ClerkError> {
    let value = match command {
        KvCommand::Put(k, v) => clerk.put(k, v).await.map(|()| None),
        KvCommand::Append(k, v) => clerk.append(k, v).await.map(|()| None),
        KvCommand::Delete(k) => clerk.delete(k).await.map(|()| None),
        KvCommand::Get(k) => clerk.get(Bytes::from(k)).await.map(|v| Some(v.unwrap_or_default())),
    }?;
    Ok(match value {
        Some(v) => format::value(Some(&v), format),
        None => format::ok(format),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_controller_syntax_parses_and_mistakes_say_what_was_expected() {
        let join = parse_ctrl_line("Join 1:shardkv1-0:8000,shardkv1-1:8000,shardkv1-2:8000").unwrap_or_default();
        let Some(CtrlCommand::Join(groups)) = join else { panic!("join did not parse: {join:?}") };
        assert_eq!(groups[&GroupId(1)], vec!["shardkv1-0:8000", "shardkv1-1:8000", "shardkv1-2:8000"]);
        assert_eq!(
            parse_ctrl_line("join 1:a:1 2:b:2,c:3")
                .unwrap_or_default()
                .map(|c| matches!(c, CtrlCommand::Join(g) if g.len() == 2)),
            Some(true)
        );
        assert_eq!(parse_ctrl_line("Leave 1,2"), Ok(Some(CtrlCommand::Leave(vec![GroupId(1), GroupId(2)]))));
        assert_eq!(parse_ctrl_line("Move 3 2"), Ok(Some(CtrlCommand::Move(ShardId(3), GroupId(2)))));
        assert_eq!(parse_ctrl_line("Query"), Ok(Some(CtrlCommand::Query(None))));
        assert_eq!(parse_ctrl_line("Query 1"), Ok(Some(CtrlCommand::Query(Some(ConfigNum(1))))));
        assert_eq!(parse_ctrl_line("   "), Ok(None));
        assert_eq!(
            parse_ctrl_line("Join 3"),
            Err(JOIN_FORMAT.to_string()),
            "the compatible message for a join without servers"
        );
        assert_eq!(parse_ctrl_line("Join x:a:1"), Err(JOIN_FORMAT.to_string()));
        assert_eq!(
            parse_ctrl_line("Joni 1:a:1"),
            Err("Unknown command; supported: Join, Leave, Move, Query".to_string())
        );
        assert_eq!(parse_ctrl_line("Leave one"), Err(LEAVE_FORMAT.to_string()));
        assert!(parse_ctrl_line("Move 3").unwrap_err().starts_with("usage: Move"));
        assert_eq!(parse_ctrl_line("Query abc"), Err("usage: Query [num]".to_string()));
    }

    #[test]
    fn the_seeds_kv_syntax_parses_and_mistakes_say_what_was_expected() {
        assert_eq!(parse_kv_line("Put a 1"), Ok(Some(KvCommand::Put("a".into(), "1".into()))));
        assert_eq!(parse_kv_line("put a hello world"), Ok(Some(KvCommand::Put("a".into(), "hello world".into()))));
        assert_eq!(parse_kv_line("Append a 2"), Ok(Some(KvCommand::Append("a".into(), "2".into()))));
        assert_eq!(parse_kv_line("Get a"), Ok(Some(KvCommand::Get("a".into()))));
        assert_eq!(parse_kv_line("Delete a"), Ok(Some(KvCommand::Delete("a".into()))));
        assert_eq!(parse_kv_line("Put b"), Err("usage: Put key value".to_string()), "the compatible message");
        assert_eq!(parse_kv_line("Get"), Err("usage: Get key".to_string()));
        assert_eq!(parse_kv_line("Gte a"), Err("Unknown command; supported: Put, Get, Append, Delete".to_string()));
        assert_eq!(parse_kv_line(""), Ok(None));
    }

    #[test]
    fn quoted_keys_and_values_are_taken_exactly_and_unquoted_ones_as_before() {
        let put = |k: &str, v: &str| Ok(Some(KvCommand::Put(k.into(), v.into())));
        assert_eq!(parse_kv_line(r#"Put "my key" "  padded value ""#), put("my key", "  padded value "));
        assert_eq!(parse_kv_line("put 'my key' ' v '"), put("my key", " v "));
        assert_eq!(parse_kv_line(r#"Put k "say \"hi\"""#), put("k", r#"say "hi""#));
        assert_eq!(parse_kv_line(r#"Put k """#), put("k", ""), "an empty value, asked for explicitly");
        assert_eq!(parse_kv_line("Put k two   words "), put("k", "two   words"), "the rest of the line, as before");
        assert_eq!(parse_kv_line("Put k it's"), put("k", "it's"));
        assert_eq!(parse_kv_line(r#"Get "my key""#), Ok(Some(KvCommand::Get("my key".into()))));
        assert_eq!(parse_kv_line(r#"Append "a b" " c""#), Ok(Some(KvCommand::Append("a b".into(), " c".into()))));
        assert_eq!(parse_kv_line(r#"Delete 'x y'"#), Ok(Some(KvCommand::Delete("x y".into()))));
        assert_eq!(parse_kv_line("Get my key"), Err("usage: Get key".to_string()), "a key with spaces needs quotes");
        assert_eq!(parse_kv_line(r#"Put "" v"#), Err("usage: Put key value".to_string()));
        assert!(parse_kv_line(r#"Put k "a b" c"#).unwrap_err().starts_with("usage: Put key value"));
        assert_eq!(
            parse_kv_line(r#"Put k "unterminated"#),
            Err("Invalid quoting: the \" at column 7 is never closed".to_string())
        );
        assert!(parse_ctrl_line("Query '1").unwrap_err().starts_with("Invalid quoting"));
    }

    #[test]
    fn command_line_words_are_each_one_word() {
        let args = |a: &[&str]| Words::from_args(&a.iter().map(|s| (*s).to_string()).collect::<Vec<_>>());
        assert_eq!(parse_kv(&args(&["put", "my key", " v "])), Ok(Some(KvCommand::Put("my key".into(), " v ".into()))));
        assert_eq!(
            parse_kv(&args(&["put", "k", "hello", "world"])),
            Ok(Some(KvCommand::Put("k".into(), "hello world".into())))
        );
        assert_eq!(parse_kv(&args(&["get", "a \"b"])), Ok(Some(KvCommand::Get("a \"b".into()))));
        assert_eq!(parse_kv(&args(&["get", "a", "b"])), Err("usage: Get key".to_string()));
        assert_eq!(
            parse_ctrl(&args(&["leave", "1,", "2"])),
            Ok(Some(CtrlCommand::Leave(vec![GroupId(1), GroupId(2)])))
        );
        assert_eq!(parse_ctrl(&args(&[])), Ok(None));
    }
}
