//! Reading a signature from an untrusted stream.
//!
//! Check, then parse: the header is validated before any record is read, and
//! memory grows only with records actually received, never with a number
//! the stream merely claims.

use std::io::Read;

use super::Signature;
use crate::error::SignatureError;
use crate::format::SigFormat;
use crate::io_util::read_full;
use crate::params::{Limits, SignatureParams};

/// Reads a whole signature from `input`, checking every number against `limits`.
pub fn read_signature(mut input: impl Read, limits: &Limits) -> Result<Signature, SignatureError> {
    let mut head = [0u8; 12];
    let got = read_full(&mut input, &mut head)?;
    if got >= 4 {
        // A wrong magic is the more useful message, even on a short stream.
        SigFormat::from_magic(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))?;
    }
    if got < 12 {
        return Err(SignatureError::TruncatedHeader { len: got });
    }
    let params = parse_header(&head)?;
    params.check(limits)?;

    let record_len = params.record_len();
    let mut records = Vec::new();
    let mut chunk = vec![0u8; record_len * 4096];
    loop {
        let n = read_full(&mut input, &mut chunk)?;
        records.extend_from_slice(&chunk[..n]);
        let blocks = (records.len() / record_len) as u64;
        if blocks > limits.max_blocks {
            return Err(SignatureError::TooManyBlocks {
                max: limits.max_blocks,
            });
        }
        if n < chunk.len() {
            break;
        }
    }
    let tail = records.len() % record_len;
    if tail != 0 {
        return Err(SignatureError::TruncatedRecord {
            offset: (12 + records.len() - tail) as u64,
            have: tail,
            need: record_len,
        });
    }
    Ok(Signature::from_records(params, &records))
}

/// Parses and checks the header's three numbers (not yet against limits).
fn parse_header(head: &[u8; 12]) -> Result<SignatureParams, SignatureError> {
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let format = SigFormat::from_magic(word(0))?;
    Ok(SignatureParams {
        format,
        block_len: word(4),
        strong_len: word(8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig_bytes(magic: u32, block: u32, strong: u32, records: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&magic.to_be_bytes());
        v.extend_from_slice(&block.to_be_bytes());
        v.extend_from_slice(&strong.to_be_bytes());
        v.extend_from_slice(records);
        v
    }

    fn read(bytes: &[u8]) -> Result<Signature, SignatureError> {
        read_signature(bytes, &Limits::default())
    }

    #[test]
    fn refuses_each_bad_number() {
        let m = SigFormat::Blake2RabinKarp.magic();
        assert!(matches!(
            read(&sig_bytes(0xdead_beef, 256, 8, &[])),
            Err(SignatureError::BadMagic { found: 0xdead_beef })
        ));
        assert!(matches!(
            read(&m.to_be_bytes()[..3]),
            Err(SignatureError::TruncatedHeader { len: 3 })
        ));
        assert!(matches!(
            read(&sig_bytes(m, 0, 8, &[])),
            Err(SignatureError::BlockLenZero)
        ));
        assert!(matches!(
            read(&sig_bytes(m, u32::MAX, 8, &[])),
            Err(SignatureError::BlockLenTooLarge { .. })
        ));
        assert!(matches!(
            read(&sig_bytes(m, 256, 0, &[])),
            Err(SignatureError::StrongLenZero)
        ));
        assert!(matches!(
            read(&sig_bytes(m, 256, 33, &[])),
            Err(SignatureError::StrongLenTooLong {
                strong_len: 33,
                max: 32,
                ..
            })
        ));
        assert!(matches!(
            read(&sig_bytes(m, 256, 8, &[0; 13])),
            Err(SignatureError::TruncatedRecord {
                offset: 24,
                have: 1,
                need: 12
            })
        ));
        let limits = Limits {
            max_blocks: 1,
            ..Limits::default()
        };
        assert!(matches!(
            read_signature(&sig_bytes(m, 256, 8, &[0; 24])[..], &limits),
            Err(SignatureError::TooManyBlocks { max: 1 })
        ));
    }

    #[test]
    fn round_trips() {
        let params = SignatureParams {
            format: SigFormat::Md4RabinKarp,
            block_len: 100,
            strong_len: 5,
        };
        let data: Vec<u8> = (0..1234u32).map(|i| (i % 97) as u8).collect();
        let sig = Signature::generate(&data, params);
        assert_eq!(read(&sig.to_bytes()).unwrap(), sig);
    }
}
