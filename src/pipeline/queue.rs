//! The queue between event sources (watcher, `zru ingest`, S3 notifications) and the
//! flush, with SQS FIFO semantics: message group = dataset, deduplication id,
//! visibility timeout, receive count, dead letters after N receives.
//!
//! [`crate::pipeline::SqliteQueue`] is the embedded implementation.

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use super::event::ObjectEvent;

/// Why the queue could not be read or written.
#[derive(Debug, Error)]
pub enum QueueError {
    /// The SQLite database failed (I/O, corruption, a lock held too long).
    #[error("queue {path}: {source}")]
    Sqlite {
        /// The queue (its database path, or its URL).
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database's directory cannot be created.
    #[error("queue {path}: cannot create its directory: {source}")]
    Dir {
        /// The queue (its database path, or its URL).
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A stored message body does not parse as an event.
    #[error("queue {path}: message {id} has a body that is not an event: {reason}")]
    Body {
        /// The queue (its database path, or its URL).
        path: String,
        /// The message id.
        id: i64,
        /// The parse error.
        reason: String,
    },
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Message group: the dataset name. Messages of a group are received in order.
    pub group: String,
    /// Deduplication id: a message with an id sent within the deduplication window
    /// is dropped ([`Sent::Duplicate`]).
    pub dedup_id: String,
    /// The event the message carries.
    pub event: ObjectEvent,
}

/// What happened to a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Enqueued with this message id.
    Enqueued(i64),
    /// The same deduplication id was sent within the deduplication window: dropped.
    Duplicate,
}

/// Proof of one receive; acknowledging or failing needs the latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The message id.
    pub id: i64,
    /// Which receive of the message this is: a later receive makes earlier receipts
    /// stale.
    pub token: i64,
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Message {
    /// The message id: later sends have larger ids.
    pub id: i64,
    /// The message group (dataset).
    pub group: String,
    /// The receipt to acknowledge or fail this receive with.
    pub receipt: Receipt,
    /// How many times it was received, this receive included.
    pub receive_count: u32,
    /// The event the message carries.
    pub event: ObjectEvent,
}

/// What a failed receive led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Visible again for another receive.
    Retry,
    /// Received the maximum number of times: moved to the dead letters.
    DeadLettered,
    /// The receipt is stale (the message was received again elsewhere): nothing done.
    Stale,
}

/// When a failed message may be received again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A transient failure: visible again after this delay (exponential backoff), or
    /// dead-lettered if it was its last allowed receive.
    After(Duration),
    /// A permanent failure (a retry cannot succeed): to the dead letters at once.
    Never,
}

impl Retry {
    /// Backoff of a transient failure on the `receive_count`-th receive: 1 s, 2 s, 4 s,
    /// ... doubling up to 15 minutes.
    pub fn backoff(receive_count: u32) -> Self {
        let exponent = receive_count.saturating_sub(1).min(10);
        Self::After(Duration::from_secs(1 << exponent).min(Duration::from_secs(900)))
    }
}

/// Counts per message group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupStats {
    /// The message group (dataset).
    pub group: String,
    /// Waiting to be received.
    pub ready: u64,
    /// Received, neither acknowledged nor visible again yet.
    pub in_flight: u64,
    /// In the dead letters.
    pub dead: u64,
}

/// A message in the dead letters, with the error of its last receive.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The message id (for `zru queue replay ID`).
    pub id: i64,
    /// The message group (dataset).
    pub group: String,
    /// How many times it was received.
    pub receive_count: u32,
    /// The reason of its last failed receive.
    pub last_error: Option<String>,
    /// The event the message carries.
    pub event: ObjectEvent,
}

/// An SQS FIFO-like queue.
pub trait Queue {
    /// Sends messages, in order, in one transaction.
    fn send(&self, messages: &[NewMessage]) -> Result<Vec<Sent>, QueueError>;
    /// Up to `max` messages of `group`, in order, invisible to others for `visibility`.
    /// Nothing while an earlier message of the group is in flight.
    fn receive(
        &self,
        group: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError>;
    /// Makes the group's in-flight messages visible again. Only for the holder of the
    /// group's store lock: their consumer, which held that lock, is gone.
    fn recover(&self, group: &str) -> Result<u64, QueueError>;
    /// Deletes received messages; returns how many receipts were current.
    fn ack(&self, receipts: &[Receipt]) -> Result<u64, QueueError>;
    /// Records a failed receive: visible again after the retry's delay, or
    /// dead-lettered (a permanent failure, or after N receives).
    fn fail(&self, receipt: Receipt, error: &str, retry: Retry) -> Result<Failed, QueueError>;
    /// Groups that have messages not dead-lettered.
    fn groups(&self) -> Result<Vec<String>, QueueError>;
    /// Ready, in-flight and dead-lettered counts of every group.
    fn stats(&self) -> Result<Vec<GroupStats>, QueueError>;
    /// Every dead letter, in id (send) order.
    fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError>;
    /// Moves dead letters (these ids, or all when empty) back to their groups.
    fn replay(&self, ids: &[i64]) -> Result<u64, QueueError>;
}
