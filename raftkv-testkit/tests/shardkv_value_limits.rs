//! How large a key's value may grow, on the simulator: Appends stop at
//! [`MAX_STORED_VALUE_BYTES`], and a shard full of values that large still
//! moves between groups under the transport's message limit.
//!
//! The simulated network enforces no message size, so this test puts its
//! own limit in front of every ShardKV server: an answer to a shard pull
//! larger than the real transports' default `max_message_bytes` is refused
//! there, as a real transport refuses to carry it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use raftkv_core::api::{shard_of, ApiError, ServiceHandler, ServiceRequest, ServiceResponse, ShardData, ShardState};
use raftkv_core::client::{ClerkError, KvClerk};
use raftkv_core::shardkv::MAX_STORED_VALUE_BYTES;
use raftkv_core::{NodeId, ShardId};
use raftkv_testkit::sim::shard_cluster::{gid, server_name};
use raftkv_testkit::sim::{simulate, ShardCluster, ShardClusterConfig};

const MIB: usize = 1 << 20;

/// Longest a move may take in virtual time before the test calls it hung.
const MOVE_DEADLINE: Duration = Duration::from_secs(30);

/// What the pull answers of one run looked like.
#[derive(Debug, Default)]
struct PullLog {
    /// Bytes of every answer carrying data, in the order served.
    answers: Vec<usize>,
    /// Answers larger than the message limit (refused).
    over_limit: Vec<usize>,
    /// Answers that carried entries of the watched shard.
    watched_answers: usize,
}

/// A ShardKV server's service behind a message limit on pull answers.
struct MessageLimit {
    inner: Arc<dyn ServiceHandler>,
    limit: usize,
    watched: ShardId,
    log: Arc<Mutex<PullLog>>,
}

/// Bytes of keys and values in an answer, plus the framing the holder
/// counts (`ENTRY_FRAMING` 16 bytes an entry, `DEDUP_FRAMING` 24 a client).
fn answer_bytes(runs: &[ShardData]) -> usize {
    runs.iter().map(|r| r.entries.iter().map(|(k, v)| k.len() + v.len() + 16).sum::<usize>() + r.dedup.len() * 24).sum()
}

#[async_trait]
impl ServiceHandler for MessageLimit {
    async fn handle(&self, request: ServiceRequest) -> ServiceResponse {
        let answer = self.inner.handle(request).await;
        let ServiceResponse::PullShards(Ok(runs)) = &answer else { return answer };
        let bytes = answer_bytes(runs);
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.answers.push(bytes);
        if runs.iter().any(|r| r.shard == self.watched && !r.entries.is_empty()) {
            log.watched_answers += 1;
        }
        if bytes > self.limit {
            log.over_limit.push(bytes);
            return ServiceResponse::PullShards(Err(ApiError::Unavailable {
                reason: format!("an answer of {bytes} bytes exceeds the message limit of {} bytes", self.limit),
            }));
        }
        answer
    }
}

/// The simulator's node id of server `i` of group `g` (the harness's
/// numbering; a wrong guess fails the test, as the renamed server then
/// serves nothing).
fn kv_node(g: usize, i: usize) -> NodeId {
    NodeId(1000 + 100 * g as u64 + i as u64)
}

/// Put every running ShardKV server behind a [`MessageLimit`].
fn limit_pull_answers(c: &ShardCluster, limit: usize, watched: ShardId) -> Arc<Mutex<PullLog>> {
    let log = Arc::new(Mutex::new(PullLog::default()));
    for g in 0..c.config().groups {
        for i in 0..c.config().group_size {
            let Some(server) = c.server(g, i) else { continue };
            let wrapped = MessageLimit { inner: server.service(), limit, watched, log: log.clone() };
            c.net.attach_service(kv_node(g, i), &server_name(g, i), Arc::new(wrapped));
        }
    }
    log
}

/// 1 MiB of byte `fill`.
fn mib_of(fill: u8) -> Bytes {
    Bytes::from(vec![fill; MIB])
}

/// Keys (besides `not`) whose shard is `shard`.
fn keys_in(shard: ShardId, n_shards: usize, not: &str) -> impl Iterator<Item = String> + '_ {
    (0u32..).map(|i| format!("k{i}")).filter(move |k| k != not && shard_of(k.as_bytes(), n_shards) == shard)
}

