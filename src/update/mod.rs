//! Applying events to stores: a created (or revised) object is written into the region
//! it covers; a removed object's region is blanked.
//!
//! [`Updater::apply`] never panics on bad input and never leaves a store half-updated:
//! every failure becomes a [`Outcome`] with action `rejected` and a reason naming the
//! object key and the cause, and the store is unchanged.

mod error;
mod region;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use error::UpdateError;
pub use region::Region;

use crate::collection::Batch;
use crate::config::{Catalog, Dataset};
use crate::store::{Backend, CommitNote, CommitStats, Transaction, ZarrFormat, ZarrStore};

fn rejected(event: &Event, dataset: Option<String>, error: Rejection) -> Outcome {
    Outcome {
        key: event.key.clone(),
        event: event.kind,
        dataset,
        action: Action::Rejected,
        region: None,
        reason: Some(error.reason),
        stats: None,
        permanent: error.permanent,
    }
}

/// Why an event was rejected, and whether a retry could succeed.
struct Rejection {
    reason: String,
    permanent: bool,
}

impl Rejection {
    /// A failure that a retry may get past (store I/O, a commit that failed).
    fn transient(reason: String) -> Self {
        Self {
            reason,
            permanent: false,
        }
    }
}

impl From<UpdateError> for Rejection {
    fn from(error: UpdateError) -> Self {
        Self {
            permanent: error.is_permanent(),
            reason: error.to_string(),
        }
    }
}

/// What happened to an object in the raw bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The object was created or rewritten (a revision): its file is written into
    /// the region it covers.
    Created,
    /// The object was deleted: the rows or slots its key wrote are blanked.
    Removed,
}

/// One event: an object key (relative to the raw root) and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The object key: a `/`-separated path relative to the raw root (see
    /// [`check_key`]).
    pub key: String,
    /// What happened to the object.
    pub kind: EventKind,
}

/// What an event did to its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A created file grew the store along its append dimension (it may also have
    /// overwritten or filled existing slots).
    Appended,
    /// A created file was written over existing slots or rows only (a revision, or a
    /// blank slot filled).
    Overwrote,
    /// A removal blanked the slots or rows its key wrote (fill values; the store does
    /// not shrink).
    Blanked,
    /// A removal that found no slot holding the key (never ingested, or superseded).
    Unchanged,
    /// The key was recorded as the source of slots already holding its data.
    Adopted,
    /// The event failed and the store is unchanged by it; [`Outcome::reason`] says why
    /// and [`Outcome::permanent`] whether it is retried.
    Rejected,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Action::Appended => "appended",
            Action::Overwrote => "overwrote",
            Action::Blanked => "blanked",
            Action::Unchanged => "unchanged",
            Action::Adopted => "adopted",
            Action::Rejected => "rejected",
        };
        f.write_str(text)
    }
}

/// The result of applying one event, as printed by the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The event's object key.
    pub key: String,
    /// What happened to the object.
    pub event: EventKind,
    /// The dataset the key routed to; `None` when it routed to none (or was not a
    /// valid key).
    pub dataset: Option<String>,
    /// What the event did to the store.
    pub action: Action,
    /// Index range `[start, stop)` per dimension that the event wrote or blanked.
    pub region: Option<Region>,
    /// For a rejection, why (naming the key); otherwise an optional note (a removal
    /// that found nothing, a removal blanking several ranges).
    pub reason: Option<String>,
    /// What the event's chunk writes counted; `None` when it was rejected before them.
    pub stats: Option<CommitStats>,
    /// For a rejection: retrying cannot succeed (dead-letter it at once).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub permanent: bool,
}

impl Outcome {
    /// Whether the event was rejected ([`Action::Rejected`]).
    pub fn is_rejected(&self) -> bool {
        self.action == Action::Rejected
    }

    /// One human-readable line: key, dataset, action, region or reason.
    pub fn line(&self) -> String {
        event_line(
            &self.key,
            self.dataset.as_deref(),
            &self.action,
            self.region.as_ref(),
            self.reason.as_deref(),
            passed_through(self.stats.as_ref()),
        )
    }
}

