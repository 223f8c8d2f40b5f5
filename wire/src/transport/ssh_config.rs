//! The parts of `~/.ssh/config` deltasync honours: `Host` blocks (with `*`,
//! `?` and `!` patterns), and in them `HostName`, `User`, `Port`,
//! `IdentityFile` and `UserKnownHostsFile`. As in OpenSSH, the first value
//! found for a key wins, so specific blocks go above `Host *`.

use std::path::{Path, PathBuf};

/// What the config says about one host alias.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// The real host name.
    pub hostname: Option<String>,
    /// The login name.
    pub user: Option<String>,
    /// The port.
    pub port: Option<u16>,
    /// Identity files, in order.
    pub identity_files: Vec<PathBuf>,
    /// A known_hosts file other than the default.
    pub known_hosts: Option<PathBuf>,
}

/// Reads `path` (missing is fine) and resolves `alias`.
pub fn lookup(path: &Path, alias: &str) -> HostConfig {
    match std::fs::read_to_string(path) {
        Ok(text) => resolve(&text, alias),
        Err(_) => HostConfig::default(),
    }
}

/// Resolves `alias` against config text.
pub fn resolve(text: &str, alias: &str) -> HostConfig {
    let mut out = HostConfig::default();
    let mut active = true; // lines before any Host apply to all
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = split_key(line);
        let key = key.to_ascii_lowercase();
        if key == "host" {
            active = host_matches(value, alias);
            continue;
        }
        if key == "match" {
            active = false; // Match blocks are not supported; skip them rather than guess.
            continue;
        }
        if !active {
            continue;
        }
        let value = value.trim_matches('"');
        match key.as_str() {
            "hostname" if out.hostname.is_none() => out.hostname = Some(value.replace("%h", alias)),
            "user" if out.user.is_none() => out.user = Some(value.to_string()),
            "port" if out.port.is_none() => out.port = value.parse().ok(),
            "identityfile" => out.identity_files.push(expand_home(value)),
            "userknownhostsfile" if out.known_hosts.is_none() => {
                out.known_hosts = value.split_whitespace().next().map(expand_home)
            }
            _ => {}
        }
    }
    out
}

fn split_key(line: &str) -> (&str, &str) {
    let idx = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (k, rest) = line.split_at(idx);
    (
        k,
        rest.trim_start_matches(|c: char| c.is_whitespace() || c == '=')
            .trim(),
    )
}

/// `Host a b* !c`: any positive pattern matches and no negated one does.
fn host_matches(patterns: &str, alias: &str) -> bool {
    let mut hit = false;
    for p in patterns.split_whitespace() {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, alias) {
                return false;
            }
        } else if glob(p, alias) {
            hit = true;
        }
    }
    hit
}

fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// `~/x` to `$HOME/x`.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "
# offices
Host office-b
    HostName 10.9.8.7
    User sync
    Port 2222
    IdentityFile ~/.ssh/office_key

Host *.lan !printer.lan
    User admin

Host *
    User fallback
    Port 22
    IdentityFile ~/.ssh/id_ed25519
";

    #[test]
    fn first_value_wins_and_patterns_match() {
        let c = resolve(CONFIG, "office-b");
        assert_eq!(c.hostname.as_deref(), Some("10.9.8.7"));
        assert_eq!(c.user.as_deref(), Some("sync"));
        assert_eq!(c.port, Some(2222));
        assert_eq!(c.identity_files.len(), 2);
        assert_eq!(resolve(CONFIG, "nas.lan").user.as_deref(), Some("admin"));
        assert_eq!(
            resolve(CONFIG, "printer.lan").user.as_deref(),
            Some("fallback")
        );
        assert_eq!(resolve(CONFIG, "other").hostname, None);
        assert_eq!(resolve("Host=x\n  Port=7", "x").port, Some(7));
    }
}
