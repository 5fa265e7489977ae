//! What CloudWatch says of a deployment now, for `zru doctor`: the states of the
//! stack's alarms, each dataset's latest lag (the updater's `LagMilliseconds`
//! metric), and the age of the queue's oldest event (`AWS/SQS`
//! `ApproximateAgeOfOldestMessage`).
//!
//! A figure CloudWatch has no data point for in the window is reported as such ("no
//! lag data in the last N minutes"), never as zero: a dataset whose events are stuck
//! publishes no lag at all.

use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Datapoint, Dimension, Statistic};

use super::metrics::{LagTargets, DIMENSION, FUNCTION_DIMENSION, NAMESPACE};
use super::sdk::{describe, Clients};

/// One alarm as DescribeAlarms gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    /// The alarm's name.
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// Why it is in that state (CloudWatch's text).
    pub reason: String,
}

impl AlarmState {
    fn new(
        name: Option<&str>,
        state: Option<&aws_sdk_cloudwatch::types::StateValue>,
        reason: Option<&str>,
    ) -> Self {
        Self {
            name: name.unwrap_or_default().to_string(),
            state: state.map(|s| s.as_str().to_string()).unwrap_or_default(),
            reason: reason.unwrap_or_default().to_string(),
        }
    }
}

/// The alarms check: a failure when an alarm is in `ALARM`, or when no alarm has the
/// prefix (a wrong prefix or stack); otherwise the count per state.
pub fn alarms_verdict(prefix: &str, alarms: &[AlarmState]) -> Result<String, String> {
    if alarms.is_empty() {
        return Err(format!(
            "no alarm named {prefix}*: set ZRU_ALARM_PREFIX (or --alarm-prefix) to the \
             stack output AlarmPrefix"
        ));
    }
    let firing: Vec<String> = alarms
        .iter()
        .filter(|a| a.state == "ALARM")
        .map(|a| format!("{} ({})", a.name, a.reason))
        .collect();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for alarm in alarms {
        match counts.iter_mut().find(|(s, _)| *s == alarm.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((alarm.state.clone(), 1)),
        }
    }
    counts.sort();
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let summary = format!("{} alarm(s) {prefix}*: {}", alarms.len(), counts.join(", "));
    if firing.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{summary}; in ALARM: {}", firing.join("; ")))
    }
}

/// The latest data point of a series (by timestamp) and the largest maximum of all.
fn latest_and_peak(points: &[(i64, f64)]) -> Option<((i64, f64), f64)> {
    let latest = points.iter().copied().max_by_key(|(t, _)| *t)?;
    let peak = points.iter().map(|(_, v)| *v).fold(f64::MIN, f64::max);
    Some((latest, peak))
}

/// `2026-12-02T05:01:00Z` for seconds since the epoch.
fn utc(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{seconds} s since the epoch"))
}

fn minutes(window: Duration) -> u64 {
    window.as_secs() / 60
}

/// The lag line of one dataset from the per-minute maxima of `LagMilliseconds` in the
/// window (seconds since the epoch, milliseconds): a failure when its latest value is
/// over the dataset's target.
pub fn lag_verdict(
    dataset: &str,
    points: &[(i64, f64)],
    window: Duration,
    target: Option<Duration>,
) -> Result<String, String> {
    let Some(((at, latest), peak)) = latest_and_peak(points) else {
        return Ok(format!(
            "{dataset}: no lag data in the last {} minutes (no event applied then; \
             events stuck in the queue show in the queue age)",
            minutes(window)
        ));
    };
    let seconds = |ms: f64| format!("{:.1} s", ms / 1000.0);
    let mut line = format!(
        "{dataset}: latest {} (largest of the minute at {}), largest {} in the last {} \
         minutes",
        seconds(latest),
        utc(at),
        seconds(peak),
        minutes(window)
    );
    match target {
        Some(target) if latest > target.as_millis() as f64 => {
            Err(format!("{line}: over its target of {} s", target.as_secs()))
        }
        Some(target) => {
            line.push_str(&format!(", target {} s", target.as_secs()));
            Ok(line)
        }
        None => Ok(line),
    }
}

/// The queue-age line from the per-minute maxima of `ApproximateAgeOfOldestMessage`
/// (seconds since the epoch, seconds).
pub fn queue_age_verdict(queue: &str, points: &[(i64, f64)], window: Duration) -> String {
    match latest_and_peak(points) {
        None => format!(
            "{queue}: no queue-age data in the last {} minutes",
            minutes(window)
        ),
        Some(((at, latest), peak)) => format!(
            "{queue}: oldest event {latest:.0} s old at {}, at most {peak:.0} s in the last \
             {} minutes",
            utc(at),
            minutes(window)
        ),
    }
}

/// Every alarm whose name starts with `prefix` (DescribeAlarms, every page).
pub async fn alarms(clients: &Clients, prefix: &str) -> Result<Vec<AlarmState>, String> {
    let mut found = Vec::new();
    let mut pages = clients
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("DescribeAlarms {prefix}*: {}", describe(&e)))?;
        for alarm in page.metric_alarms() {
            found.push(AlarmState::new(
                alarm.alarm_name(),
                alarm.state_value(),
                alarm.state_reason(),
            ));
        }
        for alarm in page.composite_alarms() {
            found.push(AlarmState::new(
                alarm.alarm_name(),
                alarm.state_value(),
                alarm.state_reason(),
            ));
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// Per-minute maxima of one metric over the last `window`: (seconds since the epoch,
/// value).
async fn maxima(
    clients: &Clients,
    namespace: &str,
    metric: &str,
    dimensions: Vec<Dimension>,
    window: Duration,
) -> Result<Vec<(i64, f64)>, String> {
    let now = std::time::SystemTime::now();
    let start = now.checked_sub(window).unwrap_or(std::time::UNIX_EPOCH);
    let response = clients
        .cloudwatch
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(metric)
        .set_dimensions(Some(dimensions))
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(now))
        .period(60)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .map_err(|e| format!("GetMetricStatistics {namespace} {metric}: {}", describe(&e)))?;
    Ok(response
        .datapoints()
        .iter()
        .filter_map(|p: &Datapoint| Some((p.timestamp()?.secs(), p.maximum()?)))
        .collect())
}

