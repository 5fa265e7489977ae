//! Catching up when `zru watch` starts: files that arrived, changed or left while no
//! watcher ran have no file system event, so they are found by comparing the raw
//! directory with the stores' ledgers.
//!
//! A file whose key a dataset takes is enqueued as created unless its store's ledger
//! already holds an applied creation with the same etag (size and modification time),
//! or the dead letters hold that very event (it waits for `zru queue replay`). A key
//! whose last applied event is a creation but whose file is gone is enqueued as
//! removed. Enqueuing again what is already queued is harmless: the flush coalesces a
//! key's events and the ledger skips what was applied.
//!
//! [`missed_events`] and [`applied_entries`] are also the comparison of the S3
//! reconciliation sweep (`crate::aws::sweep`), with a bucket listing for the files.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::enqueue::enqueue;
use super::event::ObjectEvent;
use super::ledger::{Ledger, LedgerEntry, LedgerError};
use super::queue::Queue;
use super::report::Report;
use super::watch::WatchError;
use crate::config::Catalog;
use crate::update::{EventKind, Updater};

/// The events missed while no watcher ran, in key order: creations first, then
/// removals. `files` are created events of the raw directory's files; `applied` the
/// ledgers' entries; `dead` the (key, etag) of dead-lettered events.
pub fn missed_events(
    files: Vec<ObjectEvent>,
    applied: &BTreeMap<String, LedgerEntry>,
    dead: &HashSet<(String, Option<String>)>,
) -> Vec<ObjectEvent> {
    let present: HashSet<String> = files.iter().map(|e| e.key.clone()).collect();
    let mut events: Vec<ObjectEvent> = files
        .into_iter()
        .filter(|file| {
            let already = applied
                .get(&file.key)
                .is_some_and(|entry| entry.kind == EventKind::Created && entry.etag == file.etag);
            !already && !dead.contains(&(file.key.clone(), file.etag.clone()))
        })
        .collect();
    events.sort_by(|a, b| a.key.cmp(&b.key));
    events.extend(
        applied
            .iter()
            .filter(|(key, entry)| entry.kind == EventKind::Created && !present.contains(*key))
            .filter(|(key, _)| !dead.contains(&((*key).clone(), None)))
            .map(|(key, _)| ObjectEvent::local_removed(key.clone())),
    );
    events
}

/// Enqueues the events missed while no watcher ran; one report per event.
pub fn catch_up(updater: &Updater, queue: &dyn Queue) -> Result<Vec<Report>, WatchError> {
    let mut files = Vec::new();
    for path in files_under(&updater.raw_root)? {
        let Ok(key) = updater.key_for_path(&path) else {
            continue;
        };
        if updater.catalog.route(&key).is_err() {
            continue;
        }
        // A file gone between listing and reading is seen by the watch itself.
        if let Ok(event) = ObjectEvent::local_created(key, &path) {
            files.push(event);
        }
    }
    let applied = applied_entries(&updater.catalog)?;
    let dead = queue
        .dead_letters()?
        .into_iter()
        .map(|letter| (letter.event.key, letter.event.etag))
        .collect();
    let events: Vec<ObjectEvent> = missed_events(files, &applied, &dead)
        .into_iter()
        .map(|e| e.with_raw_root(&updater.raw_root))
        .collect();
    if events.is_empty() {
        return Ok(Vec::new());
    }
    Ok(enqueue(&updater.catalog, queue, events)?)
}

/// The last applied event of every key, from the ledgers of the catalog's stores
/// (local or on S3): each key from the ledger of the dataset that takes it now.
pub(crate) fn applied_entries(
    catalog: &Catalog,
) -> Result<BTreeMap<String, LedgerEntry>, LedgerError> {
    let mut applied = BTreeMap::new();
    for dataset in &catalog.datasets {
        let ledger = Ledger::load_for(dataset)?;
        applied.extend(
            ledger
                .entries()
                .iter()
                .filter(|(key, _)| catalog.route(key).is_ok_and(|d| d.name() == dataset.name()))
                .map(|(key, entry)| (key.clone(), entry.clone())),
        );
    }
    Ok(applied)
}

/// Every regular file under `root`, recursively (symbolic links are not followed).
fn files_under(root: &Path) -> Result<Vec<PathBuf>, WatchError> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| WatchError::Scan {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(entry.path()),
                Ok(kind) if kind.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::event::EventOrder;

    fn file(key: &str, etag: &str) -> ObjectEvent {
        ObjectEvent {
            etag: Some(etag.into()),
            kind: EventKind::Created,
            ..ObjectEvent::local_removed(key.into())
        }
    }

    fn entry(kind: EventKind, etag: Option<&str>) -> LedgerEntry {
        LedgerEntry {
            kind,
            order: EventOrder {
                sequencer: None,
                event_time_us: 1,
                arrival: 1,
            },
            etag: etag.map(String::from),
            version_id: None,
            action: "appended".into(),
            region: None,
        }
    }

    fn keys_and_kinds(events: &[ObjectEvent]) -> Vec<(&str, EventKind)> {
        events.iter().map(|e| (e.key.as_str(), e.kind)).collect()
    }

    #[test]
    fn new_changed_and_gone_files_are_found_applied_ones_are_not() {
        let files = vec![
            file("sst/b.nc", "2"),
            file("sst/a.nc", "1"),
            file("sst/changed.nc", "new"),
            file("sst/removed-then-back.nc", "3"),
        ];
        let applied = BTreeMap::from([
            ("sst/a.nc".to_string(), entry(EventKind::Created, Some("1"))),
            (
                "sst/changed.nc".into(),
                entry(EventKind::Created, Some("old")),
            ),
            ("sst/gone.nc".into(), entry(EventKind::Created, Some("9"))),
            ("sst/removed.nc".into(), entry(EventKind::Removed, None)),
            (
                "sst/removed-then-back.nc".into(),
                entry(EventKind::Removed, None),
            ),
        ]);
        let events = missed_events(files, &applied, &HashSet::new());
        assert_eq!(
            keys_and_kinds(&events),
            [
                ("sst/b.nc", EventKind::Created),
                ("sst/changed.nc", EventKind::Created),
                ("sst/removed-then-back.nc", EventKind::Created),
                ("sst/gone.nc", EventKind::Removed),
            ]
        );
        assert_eq!(events[1].etag.as_deref(), Some("new"));
    }

    #[test]
    fn dead_lettered_events_wait_for_replay() {
        let files = vec![file("sst/bad.nc", "7"), file("sst/fixed.nc", "8")];
        let applied =
            BTreeMap::from([("sst/gone.nc".to_string(), entry(EventKind::Created, None))]);
        let dead = HashSet::from([
            ("sst/bad.nc".to_string(), Some("7".to_string())),
            ("sst/fixed.nc".to_string(), Some("6".to_string())),
            ("sst/gone.nc".to_string(), None),
        ]);
        let events = missed_events(files, &applied, &dead);
        // bad.nc is the dead-lettered file itself; fixed.nc changed since.
        assert_eq!(
            keys_and_kinds(&events),
            [("sst/fixed.nc", EventKind::Created)]
        );
    }
}
