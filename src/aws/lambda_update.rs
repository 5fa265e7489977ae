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
//! over the batch as an `SqsBatch` queue, each group (store) apart. A message that
//! fails permanently, or transiently on its last allowed receive, is moved to the
//! dead-letter queue by the updater itself, with its reason in the `zru_reason`
//! attribute, then deleted; any other failed message is made visible again after an
//! exponential backoff ([`super::retry`]) with `ChangeMessageVisibility`, its whole
//! group waiting as long (FIFO order).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::Serialize;
use thiserror::Error;

use super::config_source::{ConfigSource, ConfigSourceError};
use super::fifo::{batch_item_failures, dataset_for_group};
use super::raw::{self, RawError};
use super::retry::{disposition, group_delays, visibility_seconds, Disposition};
use super::sdk::Clients;
use super::settings::{Settings, SettingsError};
use super::sqs::{self, QueueInfo, Received, SqsError};
use super::sqs_queue::{Fate, SqsBatch};
use crate::config::Catalog;
use crate::pipeline::current::{CurrentObject, CurrentObjects};
use crate::pipeline::queue::{Message, Retry};
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
    /// Messages going back to the queue: index, reason, and when the message may be
    /// received again (its own backoff; see [`super::retry`]).
    pub failed: Vec<(usize, String, Duration)>,
    /// Indices of messages moved to the dead-letter queue.
    pub dead_lettered: Vec<usize>,
    pub reports: Vec<Report>,
}

/// Downloads the batch's created objects, flushes the batch into the stores, and
/// moves permanent and last-chance failures to the dead-letter queue. A failure that
/// concerns one group (a raw object that cannot be read, the store's lock, ledger or
/// attempt record) fails that group's unsettled messages, transiently; the other
/// groups go on. Only what concerns the whole batch (the scratch directory, the flush
/// thread, the batch's state) is an error.
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
    // The pipeline groups by dataset; SQS groups are stores.
    let routed: Vec<Received> = batch
        .iter()
        .map(|m| Received {
            group: dataset_for_group(&deployment.catalog, &m.group),
            ..m.clone()
        })
        .collect();
    let (queue, bad) = SqsBatch::new(&routed, deployment.max_receive_count());
    let messages = queue.messages().map_err(PipelineError::from)?;
    let root = scratch.path();
    let mut current = CurrentObjects::default();
    let mut failed_groups: HashSet<String> = HashSet::new();
    for (group, fetched) in fetch_all(deployment, &messages, root).await {
        match fetched {
            Ok(Some(checked)) => current.record(&checked.key, checked.object),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%group, %error, "raw object not read: the group is retried later");
                if failed_groups.insert(group.clone()) {
                    let reason = format!("not applied, the batch could not read {error}");
                    queue
                        .fail_group(&group, &reason)
                        .map_err(PipelineError::from)?;
                }
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
    let (queue, flushed) = tokio::task::spawn_blocking(move || {
        let flusher = Flusher {
            updater: &updater,
            queue: &queue,
            options,
            current: Some(&current),
        };
        let flushed = flusher.flush_each(&mut |_| {});
        (queue, flushed)
    })
    .await
    .map_err(|e| LambdaUpdateError::Join(e.to_string()))?;
    let (reports, group_errors) = flushed?;
    for (group, error) in group_errors {
        tracing::warn!(%group, %error, "store not updated: the group is retried later");
        queue
            .fail_group(&group, &format!("not applied: {error}"))
            .map_err(PipelineError::from)?;
    }
    super::metrics::observe_batch(&settings.metrics, &reports, &messages, batch, started);
    let mut result = BatchResult {
        reports,
        ..BatchResult::default()
    };
    let mut fates: HashMap<usize, Fate> = queue.fates().map_err(PipelineError::from)?;
    for (index, reason) in bad {
        let retry = Retry::Never;
        fates.insert(index, Fate::Failed { reason, retry });
    }
    for (index, message) in batch.iter().enumerate() {
        let (reason, retry) = match fates.remove(&index).unwrap_or(Fate::Untouched) {
            Fate::Done => {
                result.done.push(index);
                continue;
            }
            Fate::Untouched => (
                "not processed in this batch".to_string(),
                Retry::After(Duration::ZERO),
            ),
            Fate::Failed { reason, retry } => (reason, retry),
        };
        settle_failure(deployment, &mut result, index, message, reason, retry).await;
    }
    Ok(result)
}

