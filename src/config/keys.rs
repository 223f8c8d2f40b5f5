//! The keys a config file, the environment and `run`'s command line may
//! set: exactly `sync`'s long options, read off its clap definition so the
//! three can never drift apart.

use clap::{ArgAction, ArgMatches, Args, Command, parser::ValueSource};

use crate::cli::SyncOpts;

/// How an option takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// On or off: `--checksum`; in TOML a boolean.
    Flag,
    /// One value: `--bwlimit 2M`; in TOML a string or a number.
    One,
    /// Repeatable: `--exclude A --exclude B`; in TOML an array.
    Many,
}

/// One of sync's options.
#[derive(Clone, Debug)]
pub struct Key {
    /// The long flag without dashes, as spelled in a config file.
    pub long: String,
    /// clap's id, for reading the command line.
    pub id: String,
    pub kind: Kind,
}

impl Key {
    /// `DELTASYNC_` plus the flag in upper case with `_` for `-`.
    pub fn env_name(&self) -> String {
        format!("DELTASYNC_{}", self.long.to_uppercase().replace('-', "_"))
    }
}

/// Every long option of `sync`, in the order `--help` lists them.
pub fn all() -> Vec<Key> {
    SyncOpts::augment_args(Command::new("sync"))
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?.to_string();
            let kind = match a.get_action() {
                ArgAction::SetTrue => Kind::Flag,
                ArgAction::Append => Kind::Many,
                ArgAction::Set => Kind::One,
                _ => return None,
            };
            Some(Key {
                long,
                id: a.get_id().to_string(),
                kind,
            })
        })
        .collect()
}

/// The key spelled `long`, if sync has it.
pub fn find<'k>(keys: &'k [Key], long: &str) -> Option<&'k Key> {
    keys.iter().find(|k| k.long == long)
}

/// The value a key was given on the command line, if it was given there.
pub fn from_matches(m: &ArgMatches, key: &Key) -> Option<super::Value> {
    if m.value_source(&key.id) != Some(ValueSource::CommandLine) {
        return None;
    }
    let raw = || -> Vec<String> {
        m.get_raw(&key.id)
            .into_iter()
            .flatten()
            .map(|v| v.to_string_lossy().into_owned())
            .collect()
    };
    Some(match key.kind {
        Kind::Flag => super::Value::Flag(m.get_flag(&key.id)),
        Kind::One => super::Value::One(raw().pop().unwrap_or_default()),
        Kind::Many => super::Value::Many(raw()),
    })
}
