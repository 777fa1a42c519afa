//! The `raftkv.v1.Raft` service: unary RPCs, the ordered pipeline and
//! streamed snapshots, delivered to members through [`Routes`].

use std::future::Future;

use futures::FutureExt;
use raftkv_core::raft::RaftResponse;
use raftkv_wire::net::{Credentials, RouteError, Routes};
use raftkv_wire::pb::{self, pipeline_error, pipeline_reply};
use raftkv_wire::trace::{raft_rpc_span, receive_snapshot, snapshot_chunk_from_pb_traced};
use raftkv_wire::{snapshot_response_to_pb, DecodeError, RaftRequestPb, RaftResponsePb};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::router::credentials_of;
use super::stream::{serve_stream, Replies};
use crate::status;

pub(crate) struct RaftService {
    pub(crate) routes: Routes,
    /// A snapshot stream that sends no chunk for this long is abandoned.
    pub(crate) snapshot_idle: std::time::Duration,
}

impl RaftService {
    async fn unary(&self, creds: &Credentials, mut wire: RaftRequestPb) -> Result<RaftResponsePb, Status> {
        let traceparent = wire.take_traceparent();
        let (route, request) = wire.into_core().map_err(|e| status::malformed(&e))?;
        let span = raft_rpc_span(route, &request, traceparent.as_deref());
        let answer = span.in_scope(|| self.routes.submit(creds, route, request)).map_err(|e| status::route(&e))?;
        let response = answer.instrument(span).await.map_err(|e| status::route(&e))?;
        Ok(RaftResponsePb::from_core(response))
    }
}

fn pipeline_reply(seq: u64, answer: Result<RaftResponse, PipelineFailure>) -> pb::PipelineReply {
    let failure = |code: pipeline_error::Code, message: String| pb::PipelineReply {
        seq,
        body: Some(pipeline_reply::Body::Error(pb::PipelineError { code: code as i32, message })),
    };
    match answer {
        Ok(response) => RaftResponsePb::from_core(response)
            .into_pipeline(seq)
            .unwrap_or_else(|_| failure(pipeline_error::Code::Malformed, "a snapshot answer on the pipeline".into())),
        Err(PipelineFailure::Malformed(m)) => failure(pipeline_error::Code::Malformed, m),
        Err(PipelineFailure::Route(e @ RouteError::Stopped { .. })) => {
            failure(pipeline_error::Code::Stopped, e.to_string())
        }
        Err(PipelineFailure::Route(e @ RouteError::Unauthorized { .. })) => {
            failure(pipeline_error::Code::Unauthorized, e.to_string())
        }
        Err(PipelineFailure::Route(e)) => failure(pipeline_error::Code::UnknownMember, e.to_string()),
    }
}

enum PipelineFailure {
    Malformed(String),
    Route(RouteError),
}

/// Submit one pipelined message to its member inside its receiving span (at
/// once, so messages are handled in stream order); the answer, awaited
/// inside that span.
fn submit_traced(
    routes: &Routes,
    creds: &Credentials,
    wire: Result<RaftRequestPb, DecodeError>,
) -> Result<impl Future<Output = Result<RaftResponse, RouteError>>, PipelineFailure> {
    let mut wire = wire.map_err(|e| PipelineFailure::Malformed(e.to_string()))?;
    let traceparent = wire.take_traceparent();
    let (route, request) = wire.into_core().map_err(|e| PipelineFailure::Malformed(e.to_string()))?;
    let span = raft_rpc_span(route, &request, traceparent.as_deref());
    let answer = span.in_scope(|| routes.submit(creds, route, request)).map_err(PipelineFailure::Route)?;
    Ok(answer.instrument(span))
}

/// `impl Raft for RaftService`: one unary method per (name, request,
/// response, variant) — decode, deliver, answer with the same variant —
/// plus the streaming methods written out in `$rest`.
macro_rules! raft_impl {
    ([$(($name:ident, $req:ty, $resp:ty, $variant:ident)),+ $(,)?] $($rest:tt)*) => {
        #[tonic::async_trait]
        impl pb::raft_server::Raft for RaftService {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let creds = credentials_of(&request);
                    match self.unary(&creds, RaftRequestPb::$variant(request.into_inner())).await? {
                        RaftResponsePb::$variant(m) => Ok(Response::new(m)),
                        _ => Err(status::mismatch(stringify!($name))),
                    }
                }
            )+
            $($rest)*
        }
    };
}

raft_impl! {
    [
        (append_entries, pb::AppendEntriesRequest, pb::AppendEntriesResponse, AppendEntries),
        (heartbeat, pb::HeartbeatRequest, pb::HeartbeatResponse, Heartbeat),
        (vote, pb::VoteRequest, pb::VoteResponse, Vote),
        (timeout_now, pb::TimeoutNowRequest, pb::TimeoutNowResponse, TimeoutNow),
    ]
    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::InstallSnapshotChunk>>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let idle = self.snapshot_idle;
        let creds = credentials_of(&request);
        let chunks = futures::stream::unfold(Some(request.into_inner()), move |state| async move {
            let mut inbound = state?;
            match tokio::time::timeout(idle, inbound.message()).await {
                Ok(Ok(Some(chunk))) => {
                    let chunk = snapshot_chunk_from_pb_traced(chunk).map_err(|e| e.to_string());
                    let next = chunk.is_ok().then_some(inbound);
                    Some((chunk, next))
                }
                Ok(Ok(None)) => None,
                Ok(Err(s)) => Some((Err(status::error_text(&s)), None)),
                Err(_) => Some((Err(format!("the snapshot stream sent nothing for {idle:?}")), None)),
            }
        });
        let chunks = Box::pin(chunks);
        let answer = receive_snapshot(&self.routes, &creds, chunks).await.map_err(|e| status::route(&e))?;
        Ok(Response::new(snapshot_response_to_pb(&answer)))
    }

    type PipelineStream = Replies<pb::PipelineReply>;

    async fn pipeline(
        &self,
        request: Request<Streaming<pb::PipelineRequest>>,
    ) -> Result<Response<Self::PipelineStream>, Status> {
        let routes = self.routes.clone();
        let creds = credentials_of(&request);
        // Each message is submitted as it is read (so each member handles them in
        // stream order); the answers are awaited concurrently.
        let submit = move |m: pb::PipelineRequest| {
            let (seq, wire) = RaftRequestPb::from_pipeline(m);
            match submit_traced(&routes, &creds, wire) {
                Ok(answer) => answer.map(move |r| pipeline_reply(seq, r.map_err(PipelineFailure::Route))).boxed(),
                Err(e) => futures::future::ready(pipeline_reply(seq, Err(e))).boxed(),
            }
        };
        Ok(Response::new(serve_stream(request.into_inner(), submit)))
    }
}
