//! The pipeline's [`Queue`] over messages received from SQS.
//!
//! SQS delivers a batch (from the Lambda event source, or a `ReceiveMessage` of the
//! scheduled drain); [`SqsBatch`] holds it in memory so the pipeline's [`Flusher`]
//! runs unchanged on it: per group, lock the store, plan against the ledger, apply in
//! one transaction, save the ledger, then acknowledge. Acknowledgements and failures
//! are recorded here and carried out on SQS afterwards by the caller (delete, report
//! as batch item failures, or move to the dead-letter queue with the reason) — so a
//! message is deleted only after its event is committed.
//!
//! [`SqsBatch::sender`] is the send side used by the watcher: it collects the
//! messages the pipeline's `enqueue` routes, which are then sent with
//! `SendMessageBatch`.
//!
//! [`Flusher`]: crate::pipeline::Flusher

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sqs::Received;
use crate::pipeline::event::ObjectEvent;
use crate::pipeline::queue::{
    DeadLetter, Failed, GroupStats, Message, NewMessage, Queue, QueueError, Receipt, Retry, Sent,
};

/// The body of a queue message: the event, and when the watcher stamped it (the
/// arrival order among events of one key that have no S3 sequencer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// The object event (key, created or removed, S3 sequencer and etag).
    pub event: ObjectEvent,
    /// Microseconds since the epoch, strictly increasing within one watcher call.
    pub arrival: i64,
}

/// What happened to one message of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Not received by the flusher (its group was not flushed).
    Untouched,
    /// Committed (or skipped as duplicate/stale/superseded/gone): delete it.
    Done,
    /// Failed: permanent (`Retry::Never`) or transient (`Retry::After`).
    Failed {
        /// Why it failed.
        reason: String,
        /// The failure's class: [`super::retry::disposition`] turns it into a dead
        /// letter or a delay.
        retry: Retry,
    },
}

struct Entry {
    message: Message,
    received: bool,
    fate: Fate,
}

/// One SQS batch as a pipeline queue.
pub struct SqsBatch {
    entries: Mutex<Vec<Entry>>,
    sent: Mutex<Vec<NewMessage>>,
    max_receive_count: Option<u32>,
}

fn poisoned() -> QueueError {
    QueueError::Body {
        path: "sqs batch".into(),
        id: 0,
        reason: "batch state lock poisoned".into(),
    }
}

impl SqsBatch {
    /// The batch's messages in delivery order; bodies that are not events are returned
    /// apart with the reason (they fail without being applied).
    pub fn new(
        messages: &[Received],
        max_receive_count: Option<u32>,
    ) -> (Self, Vec<(usize, String)>) {
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        let mut used: BTreeMap<i64, ()> = BTreeMap::new();
        for (index, received) in messages.iter().enumerate() {
            let body: Body = match serde_json::from_str(&received.body) {
                Ok(body) => body,
                Err(e) => {
                    bad.push((
                        index,
                        format!("message {}: not a zru event: {e}", received.message_id),
                    ));
                    continue;
                }
            };
            // Message ids must be unique in the batch: bump a (rare) equal stamp.
            let mut id = body.arrival;
            while used.contains_key(&id) {
                id += 1;
            }
            used.insert(id, ());
            entries.push(Entry {
                message: Message {
                    id,
                    group: received.group.clone(),
                    receipt: Receipt {
                        id,
                        token: index as i64,
                    },
                    receive_count: received.receive_count,
                    event: body.event,
                },
                received: false,
                fate: Fate::Untouched,
            });
        }
        let batch = Self {
            entries: Mutex::new(entries),
            sent: Mutex::new(Vec::new()),
            max_receive_count,
        };
        (batch, bad)
    }

    /// A send-only queue that collects what is sent (the watcher).
    pub fn sender() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
            max_receive_count: None,
        }
    }

    fn entries(&self) -> Result<MutexGuard<'_, Vec<Entry>>, QueueError> {
        self.entries.lock().map_err(|_| poisoned())
    }

    /// The batch's messages, in delivery order.
    pub fn messages(&self) -> Result<Vec<Message>, QueueError> {
        Ok(self.entries()?.iter().map(|e| e.message.clone()).collect())
    }

    /// The messages sent through [`Queue::send`], in order.
    pub fn take_sent(&self) -> Result<Vec<NewMessage>, QueueError> {
        Ok(std::mem::take(
            &mut *self.sent.lock().map_err(|_| poisoned())?,
        ))
    }

    /// Fails (transiently) every message of `group` the flush has not settled, with
    /// `reason`: the group's raw objects could not be read, its store's lock, ledger
    /// or attempt record failed. The flush no longer receives them. Returns how many.
    pub fn fail_group(&self, group: &str, reason: &str) -> Result<usize, QueueError> {
        let mut entries = self.entries()?;
        let mut count = 0;
        for entry in entries
            .iter_mut()
            .filter(|e| e.message.group == group && e.fate == Fate::Untouched)
        {
            entry.received = true;
            entry.fate = Fate::Failed {
                reason: format!("{}: {reason}", entry.message.event.key),
                retry: Retry::After(Duration::ZERO),
            };
            count += 1;
        }
        Ok(count)
    }

    /// Each message's fate, by its index in the batch given to [`Self::new`].
    pub fn fates(&self) -> Result<HashMap<usize, Fate>, QueueError> {
        Ok(self
            .entries()?
            .iter()
            .map(|e| (e.message.receipt.token as usize, e.fate.clone()))
            .collect())
    }
}

