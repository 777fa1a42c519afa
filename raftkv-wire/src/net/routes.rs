//! [`Routes`]: what a network server hosts, and how a decoded request reaches
//! it. Shared by every network transport so that each only decodes, encodes
//! and maps [`RouteError`]s to its own status codes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};

use super::access::{AccessPolicy, Caller, Credentials};
use raftkv_core::api::{ServiceHandler, ServiceRequest, ServiceResponse};
use raftkv_core::raft::driver::RaftRpcHandler;
use raftkv_core::raft::{InstallSnapshotRequest, InstallSnapshotResponse, RaftRequest, RaftResponse};
use raftkv_core::transport::snapshot::chunk_taken;
use raftkv_core::{GroupId, NodeId};

/// Where a Raft request goes: the group, the sending member and the receiving one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RaftRoute {
    /// The Raft group.
    pub group: GroupId,
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
}

/// Why a server could not deliver a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No such member is hosted here.
    #[error("no member {node} of group {group} on this server")]
    UnknownMember {
        /// The group asked for.
        group: GroupId,
        /// The member asked for.
        node: NodeId,
    },
    /// The member has stopped.
    #[error("member {node} of group {group} has stopped")]
    Stopped {
        /// The group.
        group: GroupId,
        /// The member.
        node: NodeId,
    },
    /// The server hosts no service handler.
    #[error("this server does not offer service RPCs")]
    NoService,
    /// The server is draining before it stops: it takes no new service requests.
    #[error("this server is shutting down")]
    ShuttingDown,
    /// A snapshot stream was empty, mixed snapshots, or failed to decode.
    #[error("bad snapshot stream: {0}")]
    BadStream(String),
    /// The caller may not make this request (see [`AccessPolicy`]).
    #[error("refused: {what} needs {needs}, and the request came from {caller}")]
    Unauthorized {
        /// The request refused.
        what: String,
        /// What it needs.
        needs: String,
        /// Who sent it.
        caller: String,
    },
}

#[derive(Default)]
struct Hosted {
    members: BTreeMap<(GroupId, NodeId), Arc<dyn RaftRpcHandler>>,
    service: Option<Arc<dyn ServiceHandler>>,
    access: AccessPolicy,
}

/// Refusals are logged at most once per this interval (with a count of
/// those not logged), so that a flood of forged requests cannot flood the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// When the last refusal was logged, and how many were not since.
#[derive(Default)]
struct RefusalLog {
    last: std::sync::Mutex<Option<Instant>>,
    quiet: AtomicU64,
}

impl RefusalLog {
    fn refused(&self, e: &RouteError, creds: &Credentials) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL) {
            self.quiet.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        let unlogged = self.quiet.swap(0, Ordering::Relaxed);
        let remote = creds.remote.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
        tracing::warn!(%remote, refusals_not_logged = unlogged, "{e}");
    }
}

/// Service requests being answered, and whether new ones are refused.
#[derive(Default)]
struct Drain {
    refusing: AtomicBool,
    in_flight: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Counts one service request while it is answered.
struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The members and the service a server hosts. Clones share one table, so a
/// server can be started first and members added as they start.
#[derive(Clone, Default)]
pub struct Routes {
    hosted: Arc<RwLock<Hosted>>,
    drain: Arc<Drain>,
    refusals: Arc<RefusalLog>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosted = self.hosted.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Routes")
            .field("members", &hosted.members.keys().collect::<Vec<_>>())
            .field("service", &hosted.service.is_some())
            .field("access", &hosted.access)
            .finish()
    }
}

impl Routes {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Host member `node` of `group`; returns the handler it replaces, if any.
    pub fn add_member(
        &self,
        group: GroupId,
        node: NodeId,
        handler: Arc<dyn RaftRpcHandler>,
    ) -> Option<Arc<dyn RaftRpcHandler>> {
        self.hosted.write().unwrap_or_else(PoisonError::into_inner).members.insert((group, node), handler)
    }

    /// Stop hosting member `node` of `group`; returns its handler, if any.
    pub fn remove_member(&self, group: GroupId, node: NodeId) -> Option<Arc<dyn RaftRpcHandler>> {
        self.hosted.write().unwrap_or_else(PoisonError::into_inner).members.remove(&(group, node))
    }

    /// Serve service RPCs with `handler` (replacing any previous one).
    pub fn set_service(&self, handler: Arc<dyn ServiceHandler>) {
        self.hosted.write().unwrap_or_else(PoisonError::into_inner).service = Some(handler);
    }

