//! `deltasync copy` over a real sshd on 127.0.0.1.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use sshd::Sshd;

#[test]
fn smoke() {
    let server = Sshd::start("");
    let dir = tmp();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src, "a", b"hello");
    let dst = dir.path().join("dst");
    let out = deltasync()
        .args(["copy", "-i"])
        .arg(format!("{}/", src.display()))
        .arg(server.url(&dst))
        .args(server.flags())
        .args(server.remote_bin())
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    assert_eq!(read(&dst.join("a")), b"hello");
}