impl Queue for SqsBatch {
    fn send(&self, messages: &[NewMessage]) -> Result<Vec<Sent>, QueueError> {
        let mut sent = self.sent.lock().map_err(|_| poisoned())?;
        let first = sent.len() as i64;
        sent.extend(messages.iter().cloned());
        Ok((0..messages.len() as i64)
            .map(|i| Sent::Enqueued(first + i + 1))
            .collect())
    }

    /// The group's messages not yet received, in order (each is received once).
    fn receive(
        &self,
        group: &str,
        max: usize,
        _visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let mut entries = self.entries()?;
        let mut out = Vec::new();
        for entry in entries
            .iter_mut()
            .filter(|e| e.message.group == group && !e.received)
        {
            if out.len() == max {
                break;
            }
            entry.received = true;
            out.push(entry.message.clone());
        }
        Ok(out)
    }

    /// Nothing to recover: SQS makes messages of a dead consumer visible again itself.
    fn recover(&self, _group: &str) -> Result<u64, QueueError> {
        Ok(0)
    }

    fn ack(&self, receipts: &[Receipt]) -> Result<u64, QueueError> {
        let mut entries = self.entries()?;
        let mut count = 0;
        for entry in entries.iter_mut() {
            if receipts.contains(&entry.message.receipt) {
                entry.fate = Fate::Done;
                count += 1;
            }
        }
        Ok(count)
    }

    fn fail(&self, receipt: Receipt, error: &str, retry: Retry) -> Result<Failed, QueueError> {
        let mut entries = self.entries()?;
        let Some(entry) = entries.iter_mut().find(|e| e.message.receipt == receipt) else {
            return Ok(Failed::Stale);
        };
        // A permanent failure goes to the DLQ now; a transient one comes back after a
        // backoff (set by the caller with ChangeMessageVisibility), or goes to the DLQ
        // on its last allowed receive.
        let last = retry == Retry::Never
            || self
                .max_receive_count
                .is_some_and(|max| entry.message.receive_count >= max);
        entry.fate = Fate::Failed {
            reason: error.to_string(),
            retry,
        };
        Ok(if last {
            Failed::DeadLettered
        } else {
            Failed::Retry
        })
    }

    /// Groups with messages not received yet (a failed group is left out).
    fn groups(&self) -> Result<Vec<String>, QueueError> {
        let mut groups: Vec<String> = Vec::new();
        for entry in self.entries()?.iter().filter(|e| !e.received) {
            if !groups.contains(&entry.message.group) {
                groups.push(entry.message.group.clone());
            }
        }
        Ok(groups)
    }

    fn stats(&self) -> Result<Vec<GroupStats>, QueueError> {
        let mut stats: Vec<GroupStats> = Vec::new();
        for entry in self.entries()?.iter() {
            let position = match stats.iter().position(|s| s.group == entry.message.group) {
                Some(p) => p,
                None => {
                    stats.push(GroupStats {
                        group: entry.message.group.clone(),
                        ..GroupStats::default()
                    });
                    stats.len() - 1
                }
            };
            match (&entry.fate, entry.received) {
                (Fate::Untouched, false) => stats[position].ready += 1,
                (Fate::Untouched, true) => stats[position].in_flight += 1,
                (Fate::Failed { retry, .. }, _)
                    if *retry == Retry::Never
                        || self
                            .max_receive_count
                            .is_some_and(|max| entry.message.receive_count >= max) =>
                {
                    stats[position].dead += 1
                }
                _ => {}
            }
        }
        Ok(stats)
    }

