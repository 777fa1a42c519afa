//! How the CLI prints: the compatible plain text (`-w simple`, the default),
//! JSON (`-w json`) or aligned tables (`-w table`).

use std::fmt::Write as _;

use raftkv_core::api::{NodeStatus, ShardConfig};
use raftkv_core::raft::core::Role;
use serde_json::json;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Plain text, as the compatibility contract prints it (`OK`, `Value: 12`).
    Simple,
    /// One JSON object per answer.
    Json,
    /// Aligned columns.
    Table,
}

/// A configuration as the compatible `Query` prints it:
/// `Config #2: {Num:2 Shards:[2 2 1 1] Groups:map[1:[a b] 2:[c]]}`.
#[must_use]
pub fn config_simple(c: &ShardConfig) -> String {
    let shards: Vec<String> = c.shards.iter().map(|g| g.0.to_string()).collect();
    let groups: Vec<String> = c.groups.iter().map(|(g, s)| format!("{g}:[{}]", s.join(" "))).collect();
    format!("Config #{}: {{Num:{} Shards:[{}] Groups:map[{}]}}", c.num, c.num, shards.join(" "), groups.join(" "))
}

/// A configuration in `format`.
#[must_use]
pub fn config(c: &ShardConfig, format: Format) -> String {
    match format {
        Format::Simple => config_simple(c),
        Format::Json => json!({
            "num": c.num.0,
            "shards": c.shards.iter().map(|g| g.0).collect::<Vec<_>>(),
            "groups": c.groups.iter().map(|(g, s)| (g.0.to_string(), serde_json::Value::from(s.clone()))).collect::<serde_json::Map<_, _>>(),
        })
        .to_string(),
        Format::Table => {
            let mut rows = vec![vec!["shard".to_string(), "group".to_string()]];
            rows.extend(c.shards.iter().enumerate().map(|(i, g)| vec![i.to_string(), g.0.to_string()]));
            let mut out = format!("config {}\n{}", c.num, table(&rows));
            let mut groups = vec![vec!["group".to_string(), "servers".to_string()]];
            groups.extend(c.groups.iter().map(|(g, s)| vec![g.0.to_string(), s.join(",")]));
            out.push('\n');
            out.push_str(&table(&groups));
            out
        }
    }
}

/// "OK" in `format`.
#[must_use]
pub fn ok(format: Format) -> String {
    match format {
        Format::Json => json!({"ok": true}).to_string(),
        Format::Simple | Format::Table => "OK".into(),
    }
}

/// A read's value in `format` (a missing key prints as empty: `Value: `).
#[must_use]
pub fn value(v: Option<&[u8]>, format: Format) -> String {
    let text = v.map(|b| String::from_utf8_lossy(b).into_owned());
    match format {
        Format::Json => json!({"value": text}).to_string(),
        Format::Simple | Format::Table => format!("Value: {}", text.unwrap_or_default()),
    }
}

/// An error or usage message in `format`.
#[must_use]
pub fn error(message: &str, format: Format) -> String {
    match format {
        Format::Json => json!({"error": message}).to_string(),
        Format::Simple | Format::Table => message.to_string(),
    }
}

/// A failed request's message, and a hint of what to do about it, in
/// `format` (the hint on a line of its own, or a `hint` field).
#[must_use]
pub fn failure(message: &str, hint: Option<&str>, format: Format) -> String {
    match (format, hint) {
        (Format::Json, Some(hint)) => json!({"error": message, "hint": hint}).to_string(),
        (Format::Simple | Format::Table, Some(hint)) => format!("{message}\nhint: {hint}"),
        (_, None) => error(message, format),
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
    }
}

/// One node's status as JSON.
#[must_use]
pub fn node_json(addr: &str, s: &NodeStatus) -> serde_json::Value {
    json!({
        "address": addr,
        "group": s.group.0,
        "node": s.raft.id.0,
        "role": role(s.raft.role),
        "term": s.raft.term.0,
        "leader": s.raft.leader.map(|l| l.0),
        "commit": s.raft.commit.0,
        "applied": s.raft.applied.0,
        "last_index": s.raft.last_index.0,
        "snapshot_index": s.raft.snapshot_index.0,
        "lag": s.raft.followers.iter().map(|f| f.lag).max().unwrap_or(0),
        "followers": s.raft.followers.iter().map(|f| json!({"node": f.id.0, "match": f.match_index.0, "lag": f.lag})).collect::<Vec<_>>(),
        "storage_failing": s.raft.storage_failing,
        "config": s.config.0,
        "shards": s.shards.iter().map(|x| json!({"shard": x.shard.0, "state": format!("{:?}", x.state)})).collect::<Vec<_>>(),
    })
}

