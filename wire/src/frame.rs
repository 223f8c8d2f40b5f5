//! Frames and packets: the two layers under every message.
//!
//! ```text
//! packet := kind:u8 stored_len:u32be [raw_len:u32be if zstd] body[stored_len]
//! frame  := type:u8 len:u32be payload[len]
//! ```
//!
//! The transport carries packets. Their bodies, decompressed when `kind` is
//! zstd, concatenate into a stream of frames; a frame may span packets.
//! Both decoders here work on byte buffers and do no I/O: they check that a
//! whole unit is present, and only then parse it. A buffer holding part of a
//! unit is `Ok(None)`, not an error; the connection reads more and retries.
//! Every length is checked against the negotiated limits before it is used,
//! and a compressed body is inflated into a buffer of exactly its stated
//! size, so a zstd bomb cannot grow past the packet limit.

use crate::error::WireError;

/// Frame header: type and length.
pub const FRAME_HEADER: usize = 5;
/// Packet kind: a raw body.
pub const PACKET_RAW: u8 = 0x00;
/// Packet kind: a zstd-compressed body, with its raw length in the header.
pub const PACKET_ZSTD: u8 = 0x01;

/// Appends a frame.
pub fn encode_frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Checks for a whole frame at the front of `buf`: returns its type, the
/// payload's range in `buf`, and the frame's total length.
pub fn check_frame(
    buf: &[u8],
    max: u32,
) -> Result<Option<(u8, std::ops::Range<usize>)>, WireError> {
    if buf.len() < FRAME_HEADER {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len > max {
        return Err(WireError::FrameTooLarge {
            len: u64::from(len),
            max: u64::from(max),
        });
    }
    let end = FRAME_HEADER + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((buf[0], FRAME_HEADER..end)))
}

/// A packet's header, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketHeader {
    /// Raw or zstd.
    pub kind: u8,
    /// Bytes of body on the wire.
    pub stored: usize,
    /// Bytes of body after decompression.
    pub raw: usize,
    /// Header bytes.
    pub header_len: usize,
}

/// Checks for a whole packet at the front of `buf`. `max` bounds both the
/// stored and the raw size; `zstd_ok` says whether compression was agreed.
pub fn check_packet(
    buf: &[u8],
    max: u32,
    zstd_ok: bool,
) -> Result<Option<PacketHeader>, WireError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let header_len = match kind {
        PACKET_RAW => 5,
        PACKET_ZSTD if zstd_ok => 9,
        _ => return Err(WireError::BadPacketKind { kind }),
    };
    if buf.len() < header_len {
        return Ok(None);
    }
    let word = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let stored = word(1);
    let raw = if kind == PACKET_ZSTD { word(5) } else { stored };
    // A compressed body may be a little larger than its raw size.
    let stored_max = max.saturating_add(max / 64 + 64);
    if stored > stored_max {
        return Err(WireError::PacketTooLarge {
            len: u64::from(stored),
            max: u64::from(stored_max),
        });
    }
    if raw > max {
        return Err(WireError::PacketTooLarge {
            len: u64::from(raw),
            max: u64::from(max),
        });
    }
    if buf.len() < header_len + stored as usize {
        return Ok(None);
    }
    Ok(Some(PacketHeader {
        kind,
        stored: stored as usize,
        raw: raw as usize,
        header_len,
    }))
}

/// Appends a packet holding `body` as it is.
pub fn encode_raw_packet(body: &[u8], out: &mut Vec<u8>) {
    out.push(PACKET_RAW);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// Appends a packet holding `compressed`, which inflates to `raw_len` bytes.
pub fn encode_zstd_packet(compressed: &[u8], raw_len: usize, out: &mut Vec<u8>) {
    out.push(PACKET_ZSTD);
    out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
    out.extend_from_slice(&(raw_len as u32).to_be_bytes());
    out.extend_from_slice(compressed);
}

/// Appends the body of a checked packet (`buf` starts at its header) to
/// `out`, inflating it if compressed.
pub fn decode_packet(
    buf: &[u8],
    header: &PacketHeader,
    inflater: Option<&mut zstd::bulk::Decompressor<'static>>,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let body = &buf[header.header_len..header.header_len + header.stored];
    let Some(inflater) = inflater.filter(|_| header.kind != PACKET_RAW) else {
        if header.kind != PACKET_RAW {
            return Err(WireError::BadPacketKind { kind: header.kind });
        }
        out.extend_from_slice(body);
        return Ok(());
    };
    let start = out.len();
    out.resize(start + header.raw, 0);
    let bad = |reason: String| WireError::BadCompression {
        stated: header.raw as u64,
        reason,
    };
    // decompress_to_buffer refuses to write past the slice: the stated size caps it.
    let n = inflater
        .decompress_to_buffer(body, &mut out[start..])
        .map_err(|e| bad(e.to_string()))?;
    if n != header.raw {
        out.truncate(start);
        return Err(bad(format!("inflated to {n} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_is_not_an_error() {
        let mut v = Vec::new();
        encode_frame(7, b"payload", &mut v);
        for cut in 0..v.len() {
            assert!(check_frame(&v[..cut], 100).unwrap().is_none());
        }
        assert_eq!(check_frame(&v, 100).unwrap(), Some((7, 5..12)));
        let mut p = Vec::new();
        encode_raw_packet(b"body", &mut p);
        for cut in 0..p.len() {
            assert!(check_packet(&p[..cut], 100, false).unwrap().is_none());
        }
    }

    #[test]
    fn limits_hold() {
        let mut v = vec![1u8];
        v.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            check_frame(&v, 1 << 20),
            Err(WireError::FrameTooLarge { .. })
        ));
        let mut p = vec![PACKET_ZSTD];
        p.extend_from_slice(&10u32.to_be_bytes());
        p.extend_from_slice(&(64u32 << 20).to_be_bytes());
        assert!(matches!(
            check_packet(&p, 1 << 20, true),
            Err(WireError::PacketTooLarge { .. })
        ));
        assert!(matches!(
            check_packet(&p, 1 << 20, false),
            Err(WireError::BadPacketKind { .. })
        ));
    }

    #[test]
    fn a_zstd_bomb_is_refused() {
        // 100 MB of zeros compresses to a few KB; the packet claims 1000 bytes.
        let bomb = zstd::bulk::compress(&vec![0u8; 100 << 20], 3).unwrap();
        let mut p = Vec::new();
        encode_zstd_packet(&bomb, 1000, &mut p);
        let h = check_packet(&p, 1 << 20, true).unwrap().unwrap();
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            decode_packet(&p, &h, Some(&mut d), &mut out),
            Err(WireError::BadCompression { .. })
        ));
        assert!(out.len() <= 1000);
    }
}
