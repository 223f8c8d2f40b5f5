//! `--include`, `--exclude`, `--filter` and `--exclude-from` as rsync reads
//! them: one list of rules, tried in the order given, where the first rule
//! that matches a path decides. The agents match with gitignore semantics,
//! where the *last* match wins, so the list is handed over reversed, with
//! each include as a `!` negation.
//!
//! Order is kept where the user can see it: on the command line, the
//! three flags interleave by position (clap's indices). A config file has
//! arrays, which have no order between them, so there `filter` rules come
//! first, then `include`, then `exclude`; `--exclude-from` files always
//! come last.

use clap::ArgMatches;
use clap::parser::ValueSource;
use deltasync_driver::DriverError;

use crate::cli::FilterArgs;

/// One rule: include or exclude a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    include: bool,
    pattern: String,
}

/// Reads an rsync rule: `+ PATTERN`, `- PATTERN`, or the long forms
/// `include PATTERN` and `exclude PATTERN`.
fn parse_rule(text: &str) -> Result<Rule, String> {
    let (word, pattern) = text
        .split_once([' ', '_'])
        .filter(|(_, p)| !p.is_empty())
        .ok_or_else(|| format!("filter rule {text:?}: expected '+ PATTERN' or '- PATTERN'"))?;
    let include = match word {
        "+" | "include" => true,
        "-" | "exclude" => false,
        _ => {
            return Err(format!(
                "filter rule {text:?}: {word:?} is not a rule; use '+ PATTERN' or '- PATTERN'"
            ));
        }
    };
    Ok(Rule {
        include,
        pattern: pattern.to_string(),
    })
}

/// The command line's `--include`, `--exclude` and `--filter` as one list
/// of `--filter` rules in the order they were typed, or `None` when none of
/// them was given there.
pub fn in_typed_order(m: &ArgMatches) -> Option<Vec<String>> {
    let mut typed: Vec<(usize, String)> = Vec::new();
    for (id, prefix) in [("include", "+ "), ("exclude", "- "), ("filter", "")] {
        if m.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let values = m.get_raw(id).into_iter().flatten();
        let indices = m.indices_of(id).into_iter().flatten();
        for (i, v) in indices.zip(values) {
            typed.push((i, format!("{prefix}{}", v.to_string_lossy())));
        }
    }
    if typed.is_empty() {
        return None;
    }
    typed.sort_by_key(|(i, _)| *i);
    Some(typed.into_iter().map(|(_, r)| r).collect())
}

/// Moves the command line's `--include` and `--exclude` into `--filter`,
/// in typed order (for `copy`, which has no config layers).
pub fn keep_typed_order(f: &mut FilterArgs, m: &ArgMatches) {
    if let Some(rules) = in_typed_order(m) {
        f.filter = rules;
        f.include.clear();
        f.exclude.clear();
    }
}

/// The agents' pattern list (gitignore syntax, last match wins) for `f`.
/// A bad rule or an unreadable `--exclude-from` file is a usage error.
pub fn agent_patterns(f: &FilterArgs) -> Result<Vec<String>, DriverError> {
    let mut rules = Vec::new();
    for text in &f.filter {
        rules.push(parse_rule(text).map_err(DriverError::Usage)?);
    }
    let plain = |include: bool| {
        move |p: &String| Rule {
            include,
            pattern: p.clone(),
        }
    };
    rules.extend(f.include.iter().map(plain(true)));
    rules.extend(f.exclude.iter().map(plain(false)));
    for file in &f.exclude_from {
        let text = std::fs::read_to_string(file)
            .map_err(|e| DriverError::Usage(format!("--exclude-from {}: {e}", file.display())))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let rule = if line.starts_with("+ ") || line.starts_with("- ") {
                parse_rule(line)
                    .map_err(|e| DriverError::Usage(format!("{}: {e}", file.display())))?
            } else {
                plain(false)(&line.to_string())
            };
            rules.push(rule);
        }
    }
    Ok(rules
        .into_iter()
        .rev()
        .map(|r| match r.include {
            true => format!("!{}", r.pattern),
            false => r.pattern,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        f: FilterArgs,
    }

    fn typed(args: &[&str]) -> FilterArgs {
        let m = <Probe as clap::CommandFactory>::command()
            .get_matches_from(std::iter::once("probe").chain(args.iter().copied()));
        let mut f = <Probe as clap::FromArgMatches>::from_arg_matches(&m)
            .unwrap()
            .f;
        keep_typed_order(&mut f, &m);
        f
    }

    #[test]
    fn flags_keep_the_order_they_were_typed_in() {
        let f = typed(&["--exclude", "*.log", "--include", "a.log", "-f", "+ b/"]);
        assert_eq!(f.filter, ["- *.log", "+ a.log", "+ b/"]);
        assert!(f.include.is_empty() && f.exclude.is_empty());
        // First match wins, so the agents (last match wins) get it reversed.
        assert_eq!(agent_patterns(&f).unwrap(), ["!b/", "!a.log", "*.log"]);
        let f = typed(&["--include", "a.log", "--exclude", "*.log"]);
        assert_eq!(agent_patterns(&f).unwrap(), ["*.log", "!a.log"]);
    }

    #[test]
    fn a_bad_rule_says_what_is_expected() {
        for bad in ["* x", "+", "keep"] {
            let f = typed(&["-f", bad]);
            let e = agent_patterns(&f).unwrap_err().to_string();
            assert!(e.contains("'+ PATTERN'"), "{bad}: {e}");
        }
        let f = typed(&["-f", "include keep/", "-f", "exclude_*"]);
        assert_eq!(agent_patterns(&f).unwrap(), ["*", "!keep/"]);
    }
}
