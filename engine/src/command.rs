//! The delta command encoding (librsync's `rs\x026` format), with no I/O.
//!
//! | opcode      | meaning                                             |
//! |-------------|-----------------------------------------------------|
//! | `0x00`      | END                                                 |
//! | `0x01-0x40` | literal of 1..64 bytes, which follow                |
//! | `0x41-0x44` | LITERAL_N1/2/4/8: a length of that width, then data |
//! | `0x45-0x54` | COPY_Nw_Nl: offset of width w, length of width l    |
//!
//! Integers are big-endian. An encoder uses the narrowest width that holds
//! the value; a decoder accepts any width.

use crate::error::PatchError;

/// The END opcode.
pub(crate) const OP_END: u8 = 0x00;
const OP_LITERAL_N1: u8 = 0x41;
const OP_COPY_N1_N1: u8 = 0x45;
const OP_LAST: u8 = 0x54;

/// A decoded command. A literal's data follows it in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// The end of the delta.
    End,
    /// `len` bytes of literal data follow.
    Literal(u64),
    /// Copy `len` bytes from the basis at `offset`.
    Copy {
        /// Basis offset.
        offset: u64,
        /// Length.
        len: u64,
    },
}

/// The width code (0..=3 for 1, 2, 4, 8 bytes) of the narrowest field holding `v`.
fn width_code(v: u64) -> u8 {
    if v <= 0xff {
        0
    } else if v <= 0xffff {
        1
    } else if v <= 0xffff_ffff {
        2
    } else {
        3
    }
}

fn put(out: &mut Vec<u8>, v: u64, code: u8) {
    let width = 1usize << code;
    out.extend_from_slice(&v.to_be_bytes()[8 - width..]);
}

/// Appends the header of a literal of `len` bytes (the data is not included).
pub(crate) fn encode_literal_header(out: &mut Vec<u8>, len: u64) {
    debug_assert!(len > 0);
    if len <= 64 {
        out.push(len as u8);
    } else {
        let code = width_code(len);
        out.push(OP_LITERAL_N1 + code);
        put(out, len, code);
    }
}

/// Appends a copy command.
pub(crate) fn encode_copy(out: &mut Vec<u8>, offset: u64, len: u64) {
    let (oc, lc) = (width_code(offset), width_code(len));
    out.push(OP_COPY_N1_N1 + oc * 4 + lc);
    put(out, offset, oc);
    put(out, len, lc);
}

/// Check, then parse, one command at the front of `buf`. `at` is the stream
/// offset of `buf[0]`, for error messages. Returns `Ok(None)` when `buf`
/// holds only part of a command: that is not an error, the caller reads
/// more. On success returns the command and the header bytes it took.
pub(crate) fn decode(buf: &[u8], at: u64) -> Result<Option<(Command, usize)>, PatchError> {
    let Some(&op) = buf.first() else {
        return Ok(None);
    };
    let (command, need) = match op {
        OP_END => return Ok(Some((Command::End, 1))),
        1..=64 => return Ok(Some((Command::Literal(u64::from(op)), 1))),
        0x41..=0x44 => {
            let w = 1usize << (op - OP_LITERAL_N1);
            if buf.len() < 1 + w {
                return Ok(None);
            }
            (Command::Literal(get(&buf[1..1 + w])), 1 + w)
        }
        0x45..=OP_LAST => {
            let k = op - OP_COPY_N1_N1;
            let (ow, lw) = (1usize << (k / 4), 1usize << (k % 4));
            if buf.len() < 1 + ow + lw {
                return Ok(None);
            }
            let offset = get(&buf[1..1 + ow]);
            let len = get(&buf[1 + ow..1 + ow + lw]);
            (Command::Copy { offset, len }, 1 + ow + lw)
        }
        _ => {
            return Err(PatchError::UnknownOpcode {
                opcode: op,
                offset: at,
            });
        }
    };
    match command {
        Command::Literal(0) => Err(PatchError::ZeroLengthLiteral { offset: at }),
        Command::Copy { len: 0, .. } => Err(PatchError::ZeroLengthCopy { offset: at }),
        _ => Ok(Some((command, need))),
    }
}

/// The parameter bytes a command with this opcode carries, for error messages.
pub(crate) fn param_len(op: u8) -> usize {
    match op {
        0x41..=0x44 => 1 << (op - OP_LITERAL_N1),
        0x45..=OP_LAST => {
            let k = op - OP_COPY_N1_N1;
            (1 << (k / 4)) + (1 << (k % 4))
        }
        _ => 0,
    }
}

fn get(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_and_use_narrowest_width() {
        for (offset, len, op) in [
            (0u64, 1u64, 0x45u8),
            (255, 256, 0x46),
            (65_536, 70_000, 0x4f),
            (1 << 40, 1, 0x51),
            (u64::MAX, u64::MAX, 0x54),
        ] {
            let mut v = Vec::new();
            encode_copy(&mut v, offset, len);
            assert_eq!(v[0], op, "copy {offset} {len}");
            assert_eq!(
                decode(&v, 0).unwrap(),
                Some((Command::Copy { offset, len }, v.len()))
            );
            for cut in 0..v.len() {
                assert_eq!(
                    decode(&v[..cut], 0).unwrap(),
                    None,
                    "incomplete is not an error"
                );
            }
        }
        for (len, head) in [
            (1u64, 1usize),
            (64, 1),
            (65, 2),
            (256, 3),
            (70_000, 5),
            (1 << 33, 9),
        ] {
            let mut v = Vec::new();
            encode_literal_header(&mut v, len);
            assert_eq!(v.len(), head);
            assert_eq!(decode(&v, 0).unwrap(), Some((Command::Literal(len), head)));
        }
    }

    #[test]
    fn refuses_bad_commands() {
        assert!(matches!(
            decode(&[0x55], 9),
            Err(PatchError::UnknownOpcode {
                opcode: 0x55,
                offset: 9
            })
        ));
        assert!(matches!(
            decode(&[0xff], 0),
            Err(PatchError::UnknownOpcode { .. })
        ));
        assert!(matches!(
            decode(&[0x41, 0], 4),
            Err(PatchError::ZeroLengthLiteral { offset: 4 })
        ));
        assert!(matches!(
            decode(&[0x45, 7, 0], 4),
            Err(PatchError::ZeroLengthCopy { offset: 4 })
        ));
    }
}
