//! The updater function's work, as plain async functions over a [`Deployment`].
//!
//! - [`handle_sqs_event`]: an SQS batch from the event source mapping is applied in
//!   order; the response lists batch item failures with FIFO semantics.
//! - [`drain`]: on a schedule, receive (long poll) and apply batches until the queue
//!   is empty or the remaining time falls under the safety margin; each batch's
//!   messages are deleted only after their events are committed.
//!
//! Both go through `apply_batch`: created objects are streamed from S3 into a
//! scratch raw root, at the event's version when it names one; the key of a removal
//! is checked with a HEAD and, if it still has a current version (versioned buckets),
//! that version is downloaded too (`stages`, `crate::pipeline::current`); then the pipeline's flusher runs on a
//! blocking thread (zarrs' sync API over S3 must not run inside the async runtime)
//! over the batch as an `SqsBatch` queue. A message that fails on its last allowed
//! receive is moved to the dead-letter queue by the updater itself, with its reason
//! in the `zru_reason` attribute, then deleted.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::Serialize;
use thiserror::Error;

use super::config_source::{ConfigSource, ConfigSourceError};
use super::fifo::batch_item_failures;
use super::raw::{self, RawError};
use super::sdk::Clients;
use super::settings::{Settings, SettingsError};
use super::sqs::{self, QueueInfo, Received, SqsError};
use super::sqs_queue::{Fate, SqsBatch};
use crate::config::Catalog;
use crate::pipeline::current::CurrentObjects;
use crate::pipeline::queue::Message;
use crate::pipeline::{FlushOptions, Flusher, PipelineError, Report};
use crate::update::{EventKind, Updater};

