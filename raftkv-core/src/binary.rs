//! A compact binary encoding for state-machine commands and snapshots:
//! LEB128 varints and length-prefixed byte strings. Decoding is checked:
//! truncated or malformed input is a [`BinaryError`], never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BinaryError {
    /// The input ended inside `what`.
    #[error("truncated input while reading {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("malformed varint while reading {what}")]
    BadVarint {
        /// What was being read.
        what: &'static str,
    },
    /// A value is not one the format allows.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

/// Builds an encoding.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    /// An empty encoder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `bytes` before it grows.
    #[must_use]
    pub fn with_capacity(bytes: usize) -> Self {
        Self { buf: BytesMut::with_capacity(bytes) }
    }

    /// Append a varint.
    pub fn u64(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
        self
    }

    /// Append one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.put_u8(v);
        self
    }

    /// Append a length-prefixed byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.buf.put_slice(b);
        self
    }

    /// Append a length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Bytes written so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoding.
    #[must_use]
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Reads an encoding.
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Bytes,
}

impl Decoder {
    /// Read `buf`.
    #[must_use]
    pub fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    /// A varint.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, BinaryError> {
        let mut v = 0u64;
        for i in 0..10 {
            if !self.buf.has_remaining() {
                return Err(BinaryError::Truncated { what });
            }
            let b = self.buf.get_u8();
            if i == 9 && b > 1 {
                return Err(BinaryError::BadVarint { what });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BinaryError::BadVarint { what })
    }

    /// A varint that must fit `usize`.
    pub fn len(&mut self, what: &'static str) -> Result<usize, BinaryError> {
        let v = self.u64(what)?;
        usize::try_from(v).map_err(|_| BinaryError::Invalid { what, reason: format!("{v} is too large") })
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, BinaryError> {
        if !self.buf.has_remaining() {
            return Err(BinaryError::Truncated { what });
        }
        Ok(self.buf.get_u8())
    }

    /// A length-prefixed byte string (shares the input's memory).
    pub fn bytes(&mut self, what: &'static str) -> Result<Bytes, BinaryError> {
        let n = self.len(what)?;
        if self.buf.remaining() < n {
            return Err(BinaryError::Truncated { what });
        }
        Ok(self.buf.split_to(n))
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self, what: &'static str) -> Result<String, BinaryError> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| BinaryError::Invalid { what, reason: "not UTF-8".into() })
    }

    /// A count of items that each take at least one byte: refuses a count
    /// larger than what is left, so a corrupt count cannot allocate wildly.
    pub fn count(&mut self, what: &'static str) -> Result<usize, BinaryError> {
        let n = self.len(what)?;
        if n > self.buf.remaining() {
            return Err(BinaryError::Invalid { what, reason: format!("{n} items in {} bytes", self.buf.remaining()) });
        }
        Ok(n)
    }

    /// Fails unless every byte was read.
    pub fn end(&self, what: &'static str) -> Result<(), BinaryError> {
        if self.buf.has_remaining() {
            return Err(BinaryError::Invalid { what, reason: format!("{} trailing bytes", self.buf.remaining()) });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_damage_is_an_error() {
        let mut e = Encoder::new();
        e.u64(0).u64(300).u64(u64::MAX).u8(7).bytes(b"abc").str("héllo");
        let b = e.finish();
        let mut d = Decoder::new(b.clone());
        assert_eq!(d.u64("a").unwrap(), 0);
        assert_eq!(d.u64("b").unwrap(), 300);
        assert_eq!(d.u64("c").unwrap(), u64::MAX);
        assert_eq!(d.u8("d").unwrap(), 7);
        assert_eq!(d.bytes("e").unwrap(), Bytes::from_static(b"abc"));
        assert_eq!(d.string("f").unwrap(), "héllo");
        d.end("g").unwrap();
        for cut in 0..b.len() {
            let mut d = Decoder::new(b.slice(..cut));
            let r = (|| {
                d.u64("a")?;
                d.u64("b")?;
                d.u64("c")?;
                d.u8("d")?;
                d.bytes("e")?;
                d.string("f")
            })();
            assert!(r.is_err(), "cut at {cut} must fail");
        }
        let mut d = Decoder::new(Bytes::from_static(&[0xff; 11]));
        assert_eq!(d.u64("v"), Err(BinaryError::BadVarint { what: "v" }));
        let mut d = Decoder::new(Bytes::from_static(&[200, 1]));
        assert!(d.count("items").is_err(), "a count larger than the input is refused");
    }
}