/// A clerk that reaches the controller and group `g` only.
fn clerk_of_group(c: &mut ShardCluster, g: usize) -> KvClerk {
    let mut reach = c.ctrl_names();
    reach.extend(c.group_names(g));
    c.kv_clerk_reaching(&reach)
}

/// Read every key of `model` through `ck`, which reaches only the group
/// that should now serve them; panics naming the pull answers if the move
/// has not completed within [`MOVE_DEADLINE`].
async fn assert_served(ck: &mut KvClerk, model: &BTreeMap<String, Bytes>, log: &Mutex<PullLog>, what: &str) {
    for (key, want) in model {
        let got = match tokio::time::timeout(MOVE_DEADLINE, ck.get(key.clone())).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("{what}: get {key}: {e}"),
            Err(_) => {
                let log = log.lock().unwrap_or_else(PoisonError::into_inner);
                panic!(
                    "{what}: get {key} had no answer within {MOVE_DEADLINE:?}: the shard did not move; \
                     {} pull answers over the limit, the largest {:?} bytes",
                    log.over_limit.len(),
                    log.over_limit.iter().max()
                );
            }
        };
        let got = got.unwrap_or_default();
        assert!(
            got == want,
            "{what}: {key} holds {} bytes (starting {:?}), expected {} bytes (starting {:?})",
            got.len(),
            &got[..got.len().min(8)],
            want.len(),
            &want[..want.len().min(8)]
        );
    }
}

