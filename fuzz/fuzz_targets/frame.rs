//! Any bytes as a connection's incoming stream, with zstd agreed: decode
//! packets, frames and messages until the stream ends or is refused. Must
//! never panic, hang or allocate beyond the packet and frame limits.
#![no_main]

use deltasync_wire::{Connection, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut conn = Connection::new(data, std::io::sink());
    if conn.reader.allow_zstd().is_err() {
        return;
    }
    for _ in 0..10_000 {
        match conn.reader.recv() {
            Ok(Some(m)) => {
                // Whatever decodes must encode and decode to itself.
                let (k, p) = m.encode();
                assert_eq!(Message::decode(k, &p).ok(), Some(m));
            }
            Ok(None) | Err(_) => return,
        }
    }
});
