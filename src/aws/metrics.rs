//! Freshness you can watch: per-dataset metrics of each updater batch as CloudWatch
//! Embedded Metric Format (EMF) documents, and the updater's structured log lines.
//!
//! An EMF document is one JSON object on one log line: CloudWatch Logs extracts the
//! metrics it declares under `_aws.CloudWatchMetrics` (namespace, dimension sets,
//! metric names and units) from the members of the same name at its root, at the
//! `_aws.Timestamp` (milliseconds since the epoch). See the specification:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.
//! Lambda sends the function's standard output to CloudWatch Logs, so printing the
//! document is enough: no `PutMetricData` call, no permission.
//!
//! The library does not print: [`emit`] hands each document to `tracing` under the
//! target [`EMF_TARGET`], and the Lambda functions' subscriber
//! ([`crate::aws::init_logging`]) writes those events to stdout as they are, one line
//! each, apart from the JSON log lines.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::sqs::Received;
use crate::pipeline::event::{now_us, ObjectEvent};
use crate::pipeline::queue::Message;
use crate::pipeline::report::{Report, ReportAction};
use crate::update::EventKind;

/// The CloudWatch namespace of zru's metrics.
pub const NAMESPACE: &str = "zru";

/// The `tracing` target of EMF documents (written to stdout verbatim).
pub const EMF_TARGET: &str = "zru::emf";

/// The dimension of the per-dataset metrics: the dataset's name.
pub const DIMENSION: &str = "Dataset";

/// The dimension naming the function (`AWS_LAMBDA_FUNCTION_NAME`): every metric is
/// published per function and dataset, and per function over all datasets (the
/// template's alarms watch the latter).
pub const FUNCTION_DIMENSION: &str = "Function";

/// Metric names and their CloudWatch units, in the order documents declare them.
pub const METRICS: [(&str, &str); 9] = [
    ("EventsApplied", "Count"),
    ("EventsRejected", "Count"),
    ("EventsDeadLettered", "Count"),
    ("EventsSkipped", "Count"),
    ("LagMilliseconds", "Milliseconds"),
    ("LagOverTargetMilliseconds", "Milliseconds"),
    ("FilesApplied", "Count"),
    ("FilesPerSecond", "Count/Second"),
    ("BytesPerSecond", "Bytes/Second"),
];

/// EMF allows at most this many values of one metric in one document.
pub const MAX_VALUES: usize = 100;

/// How fresh each dataset should be: `ZRU_LAG_TARGET_SECONDS` (every dataset) and
/// `ZRU_LAG_TARGETS` (`name=seconds,name=seconds`, per dataset, over the former).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagTargets {
    /// The target of datasets not named in `per_dataset`.
    pub default: Option<Duration>,
    /// Per dataset name.
    pub per_dataset: BTreeMap<String, Duration>,
}

impl LagTargets {
    /// Parses `name=seconds` pairs separated by commas; the error says which pair.
    pub fn parse(default: Option<Duration>, pairs: &str) -> Result<Self, String> {
        let mut per_dataset = BTreeMap::new();
        for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = pair.split_once('=').and_then(|(name, seconds)| {
                let seconds = seconds.trim().parse::<u64>().ok()?;
                Some((name.trim().to_string(), Duration::from_secs(seconds)))
            });
            match parsed {
                Some((name, target)) if !name.is_empty() => {
                    per_dataset.insert(name, target);
                }
                _ => return Err(format!("{pair:?} is not name=seconds")),
            }
        }
        Ok(Self {
            default,
            per_dataset,
        })
    }

    /// The target of `dataset`, if any.
    pub fn for_dataset(&self, dataset: &str) -> Option<Duration> {
        self.per_dataset.get(dataset).copied().or(self.default)
    }
}

/// What one batch did to one dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DatasetMetrics {
    /// The function that applied the batch (the `Function` dimension).
    pub function: String,
    /// The dataset.
    pub dataset: String,
    /// Events applied to the store (appended, overwrote, blanked, unchanged).
    pub applied: u64,
    /// Events rejected (retried later, or dead-lettered).
    pub rejected: u64,
    /// Events moved to the dead letters.
    pub dead_lettered: u64,
    /// Events acknowledged without change (duplicate, stale, superseded, gone).
    pub skipped: u64,
    /// Per applied event: milliseconds from its S3 event time to the commit (at most
    /// [`MAX_VALUES`], the largest kept).
    pub lag_ms: Vec<f64>,
    /// Created events applied (raw files read into the store).
    pub files: u64,
    /// Their bytes (the objects' sizes).
    pub bytes: u64,
    /// Wall time of the batch, seconds (downloads, apply, commit).
    pub seconds: f64,
    /// The dataset's lag target, milliseconds.
    pub lag_target_ms: Option<f64>,
}

