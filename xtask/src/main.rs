//! Project tasks: `cargo xtask <command>` (alias of `cargo run --release -p xtask --`).

mod args;
mod attack;
mod bench;
mod chaos;
mod cluster;
mod docker;
mod process;
mod rng;
mod stress;
mod test_matrix;

use anyhow::{bail, Result};

/// The load generators allocate from many threads; glibc's allocator would
/// make the client side of a benchmark slower than it needs to be.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HELP: &str = "\
cargo xtask <command>

Commands:
  stress raft --seeds N [--start S] [--threads T]
        Run the randomized Raft nemesis scenario for seeds S..S+N (default S=1)
        in parallel on T threads (default: every core). Prints progress, a
        summary and every failing seed; exits non-zero if any seed fails.
        Replay one seed with `cargo xtask stress raft --seeds 1 --start <seed>`.

  stress shardkv --seeds N [--start S] [--threads T]
        The sharded store's nemesis for seeds S..S+N: 3 ShardKV groups and a
        controller; concurrent clients on a few keys while groups join, leave
        and shards move, servers, groups and controllers crash and restart,
        partitions and an unreliable network come and go; after healing the
        history must be linearizable, no append may land twice or be lost, and
        no two groups may ever serve one shard in one configuration.

  bench core [--duration-secs D] [--warmup-secs W] [--proposers 1,16,64,256] [--sizes 0,256]
        Closed-loop `propose` throughput and latency of a 3-member group in one
        process (in-memory disks, in-process transport, counter state machine,
        2 tokio worker threads). For every command size and proposer count:
        warm up W s (default 1), measure D s (default 5), print ops/s, p50, p99.

  bench storage [--duration-secs D] [--backend redb|sqlite|all]
        Durable log stores with fsync on (default backend all, D default 3 s
        per row), in fresh temp dirs under $CARGO_TARGET_DIR (else /tmp):
        one appender with batches of 1, 16 and 256 entries of 256 bytes
        (appends/s, entries/s, p50/p99 latency); 16 appenders on one storage
        with batches of 1 (group commit: entries/s vs one appender, commits);
        raw write + fdatasync latency of the same filesystem.

  bench transport [--duration-secs D] [--warmup-secs W] [--callers 1,64] [--snapshot-mib M]
                  [--transport grpc|http|all] [--tls off|on|both]
        The network transports on loopback (client and server in this process,
        2 tokio worker threads, echo handlers): closed-loop round trips/s and
        p50/p99/max latency of Raft heartbeats and KV get calls for each caller
        count (default 1 and 64; warm-up W s, default 0.5, then D s, default 3),
        and the MB/s of streaming an M MiB snapshot (default 256) with the
        peak bytes buffered between store and receiver; plaintext and mTLS.

  bench cluster [--clients 1,16,64,256] [--workloads put,get,mixed] [--duration-secs D] [--warmup-secs W]
                [--transport grpc|http] [--storage redb|sqlite|mem] [--keys K] [--value-bytes V]
                [--against etcd] [--etcd-endpoints leader|all] [--server-binary PATH]
        RaftKV as real processes on loopback: `raftkv-server` built in release
        with exactly the chosen backends (default grpc + redb, fsync on), a
        3-member controller group and one 3-replica ShardKV group serving all
        shards. A closed-loop load from this process (2 tokio workers): for
        every workload and client count, each client a clerk with its own id,
        K keys of 8 bytes (default 10,000, preloaded), V-byte values (default
        256); put, linearizable get, mixed (90 % get); warm-up W s (default 2),
        then D s (default 10); ops/s and p50/p90/p99/p99.9 latency.
        --against etcd: installs Debian's etcd-server and protobuf-compiler if
        missing, rebuilds xtask with its `etcd` feature (the etcd-client crate),
        starts 3 etcd members on loopback, runs the identical load through
        etcd-client (to the leader only, or to all members), and prints both
        side by side with the ratios and the targets. --server-binary: run
        this raftkv-server instead of building one (a profiling build, say).

  bench memory [--keys K] [--value-bytes V] [--writers N] [--settle-secs S]
               [--transport grpc|http] [--storage redb|sqlite|mem]
        The cluster of `bench cluster`; N writers (default 256) load K keys
        (default 1,000,000) of V bytes (default 256); prints each replica's
        RSS idle, right after the load and S s later (default 10), against
        the raw data (K × (8 + V) bytes) and the ≤ 2× target.

  bench migration [--keys K] [--value-bytes V] [--clients N] [--workload put|get|mixed] [--writers W]
                  [--warmup-secs S] [--baseline-secs B] [--transport grpc|http] [--storage redb|sqlite|mem]
        3 controllers and 2 groups × 3 replicas as in `bench cluster`; one
        shard of group 1 loaded with K keys (default 400,000) of V bytes
        (default 256) by W writers (default 128); N clients (default 16) run
        the workload (default mixed) on the other shards: S s of warm-up
        (default 2), B s measured without migration (default 5), then the
        shard is moved to group 2 and measured until it is settled. Prints
        the time until group 2 serves the shard and until group 1's copy is
        deleted, and the other shards' latency without and during the move,
        against the targets (≤ 3 s; p99 ≤ 2× without migration).

  chaos [--duration SECS] [--seed S] [--clients N] [--transport grpc|http] [--storage redb|sqlite|mem]
        [--server-binary PATH] [--inject-bug ack-before-commit]
        Real-process chaos (needs root, iproute2, iptables): 3 controllers and
        2 groups × 3 replicas of `raftkv-server` (release, the chosen
        backends), each in its own network namespace routed through the
        host. N clients (default 6) record every Get/Put/Append/Delete on a
        few rotating keys while a nemesis drawn from seed S (default: the
        clock; printed) runs for SECS (default 120): kill -9 and restart,
        SIGSTOP/SIGCONT, partitions (isolate a leader, majority/minority,
        bridge), packet loss, delay with reordering (NFQUEUE), with Join,
        Leave and Move beside them. Each fault is healed and the time until
        every shard serves again is measured. Then: every key read, every
        server stopped with SIGTERM, outputs scanned for panics, durable
        logs read back and compared across replicas, the history checked
        for linearizability, lost acknowledged writes counted. Prints the
        schedule, each step, and a report; exits non-zero on any failure.
        --inject-bug: build the server from a scratch copy of the workspace
        with a deliberate bug put in (ack-before-commit: writes acknowledged
        once the leader appended them), to show the run catches it.

  attack [memory_flood] [descriptor_flood] [term_bomb] [forged_delete]
         [--storage redb|sqlite|mem] [--server-binary PATH] [--token on|off] [--server-env RAFTKV_K=V,...]
        Attacks from outside on real `raftkv-server` processes (release, gRPC),
        each against a fresh cluster on 127.0.0.1 (3 controllers, 1 or 2
        groups × 3 replicas, a cluster token unless --token off); default:
        all four, under a minute once built. memory_flood: 40 raw HTTP/2 connections ×
        30 streams declaring 3 MiB each, trickling, plus streams declaring
        64 MiB, against a leader: its RSS growth must stay under 512 MiB, the
        64 MiB ones be refused within 1 s, a client's Put/Get succeed within
        5 s. descriptor_flood: ~18,000 silent TCP connections to a leader:
        clients still served, the leader kept, every connection closed by the
        server after the first-request timeout. term_bomb: a forged Raft
        heartbeat at term 2^63-1 with no or a wrong token, before and after
        a restart: refused, terms stay small, writes go on. forged_delete:
        a forged Migration/DeleteShards with no or a wrong token: refused, the
        shard's keys intact. Prints each attack's measurements and checks;
        exits non-zero naming every attack that failed. --server-env passes
        settings to every server (to weaken a defence and see the attack
        catch it); --token off runs the cluster open.

  docker-build [--image TAG]
        Build statically linked `raftkv-server` and `raftkv` (release, target
        dir $XTASK_STATIC_TARGET_DIR, default ~/.cache/raftkv-target-static)
        and stage them into deploy/bin/, the build context of deploy/Dockerfile;
        with --image, also build the image. Then:
        `docker-compose -f deploy/docker-compose.yml up --build`.

  docker-test
        The Docker flow of deploy/ end to end: docker-build, the image, the
        compose project under its own name; the controller session (Join 1,
        Query, Join 2, Query: shards split 5/5) through the client container
        and on a terminal (`docker exec -it` under `script`), puts, appends
        and gets on both groups, `docker kill` of the controller's and each
        group's leader, then every value intact and writes still served.
        Always `down -v` at the end; container logs on failure.

  test-matrix [--only NAME,...] [--skip NAME,...]
        The end-to-end suite of raftkv-server (dev clusters as real processes,
        the CLI against them, config errors, SIGTERM and restart, /metrics and
        /health, the trace test) once per transport × storage combination:
        grpc×redb, grpc×sqlite, http×redb, http×sqlite, mem (grpc), all on the
        build with every feature; then http+sqlite-only: the server built
        with only those backends, its config tests. Prints a pass/fail table
        with times; exits non-zero if any combination fails.

  help
        This text.