    /// Check every request against `policy` (the server sets it from its
    /// TLS and token settings when it starts). The default is
    /// [`AccessPolicy::open`].
    pub fn set_access(&self, policy: AccessPolicy) {
        self.hosted.write().unwrap_or_else(PoisonError::into_inner).access = policy;
    }

    /// The policy requests are checked against.
    #[must_use]
    pub fn access(&self) -> AccessPolicy {
        self.hosted.read().unwrap_or_else(PoisonError::into_inner).access.clone()
    }

    /// Who `creds` make their sender, under the current policy.
    #[must_use]
    pub fn caller(&self, creds: &Credentials) -> Caller {
        self.hosted.read().unwrap_or_else(PoisonError::into_inner).access.caller(creds)
    }

    /// Refuse a Raft request from a caller that may not act as `route.from`.
    fn authorize_raft(&self, creds: &Credentials, route: RaftRoute, what: &str) -> Result<(), RouteError> {
        let caller = self.caller(creds);
        if caller.may_act_as(route.group, route.from) {
            return Ok(());
        }
        let e = RouteError::Unauthorized {
            what: format!("{what} from member {} of group {}", route.from, route.group),
            needs: "the cluster token or a certificate naming that member".into(),
            caller: caller.describe(),
        };
        self.refusals.refused(&e, creds);
        Err(e)
    }

    /// Refuse a service request the caller has no right to.
    fn authorize_service(&self, creds: &Credentials, request: &ServiceRequest) -> Result<(), RouteError> {
        let needs = match request {
            ServiceRequest::PullShards(_) => "the cluster token or a member's certificate".to_string(),
            ServiceRequest::DeleteShards(r) => {
                format!("the cluster token or a certificate naming a member of group {}", r.group)
            }
            _ => return Ok(()),
        };
        let caller = self.caller(creds);
        let allowed = match request {
            ServiceRequest::DeleteShards(r) => caller.may_speak_for(r.group),
            _ => caller.is_peer(),
        };
        if allowed {
            return Ok(());
        }
        let e = RouteError::Unauthorized { what: request.name().to_string(), needs, caller: caller.describe() };
        self.refusals.refused(&e, creds);
        Err(e)
    }

    /// The handler of member `node` of `group`.
    pub fn member(&self, group: GroupId, node: NodeId) -> Result<Arc<dyn RaftRpcHandler>, RouteError> {
        let hosted = self.hosted.read().unwrap_or_else(PoisonError::into_inner);
        hosted.members.get(&(group, node)).cloned().ok_or(RouteError::UnknownMember { group, node })
    }

