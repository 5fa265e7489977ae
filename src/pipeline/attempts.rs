//! The attempt record of a store: which events a flush was applying when it stopped.
//!
//! A file that aborts the process (a crash in a reader library, memory exhausted, a
//! kill) takes its whole batch down, and the batch is received again. Without a record
//! of what was being applied, every message of the batch looks alike on the next
//! receive, each is charged a receive per crash, and the good files of the batch reach
//! the dead letters beside the bad one, with nothing naming it.
//!
//! So before a batch is applied its events are written to the record, beside the store
//! like the ledger (`data/zarr/sst.zarr` has `data/zarr/sst.zarr.zru-attempt.json`; a
//! store on S3 has it beside it on S3), and the record is emptied when the flush of the
//! group ends. A record found non-empty by the next flush (under the store's lock) names
//! the batch that never finished: its events are **suspects**, received and applied one
//! at a time, so the others are applied and acknowledged while the bad one takes only
//! itself down. A suspect that stopped the process again while applied alone is the
//! culprit: it is dead-lettered at once (a permanent error) with a reason saying so, and
//! `zru queue replay` retries it once its cause is fixed.
//!
//! Suspects head their group in the queue (nothing after them was acknowledged), so a
//! receive that brings no suspect means none is left: full batches resume.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::queue::Message;
use crate::store::location::Sibling;
use crate::store::StoreLocation;

/// The suffix of an attempt record's name after its store's.
pub const ATTEMPT_SUFFIX: &str = ".zru-attempt.json";

