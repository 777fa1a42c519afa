//! A replicated bank ledger built on `raftkv-core` alone.
//!
//! The ledger — accounts, deposits, withdrawals (refused on insufficient
//! funds) and transfers — is a [`StateMachine`] replicated by a three-member
//! Raft group in this process, on in-memory disks ([`MemDisk`]) and the
//! in-process [`LocalTransport`]. The program proposes commands through the
//! leader, reads balances linearizably (ReadIndex), crashes the leader, goes
//! on under the new one until the log is compacted into a snapshot, then
//! restarts the old leader, which catches up by installing that snapshot.
//!
//! At every step it checks that each reply and the final ledger equal those
//! of the same commands applied to a local ledger, that no money was made or
//! lost, and that every replica holds the same ledger; it exits non-zero if
//! any check fails.
//!
//! Run with `cargo run -p raftkv-examples --example bank_ledger`.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use raftkv_core::{
    async_trait, read_snapshot, BinaryError, Bytes, Committed, Decoder, DriverConfig, Encoder, GroupId, LocalTransport,
    LogIndex, MemDisk, NodeId, Raft, RaftConfig, RaftError, RaftHandle, Role, SnapshotImage, SnapshotReader,
    StateMachine, StateMachineError, Status,
};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// Take a snapshot (and compact the log) every this many applied entries.
const SNAPSHOT_EVERY: u64 = 16;
/// How long an election, a proposal or replicas catching up may take before
/// the program gives up (an order of magnitude above what they need).
const PATIENCE: Duration = Duration::from_secs(10);
/// Pause between two polls of the members, or two tries of a proposal.
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// The ledger: commands, replies and state, with their binary encodings.
// ---------------------------------------------------------------------------

/// What the teller asks the ledger to do.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    /// Open an empty account.
    Open { account: String },
    /// Add money to an account.
    Deposit { account: String, amount: u64 },
    /// Take money out of an account, if it holds enough.
    Withdraw { account: String, amount: u64 },
    /// Move money between two accounts, if the source holds enough.
    Transfer { from: String, to: String, amount: u64 },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Open { account } => write!(f, "open {account}"),
            Op::Deposit { account, amount } => write!(f, "deposit {amount} into {account}"),
            Op::Withdraw { account, amount } => write!(f, "withdraw {amount} from {account}"),
            Op::Transfer { from, to, amount } => write!(f, "transfer {amount} from {from} to {to}"),
        }
    }
}

/// A proposed command: the teller's sequence number, so that a proposal
/// retried after an unknown outcome is applied at most once, and the op.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Command {
    seq: u64,
    op: Op,
}

impl Command {
    fn encode(&self) -> Bytes {
        let mut e = Encoder::new();
        e.u64(self.seq);
        match &self.op {
            Op::Open { account } => e.u8(0).str(account),
            Op::Deposit { account, amount } => e.u8(1).str(account).u64(*amount),
            Op::Withdraw { account, amount } => e.u8(2).str(account).u64(*amount),
            Op::Transfer { from, to, amount } => e.u8(3).str(from).str(to).u64(*amount),
        };
        e.finish()
    }

    fn decode(bytes: Bytes) -> Result<Self, BinaryError> {
        let mut d = Decoder::new(bytes);
        let seq = d.u64("sequence number")?;
        let op = match d.u8("operation")? {
            0 => Op::Open { account: d.string("account")? },
            1 => {
                let account = d.string("account")?;
                Op::Deposit { account, amount: d.u64("amount")? }
            }
            2 => {
                let account = d.string("account")?;
                Op::Withdraw { account, amount: d.u64("amount")? }
            }
            3 => {
                let from = d.string("source account")?;
                let to = d.string("destination account")?;
                Op::Transfer { from, to, amount: d.u64("amount")? }
            }
            tag => return Err(BinaryError::Invalid { what: "operation", reason: format!("unknown tag {tag}") }),
        };
        d.end("command")?;
        Ok(Self { seq, op })
    }
}

