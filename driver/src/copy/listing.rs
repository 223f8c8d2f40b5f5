//! Listing one side of a copy: its entries, and what it had to leave out.
//!
//! A folder that cannot be read, a path too long for the wire: the agent
//! names each in a `Notice` and goes on. Copy warns with the side and the
//! path, and counts it as a failed path, so the run ends in exit 23 as
//! rsync's does, with everything else copied. Special files (`Skipped`)
//! are only warned about: rsync skips them quietly and so exit 0 stays.

use deltasync_wire::{Code, Entry, ListWants, Reply, Request, WireError};

use super::{CopySummary, Event, Reporter};
use crate::client::Agent;
use crate::error::DriverError;
use crate::path::RelPath;

/// One side's listing.
pub struct Listing {
    entries: Vec<Entry>,
    /// Paths left out that should have been listed.
    unlisted: Vec<String>,
}

impl Listing {
    /// The entries, with what was left out counted in `summary` as failed.
    pub fn count_unlisted(self, summary: &mut CopySummary) -> Vec<Entry> {
        summary.failed.extend(self.unlisted);
        self.entries
    }
}

/// Lists `under` on `agent`, the `side` named in warnings ("source" or
/// "destination"): all entries, in walk order. A listing that
/// cannot start at all is an error.
pub fn list(
    side: &str,
    agent: &Agent,
    under: &RelPath,
    filters: &[String],
    wants: ListWants,
    reporter: &mut dyn Reporter,
) -> Result<Listing, DriverError> {
    try_list(side, agent, under, filters, wants, reporter)?
        .map_err(|failure| startup(agent, failure))
}

/// Like [`list`], but a missing `under` (or root) is an empty listing.
pub fn list_or_empty(
    side: &str,
    agent: &Agent,
    under: &RelPath,
    filters: &[String],
    wants: ListWants,
    reporter: &mut dyn Reporter,
) -> Result<Listing, DriverError> {
    match try_list(side, agent, under, filters, wants, reporter)? {
        Ok(listing) => Ok(listing),
        Err((Code::Vanished, _, _)) => Ok(Listing {
            entries: Vec::new(),
            unlisted: Vec::new(),
        }),
        Err(failure) => Err(startup(agent, failure)),
    }
}

/// Why a listing could not start: the agent's code, path and message.
type ListFailure = (Code, String, String);

fn startup(agent: &Agent, (_, path, message): ListFailure) -> DriverError {
    DriverError::Startup(format!(
        "{}: {}: {message}",
        agent.description_short(),
        path
    ))
}

fn try_list(
    side: &str,
    agent: &Agent,
    under: &RelPath,
    filters: &[String],
    wants: ListWants,
    reporter: &mut dyn Reporter,
) -> Result<Result<Listing, ListFailure>, DriverError> {
    let mut listing = Listing {
        entries: Vec::new(),
        unlisted: Vec::new(),
    };
    let replies = agent.stream(Request::List {
        under: under.as_bytes().to_vec(),
        filters: filters.to_vec(),
        wants,
        if_digest: None,
    })?;
    for rep in replies {
        match rep? {
            Reply::Entry(entry) => listing.entries.push(*entry),
            Reply::Notice {
                code,
                path,
                message,
            } => {
                let shown = String::from_utf8_lossy(&path).into_owned();
                reporter.event(Event::Warning(&format!("{side}: {shown}: {message}")));
                if code != Code::Skipped {
                    listing.unlisted.push(shown);
                }
            }
            Reply::ListEnd { .. } | Reply::ListSame { .. } => return Ok(Ok(listing)),
            Reply::Error {
                code,
                path,
                message,
            } => {
                return Ok(Err((
                    code,
                    String::from_utf8_lossy(&path).into_owned(),
                    message,
                )));
            }
            other => {
                return Err(DriverError::Wire(WireError::Violation(format!(
                    "unexpected reply to a listing: {other:?}"
                ))));
            }
        }
    }
    Err(DriverError::Wire(WireError::Truncated { what: "listing" }))
}
