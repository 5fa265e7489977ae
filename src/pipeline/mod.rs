//! The ordered event pipeline: events for a dataset are applied one batch at a time,
//! in order, exactly once in effect, with nothing lost on crash, duplicate or
//! redelivery.
//!
//! - `event`: object events and their order per key (S3 sequencer, event time,
//!   arrival); [`s3_event`] parses S3 notification JSON into them.
//! - [`queue`]: the queue trait (SQS FIFO semantics); `sqlite_queue` is the
//!   embedded durable implementation.
//! - [`ledger`]: per store, the last applied event of every key.
//! - [`lock`]: the per-store lock file.
//! - `plan`, `append_order`, `flush`: draining the queue into stores;
//!   `attempts`: what a flush was applying when it stopped (suspects retried alone).
//! - [`enqueue`]: sending events to the queue, refusing keys no dataset takes.
//! - [`watch`]: enqueuing the events of a local raw directory; `catch_up`: what
//!   changed while no watcher ran.
//! - [`adopt`]: bringing files behind a store written before zru under its management.
//! - `current`: what the raw bucket holds under a key now, checked before a
//!   removal (versioned buckets).
//! - [`raw_file`]: which raw files may be read, and a local event's raw root.
//! - [`report`]: what happened to each event.
//! - [`status`]: `zru status`, per dataset what waits in the queue and what was applied.
//!
//! See `docs/pipeline.md`.

pub mod adopt;
pub(crate) mod append_order;
pub(crate) mod attempts;
pub(crate) mod catch_up;
pub(crate) mod current;
pub mod enqueue;
pub mod event;
pub(crate) mod flush;
#[cfg(feature = "icechunk")]
pub mod history;
pub mod ledger;
pub mod lock;
pub(crate) mod plan;
pub mod queue;
pub mod raw_file;
pub mod report;
pub mod s3_event;
pub(crate) mod sqlite_queue;
pub mod status;
pub mod watch;

use thiserror::Error;

pub use event::{EventOrder, ObjectEvent};
pub use flush::{FlushOptions, Flusher};
pub use queue::{Queue, QueueError, Retry};
pub use report::{Report, ReportAction, SkipReason};
pub use sqlite_queue::{QueueOptions, SqliteQueue};

/// Why a flush (not one event) failed.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A store's ledger could not be read or saved.
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    /// A store's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    /// A store's attempt record could not be read or written.
    #[error(transparent)]
    Attempts(#[from] attempts::AttemptError),
    /// A local store's batch could not be made durable (`syncfs`).
    #[error("store {store}: cannot make the batch's writes durable: {source}")]
    Sync {
        /// The store.
        store: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