/// Why the ledger refused a command. Refusals are ordinary, replicated
/// outcomes: every member refuses the same command the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Refusal {
    NoSuchAccount(String),
    AccountExists(String),
    InsufficientFunds {
        account: String,
        balance: u64,
        wanted: u64,
    },
    SameAccount(String),
    Overflow(String),
    /// A sequence number older than the teller's last applied one.
    Stale(u64),
    /// The command did not decode.
    Malformed(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoSuchAccount(a) => write!(f, "no account {a}"),
            Refusal::AccountExists(a) => write!(f, "account {a} already exists"),
            Refusal::InsufficientFunds { account, balance, wanted } => {
                write!(f, "insufficient funds: {account} holds {balance}, {wanted} wanted")
            }
            Refusal::SameAccount(a) => write!(f, "a transfer from {a} to itself"),
            Refusal::Overflow(a) => write!(f, "the balance of {a} would overflow"),
            Refusal::Stale(seq) => write!(f, "command {seq} is older than the last one applied"),
            Refusal::Malformed(why) => write!(f, "malformed command: {why}"),
        }
    }
}

/// The outcome of a command: the balance afterwards of the account it
/// credited or debited (for a transfer: the source), or why it was refused.
type Reply = Result<u64, Refusal>;

fn encode_reply(e: &mut Encoder, reply: &Reply) {
    match reply {
        Ok(balance) => e.u8(0).u64(*balance),
        Err(Refusal::NoSuchAccount(a)) => e.u8(1).str(a),
        Err(Refusal::AccountExists(a)) => e.u8(2).str(a),
        Err(Refusal::InsufficientFunds { account, balance, wanted }) => e.u8(3).str(account).u64(*balance).u64(*wanted),
        Err(Refusal::SameAccount(a)) => e.u8(4).str(a),
        Err(Refusal::Overflow(a)) => e.u8(5).str(a),
        Err(Refusal::Stale(seq)) => e.u8(6).u64(*seq),
        Err(Refusal::Malformed(why)) => e.u8(7).str(why),
    };
}

fn decode_reply(d: &mut Decoder) -> Result<Reply, BinaryError> {
    Ok(match d.u8("reply")? {
        0 => Ok(d.u64("balance")?),
        1 => Err(Refusal::NoSuchAccount(d.string("account")?)),
        2 => Err(Refusal::AccountExists(d.string("account")?)),
        3 => {
            let account = d.string("account")?;
            let balance = d.u64("balance")?;
            Err(Refusal::InsufficientFunds { account, balance, wanted: d.u64("amount")? })
        }
        4 => Err(Refusal::SameAccount(d.string("account")?)),
        5 => Err(Refusal::Overflow(d.string("account")?)),
        6 => Err(Refusal::Stale(d.u64("sequence number")?)),
        7 => Err(Refusal::Malformed(d.string("reason")?)),
        tag => return Err(BinaryError::Invalid { what: "reply", reason: format!("unknown tag {tag}") }),
    })
}

/// The state of the ledger. Deterministic: a `BTreeMap`, no clock, no randomness.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Ledger {
    accounts: BTreeMap<String, u64>,
    /// Money that came in (deposits) and went out (withdrawals): the
    /// balances always add up to `deposited - withdrawn`.
    deposited: u64,
    withdrawn: u64,
    /// The teller's last applied sequence number and its reply (at-most-once).
    last: Option<(u64, Reply)>,
}

/// Version byte of the snapshot format.
const SNAPSHOT_FORMAT: u8 = 1;

impl Ledger {
    /// Apply one command, or answer a retried one from the duplicate record.
    fn execute(&mut self, command: Command) -> Reply {
        match &self.last {
            Some((seq, reply)) if *seq == command.seq => return reply.clone(),
            Some((seq, _)) if *seq > command.seq => return Err(Refusal::Stale(command.seq)),
            _ => {}
        }
        let reply = self.execute_op(command.op);
        self.last = Some((command.seq, reply.clone()));
        reply
    }

