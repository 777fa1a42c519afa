//! Delay and reordering of packets between nodes, done in user space: the
//! kernel here has no `netem` qdisc, so the fault chain hands packets to
//! NFQUEUE [`QUEUE`](super::net::QUEUE) and this thread gives each one its
//! verdict (accept) only after a random delay. Packets drawn a longer delay
//! than those behind them are overtaken: that is the reordering.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::rng::Rng;

/// How long packets are held while a delay fault is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delay {
    /// Least delay, ms.
    pub base_ms: u64,
    /// Up to this much more, uniformly drawn per packet, ms.
    pub jitter_ms: u64,
}

/// The handler thread; stopped (every held packet released) when dropped.
pub struct Delayer {
    stop: Arc<AtomicBool>,
    /// Packets handled so far.
    packets: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<()>>>,
}

struct Held {
    due: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl Delayer {
    /// Bind the queue and hold each packet for `delay`, drawing from `seed`.
    pub fn start(delay: Delay, seed: u64) -> Result<Self> {
        let mut queue = nfq::Queue::open().context("opening a netfilter queue socket (needs root)")?;
        queue.bind(super::net::QUEUE).context("binding the netfilter queue")?;
        queue.set_copy_range(super::net::QUEUE, 0).context("netfilter queue: metadata only")?;
        queue.set_queue_max_len(super::net::QUEUE, 65_536).context("netfilter queue length")?;
        queue.set_fail_open(super::net::QUEUE, true).context("netfilter queue: fail open")?;
        queue.set_nonblocking(true);
        let stop = Arc::new(AtomicBool::new(false));
        let packets = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), packets.clone());
        let thread = std::thread::Builder::new()
            .name("chaos-delay".into())
            .spawn(move || hold_loop(queue, delay, seed, &s, &p))
            .context("starting the delay thread")?;
        Ok(Self { stop, packets, thread: Some(thread) })
    }
}

fn hold_loop(mut queue: nfq::Queue, delay: Delay, seed: u64, stop: &AtomicBool, packets: &AtomicU64) -> Result<()> {
    let mut rng = Rng(seed | 1);
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut got = false;
        while let Ok(mut msg) = queue.recv() {
            got = true;
            seq += 1;
            packets.fetch_add(1, Ordering::Relaxed);
            let ms = delay.base_ms + rng.next() % (delay.jitter_ms + 1);
            msg.set_verdict(nfq::Verdict::Accept);
            held.push(Reverse(Held { due: Instant::now() + Duration::from_millis(ms), seq, msg }));
        }
        let now = Instant::now();
        while held.peek().is_some_and(|Reverse(h)| h.due <= now) {
            if let Some(Reverse(h)) = held.pop() {
                queue.verdict(h.msg).context("giving a packet its verdict")?;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    for Reverse(h) in held.into_sorted_vec().into_iter().rev() {
        queue.verdict(h.msg).context("releasing a held packet")?;
    }
    queue.unbind(super::net::QUEUE).context("unbinding the netfilter queue")?;
    Ok(())
}

impl Delayer {
    /// Release every held packet and stop; how many packets it held, or an
    /// error if the thread failed.
    pub fn stop(mut self) -> Result<u64> {
        self.finish()?;
        Ok(self.packets.load(Ordering::Relaxed))
    }

    fn finish(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow::anyhow!("the delay thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