/// The updater functions that published `LagMilliseconds` for `dataset` (ListMetrics:
/// the metric per function and dataset), by name.
async fn lag_functions(clients: &Clients, dataset: &str) -> Result<Vec<String>, String> {
    let mut functions = Vec::new();
    let mut pages = clients
        .cloudwatch
        .list_metrics()
        .namespace(NAMESPACE)
        .metric_name("LagMilliseconds")
        .dimensions(
            aws_sdk_cloudwatch::types::DimensionFilter::builder()
                .name(DIMENSION)
                .value(dataset)
                .build(),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("ListMetrics {NAMESPACE}: {}", describe(&e)))?;
        for metric in page.metrics() {
            let dimensions = metric.dimensions();
            let function = dimensions
                .iter()
                .find(|d| d.name() == Some(FUNCTION_DIMENSION))
                .and_then(|d| d.value());
            if let (Some(function), 2) = (function, dimensions.len()) {
                if !functions.iter().any(|f| f == function) {
                    functions.push(function.to_string());
                }
            }
        }
    }
    functions.sort();
    Ok(functions)
}

/// The lag line of `dataset`: its per-minute maxima over the window, from every
/// updater function that publishes it.
pub async fn lag(
    clients: &Clients,
    dataset: &str,
    window: Duration,
    targets: &LagTargets,
) -> Result<String, String> {
    let mut points = Vec::new();
    for function in lag_functions(clients, dataset).await? {
        let dimensions = vec![
            dimension(FUNCTION_DIMENSION, &function),
            dimension(DIMENSION, dataset),
        ];
        points.extend(maxima(clients, NAMESPACE, "LagMilliseconds", dimensions, window).await?);
    }
    lag_verdict(dataset, &points, window, targets.for_dataset(dataset))
}

/// The queue-age line of the queue at `url` (its name is the URL's last segment).
pub async fn queue_age(clients: &Clients, url: &str, window: Duration) -> Result<String, String> {
    let name = url.trim_end_matches('/').rsplit('/').next().unwrap_or(url);
    let points = maxima(
        clients,
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        vec![dimension("QueueName", name)],
        window,
    )
    .await?;
    Ok(queue_age_verdict(name, &points, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(name: &str, state: &str) -> AlarmState {
        AlarmState {
            name: name.into(),
            state: state.into(),
            reason: format!("{name} is {state}"),
        }
    }

    #[test]
    fn alarms_fail_when_one_fires_or_none_has_the_prefix() {
        let err = alarms_verdict("zru-", &[]).unwrap_err();
        assert!(err.contains("no alarm named zru-*"), "{err}");
        let ok = alarms_verdict(
            "zru-",
            &[
                alarm("zru-lag", "OK"),
                alarm("zru-queue-age", "INSUFFICIENT_DATA"),
                alarm("zru-dead-letters", "OK"),
            ],
        )
        .unwrap();
        assert_eq!(ok, "3 alarm(s) zru-*: 1 INSUFFICIENT_DATA, 2 OK");
        let err = alarms_verdict(
            "zru-",
            &[alarm("zru-lag", "ALARM"), alarm("zru-queue-age", "OK")],
        )
        .unwrap_err();
        assert!(
            err.ends_with("in ALARM: zru-lag (zru-lag is ALARM)"),
            "{err}"
        );
    }

    #[test]
    fn lag_without_data_says_so_and_is_never_zero() {
        let window = Duration::from_secs(3600);
        let line = lag_verdict("sst", &[], window, Some(Duration::from_secs(60))).unwrap();
        assert!(
            line.starts_with("sst: no lag data in the last 60 minutes"),
            "{line}"
        );
        assert!(!line.contains("0.0 s"), "{line}");
    }

    #[test]
    fn lag_reports_the_latest_value_and_fails_over_the_target() {
        let window = Duration::from_secs(3600);
        // The latest minute is the one reported, not the largest.
        let points = [(1_800_000_120, 5_000.0), (1_800_000_000, 90_000.0)];
        let line = lag_verdict("sst", &points, window, Some(Duration::from_secs(60))).unwrap();
        assert!(line.starts_with("sst: latest 5.0 s"), "{line}");
        assert!(
            line.contains("largest 90.0 s in the last 60 minutes"),
            "{line}"
        );
        assert!(line.contains("target 60 s"), "{line}");
        assert!(line.contains(&utc(1_800_000_120)), "{line}");
        let err = lag_verdict("sst", &points, window, Some(Duration::from_secs(4))).unwrap_err();
        assert!(err.ends_with("over its target of 4 s"), "{err}");
        assert!(lag_verdict("sst", &points, window, None).is_ok());
    }

    #[test]
    fn queue_age_without_data_says_so() {
        let window = Duration::from_secs(600);
        assert_eq!(
            queue_age_verdict("q.fifo", &[], window),
            "q.fifo: no queue-age data in the last 10 minutes"
        );
        let line = queue_age_verdict("q.fifo", &[(1_800_000_000, 42.0)], window);
        assert!(
            line.starts_with("q.fifo: oldest event 42 s old at"),
            "{line}"
        );
    }
}
