//! Parsing S3 event notification JSON into [`ObjectEvent`]s.
//!
//! Accepts the documents S3 sends (`{"Records": [...]}`), including the
//! `s3:TestEvent` sent when a notification is configured (ignored), records without a
//! `sequencer` or `versionId` and event times without a zone (local emulators).
//! Keys are form-encoded: `+` is a space, then percent-decoding.

use chrono::{DateTime, NaiveDateTime};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use thiserror::Error;

use super::event::ObjectEvent;
use crate::update::EventKind;

/// Why S3 notification JSON could not be turned into events.
#[derive(Debug, Error)]
pub enum S3EventError {
    /// The text is not JSON of an S3 notification.
    #[error("not an S3 event notification: {0}")]
    Json(#[from] serde_json::Error),
    /// A key that does not decode (form encoding, then percent-encoding) to UTF-8.
    #[error("record {index}: key {key:?} is not valid percent-encoded UTF-8")]
    Key {
        /// The record's index in `Records`.
        index: usize,
        /// The key as the notification spells it.
        key: String,
    },
    /// An `eventTime` that is not an RFC 3339 time.
    #[error("record {index}: event time {time:?} is not an RFC 3339 time")]
    Time {
        /// The record's index in `Records`.
        index: usize,
        /// The time as the notification spells it.
        time: String,
    },
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: String,
    event_time: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "eTag")]
    e_tag: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

/// The created and removed events of one notification document, in record order.
/// Test events and other event types (restore, tagging, ...) give no events.
pub fn parse_notification(json: &str) -> Result<Vec<ObjectEvent>, S3EventError> {
    let notification: Notification = serde_json::from_str(json)?;
    let mut events = Vec::new();
    for (index, record) in notification.records.into_iter().enumerate() {
        let Some(kind) = event_kind(&record.event_name) else {
            continue;
        };
        let key = decode_key(&record.s3.object.key).ok_or_else(|| S3EventError::Key {
            index,
            key: record.s3.object.key.clone(),
        })?;
        let event_time_us = parse_time(&record.event_time).ok_or_else(|| S3EventError::Time {
            index,
            time: record.event_time.clone(),
        })?;
        let object = record.s3.object;
        events.push(ObjectEvent {
            bucket: record.s3.bucket.name,
            key,
            kind,
            sequencer: object.sequencer.filter(|s| !s.is_empty()),
            etag: object.e_tag,
            size: object.size,
            version_id: object.version_id.filter(|v| !v.is_empty()),
            event_time_us,
            raw_root: None,
        });
    }
    Ok(events)
}

/// `ObjectCreated:*` and `ObjectRemoved:*`, with or without the `s3:` prefix.
fn event_kind(name: &str) -> Option<EventKind> {
    let name = name.strip_prefix("s3:").unwrap_or(name);
    if name.starts_with("ObjectCreated:") {
        Some(EventKind::Created)
    } else if name.starts_with("ObjectRemoved:") {
        Some(EventKind::Removed)
    } else {
        None
    }
}

