//! The service RPCs (`raftkv.v1.Kv`, `Ctrler`, `Migration`, `Admin`),
//! delivered to the server's service handler through [`Routes`].

use raftkv_core::transport::Routes;
use raftkv_wire::pb;
use raftkv_wire::{ServiceRequestPb, ServiceResponsePb};
use tonic::{Request, Response, Status};

use crate::status;

#[derive(Clone)]
pub(crate) struct ApiService {
    pub(crate) routes: Routes,
}

impl ApiService {
    async fn serve(&self, wire: ServiceRequestPb) -> Result<ServiceResponsePb, Status> {
        let rpc = wire.rpc();
        let request = wire.into_core().map_err(|e| status::malformed(&e))?;
        let response = self.routes.serve(request.clone()).await.map_err(|e| status::route(&e))?;
        if !request.is_answered_by(&response) {
            return Err(status::mismatch(rpc));
        }
        Ok(ServiceResponsePb::from_core(response))
    }
}

/// `impl $trait for ApiService`, one method per (name, request, response,
/// request variant, response variant).
macro_rules! service_impl {
    ($trait:path { $(($name:ident, $req:ty, $resp:ty, $in:ident, $out:ident)),+ $(,)? }) => {
        #[tonic::async_trait]
        impl $trait for ApiService {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    match self.serve(ServiceRequestPb::$in(request.into_inner())).await? {
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