/// Chunks an event copied compressed from its file (see [`CommitStats`]).
pub(crate) fn passed_through(stats: Option<&CommitStats>) -> u64 {
    stats.map_or(0, |s| s.chunks_passed_through)
}

/// The CLI's line for an event: key, dataset, action, then the reason or the region,
/// and how many chunks were copied compressed (passthrough) if any were.
pub(crate) fn event_line(
    key: &str,
    dataset: Option<&str>,
    action: &dyn std::fmt::Display,
    region: Option<&Region>,
    reason: Option<&str>,
    passed_through: u64,
) -> String {
    let mut detail = match (region, reason) {
        (_, Some(reason)) => reason.to_string(),
        (Some(region), None) => region.to_string(),
        (None, None) => String::new(),
    };
    if passed_through > 0 {
        detail.push_str(&format!(" (passthrough: {passed_through} chunks)"));
    }
    format!("{key}\t{}\t{action}\t{detail}", dataset.unwrap_or("-"))
}

/// A successful application, before it is turned into an [`Outcome`].
#[derive(Debug, Clone)]
pub struct Applied {
    /// What the event did.
    pub(crate) action: Action,
    /// The region it wrote or blanked.
    pub(crate) region: Option<Region>,
    /// A note for the outcome's reason column.
    pub(crate) note: Option<String>,
    /// Its chunk writes (set by the updater once the chunks are written).
    pub(crate) stats: CommitStats,
}

/// What a batch does with its created events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Write the file into its region (removals blank theirs).
    Apply,
    /// Record the key as the source of the slots already holding its data.
    Adopt,
}

/// Applies events for every dataset of a catalog, reading objects under `raw_root`.
#[derive(Debug, Clone)]
pub struct Updater {
    /// The datasets; each event goes to the one whose `key_patterns` match its key.
    pub catalog: Catalog,
    /// The directory object keys are relative to (locally the raw bucket's directory;
    /// on AWS a scratch directory the objects are downloaded into).
    pub raw_root: PathBuf,
}

impl Updater {
    /// An updater for `catalog`'s datasets reading files under `raw_root`; nothing is
    /// opened until events are applied.
    pub fn new(catalog: Catalog, raw_root: PathBuf) -> Self {
        Self { catalog, raw_root }
    }

    /// Applies one event; failures are reported in the outcome, never panicked.
    pub fn apply(&self, event: &Event) -> Outcome {
        self.apply_batch(std::slice::from_ref(event))
            .pop()
            .unwrap_or_else(|| rejected(event, None, Rejection::transient("no outcome".into())))
    }

    /// Applies events in order and returns one outcome per event, in the same order.
    ///
    /// Events of one dataset share one store transaction: each file is staged behind a
    /// savepoint (a failing file is rolled back alone), its chunks are written as soon
    /// as it succeeded, and array and consolidated metadata are written once at the end.
    /// Stores are independent, so events of different datasets keep their own order.
    pub fn apply_batch(&self, events: &[Event]) -> Vec<Outcome> {
        self.batch(events, &[], Mode::Apply)
    }

    /// [`Self::apply_batch`], with a note per event (same order; JSON objects) that an
    /// Icechunk commit records beside the event's key, kind, action and region: the
    /// queue's ordering fields, from which the ledger is rebuilt.
    pub fn apply_batch_noted(&self, events: &[Event], notes: &[Value]) -> Vec<Outcome> {
        self.batch(events, notes, Mode::Apply)
    }

    /// Adopts created events' files into gridded stores written before zru managed
    /// them: each key becomes the source of the slots its file's times occupy, so a
    /// later removal or revision finds them; no data is written. Same transaction and
    /// outcomes as [`Self::apply_batch`].
    pub fn adopt_batch(&self, events: &[Event]) -> Vec<Outcome> {
        self.batch(events, &[], Mode::Adopt)
    }

