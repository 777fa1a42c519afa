//! Dispatch of incoming HTTP/2 requests to the generated service servers by
//! path (`/raftkv.v1.<Service>/<Method>`); anything else is `UNIMPLEMENTED`.
//!
//! Before a request reaches its service, the router registers it with its
//! connection (which may refuse a client past the clients' share of
//! connections), refuses peer RPCs (Raft, migration) from callers that are
//! not peers without reading their bodies, and makes the body draw on the
//! byte budgets ([`GrpcBody`]) with the message limit of its kind.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::combinators::MapErr;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use raftkv_wire::net::{BudgetError, Budgets, ConnInfo, GrpcBody, HeldBody, Pool};
use raftkv_wire::net::{Credentials, RouteError, Routes, TOKEN_HEADER};
use raftkv_wire::pb::{admin_server, calls_server, ctrler_server, kv_server, migration_server, raft_server};
use tonic::body::Body;
use tonic::codegen::Service;

use super::raft::RaftService;
use super::services::ApiService;
use crate::status;

/// How large and how slow requests may be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestLimits {
    /// Largest Raft message.
    pub(crate) max_message: usize,
    /// Largest client (and migration) request.
    pub(crate) max_client_message: usize,
    /// A client request must arrive whole within this of its start.
    pub(crate) client_deadline: Duration,
    /// A peer message must arrive whole within this of its start.
    pub(crate) peer_deadline: Duration,
}

/// A request body as the services read it: drawing on the budgets, its
/// failures as the statuses the caller gets.
pub(crate) type RequestBody = MapErr<GrpcBody<Incoming>, fn(BudgetError) -> tonic::Status>;

#[derive(Clone)]
pub(crate) struct Router {
    /// The connection this router serves (set per connection).
    pub(crate) conn: Option<ConnInfo>,
    /// Bytes the connection's partial requests may hold (set per connection).
    pub(crate) conn_budget: Option<Pool>,
    pub(crate) routes: Routes,
    pub(crate) budgets: Budgets,
    pub(crate) limits: RequestLimits,
    pub(crate) raft: raft_server::RaftServer<RaftService>,
    pub(crate) kv: kv_server::KvServer<ApiService>,
    pub(crate) ctrler: ctrler_server::CtrlerServer<ApiService>,
    pub(crate) migration: migration_server::MigrationServer<ApiService>,
    pub(crate) admin: admin_server::AdminServer<ApiService>,
    pub(crate) calls: calls_server::CallsServer<ApiService>,
}

impl Router {
    /// This router, serving the connection `conn`.
    pub(crate) fn with_connection(&self, conn: ConnInfo) -> Self {
        let conn_budget = Some(Pool::new(self.limits.max_message.max(self.limits.max_client_message)));
        Self { conn: Some(conn), conn_budget, ..self.clone() }
    }
}

/// An answer made here, without a service: `status` as a gRPC response.
fn refused(status: &tonic::Status) -> Answer {
    Box::pin(std::future::ready(Ok(status.clone().into_http())))
}

/// The credentials a request presents: its connection's certificate and
/// the token in its metadata. Every service reads them from the request's
/// extensions.
pub(crate) fn credentials_of<T>(request: &tonic::Request<T>) -> Credentials {
    request.extensions().get::<Credentials>().cloned().unwrap_or_default()
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

fn call<S>(mut service: S, request: Request<RequestBody>) -> Answer
where
    S: Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send,
{
    Box::pin(async move {
        std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
        service.call(request).await
    })
}

impl hyper::service::Service<Request<Incoming>> for Router {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<Incoming>) -> Answer {
        let (Some(conn), Some(conn_budget)) = (&self.conn, &self.conn_budget) else {
            return refused(&tonic::Status::internal("a request outside any connection"));
        };
        let token = request.headers().get(TOKEN_HEADER).map(|v| v.as_bytes().to_vec());
        let creds = conn.credentials(token.as_deref());
        let caller = self.routes.caller(&creds);
        let peer = caller.is_peer();
        let guard = match conn.conn.request(peer) {
            Ok(guard) => guard,
            Err(e) => return refused(&tonic::Status::resource_exhausted(e.to_string())),
        };
        let path = request.uri().path().to_string();
        let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        let peer_rpc = service == raft_server::SERVICE_NAME || service == migration_server::SERVICE_NAME;
        if peer_rpc && !peer {
            let e = RouteError::Unauthorized {
                what: path.trim_start_matches('/').to_string(),
                needs: "the cluster token or a member's certificate".into(),
                caller: caller.describe(),
            };
            return refused(&status::route(&e));
        }
        let (limit, deadline) = if service == raft_server::SERVICE_NAME {
            (self.limits.max_message, self.limits.peer_deadline)
        } else if peer {
            (self.limits.max_client_message, self.limits.peer_deadline)
        } else {
            (self.limits.max_client_message, self.limits.client_deadline)
        };
        let pools = vec![conn_budget.clone(), self.budgets.pool(peer)];
        let to_status: fn(BudgetError) -> tonic::Status = |e| status::budget(&e);
        let mut request = request.map(|body| GrpcBody::new(body, pools, limit, deadline).map_err(to_status));
        request.extensions_mut().insert(creds);
        let answer = self.dispatch(service, request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Body::new(HeldBody::new(body, guard))))
        })
    }
}

impl Router {
    fn dispatch(&self, service: &str, request: Request<RequestBody>) -> Answer {
        let path = request.uri().path().to_string();
        match service {
            raft_server::SERVICE_NAME => call(self.raft.clone(), request),
            kv_server::SERVICE_NAME => call(self.kv.clone(), request),
            ctrler_server::SERVICE_NAME => call(self.ctrler.clone(), request),
            migration_server::SERVICE_NAME => call(self.migration.clone(), request),
            admin_server::SERVICE_NAME => call(self.admin.clone(), request),
            calls_server::SERVICE_NAME => call(self.calls.clone(), request),
            _ => refused(&tonic::Status::unimplemented(format!("no service at {path}"))),
        }
    }
}
