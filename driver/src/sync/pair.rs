//! A sync pair's identity and where its state lives: the pair id, the
//! state database's path, and `deltasync reset`.

use std::path::{Path, PathBuf};

use crate::client::{self, AgentSpec, ConnectOptions};
use crate::error::DriverError;
use crate::link::hex;
use crate::location::Location;

/// A pair's id: the two locations, as canonical text, hashed.
pub fn pair_id(a: &Location, b: &Location) -> String {
    let h = blake3::hash(format!("{}\0{}", canonical(a), canonical(b)).as_bytes());
    hex(&h.as_bytes()[..8])
}

fn canonical(l: &Location) -> String {
    match l {
        Location::Local(p) => {
            let abs = std::fs::canonicalize(p)
                .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
            abs.display().to_string()
        }
        Location::Remote(r) => format!(
            "{}@{}:{}:{}",
            r.user.as_deref().unwrap_or(""),
            r.host,
            r.port.unwrap_or(22),
            r.path
        ),
    }
}

/// The state database's path: `--state-dir`, else `A/.deltasync/state/`
/// (or B's, if only B is local; else `~/.local/state/deltasync/`).
pub fn state_path(a: &Location, b: &Location, dir: Option<&Path>) -> PathBuf {
    let file = format!("{}.sqlite", pair_id(a, b));
    if let Some(d) = dir {
        return d.join(file);
    }
    for l in [a, b] {
        if let Location::Local(p) = l {
            return p.join(".deltasync/state").join(file);
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".local/state/deltasync").join(file)
}

/// `deltasync reset A B`: forgets the pair (its state database and the
/// notes each side keeps), so the next run is a first sync.
pub fn reset(
    a: &Location,
    b: &Location,
    state_dir: Option<&Path>,
    connect: &ConnectOptions,
) -> Result<PathBuf, DriverError> {
    let pair = pair_id(a, b);
    for l in [a, b] {
        let spec = AgentSpec {
            root: root_text(l),
            read_only: false,
            mkdir: false,
        };
        if let Ok(agent) = client::open(l, &spec, connect, false) {
            let _ = super::replicas::pair_note(&agent, &pair, Some(String::new()));
            let _ = agent.close();
        }
    }
    let path = state_path(a, b, state_dir);
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(DriverError::Io { path: p, source: e });
            }
            _ => {}
        }
    }
    Ok(path)
}

/// A location's root as an agent is asked to serve it.
pub(super) fn root_text(l: &Location) -> String {
    let t = l.path_text();
    if t.is_empty() { ".".into() } else { t }
}