    fn balance_mut(&mut self, account: &str) -> Result<&mut u64, Refusal> {
        self.accounts.get_mut(account).ok_or_else(|| Refusal::NoSuchAccount(account.to_string()))
    }

    fn execute_op(&mut self, op: Op) -> Reply {
        match op {
            Op::Open { account } => {
                if self.accounts.contains_key(&account) {
                    return Err(Refusal::AccountExists(account));
                }
                self.accounts.insert(account, 0);
                Ok(0)
            }
            Op::Deposit { account, amount } => {
                let deposited = self.deposited.checked_add(amount).ok_or_else(|| Refusal::Overflow(account.clone()))?;
                let balance = self.balance_mut(&account)?;
                *balance = balance.checked_add(amount).ok_or(Refusal::Overflow(account))?;
                let after = *balance;
                self.deposited = deposited;
                Ok(after)
            }
            Op::Withdraw { account, amount } => {
                let balance = self.balance_mut(&account)?;
                if *balance < amount {
                    return Err(Refusal::InsufficientFunds { account, balance: *balance, wanted: amount });
                }
                *balance -= amount;
                let after = *balance;
                // Cannot overflow: what goes out never exceeds what came in.
                self.withdrawn = self.withdrawn.saturating_add(amount);
                Ok(after)
            }
            Op::Transfer { from, to, amount } => {
                if from == to {
                    return Err(Refusal::SameAccount(from));
                }
                let dest = *self.accounts.get(&to).ok_or_else(|| Refusal::NoSuchAccount(to.clone()))?;
                let dest = dest.checked_add(amount).ok_or_else(|| Refusal::Overflow(to.clone()))?;
                let source = self.balance_mut(&from)?;
                if *source < amount {
                    return Err(Refusal::InsufficientFunds { account: from, balance: *source, wanted: amount });
                }
                *source -= amount;
                let after = *source;
                self.accounts.insert(to, dest);
                Ok(after)
            }
        }
    }

    /// Money held across all accounts.
    fn total(&self) -> u128 {
        self.accounts.values().map(|&b| u128::from(b)).sum()
    }

    /// Check that no money was made or lost; the total held.
    fn audit(&self) -> Result<u128, String> {
        let expected = u128::from(self.deposited).checked_sub(u128::from(self.withdrawn));
        if expected != Some(self.total()) {
            return Err(format!(
                "money not conserved: accounts hold {} but {} came in and {} went out",
                self.total(),
                self.deposited,
                self.withdrawn
            ));
        }
        Ok(self.total())
    }

    fn balances(&self) -> String {
        let list: Vec<String> = self.accounts.iter().map(|(a, b)| format!("{a}={b}")).collect();
        format!("{} (total {})", list.join(" "), self.total())
    }

    fn encode(&self) -> Bytes {
        let mut e = Encoder::new();
        e.u8(SNAPSHOT_FORMAT).u64(self.deposited).u64(self.withdrawn);
        match &self.last {
            None => {
                e.u8(0);
            }
            Some((seq, reply)) => {
                e.u8(1).u64(*seq);
                encode_reply(&mut e, reply);
            }
        }
        e.u64(self.accounts.len() as u64);
        for (account, balance) in &self.accounts {
            e.str(account).u64(*balance);
        }
        e.finish()
    }

