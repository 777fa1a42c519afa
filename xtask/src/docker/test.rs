//! `cargo xtask docker-test`: the Docker flow of `deploy/` (compose up,
//! `docker exec` into a client container), end to end. Builds the static
//! binaries and the image, brings `deploy/docker-compose.yml` up under a
//! project name of its own, replays the controller session (`Join 1`,
//! `Query`, `Join 2`, `Query`: both groups, shards split 5/5) through the
//! client container and its interactive form on a terminal (`docker exec
//! -it`, through `script`), puts, appends and reads keys of both groups,
//! kills the leader of the controller and of each ShardKV group, and checks
//! that every value survived and the store still takes writes. The project
//! is torn down (`down -v`) however the test ends; on a failure every
//! container's log is printed first. Every wait has a bound.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use raftkv_core::api::shard_of;

use super::build;
use crate::args::Flags;
use crate::process::{self, Output};

/// The image the test builds and runs (the compose file reads `RAFTKV_IMAGE`).
const IMAGE: &str = "raftkv:docker-test";
/// The controller's addresses: its compose services' names, port 8000.
const CTRL_PEERS: &str = "shardctrler-0:8000,shardctrler-1:8000,shardctrler-2:8000";
/// The ShardKV groups the controller session joins, with their servers.
const GROUPS: [(u64, [&str; 3]); 2] = [
    (1, ["shardkv1-0:8000", "shardkv1-1:8000", "shardkv1-2:8000"]),
    (2, ["shardkv2-0:8000", "shardkv2-1:8000", "shardkv2-2:8000"]),
];
/// Shards in the cluster (the server's default).
const SHARDS: usize = 10;
/// Every service of the compose file.
const SERVICES: [&str; 11] = [
    "shardctrler-0",
    "shardctrler-1",
    "shardctrler-2",
    "shardkv1-0",
    "shardkv1-1",
    "shardkv1-2",
    "shardkv2-0",
    "shardkv2-1",
    "shardkv2-2",
    "shardctrler-client",
    "shardkv-client",
];
const CTRL_CLIENT: &str = "shardctrler-client";
const KV_CLIENT: &str = "shardkv-client";
/// Keys written per group.
const KEYS_PER_GROUP: usize = 3;

/// `docker-compose up -d` of images already built.
const UP_LIMIT: Duration = Duration::from_secs(180);
/// `docker-compose down -v`.
const DOWN_LIMIT: Duration = Duration::from_secs(120);
/// Until the controller answers `Query`.
const READY_LIMIT: Duration = Duration::from_secs(90);
/// Until the groups serve their shards after the joins.
const SERVE_LIMIT: Duration = Duration::from_secs(60);
/// Until every group reports a leader.
const LEADER_LIMIT: Duration = Duration::from_secs(30);
/// One `docker exec` of a client (the client itself gives up after
/// `--timeout-secs`, 10 by default).
const EXEC_LIMIT: Duration = Duration::from_secs(60);
/// Small docker commands (`kill`, `inspect`, `logs`, `version`).
const DOCKER_LIMIT: Duration = Duration::from_secs(30);

/// The flags of `cargo xtask docker-test` (none yet).
pub struct DockerTestArgs;

impl DockerTestArgs {
    /// Parse the flags.
    pub fn parse(args: &[&str]) -> Result<Self> {
        Flags::parse(args, &[])?;
        Ok(Self)
    }
}

/// One compose project; `down -v` when dropped.
struct Project {
    /// `docker-compose` or `docker compose`.
    compose: Vec<String>,
    name: String,
    file: PathBuf,
    /// Holds the override file that renames the containers.
    scratch: PathBuf,
    started: Instant,
}

/// `docker-compose` (v1) if it runs, else the `docker compose` plugin (v2).
fn compose_program() -> Result<Vec<String>> {
    for candidate in [vec!["docker-compose"], vec!["docker", "compose"]] {
        let mut cmd = Command::new(candidate[0]);
        cmd.args(&candidate[1..]).arg("version");
        if process::capture(&mut cmd, None, DOCKER_LIMIT).is_ok_and(|o| o.success()) {
            return Ok(candidate.into_iter().map(String::from).collect());
        }
    }
    bail!("neither `docker-compose` nor `docker compose` runs; install one (Debian: apt-get install docker-compose)")
}

