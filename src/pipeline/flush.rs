//! `zru flush`: drains the queue, one store at a time, in batches.
//!
//! Per message group (dataset): take the store's lock (once), make the messages of a
//! consumer that died holding it visible again, then receive batches until the group
//! is empty. Per batch: coalesce per key and check the ledger ([`super::plan`]), order
//! removals then appends by time ([`super::append_order`]), apply everything in one
//! store transaction (one resize and one consolidated-metadata write per batch), then
//! save the ledger, then acknowledge. Each batch is written to the store's attempt
//! record before it is applied ([`super::attempts`]): the events of a batch that never
//! finished are applied one at a time, and one that stops the process alone is
//! dead-lettered with that reason. Rejected events are failed receives: a permanent
//! error goes to the dead letters at once, a transient one is visible again after an
//! exponential backoff and dead-lettered after the queue's maximum number of receives.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::append_order::order_for_store;
use super::attempts::Attempts;
use super::current::{removal_check, CurrentObject, CurrentObjects, RemovalCheck};
use super::event::now_us;
use super::ledger::{Ledger, LedgerEntry};
use super::lock::StoreLock;
use super::plan::plan_batch;
use super::queue::{Failed, Message, Queue, Receipt, Retry};
use super::raw_file::{canonical_root, check_raw_file, non_canonical_key};
use super::report::{Report, ReportAction, SkipReason};
use super::PipelineError;
use crate::config::Dataset;
use crate::store::atomic_fs::sync_filesystem;
use crate::store::ZarrStore;
use crate::update::{Action, EventKind, Updater};

/// How `zru flush` receives and locks.
#[derive(Debug, Clone)]
pub struct FlushOptions {
    /// Messages per receive, so per store transaction.
    pub batch_size: usize,
    /// How long received messages stay invisible to other consumers.
    pub visibility: Duration,
    /// Where the locks of non-local stores live (a local store's lock is beside it).
    pub lock_dir: PathBuf,
    /// How long to wait for a store's lock; then the flush fails
    /// ([`crate::pipeline::lock::LockError::Timeout`]).
    pub lock_timeout: Duration,
}

/// What [`Flusher::flush_each`] gives back: one report per message, and the groups
/// that stopped with their error.
pub type GroupedReports = (Vec<Report>, Vec<(String, PipelineError)>);

/// Drains a queue into the stores of an updater's catalog.
pub struct Flusher<'a> {
    /// Applies each batch to its dataset's store.
    pub updater: &'a Updater,
    /// The queue drained.
    pub queue: &'a dyn Queue,
    /// Batch size, visibility, locks.
    pub options: FlushOptions,
    /// What the raw bucket holds now under the keys of removals (checked by the
    /// updater before the batch); `None` in local mode, where
    /// removals are not checked.
    pub current: Option<&'a CurrentObjects>,
}

fn message_report(message: &Message, dataset: Option<&str>, action: ReportAction) -> Report {
    Report {
        message_id: Some(message.id),
        receive_count: message.receive_count,
        sequencer: message.event.sequencer.clone(),
        ..Report::new(&message.event.key, message.event.kind, dataset, action)
    }
}

/// A rejection of `message` with `reason`: permanent (dead-lettered at once) or
/// transient (retried after a backoff).
fn rejection(message: &Message, dataset: Option<&str>, reason: String, permanent: bool) -> Report {
    let mut report = message_report(message, dataset, ReportAction::Rejected).with_reason(reason);
    report.permanent = permanent;
    report
}