    fn decode(bytes: Bytes) -> Result<Self, BinaryError> {
        let mut d = Decoder::new(bytes);
        let format = d.u8("snapshot format")?;
        if format != SNAPSHOT_FORMAT {
            return Err(BinaryError::Invalid {
                what: "snapshot format",
                reason: format!("version {format}, expected {SNAPSHOT_FORMAT}"),
            });
        }
        let deposited = d.u64("money deposited")?;
        let withdrawn = d.u64("money withdrawn")?;
        let last = match d.u8("duplicate record")? {
            0 => None,
            1 => {
                let seq = d.u64("last sequence number")?;
                Some((seq, decode_reply(&mut d)?))
            }
            tag => return Err(BinaryError::Invalid { what: "duplicate record", reason: format!("tag {tag}") }),
        };
        let mut accounts = BTreeMap::new();
        for _ in 0..d.count("accounts")? {
            let account = d.string("account")?;
            accounts.insert(account, d.u64("balance")?);
        }
        d.end("snapshot")?;
        Ok(Self { accounts, deposited, withdrawn, last })
    }
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The state machine Raft replicates.
// ---------------------------------------------------------------------------

/// One member's replica of the ledger. The member's apply loop owns it;
/// the program reads the ledger through the shared `ledger`, the way a
/// service reads its state after a ReadIndex barrier.
struct LedgerMachine {
    ledger: Arc<Mutex<Ledger>>,
    /// Times the ledger was replaced by a snapshot.
    restores: Arc<AtomicU64>,
}

#[async_trait]
impl StateMachine for LedgerMachine {
    type Response = Reply;

    async fn apply(&mut self, batch: Vec<Committed>) -> Result<Vec<Reply>, StateMachineError> {
        let mut ledger = lock(&self.ledger);
        let replies = batch
            .into_iter()
            .map(|c| match Command::decode(c.command) {
                Ok(command) => ledger.execute(command),
                Err(e) => Err(Refusal::Malformed(format!("entry {}: {e}", c.index))),
            })
            .collect();
        // A replica whose books do not balance must not go on.
        ledger.audit().map_err(StateMachineError::Failed)?;
        Ok(replies)
    }

    async fn snapshot(&mut self) -> Result<Box<dyn SnapshotImage>, StateMachineError> {
        Ok(Box::new(lock(&self.ledger).encode()))
    }

