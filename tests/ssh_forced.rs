//! A key confined by an authorized_keys forced command
//! (`command="deltasync serve --root JAIL"`), over a real OpenSSH sshd:
//! the client can neither read nor write outside JAIL, not even through a
//! symlink inside it, and every refusal names its real cause.

mod common;

use common::sshd::Sshd;
use common::*;
use std::path::Path;
use std::process::Output;

/// Confines the server's only key to `serve --root JAIL` plus `extra`.
fn force(server: &Sshd, jail: &Path, extra: &str) {
    let key = std::fs::read_to_string(server.identity.with_extension("pub")).unwrap();
    let line = format!(
        "command=\"{} serve --root {}{extra}\",restrict {key}",
        env!("CARGO_BIN_EXE_deltasync"),
        jail.display()
    );
    std::fs::write(server.dir.path().join("authorized_keys"), line).unwrap();
}

fn copy(server: &Sshd, src: &str, dst: &str) -> Output {
    deltasync()
        .arg("copy")
        .args(server.flags())
        .args(server.remote_bin())
        .arg(src)
        .arg(dst)
        .output()
        .expect("runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// JAIL with `esc -> OUTSIDE` and `etc -> OUTSIDE/etc` inside it, and a
/// secret outside.
struct Setup {
    _d: tempfile::TempDir,
    jail: std::path::PathBuf,
    outside: std::path::PathBuf,
    base: std::path::PathBuf,
}

fn setup() -> Setup {
    let d = tmp();
    let base = d.path().to_path_buf();
    let jail = base.join("jail");
    let outside = base.join("outside");
    std::fs::create_dir_all(outside.join("etc")).unwrap();
    std::fs::create_dir_all(jail.join("inside")).unwrap();
    write(&outside.join("etc"), "shadow", b"root:secret");
    write(&outside, "secret", b"top secret");
    write(&jail.join("inside"), "ok.txt", b"fine to read");
    std::os::unix::fs::symlink(&outside, jail.join("esc")).unwrap();
    std::os::unix::fs::symlink(outside.join("etc"), jail.join("etc")).unwrap();
    Setup {
        _d: d,
        jail,
        outside,
        base,
    }
}

#[test]
fn a_symlink_inside_the_forced_root_never_leads_out() {
    let server = Sshd::start("");
    let s = setup();
    force(&server, &s.jail, "");

    // Reading through a linked sub-root: refused, nothing fetched.
    for sub in ["etc", "esc", "esc/etc"] {
        let loot = s.base.join(format!("loot-{}", sub.replace('/', "-")));
        let out = copy(
            &server,
            &format!("{}/", server.url(&s.jail.join(sub))),
            &format!("{}/", loot.display()),
        );
        assert!(!out.status.success(), "{sub}: read through the link");
        assert!(
            !loot.join("shadow").exists() && !loot.join("secret").exists(),
            "{sub}: a file from outside the jail was fetched"
        );
        assert!(
            stderr(&out).contains("symbolic link") || stderr(&out).contains("outside"),
            "{sub}: the error names the cause: {}",
            stderr(&out)
        );
    }

    // Writing through it: refused, nothing lands outside.
    let src = s.base.join("src");
    write(&src, "pwned", b"planted");
    let out = copy(
        &server,
        &format!("{}/", src.display()),
        &server.url(&s.jail.join("esc")),
    );
    assert!(!out.status.success(), "wrote through the link");
    assert!(!s.outside.join("pwned").exists(), "a file landed outside");

    // The jail itself still works, and its links travel as links.
    let whole = s.base.join("whole");
    let out = copy(
        &server,
        &format!("{}/", server.url(&s.jail)),
        &format!("{}/", whole.display()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(&whole.join("inside/ok.txt")), b"fine to read");
    assert!(whole.join("esc").symlink_metadata().unwrap().is_symlink());

    // A root outside the jail is refused by the forced command, and said
    // so (not "cannot be deployed").
    let out = copy(
        &server,
        &format!("{}/", server.url(&s.outside)),
        &format!("{}/", s.base.join("loot-outside").display()),
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused by the forced command"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("deploy"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("command not found"),
        "probing noise leaked: {}",
        stderr(&out)
    );
}

#[test]
fn a_read_only_forced_root_refuses_writes_and_says_why() {
    let server = Sshd::start("");
    let s = setup();
    force(&server, &s.jail, " --read-only");
    let src = s.base.join("src");
    write(&src, "new.txt", b"new");
    let out = copy(
        &server,
        &format!("{}/", src.display()),
        &server.url(&s.jail.join("inside")),
    );
    assert!(!out.status.success());
    assert!(!s.jail.join("inside/new.txt").exists());
    let err = stderr(&out);
    assert!(err.contains("read-only"), "the cause is named: {err}");
    assert!(
        !err.contains("missing") && !err.contains("unmounted"),
        "a read-only peer is not a missing one: {err}"
    );
    // A sync needs both sides writable, and says that is the cause.
    let out = deltasync()
        .arg("sync")
        .args(server.flags())
        .args(server.remote_bin())
        .arg(&src)
        .arg(server.url(&s.jail.join("inside")))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("refuses changes"), "{err}");
    assert!(!err.contains("unmounted"), "{err}");
    // Reading still works.
    let got = s.base.join("got");
    let out = copy(
        &server,
        &format!("{}/", server.url(&s.jail.join("inside"))),
        &format!("{}/", got.display()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(&got.join("ok.txt")), b"fine to read");
}
