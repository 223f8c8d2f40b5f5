//! Where a replica is: a local path, `[user@]host:path` (scp style; a
//! relative path is relative to the remote home), or
//! `ssh://[user@]host[:port]/abs/path`.
//!
//! As in rsync, a colon makes a location remote only when it comes before
//! any slash, so `./a:b` and `/x/a:b` stay local.

use std::path::PathBuf;

/// A parsed location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A path on this machine.
    Local(PathBuf),
    /// A path on another machine, reached over SSH.
    Remote(Remote),
}

/// The remote half of a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// Login name, if given.
    pub user: Option<String>,
    /// Host name or `~/.ssh/config` alias.
    pub host: String,
    /// Port, if given (`ssh://` form only).
    pub port: Option<u16>,
    /// The path as written (relative to the remote home unless absolute).
    pub path: String,
}

impl Location {
    /// Parses a location argument.
    pub fn parse(text: &str) -> Result<Location, String> {
        if let Some(rest) = text.strip_prefix("ssh://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let (user, hostport) = split_user(authority);
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() => (
                    h,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("bad port in {text:?}"))?,
                    ),
                ),
                _ => (hostport, None),
            };
            if host.is_empty() {
                return Err(format!("no host in {text:?}"));
            }
            return Ok(Location::Remote(Remote {
                user,
                host: host.to_string(),
                port,
                path: path.to_string(),
            }));
        }
        match (text.find(':'), text.find('/')) {
            (Some(c), slash) if c > 0 && slash.is_none_or(|s| c < s) => {
                let (user, host) = split_user(&text[..c]);
                if host.is_empty() {
                    return Err(format!("no host in {text:?}"));
                }
                Ok(Location::Remote(Remote {
                    user,
                    host: host.to_string(),
                    port: None,
                    path: text[c + 1..].to_string(),
                }))
            }
            _ => Ok(Location::Local(PathBuf::from(text))),
        }
    }

    /// The path part as written.
    pub fn path_text(&self) -> String {
        match self {
            Location::Local(p) => p.to_string_lossy().into_owned(),
            Location::Remote(r) => r.path.clone(),
        }
    }

    /// True when written with a trailing slash ("the contents of").
    pub fn trailing_slash(&self) -> bool {
        let t = self.path_text();
        t.ends_with('/') || t.is_empty() || t == "." || t.ends_with("/.")
    }
}

fn split_user(s: &str) -> (Option<String>, &str) {
    match s.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Location {
        Location::Remote(Remote {
            user: user.map(String::from),
            host: host.into(),
            port,
            path: path.into(),
        })
    }

    #[test]
    fn forms() {
        assert_eq!(
            Location::parse("/srv/a").unwrap(),
            Location::Local("/srv/a".into())
        );
        assert_eq!(
            Location::parse("./a:b").unwrap(),
            Location::Local("./a:b".into())
        );
        assert_eq!(
            Location::parse("box:data/x").unwrap(),
            remote(None, "box", None, "data/x")
        );
        assert_eq!(
            Location::parse("me@box:/srv").unwrap(),
            remote(Some("me"), "box", None, "/srv")
        );
        assert_eq!(
            Location::parse("box:").unwrap(),
            remote(None, "box", None, "")
        );
        assert_eq!(
            Location::parse("ssh://me@box:2222/srv/x").unwrap(),
            remote(Some("me"), "box", Some(2222), "/srv/x")
        );
        assert_eq!(
            Location::parse("ssh://box").unwrap(),
            remote(None, "box", None, "/")
        );
        assert!(Location::parse("ssh://box:notaport/x").is_err());
        assert!(Location::parse("ssh:///x").is_err());
        assert!(Location::parse("box:").unwrap().trailing_slash());
        assert!(Location::parse("a/").unwrap().trailing_slash());
        assert!(!Location::parse("a").unwrap().trailing_slash());
    }
}