/// Wait until group `to` serves `shard` on every replica and group `from`
/// holds no copy of it any more (the handover is over).
async fn wait_handover(c: &ShardCluster, shard: ShardId, from: usize, to: usize) {
    let started = tokio::time::Instant::now();
    loop {
        let (mut serving, mut stale) = (0, 0);
        for i in 0..c.config().group_size {
            let held = |g: usize| {
                c.server(g, i)
                    .and_then(|s| s.state().read().shard_status().into_iter().find(|st| st.shard == shard))
                    .map(|st| st.state)
            };
            serving += usize::from(held(to) == Some(ShardState::Serving));
            stale += usize::from(held(from).is_some());
        }
        if serving == c.config().group_size && stale == 0 {
            return;
        }
        assert!(
            started.elapsed() < MOVE_DEADLINE,
            "shard {shard}: after {MOVE_DEADLINE:?}, {serving} replicas of group {to} serve it and {stale} of group \
             {from} still hold it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue case 9: 70 Appends of 1 MiB to one key were acknowledged, after
/// which Get failed and the shard could never move (its pull answer was
/// over the message limit). Now the fifth Append of 1 MiB is refused at
/// once and changes nothing, and a shard holding more than a message's
/// worth of such values moves in answers of at most one value each.
#[test]
fn a_key_filled_to_its_limit_by_appends_refuses_the_next_and_its_shard_still_moves() {
    const NAME: &str = "a_key_filled_to_its_limit_by_appends_refuses_the_next_and_its_shard_still_moves";
    simulate(NAME, |seed| async move {
        let mut c = ShardCluster::new(ShardClusterConfig::sharded(2, false, 0), seed).await;
        let n_shards = c.config().n_shards;
        let big = "big";
        let shard = shard_of(big.as_bytes(), n_shards);
        // The limit every real transport applies by default.
        let limit = raftkv_core::transport::DEFAULT_MAX_MESSAGE_BYTES;
        let log = limit_pull_answers(&c, limit, shard);
        c.join(&[0]).await;
        let mut ck = c.kv_clerk();
        let mut model = BTreeMap::new();

        // Four Appends of 1 MiB fill the key to exactly its limit.
        assert_eq!(MAX_STORED_VALUE_BYTES, 4 * MIB, "the test fills a key with four 1 MiB Appends");
        let mut value = Vec::with_capacity(MAX_STORED_VALUE_BYTES);
        for fill in b'A'..=b'D' {
            if let Err(e) = ck.append(big, mib_of(fill)).await {
                panic!("seed {seed}: append of 1 MiB of {:?} to {big}: {e}", char::from(fill));
            }
            value.extend_from_slice(&mib_of(fill));
        }
        let value = Bytes::from(value);
        model.insert(big.to_string(), value.clone());

        // The fifth is refused at once, says why, and changes nothing.
        let asked = tokio::time::Instant::now();
        let refused = ck.append(big, mib_of(b'E')).await;
        let took = asked.elapsed();
        match &refused {
            Err(ClerkError::Invalid(why))
                if why.contains("limit") && why.contains(&MAX_STORED_VALUE_BYTES.to_string()) => {}
            other => panic!("seed {seed}: the fifth 1 MiB append answered {other:?}, not a refusal naming the limit"),
        }
        assert!(took < Duration::from_secs(1), "seed {seed}: the refusal took {took:?}");
        // A smaller suffix is refused too: the value is full.
        assert!(matches!(ck.append(big, Bytes::from_static(b"y")).await, Err(ClerkError::Invalid(_))));
        assert_served(&mut ck, &model, &log, "after the refused appends").await;

        // More keys of the same shard, full ones and small ones, until the
        // shard holds more than one message can carry.
        let mut held = value.len();
        let mut others = keys_in(shard, n_shards, big);
        let mut fill = b'a';
        while held <= limit {
            let Some(key) = others.next() else { unreachable!("keys_in never ends") };
            let mut v = Vec::with_capacity(MAX_STORED_VALUE_BYTES);
            for _ in 0..4 {
                if let Err(e) = ck.append(key.clone(), mib_of(fill)).await {
                    panic!("seed {seed}: append of 1 MiB to {key}: {e}");
                }
                v.extend_from_slice(&mib_of(fill));
                fill = if fill == b'z' { b'a' } else { fill + 1 };
            }
            held += v.len();
            model.insert(key, Bytes::from(v));
        }
        for key in others.take(3) {
            let v = Bytes::from(format!("small {key}"));
            if let Err(e) = ck.put(key.clone(), v.clone()).await {
                panic!("seed {seed}: put {key}: {e}");
            }
            model.insert(key, v);
        }
        let full = model.values().filter(|v| v.len() == MAX_STORED_VALUE_BYTES).count();

        // The shard moves to group 1 and every value arrives there intact.
        c.join(&[1]).await;
        let shard_index = shard.0 as usize;
        c.move_shard(shard_index, 1).await;
        let config = c.query().await;
        assert_eq!(config.shards.get(shard_index), Some(&gid(1)), "seed {seed}: {config:?}");
        let mut ck1 = clerk_of_group(&mut c, 1);
        assert_served(&mut ck1, &model, &log, "on group 1, the new owner").await;
        wait_handover(&c, shard, 0, 1).await;
        {
            let log = log.lock().unwrap_or_else(PoisonError::into_inner);
            assert!(log.over_limit.is_empty(), "seed {seed}: pull answers over the limit: {:?}", log.over_limit.len());
            // The data travelled in pages: every full value alone, no
            // answer much larger than one value.
            let largest = log.answers.iter().copied().max().unwrap_or(0);
            assert!(
                (MAX_STORED_VALUE_BYTES..=MAX_STORED_VALUE_BYTES + 64 * 1024).contains(&largest),
                "seed {seed}: largest pull answer {largest} bytes"
            );
            assert!(
                log.watched_answers >= full,
                "seed {seed}: {full} full values came in {} answers",
                log.watched_answers
            );
        }

        // The store still refuses to grow the key on its new owner.
        assert!(matches!(ck1.append(big, Bytes::from_static(b"y")).await, Err(ClerkError::Invalid(_))));

        // A later reconfiguration completes too: group 1 leaves, and the
        // shard comes back to group 0 whole.
        c.leave(&[1]).await;
        let mut ck0 = clerk_of_group(&mut c, 0);
        assert_served(&mut ck0, &model, &log, "back on group 0 after group 1 left").await;
        wait_handover(&c, shard, 1, 0).await;
        let log = log.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(log.over_limit.is_empty(), "seed {seed}: pull answers over the limit: {:?}", log.over_limit.len());
        eprintln!(
            "[value limits] seed {seed}: {} keys, {held} bytes in shard {shard}; {} pull answers, largest {:?} bytes",
            model.len(),
            log.answers.len(),
            log.answers.iter().max()
        );
        drop(log);
        c.shutdown();
    });
}