/// Why an invocation of the updater function failed as a whole (one event's failure
/// is a batch item failure instead).
#[derive(Debug, Error)]
pub enum LambdaUpdateError {
    /// A `ZRU_*` setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The dataset catalog could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigSourceError),
    /// An SQS call failed (receive, delete, dead-letter).
    #[error(transparent)]
    Sqs(#[from] SqsError),
    /// A raw object could not be downloaded.
    #[error(transparent)]
    Raw(#[from] RawError),
    /// The flush failed (queue, ledger, lock).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The scratch directory for downloads cannot be created.
    #[error("scratch directory {dir}: {source}")]
    Scratch {
        /// The directory.
        dir: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The flush thread panicked or was cancelled: the reason.
    #[error("the flush thread failed: {0}")]
    Join(String),
}

/// What the updater works with, set up once per cold start.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The `ZRU_*` settings.
    pub settings: Settings,
    /// The datasets (from `ZRU_CONFIG`).
    pub catalog: Catalog,
    /// The SDK clients.
    pub clients: Clients,
    /// The queue (for the drain, and its redrive policy for dead letters).
    pub(crate) queue: Option<QueueInfo>,
}

impl Deployment {
    /// Settings from the environment, the catalog from `ZRU_CONFIG`, the queue's
    /// attributes from `ZRU_QUEUE_URL` when set.
    pub async fn from_env() -> Result<Self, LambdaUpdateError> {
        let settings = Settings::from_env()?;
        let clients = Clients::from_env().await;
        let catalog = ConfigSource::parse(&settings.config)
            .load(&clients.s3)
            .await?;
        let queue = match &settings.queue_url {
            Some(url) => Some(sqs::queue_info(&clients.sqs, url).await?),
            None => None,
        };
        Ok(Self {
            settings,
            catalog,
            clients,
            queue,
        })
    }

    fn max_receive_count(&self) -> Option<u32> {
        self.queue.as_ref().and_then(|q| q.max_receive_count)
    }
}

/// What happened to a batch.
#[derive(Debug, Default, Serialize)]
pub(crate) struct BatchResult {
    /// Indices (in the batch) of messages to delete: committed, skipped or dead-lettered.
    pub done: Vec<usize>,
    /// Indices of messages that failed and will be received again, with the reason.
    pub failed: Vec<(usize, String)>,
    /// Indices of messages moved to the dead-letter queue.
    pub dead_lettered: Vec<usize>,
    pub reports: Vec<Report>,
}

/// Downloads the batch's created objects, flushes the batch into the stores, and
/// moves last-chance failures to the dead-letter queue.
pub(crate) async fn apply_batch(
    deployment: &Deployment,
    batch: &[Received],
) -> Result<BatchResult, LambdaUpdateError> {
    let started = std::time::Instant::now();
    let settings = &deployment.settings;
    let scratch = tempfile::Builder::new()
        .prefix("zru-raw-")
        .tempdir_in(&settings.scratch_dir)
        .map_err(|source| LambdaUpdateError::Scratch {
            dir: settings.scratch_dir.display().to_string(),
            source,
        })?;
    let (queue, bad) = SqsBatch::new(batch, deployment.max_receive_count());
    let messages = queue.messages().map_err(PipelineError::from)?;
    let s3 = &deployment.clients.s3;
    let root = scratch.path();
    let mut current = CurrentObjects::default();
    for stage in stages(&deployment.catalog, &messages) {
        match stage {
            Stage::Fetch {
                bucket,
                key,
                version_id,
            } => match raw::download(s3, &bucket, &key, version_id.as_deref(), root).await {
                // A missing object (or version) is the flush's `skipped(gone)`; a bad
                // key its rejection.
                Ok(_) | Err(RawError::BadKey { .. }) => {}
                Err(error) => return Err(error.into()),
            },
            Stage::Check { bucket, key } => {
                if raw::local_path(root, &key).is_none() {
                    continue;
                }
                let mut object = raw::head(s3, &bucket, &key).await?;
                if let Some(found) = &object {
                    let version = found.version_id.as_deref();
                    if !raw::download(s3, &bucket, &key, version, root).await? {
                        // Deleted between the HEAD and the GET.
                        object = None;
                    }
                }
                current.record(&key, object);
            }
        }
    }
    let updater = Updater::new(deployment.catalog.clone(), scratch.path().to_path_buf());
    let options = FlushOptions {
        batch_size: sqs::MAX_BATCH,
        visibility: settings.visibility,
        lock_dir: settings.lock_dir.clone(),
        lock_timeout: settings.lock_timeout,
    };
    let (queue, reports) = tokio::task::spawn_blocking(move || {
        let flusher = Flusher {
            updater: &updater,
            queue: &queue,
            options,
            current: Some(&current),
        };
        let reports = flusher.flush(&mut |_| {});
        (queue, reports)
    })
    .await
    .map_err(|e| LambdaUpdateError::Join(e.to_string()))?;
    let reports = reports?;
    super::metrics::observe_batch(&settings.metrics, &reports, &messages, batch, started);
    let mut result = BatchResult {
        reports,
        ..BatchResult::default()
    };
    let mut fates: HashMap<usize, Fate> = queue.fates().map_err(PipelineError::from)?;
    let max = deployment.max_receive_count();
    for (index, reason) in bad {
        let last = max.is_some_and(|m| batch[index].receive_count >= m);
        fates.insert(index, Fate::Failed { reason, last });
    }
    for (index, message) in batch.iter().enumerate() {
        match fates.remove(&index).unwrap_or(Fate::Untouched) {
            Fate::Done => result.done.push(index),
            Fate::Untouched => result
                .failed
                .push((index, "not processed in this batch".into())),
            Fate::Failed { reason, last } => {
                let dead_letter_url = deployment
                    .queue
                    .as_ref()
                    .and_then(|q| q.dead_letter_url.as_deref());
                match (last, dead_letter_url) {
                    (true, Some(url)) => {
                        sqs::dead_letter(&deployment.clients.sqs, url, message, &reason).await?;
                        tracing::warn!(message = %message.message_id, %reason, "moved to the dead-letter queue");
                        result.dead_lettered.push(index);
                        result.done.push(index);
                    }
                    _ => result.failed.push((index, reason)),
                }
            }
        }
    }
    Ok(result)
}

/// What the updater reads from the raw bucket before a batch, for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    /// A creation: download the object, at the event's version when it names one.
    Fetch {
        bucket: String,
        key: String,
        version_id: Option<String>,
    },
    /// A removal: HEAD the key (no version id); if it still has a current version,
    /// download that version.
    Check { bucket: String, key: String },
}

/// Per key that a dataset takes, what its newest event in the batch needs (only the
/// newest event of a key can be applied: the flush skips the others as superseded),
/// in the order keys first appear.
pub(crate) fn stages(catalog: &Catalog, messages: &[Message]) -> Vec<Stage> {
    let mut newest: Vec<&Message> = Vec::new();
    for message in messages {
        if catalog.route(&message.event.key).is_err() {
            continue;
        }
        let order = message.event.order(message.id);
        match newest.iter_mut().find(|m| m.event.key == message.event.key) {
            Some(best) => {
                if order.compare(&best.event.order(best.id)) == Ordering::Greater {
                    *best = message;
                }
            }
            None => newest.push(message),
        }
    }
    newest
        .into_iter()
        .map(|m| {
            let (bucket, key) = (m.event.bucket.clone(), m.event.key.clone());
            match m.event.kind {
                EventKind::Created => Stage::Fetch {
                    bucket,
                    key,
                    version_id: m.event.version_id.clone(),
                },
                EventKind::Removed => Stage::Check { bucket, key },
            }
        })
        .collect()
}

/// The SQS event source's records as received messages.
pub(crate) fn received_from_event(event: &SqsEvent) -> Vec<Received> {
    event
        .records
        .iter()
        .map(|record| Received {
            message_id: record.message_id.clone().unwrap_or_default(),
            receipt_handle: record.receipt_handle.clone().unwrap_or_default(),
            group: record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default(),
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            body: record.body.clone().unwrap_or_default(),
        })
        .collect()
}

/// Applies an SQS batch; the failures to report keep each group's order.
pub async fn handle_sqs_event(
    deployment: &Deployment,
    event: &SqsEvent,
) -> Result<SqsBatchResponse, LambdaUpdateError> {
    let batch = received_from_event(event);
    let result = apply_batch(deployment, &batch).await?;
    let order: Vec<(String, String)> = batch
        .iter()
        .map(|m| (m.message_id.clone(), m.group.clone()))
        .collect();
    let failed: HashSet<String> = result
        .failed
        .iter()
        .map(|(i, _)| batch[*i].message_id.clone())
        .collect();
    let mut response = SqsBatchResponse::default();
    for id in batch_item_failures(&order, &failed) {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

/// What a scheduled drain did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct DrainSummary {
    /// Batches received and flushed.
    pub batches: usize,
    /// Messages received.
    pub received: usize,
    /// Messages deleted (applied, skipped or dead-lettered).
    pub deleted: usize,
    /// Messages failed, to be received again.
    pub failed: usize,
    /// Messages moved to the dead-letter queue.
    pub dead_lettered: usize,
    /// Stopped because less than the safety margin remained (messages may remain).
    pub stopped_for_deadline: bool,
}

/// Long-poll wait of the drain's receives (seconds).
pub(crate) const DRAIN_WAIT_SECONDS: i32 = 2;

/// How long the next receive may wait, or `None` to stop (under the safety margin).
pub(crate) fn next_wait(remaining: Duration, safety: Duration) -> Option<i32> {
    let spare = remaining.checked_sub(safety)?;
    if spare < Duration::from_secs(1) {
        return None;
    }
    Some(spare.as_secs().min(20) as i32)
}

/// Drains the queue in batches until it is empty or the deadline nears.
pub async fn drain(
    deployment: &Deployment,
    deadline: SystemTime,
) -> Result<DrainSummary, LambdaUpdateError> {
    let url = deployment.settings.require_queue_url()?.to_string();
    let sqs_client = &deployment.clients.sqs;
    let visibility = deployment.settings.visibility.as_secs().min(43_200) as i32;
    let retry_at_once = deployment.max_receive_count().is_some();
    let mut summary = DrainSummary::default();
    loop {
        let remaining = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let Some(wait) = next_wait(remaining, deployment.settings.drain_safety) else {
            summary.stopped_for_deadline = true;
            break;
        };
        // A long poll that returns nothing ends the drain: the queue is empty (or
        // every group's next message is in flight elsewhere).
        let wait = wait.min(DRAIN_WAIT_SECONDS);
        let batch = sqs::receive(sqs_client, &url, sqs::MAX_BATCH, wait, visibility).await?;
        if batch.is_empty() {
            break;
        }
        summary.batches += 1;
        summary.received += batch.len();
        let result = apply_batch(deployment, &batch).await?;
        let done: Vec<String> = result
            .done
            .iter()
            .map(|&i| batch[i].receipt_handle.clone())
            .collect();
        sqs::delete(sqs_client, &url, &done).await?;
        summary.deleted += done.len();
        summary.dead_lettered += result.dead_lettered.len();
        summary.failed += result.failed.len();
        if retry_at_once {
            // Visible again now: received again in this drain until it succeeds or
            // reaches the dead-letter queue.
            for (index, _) in &result.failed {
                sqs::retry_after(sqs_client, &url, &batch[*index].receipt_handle, 0).await?;
            }
        }
    }
    Ok(summary)
}

/// What an invocation of the updater carries.
#[derive(Debug)]
pub enum Invocation {
    /// A batch of SQS FIFO messages (the event source mapping).
    Sqs(SqsEvent),
    /// An EventBridge schedule (or anything else without records): drain the queue.
    Scheduled,
}

impl Invocation {
    /// An SQS event if the payload has `Records`, else a scheduled drain; an error
    /// for `Records` that are not SQS records.
    pub fn classify(payload: serde_json::Value) -> Result<Self, serde_json::Error> {
        if payload.get("Records").is_some() {
            return Ok(Self::Sqs(serde_json::from_value(payload)?));
        }
        Ok(Self::Scheduled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_stops_under_the_safety_margin() {
        let safety = Duration::from_secs(60);
        assert_eq!(next_wait(Duration::from_secs(30), safety), None);
        assert_eq!(next_wait(Duration::from_millis(60_500), safety), None);
        assert_eq!(next_wait(Duration::from_secs(65), safety), Some(5));
        assert_eq!(next_wait(Duration::from_secs(900), safety), Some(20));
    }

    #[test]
    fn records_are_sqs_batches_anything_else_a_schedule() {
        let sqs = serde_json::json!({"Records": [{"messageId": "m1", "receiptHandle": "r",
            "body": "{}", "attributes": {"MessageGroupId": "sst", "ApproximateReceiveCount": "2"},
            "eventSource": "aws:sqs"}]});
        let Invocation::Sqs(event) = Invocation::classify(sqs).unwrap() else {
            panic!("not an SQS batch")
        };
        let received = received_from_event(&event);
        assert_eq!(received[0].group, "sst");
        assert_eq!(received[0].receive_count, 2);
        let schedule =
            serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events"});
        assert!(matches!(
            Invocation::classify(schedule).unwrap(),
            Invocation::Scheduled
        ));
    }

    #[test]
    fn each_key_is_staged_for_its_newest_event_at_its_version() {
        use crate::pipeline::event::ObjectEvent;
        use crate::pipeline::queue::Receipt;

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sst.json"),
            serde_json::json!({
                "name": "sst", "handler": "gridded", "key_patterns": ["^sst/"],
                "store": dir.path().join("sst.zarr"), "append_dim": "time"
            })
            .to_string(),
        )
        .unwrap();
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        let message = |id: i64, key: &str, kind: EventKind, sequencer: &str, version: &str| {
            let mut event = ObjectEvent::local_removed(key.into());
            event.bucket = "raw".into();
            event.kind = kind;
            event.sequencer = Some(sequencer.into());
            event.version_id = Some(version.into());
            Message {
                id,
                group: "sst".into(),
                receipt: Receipt { id, token: id },
                receive_count: 1,
                event,
            }
        };
        let fetch = |key: &str, version: &str| Stage::Fetch {
            bucket: "raw".into(),
            key: key.into(),
            version_id: Some(version.into()),
        };
        let messages = [
            // v2's event delivered before v1's: v2 is still the one to read.
            message(1, "sst/a.nc", EventKind::Created, "0B", "v2"),
            message(2, "sst/a.nc", EventKind::Created, "0A", "v1"),
            message(3, "sst/b.nc", EventKind::Created, "01", "v1"),
            message(4, "sst/b.nc", EventKind::Removed, "02", "dm"),
            message(5, "other/c.nc", EventKind::Created, "01", "v1"),
            message(6, "sst/d.nc", EventKind::Created, "01", "v7"),
        ];
        assert_eq!(
            stages(&catalog, &messages),
            [
                fetch("sst/a.nc", "v2"),
                Stage::Check {
                    bucket: "raw".into(),
                    key: "sst/b.nc".into()
                },
                fetch("sst/d.nc", "v7"),
            ]
        );
    }
}
