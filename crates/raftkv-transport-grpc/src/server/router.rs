//! Dispatch of incoming HTTP/2 requests to the generated service servers by
//! path (`/raftkv.v1.<Service>/<Method>`); anything else is `UNIMPLEMENTED`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use http::{Request, Response};
use hyper::body::Incoming;
use raftkv_core::transport::{Credentials, TOKEN_HEADER};
use raftkv_wire::net::ConnInfo;
use raftkv_wire::pb::{admin_server, calls_server, ctrler_server, kv_server, migration_server, raft_server};
use tonic::body::Body;
use tonic::codegen::Service;

use super::raft::RaftService;
use super::services::ApiService;

#[derive(Clone)]
pub(crate) struct Router {
    /// The connection this router serves (set per connection).
    pub(crate) conn: Option<ConnInfo>,
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
        Self { conn: Some(conn), ..self.clone() }
    }
}

/// The credentials a request presents: its connection's certificate and
/// the token in its metadata. Every service reads them from the request's
/// extensions.
pub(crate) fn credentials_of<T>(request: &tonic::Request<T>) -> Credentials {
    request.extensions().get::<Credentials>().cloned().unwrap_or_default()
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

fn call<S>(mut service: S, request: Request<Incoming>) -> Answer
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Send + 'static,
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

    fn call(&self, mut request: Request<Incoming>) -> Answer {
        if let Some(conn) = &self.conn {
            let token = request.headers().get(TOKEN_HEADER).map(|v| v.as_bytes().to_vec());
            let creds = conn.credentials(token.as_deref());
            request.extensions_mut().insert(creds);
        }
        let path = request.uri().path();
        let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        match service {
            raft_server::SERVICE_NAME => call(self.raft.clone(), request),
            kv_server::SERVICE_NAME => call(self.kv.clone(), request),
            ctrler_server::SERVICE_NAME => call(self.ctrler.clone(), request),
            migration_server::SERVICE_NAME => call(self.migration.clone(), request),
            admin_server::SERVICE_NAME => call(self.admin.clone(), request),
            calls_server::SERVICE_NAME => call(self.calls.clone(), request),
            _ => {
                let status = tonic::Status::unimplemented(format!("no service at {path}"));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
