//! The layering rules of docs/architecture.md, checked against the real
//! dependency graph (`cargo metadata`) and the sources.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn deps_of(meta: &serde_json::Value, package: &str, kind: Option<&str>) -> BTreeSet<String> {
    let pkg = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("package {package} is in the workspace"));
    pkg["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter(|d| kind.is_none() || d["kind"].as_str() == kind)
        .map(|d| d["name"].as_str().expect("name").to_string())
        .collect()
}

fn metadata() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

#[test]
fn crate_layering_holds() {
    let meta = metadata();
    let ours = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter()
            .filter(|d| d.starts_with("deltasync"))
            .cloned()
            .collect()
    };
    let all = |p| deps_of(&meta, p, None);
    let normal = |p| deps_of(&meta, p, None).into_iter().collect::<BTreeSet<_>>();

    assert!(
        ours(&all("deltasync-engine")).is_empty(),
        "the engine depends on none of our crates"
    );
    assert!(
        ours(&all("deltasync-wire")).is_empty(),
        "the wire depends on neither engine nor driver"
    );
    let driver = ours(&all("deltasync-driver"));
    assert!(
        driver.contains("deltasync-engine") && driver.contains("deltasync-wire"),
        "the driver uses both"
    );
    assert_eq!(
        ours(&normal("deltasync")),
        BTreeSet::from(["deltasync-driver".to_string()]),
        "the CLI uses the driver only"
    );
    for lib in ["deltasync-engine", "deltasync-wire", "deltasync-driver"] {
        let deps = all(lib);
        for cli_only in ["clap", "anyhow"] {
            assert!(
                !deps.contains(cli_only),
                "{cli_only} stays in the CLI, but {lib} uses it"
            );
        }
    }
    for (dep, home) in [("ssh2", "deltasync-wire"), ("rusqlite", "deltasync-driver")] {
        for pkg in [
            "deltasync",
            "deltasync-engine",
            "deltasync-wire",
            "deltasync-driver",
        ] {
            if pkg != home {
                assert!(
                    !all(pkg).contains(dep),
                    "{dep} belongs to {home} only, but {pkg} uses it"
                );
            }
        }
    }
}

/// Rust sources under `dir` that mention `needle`.
fn files_mentioning(dir: &Path, needle: &str, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_mentioning(&path, needle, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source file");
            if text.contains(needle) {
                found.push(
                    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
}

#[test]
fn ssh2_and_sqlite_stay_in_their_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (needle, allowed) in [
        ("ssh2::", "wire/src/transport/ssh"),
        ("rusqlite::", "driver/src/state/"),
    ] {
        let mut found = Vec::new();
        for dir in ["src", "engine/src", "wire/src", "driver/src"] {
            files_mentioning(&root.join(dir), needle, &mut found);
        }
        let strays: Vec<_> = found.iter().filter(|f| !f.starts_with(allowed)).collect();
        assert!(
            strays.is_empty(),
            "{needle} is used outside {allowed}: {strays:?}"
        );
    }
}