    /// Dead letters live in the SQS dead-letter queue, not in a batch.
    fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(Vec::new())
    }

    fn replay(&self, _ids: &[i64]) -> Result<u64, QueueError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(index: usize, group: &str, receive_count: u32, event: &ObjectEvent) -> Received {
        Received {
            message_id: format!("m{index}"),
            receipt_handle: format!("r{index}"),
            group: group.into(),
            receive_count,
            body: serde_json::to_string(&Body {
                event: event.clone(),
                arrival: 1_000 + index as i64,
            })
            .unwrap(),
        }
    }

    #[test]
    fn receives_each_group_once_in_order_and_records_fates() {
        let a = ObjectEvent::local_removed("sst/a.nc".into());
        let b = ObjectEvent::local_removed("sst/b.nc".into());
        let mut bad = received(2, "sst", 1, &a);
        bad.body = "not json".into();
        let batch = vec![
            received(0, "sst", 1, &a),
            received(1, "argo", 3, &b),
            bad,
            received(3, "sst", 3, &b),
        ];
        let (queue, rejected) = SqsBatch::new(&batch, Some(3));
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, 2);
        assert_eq!(queue.groups().unwrap(), vec!["sst", "argo"]);
        let sst = queue.receive("sst", 10, Duration::ZERO).unwrap();
        assert_eq!(
            sst.iter().map(|m| m.event.key.as_str()).collect::<Vec<_>>(),
            vec!["sst/a.nc", "sst/b.nc"]
        );
        assert!(queue.receive("sst", 10, Duration::ZERO).unwrap().is_empty());
        assert_eq!(queue.ack(&[sst[0].receipt]).unwrap(), 1);
        assert_eq!(
            queue
                .fail(sst[1].receipt, "bad file", Retry::After(Duration::ZERO))
                .unwrap(),
            Failed::DeadLettered
        );
        let fates = queue.fates().unwrap();
        assert_eq!(fates[&0], Fate::Done);
        assert_eq!(fates[&1], Fate::Untouched);
        assert_eq!(
            fates[&3],
            Fate::Failed {
                reason: "bad file".into(),
                retry: Retry::After(Duration::ZERO)
            }
        );
        // A group whose store failed: its unsettled messages fail transiently, the
        // settled ones keep their fate, and the flush no longer sees the group.
        assert_eq!(queue.groups().unwrap(), vec!["argo"]);
        assert_eq!(queue.fail_group("sst", "lock timeout").unwrap(), 0);
        assert_eq!(queue.fail_group("argo", "lock timeout").unwrap(), 1);
        assert!(queue.groups().unwrap().is_empty());
        assert_eq!(
            queue.fates().unwrap()[&1],
            Fate::Failed {
                reason: "sst/b.nc: lock timeout".into(),
                retry: Retry::After(Duration::ZERO)
            }
        );
    }

    /// The tests that flush generated files through an `SqsBatch`.
    #[cfg(feature = "sample")]
    mod flushes {
        use super::*;
        use crate::config::Catalog;
        use crate::pipeline::{FlushOptions, Flusher, ReportAction};
        use crate::sample::{write_gridded_samples, GriddedSampleOptions};
        use crate::update::{Action, Updater};

        /// A gridded dataset `sst` (store `dir/sst.zarr`) and `days` sample files under
        /// `dir/raw/sst`: (catalog, raw root, files, store).
        fn sst_dataset(
            dir: &std::path::Path,
            days: usize,
        ) -> (
            Catalog,
            std::path::PathBuf,
            Vec<std::path::PathBuf>,
            std::path::PathBuf,
        ) {
            let raw = dir.join("raw");
            let options = GriddedSampleOptions {
                days,
                lat: 6,
                lon: 8,
                start: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
                revision: 0,
                seed: 1,
            };
            let files = write_gridded_samples(&raw.join("sst"), &options).unwrap();
            let config = dir.join("config");
            std::fs::create_dir_all(&config).unwrap();
            let store = dir.join("sst.zarr");
            std::fs::write(
                config.join("sst.json"),
                serde_json::json!({
                    "name": "sst", "handler": "gridded", "key_patterns": ["^sst/"],
                    "store": store, "append_dim": "time", "time_step": "1 day"
                })
                .to_string(),
            )
            .unwrap();
            (Catalog::load_dir(&config).unwrap(), raw, files, store)
        }

        fn flush_options(dir: &std::path::Path) -> FlushOptions {
            FlushOptions {
                batch_size: 10,
                visibility: Duration::from_secs(60),
                lock_dir: dir.join("locks"),
                lock_timeout: Duration::from_secs(5),
            }
        }

        #[test]
        fn the_pipeline_flusher_applies_a_batch_to_a_store() {
            let dir = tempfile::tempdir().unwrap();
            let (catalog, raw, files, store) = sst_dataset(dir.path(), 2);
            let batch: Vec<Received> = files
                .iter()
                .enumerate()
                .map(|(i, path)| {
                    let key = format!("sst/{}", path.file_name().unwrap().to_string_lossy());
                    received(i, "sst", 1, &ObjectEvent::local_created(key, path).unwrap())
                })
                .collect();
            let (queue, rejected) = SqsBatch::new(&batch, Some(3));
            assert!(rejected.is_empty());
            let updater = Updater::new(catalog, raw);
            let flusher = Flusher {
                updater: &updater,
                queue: &queue,
                options: flush_options(dir.path()),
                current: None,
            };
            let reports = flusher.flush(&mut |_| {}).unwrap();
            assert_eq!(reports.len(), 2);
            assert!(reports
                .iter()
                .all(|r| r.action == ReportAction::Applied(Action::Appended)));
            let fates = queue.fates().unwrap();
            assert!(fates.values().all(|f| *f == Fate::Done), "{fates:?}");
            assert!(crate::store::ZarrStore::exists(&store));
            assert!(dir.path().join("sst.zarr.zru-ledger.json").is_file());
        }

        /// Removals of keys that still exist (versioned buckets): skipped when the store
        /// holds the current version, applied as its creation otherwise (an undelete),
        /// blanked when the key has no current version; a redelivery is a duplicate.
        #[test]
        fn removals_of_keys_that_still_exist_are_checked_against_the_ledger() {
            use crate::pipeline::current::{CurrentObject, CurrentObjects};
            use crate::pipeline::SkipReason;
            use crate::update::EventKind;

            let dir = tempfile::tempdir().unwrap();
            let (catalog, raw, files, store) = sst_dataset(dir.path(), 1);
            let updater = Updater::new(catalog, raw);
            let key = format!("sst/{}", files[0].file_name().unwrap().to_string_lossy());
            let event = |kind: EventKind, sequencer: &str, version: &str| {
                let mut event = ObjectEvent::local_removed(key.clone());
                event.bucket = "raw".into();
                event.kind = kind;
                event.sequencer = Some(sequencer.into());
                event.version_id = Some(version.into());
                event.etag = Some(format!("etag-{version}"));
                event
            };
            let run = |events: &[ObjectEvent], current: &CurrentObjects| {
                let batch: Vec<Received> = events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| received(i, "sst", 1, e))
                    .collect();
                let (queue, rejected) = SqsBatch::new(&batch, Some(3));
                assert!(rejected.is_empty());
                let flusher = Flusher {
                    updater: &updater,
                    queue: &queue,
                    options: flush_options(dir.path()),
                    current: Some(current),
                };
                flusher.flush(&mut |_| {}).unwrap()
            };
            let ledger = || crate::pipeline::ledger::Ledger::load(&store).unwrap();
            let holds = |version: Option<&str>| {
                let mut current = CurrentObjects::default();
                let object = version.map(|v| CurrentObject::new(Some(v.into()), None));
                current.record(&key, object);
                current
            };

            let reports = run(&[event(EventKind::Created, "01", "v1")], &holds(Some("v1")));
            assert_eq!(reports[0].action, ReportAction::Applied(Action::Appended));

            // A noncurrent version (v0) was deleted: v1 is still current and in the store.
            let reports = run(&[event(EventKind::Removed, "02", "v0")], &holds(Some("v1")));
            assert_eq!(
                reports[0].action,
                ReportAction::Skipped(SkipReason::StillExists)
            );
            assert!(reports[0].reason.as_deref().unwrap().contains("version v1"));
            assert_eq!(
                ledger().get(&key).unwrap().order.sequencer.as_deref(),
                Some("01")
            );

            // A delete marker (blanks), then the marker deleted (v1 current again).
            let marker = event(EventKind::Removed, "03", "dm");
            let reports = run(std::slice::from_ref(&marker), &holds(None));
            assert_eq!(reports[0].action, ReportAction::Applied(Action::Blanked));
            let undelete = event(EventKind::Removed, "04", "dm");
            let reports = run(std::slice::from_ref(&undelete), &holds(Some("v1")));
            assert_eq!(reports[0].action, ReportAction::Applied(Action::Overwrote));
            assert_eq!(reports[0].event, EventKind::Removed);
            assert!(reports[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("still exists"));
            let entry = ledger().get(&key).cloned().unwrap();
            assert_eq!(entry.kind, EventKind::Created);
            assert_eq!(entry.version_id.as_deref(), Some("v1"));
            assert_eq!(entry.order.sequencer.as_deref(), Some("04"));

            // Redelivered: a duplicate, whatever the bucket holds now.
            let reports = run(&[undelete], &holds(None));
            assert_eq!(
                reports[0].action,
                ReportAction::Skipped(SkipReason::Duplicate)
            );
            // Without a check (local mode), a removal blanks.
            let reports = run(
                &[event(EventKind::Removed, "05", "x")],
                &CurrentObjects::default(),
            );
            assert_eq!(reports[0].action, ReportAction::Applied(Action::Blanked));
        }
    }
}