impl DatasetMetrics {
    fn per_second(&self, count: u64) -> f64 {
        if self.seconds > 0.0 {
            count as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// How far the largest lag is over the target (0 when under it); `None` without a
    /// target or without applied events.
    pub fn lag_over_target_ms(&self) -> Option<f64> {
        let target = self.lag_target_ms?;
        let worst = self.lag_ms.iter().copied().reduce(f64::max)?;
        Some((worst - target).max(0.0))
    }

    /// The EMF document of these figures at `timestamp_ms`.
    pub fn emf(&self, timestamp_ms: i64) -> Value {
        let over = self.lag_over_target_ms();
        let metrics: Vec<Value> = METRICS
            .iter()
            .filter(|(name, _)| match *name {
                "LagMilliseconds" => !self.lag_ms.is_empty(),
                "LagOverTargetMilliseconds" => over.is_some(),
                _ => true,
            })
            .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[FUNCTION_DIMENSION, DIMENSION], [FUNCTION_DIMENSION]],
                    "Metrics": metrics,
                }],
            },
            FUNCTION_DIMENSION: self.function,
            DIMENSION: self.dataset,
            "EventsApplied": self.applied,
            "EventsRejected": self.rejected,
            "EventsDeadLettered": self.dead_lettered,
            "EventsSkipped": self.skipped,
            "FilesApplied": self.files,
            "FilesPerSecond": self.per_second(self.files),
            "BytesPerSecond": self.per_second(self.bytes),
        });
        if !self.lag_ms.is_empty() {
            doc["LagMilliseconds"] = json!(self.lag_ms);
        }
        if let Some(over) = over {
            doc["LagOverTargetMilliseconds"] = json!(over);
        }
        doc
    }
}

/// Who emits the metrics and against which targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsContext {
    /// The `Function` dimension (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function: String,
    /// The datasets' lag targets.
    pub targets: LagTargets,
}

/// Per dataset (in name order), what a batch did: `reports` of the flush, `events` the
/// batch's events by message id (the reports' `message_id`), `commit_us` when the
/// batch committed (microseconds since the epoch), `seconds` its wall time.
pub fn batch_metrics(
    context: &MetricsContext,
    reports: &[Report],
    events: &HashMap<i64, &ObjectEvent>,
    commit_us: i64,
    seconds: f64,
) -> Vec<DatasetMetrics> {
    let mut by_dataset: BTreeMap<String, DatasetMetrics> = BTreeMap::new();
    for report in reports {
        let Some(dataset) = &report.dataset else {
            continue;
        };
        let m = by_dataset
            .entry(dataset.clone())
            .or_insert_with(|| DatasetMetrics {
                function: context.function.clone(),
                dataset: dataset.clone(),
                seconds,
                lag_target_ms: context
                    .targets
                    .for_dataset(dataset)
                    .map(|t| t.as_secs_f64() * 1_000.0),
                ..DatasetMetrics::default()
            });
        let event = report.message_id.and_then(|id| events.get(&id));
        match report.action {
            ReportAction::Applied(_) => {
                m.applied += 1;
                if let Some(event) = event {
                    let lag_us = commit_us.saturating_sub(event.event_time_us).max(0);
                    m.lag_ms.push(lag_us as f64 / 1_000.0);
                    if event.kind == EventKind::Created {
                        m.files += 1;
                        m.bytes += event.size.unwrap_or(0);
                    }
                }
            }
            ReportAction::Rejected => m.rejected += 1,
            ReportAction::Skipped(_) => m.skipped += 1,
            ReportAction::Enqueued => {}
        }
        if report.dead_lettered {
            m.dead_lettered += 1;
        }
    }
    for m in by_dataset.values_mut() {
        if m.lag_ms.len() > MAX_VALUES {
            m.lag_ms.sort_by(|a, b| b.total_cmp(a));
            m.lag_ms.truncate(MAX_VALUES);
        }
    }
    by_dataset.into_values().collect()
}

