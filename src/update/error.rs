//! Why an event was rejected. Every message names the object key.

use std::path::PathBuf;

use thiserror::Error;
use zru_handlers::cf_time::TimeUnitsError;
use zru_handlers::gridded::PlacementError;
use zru_handlers::profiles::ProfileError;

use crate::config::RouteError;
use crate::source::SourceError;
use crate::store::StoreError;
use crate::values::ValuesError;

/// Why an event was rejected: the [`Outcome`](super::Outcome)'s reason.
///
/// [`UpdateError::is_permanent`] says whether the event is retried or dead-lettered.
/// `key` is always the event's object key (relative to the raw root).
#[derive(Debug, Error)]
pub enum UpdateError {
    /// The object key is not a relative path that stays inside the raw root (empty,
    /// absolute, `..`; see [`check_key`](super::check_key)).
    #[error("{key}: bad object key: {reason}")]
    BadKey {
        /// The object key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No dataset, or more than one, claims the key.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A created (or adopted) object is not a regular file under the raw root (not
    /// there yet, or gone): transient, its next event may follow.
    #[error("{key}: object not found at {path}")]
    MissingObject {
        /// The object key.
        key: String,
        /// Where the file was looked for.
        path: PathBuf,
    },
    /// Reading the file failed while a writer replaced, rewrote or removed it: its next
    /// event follows, so this is retried like a missing object, not dead-lettered.
    #[error("{key}: the object changed while it was read (retried): {reason}")]
    ChangedWhileRead {
        /// The object key.
        key: String,
        /// The error the read met.
        reason: String,
    },
    /// A file path given for an event ([`Updater::key_for_path`](super::Updater::key_for_path))
    /// is not under the raw root, so it has no object key.
    #[error("{path} is not under the raw root {raw_root}")]
    OutsideRawRoot {
        /// The file path as given.
        path: PathBuf,
        /// The updater's raw root.
        raw_root: PathBuf,
    },
    /// The NetCDF file cannot be opened or read (damaged, truncated, not NetCDF).
    #[error("{key}: {source}")]
    Source {
        /// The object key.
        key: String,
        /// The reader's error.
        #[source]
        source: Box<SourceError>,
    },
    /// A read or write of the store failed (I/O, S3): transient, retried.
    #[error("{key}: {source}")]
    Store {
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
    },
    /// The file has no one-dimensional coordinate variable named like the dataset's
    /// `append_dim` (gridded family).
    #[error("{key}: no coordinate variable for the append dimension {dim}")]
    MissingAppendDim {
        /// The object key.
        key: String,
        /// The dataset's append dimension.
        dim: String,
    },
    /// The time variable's `units` or `calendar` (the file's, or the store's: then the
    /// variable's name says `(in the store)`) cannot be parsed.
    #[error("{key}: time variable {variable}: {source}")]
    TimeUnits {
        /// The object key.
        key: String,
        /// The time variable.
        variable: String,
        /// What is wrong with its units or calendar.
        #[source]
        source: TimeUnitsError,
    },
    /// The time variable (the file's, or the store's) has no `units` attribute, so the
    /// file's times cannot be compared with the store's.
    #[error("{key}: {variable} has no units attribute; cannot place it in time")]
    NoTimeUnits {
        /// The object key.
        key: String,
        /// The time variable.
        variable: String,
    },
    /// The file's times do not fit the store's time axis (gridded family).
    #[error("{key}: cannot place the file on the store's time axis: {source}")]
    Placement {
        /// The object key.
        key: String,
        /// Why they do not fit.
        #[source]
        source: PlacementError,
    },
    /// The file's profiles cannot be placed on the store's rows (profiles family; a
    /// profile twice in the file, for one).
    #[error("{key}: cannot place the file's profiles: {source}")]
    Profiles {
        /// The object key.
        key: String,
        /// Why they cannot be placed.
        #[source]
        source: ProfileError,
    },
    /// The store's identity index (profiles family) cannot be read, parsed or written:
    /// transient, retried.
    #[error("{key}: identity index of {store}: {reason}")]
    Index {
        /// The object key.
        key: String,
        /// The store whose index it is.
        store: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The file's grid (dimensions, their lengths or coordinates off the append
    /// dimension) differs from the store's.
    #[error("{key}: wrong grid: {reason}")]
    WrongGrid {
        /// The object key.
        key: String,
        /// How it differs.
        reason: String,
    },
    /// `zru adopt` cannot adopt the file: a removal, a family without adoption, times
    /// not all in the store, or slots another key holds.
    #[error("{key}: cannot adopt: {reason}")]
    Adopt {
        /// The object key.
        key: String,
        /// Why not.
        reason: String,
    },
    /// A file variable does not fit the store's array of that name (dimensions, type,
    /// a time calendar other than the store's), or is named like the dataset's
    /// provenance variable.
    #[error("{key}: variable {variable}: {reason}")]
    Schema {
        /// The object key.
        key: String,
        /// The variable.
        variable: String,
        /// How it does not fit.
        reason: String,
    },
    /// A variable's values cannot be converted to the store array's type or packing.
    #[error("{key}: variable {variable}: {source}")]
    Values {
        /// The object key.
        key: String,
        /// The variable.
        variable: String,
        /// The conversion's error.
        #[source]
        source: ValuesError,
    },
    /// A removal (or adoption) for a dataset whose store does not exist yet.
    #[error("{key}: the store {store} does not exist; nothing to remove")]
    NoStore {
        /// The object key.
        key: String,
        /// The dataset's store.
        store: PathBuf,
    },
    /// A bug in zru met by this event (a panic, caught): the event is rejected and its
    /// changes rolled back; the rest of the batch goes on.
    #[error("{key}: internal error: {message} (please report it with the file)")]
    Internal {
        /// The object key.
        key: String,
        /// The panic's message.
        message: String,
    },
}

impl UpdateError {
    /// True when retrying cannot succeed: the file, its key, the store's schema or zru
    /// itself is at fault, so the event goes to the dead letters at once. Store and
    /// index I/O, an object not (yet) readable and one that changed while it was read
    /// are transient: retried with backoff.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            UpdateError::Store { .. }
                | UpdateError::Index { .. }
                | UpdateError::MissingObject { .. }
                | UpdateError::ChangedWhileRead { .. }
        )
    }
}