";

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    match argv.as_slice() {
        [] | ["help" | "--help" | "-h", ..] => {
            print!("{HELP}");
            Ok(())
        }
        ["stress", "raft", rest @ ..] => stress::run(&stress::StressArgs::parse(stress::Target::Raft, rest)?),
        ["stress", "shardkv", rest @ ..] => stress::run(&stress::StressArgs::parse(stress::Target::ShardKv, rest)?),
        ["bench", "core", rest @ ..] => bench::core::run(&bench::core::BenchArgs::parse(rest)?),
        ["bench", "cluster", rest @ ..] => bench::cluster::run(&bench::cluster::ClusterBenchArgs::parse(rest)?),
        ["bench", "memory", rest @ ..] => bench::memory::run(&bench::memory::MemoryBenchArgs::parse(rest)?),
        ["bench", "migration", rest @ ..] => bench::migration::run(&bench::migration::MigrationBenchArgs::parse(rest)?),
        ["bench", "storage", rest @ ..] => bench::storage::run(&bench::storage::StorageBenchArgs::parse(rest)?),
        ["bench", "transport", rest @ ..] => bench::transport::run(&bench::transport::TransportBenchArgs::parse(rest)?),
        ["chaos", rest @ ..] => chaos::run(&chaos::ChaosArgs::parse(rest)?),
        ["attack", rest @ ..] => attack::run(&attack::AttackArgs::parse(rest)?),
        ["docker-build", rest @ ..] => docker::build::run(&docker::build::DockerBuildArgs::parse(rest)?),
        ["test-matrix", rest @ ..] => test_matrix::run(&test_matrix::TestMatrixArgs::parse(rest)?),
        ["docker-test", rest @ ..] => docker::test::run(&docker::test::DockerTestArgs::parse(rest)?),
        ["stress", ..] => {
            bail!("unknown stress target; try `cargo xtask stress raft --seeds N` or `stress shardkv --seeds N`")
        }
        ["bench", ..] => {
            bail!("unknown bench target; try `cargo xtask bench core`, `bench storage`, `bench transport`, `bench cluster`, `bench memory` or `bench migration`")
        }
        [other, ..] => bail!("unknown command `{other}`; try `cargo xtask help`"),
    }
}
