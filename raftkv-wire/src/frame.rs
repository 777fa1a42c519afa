//! Length-delimited framing: a stream of protobuf messages in one byte
//! stream (each a varint length, then the message), with a size limit, for
//! transports whose streams do not keep message boundaries (an HTTP body).

use bytes::{Buf, Bytes, BytesMut};

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame announces more bytes than the limit.
    #[error("frame of {size} bytes exceeds the configured limit of {limit} bytes (max_message_bytes)")]
    TooLarge {
        /// The announced size.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// The length prefix is not a valid varint.
    #[error("malformed frame length")]
    BadLength,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({missing} bytes missing)")]
    Truncated {
        /// Bytes the frame still needed.
        missing: u64,
    },
}

/// `message` prefixed with its length, ready to send as one frame.
#[must_use]
pub fn encode_frame<M: prost::Message>(message: &M) -> Bytes {
    let mut buf = BytesMut::with_capacity(message.encoded_len() + 10);
    // Writing into a `BytesMut` grows it as needed: it cannot run out of room.
    if message.encode_length_delimited(&mut buf).is_err() {
        return Bytes::new();
    }
    buf.freeze()
}

/// Splits received bytes into frames. Holds at most one frame (plus one
/// received chunk) at a time.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    limit: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self { buf: BytesMut::new(), limit }
    }

    /// Add received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received and not yet returned as frames.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some((len, prefix)) = read_varint(&self.buf)? else { return Ok(None) };
        if len > self.limit as u64 {
            return Err(FrameError::TooLarge { size: len, limit: self.limit });
        }
        let len = len as usize; // at most `limit`, a usize
        if self.buf.len() < prefix + len {
            return Ok(None);
        }
        self.buf.advance(prefix);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// The stream ended: fails if a frame was left incomplete.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let missing = match read_varint(&self.buf)? {
            Some((len, prefix)) => (prefix as u64).saturating_add(len).saturating_sub(self.buf.len() as u64),
            None => 1,
        };
        Err(FrameError::Truncated { missing })
    }
}

/// A varint at the start of `buf` and its length in bytes, or `None` if more bytes are needed.
fn read_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return Err(FrameError::BadLength);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 10 {
        return Err(FrameError::BadLength);
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn frames_survive_any_split_of_the_byte_stream() {
        let msgs: Vec<pb::HeartbeatRequest> =
            (0..5).map(|i| pb::HeartbeatRequest { term: i, read_seq: i * 1000, ..Default::default() }).collect();
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(m).to_vec()).collect();
        for split in 1..stream.len() {
            let mut d = FrameDecoder::new(1024);
            let mut out = Vec::new();
            for piece in stream.chunks(split) {
                d.push(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    out.push(<pb::HeartbeatRequest as prost::Message>::decode(f).unwrap());
                }
            }
            d.finish().unwrap();
            assert_eq!(out, msgs, "split every {split} bytes");
        }
    }

    #[test]
    fn oversize_bad_and_truncated_frames_are_errors() {
        let mut d = FrameDecoder::new(4);
        d.push(&[5, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { size: 5, limit: 4 }));

        let mut d = FrameDecoder::new(1 << 20);
        d.push(&[0xff; 11]);
        assert_eq!(d.next_frame(), Err(FrameError::BadLength));

        let mut d = FrameDecoder::new(1 << 20);
        d.push(&[3, 1]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated { missing: 2 }));
    }
}
