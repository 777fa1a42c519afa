//! Core types ↔ protobuf messages. Encoding is infallible; decoding checks
//! everything the engine and services rely on and names what is wrong.

/// `encoded_len` and `encode_to_vec` for an enum of protobuf messages, one
/// message per variant; with `rpcs NAMES`, also `rpc()`: the name of the
/// variant's RPC, `NAMES[i]` for the `i`-th variant.
macro_rules! wire_enum_codec {
    ($enum:ident { $($variant:ident),+ $(,)? } rpcs $names:ident) => {
        wire_enum_codec!($enum { $($variant),+ });

        impl $enum {
            /// The RPC's name (one of the names in the constant this enum lists its RPCs in).
            #[must_use]
            pub fn rpc(&self) -> &'static str {
                let mut i = 0;
                $(
                    if matches!(self, Self::$variant(_)) {
                        return $names[i];
                    }
                    i += 1;
                )+
                let _ = i;
                $names[0]
            }
        }
    };
    ($enum:ident { $($variant:ident),+ $(,)? }) => {
        impl $enum {
            /// Length of the encoded message.
            #[must_use]
            pub fn encoded_len(&self) -> usize {
                match self {
                    $(Self::$variant(m) => prost::Message::encoded_len(m),)+
                }
            }

            /// The encoded message.
            #[must_use]
            pub fn encode_to_vec(&self) -> Vec<u8> {
                match self {
                    $(Self::$variant(m) => prost::Message::encode_to_vec(m),)+
                }
            }
        }
    };
}

mod api;
mod calls;
mod raft;

pub use api::{ServiceRequestPb, ServiceResponsePb, SERVICE_RPCS};
pub use raft::{
    route_pb, snapshot_chunk_from_pb, snapshot_chunk_to_pb, snapshot_response_from_pb, snapshot_response_to_pb,
    RaftRequestPb, RaftResponsePb, MAX_TERM_OR_INDEX, RAFT_RPCS,
};
