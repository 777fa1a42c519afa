//! [`ConnTable`]: how many connections a server holds and of which kind, and
//! [`Conn`]: one connection's state, whose [`Conn::watch`] says when it
//! must be closed.
//!
//! A connection is *silent* from its accept until its first request, then a
//! *client*'s or a *peer*'s (a caller proven a member). The rules, from
//! [`ServerLimits`]:
//! - at most `max_connections` are open; a new one past it closes the oldest
//!   silent connection to make room, or is itself closed at once;
//! - at most `max_silent_connections` are silent; past it the oldest is
//!   closed (a flood of connections that never speak churns through itself
//!   while callers that send a request at once get in);
//! - a silent connection is closed `first_request_timeout` after its accept
//!   (TLS handshake included), an idle one (no request in progress)
//!   `idle_timeout` after its last request ended;
//! - clients may hold at most `max_connections - reserved_for_peers`: a
//!   client's first request past that is refused and its connection closed,
//!   so peers always find room.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::net::ServerLimits;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a refused client's connection stays open for the refusal to reach it.
const REFUSAL_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a server closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// It sent no request within the first-request deadline.
    NoRequest,
    /// No request was in progress for the idle timeout.
    Idle,
    /// The oldest silent connection, closed to make room.
    Evicted,
    /// A client's connection past the clients' share.
    TooManyClients,
}

/// What a connection is, by what it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Silent,
    Client,
    Peer,
}

/// Connections counted by kind, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCounts {
    /// Open now.
    pub open: usize,
    /// Open and yet to send a request.
    pub silent: usize,
    /// Open, of clients.
    pub clients: usize,
    /// Open, of peers.
    pub peers: usize,
    /// Closed at once on accept: no room.
    pub refused: u64,
    /// Closed to make room for newer ones.
    pub evicted: u64,
    /// Closed for sending nothing, or nothing more, in time.
    pub timed_out: u64,
    /// Closed because clients held their whole share.
    pub over_client_share: u64,
}

#[derive(Default)]
struct Table {
    counts: ConnCounts,
    /// Silent connections, oldest first (some may have spoken or closed since).
    silent: VecDeque<Weak<Conn>>,
}

/// Every connection of one server.
pub struct ConnTable {
    limits: ServerLimits,
    table: Mutex<Table>,
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable").field("limits", &self.limits).field("counts", &self.counts()).finish()
    }
}

