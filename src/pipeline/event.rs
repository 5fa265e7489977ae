//! Object events as a bucket notifies them, and their order for one key.
//!
//! S3 gives every event of a key a `sequencer`: hex strings that order events of the
//! same key once the shorter is right-padded with zeros to equal length. Emulators (and local watchers) have
//! none; events are then ordered by event time, then by arrival in the queue.

use std::cmp::Ordering;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::update::{Event, EventKind};

/// One change to one object of the raw bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEvent {
    /// The raw bucket's name (`LOCAL_BUCKET` for local events).
    pub bucket: String,
    /// Object key, decoded (no form encoding).
    pub key: String,
    /// Created (new or revised) or removed.
    pub kind: EventKind,
    /// S3's sequencer: orders the events of one key (see [`EventOrder`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// The object's ETag, for created events on S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The object's size in bytes, for created events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The object version (versioned buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Event time in microseconds since the Unix epoch (UTC).
    pub event_time_us: i64,
    /// For a local event (watcher, `zru ingest`, `zru remove`): the raw root it was made
    /// for, canonical. The flush refuses it if it reads another raw root. `None` for
    /// S3 notifications (their bucket names where the object lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_root: Option<String>,
}

/// The bucket name of local events (the raw root directory is the bucket).
pub const LOCAL_BUCKET: &str = "local";

impl ObjectEvent {
    /// A created (or revised) event for a local file, stamped now. The etag is the
    /// file's size and modification time, which change with every rewrite.
    pub fn local_created(key: String, path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        let modified = meta
            .modified()?
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(Self {
            bucket: LOCAL_BUCKET.into(),
            key,
            kind: EventKind::Created,
            sequencer: None,
            etag: Some(format!("{:x}-{modified:x}", meta.len())),
            size: Some(meta.len()),
            version_id: None,
            event_time_us: now_us(),
            raw_root: None,
        })
    }

    /// A removed event for a local key, stamped now.
    pub fn local_removed(key: String) -> Self {
        Self {
            bucket: LOCAL_BUCKET.into(),
            key,
            kind: EventKind::Removed,
            sequencer: None,
            etag: None,
            size: None,
            version_id: None,
            event_time_us: now_us(),
            raw_root: None,
        }
    }

    /// The event, recorded as made for the raw root `root` (see [`Self::raw_root`]).
    pub fn with_raw_root(mut self, root: &Path) -> Self {
        self.raw_root = Some(
            super::raw_file::canonical_root(root)
                .to_string_lossy()
                .into_owned(),
        );
        self
    }

    /// The queue's deduplication id: the same notification sent twice has the same one.
    pub fn dedup_id(&self) -> String {
        let kind = match self.kind {
            EventKind::Created => "created",
            EventKind::Removed => "removed",
        };
        match &self.sequencer {
            Some(sequencer) => format!("{}/{}|{kind}|{sequencer}", self.bucket, self.key),
            None => format!(
                "{}/{}|{kind}|{}|{}",
                self.bucket,
                self.key,
                self.event_time_us,
                self.etag.as_deref().unwrap_or("")
            ),
        }
    }

    /// Its order once it arrived as queue message `arrival`.
    pub fn order(&self, arrival: i64) -> EventOrder {
        EventOrder {
            sequencer: self.sequencer.clone(),
            event_time_us: self.event_time_us,
            arrival,
        }
    }

    /// The event as the updater applies it.
    pub fn update_event(&self) -> Event {
        Event {
            key: self.key.clone(),
            kind: self.kind,
        }
    }
}

/// How far ahead of this host's clock an event time may be (clock skew between the
/// host that stamped it and this one): one hour. An event time beyond it is refused:
/// trusted, it would make every later event of its key (without a sequencer) stale.
pub const MAX_FUTURE_SKEW_US: i64 = 3_600 * 1_000_000;

