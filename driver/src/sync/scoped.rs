//! A pass over some paths, not whole replicas: what a watch runs when its
//! watchers report changes. Both sides are listed only at those paths
//! (each subtree whole, itself included); everything else is taken as the
//! state records it. The plan, the safety stops and the apply are the
//! full pass's own, so the same rules hold: a path the state records and a
//! listing no longer shows is a deletion, a path changed on both sides is
//! a conflict, and every change is guarded by what it expects to find.

use std::collections::{BTreeSet, HashMap};

use deltasync_wire::Entry;

use super::plan::Side;
use super::replicas;
use super::run::what_to_list;
use super::{SyncJob, SyncSummary};
use crate::client::Agent;
use crate::copy::Reporter;
use crate::error::DriverError;
use crate::path::RelPath;
use crate::state::{StateDb, Synced};

/// The state, both sides' listings (state outside the scope, fresh
/// inside), and the paths left for later (what could not be listed).
pub(super) type ScopedRead = (
    HashMap<RelPath, Synced>,
    [HashMap<RelPath, Entry>; 2],
    BTreeSet<RelPath>,
);

/// Reads both sides at `paths`; `None` when nothing is left to look at.
pub(super) fn read(
    job: &SyncJob,
    db: Option<&StateDb>,
    agents: [&Agent; 2],
    paths: &BTreeSet<RelPath>,
    reporter: &mut dyn Reporter,
    summary: &mut SyncSummary,
) -> Result<Option<ScopedRead>, DriverError> {
    let state = match db {
        Some(d) => d.load()?,
        None => HashMap::new(),
    };
    let scope = cover(&state, paths);
    if scope.is_empty() {
        return Ok(None);
    }
    let (filters, wants) = what_to_list(job);
    let within = |p: &RelPath| scope.iter().any(|s| p.starts_with(s));
    let mut busy = BTreeSet::new();
    let mut listings: [HashMap<RelPath, Entry>; 2] = Default::default();
    for (i, side) in [(0, Side::A), (1, Side::B)] {
        listings[i] = replicas::from_state(&state, side, &RelPath::root())
            .filter(|(p, _)| !within(p))
            .collect();
        for p in &scope {
            let l = replicas::list_under(agents[i], p, &filters, wants, None, side, reporter)?;
            listings[i].extend(l.entries);
            replicas::keep_unread(
                l.unreadable,
                side,
                &state,
                &mut listings[i],
                &mut busy,
                &mut summary.failed,
                reporter,
            );
        }
    }
    Ok(Some((state, listings, busy)))
}

/// The fewest subtrees that cover `paths`. A path whose folder the state
/// does not know stands for that folder (a new folder is listed whole, so
/// nothing in it is missed); a path beneath another is dropped. The root
/// itself covers everything.
pub(super) fn cover(
    state: &HashMap<RelPath, Synced>,
    paths: &BTreeSet<RelPath>,
) -> BTreeSet<RelPath> {
    let mut lifted = BTreeSet::new();
    for p in paths {
        let mut p = p.clone();
        while !p.is_root() && !p.parent().is_root() && !state.contains_key(&p.parent()) {
            p = p.parent();
        }
        lifted.insert(p);
    }
    if lifted.iter().any(RelPath::is_root) {
        return [RelPath::root()].into();
    }
    let mut out: BTreeSet<RelPath> = BTreeSet::new();
    for p in lifted {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.retain(|o| !o.starts_with(&p));
            out.insert(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_wire::EntryKind;

    fn rp(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    fn known(paths: &[&str]) -> HashMap<RelPath, Synced> {
        paths
            .iter()
            .map(|p| {
                let s = Synced {
                    kind: EntryKind::Dir,
                    size: 0,
                    blake3: None,
                    target: Vec::new(),
                    a: Default::default(),
                    b: Default::default(),
                };
                (rp(p), s)
            })
            .collect()
    }

    #[test]
    fn a_cover_lists_new_folders_whole_and_nothing_twice() {
        let state = known(&["docs", "docs/old"]);
        let paths: BTreeSet<RelPath> = ["docs/a.txt", "docs/old/b", "docs/old", "new/deep/f", "x"]
            .into_iter()
            .map(rp)
            .collect();
        let got: Vec<String> = cover(&state, &paths)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(got, ["docs/a.txt", "docs/old", "new", "x"]);
        let all: BTreeSet<RelPath> = [rp("a"), RelPath::root()].into();
        assert_eq!(cover(&state, &all), [RelPath::root()].into());
        assert!(cover(&state, &BTreeSet::new()).is_empty());
    }
}
