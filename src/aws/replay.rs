//! Replaying the watcher's failed notifications.
//!
//! S3 invokes the watcher asynchronously: after Lambda's retries the event goes to the
//! function's on-failure destination, a standard SQS queue (`deploy/template.yaml`,
//! `FailedNotificationsQueue`). Each message there is a Lambda *invocation record*: a
//! JSON object whose `requestPayload` is the original S3 notification and whose
//! `requestContext.condition` says why it failed (`RetriesExhausted`,
//! `EventAgeExceeded`). [`replay`] reads every record, hands the notification to the
//! watcher's own code ([`super::watch::handle`]: same routing, same groups, same
//! deduplication ids) and deletes the record only once its events are on the FIFO
//! queue. A record that fails again stays on the destination queue.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use super::sqs::{self, Received, SqsError};
use super::watch;
use crate::config::Catalog;
use crate::pipeline::report::ReportAction;

/// How [`replay`] reads the destination queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Visibility timeout of received records, in seconds: a record that fails again
    /// stays hidden this long (a run handles each record once in any case).
    pub visibility_seconds: i32,
    /// Long-poll wait of each receive, in seconds (0 to 20); the run ends at the
    /// first empty receive.
    pub wait_seconds: i32,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            visibility_seconds: 300,
            wait_seconds: 1,
        }
    }
}

/// Why one invocation record could not be replayed.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The message body is not JSON.
    #[error("not a Lambda invocation record (not JSON): {0}")]
    NotJson(#[from] serde_json::Error),
    /// The record has no `requestPayload` object (not an asynchronous invocation
    /// record, or the payload was too large to include).
    #[error("not a Lambda invocation record: no `requestPayload` object")]
    NoPayload,
    /// The watcher's code refused the notification or the FIFO queue refused it.
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    /// Deleting the replayed record failed (its events are enqueued: a second replay
    /// enqueues them again, which the FIFO deduplication and the updater's ordering
    /// absorb).
    #[error("deleting the replayed record: {0}")]
    Delete(SqsError),
}

/// The outcome of one invocation record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayedRecord {
    /// SQS message id of the record on the destination queue.
    pub message_id: String,
    /// `requestContext.condition`: why Lambda gave up on the notification.
    pub condition: Option<String>,
    /// Events sent to the FIFO queue (keys no dataset takes are not counted).
    pub events: usize,
    /// Why the record was left on the destination queue, if it was.
    pub error: Option<String>,
}

/// The original S3 notification (JSON text) and the failure condition of a Lambda
/// asynchronous invocation record.
pub fn original_notification(record: &str) -> Result<(String, Option<String>), RecordError> {
    let value: Value = serde_json::from_str(record)?;
    let payload = value
        .get("requestPayload")
        .filter(|p| p.is_object())
        .ok_or(RecordError::NoPayload)?;
    let condition = value
        .pointer("/requestContext/condition")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((payload.to_string(), condition))
}

/// Replays one record: its notification to the FIFO queue, then deletes it.
async fn replay_record(
    catalog: &Catalog,
    client: &aws_sdk_sqs::Client,
    failed_url: &str,
    queue_url: &str,
    message: &Received,
) -> Result<usize, RecordError> {
    let (notification, _) = original_notification(&message.body)?;
    let reports = watch::handle(catalog, client, queue_url, &notification).await?;
    sqs::delete(
        client,
        failed_url,
        std::slice::from_ref(&message.receipt_handle),
    )
    .await
    .map_err(RecordError::Delete)?;
    Ok(reports
        .iter()
        .filter(|r| r.action != ReportAction::Rejected)
        .count())
}

/// Replays every record of the destination queue `failed_url` onto the FIFO queue
/// `queue_url`, one record at a time, until a receive comes back empty or with
/// records this run already handled (a failed record visible again). Records that
/// fail are reported and left in place; only a failed receive is an error.
pub async fn replay(
    catalog: &Catalog,
    client: &aws_sdk_sqs::Client,
    failed_url: &str,
    queue_url: &str,
    options: ReplayOptions,
) -> Result<Vec<ReplayedRecord>, SqsError> {
    let mut outcomes = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let received = sqs::receive(
            client,
            failed_url,
            sqs::MAX_BATCH,
            options.wait_seconds,
            options.visibility_seconds,
        )
        .await?;
        let fresh: Vec<&Received> = received
            .iter()
            .filter(|m| seen.insert(m.message_id.clone()))
            .collect();
        if fresh.is_empty() {
            return Ok(outcomes);
        }
        for message in fresh {
            let condition = original_notification(&message.body)
                .ok()
                .and_then(|(_, c)| c);
            let (events, error) =
                match replay_record(catalog, client, failed_url, queue_url, message).await {
                    Ok(events) => (events, None),
                    Err(e) => {
                        tracing::warn!(message_id = %message.message_id, error = %e,
                            "failed notification not replayed");
                        (0, Some(e.to_string()))
                    }
                };
            outcomes.push(ReplayedRecord {
                message_id: message.message_id.clone(),
                condition,
                events,
                error,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_notification_is_the_request_payload() {
        let record = r#"{"version": "1.0", "timestamp": "2026-12-01T10:00:00.000Z",
          "requestContext": {"requestId": "r1", "condition": "RetriesExhausted",
                             "approximateInvokeCount": 3},
          "requestPayload": {"Records": [{"eventName": "ObjectCreated:Put"}]},
          "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
          "responsePayload": {"errorMessage": "boom"}}"#;
        let (payload, condition) = original_notification(record).unwrap();
        let payload: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(payload["Records"][0]["eventName"], "ObjectCreated:Put");
        assert_eq!(condition.as_deref(), Some("RetriesExhausted"));
    }

    #[test]
    fn other_messages_are_refused_with_their_reason() {
        assert!(matches!(
            original_notification("not json"),
            Err(RecordError::NotJson(_))
        ));
        let err = original_notification(r#"{"Records": []}"#).unwrap_err();
        assert!(matches!(err, RecordError::NoPayload));
        assert!(err.to_string().contains("requestPayload"), "{err}");
        assert!(matches!(
            original_notification(r#"{"requestPayload": "text"}"#),
            Err(RecordError::NoPayload)
        ));
    }
}