    /// Queue `request` for the member `route` names, at once (so requests
    /// submitted in stream order are handled in that order), and return the
    /// future of its answer. Refused unless `creds` prove the sender may act
    /// as `route.from`.
    pub fn submit(
        &self,
        creds: &Credentials,
        route: RaftRoute,
        request: RaftRequest,
    ) -> Result<BoxFuture<'static, Result<RaftResponse, RouteError>>, RouteError> {
        self.authorize_raft(creds, route, request.name())?;
        let answer = self.member(route.group, route.to)?.submit(route.from, request);
        Ok(Box::pin(
            async move { answer.await.map_err(|_| RouteError::Stopped { group: route.group, node: route.to }) },
        ))
    }

    /// Feed a stream of snapshot chunks, each with its route, to the member
    /// the first one names, in order. Stops at the first answer that does not
    /// take its chunk (a higher term, a refusal) or after the chunk marked
    /// `done`, and returns that answer; a stream that ends early returns the
    /// answer to its last chunk. Every chunk must name the same route, term
    /// and snapshot as the first, and `creds` must prove the sender may act
    /// as that route's sender.
    pub async fn receive_snapshot<S, E>(
        &self,
        creds: &Credentials,
        mut chunks: S,
    ) -> Result<InstallSnapshotResponse, RouteError>
    where
        S: Stream<Item = Result<(RaftRoute, InstallSnapshotRequest), E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let bad = |what: String| RouteError::BadStream(what);
        let (route, first) = match chunks.next().await {
            Some(Ok(item)) => item,
            Some(Err(e)) => return Err(bad(e.to_string())),
            None => return Err(bad("the stream held no chunk".into())),
        };
        self.authorize_raft(creds, route, "install_snapshot")?;
        let member = self.member(route.group, route.to)?;
        let stopped = || RouteError::Stopped { group: route.group, node: route.to };
        let (term, meta) = (first.term, first.meta);
        let mut chunk = first;
        loop {
            let done = chunk.done;
            let sent = chunk.clone(); // cheap: the data is a shared `Bytes`
            let answer = member.submit(route.from, RaftRequest::InstallSnapshot(chunk)).await.map_err(|_| stopped())?;
            let RaftResponse::InstallSnapshot(answer) = answer else {
                return Err(bad("the member answered a snapshot chunk with another message".into()));
            };
            if done || !chunk_taken(&sent, &answer) {
                return Ok(answer);
            }
            chunk = match chunks.next().await {
                Some(Ok((r, c))) if r == route && c.term == term && c.meta == meta => c,
                Some(Ok(_)) => return Err(bad("a chunk names another route, term or snapshot than the first".into())),
                Some(Err(e)) => return Err(bad(e.to_string())),
                None => return Ok(answer),
            };
        }
    }

    /// Answer a service request with the hosted service handler; refused
    /// with [`RouteError::ShuttingDown`] once [`Routes::drain`] was called,
    /// and with [`RouteError::Unauthorized`] when `creds` do not give the
    /// right to it (migration calls are for members only).
    pub async fn serve(&self, creds: &Credentials, request: ServiceRequest) -> Result<ServiceResponse, RouteError> {
        self.authorize_service(creds, &request)?;
        let service = self.hosted.read().unwrap_or_else(PoisonError::into_inner).service.clone();
        let service = service.ok_or(RouteError::NoService)?;
        self.drain.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(self.drain.clone());
        if self.drain.refusing.load(Ordering::Acquire) {
            return Err(RouteError::ShuttingDown);
        }
        let response = service.handle(request).await;
        drop(guard);
        Ok(response)
    }

    /// Service requests being answered now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.drain.in_flight.load(Ordering::Acquire)
    }

    /// Whether [`Routes::drain`] was called: new service requests are refused.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.drain.refusing.load(Ordering::Acquire)
    }

    /// Refuse new service requests (clients move on to another server) and
    /// wait, at most `grace`, for those being answered to finish. Raft
    /// requests are still delivered, so the members can commit what the
    /// answered requests wait for. Returns how many were still running.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.drain.refusing.store(true, Ordering::Release);
        let wait = async {
            loop {
                let idle = self.drain.idle.notified();
                if self.in_flight() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
        self.in_flight()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::Notify;

    use super::{RouteError, Routes};
    use crate::net::Credentials;
    use raftkv_core::api::{ApiError, ServiceHandler, ServiceRequest, ServiceResponse};

    /// Answers a status request once `release` is notified.
    struct Slow {
        started: Notify,
        release: Notify,
    }

    #[async_trait]
    impl ServiceHandler for Slow {
        async fn handle(&self, _request: ServiceRequest) -> ServiceResponse {
            self.started.notify_one();
            self.release.notified().await;
            ServiceResponse::Status(Err(ApiError::NotLeader { leader_hint: None }))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn drain_refuses_new_requests_and_waits_for_those_running() {
        let slow = Arc::new(Slow { started: Notify::new(), release: Notify::new() });
        let routes = Routes::new();
        routes.set_service(slow.clone());
        let running = tokio::spawn({
            let routes = routes.clone();
            async move { routes.serve(&Credentials::none(), ServiceRequest::Status).await }
        });
        slow.started.notified().await;
        assert_eq!(routes.in_flight(), 1);

        let drain = tokio::spawn({
            let routes = routes.clone();
            async move { routes.drain(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(routes.is_draining());
        assert!(matches!(
            routes.serve(&Credentials::none(), ServiceRequest::Status).await,
            Err(RouteError::ShuttingDown)
        ));
        assert!(!drain.is_finished(), "drain waits for the running request");

        slow.release.notify_one();
        assert!(matches!(running.await, Ok(Ok(ServiceResponse::Status(_)))), "the running request is answered");
        assert_eq!(drain.await.ok(), Some(0), "nothing was cut short");
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_grace_period_and_counts_what_was_cut() {
        let slow = Arc::new(Slow { started: Notify::new(), release: Notify::new() });
        let routes = Routes::new();
        routes.set_service(slow.clone());
        let _running = tokio::spawn({
            let routes = routes.clone();
            async move { routes.serve(&Credentials::none(), ServiceRequest::Status).await }
        });
        slow.started.notified().await;
        assert_eq!(routes.drain(Duration::from_secs(1)).await, 1);
    }
}
