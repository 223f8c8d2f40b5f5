//! Signatures: the weak and strong sums of each block of a basis file.
//!
//! On disk (and on the wire) a signature is librsync's layout: a 12-byte
//! header (magic, block length, strong-sum length, all big-endian u32) and
//! then one record per block: the weak sum (u32 BE) and the first
//! `strong_len` bytes of the strong hash. There is no count; the records run
//! to the end of the stream.

mod generate;
mod read;

pub use generate::write_signature;
pub use read::read_signature;

use crate::format::SigFormat;
use crate::params::SignatureParams;

/// A parsed or freshly computed signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    params: SignatureParams,
    weak: Vec<u32>,
    /// `strong_len` bytes per block, back to back.
    strong: Vec<u8>,
}

impl Signature {
    /// Computes the signature of `data` in memory, on all cores.
    ///
    /// ```
    /// use deltasync_engine::{SigFormat, Signature, SignatureParams};
    /// let params = SignatureParams::rdiff(SigFormat::Blake2RabinKarp, Some(1000), None, None).unwrap();
    /// let sig = Signature::generate(&[7u8; 1000], params);
    /// assert_eq!(sig.len(), 4); // 1000 bytes in blocks of 256
    /// ```
    pub fn generate(data: &[u8], params: SignatureParams) -> Signature {
        Signature::generate_on(data, params, crate::workers())
    }

    /// Like [`Signature::generate`], on at most `threads` threads.
    pub fn generate_on(data: &[u8], params: SignatureParams, threads: usize) -> Signature {
        let mut records = Vec::new();
        generate::records(data, &params, threads, &mut records);
        Signature::from_records(params, &records)
    }

    /// Builds a signature from a header's params and whole records.
    fn from_records(params: SignatureParams, records: &[u8]) -> Signature {
        let record_len = params.record_len();
        let count = records.len() / record_len;
        let mut weak = Vec::with_capacity(count);
        let mut strong = Vec::with_capacity(count * params.strong_len as usize);
        for r in records.chunks_exact(record_len) {
            weak.push(u32::from_be_bytes([r[0], r[1], r[2], r[3]]));
            strong.extend_from_slice(&r[4..]);
        }
        Signature {
            params,
            weak,
            strong,
        }
    }

    /// The parameters from the header.
    pub fn params(&self) -> SignatureParams {
        self.params
    }

    /// The format from the header.
    pub fn format(&self) -> SigFormat {
        self.params.format
    }

    /// The block length from the header.
    pub fn block_len(&self) -> u32 {
        self.params.block_len
    }

    /// The number of blocks.
    pub fn len(&self) -> usize {
        self.weak.len()
    }

    /// True for the signature of an empty file.
    pub fn is_empty(&self) -> bool {
        self.weak.is_empty()
    }

    /// The weak sum of block `i`.
    pub(crate) fn weak(&self, i: usize) -> u32 {
        self.weak[i]
    }

    /// The (truncated) strong sum of block `i`.
    pub(crate) fn strong(&self, i: usize) -> &[u8] {
        let n = self.params.strong_len as usize;
        &self.strong[i * n..(i + 1) * n]
    }

    /// The size of the serialized signature.
    pub fn serialized_len(&self) -> usize {
        12 + self.len() * self.params.record_len()
    }

    /// The serialized signature, byte-identical to rdiff's for librsync formats.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_len());
        out.extend_from_slice(&header(&self.params));
        for i in 0..self.len() {
            out.extend_from_slice(&self.weak[i].to_be_bytes());
            out.extend_from_slice(self.strong(i));
        }
        out
    }
}

/// The 12-byte signature header.
pub(crate) fn header(params: &SignatureParams) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&params.format.magic().to_be_bytes());
    h[4..8].copy_from_slice(&params.block_len.to_be_bytes());
    h[8..].copy_from_slice(&params.strong_len.to_be_bytes());
    h
}
