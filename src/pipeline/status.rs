//! `zru status`: the freshness figures of local mode, per dataset — what is waiting in
//! the embedded queue (pending, in flight, dead letters, the oldest pending message's
//! age, as SQS's `ApproximateAgeOfOldestMessage`) and what the store last applied
//! (the ledger's last write, the newest applied event's time). The same figures as
//! `zru doctor` and the updater's metrics give on AWS.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::ledger::{Ledger, LedgerError};
use super::queue::{GroupStats, Queue, QueueError};
use super::sqlite_queue::SqliteQueue;
use crate::config::Catalog;

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The queue could not be read.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A store's ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// One dataset's (or one queue group's) figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DatasetStatus {
    /// The dataset (the queue's message group).
    pub dataset: String,
    /// False for a queue group no configured dataset has (left from an old config).
    pub configured: bool,
    /// Messages waiting to be received.
    pub pending: u64,
    /// Messages received and neither acknowledged nor visible again.
    pub in_flight: u64,
    /// Messages in the dead letters (`zru queue replay`).
    pub dead_letters: u64,
    /// Age in seconds of the oldest message not yet acknowledged (pending or in flight).
    pub oldest_pending_seconds: Option<f64>,
    /// Keys the store's ledger holds.
    pub applied_keys: usize,
    /// When the store last committed a batch (the ledger's modification time, UTC,
    /// RFC 3339; local stores only).
    pub last_applied: Option<String>,
    /// The event time of the newest event the store applied (UTC, RFC 3339).
    pub newest_event: Option<String>,
}

fn rfc3339_us(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The figures of every configured dataset, then of queue groups no dataset has, in
/// name order; ages against `now_us` (microseconds since the epoch).
pub fn status(
    catalog: &Catalog,
    queue: &SqliteQueue,
    now_us: i64,
) -> Result<Vec<DatasetStatus>, StatusError> {
    let stats: BTreeMap<String, GroupStats> = queue
        .stats()?
        .into_iter()
        .map(|g| (g.group.clone(), g))
        .collect();
    let oldest = queue.oldest_pending()?;
    let mut out: BTreeMap<String, DatasetStatus> = BTreeMap::new();
    for dataset in &catalog.datasets {
        let ledger = Ledger::load_for(dataset)?;
        let newest = ledger
            .entries()
            .values()
            .map(|e| e.order.event_time_us)
            .max();
        let modified = std::fs::metadata(ledger.path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_micros()).ok());
        out.insert(
            dataset.name().to_string(),
            DatasetStatus {
                dataset: dataset.name().to_string(),
                configured: true,
                applied_keys: ledger.entries().len(),
                last_applied: modified.and_then(rfc3339_us),
                newest_event: newest.and_then(rfc3339_us),
                ..DatasetStatus::default()
            },
        );
    }
    for (group, stats) in stats {
        let entry = out.entry(group.clone()).or_insert_with(|| DatasetStatus {
            dataset: group.clone(),
            ..DatasetStatus::default()
        });
        entry.pending = stats.ready;
        entry.in_flight = stats.in_flight;
        entry.dead_letters = stats.dead;
        entry.oldest_pending_seconds = oldest
            .get(&group)
            .map(|sent| now_us.saturating_sub(*sent).max(0) as f64 / 1e6);
    }
    Ok(out.into_values().collect())
}

impl DatasetStatus {
    /// The header of [`Self::line`].
    pub const HEADER: &'static str =
        "dataset\tpending\tin_flight\tdead\toldest_pending_s\tapplied_keys\tlast_applied\tnewest_event";

    /// One tab-separated line (`-` for what is unknown); a group no dataset has is
    /// marked `(not configured)`.
    pub fn line(&self) -> String {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        format!(
            "{}{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            crate::text::printable(&self.dataset),
            if self.configured {
                ""
            } else {
                " (not configured)"
            },
            self.pending,
            self.in_flight,
            self.dead_letters,
            or_dash(self.oldest_pending_seconds.map(|s| format!("{s:.1}"))),
            self.applied_keys,
            or_dash(self.last_applied.clone()),
            or_dash(self.newest_event.clone()),
        )
    }
}