impl Flusher<'_> {
    /// Drains every group. `progress` sees each batch's reports as it completes. The
    /// result holds one report per message (its last fate), in message order.
    pub fn flush(&self, progress: &mut dyn FnMut(&[Report])) -> Result<Vec<Report>, PipelineError> {
        let mut last: BTreeMap<i64, Report> = BTreeMap::new();
        for group in self.queue.groups()? {
            for report in self.flush_group(&group, progress)? {
                last.insert(report.message_id.unwrap_or_default(), report);
            }
        }
        Ok(last.into_values().collect())
    }

    /// Drains every group, each apart: a group whose store cannot be locked, or whose
    /// ledger or attempt record cannot be read or saved, stops with its error (returned
    /// beside the group's name) and the other groups go on. Only a failure to list the
    /// groups fails the whole flush. The reports are as [`Self::flush`]'s.
    pub fn flush_each(
        &self,
        progress: &mut dyn FnMut(&[Report]),
    ) -> Result<GroupedReports, PipelineError> {
        let mut last: BTreeMap<i64, Report> = BTreeMap::new();
        let mut failed = Vec::new();
        for group in self.queue.groups()? {
            let mut seen = Vec::new();
            let mut watch = |batch: &[Report]| {
                seen.extend_from_slice(batch);
                progress(batch);
            };
            let result = self.flush_group(&group, &mut watch);
            // A group that fails part way keeps the reports of its finished batches.
            let reports = match result {
                Ok(reports) => reports,
                Err(error) => {
                    failed.push((group, error));
                    seen
                }
            };
            for report in reports {
                last.insert(report.message_id.unwrap_or_default(), report);
            }
        }
        Ok((last.into_values().collect(), failed))
    }

    fn flush_group(
        &self,
        group: &str,
        progress: &mut dyn FnMut(&[Report]),
    ) -> Result<Vec<Report>, PipelineError> {
        let catalog = &self.updater.catalog;
        let Some(dataset) = catalog.datasets.iter().find(|d| d.name() == group) else {
            return self.fail_unknown_group(group, progress);
        };
        let _lock = StoreLock::acquire(
            &self.options.lock_dir,
            &dataset.location,
            self.options.lock_timeout,
        )?;
        self.queue.recover(group)?;
        let mut ledger = Ledger::load_for(dataset)?;
        // An Icechunk commit whose ledger save a killed process missed: the file beside
        // the repository is brought up to date now, even if every event of this flush
        // turns out a duplicate of that commit's (no batch would save it then).
        if ledger.is_stale() {
            ledger.save()?;
        }
        let mut attempts = Attempts::load_at(&dataset.location)?;
        let mut reports = Vec::new();
        loop {
            let limit = attempts.receive_limit(self.options.batch_size);
            let messages = self.receive_up_to(group, limit)?;
            if messages.is_empty() {
                break;
            }
            attempts.received(&messages);
            let received = messages.clone();
            let mut batch = Vec::new();
            let (culprits, messages): (Vec<_>, Vec<_>) = messages
                .into_iter()
                .map(|m| (attempts.culprit_reason(&m), m))
                .partition(|(reason, _)| reason.is_some());
            for (reason, message) in culprits {
                let reason = reason.unwrap_or_default();
                let report = rejection(&message, Some(dataset.name()), reason, true);
                batch.push(self.fail(message.receipt, report)?);
            }
            let messages: Vec<Message> = messages.into_iter().map(|(_, m)| m).collect();
            if !messages.is_empty() {
                match attempts.begin(&messages) {
                    Ok(()) => batch.extend(self.process_batch(dataset, &mut ledger, messages)?),
                    // The store's place cannot be written (a missing bucket, a full
                    // disk): the batch fails as its commit would, each event a transient
                    // rejection with the reason.
                    Err(error) => {
                        for message in messages {
                            let reason = format!("{}: {error}", message.event.key);
                            let report = rejection(&message, Some(dataset.name()), reason, false);
                            batch.push(self.fail(message.receipt, report)?);
                        }
                    }
                }
            }
            attempts.end(&received);
            progress(&batch);
            reports.extend(batch);
        }
        attempts.finish()?;
        Ok(reports)
    }

    /// Messages of a group no configured dataset has (the configuration changed).
    fn fail_unknown_group(
        &self,
        group: &str,
        progress: &mut dyn FnMut(&[Report]),
    ) -> Result<Vec<Report>, PipelineError> {
        let reason = format!("no dataset named {group:?} in the configuration");
        let mut reports = Vec::new();
        loop {
            let messages = self.receive(group)?;
            if messages.is_empty() {
                return Ok(reports);
            }
            let mut batch = Vec::new();
            for message in messages {
                let reason = format!("{}: {reason}", message.event.key);
                let report = rejection(&message, None, reason, true);
                batch.push(self.fail(message.receipt, report)?);
            }
            progress(&batch);
            reports.extend(batch);
        }
    }

    fn receive(&self, group: &str) -> Result<Vec<Message>, PipelineError> {
        self.receive_up_to(group, self.options.batch_size)
    }

    fn receive_up_to(&self, group: &str, max: usize) -> Result<Vec<Message>, PipelineError> {
        Ok(self.queue.receive(group, max, self.options.visibility)?)
    }

    /// Records a failed receive; the report says so if it moved to the dead letters.
    /// Records a rejected message: a permanent failure goes to the dead letters at
    /// once, a transient one is retried after an exponential backoff.
    fn fail(&self, receipt: Receipt, mut report: Report) -> Result<Report, PipelineError> {
        let reason = report.reason.clone().unwrap_or_default();
        let retry = if report.permanent {
            Retry::Never
        } else {
            Retry::backoff(report.receive_count)
        };
        if self.queue.fail(receipt, &reason, retry)? == Failed::DeadLettered {
            report.dead_lettered = true;
            let why = if report.permanent {
                "permanent error, not retried".to_string()
            } else {
                format!("after {} receives", report.receive_count)
            };
            report.reason = Some(format!(
                "{reason} [dead letter ({why}): `zru queue replay` retries it]"
            ));
        }
        Ok(report)
    }

    fn process_batch(
        &self,
        dataset: &Dataset,
        ledger: &mut Ledger,
        messages: Vec<Message>,
    ) -> Result<Vec<Report>, PipelineError> {
        let name = Some(dataset.name());
        let mut failures = Vec::new();
        let now = now_us();
        let root = canonical_root(&self.updater.raw_root)
            .to_string_lossy()
            .into_owned();
        let (refused, messages): (Vec<_>, Vec<_>) = messages
            .into_iter()
            .map(|m| (self.refusal(&m, now, &root), m))
            .partition(|(reason, _)| reason.is_some());
        for (reason, message) in refused {
            // A refusal (key, raw root, event time, not a regular file) does not change
            // on a retry: a permanent error.
            let report = rejection(&message, name, reason.unwrap_or_default(), true);
            failures.push((message.receipt, report));
        }
        let messages: Vec<Message> = messages.into_iter().map(|(_, m)| m).collect();
        let plan = plan_batch(ledger, messages);
        let mut reports = Vec::new();
        let mut acks = Vec::new();
        for (message, reason) in &plan.skip {
            reports.push(message_report(
                message,
                name,
                ReportAction::Skipped(*reason),
            ));
            acks.push(message.receipt);
        }
        let mut restored = HashSet::new();
        let mut apply = Vec::new();
        for message in plan.apply {
            if message.event.kind != EventKind::Removed {
                apply.push(message);
                continue;
            }
            let entry = ledger.get(&message.event.key);
            match removal_check(self.current, &message.event.key, entry) {
                RemovalCheck::Blank => apply.push(message),
                RemovalCheck::StillExists(object) => {
                    reports.push(
                        message_report(
                            &message,
                            name,
                            ReportAction::Skipped(SkipReason::StillExists),
                        )
                        .with_reason(format!(
                            "{}: the key still exists ({}, the one the store holds): a \
                             noncurrent version was deleted; nothing to blank",
                            message.event.key,
                            object.describe()
                        )),
                    );
                    acks.push(message.receipt);
                }
                RemovalCheck::Restore(object) => {
                    restored.insert(message.id);
                    apply.push(restore(message, object));
                }
            }
        }
        let (gone, present): (Vec<Message>, Vec<Message>) =
            apply.into_iter().partition(|m| self.is_gone(m));
        for message in gone {
            reports.push(
                message_report(&message, name, ReportAction::Skipped(SkipReason::Gone))
                    .with_reason(format!(
                        "{}: the object no longer exists; its removal follows",
                        message.event.key
                    )),
            );
            acks.push(message.receipt);
        }
        let (nothing_to_remove, present) = self.removals_without_store(dataset, present);
        for message in nothing_to_remove {
            let report = message_report(&message, name, ReportAction::Applied(Action::Unchanged))
                .with_reason(format!(
                    "{}: the store does not exist yet: nothing to remove",
                    message.event.key
                ));
            ledger.record(&message.event.key, ledger_entry(&message, &report));
            acks.push(message.receipt);
            reports.push(report);
        }
        let ordered = order_for_store(dataset, &self.updater.raw_root, present);
        let events: Vec<_> = ordered.iter().map(|m| m.event.update_event()).collect();
        // An Icechunk commit records each event's ordering fields: its ledger entries.
        let notes: Vec<_> = ordered.iter().map(commit_note).collect();
        let outcomes = self.updater.apply_batch_noted(&events, &notes);
        let mut recorded = reports
            .iter()
            .any(|r| matches!(r.action, ReportAction::Applied(_)));
        for (message, outcome) in ordered.into_iter().zip(outcomes) {
            let mut report = Report {
                message_id: Some(message.id),
                receive_count: message.receive_count,
                sequencer: message.event.sequencer.clone(),
                ..Report::from_outcome(outcome)
            };
            if restored.contains(&message.id) {
                report.event = EventKind::Removed;
                let why = format!(
                    "{}: the key still exists ({}: a delete marker was removed, or the \
                     current version was deleted): its current version was applied instead \
                     of blanking",
                    message.event.key,
                    CurrentObject::new(
                        message.event.version_id.clone(),
                        message.event.etag.clone()
                    )
                    .describe()
                );
                // A line shows the reason instead of the region: keep both.
                let region = report.region.as_ref().map(ToString::to_string);
                report.reason = Some(
                    [Some(why), report.reason.take(), region]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            if report.failed() {
                failures.push((message.receipt, report));
                continue;
            }
            ledger.record(&message.event.key, ledger_entry(&message, &report));
            recorded = true;
            acks.push(message.receipt);
            reports.push(report);
        }
        // Crash-safety order: the store is committed (apply_batch) and durable, then
        // the ledger, then the acknowledgement.
        if recorded {
            sync_store(dataset)?;
            ledger.save()?;
        }
        if !acks.is_empty() {
            self.queue.ack(&acks)?;
        }
        for (receipt, report) in failures {
            reports.push(self.fail(receipt, report)?);
        }
        Ok(reports)
    }

    /// Splits off removals for a store that does not exist yet (delivered before any
    /// creation): they change nothing, and are not errors.
    fn removals_without_store(
        &self,
        dataset: &Dataset,
        messages: Vec<Message>,
    ) -> (Vec<Message>, Vec<Message>) {
        // An S3 store that cannot be checked is taken as existing: applying the
        // removals then reports the storage error.
        if ZarrStore::exists_backend(&dataset.location, &dataset.backend()).unwrap_or(true) {
            return (Vec::new(), messages);
        }
        messages
            .into_iter()
            .partition(|m| m.event.kind == EventKind::Removed)
    }

    /// Why a message cannot be applied by this flush, if it cannot: an event time from
    /// the future, a local event made for another raw root than this flush's (`root`,
    /// canonical), or a created object that is not a regular file inside the raw root.
    fn refusal(&self, message: &Message, now: i64, root: &str) -> Option<String> {
        let event = &message.event;
        if let Some(reason) = non_canonical_key(&event.key) {
            return Some(reason);
        }
        if let Some(reason) = event.future_time_error(now) {
            return Some(reason);
        }
        if let Some(theirs) = event.raw_root.as_deref().filter(|r| *r != root) {
            return Some(format!(
                "{}: the event is for the raw root {theirs}, but this flush reads the raw \
                 root {root} (--raw-root): flush it with `--raw-root {theirs}` (after \
                 `zru queue replay` if it is in the dead letters)",
                event.key
            ));
        }
        if event.kind == EventKind::Created && crate::update::check_key(&event.key).is_ok() {
            let path = self.updater.raw_root.join(&event.key);
            if let Err(reason) = check_raw_file(&self.updater.raw_root, &path) {
                return Some(format!("{}: {reason}", event.key));
            }
        }
        None
    }

    /// A created event whose object is no longer in the raw bucket. Local events reach
    /// here only when made for this flush's raw root (see [`Self::refusal`]), so the
    /// object was looked for where the event says it lives.
    fn is_gone(&self, message: &Message) -> bool {
        message.event.kind == EventKind::Created
            && crate::update::check_key(&message.event.key).is_ok()
            && !self.updater.raw_root.join(&message.event.key).exists()
    }
}

/// Makes a local store's writes durable before its ledger records them: chunk files are
/// renamed into place without an `fsync` each, so after a power cut an acknowledged
/// batch could otherwise lose chunks. One `syncfs(2)` of the store's filesystem (and of
/// the ledger's, if the store's root is a link elsewhere). S3 writes are durable when
/// their PUT returns.
fn sync_store(dataset: &Dataset) -> Result<(), PipelineError> {
    let Some(store) = dataset.location.local_path() else {
        return Ok(());
    };
    let parent = store.parent().filter(|p| !p.as_os_str().is_empty());
    for dir in std::iter::once(store).chain(parent) {
        sync_filesystem(dir).map_err(|source| PipelineError::Sync {
            store: store.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// A removal of a key that still exists, as the creation of its current version: same
/// place in the key's order (so a redelivery of the removal is a duplicate), the
/// current object's version id and etag (so the ledger says which version the store
/// holds).
fn restore(mut message: Message, object: CurrentObject) -> Message {
    message.event.kind = EventKind::Created;
    message.event.version_id = object.version_id;
    message.event.etag = object.etag;
    message.event.size = None;
    message
}

/// What an Icechunk commit records of a message beyond the outcome (key, kind, action,
/// region): the fields of its ledger entry.
fn commit_note(message: &Message) -> serde_json::Value {
    serde_json::json!({
        "order": message.event.order(message.id),
        "etag": message.event.etag,
        "version_id": message.event.version_id,
    })
}

fn ledger_entry(message: &Message, report: &Report) -> LedgerEntry {
    LedgerEntry {
        kind: message.event.kind,
        order: message.event.order(message.id),
        etag: message.event.etag.clone(),
        version_id: message.event.version_id.clone(),
        action: report.action.to_string(),
        region: report.region.clone(),
    }
}
