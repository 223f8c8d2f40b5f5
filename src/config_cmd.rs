//! `deltasync config check` and `deltasync config show NAME`.

use anyhow::Result;
use deltasync_driver::DriverError;
use deltasync_driver::location::Location;

use crate::cli::{ConfigAction, ConfigArgs};
use crate::config;
use crate::console::out;

pub fn config(args: &ConfigArgs) -> Result<()> {
    match &args.action {
        ConfigAction::Check(c) => check(c.config.as_deref()),
        ConfigAction::Show { config, name } => show(config.config.as_deref(), name),
        ConfigAction::Systemd { config, name } => systemd(config.config.as_deref(), name),
    }
}

/// Checks every key and value, then each pair as it would run (with the
/// environment's overrides).
fn check(path: Option<&std::path::Path>) -> Result<()> {
    let file = config::load(path).map_err(DriverError::Usage)?;
    for p in &file.pairs {
        let (_, r) = config::resolve_pair(&file, &p.name, None).map_err(DriverError::Usage)?;
        let opts = r
            .opts()
            .map_err(|e| DriverError::Usage(format!("pair {}: {e}", p.name)))?;
        crate::sync::check(&opts)
            .map_err(|e| DriverError::Usage(format!("pair {}: {e}", p.name)))?;
        for (side, text) in [("a", &p.a), ("b", &p.b)] {
            Location::parse(text)
                .map_err(|e| DriverError::Usage(format!("pair {}: {side}: {e}", p.name)))?;
        }
    }
    let names: Vec<&str> = file.pairs.iter().map(|p| p.name.as_str()).collect();
    out!(
        "{}: fine; {} pair(s): {}",
        file.path.display(),
        names.len(),
        names.join(", ")
    );
    Ok(())
}

/// Prints the drop-in for `deltasync@NAME.service`: the paths the pair
/// writes here (local replicas, the state folder, the log's folder) as
/// ReadWritePaths under the unit's ProtectSystem=strict, and the config.
fn systemd(path: Option<&std::path::Path>, name: &str) -> Result<()> {
    let file = config::load(path).map_err(DriverError::Usage)?;
    let (pair, r) = config::resolve_pair(&file, name, None).map_err(DriverError::Usage)?;
    let opts = r.opts().map_err(DriverError::Usage)?;
    let (a, b) = (Location::parse(&pair.a), Location::parse(&pair.b));
    let (Ok(a), Ok(b)) = (a, b) else {
        return Err(DriverError::Usage(format!("pair {name}: a replica does not parse")).into());
    };
    let mut paths = Vec::new();
    for l in [&a, &b] {
        if let Location::Local(p) = l {
            paths.push(absolute(p));
        }
    }
    let state = deltasync_driver::sync::state_path(&a, &b, opts.state_dir.as_deref());
    if let Some(dir) = state.parent() {
        let dir = absolute(dir);
        if !paths.iter().any(|p| dir.starts_with(p)) {
            paths.push(dir);
        }
    }
    if let Some(log) = opts.unattended.log_file.as_deref().and_then(|l| l.parent()) {
        paths.push(absolute(log));
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| "/usr/local/bin/deltasync".into());
    let config = absolute(&file.path);
    out!("# systemctl edit deltasync@{name}.service, then paste:");
    out!("[Service]");
    out!("ExecStart=");
    out!(
        "ExecStart={} run --config {} {}",
        exe.display(),
        config.display(),
        shell_words::quote(name)
    );
    for p in paths {
        out!("ReadWritePaths={}", p.display());
    }
    Ok(())
}

fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Prints a pair's resolved options and where each came from.
fn show(path: Option<&std::path::Path>, name: &str) -> Result<()> {
    let file = config::load(path).map_err(DriverError::Usage)?;
    let (pair, r) = config::resolve_pair(&file, name, None).map_err(DriverError::Usage)?;
    out!("[pairs.{}]  # {}", pair.name, file.path.display());
    out!("a = {:?}", pair.a);
    out!("b = {:?}", pair.b);
    for (key, s) in &r.settings {
        out!("{key} = {}  # from {}", s.value, s.source);
    }
    out!("# every other option has its default (deltasync sync --help)");
    Ok(())
}
