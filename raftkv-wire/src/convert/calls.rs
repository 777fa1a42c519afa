//! The multiplexed client calls of `raftkv.v1.Calls/Stream`: service
//! requests and responses ↔ numbered `CallRequest` / `CallReply` frames.

use crate::error::DecodeError;
use crate::pb::{self, call_reply, call_request};
use crate::{ServiceRequestPb, ServiceResponsePb};

impl ServiceRequestPb {
    /// As call `seq` of a call stream, carrying `traceparent`; a migration
    /// request (bulk data) does not travel on it and is handed back.
    pub fn into_call(self, seq: u64, traceparent: Option<String>) -> Result<pb::CallRequest, Self> {
        use call_request::Body as B;
        let body = match self {
            Self::Get(m) => B::Get(m),
            Self::Put(m) => B::Put(m),
            Self::Append(m) => B::Append(m),
            Self::Delete(m) => B::Delete(m),
            Self::Join(m) => B::Join(m),
            Self::Leave(m) => B::Leave(m),
            Self::Move(m) => B::Move(m),
            Self::Query(m) => B::Query(m),
            Self::Status(m) => B::Status(m),
            other @ (Self::PullShards(_) | Self::DeleteShards(_)) => return Err(other),
        };
        Ok(pb::CallRequest { seq, traceparent: traceparent.unwrap_or_default(), body: Some(body) })
    }

    /// A call frame's sequence number, trace context (if any) and request.
    pub fn from_call(m: pb::CallRequest) -> (u64, Option<String>, Result<Self, DecodeError>) {
        use call_request::Body as B;
        let request = match m.body {
            Some(B::Get(b)) => Ok(Self::Get(b)),
            Some(B::Put(b)) => Ok(Self::Put(b)),
            Some(B::Append(b)) => Ok(Self::Append(b)),
            Some(B::Delete(b)) => Ok(Self::Delete(b)),
            Some(B::Join(b)) => Ok(Self::Join(b)),
            Some(B::Leave(b)) => Ok(Self::Leave(b)),
            Some(B::Move(b)) => Ok(Self::Move(b)),
            Some(B::Query(b)) => Ok(Self::Query(b)),
            Some(B::Status(b)) => Ok(Self::Status(b)),
            None => Err(DecodeError::missing("CallRequest", "body")),
        };
        let traceparent = (!m.traceparent.is_empty()).then_some(m.traceparent);
        (m.seq, traceparent, request)
    }
}

impl ServiceResponsePb {
    /// As the reply to call `seq`; `None` for a migration response, which
    /// does not travel on the call stream.
    #[must_use]
    pub fn into_call(self, seq: u64) -> Option<pb::CallReply> {
        let body = match self {
            Self::Kv(m) => call_reply::Body::Kv(m),
            Self::Ctrl(m) => call_reply::Body::Ctrl(m),
            Self::Status(m) => call_reply::Body::Status(m),
            Self::PullShards(_) | Self::DeleteShards(_) => return None,
        };
        Some(pb::CallReply { seq, body: Some(body) })
    }

    /// A call reply's response, or the error the server reported for it.
    pub fn from_call(body: Option<call_reply::Body>) -> Result<Result<Self, pb::PipelineError>, DecodeError> {
        Ok(Ok(match body {
            Some(call_reply::Body::Kv(b)) => Self::Kv(b),
            Some(call_reply::Body::Ctrl(b)) => Self::Ctrl(b),
            Some(call_reply::Body::Status(b)) => Self::Status(b),
            Some(call_reply::Body::Error(e)) => return Ok(Err(e)),
            None => return Err(DecodeError::missing("CallReply", "body")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn get() -> ServiceRequestPb {
        ServiceRequestPb::Get(pb::GetRequest { id: Some(pb::RequestId { client: 7, seq: 9 }), key: Bytes::from("k") })
    }

    #[test]
    fn a_call_round_trips_with_its_number_and_trace_context() {
        let frame = get().into_call(42, Some("00-trace".into())).expect("a get travels on the stream");
        let (seq, traceparent, back) = ServiceRequestPb::from_call(frame);
        assert_eq!((seq, traceparent.as_deref()), (42, Some("00-trace")));
        assert_eq!(back.expect("decodes"), get());
    }

    #[test]
    fn migration_stays_off_the_stream() {
        let pull =
            ServiceRequestPb::PullShards(pb::PullShardsRequest { config: 3, shards: vec![1], ..Default::default() });
        assert_eq!(pull.clone().into_call(1, None).expect_err("handed back"), pull);
        let gone = ServiceResponsePb::DeleteShards(pb::DeleteShardsResponse { result: None });
        assert!(gone.into_call(1).is_none());
    }

    #[test]
    fn a_frame_without_body_is_malformed() {
        let (_, _, r) = ServiceRequestPb::from_call(pb::CallRequest { seq: 1, traceparent: String::new(), body: None });
        assert!(r.is_err());
        assert!(ServiceResponsePb::from_call(None).is_err());
    }
}
