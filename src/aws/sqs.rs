//! The FIFO queue on SQS: sending events in batches (watcher), receiving with long
//! polls, deleting, and moving a message to the dead-letter queue with its reason
//! (updater). Message bodies are opaque strings here.

use std::collections::HashMap;

use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use thiserror::Error;

use super::sdk::describe;

/// SQS accepts at most this many entries per batch request.
pub const MAX_BATCH: usize = 10;

/// Message attribute holding why the updater dead-lettered a message.
pub const REASON_ATTRIBUTE: &str = "zru_reason";

/// A failed SQS call, naming the queue.
#[derive(Debug, Error)]
pub enum SqsError {
    /// A request failed (network, permissions, a missing queue): the SDK's reason.
    #[error("queue {url}: {reason}")]
    Request {
        /// The queue URL.
        url: String,
        /// What the SDK reported.
        reason: String,
    },
    /// A batch send was accepted only in part.
    #[error("queue {url}: {failed} of {total} messages were not sent: {reasons}")]
    NotSent {
        /// The queue URL.
        url: String,
        /// Entries SQS refused.
        failed: usize,
        /// Entries in the request.
        total: usize,
        /// Each refused entry's code and message, joined with `; `.
        reasons: String,
    },
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// FIFO message group id (messages of one group are delivered in order).
    pub group: String,
    /// FIFO deduplication id (a second send with it within 5 minutes is dropped).
    pub dedup_id: String,
    /// The message body.
    pub body: String,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// SQS message id (the same on every delivery).
    pub message_id: String,
    /// Receipt handle of this delivery (deletes and visibility changes use it).
    pub receipt_handle: String,
    /// FIFO message group id.
    pub group: String,
    /// `ApproximateReceiveCount`: deliveries so far, this one included.
    pub receive_count: u32,
    /// The message body.
    pub body: String,
}

/// What the updater needs to know about its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The queue URL.
    pub url: String,
    /// Whether it is a FIFO queue (the updater requires one).
    pub fifo: bool,
    /// From the redrive policy: receives before SQS moves a message to the DLQ.
    pub max_receive_count: Option<u32>,
    /// From the redrive policy: the dead-letter queue's URL.
    pub dead_letter_url: Option<String>,
}

