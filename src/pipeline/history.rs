//! `zru log` and `zru rollback`: the history of a dataset kept in an Icechunk
//! repository (`"format": "icechunk"`, docs/icechunk.md).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use super::ledger::{Ledger, LedgerError};
use super::lock::{LockError, StoreLock};
use crate::config::Dataset;
use crate::store::icechunk::{Commit, Repo};
use crate::store::{Backend, StoreError};

/// Why a dataset's history could not be shown or reset.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// The dataset's store is a plain Zarr store: it has no history.
    #[error(
        "dataset {0:?}: its store is a plain Zarr store, which keeps no history: set \
         \"format\": \"icechunk\" (docs/icechunk.md)"
    )]
    NotVersioned(String),
    /// The repository could not be read or reset.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger could not be rebuilt after a rollback.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The store's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
}

fn repo(dataset: &Dataset) -> Result<Repo, HistoryError> {
    match dataset.backend() {
        Backend::Icechunk { branch, .. } => Ok(Repo::open(&dataset.location, &branch)?),
        Backend::Zarr => Err(HistoryError::NotVersioned(dataset.name().to_string())),
    }
}

/// The keys of a commit's events.
pub fn commit_keys(commit: &Commit) -> impl Iterator<Item = &str> {
    commit
        .events
        .iter()
        .filter_map(|e| e.get("key").and_then(Value::as_str))
}

/// The branch's commits, newest first; with `key`, only those with an event of it.
pub fn log(dataset: &Dataset, key: Option<&str>) -> Result<Vec<Commit>, HistoryError> {
    let mut commits = repo(dataset)?.history()?;
    if let Some(key) = key {
        commits.retain(|c| commit_keys(c).any(|k| k == key));
    }
    Ok(commits)
}

/// One line of `zru log`: id, time, message-less summary of the events.
pub fn log_line(commit: &Commit) -> String {
    let events: Vec<String> = commit
        .events
        .iter()
        .map(|e| {
            let text = |name: &str| e.get(name).and_then(Value::as_str).unwrap_or("?");
            format!("{} {} {}", text("action"), text("kind"), text("key"))
        })
        .collect();
    let detail = if events.is_empty() {
        commit.message.clone()
    } else {
        events.join("; ")
    };
    format!(
        "{}\t{}\t{detail}",
        commit.id,
        commit.time.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
}

/// What a rollback did.
#[derive(Debug, serde::Serialize)]
pub struct Rollback {
    /// The branch's tip before.
    pub from: String,
    /// The branch's tip now.
    pub to: String,
    /// The commits taken off the branch, newest first: their events can be applied
    /// again (the ledger no longer records them).
    pub undone: Vec<Commit>,
}

/// Resets the dataset's branch to `to` (a commit id of its history, or a tag), under
/// the store's lock, and rebuilds the ledger from the commits that remain.
pub fn rollback(
    dataset: &Dataset,
    to: &str,
    lock_dir: &Path,
    lock_timeout: Duration,
) -> Result<Rollback, HistoryError> {
    let repo = repo(dataset)?;
    let _lock = StoreLock::acquire(lock_dir, &dataset.location, lock_timeout)?;
    let history = repo.history()?;
    let from = repo.tip()?;
    let to = repo.reset(to)?;
    let undone = history.into_iter().take_while(|c| c.id != to).collect();
    // The cached ledger names a snapshot no longer on the branch: loading rebuilds it.
    Ledger::load_for(dataset)?.save()?;
    Ok(Rollback { from, to, undone })
}

/// The snapshot id at the tip of a dataset's branch (`None` for a plain Zarr store).
pub fn snapshot(dataset: &Dataset) -> Result<Option<String>, HistoryError> {
    match repo(dataset) {
        Ok(repo) => Ok(Some(repo.tip()?)),
        Err(HistoryError::NotVersioned(_)) => Ok(None),
        Err(error) => Err(error),
    }
}