/// Form decoding: `+` is a space, then percent-decoding.
pub(crate) fn decode_key(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// RFC 3339, or the same without a zone (read as UTC).
fn parse_time(text: &str) -> Option<i64> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_micros());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUT_AND_DELETE: &str = r#"{"Records":[
      {"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
       "eventTime":"2024-05-01T12:00:00.123Z","eventName":"ObjectCreated:Put",
       "s3":{"s3SchemaVersion":"1.0","configurationId":"c",
             "bucket":{"name":"raw","arn":"arn:aws:s3:::raw"},
             "object":{"key":"sst/dir+one/b%2Bc.nc","size":1024,"eTag":"abc",
                       "versionId":"v1","sequencer":"0055AED6DCD90281E5"}}},
      {"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
       "eventTime":"2024-05-01T12:00:01Z","eventName":"ObjectRemoved:Delete",
       "s3":{"bucket":{"name":"raw"},"object":{"key":"sst/x.nc","sequencer":"0055AED6DCD90281E6"}}},
      {"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
       "eventTime":"2024-05-01T12:00:02Z","eventName":"ObjectTagging:Put",
       "s3":{"bucket":{"name":"raw"},"object":{"key":"sst/y.nc"}}}
    ]}"#;

    #[test]
    fn created_and_removed_records_with_form_encoded_keys() {
        let events = parse_notification(PUT_AND_DELETE).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].key, "sst/dir one/b+c.nc");
        assert_eq!(events[0].kind, EventKind::Created);
        assert_eq!(events[0].bucket, "raw");
        assert_eq!(events[0].size, Some(1024));
        assert_eq!(events[0].etag.as_deref(), Some("abc"));
        assert_eq!(events[0].version_id.as_deref(), Some("v1"));
        assert_eq!(events[0].sequencer.as_deref(), Some("0055AED6DCD90281E5"));
        assert_eq!(events[0].event_time_us, 1_714_564_800_123_000);
        assert_eq!(events[1].kind, EventKind::Removed);
        assert_eq!(events[1].key, "sst/x.nc");
    }

    #[test]
    fn versioned_bucket_removals_are_removals_with_their_version() {
        let doc = r#"{"Records":[
          {"eventTime":"2024-05-01T12:00:00Z","eventName":"ObjectRemoved:DeleteMarkerCreated",
           "s3":{"bucket":{"name":"raw"},"object":{"key":"sst/a.nc","versionId":"dm1","sequencer":"0A"}}},
          {"eventTime":"2024-05-01T12:00:01Z","eventName":"s3:ObjectRemoved:Delete",
           "s3":{"bucket":{"name":"raw"},"object":{"key":"sst/a.nc","versionId":"dm1","sequencer":"0B"}}},
          {"eventTime":"2024-05-01T12:00:02Z","eventName":"LifecycleExpiration:DeleteMarkerCreated",
           "s3":{"bucket":{"name":"raw"},"object":{"key":"sst/a.nc","versionId":"dm2","sequencer":"0C"}}}
        ]}"#;
        let events = parse_notification(doc).unwrap();
        assert_eq!(events.len(), 2);
        for event in &events {
            assert_eq!(event.kind, EventKind::Removed);
            assert_eq!(event.version_id.as_deref(), Some("dm1"));
        }
        // The undelete (deleting the marker) comes after the marker in the key's order.
        assert_eq!(
            events[0].order(2).compare(&events[1].order(1)),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn test_events_are_ignored() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00.000Z","Bucket":"raw","RequestId":"r","HostId":"h"}"#;
        assert!(parse_notification(test).unwrap().is_empty());
    }

    #[test]
    fn emulator_records_without_sequencer_or_zone() {
        let doc = r#"{"Records":[{"eventTime":"2024-05-01T12:00:00.5","eventName":"s3:ObjectCreated:CompleteMultipartUpload",
            "s3":{"bucket":{"name":"raw"},"object":{"key":"a%20b.nc","size":3}}}]}"#;
        let events = parse_notification(doc).unwrap();
        assert_eq!(events[0].key, "a b.nc");
        assert_eq!(events[0].sequencer, None);
        assert_eq!(events[0].event_time_us, 1_714_564_800_500_000);
    }

    #[test]
    fn bad_documents_are_errors() {
        assert!(matches!(
            parse_notification("not json"),
            Err(S3EventError::Json(_))
        ));
        let bad_key = r#"{"Records":[{"eventTime":"2024-05-01T12:00:00Z","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"raw"},"object":{"key":"%FF.nc"}}}]}"#;
        assert!(matches!(
            parse_notification(bad_key),
            Err(S3EventError::Key { index: 0, .. })
        ));
        let bad_time = bad_key
            .replace("%FF", "ok")
            .replace("2024-05-01T12:00:00Z", "yesterday");
        assert!(matches!(
            parse_notification(&bad_time),
            Err(S3EventError::Time { index: 0, .. })
        ));
    }
}
