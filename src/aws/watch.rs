//! The watcher function's work: an S3 notification in, messages on the FIFO queue out.
//!
//! Each record's key is decoded and routed ([`crate::pipeline::s3_event`],
//! [`crate::pipeline::enqueue`]); keys no dataset takes are logged and skipped. The
//! rest are sent with `SendMessageBatch`, group id = the dataset's store
//! (`fifo::store_group`), deduplication id from
//! bucket, key and sequencer (or event time and etag). A failed send is an error, so
//! the invocation fails and S3 delivers the notification again.

use thiserror::Error;

use super::fifo::store_group;
use super::sqs::{self, Outgoing, SqsError};
use super::sqs_queue::{Body, SqsBatch};
use crate::config::Catalog;
use crate::pipeline::enqueue::enqueue;
use crate::pipeline::event::{now_us, ObjectEvent};
use crate::pipeline::queue::QueueError;
use crate::pipeline::report::{Report, ReportAction};
use crate::pipeline::s3_event::{parse_notification, S3EventError};

/// Why the watcher function failed on a notification.
#[derive(Debug, Error)]
pub enum WatchError {
    /// The notification is not valid S3 event JSON.
    #[error(transparent)]
    Notification(#[from] S3EventError),
    /// The queue refused the events.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Sending to SQS failed.
    #[error(transparent)]
    Sqs(#[from] SqsError),
    /// An event could not be serialised as a message body.
    #[error("message body: {0}")]
    Body(#[from] serde_json::Error),
}

/// The messages for a notification, and one report per record (`enqueued` or
/// `rejected` with the reason).
pub(crate) fn messages_for(
    catalog: &Catalog,
    notification: &str,
) -> Result<(Vec<Outgoing>, Vec<Report>), WatchError> {
    messages_for_events(catalog, parse_notification(notification)?)
}

/// The messages for `events` (routed as the watcher routes them: group = dataset,
/// deduplication id from the event, arrival stamped now), and one report per event.
/// The reconciliation sweep sends its events through this too.
pub(crate) fn messages_for_events(
    catalog: &Catalog,
    events: Vec<ObjectEvent>,
) -> Result<(Vec<Outgoing>, Vec<Report>), WatchError> {
    let collector = SqsBatch::sender();
    let reports = enqueue(catalog, &collector, events)?;
    let mut outgoing = Vec::new();
    // Arrival stamps: strictly increasing within this call.
    for (arrival, message) in (now_us()..).zip(collector.take_sent()?) {
        let body = serde_json::to_string(&Body {
            event: message.event,
            arrival,
        })?;
        // `enqueue` routed the event to a dataset of this catalog.
        let group = catalog
            .dataset(&message.group)
            .map_or(message.group, store_group);
        outgoing.push(Outgoing {
            group,
            dedup_id: message.dedup_id,
            body,
        });
    }
    Ok((outgoing, reports))
}

/// Handles one notification: sends its events, logs what was skipped.
pub async fn handle(
    catalog: &Catalog,
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    notification: &str,
) -> Result<Vec<Report>, WatchError> {
    let (outgoing, reports) = messages_for(catalog, notification)?;
    for report in &reports {
        if report.action == ReportAction::Rejected {
            tracing::warn!(key = %report.key, reason = ?report.reason, "skipped: not queued");
        } else {
            tracing::info!(key = %report.key, dataset = ?report.dataset, "queued");
        }
    }
    sqs::send(client, queue_url, &outgoing).await?;
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_records_to_groups_and_skips_unmatched_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sst.json"),
            r#"{"name": "sst", "handler": "gridded", "key_patterns": ["^sst/"],
                "store": "s3://stores/sst.zarr", "append_dim": "time"}"#,
        )
        .unwrap();
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        let notification = r#"{"Records": [
          {"eventTime": "2024-05-01T12:00:00.123", "eventName": "ObjectCreated:Put",
           "s3": {"bucket": {"name": "raw"}, "object": {"key": "sst/dir+one/a%2Bb.nc", "eTag": "e1"}}},
          {"eventTime": "2024-05-01T12:00:01Z", "eventName": "ObjectCreated:Put",
           "s3": {"bucket": {"name": "raw"}, "object": {"key": "other/x.nc"}}},
          {"eventTime": "2024-05-01T12:00:02Z", "eventName": "ObjectRemoved:Delete",
           "s3": {"bucket": {"name": "raw"}, "object": {"key": "sst/b.nc", "sequencer": "00AB"}}}
        ]}"#;
        let (outgoing, reports) = messages_for(&catalog, notification).unwrap();
        assert_eq!(outgoing.len(), 2);
        assert!(outgoing.iter().all(|m| m.group == "s3://stores/sst.zarr"));
        let bodies: Vec<Body> = outgoing
            .iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect();
        assert_eq!(bodies[0].event.key, "sst/dir one/a+b.nc");
        assert!(bodies[1].arrival > bodies[0].arrival);
        assert_eq!(outgoing[1].dedup_id, "raw/sst/b.nc|removed|00AB");
        let rejected: Vec<&Report> = reports
            .iter()
            .filter(|r| r.action == ReportAction::Rejected)
            .collect();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].key, "other/x.nc");
    }
}
