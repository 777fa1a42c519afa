//! [`DecodeError`]: why bytes from the network are not a valid message.

/// A message from the network that does not decode, or decodes to something
/// RaftKV must not act on. Every variant names the message and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a valid protobuf encoding of the message.
    #[error("cannot decode {message}: {reason}")]
    Protobuf {
        /// The message expected.
        message: &'static str,
        /// What the protobuf decoder reported.
        reason: String,
    },
    /// A required field is absent.
    #[error("{message}: required field `{field}` is missing")]
    MissingField {
        /// The message.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field holds a value that is not allowed.
    #[error("{message}: field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The message.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No RPC of that name exists.
    #[error("unknown rpc `{0}`")]
    UnknownRpc(String),
}

impl DecodeError {
    pub(crate) fn protobuf(message: &'static str, e: &prost::DecodeError) -> Self {
        Self::Protobuf { message, reason: e.to_string() }
    }

    pub(crate) fn invalid(message: &'static str, field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidField { message, field, reason: reason.into() }
    }

    pub(crate) fn missing(message: &'static str, field: &'static str) -> Self {
        Self::MissingField { message, field }
    }
}

/// Decode a protobuf message, naming it in the error.
pub(crate) fn decode<M: prost::Message + Default>(message: &'static str, buf: bytes::Bytes) -> Result<M, DecodeError> {
    M::decode(buf).map_err(|e| DecodeError::protobuf(message, &e))
}
