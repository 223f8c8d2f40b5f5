//! The systemd units in contrib/systemd pass `systemd-analyze verify`, as
//! instances of a pair, with no warning about them.

use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn the_systemd_units_verify_cleanly() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no systemd-analyze here (scripts/test installs systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let bin = env!("CARGO_BIN_EXE_deltasync");
    let mut units = Vec::new();
    for entry in fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let text = fs::read_to_string(src.join(&name)).unwrap();
        // The units name /usr/local/bin/deltasync; verify checks it exists.
        let text = text.replace("/usr/local/bin/deltasync", bin);
        let instance = name.replace("@.", "@office.");
        fs::write(dir.path().join(&instance), text).unwrap();
        units.push(dir.path().join(instance));
    }
    assert_eq!(units.len(), 3, "{units:?}");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&*dir.path().to_string_lossy()))
        .collect();
    assert!(ours.is_empty(), "warnings about our units: {ours:?}");
}