#[derive(Debug, Error)]
pub enum AttemptError {
    #[error("attempt record {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: zarrs::storage::StorageError,
    },
    #[error("attempt record {path}: not a zru attempt record: {reason} (remove it if no flush is running: it only speeds up recovery)")]
    Parse { path: PathBuf, reason: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AttemptFile {
    version: u32,
    /// The events of the batch being applied (their identities).
    #[serde(default)]
    applying: Vec<String>,
    /// Whether that batch is a suspect retried alone (not merely a batch of one).
    #[serde(default)]
    retrying: bool,
    /// Events that stopped the process while applied alone, with how many times.
    #[serde(default)]
    died_alone: BTreeMap<String, u32>,
}

/// A store's attempt record, loaded in memory.
#[derive(Debug)]
pub struct Attempts {
    place: Sibling,
    file: AttemptFile,
    /// Events of the batch that never finished, not received again yet.
    suspects: BTreeSet<String>,
    /// Whether the record exists where it lives.
    on_disk: bool,
}

/// An event's identity across receives: its whole body (the same event redelivered
/// has the same body; distinct events differ in key, kind, sequencer, etag or time).
fn identity(message: &Message) -> String {
    serde_json::to_string(&message.event).unwrap_or_else(|_| message.event.key.clone())
}

impl Attempts {
    /// Loads the record of the store at `location`; a batch it names as being applied
    /// never finished: its events become suspects.
    pub fn load_at(location: &StoreLocation) -> Result<Self, AttemptError> {
        let place = location.sibling(ATTEMPT_SUFFIX);
        let path = PathBuf::from(place.to_string());
        let bytes = place.read().map_err(|source| AttemptError::Storage {
            path: path.clone(),
            source,
        })?;
        let on_disk = bytes.is_some();
        let mut file: AttemptFile = match bytes {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| AttemptError::Parse {
                path,
                reason: e.to_string(),
            })?,
            None => AttemptFile::default(),
        };
        let applying = std::mem::take(&mut file.applying);
        if let ([alone], true) = (applying.as_slice(), file.retrying) {
            *file.died_alone.entry(alone.clone()).or_default() += 1;
        }
        file.retrying = false;
        Ok(Self {
            place,
            file,
            suspects: applying.into_iter().collect(),
            on_disk,
        })
    }

    /// How many messages to receive next: one while suspects are left.
    pub fn receive_limit(&self, batch_size: usize) -> usize {
        if self.suspects.is_empty() {
            batch_size
        } else {
            1
        }
    }

    /// Notes a receive: one without any suspect means none is left in the queue.
    pub fn received(&mut self, messages: &[Message]) {
        if !messages
            .iter()
            .any(|m| self.suspects.contains(&identity(m)))
        {
            self.suspects.clear();
        }
    }

    /// Why `message` must not be applied again, if it stopped the process while
    /// applied alone.
    /// A message received for the first time since it was sent or replayed (`zru queue
    /// replay` of a culprit) is never one: the record may outlive its dead-lettering
    /// when the flush that dead-lettered it was itself killed.
    pub fn culprit_reason(&self, message: &Message) -> Option<String> {
        if message.receive_count < 2 {
            return None;
        }
        let times = *self.file.died_alone.get(&identity(message))?;
        Some(format!(
            "{}: the updater stopped (aborted, out of memory or killed) while applying this \
             event {}, the last time alone: the file most likely crashes it; fix the cause, \
             then `zru queue replay` it",
            message.event.key,
            match times + 1 {
                2 => "twice".to_string(),
                n => format!("{n} times"),
            }
        ))
    }

    /// Records `messages` as the batch being applied, durably, before it is.
    pub fn begin(&mut self, messages: &[Message]) -> Result<(), AttemptError> {
        self.file.applying = messages.iter().map(identity).collect();
        // Suspects left at this point mean this receive brought one, alone.
        self.file.retrying = !self.suspects.is_empty();
        self.save()
    }

    /// The batch of `messages` finished (each applied, skipped or failed with a reason).
    pub fn end(&mut self, messages: &[Message]) {
        for message in messages {
            let id = identity(message);
            self.suspects.remove(&id);
            self.file.died_alone.remove(&id);
        }
        self.file.applying.clear();
        self.file.retrying = false;
    }

    /// Writes the record as it stands, at the end of a group's flush. A record with
    /// nothing in it is not written if there was none.
    pub fn finish(&mut self) -> Result<(), AttemptError> {
        self.file.applying.clear();
        if self.on_disk || !self.file.died_alone.is_empty() {
            self.save()?;
        }
        Ok(())
    }

    fn storage_error(&self, source: zarrs::storage::StorageError) -> AttemptError {
        AttemptError::Storage {
            path: PathBuf::from(self.place.to_string()),
            source,
        }
    }

    fn save(&mut self) -> Result<(), AttemptError> {
        self.file.version = 1;
        let bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| AttemptError::Parse {
            path: PathBuf::from(self.place.to_string()),
            reason: e.to_string(),
        })?;
        self.place
            .write(&bytes)
            .map_err(|source| self.storage_error(source))?;
        self.on_disk = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::queue::Receipt;
    use crate::pipeline::ObjectEvent;

    fn message(id: i64, key: &str) -> Message {
        Message {
            id,
            group: "sst".into(),
            receipt: Receipt { id, token: 1 },
            receive_count: 2,
            event: ObjectEvent::local_removed(key.into()),
        }
    }

    #[test]
    fn a_batch_that_never_finished_is_retried_alone_and_a_second_stop_names_the_culprit() {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Local(dir.path().join("s.zarr"));
        let batch = [message(1, "sst/a.nc"), message(2, "sst/b.nc")];

        let mut first = Attempts::load_at(&location).unwrap();
        assert_eq!(first.receive_limit(10), 10);
        first.begin(&batch).unwrap();
        // The process stops here: the next flush finds both as suspects.
        let mut second = Attempts::load_at(&location).unwrap();
        assert_eq!(second.receive_limit(10), 1);
        assert!(second.culprit_reason(&batch[0]).is_none());
        second.received(&batch[..1]);
        second.begin(&batch[..1]).unwrap();
        second.end(&batch[..1]);
        assert_eq!(second.receive_limit(10), 1, "b is still a suspect");
        second.received(&batch[1..]);
        second.begin(&batch[1..]).unwrap();
        // b stops the process alone: the next flush dead-letters it with that reason.
        let mut third = Attempts::load_at(&location).unwrap();
        let reason = third.culprit_reason(&batch[1]).expect("culprit");
        assert!(
            reason.contains("sst/b.nc") && reason.contains("alone"),
            "{reason}"
        );
        assert!(third.culprit_reason(&batch[0]).is_none());
        // Replayed from the dead letters (first receive since): retried, not a culprit.
        let replayed = Message {
            receive_count: 1,
            ..batch[1].clone()
        };
        assert!(third.culprit_reason(&replayed).is_none());
        third.received(&batch[1..]);
        third.end(&batch[1..]);
        third.finish().unwrap();
        let fourth = Attempts::load_at(&location).unwrap();
        assert_eq!(fourth.receive_limit(10), 10);
        assert!(fourth.culprit_reason(&batch[1]).is_none());
    }

    #[test]
    fn a_batch_of_one_that_stops_the_process_is_a_suspect_not_a_culprit() {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Local(dir.path().join("s.zarr"));
        let one = [message(1, "sst/a.nc")];
        Attempts::load_at(&location).unwrap().begin(&one).unwrap();
        let next = Attempts::load_at(&location).unwrap();
        assert!(next.culprit_reason(&one[0]).is_none());
        assert_eq!(next.receive_limit(10), 1);
    }

    #[test]
    fn a_receive_without_suspects_means_none_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Local(dir.path().join("s.zarr"));
        let mut attempts = Attempts::load_at(&location).unwrap();
        attempts.begin(&[message(1, "sst/a.nc")]).unwrap();
        let mut next = Attempts::load_at(&location).unwrap();
        assert_eq!(next.receive_limit(10), 1);
        // a was acknowledged before the stop: the queue brings c.
        next.received(&[message(3, "sst/c.nc")]);
        assert_eq!(next.receive_limit(10), 10);
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Local(dir.path().join("s.zarr"));
        std::fs::write(dir.path().join("s.zarr.zru-attempt.json"), b"{oops").unwrap();
        let error = Attempts::load_at(&location).unwrap_err().to_string();
        assert!(error.contains("s.zarr.zru-attempt.json"), "{error}");
    }
}