fn request_error(url: &str, reason: impl Into<String>) -> SqsError {
    SqsError::Request {
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// Where a batch request stands in a whole request of `total` entries: `done` entries
/// went through in earlier batches and this one holds `len`.
#[derive(Debug, Clone, Copy)]
struct BatchSpan {
    done: usize,
    len: usize,
    total: usize,
}

impl BatchSpan {
    /// The span of the `n`th batch (from 0) of [`MAX_BATCH`] entries of `total`.
    fn nth(n: usize, len: usize, total: usize) -> Self {
        Self {
            done: n * MAX_BATCH,
            len,
            total,
        }
    }

    /// Entries of the whole request that no batch went through if this batch fails:
    /// the refused ones plus every entry of the later batches (never sent).
    fn not_done(&self, refused: usize) -> usize {
        refused + self.total.saturating_sub(self.done + self.len)
    }
}

/// An error naming the entries of a batch request that SQS did not accept, if any.
fn check_batch(
    url: &str,
    failed: &[BatchResultErrorEntry],
    span: BatchSpan,
) -> Result<(), SqsError> {
    if failed.is_empty() {
        return Ok(());
    }
    let reasons = failed
        .iter()
        .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("; ");
    Err(SqsError::NotSent {
        url: url.to_string(),
        failed: span.not_done(failed.len()),
        total: span.total,
        reasons,
    })
}

/// SQS deduplication ids are at most 128 characters of `[!-~]`: longer or other ids
/// (keys can hold any character) are replaced by a hex digest of themselves. Message
/// group ids follow the same rules.
pub fn dedup_id(raw: &str) -> String {
    let printable = raw.bytes().all(|b| (b'!'..=b'~').contains(&b));
    if printable && raw.len() <= 128 {
        return raw.to_string();
    }
    // FNV-1a 64 twice (two seeds): stable across processes and versions.
    let fnv = |seed: u64| {
        raw.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "h-{:016x}{:016x}-{}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142),
        raw.len()
    )
}

/// Sends messages in order, in batches of [`MAX_BATCH`]. Any entry SQS did not
/// accept is an error (the caller fails, so the event source retries).
pub async fn send(
    client: &aws_sdk_sqs::Client,
    url: &str,
    messages: &[Outgoing],
) -> Result<usize, SqsError> {
    let mut sent = 0;
    for (n, chunk) in messages.chunks(MAX_BATCH).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_group_id(&m.group)
                    .message_deduplication_id(dedup_id(&m.dedup_id))
                    .message_body(&m.body)
                    .build()
                    .map_err(|e| request_error(url, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let response = client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| request_error(url, describe(&e)))?;
        let span = BatchSpan::nth(n, chunk.len(), messages.len());
        check_batch(url, response.failed(), span)?;
        sent += chunk.len();
    }
    Ok(sent)
}

/// Receives up to `max` messages, waiting up to `wait_seconds` (long poll).
pub async fn receive(
    client: &aws_sdk_sqs::Client,
    url: &str,
    max: usize,
    wait_seconds: i32,
    visibility_seconds: i32,
) -> Result<Vec<Received>, SqsError> {
    let response = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
        .wait_time_seconds(wait_seconds)
        .visibility_timeout(visibility_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| request_error(url, describe(&e)))?;
    Ok(response
        .messages()
        .iter()
        .map(|m| {
            let attributes = m.attributes();
            let attribute =
                |name: MessageSystemAttributeName| attributes.and_then(|a| a.get(&name)).cloned();
            Received {
                message_id: m.message_id().unwrap_or_default().to_string(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
                group: attribute(MessageSystemAttributeName::MessageGroupId).unwrap_or_default(),
                receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                body: m.body().unwrap_or_default().to_string(),
            }
        })
        .collect())
}

/// Deletes received messages (after their events are committed).
pub async fn delete(
    client: &aws_sdk_sqs::Client,
    url: &str,
    receipt_handles: &[String],
) -> Result<(), SqsError> {
    for (n, chunk) in receipt_handles.chunks(MAX_BATCH).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| request_error(url, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let response = client
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| request_error(url, describe(&e)))?;
        let span = BatchSpan::nth(n, chunk.len(), receipt_handles.len());
        check_batch(url, response.failed(), span)?;
    }
    Ok(())
}

/// Makes a received message visible again after `seconds`.
pub async fn retry_after(
    client: &aws_sdk_sqs::Client,
    url: &str,
    receipt_handle: &str,
    seconds: i32,
) -> Result<(), SqsError> {
    change_visibility(client, url, &[(receipt_handle.to_string(), seconds)]).await
}

/// Sets the visibility timeout of received messages: each (receipt handle, seconds)
/// is visible again that many seconds from now.
pub async fn change_visibility(
    client: &aws_sdk_sqs::Client,
    url: &str,
    entries: &[(String, i32)],
) -> Result<(), SqsError> {
    for (n, chunk) in entries.chunks(MAX_BATCH).enumerate() {
        let requests = chunk
            .iter()
            .enumerate()
            .map(|(i, (handle, seconds))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(*seconds)
                    .build()
                    .map_err(|e| request_error(url, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let response = client
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(requests))
            .send()
            .await
            .map_err(|e| request_error(url, describe(&e)))?;
        let span = BatchSpan::nth(n, chunk.len(), entries.len());
        check_batch(url, response.failed(), span)?;
    }
    Ok(())
}

/// Sends a copy of `message` to the dead-letter queue with `reason` attached (the
/// caller then deletes the original).
pub async fn dead_letter(
    client: &aws_sdk_sqs::Client,
    dead_letter_url: &str,
    message: &Received,
    reason: &str,
) -> Result<(), SqsError> {
    let text = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
    };
    let reason_value = text(reason).map_err(|e| request_error(dead_letter_url, e.to_string()))?;
    let receives = text(&message.receive_count.to_string())
        .map_err(|e| request_error(dead_letter_url, e.to_string()))?;
    client
        .send_message()
        .queue_url(dead_letter_url)
        .message_group_id(&message.group)
        .message_deduplication_id(dedup_id(&message.message_id))
        .message_body(&message.body)
        .message_attributes(REASON_ATTRIBUTE, reason_value)
        .message_attributes("zru_receive_count", receives)
        .send()
        .await
        .map_err(|e| request_error(dead_letter_url, describe(&e)))?;
    Ok(())
}

/// Whether the queue is FIFO, and its redrive policy.
pub async fn queue_info(client: &aws_sdk_sqs::Client, url: &str) -> Result<QueueInfo, SqsError> {
    let attributes: HashMap<QueueAttributeName, String> = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| request_error(url, describe(&e)))?
        .attributes
        .unwrap_or_default();
    let fifo = attributes
        .get(&QueueAttributeName::FifoQueue)
        .map(String::as_str)
        == Some("true");
    let mut info = QueueInfo {
        url: url.to_string(),
        fifo,
        max_receive_count: None,
        dead_letter_url: None,
    };
    if let Some(policy) = attributes.get(&QueueAttributeName::RedrivePolicy) {
        let policy: serde_json::Value = serde_json::from_str(policy)
            .map_err(|e| request_error(url, format!("redrive policy is not JSON: {e}")))?;
        info.max_receive_count = match &policy["maxReceiveCount"] {
            serde_json::Value::Number(n) => n.as_u64().map(|n| n as u32),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        };
        if let Some(arn) = policy["deadLetterTargetArn"].as_str() {
            let name = arn.rsplit(':').next().unwrap_or(arn);
            let dlq = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| {
                    request_error(url, format!("dead-letter queue {arn}: {}", describe(&e)))
                })?;
            info.dead_letter_url = dlq.queue_url;
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_ids_fit_sqs_rules() {
        assert_eq!(
            dedup_id("raw/sst/a.nc|created|00AB"),
            "raw/sst/a.nc|created|00AB"
        );
        let spaced = dedup_id("raw/dir one/a.nc|created|1|e");
        assert!(spaced.starts_with("h-") && spaced.len() <= 128, "{spaced}");
        assert_eq!(spaced, dedup_id("raw/dir one/a.nc|created|1|e"));
        assert_ne!(spaced, dedup_id("raw/dir one/b.nc|created|1|e"));
        let long = "k".repeat(300);
        assert!(dedup_id(&long).len() <= 128);
    }

    #[test]
    fn a_failed_batch_counts_the_later_batches_as_not_sent() {
        let refused = BatchResultErrorEntry::builder()
            .id("3")
            .code("InternalError")
            .sender_fault(false)
            .build()
            .unwrap();
        // 25 messages: the second batch of ten has one refusal; the last five never go.
        let span = BatchSpan::nth(1, MAX_BATCH, 25);
        let err = check_batch("q", &[refused], span).unwrap_err();
        match err {
            SqsError::NotSent { failed, total, .. } => assert_eq!((failed, total), (6, 25)),
            other => panic!("unexpected {other}"),
        }
        assert!(check_batch("q", &[], span).is_ok());
    }
}
