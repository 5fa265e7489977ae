//! What the pipeline did with each event, as printed by `zru flush`, `ingest`,
//! `remove` and `enqueue`: one line (key, dataset, action, region or reason) or one
//! JSON object per event.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::store::CommitStats;
use crate::text::{printable, redact_urls, safe_line};
use crate::update::{event_line, passed_through, Action, EventKind, Outcome};

/// Why an event was acknowledged without being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Older than the ledger's last applied event for its key.
    Stale,
    /// The same event again (redelivery, or sent twice within the dedup window).
    Duplicate,
    /// A newer event of the same key in the same batch won.
    Superseded,
    /// A created event whose object no longer exists: a removal follows it.
    Gone,
    /// A removal of a key that still has a current version, the one the store already
    /// holds (a noncurrent version was deleted in a versioned bucket).
    StillExists,
}

/// The fate of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportAction {
    /// Sent to the queue (not applied yet).
    Enqueued,
    /// Applied to the store: what it did there.
    Applied(Action),
    /// Not applied, and acknowledged: why.
    Skipped(SkipReason),
    /// Rejected (see [`Report::dead_lettered`]).
    Rejected,
}

impl std::fmt::Display for ReportAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportAction::Enqueued => f.write_str("enqueued"),
            ReportAction::Applied(action) => write!(f, "{action}"),
            ReportAction::Skipped(reason) => {
                let reason = match reason {
                    SkipReason::Stale => "stale",
                    SkipReason::Duplicate => "duplicate",
                    SkipReason::Superseded => "superseded",
                    SkipReason::Gone => "gone",
                    SkipReason::StillExists => "still-exists",
                };
                write!(f, "skipped({reason})")
            }
            ReportAction::Rejected => f.write_str("rejected"),
        }
    }
}

impl Serialize for ReportAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One event's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Queue message id (none for an event refused before it was enqueued).
    pub message_id: Option<i64>,
    /// The object key.
    pub key: String,
    /// Created or removed.
    pub event: EventKind,
    /// The dataset the key routes to (`None`: no dataset takes it).
    pub dataset: Option<String>,
    /// What happened.
    pub action: ReportAction,
    /// The region written or blanked, per dimension: `[start, end)` indices.
    pub region: Option<crate::update::Region>,
    /// Why it was rejected or skipped, or a note on an applied event.
    pub reason: Option<String>,
    /// How many times the queue has delivered the message, this one included.
    pub receive_count: u32,
    /// Rejected on its last allowed receive, or for good: now in the dead letters.
    pub dead_lettered: bool,
    /// Rejected for a reason no retry can get past (the file, key or schema):
    /// dead-lettered at once instead of retried.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub permanent: bool,
    /// The event's S3 sequencer, if any.
    pub sequencer: Option<String>,
    /// What the store commit wrote, for an applied event.
    pub stats: Option<CommitStats>,
}

impl Report {
    /// A report for an event with no store outcome.
    pub fn new(key: &str, event: EventKind, dataset: Option<&str>, action: ReportAction) -> Self {
        Self {
            message_id: None,
            key: key.to_string(),
            event,
            dataset: dataset.map(String::from),
            action,
            region: None,
            reason: None,
            receive_count: 0,
            dead_lettered: false,
            permanent: false,
            sequencer: None,
            stats: None,
        }
    }

    /// The report of an updater outcome.
    pub(crate) fn from_outcome(outcome: Outcome) -> Self {
        let action = if outcome.is_rejected() {
            ReportAction::Rejected
        } else {
            ReportAction::Applied(outcome.action)
        };
        Self {
            region: outcome.region,
            reason: outcome.reason,
            stats: outcome.stats,
            permanent: outcome.permanent,
            ..Self::new(
                &outcome.key,
                outcome.event,
                outcome.dataset.as_deref(),
                action,
            )
        }
    }

    /// The report with `reason` set.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// True for events that were rejected.
    pub fn failed(&self) -> bool {
        self.action == ReportAction::Rejected
    }

    /// One line: key, dataset, action, region or reason. Control characters in the
    /// key, dataset and reason are escaped (a key is untrusted text that must not drive
    /// the terminal or split the line) and credentials in URLs are hidden
    /// ([`crate::text`]).
    pub fn line(&self) -> String {
        let reason = self.reason.as_deref().map(safe_line);
        event_line(
            &printable(&self.key),
            self.dataset.as_deref().map(printable).as_deref(),
            &self.action,
            self.region.as_ref(),
            reason.as_deref(),
            passed_through(self.stats.as_ref()),
        )
    }

    /// The report with credentials in URLs of its reason hidden (for JSON output,
    /// where serde escapes control characters).
    pub fn redacted(&self) -> Self {
        Self {
            reason: self.reason.as_deref().map(redact_urls),
            ..self.clone()
        }
    }
}

/// Counts of actions, for the summary line.
pub fn summary(reports: &[Report]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for report in reports {
        *counts.entry(report.action.to_string()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
    format!(
        "{} event{}: {}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        if parts.is_empty() {
            "nothing to do".to_string()
        } else {
            parts.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_print_as_the_cli_shows_them() {
        let stale = Report::new(
            "sst/a.nc",
            EventKind::Created,
            Some("sst"),
            ReportAction::Skipped(SkipReason::Stale),
        );
        assert_eq!(stale.line(), "sst/a.nc\tsst\tskipped(stale)\t");
        let json = serde_json::to_value(&stale).unwrap();
        assert_eq!(json["action"], "skipped(stale)");
        assert!(!stale.failed());
        let dead = Report::new("k", EventKind::Removed, None, ReportAction::Rejected)
            .with_reason("k: corrupt");
        assert!(dead.failed());
        assert_eq!(dead.line(), "k\t-\trejected\tk: corrupt");
        assert_eq!(
            summary(&[stale, dead]),
            "2 events: 1 rejected, 1 skipped(stale)"
        );
    }

    #[test]
    fn keys_with_control_bytes_print_escaped_and_urls_redacted() {
        let key = "sst/\x1b]0;pwned\x07a\0b\tc\nd\x7f\u{9b}.nc";
        let report = Report::new(key, EventKind::Created, Some("sst"), ReportAction::Rejected)
            .with_reason(format!(
                "{key}: GET https://user:hunter2@minio:9000/raw/{key} failed"
            ));
        let line = report.line();
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{line:?}"
        );
        // Exactly the line's own three separators.
        assert_eq!(line.matches('\t').count(), 3, "{line:?}");
        assert!(
            line.starts_with("sst/\\x1b]0;pwned\\x07a\\x00b\\x09c\\x0ad\\x7f\\u{009b}.nc\t"),
            "{line:?}"
        );
        assert!(
            !line.contains("hunter2") && line.contains("https://user:***@minio:9000"),
            "{line}"
        );
        let json = serde_json::to_string(&report.redacted()).unwrap();
        assert!(
            !json.contains("hunter2") && !json.contains('\x1b'),
            "{json}"
        );
    }
}