/// The status of every node (address, its status or why it did not answer) in `format`.
#[must_use]
pub fn statuses(nodes: &[(String, Result<NodeStatus, String>)], format: Format) -> String {
    if format == Format::Json {
        let items: Vec<serde_json::Value> = nodes
            .iter()
            .map(|(addr, s)| match s {
                Ok(s) => node_json(addr, s),
                Err(e) => json!({"address": addr, "error": e}),
            })
            .collect();
        return serde_json::Value::from(items).to_string();
    }
    let mut rows = vec!["address group node role term leader commit applied lag shards"
        .split(' ')
        .map(str::to_string)
        .collect::<Vec<_>>()];
    for (addr, s) in nodes {
        rows.push(match s {
            Ok(s) => vec![
                addr.clone(),
                s.group.0.to_string(),
                s.raft.id.0.to_string(),
                match &s.raft.storage_failing {
                    None => role(s.raft.role).to_string(),
                    Some(_) => format!("{} (log writes failing)", role(s.raft.role)),
                },
                s.raft.term.0.to_string(),
                s.raft.leader.map_or_else(|| "-".to_string(), |l| l.0.to_string()),
                s.raft.commit.0.to_string(),
                s.raft.applied.0.to_string(),
                s.raft.followers.iter().map(|f| f.lag).max().unwrap_or(0).to_string(),
                s.shards.iter().map(|x| format!("{}:{:?}", x.shard.0, x.state)).collect::<Vec<_>>().join(" "),
            ],
            Err(e) => vec![addr.clone(), "-".into(), "-".into(), format!("unreachable: {e}")],
        });
    }
    table(&rows)
}

/// `rows` as left-aligned columns.
#[must_use]
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r.iter().enumerate().map(|(c, s)| format!("{s:<w$}", w = widths[c])).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 {
            let rule: Vec<String> = widths.iter().take(r.len()).map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "{}", rule.join("  "));
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use raftkv_core::{ConfigNum, GroupId};

    use super::*;

    #[test]
    fn configs_print_as_the_seed_prints_them() {
        let c = ShardConfig {
            num: ConfigNum(2),
            shards: [2, 2, 2, 2, 2, 1, 1, 1, 1, 1].iter().map(|&g| GroupId(g)).collect(),
            groups: BTreeMap::from([
                (GroupId(1), vec!["shardkv1-0:8000".into(), "shardkv1-1:8000".into(), "shardkv1-2:8000".into()]),
                (GroupId(2), vec!["shardkv2-0:8000".into(), "shardkv2-1:8000".into(), "shardkv2-2:8000".into()]),
            ]),
        };
        assert_eq!(
            config_simple(&c),
            "Config #2: {Num:2 Shards:[2 2 2 2 2 1 1 1 1 1] Groups:map[1:[shardkv1-0:8000 shardkv1-1:8000 shardkv1-2:8000] 2:[shardkv2-0:8000 shardkv2-1:8000 shardkv2-2:8000]]}"
        );
        let empty = ShardConfig { num: ConfigNum(0), shards: vec![GroupId(0); 10], groups: BTreeMap::new() };
        assert_eq!(config_simple(&empty), "Config #0: {Num:0 Shards:[0 0 0 0 0 0 0 0 0 0] Groups:map[]}");
        let j: serde_json::Value = serde_json::from_str(&config(&c, Format::Json)).unwrap_or_default();
        assert_eq!(j["num"], 2);
        assert_eq!(j["groups"]["1"][0], "shardkv1-0:8000");
        assert!(config(&c, Format::Table).contains("shard  group"));
        assert_eq!(value(None, Format::Simple), "Value: ");
        assert_eq!(value(Some(b"12"), Format::Simple), "Value: 12");
    }
}
