//! The service RPCs (`raftkv.v1.Kv`, `Ctrler`, `Migration`, `Admin`, and
//! `Calls`: the same small requests multiplexed on one stream), delivered to
//! the server's service handler through [`Routes`].

use futures::FutureExt;
use raftkv_core::trace::TRACEPARENT;
use raftkv_wire::net::{Credentials, Routes};
use raftkv_wire::pb::{self, pipeline_error};
use raftkv_wire::trace::{accept_traceparent, service_rpc_span};
use raftkv_wire::{ServiceRequestPb, ServiceResponsePb};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::router::credentials_of;
use super::stream::{serve_stream, Replies};
use crate::status;

#[derive(Clone)]
pub(crate) struct ApiService {
    pub(crate) routes: Routes,
    /// Largest message sent (a call stream's answer past it is refused alone).
    pub(crate) limit: usize,
}

impl ApiService {
    /// Answer `wire`, inside its receiving span (a child of the remote span
    /// `traceparent` names, if any).
    async fn serve(
        &self,
        creds: &Credentials,
        wire: ServiceRequestPb,
        traceparent: Option<&str>,
    ) -> Result<ServiceResponsePb, Status> {
        let rpc = wire.rpc();
        let request = wire.into_core().map_err(|e| status::malformed(&e))?;
        let span = service_rpc_span(&request, traceparent);
        let response =
            self.routes.serve(creds, request.clone()).instrument(span).await.map_err(|e| status::route(&e))?;
        if !request.is_answered_by(&response) {
            return Err(status::mismatch(rpc));
        }
        Ok(ServiceResponsePb::from_core(response))
    }
}

/// The trace context a call's metadata carries, if it is text (an ASCII
/// value) within bounds; anything else is ignored.
fn traceparent_in(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get(TRACEPARENT)?.to_str().ok()?;
    accept_traceparent(value).map(str::to_owned)
}

/// `impl $trait for ApiService`, one method per (name, request, response,
/// request variant, response variant).
macro_rules! service_impl {
    ($trait:path { $(($name:ident, $req:ty, $resp:ty, $in:ident, $out:ident)),+ $(,)? }) => {
        #[tonic::async_trait]
        impl $trait for ApiService {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let traceparent = traceparent_in(request.metadata());
                    let creds = credentials_of(&request);
                    match self.serve(&creds, ServiceRequestPb::$in(request.into_inner()), traceparent.as_deref()).await? {
                        ServiceResponsePb::$out(m) => Ok(Response::new(m)),
                        _ => Err(status::mismatch(stringify!($name))),
                    }
                }
            )+
        }
    };
}

service_impl!(pb::kv_server::Kv {
    (get, pb::GetRequest, pb::KvResponse, Get, Kv),
    (put, pb::PutRequest, pb::KvResponse, Put, Kv),
    (append, pb::AppendRequest, pb::KvResponse, Append, Kv),
    (delete, pb::DeleteRequest, pb::KvResponse, Delete, Kv),
});

service_impl!(pb::ctrler_server::Ctrler {
    (join, pb::JoinRequest, pb::CtrlResponse, Join, Ctrl),
    (leave, pb::LeaveRequest, pb::CtrlResponse, Leave, Ctrl),
    (r#move, pb::MoveRequest, pb::CtrlResponse, Move, Ctrl),
    (query, pb::QueryRequest, pb::CtrlResponse, Query, Ctrl),
});

service_impl!(pb::migration_server::Migration {
    (pull_shards, pb::PullShardsRequest, pb::PullShardsResponse, PullShards, PullShards),
    (delete_shards, pb::DeleteShardsRequest, pb::DeleteShardsResponse, DeleteShards, DeleteShards),
});

service_impl!(pb::admin_server::Admin {
    (status, pb::StatusRequest, pb::StatusResponse, Status, Status),
});

/// Bytes a call stream frame adds to its message (number, framing).
const CALL_FRAME_OVERHEAD: usize = 16;

/// The reply frame to call `seq` for the outcome of serving it; an answer
/// too large to send is refused on its own (it would end the stream, and
/// with it every other call on the connection).
fn call_reply(seq: u64, served: Result<ServiceResponsePb, Status>, limit: usize) -> pb::CallReply {
    let refused = |code: pipeline_error::Code, message: String| pb::CallReply {
        seq,
        body: Some(pb::call_reply::Body::Error(pb::PipelineError { code: code as i32, message })),
    };
    match served {
        Ok(response) => match response.into_call(seq) {
            Some(reply) if prost::Message::encoded_len(&reply) + CALL_FRAME_OVERHEAD > limit => refused(
                pipeline_error::Code::Malformed,
                format!(
                    "the answer of {} bytes exceeds the message limit of {limit} bytes",
                    prost::Message::encoded_len(&reply)
                ),
            ),
            Some(reply) => reply,
            None => refused(pipeline_error::Code::Malformed, "a migration answer on the call stream".into()),
        },
        Err(s) => {
            let code = match s.code() {
                tonic::Code::Unavailable => pipeline_error::Code::Stopped,
                tonic::Code::NotFound => pipeline_error::Code::UnknownMember,
                tonic::Code::PermissionDenied => pipeline_error::Code::Unauthorized,
                _ => pipeline_error::Code::Malformed,
            };
            refused(code, s.message().to_string())
        }
    }
}

#[tonic::async_trait]
impl pb::calls_server::Calls for ApiService {
    type StreamStream = Replies<pb::CallReply>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::CallRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let api = self.clone();
        let creds = credentials_of(&request);
        let submit = move |m: pb::CallRequest| {
            let (seq, traceparent, wire) = ServiceRequestPb::from_call(m);
            let (api, creds) = (api.clone(), creds.clone());
            async move {
                let traceparent = traceparent.as_deref().and_then(accept_traceparent);
                let served = match wire {
                    Ok(wire) => api.serve(&creds, wire, traceparent).await,
                    Err(e) => Err(status::malformed(&e)),
                };
                call_reply(seq, served, api.limit)
            }
            .boxed()
        };
        Ok(Response::new(serve_stream(request.into_inner(), submit)))
    }
}
