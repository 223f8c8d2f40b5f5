//! Options from four places, one answer: the command line over the
//! environment over the pair's section over `[defaults]`.
//!
//! A config file is TOML:
//!
//! ```toml
//! [defaults]
//! bwlimit = "08:00,2M 18:00,off"
//! exclude = ["*.tmp"]
//!
//! [pairs.office]
//! a = "/srv/share"
//! b = "office-b:/srv/share"
//! max-delete = 10
//! ```
//!
//! Every key is a long option of `sync` ([`keys`]). Each layer becomes a
//! map from key to [`Setting`]; [`Resolved::argv`] turns the merged map
//! back into a command line for clap to parse, so a value is checked by
//! the same parser whichever layer it came from. A bad key or value names
//! the file, the line and the key.

mod file;
pub mod keys;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{ArgMatches, Parser};

use crate::cli::SyncOpts;
pub use file::{ConfigFile, PairSection};
use keys::{Key, Kind};

/// A key's value, in the shape of its flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Flag(bool),
    One(String),
    Many(Vec<String>),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Flag(b) => write!(f, "{b}"),
            Value::One(s) => write!(f, "{s:?}"),
            Value::Many(v) => write!(f, "{v:?}"),
        }
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `[defaults]`, at this line of the file.
    Defaults(PathBuf, usize),
    /// The pair's own section, at this line.
    Pair(PathBuf, usize),
    /// This environment variable.
    Env(String),
    /// The command line.
    CommandLine,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Defaults(p, line) => write!(f, "[defaults] in {}:{line}", p.display()),
            Source::Pair(p, line) => write!(f, "pair section in {}:{line}", p.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::CommandLine => write!(f, "command line"),
        }
    }
}

/// One key's value and where it came from.
#[derive(Clone, Debug)]
pub struct Setting {
    pub value: Value,
    pub source: Source,
}

/// The merged options of one pair (or of a plain `sync`).
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Key (long flag) to its winning setting.
    pub settings: BTreeMap<String, Setting>,
}

impl Resolved {
    /// Lays `layer` over what is there: its keys win.
    pub fn layer(&mut self, layer: impl IntoIterator<Item = (String, Setting)>) {
        self.settings.extend(layer);
    }

    /// The command line these settings amount to (after the program name).
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        for (long, s) in &self.settings {
            match &s.value {
                Value::Flag(true) => argv.push(format!("--{long}")),
                Value::Flag(false) => {}
                Value::One(v) => argv.push(format!("--{long}={v}")),
                Value::Many(vs) => argv.extend(vs.iter().map(|v| format!("--{long}={v}"))),
            }
        }
        argv
    }

    /// The options, parsed by sync's own parser.
    pub fn opts(&self) -> Result<SyncOpts, String> {
        parse_opts(&self.argv())
    }
}

/// Only sync's options, for parsing a resolved command line.
#[derive(Debug, Parser)]
#[command(name = "deltasync", no_binary_name = true)]
struct Probe {
    #[command(flatten)]
    opts: SyncOpts,
}

fn parse_opts(argv: &[String]) -> Result<SyncOpts, String> {
    Probe::try_parse_from(argv)
        .map(|p| p.opts)
        .map_err(|e| first_line(&e.to_string()))
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Checks one key's value on its own, by sync's parser and the checks a
/// run makes before it starts, so a bad value is blamed on its line.
pub fn check_value(long: &str, value: &Value) -> Result<(), String> {
    let mut one = Resolved::default();
    one.settings.insert(
        long.to_string(),
        Setting {
            value: value.clone(),
            source: Source::CommandLine,
        },
    );
    let opts = one.opts()?;
    crate::sync::check(&opts).map_err(|e| e.to_string())
}

/// The settings the environment makes: `DELTASYNC_MAX_DELETE=10`.
/// Booleans are 1/0, true/false, yes/no or on/off; a repeatable option
/// takes one value per line.
pub fn env_layer(keys: &[Key]) -> Result<Vec<(String, Setting)>, String> {
    let mut out = Vec::new();
    for key in keys {
        let var = key.env_name();
        let Ok(text) = std::env::var(&var) else {
            continue;
        };
        let value = match key.kind {
            Kind::Flag => Value::Flag(
                parse_bool(&text)
                    .ok_or_else(|| format!("{var}={text:?}: expected 1 or 0, true or false"))?,
            ),
            Kind::One => Value::One(text),
            Kind::Many => Value::Many(text.lines().map(str::to_string).collect()),
        };
        check_value(&key.long, &value).map_err(|e| format!("{var}: {e}"))?;
        out.push((
            key.long.clone(),
            Setting {
                value,
                source: Source::Env(var),
            },
        ));
    }
    Ok(out)
}

/// The settings given on the command line (`m`: the command's matches).
/// Typed `--include`, `--exclude` and `--filter` become one `filter` list
/// in the order they were typed (rsync's first match); the include and
/// exclude lists of lower layers are then set aside, as any key is.
pub fn cli_layer(keys: &[Key], m: &ArgMatches) -> Vec<(String, Setting)> {
    let typed = |value| Setting {
        value,
        source: Source::CommandLine,
    };
    let mut layer: Vec<(String, Setting)> = keys
        .iter()
        .filter_map(|k| Some((k.long.clone(), typed(keys::from_matches(m, k)?))))
        .collect();
    if let Some(rules) = crate::filters::in_typed_order(m) {
        layer.retain(|(long, _)| !matches!(long.as_str(), "include" | "exclude" | "filter"));
        layer.push(("filter".into(), typed(Value::Many(rules))));
        for long in ["include", "exclude"] {
            layer.push((long.into(), typed(Value::Many(Vec::new()))));
        }
    }
    layer
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Where the config file is when `--config` does not say:
/// `$XDG_CONFIG_HOME/deltasync/config.toml`, else `~/.config/…`; as root
/// with no such file, `/etc/deltasync/config.toml`.
pub fn default_path() -> PathBuf {
    let user = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("deltasync/config.toml"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".config/deltasync/config.toml"),
    };
    let root = rustix::process::geteuid().is_root();
    if root && !user.exists() {
        return PathBuf::from("/etc/deltasync/config.toml");
    }
    user
}

/// Loads the config file `path` (or the default one).
pub fn load(path: Option<&Path>) -> Result<ConfigFile, String> {
    let path = path.map_or_else(default_path, Path::to_path_buf);
    ConfigFile::load(&path)
}

/// A pair's options: its section over `[defaults]`, then the environment,
/// then the command line `m` (when given).
pub fn resolve_pair(
    file: &ConfigFile,
    name: &str,
    m: Option<&ArgMatches>,
) -> Result<(PairSection, Resolved), String> {
    let keys = keys::all();
    let pair = file.pair(name)?;
    let mut r = Resolved::default();
    r.layer(file.defaults.clone());
    r.layer(pair.settings.clone());
    r.layer(env_layer(&keys)?);
    if let Some(m) = m {
        r.layer(cli_layer(&keys, m));
    }
    Ok((pair.clone(), r))
}