impl ConnTable {
    /// A table applying `limits`.
    #[must_use]
    pub fn new(limits: ServerLimits) -> Arc<Self> {
        Arc::new(Self { limits, table: Mutex::new(Table::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counts now.
    #[must_use]
    pub fn counts(&self) -> ConnCounts {
        self.lock().counts
    }

    /// Close the oldest silent connection still silent; whether there was one.
    fn evict_oldest_silent(table: &mut Table) -> bool {
        while let Some(weak) = table.silent.pop_front() {
            if let Some(conn) = weak.upgrade() {
                if conn.class() == Class::Silent && conn.close_now(CloseReason::Evicted) {
                    table.counts.silent -= 1;
                    table.counts.open -= 1;
                    table.counts.evicted += 1;
                    return true;
                }
            }
        }
        false
    }

    /// Take a newly accepted connection, making room if needed; `None` if
    /// there is none to make (close it at once).
    pub fn admit(self: &Arc<Self>) -> Option<Arc<Conn>> {
        let mut table = self.lock();
        let full = table.counts.open >= self.limits.max_connections.max(1);
        if full && !Self::evict_oldest_silent(&mut table) {
            table.counts.refused += 1;
            return None;
        }
        if table.counts.silent >= self.limits.max_silent_connections.max(1) {
            Self::evict_oldest_silent(&mut table);
        }
        let conn = Arc::new(Conn {
            table: Arc::downgrade(self),
            accepted: Instant::now(),
            class: Mutex::new(Class::Silent),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            closing: Mutex::new(None),
            closing_at: Mutex::new(None),
            released: AtomicBool::new(false),
            wake: Notify::new(),
            first_request_timeout: self.limits.first_request_timeout,
            idle_timeout: self.limits.idle_timeout,
        });
        table.counts.open += 1;
        table.counts.silent += 1;
        table.silent.push_back(Arc::downgrade(&conn));
        // Forget connections that are silent no more, so the queue stays short.
        if table.silent.len() > 2 * self.limits.max_silent_connections.max(1) {
            table.silent.retain(|w| w.upgrade().is_some_and(|c| c.class() == Class::Silent));
        }
        Some(conn)
    }
}

/// One connection: its kind, its requests in progress, and whether it must close.
pub struct Conn {
    table: Weak<ConnTable>,
    accepted: Instant,
    class: Mutex<Class>,
    in_flight: AtomicUsize,
    /// Milliseconds after `accepted` when the last request ended.
    idle_since_ms: AtomicU64,
    closing: Mutex<Option<CloseReason>>,
    /// When it was marked to close.
    closing_at: Mutex<Option<Instant>>,
    /// Whether its counts were taken out of the table.
    released: AtomicBool,
    wake: Notify,
    first_request_timeout: std::time::Duration,
    idle_timeout: std::time::Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("class", &self.class()).field("in_flight", &self.in_flight()).finish()
    }
}

/// The server refuses a client's request: clients hold their whole share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this server holds as many client connections as it takes ({limit}); try another server or later")]
pub struct TooManyClients {
    /// The clients' share.
    pub limit: usize,
}

/// A request in progress on a connection; dropping it ends the request.
#[derive(Debug)]
pub struct RequestGuard(Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let conn = &self.0;
        let elapsed = u64::try_from(conn.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        conn.idle_since_ms.store(elapsed, Ordering::Release);
        if conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            conn.wake.notify_one();
        }
    }
}

impl Conn {
    fn class(&self) -> Class {
        *self.class.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Mark the connection to close for `reason` (the first reason wins);
    /// whether this call marked it.
    fn close_now(&self, reason: CloseReason) -> bool {
        let mut closing = self.closing.lock().unwrap_or_else(PoisonError::into_inner);
        if closing.is_some() {
            return false;
        }
        *closing = Some(reason);
        drop(closing);
        *self.closing_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.wake.notify_one();
        true
    }

    /// A request starts on this connection, from a peer or not. The first
    /// request makes a silent connection a client's or a peer's; a client's
    /// past the clients' share is refused (and the connection closes once
    /// the refusal has gone out).
    pub fn request(self: &Arc<Self>, peer: bool) -> Result<RequestGuard, TooManyClients> {
        if let Some(table) = self.table.upgrade() {
            let mut class = self.class.lock().unwrap_or_else(PoisonError::into_inner);
            // An evicted connection was counted out already.
            let evicted = *self.closing.lock().unwrap_or_else(PoisonError::into_inner) == Some(CloseReason::Evicted);
            let released = self.released.load(Ordering::Acquire) || evicted;
            match (*class, peer) {
                (Class::Silent, _) if !released => {
                    let mut t = table.lock();
                    let share = table.limits.max_connections.saturating_sub(table.limits.reserved_for_peers).max(1);
                    if !peer && t.counts.clients >= share {
                        t.counts.over_client_share += 1;
                        drop(t);
                        drop(class);
                        self.close_now(CloseReason::TooManyClients);
                        return Err(TooManyClients { limit: share });
                    }
                    t.counts.silent -= 1;
                    if peer {
                        t.counts.peers += 1;
                        *class = Class::Peer;
                    } else {
                        t.counts.clients += 1;
                        *class = Class::Client;
                    }
                }
                (Class::Client, true) if !released => {
                    let mut t = table.lock();
                    t.counts.clients -= 1;
                    t.counts.peers += 1;
                    *class = Class::Peer;
                }
                _ => {}
            }
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(RequestGuard(self.clone()))
    }

    /// Resolves when the connection must be closed, with why.
    pub async fn watch(&self) -> CloseReason {
        loop {
            let wake = self.wake.notified();
            let closing = *self.closing.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(reason) = closing {
                if reason != CloseReason::TooManyClients {
                    return reason;
                }
                // A refused client's connection stays a moment, for the refusal to go out.
                let marked = *self.closing_at.lock().unwrap_or_else(PoisonError::into_inner);
                let marked = marked.unwrap_or(self.accepted);
                let linger = marked + REFUSAL_LINGER;
                if linger <= Instant::now() {
                    return reason;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(linger) => {}
                    () = wake => {}
                }
                continue;
            }
            let (deadline, reason) = if self.class() == Class::Silent {
                (self.accepted + self.first_request_timeout, CloseReason::NoRequest)
            } else if self.in_flight() == 0 {
                let idle_since =
                    self.accepted + std::time::Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
                (idle_since + self.idle_timeout, CloseReason::Idle)
            } else {
                (Instant::now() + self.idle_timeout, CloseReason::Idle)
            };
            if deadline <= Instant::now() && (reason == CloseReason::NoRequest || self.in_flight() == 0) {
                if self.close_now(reason) {
                    if let Some(table) = self.table.upgrade() {
                        table.lock().counts.timed_out += 1;
                    }
                }
                return reason;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = wake => {}
            }
        }
    }

    /// The connection has closed: take it out of the counts (once).
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(table) = self.table.upgrade() else { return };
        let class = self.class();
        let evicted = *self.closing.lock().unwrap_or_else(PoisonError::into_inner) == Some(CloseReason::Evicted);
        let mut t = table.lock();
        if evicted {
            // Counted out when it was evicted.
            return;
        }
        t.counts.open -= 1;
        match class {
            Class::Silent => t.counts.silent -= 1,
            Class::Client => t.counts.clients -= 1,
            Class::Peer => t.counts.peers -= 1,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn limits(max: usize, reserved: usize, silent: usize) -> ServerLimits {
        ServerLimits {
            max_connections: max,
            reserved_for_peers: reserved,
            max_silent_connections: silent,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ServerLimits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_silent_connection_makes_room() {
        let table = ConnTable::new(limits(3, 0, 3));
        let a = table.admit().unwrap();
        let b = table.admit().unwrap();
        let c = table.admit().unwrap();
        let _guard = b.request(false).unwrap();
        let d = table.admit().unwrap();
        assert_eq!(a.watch().await, CloseReason::Evicted, "the oldest silent one goes");
        a.release();
        assert_eq!(table.counts(), ConnCounts { open: 3, silent: 2, clients: 1, evicted: 1, ..ConnCounts::default() });
        let _ = (c, d);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_of_speaking_connections_refuses_new_ones() {
        let table = ConnTable::new(limits(2, 0, 2));
        let (a, b) = (table.admit().unwrap(), table.admit().unwrap());
        let _ga = a.request(false).unwrap();
        let _gb = b.request(true).unwrap();
        assert!(table.admit().is_none());
        assert_eq!(table.counts().refused, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connections_are_capped_separately() {
        let table = ConnTable::new(limits(100, 0, 2));
        let a = table.admit().unwrap();
        let _b = table.admit().unwrap();
        let _c = table.admit().unwrap();
        assert_eq!(a.watch().await, CloseReason::Evicted);
        assert_eq!(table.counts().silent, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_and_idleness_time_out() {
        let table = ConnTable::new(limits(10, 0, 10));
        let silent = table.admit().unwrap();
        let started = Instant::now();
        assert_eq!(silent.watch().await, CloseReason::NoRequest);
        assert_eq!(started.elapsed(), Duration::from_secs(10));

        let idle = table.admit().unwrap();
        let guard = idle.request(false).unwrap();
        tokio::time::sleep(Duration::from_secs(100)).await;
        // A request in progress keeps it open however long it takes.
        let watch = idle.watch();
        tokio::pin!(watch);
        assert!(tokio::time::timeout(Duration::from_secs(200), &mut watch).await.is_err());
        let ended = Instant::now();
        drop(guard);
        assert_eq!(watch.await, CloseReason::Idle);
        assert_eq!(ended.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn clients_cannot_take_the_peers_share() {
        let table = ConnTable::new(limits(4, 2, 4));
        let conns: Vec<_> = (0..4).map(|_| table.admit().unwrap()).collect();
        let _g0 = conns[0].request(false).unwrap();
        let _g1 = conns[1].request(false).unwrap();
        let refused = conns[2].request(false);
        assert_eq!(refused.unwrap_err(), TooManyClients { limit: 2 });
        assert_eq!(conns[2].watch().await, CloseReason::TooManyClients);
        let _g3 = conns[3].request(true).unwrap();
        let counts = table.counts();
        assert_eq!((counts.clients, counts.peers, counts.over_client_share), (2, 1, 1));
        for c in &conns {
            c.release();
        }
        drop((_g0, _g1, _g3));
        assert_eq!(table.counts().open, 0);
    }
}
