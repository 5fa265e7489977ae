//! Applying events to stores: a created (or revised) object is written into the region
//! it covers; a removed object's region is blanked.
//!
//! [`Updater::apply`] never panics on bad input and never leaves a store half-updated:
//! every failure becomes a [`Outcome`] with action `rejected` and a reason naming the
//! object key and the cause, and the store is unchanged.

mod error;
mod gridded;
mod time_axis;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

pub use error::UpdateError;

use crate::config::{Catalog, Dataset};
use crate::store::CommitStats;

/// What happened to an object in the raw bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Created,
    Removed,
}

/// One event: an object key (relative to the raw root) and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub key: String,
    pub kind: EventKind,
}

/// What an event did to its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Appended,
    Overwrote,
    Blanked,
    /// A removal that found no slot holding the key (never ingested, or superseded).
    Unchanged,
    Rejected,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Action::Appended => "appended",
            Action::Overwrote => "overwrote",
            Action::Blanked => "blanked",
            Action::Unchanged => "unchanged",
            Action::Rejected => "rejected",
        };
        f.write_str(text)
    }
}

/// The result of applying one event, as printed by the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub key: String,
    pub event: EventKind,
    pub dataset: Option<String>,
    pub action: Action,
    /// Index range `[start, stop)` per dimension that the event wrote or blanked.
    pub region: Option<BTreeMap<String, [u64; 2]>>,
    pub reason: Option<String>,
    pub stats: Option<CommitStats>,
}

impl Outcome {
    pub fn is_rejected(&self) -> bool {
        self.action == Action::Rejected
    }

    /// One human-readable line: key, dataset, action, region or reason.
    pub fn line(&self) -> String {
        let dataset = self.dataset.as_deref().unwrap_or("-");
        let detail = match (&self.region, &self.reason) {
            (_, Some(reason)) => reason.clone(),
            (Some(region), None) => region
                .iter()
                .map(|(dim, [a, b])| format!("{dim}[{a}:{b}]"))
                .collect::<Vec<_>>()
                .join(" "),
            (None, None) => String::new(),
        };
        format!("{}\t{}\t{}\t{}", self.key, dataset, self.action, detail)
    }
}

/// A successful application, before it is turned into an [`Outcome`].
#[derive(Debug, Clone)]
pub struct Applied {
    pub action: Action,
    pub region: Option<BTreeMap<String, [u64; 2]>>,
    pub note: Option<String>,
    pub stats: CommitStats,
}

/// Applies events for every dataset of a catalog, reading objects under `raw_root`.
#[derive(Debug, Clone)]
pub struct Updater {
    pub catalog: Catalog,
    pub raw_root: PathBuf,
}

impl Updater {
    pub fn new(catalog: Catalog, raw_root: PathBuf) -> Self {
        Self { catalog, raw_root }
    }

    /// Applies one event; failures are reported in the outcome, never panicked.
    pub fn apply(&self, event: &Event) -> Outcome {
        let dataset = self
            .catalog
            .route(&event.key)
            .ok()
            .map(|d| d.name().to_string());
        let result = self.try_apply(event);
        match result {
            Ok(applied) => Outcome {
                key: event.key.clone(),
                event: event.kind,
                dataset,
                action: applied.action,
                region: applied.region,
                reason: applied.note,
                stats: Some(applied.stats),
            },
            Err(error) => Outcome {
                key: event.key.clone(),
                event: event.kind,
                dataset,
                action: Action::Rejected,
                region: None,
                reason: Some(error.to_string()),
                stats: None,
            },
        }
    }

    /// Applies one event, returning the error instead of an outcome.
    pub fn try_apply(&self, event: &Event) -> Result<Applied, UpdateError> {
        check_key(&event.key)?;
        let dataset = self.catalog.route(&event.key)?;
        match event.kind {
            EventKind::Created => {
                let path = self.raw_root.join(&event.key);
                if !path.is_file() {
                    return Err(UpdateError::MissingObject {
                        key: event.key.clone(),
                        path,
                    });
                }
                self.created(dataset, &event.key, &path)
            }
            EventKind::Removed => self.removed(dataset, &event.key),
        }
    }

    fn created(&self, dataset: &Dataset, key: &str, path: &Path) -> Result<Applied, UpdateError> {
        match dataset.config.handler {
            crate::config::HandlerKind::Gridded => gridded::apply_created(dataset, key, path),
        }
    }

    fn removed(&self, dataset: &Dataset, key: &str) -> Result<Applied, UpdateError> {
        match dataset.config.handler {
            crate::config::HandlerKind::Gridded => gridded::apply_removed(dataset, key),
        }
    }

    /// The object key of a file path under the raw root.
    pub fn key_for_path(&self, path: &Path) -> Result<String, UpdateError> {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let file = absolute(path);
        let root = absolute(&self.raw_root);
        let relative = file
            .strip_prefix(&root)
            .map_err(|_| UpdateError::OutsideRawRoot {
                path: path.to_path_buf(),
                raw_root: self.raw_root.clone(),
            })?;
        let key = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        check_key(&key)?;
        Ok(key)
    }
}

/// Object keys are relative paths that stay inside the raw root.
fn check_key(key: &str) -> Result<(), UpdateError> {
    let bad = |reason: &str| UpdateError::BadKey {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    if key.starts_with('/') || Path::new(key).is_absolute() {
        return Err(bad("absolute paths are not object keys"));
    }
    if Path::new(key)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(bad("'..' and '.' components would escape the raw root"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_the_raw_root_are_rejected() {
        assert!(check_key("sst/a.nc").is_ok());
        for key in ["", "/etc/passwd", "../x.nc", "sst/../../x.nc", "./a.nc"] {
            assert!(
                matches!(check_key(key), Err(UpdateError::BadKey { .. })),
                "{key}"
            );
        }
    }
}
