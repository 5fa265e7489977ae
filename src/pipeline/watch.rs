//! `zru watch`: enqueues the created and removed events of a local raw directory.
//!
//! A file is enqueued as created when it is complete: when the writer closes it
//! (inotify close-write: slow copies and in-place writers) or when it is renamed into
//! place (write-then-rename; the temporary name usually matches no dataset). Creation
//! and modification alone enqueue nothing, so a file still being written is never
//! enqueued. A deletion or a rename away enqueues a removal. Keys that no dataset
//! takes are ignored. Close-write events exist on Linux (inotify); elsewhere only
//! renames into place are seen as complete. At start, what changed while no watcher
//! ran is enqueued first (`super::catch_up`).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind as NotifyKind, RecursiveMode, Watcher};
use thiserror::Error;

use super::enqueue::enqueue;
use super::event::ObjectEvent;
use super::queue::{Queue, QueueError};
use super::report::Report;
use crate::update::Updater;

/// Why `zru watch` stopped.
#[derive(Debug, Error)]
pub enum WatchError {
    /// The file system watch (inotify) failed.
    #[error("watching {path}: {source}")]
    Notify {
        /// The directory watched.
        path: PathBuf,
        /// notify's error.
        #[source]
        source: notify::Error,
    },
    /// Sending to the queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Listing the raw root (the catch-up scan) failed.
    #[error("listing {path}: {source}")]
    Scan {
        /// The directory listed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A store's ledger could not be read for the catch-up scan.
    #[error(transparent)]
    Ledger(#[from] super::ledger::LedgerError),
}

/// What a file system event means for the raw bucket.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Complete(PathBuf),
    Gone(PathBuf),
}

fn changes(event: notify::Event) -> Vec<Change> {
    let paths = event.paths.into_iter();
    match event.kind {
        NotifyKind::Access(AccessKind::Close(AccessMode::Write))
        | NotifyKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            paths.map(Change::Complete).collect()
        }
        NotifyKind::Modify(ModifyKind::Name(RenameMode::From)) | NotifyKind::Remove(_) => {
            paths.map(Change::Gone).collect()
        }
        NotifyKind::Modify(ModifyKind::Name(RenameMode::Any)) => paths
            .map(|p| {
                if p.exists() {
                    Change::Complete(p)
                } else {
                    Change::Gone(p)
                }
            })
            .collect(),
        // Both ends of a rename also arrive as From and To events.
        _ => Vec::new(),
    }
}

/// The event to enqueue for a change, if its key belongs to a dataset.
fn object_event(updater: &Updater, change: Change) -> Option<ObjectEvent> {
    let (path, complete) = match change {
        Change::Complete(path) => (path, true),
        Change::Gone(path) => (path, false),
    };
    let key = updater.key_for_path(&path).ok()?;
    updater.catalog.route(&key).ok()?;
    let event = match (complete, path.is_file()) {
        (true, true) => ObjectEvent::local_created(key, &path).ok(),
        (false, false) => Some(ObjectEvent::local_removed(key)),
        _ => None,
    };
    event.map(|e| e.with_raw_root(&updater.raw_root))
}

/// Watches `updater.raw_root` until an error. Once the watch is in place, first
/// enqueues what changed while no watcher ran (`super::catch_up`), then calls
/// `on_ready`, then reports each enqueued event (those of the catch-up too).
pub fn watch(
    updater: &Updater,
    queue: &dyn Queue,
    on_ready: &mut dyn FnMut(),
    on_report: &mut dyn FnMut(&Report),
) -> Result<(), WatchError> {
    let root: &Path = &updater.raw_root;
    let notify_error = |source| WatchError::Notify {
        path: root.to_path_buf(),
        source,
    };
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(tx).map_err(notify_error)?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(notify_error)?;
    for report in super::catch_up::catch_up(updater, queue)? {
        on_report(&report);
    }
    on_ready();
    for event in rx {
        let event = event.map_err(notify_error)?;
        let events: Vec<ObjectEvent> = changes(event)
            .into_iter()
            .filter_map(|c| object_event(updater, c))
            .collect();
        if events.is_empty() {
            continue;
        }
        for report in enqueue(&updater.catalog, queue, events)? {
            on_report(&report);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RemoveKind};

    fn event(kind: NotifyKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_closed_or_renamed_files_are_complete() {
        let write = NotifyKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(changes(event(write, "/r/a.nc")).is_empty());
        assert!(changes(event(NotifyKind::Create(CreateKind::File), "/r/a.nc")).is_empty());
        let closed = NotifyKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(
            changes(event(closed, "/r/a.nc")),
            [Change::Complete("/r/a.nc".into())]
        );
        let renamed = NotifyKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(
            changes(event(renamed, "/r/b.nc")),
            [Change::Complete("/r/b.nc".into())]
        );
        let removed = NotifyKind::Remove(RemoveKind::File);
        assert_eq!(
            changes(event(removed, "/r/c.nc")),
            [Change::Gone("/r/c.nc".into())]
        );
    }
}
