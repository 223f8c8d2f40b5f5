//! Field encoding inside a frame: LEB128 varints, length-prefixed byte
//! strings, fixed-size hashes. The decoder checks every length against what
//! is left of the frame before it reads, so a lying length is an error, not
//! an allocation.

use crate::error::WireError;

/// Appends fields to a payload.
#[derive(Debug, Default)]
pub(crate) struct Enc {
    pub(crate) buf: Vec<u8>,
}

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub(crate) fn varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }

    /// Zig-zag so small negative numbers stay small.
    pub(crate) fn ivarint(&mut self, v: i64) -> &mut Self {
        self.varint(((v << 1) ^ (v >> 63)) as u64)
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub(crate) fn hash(&mut self, h: &[u8; 32]) -> &mut Self {
        self.buf.extend_from_slice(h);
        self
    }

    pub(crate) fn opt_hash(&mut self, h: &Option<[u8; 32]>) -> &mut Self {
        match h {
            Some(h) => self.u8(1).hash(h),
            None => self.u8(0),
        }
    }
}

/// Reads fields from one frame's payload.
#[derive(Debug)]
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    message: &'static str,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8], message: &'static str) -> Self {
        Dec { buf, message }
    }

    fn err(&self, reason: impl Into<String>) -> WireError {
        WireError::malformed(self.message, reason)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        let (&v, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.err("truncated"))?;
        self.buf = rest;
        Ok(v)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    pub(crate) fn ivarint(&mut self) -> Result<i64, WireError> {
        let u = self.varint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.err(format!("{v} does not fit 32 bits")))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.err(format!("boolean byte {b}"))),
        }
    }

    /// A length-prefixed byte string, at most `max` bytes.
    pub(crate) fn bytes(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(self.err(format!("field of {len} bytes exceeds the limit of {max}")));
        }
        let len = len as usize;
        if len > self.buf.len() {
            return Err(self.err(format!(
                "field of {len} bytes, only {} left in the frame",
                self.buf.len()
            )));
        }
        let (v, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(v)
    }

    pub(crate) fn string(&mut self, max: usize) -> Result<String, WireError> {
        let b = self.bytes(max)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }

    pub(crate) fn hash(&mut self) -> Result<[u8; 32], WireError> {
        if self.buf.len() < 32 {
            return Err(self.err("truncated hash"));
        }
        let (h, rest) = self.buf.split_at(32);
        self.buf = rest;
        let mut out = [0u8; 32];
        out.copy_from_slice(h);
        Ok(out)
    }

    pub(crate) fn opt_hash(&mut self) -> Result<Option<[u8; 32]>, WireError> {
        if self.bool()? {
            Ok(Some(self.hash()?))
        } else {
            Ok(None)
        }
    }

    /// Bytes left in the payload.
    pub(crate) fn rest_len(&self) -> usize {
        self.buf.len()
    }

    /// Skips `n` bytes the caller has already checked are present.
    pub(crate) fn skip(&mut self, n: usize) {
        self.buf = &self.buf[n.min(self.buf.len())..];
    }

    /// The rest of the payload, unparsed.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails if bytes are left over: every message parses exactly.
    pub(crate) fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} unexpected trailing bytes", self.buf.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut e = Enc::default();
            e.varint(v);
            assert_eq!(Dec::new(&e.buf, "t").varint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            let mut e = Enc::default();
            e.ivarint(v);
            assert_eq!(Dec::new(&e.buf, "t").ivarint().unwrap(), v);
        }
        assert!(Dec::new(&[0xff; 10], "t").varint().is_err());
        assert!(Dec::new(&[0x80; 3], "t").varint().is_err());
    }

    #[test]
    fn lengths_are_checked_before_reading() {
        let mut e = Enc::default();
        e.varint(1 << 40);
        assert!(Dec::new(&e.buf, "t").bytes(usize::MAX).is_err());
        let mut e = Enc::default();
        e.bytes(b"hello");
        assert!(Dec::new(&e.buf, "t").bytes(4).is_err());
        assert_eq!(Dec::new(&e.buf, "t").bytes(5).unwrap(), b"hello");
    }
}