    fn batch(&self, events: &[Event], notes: &[Value], mode: Mode) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut groups: Vec<(&Dataset, Vec<usize>)> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            match check_key(&event.key).and_then(|_| Ok(self.catalog.route(&event.key)?)) {
                Ok(dataset) => match groups.iter_mut().find(|(d, _)| d.name() == dataset.name()) {
                    Some((_, indices)) => indices.push(i),
                    None => groups.push((dataset, vec![i])),
                },
                Err(error) => outcomes[i] = Some(rejected(event, None, error.into())),
            }
        }
        for (dataset, indices) in groups {
            let batch: Vec<&Event> = indices.iter().map(|&i| &events[i]).collect();
            let batch_notes: Vec<Option<&Value>> = indices.iter().map(|&i| notes.get(i)).collect();
            for (i, outcome) in
                indices
                    .into_iter()
                    .zip(self.apply_to_store(dataset, &batch, &batch_notes, mode))
            {
                outcomes[i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .zip(events)
            .map(|(o, e)| {
                o.unwrap_or_else(|| rejected(e, None, Rejection::transient("not applied".into())))
            })
            .collect()
    }

    /// Applies a dataset's events in one transaction on its store.
    fn apply_to_store(
        &self,
        dataset: &Dataset,
        events: &[&Event],
        notes: &[Option<&Value>],
        mode: Mode,
    ) -> Vec<Outcome> {
        let name = Some(dataset.name().to_string());
        let format = if dataset.zarr_format() == 2 {
            ZarrFormat::V2
        } else {
            ZarrFormat::V3
        };
        let backend = dataset.backend();
        // A batch that stopped between its first write and its commit is undone first
        // (an Icechunk repository needs no recovery: its uncommitted session is gone).
        let recovered = match backend {
            Backend::Zarr => ZarrStore::recover_at(&dataset.location),
            Backend::Icechunk { .. } => Ok(None),
        };
        let store = recovered
            .map(|recovered| {
                if let Some(recovered) = recovered {
                    tracing::warn!(
                        store = %dataset.location,
                        "recovered from an interrupted batch: {recovered}"
                    );
                }
            })
            .and_then(|()| ZarrStore::open_or_new_backend(&dataset.location, &backend, format));
        let store = match store {
            Ok(store) => store,
            Err(error) => {
                let reason = |e: &Event| format!("{}: {error}", e.key);
                return events
                    .iter()
                    .map(|e| rejected(e, name.clone(), Rejection::transient(reason(e))))
                    .collect();
            }
        };
        let mut tx = store.begin();
        // Provenance decides what a removal blanks: it is written after the data.
        tx.write_last(vec![dataset.provenance_variable().to_string()]);
        let mut batch = dataset.family.begin_batch();
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let result = self.apply_staged(&mut tx, dataset, event, batch.as_mut(), mode);
            if result.is_err() {
                batch.rolled_back();
            }
            let outcome = match result {
                Ok(applied) => Outcome {
                    key: event.key.clone(),
                    event: event.kind,
                    dataset: name.clone(),
                    action: applied.action,
                    region: applied.region,
                    reason: applied.note,
                    stats: Some(applied.stats),
                    permanent: false,
                },
                Err(error) => rejected(event, name.clone(), error.into()),
            };
            outcomes.push(outcome);
        }
        if let Some(note) = commit_note(dataset, &outcomes, notes) {
            tx.set_note(note);
        }
        if let Err(error) = tx.commit() {
            for outcome in outcomes.iter_mut().filter(|o| !o.is_rejected()) {
                outcome.action = Action::Rejected;
                outcome.reason = Some(format!("{}: metadata commit failed: {error}", outcome.key));
            }
        }
        outcomes
    }

    /// Stages one event behind a savepoint, then writes its chunks.
    fn apply_staged(
        &self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        event: &Event,
        batch: &mut dyn Batch,
        mode: Mode,
    ) -> Result<Applied, UpdateError> {
        let store_error = |source| UpdateError::Store {
            key: event.key.clone(),
            source: Box::new(source),
        };
        let savepoint = tx.savepoint().map_err(store_error)?;
        // No input may crash the process: a panic while staging this event becomes its
        // rejection, and the savepoint undoes whatever it staged.
        let staged = panic::catch_unwind(AssertUnwindSafe(|| {
            self.stage_event(tx, dataset, event, batch, mode)
        }));
        let result = staged.unwrap_or_else(|payload| {
            Err(UpdateError::Internal {
                key: event.key.clone(),
                message: panic_message(payload.as_ref()),
            })
        });
        match result {
            Ok(mut applied) => {
                applied.stats = tx.flush_chunks().map_err(store_error)?;
                Ok(applied)
            }
            Err(error) => {
                tx.rollback(savepoint).map_err(store_error)?;
                Err(error)
            }
        }
    }

    /// Stages one event's changes in the transaction (no chunk is written yet).
    fn stage_event(
        &self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        event: &Event,
        batch: &mut dyn Batch,
        mode: Mode,
    ) -> Result<Applied, UpdateError> {
        match event.kind {
            _ if mode == Mode::Adopt => self.adopt_staged(tx, dataset, event, batch),
            EventKind::Created => {
                let path = self.raw_root.join(&event.key);
                let before = file_stamp(&path);
                if before.is_none() {
                    return Err(UpdateError::MissingObject {
                        key: event.key.clone(),
                        path,
                    });
                }
                let result = batch.stage_created(tx, dataset, &event.key, &path);
                match result {
                    // A file removed or rewritten in place while it was read (found by
                    // the chaos test: "the file is empty", a wrong grid, no such file)
                    // is not the file's fault: its next event follows.
                    Err(error) if error.is_permanent() && file_stamp(&path) != before => {
                        Err(UpdateError::ChangedWhileRead {
                            key: event.key.clone(),
                            reason: error.to_string(),
                        })
                    }
                    other => other,
                }
            }
            // A removal needs a store to remove from (the file itself is not read).
            EventKind::Removed if tx.arrays().is_empty() => Err(UpdateError::NoStore {
                key: event.key.clone(),
                store: dataset.store_path.clone(),
            }),
            EventKind::Removed => batch.stage_removed(tx, dataset, &event.key),
        }
    }

    fn adopt_staged(
        &self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        event: &Event,
        batch: &mut dyn Batch,
    ) -> Result<Applied, UpdateError> {
        let not_adoptable = |reason: &str| UpdateError::Adopt {
            key: event.key.clone(),
            reason: reason.to_string(),
        };
        match event.kind {
            EventKind::Removed => Err(not_adoptable("only existing files can be adopted")),
            EventKind::Created => {
                let path = self.raw_root.join(&event.key);
                batch.stage_adopted(tx, dataset, &event.key, &path)
            }
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

/// What the commit of a batch records: a message and every applied event (key, kind,
/// action, region, plus its note), or `None` if no event was applied.
fn commit_note(
    dataset: &Dataset,
    outcomes: &[Outcome],
    notes: &[Option<&Value>],
) -> Option<CommitNote> {
    let mut events = Vec::new();
    for (outcome, note) in outcomes
        .iter()
        .zip(notes.iter().chain(std::iter::repeat(&None)))
    {
        if outcome.is_rejected() {
            continue;
        }
        let mut event = Map::new();
        event.insert("key".into(), json!(outcome.key));
        event.insert("kind".into(), json!(outcome.event));
        event.insert("action".into(), json!(outcome.action));
        if let Some(region) = &outcome.region {
            event.insert("region".into(), json!(region));
        }
        if let Some(Value::Object(note)) = note {
            for (k, v) in note {
                event.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        events.push(Value::Object(event));
    }
    if events.is_empty() {
        return None;
    }
    let keys: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.is_rejected())
        .map(|o| o.key.as_str())
        .collect();
    let message = match keys.as_slice() {
        [one] => format!("zru {}: {one}", dataset.name()),
        [first, ..] => format!(
            "zru {}: {} events ({first}, ...)",
            dataset.name(),
            keys.len()
        ),
        [] => format!("zru {}", dataset.name()),
    };
    let mut record = Map::new();
    record.insert("dataset".into(), json!(dataset.name()));
    record.insert("events".into(), Value::Array(events));
    Some(CommitNote { message, record })
}

/// A regular file's size and modification time (`None`: not a regular file, or gone).
fn file_stamp(path: &Path) -> Option<(u64, Option<std::time::SystemTime>)> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    Some((meta.len(), meta.modified().ok()))
}

/// The text of a caught panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Object keys are relative paths that stay inside the raw root.
pub fn check_key(key: &str) -> Result<(), UpdateError> {
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
