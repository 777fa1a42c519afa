//! `--inject-bug`: build a `raftkv-server` with a deliberate bug, to show
//! that the chaos run catches it. The bug never enters the product's code:
//! the workspace's tracked files are copied to a scratch directory, one
//! snippet is replaced there, and the copy is built into a target dir of
//! its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cluster::raftkv::{build_server_in, Backends};

/// A known bug: where it goes and what it replaces.
struct Bug {
    name: &'static str,
    what: &'static str,
    file: &'static str,
    original: &'static str,
    replacement: &'static str,
}

const BUGS: [Bug; 1] = [Bug {
    name: "ack-before-commit",
    what: "ShardKV acknowledges a Put/Append/Delete as soon as the leader has appended it to its own log, \
           before a majority holds it and before it is applied",
    file: "raftkv-core/src/shardkv/service.rs",
    original: "match self.propose(&Command::Client { id: request.id, op: request.op }).await? {",
    replacement: "match {\n            // INJECTED BUG (xtask chaos --inject-bug ack-before-commit).\n            \
                  let command = Command::Client { id: request.id, op: request.op };\n            \
                  self.raft.start(command.encode()).await.map_err(|e| self.refusal(&e))?;\n            \
                  Applied::Ok\n        } {",
}];

/// The names of the bugs `--inject-bug` knows.
pub fn names() -> Vec<&'static str> {
    BUGS.iter().map(|b| b.name).collect()
}

/// Check that `name` is a known bug.
pub fn check(name: &str) -> Result<()> {
    if !BUGS.iter().any(|b| b.name == name) {
        bail!("unknown bug `{name}`; the bugs are: {}", names().join(", "));
    }
    Ok(())
}

/// Build the server with bug `name` in; its path, and what the bug does.
pub fn build(name: &str, backends: &Backends) -> Result<(PathBuf, &'static str)> {
    let bug = BUGS.iter().find(|b| b.name == name).with_context(|| format!("unknown bug `{name}`"))?;
    let root = crate::docker::build::workspace_root()?;
    let base = crate::cluster::procs::scratch_base();
    let copy = base.join("chaos-bug-src");
    let _ = std::fs::remove_dir_all(&copy);
    let files = crate::process::checked(
        Command::new("git").current_dir(&root).args(["ls-files", "-z"]),
        None,
        Duration::from_secs(60),
    )?;
    for f in files.split('\0').filter(|f| !f.is_empty()) {
        let (from, to) = (root.join(f), copy.join(f));
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if from.is_file() {
            std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    inject(&copy.join(bug.file), bug)?;
    println!("injected bug `{}`: {}", bug.name, bug.what);
    let binary = build_server_in(backends, &copy, &base.join("chaos-bug-server"))?;
    Ok((binary, bug.what))
}

fn inject(file: &Path, bug: &Bug) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if text.matches(bug.original).count() != 1 {
        bail!(
            "bug `{}`: its snippet is not in {} exactly once any more; update xtask/src/chaos/bug.rs",
            bug.name,
            bug.file
        );
    }
    std::fs::write(file, text.replace(bug.original, bug.replacement))
        .with_context(|| format!("writing {}", file.display()))
}