impl Project {
    /// A project named for this process, its containers renamed
    /// `<project>-<service>` so that it cannot collide with a cluster
    /// started by hand from the same file (whose containers have fixed
    /// names: `shardctrler-0`, `shardkv1-0`, ...). Inside the project network
    /// every node is still reached by its service name, as the addresses of
    /// `Join` and `--ctrl-peers` (`shardkv1-0:8000`, ...) expect.
    fn new() -> Result<Self> {
        let compose = compose_program()?;
        let name = format!("raftkv-test-{}", std::process::id());
        let file = build::context_dir()?.join("docker-compose.yml");
        let scratch = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
        let mut text = String::from("version: \"3.8\"\nservices:\n");
        for s in SERVICES {
            text.push_str(&format!("  {s}:\n    container_name: {name}-{s}\n"));
        }
        let project = Self { compose, name, file, scratch, started: Instant::now() };
        std::fs::write(project.override_file(), text)
            .with_context(|| format!("cannot write {}", project.override_file().display()))?;
        Ok(project)
    }

    fn override_file(&self) -> PathBuf {
        self.scratch.join("docker-compose.override.yml")
    }

    /// A compose command of this project.
    fn compose(&self) -> Command {
        let mut cmd = Command::new(&self.compose[0]);
        cmd.args(&self.compose[1..])
            .arg("--project-name")
            .arg(&self.name)
            .arg("--file")
            .arg(&self.file)
            .arg("--file")
            .arg(self.override_file())
            .env("RAFTKV_IMAGE", IMAGE)
            .env("DOCKER_BUILDKIT", "0")
            .env("COMPOSE_DOCKER_CLI_BUILD", "0");
        cmd
    }

    fn container(&self, service: &str) -> String {
        format!("{}-{service}", self.name)
    }

