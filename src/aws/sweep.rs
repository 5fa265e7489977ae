//! The reconciliation sweep: the S3 counterpart of `zru watch`'s catch-up.
//!
//! S3 notifications can be lost (the watcher throttled or failing past Lambda's two
//! retries of an asynchronous invocation, a notification configuration changed). The
//! sweep lists the raw bucket (ListObjectsV2, paginated), loads the ledgers of every
//! dataset's store, and enqueues what the ledgers do not have, with the comparison of
//! the local catch-up (`missed_events` in `src/pipeline/catch_up.rs`):
//!
//! - an object a dataset takes whose ledger has no applied creation with the object's
//!   ETag (new, or revised since): a creation, stamped with the object's
//!   `LastModified` (so it orders after the applied event it replaces);
//! - a key whose last applied event is a creation but which the listing does not
//!   have (deleted): a removal, stamped one microsecond after the applied event
//!   (the updater checks removals with a HEAD before blanking anything).
//!
//! The events are sent as the watcher sends them (same body, group = dataset), so the
//! updater applies them unchanged. Their deduplication ids derive from the event
//! (bucket, key, kind, `LastModified` and ETag; a removal from the applied event it
//! follows): a second sweep within SQS's 5-minute window is dropped by the queue,
//! and a sweep after the events were applied finds nothing to send.
//!
//! The Lambda entry is the watcher binary invoked with `{"zru": "sweep"}` (a
//! scheduled rule of its own in `deploy/template.yaml`); `zru aws sweep` runs the
//! same function from a shell.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::sdk::{describe, Clients};
use super::sqs::{self, SqsError};
use super::watch::{messages_for_events, WatchError};
use crate::config::Catalog;
use crate::pipeline::catch_up::{applied_entries, missed_events};
use crate::pipeline::event::ObjectEvent;
use crate::pipeline::ledger::{LedgerEntry, LedgerError};
use crate::pipeline::report::Report;
use crate::update::EventKind;

/// Why a sweep failed.
#[derive(Debug, Error)]
pub enum SweepError {
    /// Listing the raw bucket failed.
    #[error("s3://{bucket}/{prefix}: listing the raw bucket: {reason}")]
    List {
        /// The raw bucket.
        bucket: String,
        /// The prefix listed (empty: the whole bucket).
        prefix: String,
        /// What the SDK reported.
        reason: String,
    },
    /// A store's ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The events could not be made into messages.
    #[error(transparent)]
    Messages(#[from] WatchError),
    /// Sending to the queue failed.
    #[error(transparent)]
    Sqs(#[from] SqsError),
    /// No raw bucket was named.
    #[error("no raw bucket to sweep: set ZRU_RAW_BUCKET or name it in the request")]
    NoBucket,
    /// The ledger-reading thread panicked or was cancelled.
    #[error("reading the ledgers failed: {0}")]
    Join(String),
}

/// What to sweep: the payload of a sweep invocation (`{"zru": "sweep"}`, with an
/// optional `bucket` and `prefix`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepRequest {
    /// The raw bucket (default: `ZRU_RAW_BUCKET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Only keys under this prefix (default: the whole bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// List and compare only: send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl SweepRequest {
    /// The request in a watcher invocation's payload: `{"zru": "sweep", ...}`, or
    /// `None` for anything else (an S3 notification).
    pub fn from_payload(payload: &serde_json::Value) -> Option<Self> {
        if payload.get("zru").and_then(|v| v.as_str()) != Some("sweep") {
            return None;
        }
        Some(serde_json::from_value(payload.clone()).unwrap_or_default())
    }
}

/// What a sweep found and did.
#[derive(Debug, Default, Serialize)]
pub struct SweepSummary {
    /// The bucket swept.
    pub bucket: String,
    /// Objects listed (all keys, whether a dataset takes them or not).
    pub listed: usize,
    /// Objects a dataset takes.
    pub routed: usize,
    /// Keys in the ledgers.
    pub applied: usize,
    /// Creations found missing (new or revised objects).
    pub created: usize,
    /// Removals found missing (keys whose object is gone).
    pub removed: usize,
    /// Messages sent (0 for a dry run).
    pub sent: usize,
    /// One report per event found (`enqueued`, or `rejected` with the reason).
    pub events: Vec<Report>,
}

/// The created event of a listed object: its ETag without quotes (as notifications
/// carry it), its size, and its `LastModified` as the event time.
pub(crate) fn listed_event(
    bucket: &str,
    key: &str,
    etag: Option<&str>,
    size: Option<i64>,
    last_modified_us: i64,
) -> ObjectEvent {
    ObjectEvent {
        bucket: bucket.to_string(),
        key: key.to_string(),
        kind: EventKind::Created,
        sequencer: None,
        etag: etag.map(|e| e.trim_matches('"').to_string()),
        size: size.and_then(|s| u64::try_from(s).ok()),
        version_id: None,
        event_time_us: last_modified_us,
        raw_root: None,
    }
}

/// The events the ledgers miss, given the bucket's listing: creations (in key order),
/// then removals, each made an event of `bucket`. Objects no dataset takes are left
/// out.
pub fn missed(
    catalog: &Catalog,
    bucket: &str,
    listing: Vec<ObjectEvent>,
    applied: &BTreeMap<String, LedgerEntry>,
) -> Vec<ObjectEvent> {
    let routed: Vec<ObjectEvent> = listing
        .into_iter()
        .filter(|e| catalog.route(&e.key).is_ok())
        .collect();
    missed_events(routed, applied, &HashSet::new())
        .into_iter()
        .map(|mut event| {
            let after_applied = applied
                .get(&event.key)
                .map(|e| e.order.event_time_us.saturating_add(1));
            if event.kind == EventKind::Removed {
                event.bucket = bucket.to_string();
                // Deterministic (the same removal on every sweep: one deduplication
                // id) and later than the creation it undoes.
                event.event_time_us = after_applied.unwrap_or(event.event_time_us);
            } else if let Some(after) = after_applied {
                // The listing is the bucket as it is now, so its object is newer than
                // the one the ledger applied. `LastModified` alone cannot say so: S3
                // lists it to the second while notifications carry milliseconds, and a
                // revision within a second of the applied upload would look older and
                // be skipped as stale.
                event.event_time_us = event.event_time_us.max(after);
            }
            event
        })
        .collect()
}

/// Every object of `s3://bucket/prefix` as a created event (ListObjectsV2, 1000 keys a
/// page, every page).
pub async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<Vec<ObjectEvent>, SweepError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .set_prefix(prefix.map(String::from))
        .into_paginator()
        .send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| SweepError::List {
            bucket: bucket.to_string(),
            prefix: prefix.unwrap_or_default().to_string(),
            reason: describe(&e),
        })?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let modified = object.last_modified().map_or(0, |t| {
                t.secs() * 1_000_000 + i64::from(t.subsec_nanos() / 1_000)
            });
            events.push(listed_event(
                bucket,
                key,
                object.e_tag(),
                object.size(),
                modified,
            ));
        }
    }
    Ok(events)
}

