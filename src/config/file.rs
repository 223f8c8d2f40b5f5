//! Reading a config file: TOML with its spans kept, so every error names
//! the file, the line and the key.

use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::keys::{self, Key, Kind};
use super::{Setting, Source, Value, check_value};

/// A `[pairs.NAME]` section.
#[derive(Clone, Debug)]
pub struct PairSection {
    pub name: String,
    pub a: String,
    pub b: String,
    /// Its own options (the pair layer).
    pub settings: Vec<(String, Setting)>,
}

/// A checked config file.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// The `[defaults]` layer.
    pub defaults: Vec<(String, Setting)>,
    /// The pairs, in the file's order.
    pub pairs: Vec<PairSection>,
}

impl ConfigFile {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        ConfigFile::parse(path, &text)
    }

    /// Checks `text`, read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, String> {
        let here =
            |span: std::ops::Range<usize>| format!("{}:{}", path.display(), line(text, span));
        let doc = DeTable::parse(text).map_err(|e| {
            let at = e.span().map_or_else(|| path.display().to_string(), &here);
            format!("{at}: {}", e.message().trim())
        })?;
        let keys = keys::all();
        let mut file = ConfigFile {
            path: path.to_path_buf(),
            defaults: Vec::new(),
            pairs: Vec::new(),
        };
        for (k, v) in doc.get_ref() {
            let at = here(k.span());
            match (k.get_ref().as_ref(), v.get_ref()) {
                ("defaults", DeValue::Table(t)) => {
                    file.defaults =
                        section(t, &keys, text, |l| Source::Defaults(path.to_path_buf(), l))
                            .map_err(|e| format!("{}:{e}", path.display()))?;
                }
                ("pairs", DeValue::Table(t)) => {
                    for (name, body) in t {
                        let DeValue::Table(body) = body.get_ref() else {
                            return Err(format!(
                                "{}: pairs.{} must be a section: [pairs.{}]",
                                here(name.span()),
                                name.get_ref(),
                                name.get_ref()
                            ));
                        };
                        file.pairs.push(
                            pair(name, body, &keys, text, path)
                                .map_err(|e| format!("{}:{e}", path.display()))?,
                        );
                    }
                }
                (other, _) => {
                    return Err(format!(
                        "{at}: unknown section or key `{other}`: a config file has [defaults] and [pairs.NAME]"
                    ));
                }
            }
        }
        Ok(file)
    }

    /// The pair called `name`.
    pub fn pair(&self, name: &str) -> Result<&PairSection, String> {
        self.pairs.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.pairs.iter().map(|p| p.name.as_str()).collect();
            format!(
                "{}: no pair called {name:?} (pairs: {})",
                self.path.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })
    }
}

/// The line (from 1) where `span` starts.
fn line(text: &str, span: std::ops::Range<usize>) -> usize {
    text.as_bytes()[..span.start.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

type Table<'i> = DeTable<'i>;

fn pair(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    body: &Table<'_>,
    keys: &[Key],
    text: &str,
    path: &Path,
) -> Result<PairSection, String> {
    let at = line(text, name.span());
    let mut a = None;
    let mut b = None;
    let mut rest = Table::new();
    for (k, v) in body {
        let slot = match k.get_ref().as_ref() {
            "a" => &mut a,
            "b" => &mut b,
            _ => {
                rest.insert(k.clone(), v.clone());
                continue;
            }
        };
        let DeValue::String(s) = v.get_ref() else {
            return Err(format!(
                "{}: key `{}`: a replica is a string, a path or host:path",
                line(text, k.span()),
                k.get_ref()
            ));
        };
        *slot = Some(s.to_string());
    }
    let (Some(a), Some(b)) = (a, b) else {
        return Err(format!(
            "{at}: pair `{}` needs both `a` and `b`",
            name.get_ref()
        ));
    };
    Ok(PairSection {
        name: name.get_ref().to_string(),
        a,
        b,
        settings: section(&rest, keys, text, |l| Source::Pair(path.to_path_buf(), l))?,
    })
}

/// A section's options; errors start with the line number.
fn section(
    t: &Table<'_>,
    keys: &[Key],
    text: &str,
    source: impl Fn(usize) -> Source,
) -> Result<Vec<(String, Setting)>, String> {
    let mut out = Vec::new();
    for (k, v) in t {
        let long = k.get_ref().as_ref();
        let at = line(text, k.span());
        let Some(key) = keys::find(keys, long) else {
            let hint = if long == "a" || long == "b" {
                " (replicas belong in a [pairs.NAME] section)".to_string()
            } else {
                String::new()
            };
            return Err(format!(
                "{at}: unknown key `{long}`{hint}; keys are sync's long options (deltasync sync --help)"
            ));
        };
        let value = value(key, v.get_ref()).map_err(|e| format!("{at}: key `{long}`: {e}"))?;
        check_value(long, &value).map_err(|e| format!("{at}: key `{long}`: {e}"))?;
        out.push((
            long.to_string(),
            Setting {
                value,
                source: source(at),
            },
        ));
    }
    Ok(out)
}

/// A TOML value in the shape `key` takes.
fn value(key: &Key, v: &DeValue<'_>) -> Result<Value, String> {
    let scalar = |v: &DeValue<'_>| -> Result<String, String> {
        match v {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(i) => Ok(i.as_str().to_string()),
            DeValue::Float(f) => Ok(f.as_str().to_string()),
            other => Err(format!(
                "expected a string or a number, not {}",
                other.type_str()
            )),
        }
    };
    match (key.kind, v) {
        (Kind::Flag, DeValue::Boolean(b)) => Ok(Value::Flag(*b)),
        (Kind::Flag, other) => Err(format!("expected true or false, not {}", other.type_str())),
        (Kind::One, DeValue::Boolean(b)) => Ok(Value::One(b.to_string())),
        (Kind::One, other) => scalar(other).map(Value::One),
        (Kind::Many, DeValue::Array(items)) => items
            .iter()
            .map(|i| scalar(i.get_ref()))
            .collect::<Result<_, _>>()
            .map(Value::Many),
        (Kind::Many, other) => scalar(other).map(|s| Value::Many(vec![s])),
    }
}
