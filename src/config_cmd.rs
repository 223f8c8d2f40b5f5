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