/// Emits one EMF document per dataset (see the module documentation).
pub fn emit(metrics: &[DatasetMetrics], timestamp_ms: i64) {
    for m in metrics {
        tracing::info!(target: EMF_TARGET, "{}", m.emf(timestamp_ms));
    }
}

/// After a batch's flush: one structured log line per report (SQS message id, key,
/// sequencer, dataset, action, region, the batch's milliseconds, and the reason), and
/// one EMF document per dataset. `messages` are the batch's messages as the flush
/// received them (their receipt token is the index in `batch`).
pub(crate) fn observe_batch(
    context: &MetricsContext,
    reports: &[Report],
    messages: &[Message],
    batch: &[Received],
    started: Instant,
) {
    let seconds = started.elapsed().as_secs_f64();
    let ms = started.elapsed().as_millis() as u64;
    let by_id: HashMap<i64, &Message> = messages.iter().map(|m| (m.id, m)).collect();
    for report in reports {
        let message = report.message_id.and_then(|id| by_id.get(&id));
        let message_id = message
            .and_then(|m| usize::try_from(m.receipt.token).ok())
            .and_then(|index| batch.get(index))
            .map_or("", |m| m.message_id.as_str());
        let region = report.region.as_ref().map(ToString::to_string);
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    message_id,
                    key = %report.key,
                    sequencer = report.sequencer.as_deref(),
                    dataset = report.dataset.as_deref(),
                    action = %report.action,
                    region = region.as_deref(),
                    ms,
                    reason = report.reason.as_deref(),
                    dead_lettered = report.dead_lettered,
                    "{}",
                    report.line()
                )
            };
        }
        if report.failed() {
            line!(warn);
        } else {
            line!(info);
        }
    }
    let events: HashMap<i64, &ObjectEvent> = messages.iter().map(|m| (m.id, &m.event)).collect();
    let commit_us = now_us();
    emit(
        &batch_metrics(context, reports, &events, commit_us, seconds),
        commit_us / 1_000,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::{Action, Region};

    fn report(id: i64, dataset: &str, action: ReportAction) -> Report {
        Report {
            message_id: Some(id),
            ..Report::new("k", EventKind::Created, Some(dataset), action)
        }
    }

    fn event(kind: EventKind, time_us: i64, size: u64) -> ObjectEvent {
        ObjectEvent {
            kind,
            event_time_us: time_us,
            size: Some(size),
            ..ObjectEvent::local_removed("k".into())
        }
    }

    #[test]
    fn counts_lag_and_throughput_per_dataset() {
        let created = event(EventKind::Created, 1_000_000, 300);
        let removed = event(EventKind::Removed, 2_000_000, 0);
        let events = HashMap::from([(1, &created), (2, &removed), (3, &created)]);
        let mut dead = report(4, "argo", ReportAction::Rejected);
        dead.dead_lettered = true;
        let reports = vec![
            Report {
                region: Some(Region::along("time", 0, 1)),
                ..report(1, "sst", ReportAction::Applied(Action::Appended))
            },
            report(2, "sst", ReportAction::Applied(Action::Blanked)),
            report(
                3,
                "sst",
                ReportAction::Skipped(crate::pipeline::SkipReason::Duplicate),
            ),
            dead,
            Report::new("x", EventKind::Created, None, ReportAction::Rejected),
        ];
        let context = MetricsContext {
            function: "zru-updater".into(),
            targets: LagTargets::parse(Some(Duration::from_secs(3_600)), "sst=2").unwrap(),
        };
        let metrics = batch_metrics(&context, &reports, &events, 3_500_000, 2.0);
        assert_eq!(metrics.len(), 2);
        let (argo, sst) = (&metrics[0], &metrics[1]);
        assert_eq!(
            (argo.dataset.as_str(), argo.rejected, argo.dead_lettered),
            ("argo", 1, 1)
        );
        assert!(argo.lag_ms.is_empty());
        assert_eq!(
            (sst.applied, sst.skipped, sst.files, sst.bytes),
            (2, 1, 1, 300)
        );
        assert_eq!(sst.lag_ms, vec![2_500.0, 1_500.0]);
        // sst's own target (2 s) is exceeded by 0.5 s; argo has the default, no lag.
        assert_eq!(sst.lag_over_target_ms(), Some(500.0));
        assert_eq!(argo.lag_target_ms, Some(3_600_000.0));
        assert_eq!(argo.lag_over_target_ms(), None);
        assert_eq!(sst.emf(1)["LagOverTargetMilliseconds"], json!(500.0));
        assert_eq!(sst.emf(1)["Function"], json!("zru-updater"));
        let doc = sst.emf(1_700_000_000_000);
        assert_eq!(doc["FilesPerSecond"], json!(0.5));
        assert_eq!(doc["BytesPerSecond"], json!(150.0));
    }

    /// The exact shape the specification requires: `_aws` with an integer
    /// `Timestamp` and one directive (namespace, dimension sets of member names,
    /// metric definitions with units), and every dimension and metric a root member.
    #[test]
    fn documents_follow_the_emf_specification() {
        let m = DatasetMetrics {
            function: "zru-updater".into(),
            dataset: "sst".into(),
            applied: 3,
            lag_target_ms: Some(15.0),
            lag_ms: vec![10.5, 20.0],
            files: 2,
            bytes: 2048,
            seconds: 4.0,
            ..DatasetMetrics::default()
        };
        let doc = m.emf(1_700_000_000_123);
        let aws = doc["_aws"].as_object().unwrap();
        assert_eq!(aws.len(), 2);
        assert_eq!(aws["Timestamp"], json!(1_700_000_000_123_i64));
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        let directive = directives[0].as_object().unwrap();
        let keys: Vec<&str> = directive.keys().map(String::as_str).collect();
        assert_eq!(keys, ["Namespace", "Dimensions", "Metrics"]);
        assert_eq!(directive["Namespace"], json!("zru"));
        assert_eq!(
            directive["Dimensions"],
            json!([["Function", "Dataset"], ["Function"]])
        );
        for set in directive["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                assert!(doc[name.as_str().unwrap()].is_string());
            }
        }
        let metrics = directive["Metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), METRICS.len());
        for metric in metrics {
            let name = metric["Name"].as_str().unwrap();
            let unit = metric["Unit"].as_str().unwrap();
            assert!(METRICS.contains(&(name, unit)), "{name} {unit}");
            let value = &doc[name];
            assert!(
                value.is_number()
                    || value
                        .as_array()
                        .is_some_and(|v| v.len() <= MAX_VALUES && v.iter().all(|x| x.is_number())),
                "{name}: {value}"
            );
        }
        assert_eq!(doc["LagMilliseconds"], json!([10.5, 20.0]));
        assert_eq!(doc["LagOverTargetMilliseconds"], json!(5.0));
        assert_eq!(doc["BytesPerSecond"], json!(512.0));
        // One line: no newline inside the document.
        assert!(!doc.to_string().contains('\n'));
        // Without applied events there is no lag to declare.
        let idle = DatasetMetrics {
            dataset: "sst".into(),
            ..DatasetMetrics::default()
        }
        .emf(1);
        let declared: Vec<&str> = idle["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(!declared.contains(&"LagMilliseconds"));
        assert!(!declared.contains(&"LagOverTargetMilliseconds"));
        assert!(idle.get("LagMilliseconds").is_none());
        assert_eq!(idle["FilesPerSecond"], json!(0.0));
    }

    #[test]
    fn lag_targets_parse_and_name_a_bad_pair() {
        let targets = LagTargets::parse(None, " sst=60, argo = 86400 ,").unwrap();
        assert_eq!(targets.for_dataset("sst"), Some(Duration::from_secs(60)));
        assert_eq!(
            targets.for_dataset("argo"),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(targets.for_dataset("other"), None);
        let error = LagTargets::parse(None, "sst=60,argo").unwrap_err();
        assert!(error.contains("\"argo\""), "{error}");
        assert!(LagTargets::parse(None, "=5").is_err());
        assert!(LagTargets::parse(None, "sst=soon").is_err());
    }

    #[test]
    fn at_most_a_hundred_lag_values() {
        let created = event(EventKind::Created, 0, 1);
        let events: HashMap<i64, &ObjectEvent> = (0..150).map(|i| (i, &created)).collect();
        let reports: Vec<Report> = (0..150)
            .map(|i| report(i, "sst", ReportAction::Applied(Action::Appended)))
            .collect();
        let metrics = batch_metrics(&MetricsContext::default(), &reports, &events, 5_000, 1.0);
        assert_eq!(metrics[0].lag_ms.len(), MAX_VALUES);
        assert_eq!(metrics[0].applied, 150);
    }
}