impl ObjectEvent {
    /// Why this event cannot be trusted at `now_us`: its event time is more than
    /// `MAX_FUTURE_SKEW_US` ahead. `None` for a believable event time.
    pub fn future_time_error(&self, now_us: i64) -> Option<String> {
        if self.event_time_us <= now_us.saturating_add(MAX_FUTURE_SKEW_US) {
            return None;
        }
        let time = chrono::DateTime::from_timestamp_micros(self.event_time_us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| format!("{} us", self.event_time_us));
        Some(format!(
            "{}: event time {time} is more than 1 hour ahead of this host's clock: an event \
             from the future would make every later event of its key stale",
            self.key
        ))
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Where an event stands among the events of its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOrder {
    /// S3's sequencer, when the event has one: it decides first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// Event time in microseconds since the Unix epoch (UTC): decides without
    /// sequencers.
    pub event_time_us: i64,
    /// Queue message id: later arrivals have larger ids.
    pub arrival: i64,
}

impl EventOrder {
    /// True if this order rests on an event time more than `MAX_FUTURE_SKEW_US` ahead
    /// of `now_us` with no sequencer (a ledger entry recorded before such times were
    /// refused): it is not trusted to make a later event stale.
    pub fn is_untrusted_future(&self, now_us: i64) -> bool {
        self.sequencer.is_none() && self.event_time_us > now_us.saturating_add(MAX_FUTURE_SKEW_US)
    }

    /// By sequencer when both events have one; otherwise by event time, then arrival.
    /// `Equal` means the same event delivered again.
    pub fn compare(&self, other: &Self) -> Ordering {
        match (&self.sequencer, &other.sequencer) {
            (Some(a), Some(b)) => compare_sequencers(a, b),
            _ => self
                .event_time_us
                .cmp(&other.event_time_us)
                .then(self.arrival.cmp(&other.arrival)),
        }
    }
}

/// Compares S3 sequencers of one key.
///
/// Amazon S3 User Guide, "Event message structure"
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>),
/// on the `sequencer` key: sequencers can be of different lengths, so to compare them
/// first right-pad the shorter value with zeros, then compare lexicographically; the
/// greater hexadecimal value is the later event. Hex digits compare case-insensitively.
pub fn compare_sequencers(a: &str, b: &str) -> Ordering {
    let width = a.len().max(b.len());
    let pad = |s: &str| format!("{:0<width$}", s.to_ascii_uppercase());
    pad(a).cmp(&pad(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(sequencer: Option<&str>, time: i64, arrival: i64) -> EventOrder {
        EventOrder {
            sequencer: sequencer.map(String::from),
            event_time_us: time,
            arrival,
        }
    }

    #[test]
    fn sequencers_of_different_lengths_compare_after_right_padding() {
        // "FF" is "FF0" against "100": later (left-padding said earlier).
        assert_eq!(compare_sequencers("FF", "100"), Ordering::Greater);
        assert_eq!(compare_sequencers("0A", "0a0"), Ordering::Equal);
        assert_eq!(compare_sequencers("0a", "A"), Ordering::Less);
        assert_eq!(
            compare_sequencers("0055AED6DCD90281E5", "0055AED6DCD90281E4"),
            Ordering::Greater
        );
        // A longer sequencer with the same leading digits is later.
        assert_eq!(
            compare_sequencers("0055AED6DCD90281E5", "0055AED6DCD90281E501"),
            Ordering::Less
        );
        assert_eq!(
            compare_sequencers("0055AED6DCD90281E6", "0055AED6DCD90281E5FF"),
            Ordering::Greater
        );
    }

    #[test]
    fn sequencer_wins_over_event_time_and_arrival() {
        let early = order(Some("100"), 200, 9);
        let late = order(Some("FF"), 100, 1);
        assert_eq!(early.compare(&late), Ordering::Less);
    }

    #[test]
    fn without_sequencer_event_time_then_arrival() {
        assert_eq!(
            order(None, 1, 9).compare(&order(None, 2, 1)),
            Ordering::Less
        );
        assert_eq!(
            order(None, 5, 2).compare(&order(None, 5, 3)),
            Ordering::Less
        );
        assert_eq!(
            order(None, 5, 3).compare(&order(None, 5, 3)),
            Ordering::Equal
        );
        assert_eq!(
            order(Some("1"), 5, 3).compare(&order(None, 4, 3)),
            Ordering::Greater
        );
    }

    #[test]
    fn event_times_from_the_future_are_not_believed() {
        let now = now_us();
        let mut event = ObjectEvent::local_removed("sst/a.nc".into());
        assert_eq!(event.future_time_error(now), None);
        event.event_time_us = now + MAX_FUTURE_SKEW_US - 1;
        assert_eq!(event.future_time_error(now), None);
        // 9999-12-31T00:00:00Z
        event.event_time_us = 253_402_214_400_000_000;
        let error = event.future_time_error(now).unwrap();
        assert!(error.contains("9999-12-31T00:00:00Z"), "{error}");
        assert!(event.order(1).is_untrusted_future(now));
        event.sequencer = Some("01".into());
        assert!(!event.order(1).is_untrusted_future(now));
    }

    #[test]
    fn dedup_id_uses_the_sequencer_when_there_is_one() {
        let mut event = ObjectEvent::local_removed("sst/a.nc".into());
        let without = event.dedup_id();
        assert!(without.contains(&event.event_time_us.to_string()));
        event.sequencer = Some("00AB".into());
        event.event_time_us += 1;
        assert_eq!(event.dedup_id(), "local/sst/a.nc|removed|00AB");
    }
}