/// Lists the bucket, compares it with the ledgers and (unless a dry run) sends what is
/// missing to the queue as the watcher would.
pub async fn sweep(
    catalog: &Catalog,
    clients: &Clients,
    queue_url: &str,
    default_bucket: Option<&str>,
    request: &SweepRequest,
) -> Result<SweepSummary, SweepError> {
    let bucket = request
        .bucket
        .as_deref()
        .or(default_bucket)
        .ok_or(SweepError::NoBucket)?;
    // The ledgers first, then the listing: a key applied in between is at worst sent
    // again (applied as a duplicate), never missed.
    let owned = catalog.clone();
    let applied = tokio::task::spawn_blocking(move || applied_entries(&owned))
        .await
        .map_err(|e| SweepError::Join(e.to_string()))??;
    let listing = list(&clients.s3, bucket, request.prefix.as_deref()).await?;
    let mut summary = SweepSummary {
        bucket: bucket.to_string(),
        listed: listing.len(),
        routed: listing
            .iter()
            .filter(|e| catalog.route(&e.key).is_ok())
            .count(),
        applied: applied.len(),
        ..SweepSummary::default()
    };
    let events = missed(catalog, bucket, listing, &applied);
    summary.created = events
        .iter()
        .filter(|e| e.kind == EventKind::Created)
        .count();
    summary.removed = events.len() - summary.created;
    let (outgoing, reports) = messages_for_events(catalog, events)?;
    if !request.dry_run {
        summary.sent = sqs::send(&clients.sqs, queue_url, &outgoing).await?;
    }
    summary.events = reports;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::event::EventOrder;

    fn catalog(dir: &std::path::Path) -> Catalog {
        std::fs::write(
            dir.join("sst.json"),
            r#"{"name": "sst", "handler": "gridded", "key_patterns": ["^sst/"],
                "store": "s3://stores/sst.zarr", "append_dim": "time"}"#,
        )
        .unwrap();
        Catalog::load_dir(dir).unwrap()
    }

    fn applied(kind: EventKind, etag: Option<&str>, sequencer: &str, time: i64) -> LedgerEntry {
        LedgerEntry {
            kind,
            order: EventOrder {
                sequencer: Some(sequencer.into()),
                event_time_us: time,
                arrival: 1,
            },
            etag: etag.map(String::from),
            version_id: None,
            action: "appended".into(),
            region: None,
        }
    }

    #[test]
    fn sweep_requests_are_told_from_notifications() {
        let plain = serde_json::json!({"zru": "sweep"});
        assert_eq!(
            SweepRequest::from_payload(&plain),
            Some(SweepRequest::default())
        );
        let named = serde_json::json!({"zru": "sweep", "bucket": "raw", "prefix": "sst/"});
        let request = SweepRequest::from_payload(&named).unwrap();
        assert_eq!(request.bucket.as_deref(), Some("raw"));
        assert_eq!(request.prefix.as_deref(), Some("sst/"));
        assert_eq!(
            SweepRequest::from_payload(&serde_json::json!({"Records": []})),
            None
        );
    }

    #[test]
    fn missed_creations_and_removals_are_found_and_applied_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path());
        let listing = vec![
            listed_event("raw", "sst/same.nc", Some("\"e1\""), Some(10), 1_000),
            listed_event("raw", "sst/new.nc", Some("\"e2\""), Some(20), 2_000),
            listed_event("raw", "sst/revised.nc", Some("\"e4\""), Some(30), 9_000),
            // Listed to the second: earlier than the applied upload's notification.
            listed_event("raw", "sst/quick.nc", Some("\"e8\""), Some(30), 7_000_000),
            listed_event("raw", "other/x.nc", Some("\"e5\""), Some(1), 1),
        ];
        let ledger = BTreeMap::from([
            (
                "sst/same.nc".to_string(),
                applied(EventKind::Created, Some("e1"), "01", 900),
            ),
            (
                "sst/revised.nc".into(),
                applied(EventKind::Created, Some("e3"), "01", 900),
            ),
            (
                "sst/quick.nc".into(),
                applied(EventKind::Created, Some("e7"), "02", 7_400_000),
            ),
            (
                "sst/gone.nc".into(),
                applied(EventKind::Created, Some("e6"), "0A", 5_000),
            ),
            (
                "sst/removed.nc".into(),
                applied(EventKind::Removed, None, "0B", 6_000),
            ),
        ]);
        let events = missed(&catalog, "raw", listing, &ledger);
        let found: Vec<(&str, EventKind, i64)> = events
            .iter()
            .map(|e| (e.key.as_str(), e.kind, e.event_time_us))
            .collect();
        assert_eq!(
            found,
            [
                ("sst/new.nc", EventKind::Created, 2_000),
                ("sst/quick.nc", EventKind::Created, 7_400_001),
                ("sst/revised.nc", EventKind::Created, 9_000),
                ("sst/gone.nc", EventKind::Removed, 5_001),
            ]
        );
        assert!(events.iter().all(|e| e.bucket == "raw"));
        assert_eq!(events[2].etag.as_deref(), Some("e4"));
        // Later than what the ledger holds: the updater will not find them stale.
        for event in &events {
            if let Some(entry) = ledger.get(&event.key) {
                assert_eq!(
                    event.order(2).compare(&entry.order),
                    std::cmp::Ordering::Greater
                );
            }
        }
    }

    #[test]
    fn a_second_sweep_sends_the_same_deduplication_ids_and_nothing_once_applied() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path());
        let listing = || {
            vec![listed_event(
                "raw",
                "sst/new.nc",
                Some("\"e2\""),
                Some(20),
                2_000,
            )]
        };
        let ledger = BTreeMap::from([(
            "sst/gone.nc".to_string(),
            applied(EventKind::Created, Some("e6"), "0A", 5_000),
        )]);
        let first = messages_for_events(&catalog, missed(&catalog, "raw", listing(), &ledger))
            .unwrap()
            .0;
        let second = messages_for_events(&catalog, missed(&catalog, "raw", listing(), &ledger))
            .unwrap()
            .0;
        assert_eq!(first.len(), 2);
        let group = super::super::fifo::store_group(catalog.dataset("sst").unwrap());
        assert!(first.iter().all(|m| m.group == group));
        let ids =
            |m: &[super::sqs::Outgoing]| m.iter().map(|o| o.dedup_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&first), ids(&second));
        // Once applied, the ledger has both: nothing is missed any more.
        let after = BTreeMap::from([
            (
                "sst/new.nc".to_string(),
                applied(EventKind::Created, Some("e2"), "0C", 2_000),
            ),
            (
                "sst/gone.nc".to_string(),
                applied(EventKind::Removed, None, "0D", 5_001),
            ),
        ]);
        assert!(missed(&catalog, "raw", listing(), &after).is_empty());
    }
}
