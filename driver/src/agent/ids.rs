//! User and group names, read from `/etc/passwd` and `/etc/group`.
//!
//! Owners travel by name as well as by number (as rsync does without
//! `--numeric-ids`), so a file owned by `ann` on one host is owned by the
//! local `ann` on the other, whatever her uid is there. The files are read
//! once per agent. Names served by NSS modules other than `files` (LDAP,
//! sssd) are not seen: such an owner travels by number.

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<u32, String>,
    by_name: HashMap<String, u32>,
}

fn read_table(path: &str) -> Table {
    let mut t = Table::default();
    let Ok(text) = std::fs::read_to_string(path) else {
        return t;
    };
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(id) = id.parse::<u32>() else { continue };
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        t.by_id.entry(id).or_insert_with(|| name.to_string());
        t.by_name.entry(name.to_string()).or_insert(id);
    }
    t
}

fn users() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| read_table("/etc/passwd"))
}

fn groups() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| read_table("/etc/group"))
}

/// The name of user `uid`, empty if unknown.
pub fn user_name(uid: u32) -> String {
    users().by_id.get(&uid).cloned().unwrap_or_default()
}

/// The name of group `gid`, empty if unknown.
pub fn group_name(gid: u32) -> String {
    groups().by_id.get(&gid).cloned().unwrap_or_default()
}

/// The local uid for `name`, else `fallback` (rsync's rule).
pub fn uid_for(name: &str, fallback: u32) -> u32 {
    if name.is_empty() {
        return fallback;
    }
    users().by_name.get(name).copied().unwrap_or(fallback)
}

/// The local gid for `name`, else `fallback`.
pub fn gid_for(name: &str, fallback: u32) -> u32 {
    if name.is_empty() {
        return fallback;
    }
    groups().by_name.get(name).copied().unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_known_both_ways_and_unknown_names_keep_the_number() {
        assert_eq!(user_name(0), "root");
        assert_eq!(uid_for("root", 77), 0);
        assert_eq!(uid_for("no-such-user-here", 77), 77);
        assert_eq!(gid_for("", 5), 5);
    }
}