/// How many raw objects a batch reads from S3 at once. One GET streams at a fraction
/// of a Lambda's network bandwidth and waits for its first byte, so a batch's objects
/// (at most ten per SQS batch) are fetched side by side rather than in turn; each key
/// is fetched once (see [`stages`]), to its own file.
const CONCURRENT_FETCHES: usize = 8;

/// What a removal's check found: the key's current version, if any.
struct Checked {
    key: String,
    object: Option<CurrentObject>,
}

/// Reads what each key of the batch needs from the raw bucket into `root`,
/// [`CONCURRENT_FETCHES`] at a time; per key, its group and what was read.
async fn fetch_all(
    deployment: &Deployment,
    messages: &[Message],
    root: &std::path::Path,
) -> Vec<(String, Result<Option<Checked>, RawError>)> {
    use futures::StreamExt;
    let s3 = &deployment.clients.s3;
    let staged = stages(&deployment.catalog, messages);
    futures::stream::iter(staged)
        .map(|(group, stage)| async move { (group, fetch(s3, &stage, root).await) })
        .buffered(CONCURRENT_FETCHES)
        .collect()
        .await
}

/// Reads what `stage` needs from the raw bucket into `root`; for a removal, what its
/// check found.
async fn fetch(
    s3: &aws_sdk_s3::Client,
    stage: &Stage,
    root: &std::path::Path,
) -> Result<Option<Checked>, RawError> {
    match stage {
        Stage::Fetch {
            bucket,
            key,
            version_id,
        } => match raw::download(s3, bucket, key, version_id.as_deref(), root).await {
            // A missing object (or version) is the flush's `skipped(gone)`; a bad
            // key its rejection.
            Ok(_) | Err(RawError::BadKey { .. }) => Ok(None),
            Err(error) => Err(error),
        },
        Stage::Check { bucket, key } => {
            if raw::local_path(root, key).is_none() {
                return Ok(None);
            }
            let mut object = raw::head(s3, bucket, key).await?;
            if let Some(found) = &object {
                let version = found.version_id.as_deref();
                if !raw::download(s3, bucket, key, version, root).await? {
                    // Deleted between the HEAD and the GET.
                    object = None;
                }
            }
            Ok(Some(Checked {
                key: key.clone(),
                object,
            }))
        }
    }
}

/// A failed message: to the dead-letter queue (permanent, or its last receive), else
/// back to the queue after its backoff. A dead letter that cannot be sent waits too.
async fn settle_failure(
    deployment: &Deployment,
    result: &mut BatchResult,
    index: usize,
    message: &Received,
    reason: String,
    retry: Retry,
) {
    let dead_letter_url = deployment
        .queue
        .as_ref()
        .and_then(|q| q.dead_letter_url.as_deref());
    let backoff = &deployment.settings.backoff;
    let decision = disposition(
        retry,
        message.receive_count,
        deployment.max_receive_count(),
        dead_letter_url.is_some(),
        backoff,
    );
    let (Disposition::DeadLetter, Some(url)) = (decision, dead_letter_url) else {
        let delay = match decision {
            Disposition::RetryAfter(delay) => delay,
            Disposition::DeadLetter => backoff.delay(message.receive_count),
        };
        result.failed.push((index, reason, delay));
        return;
    };
    match sqs::dead_letter(&deployment.clients.sqs, url, message, &reason).await {
        Ok(()) => {
            tracing::warn!(message = %message.message_id, %reason, "moved to the dead-letter queue");
            result.dead_lettered.push(index);
            result.done.push(index);
        }
        Err(error) => {
            tracing::error!(message = %message.message_id, %error, "dead letter not sent");
            let reason = format!("{reason} (not dead-lettered: {error})");
            result
                .failed
                .push((index, reason, backoff.delay(message.receive_count)));
        }
    }
}