    fn say(&self, what: &str) {
        println!("docker-test [{:5.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn up(&self) -> Result<()> {
        let mut cmd = self.compose();
        cmd.args(["up", "--detach", "--no-build"]);
        process::checked(&mut cmd, None, UP_LIMIT)?;
        Ok(())
    }

    /// `docker exec` `argv` in `service`'s container, with `input` on stdin.
    fn exec(&self, service: &str, argv: &[&str], input: Option<&str>) -> Result<Output> {
        let mut cmd = Command::new("docker");
        cmd.arg("exec");
        if input.is_some() {
            cmd.arg("--interactive");
        }
        cmd.arg(self.container(service)).args(argv);
        process::capture(&mut cmd, input, EXEC_LIMIT)
    }

    /// The state of `service`'s container (`running`, `exited`, …).
    fn state(&self, service: &str) -> String {
        let mut cmd = Command::new("docker");
        cmd.args(["inspect", "--format", "{{.State.Status}} (exit code {{.State.ExitCode}})"])
            .arg(self.container(service));
        match process::capture(&mut cmd, None, DOCKER_LIMIT) {
            Ok(o) if o.success() => o.stdout.trim().to_string(),
            Ok(o) => format!("unknown: {}", o.stderr.trim()),
            Err(e) => format!("unknown: {e:#}"),
        }
    }

    fn states(&self) -> String {
        SERVICES.iter().map(|s| format!("  {s}: {}", self.state(s))).collect::<Vec<_>>().join("\n")
    }

    fn kill(&self, service: &str) -> Result<()> {
        let mut cmd = Command::new("docker");
        cmd.arg("kill").arg(self.container(service));
        process::checked(&mut cmd, None, DOCKER_LIMIT)?;
        let state = self.state(service);
        ensure!(!state.starts_with("running"), "{service} still runs after `docker kill`: {state}");
        Ok(())
    }

    /// Print every container's state and the end of its log.
    fn dump_logs(&self) {
        println!("docker-test: container states:\n{}", self.states());
        for s in SERVICES {
            let mut cmd = Command::new("docker");
            cmd.args(["logs", "--tail", "60"]).arg(self.container(s));
            println!("==================== docker logs {} (last 60 lines)", self.container(s));
            match process::capture(&mut cmd, None, DOCKER_LIMIT) {
                Ok(o) => {
                    print!("{}", o.stdout);
                    print!("{}", o.stderr);
                }
                Err(e) => println!("(no log: {e:#})"),
            }
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.say(&format!("tearing down project {}", self.name));
        let mut cmd = self.compose();
        cmd.args(["down", "--volumes", "--remove-orphans", "--timeout", "3"]);
        match process::capture(&mut cmd, None, DOWN_LIMIT) {
            Ok(o) if o.success() => {}
            Ok(o) => eprintln!("docker-test: `down` failed: {}", o.describe()),
            Err(e) => eprintln!("docker-test: `down` failed: {e:#}"),
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The clients, run in their containers as `deploy/README.md` shows.
impl Project {
    /// Pipe `lines` into the controller REPL (`/app/shardctrler-client`);
    /// the answers, one per command (the prompt stripped).
    fn ctrl_session(&self, lines: &[String]) -> Result<Vec<String>> {
        let peers = format!("--ctrl-peers={CTRL_PEERS}");
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let out = self.exec(CTRL_CLIENT, &["/app/shardctrler-client", &peers], Some(&input))?;
        ensure!(out.success(), "the controller REPL failed: {}", out.describe());
        Ok(repl_answers(&out.stdout))
    }

    /// Pipe `lines` into the KV REPL (`/app/shardkv_client`); the answers.
    fn kv_session(&self, lines: &[&str]) -> Result<Vec<String>> {
        let peers = format!("--ctrl-peers={CTRL_PEERS}");
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let out = self.exec(KV_CLIENT, &["/app/shardkv_client", &peers], Some(&input))?;
        ensure!(out.success(), "the KV REPL failed: {}", out.describe());
        Ok(repl_answers(&out.stdout))
    }

    /// The interactive form, `docker exec -it <client>
    /// /app/shardctrler-client --ctrl-peers=…`, on a terminal (`script`
    /// lends one): the REPL must start with line editing and answer `Query`
    /// with `expected`. `Ok(false)` if `script` is not installed.
    fn terminal_query(&self, expected: &str) -> Result<bool> {
        let mut probe = Command::new("script");
        probe.arg("--version");
        if !process::capture(&mut probe, None, DOCKER_LIMIT).is_ok_and(|o| o.success()) {
            return Ok(false);
        }
        let session = format!(
            "docker exec -it {} /app/shardctrler-client --ctrl-peers={CTRL_PEERS}",
            self.container(CTRL_CLIENT)
        );
        let mut cmd = Command::new("script");
        cmd.args(["--quiet", "--return", "--command", &session, "/dev/null"]);
        let (seen, out) = process::capture_until(&mut cmd, "Query\r", expected, EXEC_LIMIT)?;
        if out.stdout.contains("panicked") {
            bail!("the controller REPL panics on a terminal (`{session}`): {}", out.describe());
        }
        ensure!(
            seen,
            "on a terminal (`{session}`) the REPL did not answer `Query` with `{expected}`: {}",
            out.describe()
        );
        Ok(true)
    }

    /// One controller command in one-shot form; its output.
    fn ctrl(&self, words: &[&str]) -> Result<Output> {
        let peers = format!("--ctrl-peers={CTRL_PEERS}");
        let mut argv = vec!["/app/shardctrler-client", &peers, "--timeout-secs=3"];
        argv.extend_from_slice(words);
        self.exec(CTRL_CLIENT, &argv, None)
    }

    /// One KV command in one-shot form (`put k v`, `get k`, …); its answer.
    fn kv(&self, words: &[&str]) -> Result<String> {
        let peers = format!("--ctrl-peers={CTRL_PEERS}");
        let mut argv = vec!["/app/shardkv_client", &peers];
        argv.extend_from_slice(words);
        let out = self.exec(KV_CLIENT, &argv, None)?;
        ensure!(out.success(), "`{}` failed: {}", words.join(" "), out.describe());
        Ok(out.stdout.trim_end().to_string())
    }

    /// `raftkv status`: the address of the leader of each group (0 is the
    /// controller) that has exactly one.
    fn leaders(&self) -> Result<BTreeMap<u64, String>> {
        let peers = format!("--ctrl-peers={CTRL_PEERS}");
        let out = self.exec(CTRL_CLIENT, &["/app/raftkv", "--write-out=json", "status", &peers], None)?;
        let nodes: serde_json::Value = serde_json::from_str(out.stdout.trim())
            .with_context(|| format!("`raftkv status` did not print JSON: {}", out.describe()))?;
        let mut leaders: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for n in nodes.as_array().map(Vec::as_slice).unwrap_or_default() {
            if let (Some("leader"), Some(group), Some(addr)) =
                (n["role"].as_str(), n["group"].as_u64(), n["address"].as_str())
            {
                leaders.entry(group).or_default().push(addr.to_string());
            }
        }
        Ok(leaders.into_iter().filter(|(_, l)| l.len() == 1).map(|(g, mut l)| (g, l.remove(0))).collect())
    }
}

/// The answers of a REPL transcript: what follows each `> ` prompt.
fn repl_answers(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .map(|l| l.trim_start_matches("> ").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `Join gid:a,b,c` of a group.
fn join_line(gid: u64, servers: &[&str]) -> String {
    format!("Join {gid}:{}", servers.join(","))
}

/// The `Groups:map[...]` text of the first `n` groups, as `Query` prints it.
fn groups_text(n: usize) -> String {
    GROUPS.iter().take(n).map(|(g, s)| format!("{g}:[{}]", s.join(" "))).collect::<Vec<_>>().join(" ")
}

/// The shard → group table of a `Config #n: {Num:n Shards:[…] Groups:map[…]}`
/// line, after checking its number and groups.
fn parse_config(line: &str, num: u64, groups: &str) -> Result<Vec<u64>> {
    let prefix = format!("Config #{num}: {{Num:{num} Shards:[");
    let rest = line.strip_prefix(&prefix).with_context(|| format!("expected `{prefix}…`, got `{line}`"))?;
    let (shards, rest) = rest.split_once(']').with_context(|| format!("no end of Shards in `{line}`"))?;
    let want = format!(" Groups:map[{groups}]}}");
    ensure!(rest == want, "expected the groups `{want}` in `{line}`");
    let shards: Vec<u64> = shards.split(' ').map(str::parse).collect::<Result<_, _>>()?;
    ensure!(shards.len() == SHARDS, "expected {SHARDS} shards in `{line}`");
    Ok(shards)
}

/// Keys that land on each group under `shards`, `KEYS_PER_GROUP` per group.
fn keys_by_group(shards: &[u64]) -> BTreeMap<u64, Vec<String>> {
    let mut keys: BTreeMap<u64, Vec<String>> = GROUPS.iter().map(|(g, _)| (*g, Vec::new())).collect();
    for i in 0..10_000 {
        if keys.values().all(|k| k.len() >= KEYS_PER_GROUP) {
            break;
        }
        let key = format!("key-{i}");
        let shard = usize::try_from(shard_of(key.as_bytes(), SHARDS).0).unwrap_or(0);
        if let Some(k) = shards.get(shard).and_then(|g| keys.get_mut(g)) {
            if k.len() < KEYS_PER_GROUP {
                k.push(key);
            }
        }
    }
    keys
}

/// Retry `probe` every half second until it returns `Some`, at most `limit`.
fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Result<Option<T>>) -> Result<Option<T>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The scenario against a running project.
fn scenario(p: &Project) -> Result<()> {
    // 1. The controller elects a leader and answers.
    let mut last = String::new();
    let ready = wait_for(READY_LIMIT, || {
        let out = p.ctrl(&["query"])?;
        last = out.describe();
        Ok(out.stdout.starts_with("Config #").then(|| out.stdout.trim_end().to_string()))
    })?;
    let Some(first) = ready else {
        bail!("the controller did not answer `Query` within {READY_LIMIT:?}; last try: {last}");
    };
    ensure!(
        first == "Config #0: {Num:0 Shards:[0 0 0 0 0 0 0 0 0 0] Groups:map[]}",
        "a fresh controller answers config 0, not `{first}`"
    );
    p.say("the controller answers: Config #0");

    // 2. The controller session (Join, Query, Join, Query), piped into the REPL.
    let [(g1, s1), (g2, s2)] = GROUPS;
    let session = [join_line(g1, &s1), "Query".into(), join_line(g2, &s2), "Query".into()];
    let answers = p.ctrl_session(&session)?;
    let transcript: String = session.iter().zip(&answers).map(|(q, a)| format!("    > {q}\n    {a}\n")).collect();
    p.say(&format!("the controller session:\n{transcript}"));
    let [ok1, config1, ok2, config2] = answers.as_slice() else {
        bail!("expected four answers from the controller REPL, got {answers:?}");
    };
    ensure!(ok1 == "OK" && ok2 == "OK", "the joins answered {ok1:?} and {ok2:?}");
    let one = parse_config(config1, 1, &groups_text(1))?;
    ensure!(one.iter().all(|&g| g == g1), "config 1 gives every shard to group {g1}: {config1}");
    let shards = parse_config(config2, 2, &groups_text(2))?;
    for (g, _) in GROUPS {
        let n = shards.iter().filter(|&&s| s == g).count();
        ensure!(n == SHARDS / 2, "config 2 gives group {g} {n} shards, not {}: {config2}", SHARDS / 2);
    }
    if p.terminal_query(config2)? {
        p.say("`docker exec -it` on a terminal: the REPL answers Query");
    } else {
        p.say("`script` is not installed: skipped the REPL on a terminal");
    }

    // 3. Writes to both groups; the first waits until the groups serve.
    let keys = keys_by_group(&shards);
    ensure!(keys.values().all(|k| k.len() == KEYS_PER_GROUP), "no {KEYS_PER_GROUP} keys for each group: {keys:?}");
    let first_key = keys.values().flatten().next().context("no key was chosen")?.clone();
    let mut last = String::new();
    let served = wait_for(SERVE_LIMIT, || match p.kv(&["put", &first_key, &format!("v-{first_key}")]) {
        Ok(answer) => Ok(Some(answer)),
        Err(e) => {
            last = format!("{e:#}");
            Ok(None)
        }
    })?;
    ensure!(served.as_deref() == Some("OK"), "the store did not take a Put within {SERVE_LIMIT:?}: {served:?} {last}");
    for (g, ks) in &keys {
        for k in ks {
            let v = format!("v-{k}");
            ensure!(p.kv(&["put", k, &v])? == "OK", "put {k}");
            ensure!(p.kv(&["append", k, "+a"])? == "OK", "append {k}");
            let got = p.kv(&["get", k])?;
            ensure!(got == format!("Value: {v}+a"), "get {k} (group {g}) answered `{got}`");
        }
    }
    let answers = p.kv_session(&["Put seed 1", "Append seed 2", "Get seed"])?;
    ensure!(answers == ["OK", "OK", "Value: 12"], "the KV session answered {answers:?}");
    p.say(&format!("put, append and get work on {keys:?} and in the KV REPL"));

    // 4. Kill the leader of the controller and of each group.
    let expected = [0, g1, g2];
    let leaders = wait_for(LEADER_LIMIT, || {
        let l = p.leaders()?;
        Ok(expected.iter().all(|g| l.contains_key(g)).then_some(l))
    })?;
    let victims: Vec<String> = match leaders {
        Some(l) => l.values().filter_map(|a| a.split(':').next()).map(str::to_string).collect(),
        None => {
            p.say("not every group reported a leader; killing each group's first replica instead");
            vec!["shardctrler-0".into(), "shardkv1-0".into(), "shardkv2-0".into()]
        }
    };
    for v in &victims {
        ensure!(SERVICES.contains(&v.as_str()), "`raftkv status` names a leader at {v}, not a compose service");
        p.kill(v)?;
    }
    p.say(&format!("killed {}", victims.join(", ")));

    // 5. Every value survived; the store still reads and writes.
    for (g, ks) in &keys {
        for k in ks {
            let got = p.kv(&["get", k])?;
            ensure!(got == format!("Value: v-{k}+a"), "after the kills, get {k} (group {g}) answered `{got}`");
            ensure!(p.kv(&["append", k, "+b"])? == "OK", "append {k} after the kills");
            let got = p.kv(&["get", k])?;
            ensure!(got == format!("Value: v-{k}+a+b"), "after the kills, get {k} answered `{got}`");
        }
        let fresh = format!("fresh-{g}");
        ensure!(p.kv(&["put", &fresh, "new"])? == "OK", "put {fresh} after the kills");
        ensure!(p.kv(&["get", &fresh])? == "Value: new", "get {fresh} after the kills");
    }
    let answers = p.kv_session(&["Get seed", "Append seed 3", "Get seed"])?;
    ensure!(answers == ["Value: 12", "OK", "Value: 123"], "after the kills, the KV session answered {answers:?}");
    let out = p.ctrl(&["query"])?;
    ensure!(out.stdout.trim_end() == config2.as_str(), "after the kills, Query answered {}", out.describe());
    p.say("after the kills every value is intact and reads, writes and Query work");
    Ok(())
}

/// `cargo xtask docker-test`.
pub fn run(_args: &DockerTestArgs) -> Result<()> {
    let started = Instant::now();
    let built = build::build_static()?;
    let context = build::stage(&built)?;
    build::build_image(&context, IMAGE)?;
    println!("docker-test: binaries and image {IMAGE} ready after {:.1}s", started.elapsed().as_secs_f64());

    let project = Project::new()?;
    project.say(&format!(
        "starting project {} (if interrupted: `docker-compose -p {} -f deploy/docker-compose.yml down -v`)",
        project.name, project.name
    ));
    let result = project.up().and_then(|()| {
        project.say("containers up");
        scenario(&project)
    });
    if let Err(e) = &result {
        println!("docker-test: FAILED: {e:#}");
        project.dump_logs();
    }
    drop(project);
    result?;
    println!("docker-test: passed in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