    async fn restore(&mut self, input: &mut dyn SnapshotReader) -> Result<(), StateMachineError> {
        let data = read_snapshot(input).await?;
        let ledger = Ledger::decode(data).map_err(|e| StateMachineError::MalformedSnapshot(e.to_string()))?;
        ledger.audit().map_err(StateMachineError::MalformedSnapshot)?;
        *lock(&self.ledger) = ledger;
        self.restores.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Three members in one process.
// ---------------------------------------------------------------------------

struct Member {
    disk: MemDisk,
    handle: RaftHandle<Reply>,
    ledger: Arc<Mutex<Ledger>>,
    restores: Arc<AtomicU64>,
}

struct Cluster {
    voters: Vec<NodeId>,
    transport: LocalTransport,
    running: BTreeMap<NodeId, Member>,
    /// The disks of crashed members.
    crashed: BTreeMap<NodeId, MemDisk>,
}

impl Cluster {
    async fn start(size: u64) -> Result<Self> {
        let voters: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let mut cluster = Self {
            voters: voters.clone(),
            transport: LocalTransport::new(),
            running: BTreeMap::new(),
            crashed: BTreeMap::new(),
        };
        for id in voters {
            cluster.boot(id, MemDisk::new()).await?;
        }
        Ok(cluster)
    }

    /// Start member `id` from what `disk` holds (its latest snapshot, then its log).
    async fn boot(&mut self, id: NodeId, disk: MemDisk) -> Result<()> {
        // Shorter timeouts than the defaults, so the demo does not wait long
        // for elections: heartbeats every 50 ms, elections after 300-600 ms.
        let raft = RaftConfig {
            heartbeat_ticks: 5,
            election_ticks: 30,
            ..RaftConfig::new(GroupId(1), id, self.voters.clone())
        };
        let driver = DriverConfig { snapshot_every_entries: SNAPSHOT_EVERY, ..DriverConfig::default() };
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let restores = Arc::new(AtomicU64::new(0));
        let machine = LedgerMachine { ledger: ledger.clone(), restores: restores.clone() };
        let handle = Raft::start(
            raft,
            driver,
            Arc::new(disk.log_store()),
            Arc::new(disk.snapshot_store()),
            Arc::new(self.transport.clone()),
            machine,
        )
        .await?;
        self.transport.register(id, Arc::new(handle.clone()));
        self.running.insert(id, Member { disk, handle, ledger, restores });
        Ok(())
    }

    fn member(&self, id: NodeId) -> Result<&Member> {
        Ok(self.running.get(&id).ok_or_else(|| format!("member n{id} is not running"))?)
    }

    /// Crash-stop member `id`: its tasks end at once and its disk keeps only
    /// what was durable; the others can no longer reach it.
    fn crash(&mut self, id: NodeId) -> Result<()> {
        let member = self.running.remove(&id).ok_or_else(|| format!("member n{id} is not running"))?;
        self.transport.unregister(id);
        member.handle.abort();
        member.disk.crash();
        self.crashed.insert(id, member.disk);
        Ok(())
    }

    async fn restart(&mut self, id: NodeId) -> Result<()> {
        let disk = self.crashed.remove(&id).ok_or_else(|| format!("member n{id} has not crashed"))?;
        self.boot(id, disk).await
    }

    async fn statuses(&self) -> Result<BTreeMap<NodeId, Status>> {
        let mut out = BTreeMap::new();
        for (&id, m) in &self.running {
            out.insert(id, m.handle.status().await?);
        }
        Ok(out)
    }

    /// Wait for a running member to lead (the one of the highest term if
    /// two believe they do); returns it and its term.
    async fn leader(&self) -> Result<(NodeId, Status)> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leader =
                self.statuses().await?.into_iter().filter(|(_, s)| s.role == Role::Leader).max_by_key(|(_, s)| s.term);
            if let Some(found) = leader {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(format!("no leader elected within {PATIENCE:?}").into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait until every running member has applied all the leader has
    /// committed and holds the same ledger; returns that ledger and the index.
    async fn converged(&self) -> Result<(Ledger, LogIndex)> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, leader) = self.leader().await?;
            let statuses = self.statuses().await?;
            if statuses.values().all(|s| s.applied >= leader.commit) {
                let ledgers: Vec<Ledger> = self.running.values().map(|m| lock(&m.ledger).clone()).collect();
                if let Some(first) = ledgers.first() {
                    if ledgers.iter().all(|l| l == first) {
                        first.audit()?;
                        return Ok((first.clone(), leader.commit));
                    }
                }
            }
            if Instant::now() >= deadline {
                let views: Vec<String> =
                    self.running.iter().map(|(id, m)| format!("n{id}: {}", lock(&m.ledger).balances())).collect();
                return Err(format!("replicas did not converge within {PATIENCE:?}: {}", views.join("; ")).into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn shutdown(self) {
        for m in self.running.values() {
            m.handle.shutdown().await;
        }
    }
}

// ---------------------------------------------------------------------------
// The teller: proposes commands through the leader and checks every reply
// against a local ledger that executes the same commands.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Teller {
    seq: u64,
    model: Ledger,
}

impl Teller {
    async fn submit(&mut self, cluster: &Cluster, op: Op) -> Result<Reply> {
        self.seq += 1;
        let command = Command { seq: self.seq, op };
        let bytes = command.encode();
        let deadline = Instant::now() + PATIENCE;
        let reply = loop {
            let (leader, _) = cluster.leader().await?;
            match cluster.member(leader)?.handle.propose(bytes.clone()).await {
                Ok(reply) => break reply,
                // Not appended, overwritten by a new leader, or of unknown
                // outcome: the same sequence number makes a retry safe.
                Err(
                    e @ (RaftError::NotLeader { .. }
                    | RaftError::TransferInProgress(_)
                    | RaftError::Dropped
                    | RaftError::Unknown
                    | RaftError::Stopped),
                ) => {
                    if Instant::now() >= deadline {
                        return Err(format!("gave up on `{}` after {PATIENCE:?}: {e}", command.op).into());
                    }
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let expected = self.model.execute(command.clone());
        if reply != expected {
            return Err(format!("`{}`: the cluster answered {reply:?}, a local ledger {expected:?}", command.op).into());
        }
        Ok(reply)
    }

    /// Submit `op`, print its outcome, and fail unless it was accepted
    /// (`accept`) or refused (`!accept`).
    async fn run(&mut self, cluster: &Cluster, op: Op, accept: bool) -> Result<()> {
        let line = op.to_string();
        let reply = self.submit(cluster, op).await?;
        match &reply {
            Ok(balance) => println!("   {line:<34} -> balance {balance}"),
            Err(why) => println!("   {line:<34} -> refused: {why}"),
        }
        if reply.is_ok() != accept {
            let want = if accept { "accepted" } else { "refused" };
            return Err(format!("`{line}` should have been {want}").into());
        }
        Ok(())
    }
}

fn open(account: &str) -> Op {
    Op::Open { account: account.into() }
}

fn deposit(account: &str, amount: u64) -> Op {
    Op::Deposit { account: account.into(), amount }
}

fn withdraw(account: &str, amount: u64) -> Op {
    Op::Withdraw { account: account.into(), amount }
}

fn transfer(from: &str, to: &str, amount: u64) -> Op {
    Op::Transfer { from: from.into(), to: to.into(), amount }
}

/// A linearizable read on the leader: ReadIndex confirms leadership without
/// writing to the log and waits until the leader applied everything
/// committed before it; then the leader's ledger is read.
async fn linearizable_read(cluster: &Cluster, teller: &Teller) -> Result<NodeId> {
    let deadline = Instant::now() + PATIENCE;
    let (leader, read_index) = loop {
        let (leader, _) = cluster.leader().await?;
        match cluster.member(leader)?.handle.read_index().await {
            Ok(index) => break (leader, index),
            // Leadership moved between the two calls: ask the new leader.
            Err(e @ (RaftError::NotLeader { .. } | RaftError::Stopped)) if Instant::now() < deadline => {
                println!("   (read on n{leader} refused: {e}; retrying)");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let ledger = lock(&cluster.member(leader)?.ledger).clone();
    println!("   ReadIndex on n{leader} -> index {read_index}: {}", ledger.balances());
    // Every reply the teller has seen was committed before the read, so the
    // read must reflect all of them.
    if ledger != teller.model {
        return Err(
            format!("stale read: n{leader} shows {}, expected {}", ledger.balances(), teller.model.balances()).into()
        );
    }
    Ok(leader)
}

async fn check_replicas(cluster: &Cluster, teller: &Teller) -> Result<()> {
    let (ledger, index) = cluster.converged().await?;
    if ledger != teller.model {
        return Err(format!("replicas hold {}, expected {}", ledger.balances(), teller.model.balances()).into());
    }
    let ids: Vec<String> = cluster.running.keys().map(|id| format!("n{id}")).collect();
    println!("   {} applied through index {index} and hold the same ledger", ids.join(", "));
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let started = Instant::now();
    let names = ["alice", "bob", "carol"];
    let mut cluster = Cluster::start(3).await?;
    let mut teller = Teller::default();

    println!("1. Three members, in-memory disks, in-process transport");
    let (first, status) = cluster.leader().await?;
    println!("   n{first} leads term {}", status.term);

    println!("2. Accounts opened and money moved through the leader");
    for name in names {
        teller.run(&cluster, open(name), true).await?;
    }
    teller.run(&cluster, deposit("alice", 100), true).await?;
    teller.run(&cluster, deposit("bob", 50), true).await?;
    teller.run(&cluster, transfer("alice", "carol", 30), true).await?;
    teller.run(&cluster, withdraw("bob", 500), false).await?;
    teller.run(&cluster, transfer("carol", "bob", 45), false).await?;
    teller.run(&cluster, withdraw("bob", 20), true).await?;
    teller.run(&cluster, transfer("bob", "dave", 1), false).await?;

    println!("3. A linearizable read");
    let leader = linearizable_read(&cluster, &teller).await?;
    if let Some((&follower, m)) = cluster.running.iter().find(|(&id, _)| id != leader) {
        match m.handle.read_index().await {
            Err(RaftError::NotLeader { leader_hint }) => {
                let hint = leader_hint.map_or("no leader known".into(), |l| format!("try n{l}"));
                println!("   the same read on follower n{follower} -> refused: not the leader ({hint})");
            }
            Ok(index) => println!("   n{follower} had meanwhile become leader and read at index {index}"),
            Err(e) => return Err(e.into()),
        }
    }
    check_replicas(&cluster, &teller).await?;

    println!("4. The leader n{leader} crashes");
    let crashed_at = cluster.member(leader)?.handle.status().await?.last_index;
    cluster.crash(leader)?;
    let crash_time = Instant::now();
    let (next, status) = cluster.leader().await?;
    if next == leader {
        return Err(format!("n{leader} crashed but is still reported as leader").into());
    }
    println!("   n{next} leads term {} ({} ms after the crash)", status.term, crash_time.elapsed().as_millis());
    linearizable_read(&cluster, &teller).await?;

    println!("5. Business goes on under n{next}; the log is compacted into snapshots");
    let mut refused = 0;
    let rounds = 30usize;
    for i in 0..rounds {
        let op = transfer(names[i % 3], names[(i + 1) % 3], 5 + (i as u64 * 13) % 40);
        if teller.submit(&cluster, op).await?.is_err() {
            refused += 1;
        }
    }
    println!("   {rounds} transfers: {} applied, {refused} refused for insufficient funds", rounds - refused);
    // n{leader} stopped at `crashed_at`: once every running member has
    // compacted past it, it can only catch up by InstallSnapshot.
    let mut extra = 0u64;
    while cluster.statuses().await?.values().any(|s| s.snapshot_index <= crashed_at) {
        extra += 1;
        if extra > 4 * SNAPSHOT_EVERY {
            return Err(format!("no snapshot past index {crashed_at} after {extra} more commands").into());
        }
        if let Err(why) = teller.submit(&cluster, deposit("alice", 1)).await? {
            return Err(format!("a deposit was refused: {why}").into());
        }
    }
    if extra > 0 {
        println!("   ({extra} more deposits until every member compacted past index {crashed_at})");
    }
    for (id, m) in &cluster.running {
        let (meta, data) = m.disk.snapshot().ok_or_else(|| format!("n{id} has no snapshot"))?;
        let snap = Ledger::decode(data.clone())?;
        let total = snap.audit()?;
        println!(
            "   n{id}: snapshot through index {} ({} bytes): {} accounts holding {total}",
            meta.last_index,
            data.len(),
            snap.accounts.len()
        );
    }
    linearizable_read(&cluster, &teller).await?;

    println!("6. n{leader} restarts from its disk and catches up");
    cluster.restart(leader).await?;
    // Restores done while starting come from the member's own snapshot;
    // later ones are snapshots installed from the leader.
    let restores = cluster.member(leader)?.restores.clone();
    let at_boot = restores.load(Ordering::SeqCst);
    check_replicas(&cluster, &teller).await?;
    let installed = restores.load(Ordering::SeqCst) - at_boot;
    if installed == 0 {
        return Err(format!("n{leader} caught up without installing a snapshot").into());
    }
    println!("   n{leader} stopped at index {crashed_at} and installed {installed} snapshot(s) from the leader");
    teller.run(&cluster, transfer("carol", "alice", 1), true).await?;
    linearizable_read(&cluster, &teller).await?;
    check_replicas(&cluster, &teller).await?;

    let total = teller.model.audit()?;
    cluster.shutdown().await;
    println!(
        "All checks passed in {:.1} s: {} commands, {total} in the bank, every replica identical",
        started.elapsed().as_secs_f64(),
        teller.seq
    );
    Ok(())
}