/// Makes `returning` (index in `batch`, own delay) visible again after their group's
/// longest delay. A change that fails is logged: the message then comes back after the
/// queue's visibility timeout.
async fn return_to_queue(
    deployment: &Deployment,
    batch: &[Received],
    returning: &[(usize, Duration)],
) {
    if returning.is_empty() {
        return;
    }
    let Some(url) = deployment.settings.queue_url.as_deref() else {
        tracing::warn!("ZRU_QUEUE_URL is not set: failed messages come back after the queue's visibility timeout");
        return;
    };
    let own: Vec<(usize, &str, Duration)> = returning
        .iter()
        .map(|&(i, delay)| (i, batch[i].group.as_str(), delay))
        .collect();
    let entries: Vec<(String, i32)> = group_delays(&own)
        .into_iter()
        .map(|(i, delay)| (batch[i].receipt_handle.clone(), visibility_seconds(delay)))
        .collect();
    if let Err(error) = sqs::change_visibility(&deployment.clients.sqs, url, &entries).await {
        tracing::warn!(%error, "visibility not changed: the messages come back after the queue's visibility timeout");
    }
}

/// After a batch-wide error: every message of the batch back after its backoff.
async fn back_off_batch(deployment: &Deployment, batch: &[Received]) {
    let backoff = &deployment.settings.backoff;
    let returning: Vec<(usize, Duration)> = batch
        .iter()
        .enumerate()
        .map(|(i, m)| (i, backoff.delay(m.receive_count)))
        .collect();
    return_to_queue(deployment, batch, &returning).await;
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
/// with the message's group, in the order keys first appear.
pub(crate) fn stages(catalog: &Catalog, messages: &[Message]) -> Vec<(String, Stage)> {
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
            let stage = match m.event.kind {
                EventKind::Created => Stage::Fetch {
                    bucket,
                    key,
                    version_id: m.event.version_id.clone(),
                },
                EventKind::Removed => Stage::Check { bucket, key },
            };
            (m.group.clone(), stage)
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

/// Applies an SQS batch. The failures reported are the messages going back to the
/// queue (each made visible again after its group's backoff); committed messages are
/// not reported, so the event source deletes them. After a batch-wide error every
/// message backs off, then the invocation fails.
pub async fn handle_sqs_event(
    deployment: &Deployment,
    event: &SqsEvent,
) -> Result<SqsBatchResponse, LambdaUpdateError> {
    let batch = received_from_event(event);
    let result = match apply_batch(deployment, &batch).await {
        Ok(result) => result,
        Err(error) => {
            back_off_batch(deployment, &batch).await;
            return Err(error);
        }
    };
    let order: Vec<(String, String)> = batch
        .iter()
        .map(|m| (m.message_id.clone(), m.group.clone()))
        .collect();
    let failed: HashSet<String> = result
        .failed
        .iter()
        .map(|(i, _, _)| batch[*i].message_id.clone())
        .collect();
    let settled: HashSet<&str> = result
        .done
        .iter()
        .map(|&i| batch[i].message_id.as_str())
        .collect();
    let own: HashMap<&str, Duration> = result
        .failed
        .iter()
        .map(|(i, _, delay)| (batch[*i].message_id.as_str(), *delay))
        .collect();
    let mut response = SqsBatchResponse::default();
    let mut returning = Vec::new();
    for id in batch_item_failures(&order, &failed) {
        if settled.contains(id.as_str()) {
            continue;
        }
        if let Some(index) = batch.iter().position(|m| m.message_id == id) {
            returning.push((index, own.get(id.as_str()).copied().unwrap_or_default()));
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    return_to_queue(deployment, &batch, &returning).await;
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
    let visibility = visibility_seconds(deployment.settings.visibility);
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
        let result = match apply_batch(deployment, &batch).await {
            Ok(result) => result,
            Err(error) => {
                back_off_batch(deployment, &batch).await;
                return Err(error);
            }
        };
        let done: Vec<String> = result
            .done
            .iter()
            .map(|&i| batch[i].receipt_handle.clone())
            .collect();
        sqs::delete(sqs_client, &url, &done).await?;
        summary.deleted += done.len();
        summary.dead_lettered += result.dead_lettered.len();
        summary.failed += result.failed.len();
        // Back after their backoff, not in this drain's next receive: a long poll
        // that finds only them in flight ends the drain.
        let returning: Vec<(usize, Duration)> =
            result.failed.iter().map(|(i, _, d)| (*i, *d)).collect();
        return_to_queue(deployment, &batch, &returning).await;
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
        let staged: Vec<Stage> = stages(&catalog, &messages)
            .into_iter()
            .map(|(group, stage)| {
                assert_eq!(group, "sst");
                stage
            })
            .collect();
        assert_eq!(
            staged,
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
