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

#[derive(Debug, Error)]
pub enum UpdateError {
    #[error("{key}: bad object key: {reason}")]
    BadKey { key: String, reason: String },
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("{key}: object not found at {path}")]
    MissingObject { key: String, path: PathBuf },
    /// Reading the file failed while a writer replaced, rewrote or removed it: its next
    /// event follows, so this is retried like a missing object, not dead-lettered.
    #[error("{key}: the object changed while it was read (retried): {reason}")]
    ChangedWhileRead { key: String, reason: String },
    #[error("{path} is not under the raw root {raw_root}")]
    OutsideRawRoot { path: PathBuf, raw_root: PathBuf },
    #[error("{key}: {source}")]
    Source {
        key: String,
        #[source]
        source: Box<SourceError>,
    },
    #[error("{key}: {source}")]
    Store {
        key: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("{key}: no coordinate variable for the append dimension {dim}")]
    MissingAppendDim { key: String, dim: String },
    #[error("{key}: time variable {variable}: {source}")]
    TimeUnits {
        key: String,
        variable: String,
        #[source]
        source: TimeUnitsError,
    },
    #[error("{key}: {variable} has no units attribute; cannot place it in time")]
    NoTimeUnits { key: String, variable: String },
    #[error("{key}: cannot place the file on the store's time axis: {source}")]
    Placement {
        key: String,
        #[source]
        source: PlacementError,
    },
    #[error("{key}: cannot place the file's profiles: {source}")]
    Profiles {
        key: String,
        #[source]
        source: ProfileError,
    },
    #[error("{key}: identity index of {store}: {reason}")]
    Index {
        key: String,
        store: PathBuf,
        reason: String,
    },
    #[error("{key}: wrong grid: {reason}")]
    WrongGrid { key: String, reason: String },
    #[error("{key}: cannot adopt: {reason}")]
    Adopt { key: String, reason: String },
    #[error("{key}: variable {variable}: {reason}")]
    Schema {
        key: String,
        variable: String,
        reason: String,
    },
    #[error("{key}: variable {variable}: {source}")]
    Values {
        key: String,
        variable: String,
        #[source]
        source: ValuesError,
    },
    #[error("{key}: the store {store} does not exist; nothing to remove")]
    NoStore { key: String, store: PathBuf },
    /// A bug in zru met by this event (a panic, caught): the event is rejected and its
    /// changes rolled back; the rest of the batch goes on.
    #[error("{key}: internal error: {message} (please report it with the file)")]
    Internal { key: String, message: String },
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
