//! Settings of the AWS deployment, read from environment variables so the same
//! binaries run in Lambda, in `zru doctor` and against an emulator.
//!
//! | variable | default | used by |
//! |---|---|---|
//! | `ZRU_CONFIG` | `$LAMBDA_TASK_ROOT/config`, else `config` | all: dataset files, a directory or `s3://bucket/prefix` |
//! | `ZRU_QUEUE_URL` | none | watcher (send), updater (scheduled drain), doctor |
//! | `ZRU_RAW_BUCKET` | none | doctor (the updater reads the bucket named in each event) |
//! | `ZRU_LOCK_DIR` | `/mnt/efs/zru-locks` | updater, doctor |
//! | `ZRU_LOCK_TIMEOUT_SECONDS` | `60` | updater |
//! | `ZRU_DRAIN_SAFETY_SECONDS` | `60` | updater: stop draining when less time remains |
//! | `ZRU_VISIBILITY_SECONDS` | `900` | updater: visibility timeout of drained messages |
//! | `ZRU_BACKOFF_BASE_SECONDS` | `60` | updater: delay of a message after its first transient failure |
//! | `ZRU_BACKOFF_CAP_SECONDS` | `1800` | updater: longest delay (doubling per receive up to it; at most 43200) |
//! | `ZRU_SCRATCH_DIR` | the system temp dir (`/tmp`) | updater: downloaded raw objects |
//! | `ZRU_EFS_FILE_SYSTEM_ID`, `ZRU_EFS_ACCESS_POINT_ID` | none | doctor |
//! | `ZRU_ALARM_PREFIX` | none | doctor: the stack's alarms (stack output `AlarmPrefix`) |
//! | `ZRU_DOCTOR_WINDOW_MINUTES` | `60` | doctor: how far back it reads lag and queue age |
//! | `ZRU_LAG_TARGET_SECONDS` | none | updater: lag target of every dataset (metric `LagOverTargetMilliseconds`) |
//! | `ZRU_LAG_TARGETS` | none | updater: per-dataset lag targets, `name=seconds,...` |
//! | `AWS_LAMBDA_FUNCTION_NAME` | `zru` | updater: the metrics' `Function` dimension (set by Lambda) |
//!
//! AWS credentials, region and endpoint overrides (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_S3`, ...) are the SDK's usual variables.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::metrics::{LagTargets, MetricsContext};
use super::retry::{Backoff, MAX_VISIBILITY};

/// The default lock directory: on the EFS mount of the updater function.
pub const DEFAULT_LOCK_DIR: &str = "/mnt/efs/zru-locks";

/// An environment variable with a value zru cannot use (or a required one unset).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct SettingsError {
    /// The variable.
    pub name: String,
    /// Its value (empty when unset).
    pub value: String,
    /// What it must be.
    pub reason: String,
}

/// The deployment's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// A directory or `s3://bucket/prefix` holding the dataset `*.json` files.
    pub config: String,
    /// `ZRU_QUEUE_URL`: the FIFO queue between watcher and updater.
    pub queue_url: Option<String>,
    /// `ZRU_RAW_BUCKET`: the raw bucket `zru doctor` checks.
    pub raw_bucket: Option<String>,
    /// `ZRU_LOCK_DIR`: where store locks live (the updater's EFS mount).
    pub lock_dir: PathBuf,
    /// `ZRU_LOCK_TIMEOUT_SECONDS`: how long the updater waits for a store's lock.
    pub lock_timeout: Duration,
    /// `ZRU_DRAIN_SAFETY_SECONDS`: a scheduled drain stops when less than this is
    /// left of the invocation.
    pub drain_safety: Duration,
    /// `ZRU_VISIBILITY_SECONDS`: visibility timeout of the messages a drain receives.
    pub visibility: Duration,
    /// `ZRU_BACKOFF_BASE_SECONDS` and `ZRU_BACKOFF_CAP_SECONDS`: when a message that
    /// failed transiently is visible again.
    pub backoff: Backoff,
    /// `ZRU_SCRATCH_DIR`: where raw objects are downloaded to.
    pub scratch_dir: PathBuf,
    /// `ZRU_EFS_FILE_SYSTEM_ID`: the EFS file system `zru doctor` checks.
    pub efs_file_system_id: Option<String>,
    /// `ZRU_EFS_ACCESS_POINT_ID`: the EFS access point `zru doctor` checks.
    pub efs_access_point_id: Option<String>,
    /// `ZRU_ALARM_PREFIX`: the start of the names of the alarms `zru doctor` reports.
    pub alarm_prefix: Option<String>,
    /// `ZRU_DOCTOR_WINDOW_MINUTES`: how far back `zru doctor` reads the lag and queue
    /// age from CloudWatch.
    pub doctor_window: Duration,
    /// The metrics' function dimension and lag targets (`AWS_LAMBDA_FUNCTION_NAME`,
    /// `ZRU_LAG_TARGET_SECONDS`, `ZRU_LAG_TARGETS`).
    pub metrics: MetricsContext,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let seconds = |name: &str, default: u64| -> Result<Duration, SettingsError> {
            match get(name) {
                None => Ok(Duration::from_secs(default)),
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| SettingsError {
                        name: name.into(),
                        value,
                        reason: "not a whole number of seconds".into(),
                    }),
            }
        };
        let config = get("ZRU_CONFIG").unwrap_or_else(|| match get("LAMBDA_TASK_ROOT") {
            Some(root) => format!("{}/config", root.trim_end_matches('/')),
            None => "config".into(),
        });
        let backoff = Backoff {
            base: seconds(
                "ZRU_BACKOFF_BASE_SECONDS",
                Backoff::default().base.as_secs(),
            )?,
            cap: seconds("ZRU_BACKOFF_CAP_SECONDS", Backoff::default().cap.as_secs())?,
        };
        check_backoff(&backoff)?;
        let lag_default = match get("ZRU_LAG_TARGET_SECONDS") {
            None => None,
            Some(_) => Some(seconds("ZRU_LAG_TARGET_SECONDS", 0)?),
        };
        let pairs = get("ZRU_LAG_TARGETS").unwrap_or_default();
        let targets = LagTargets::parse(lag_default, &pairs).map_err(|reason| SettingsError {
            name: "ZRU_LAG_TARGETS".into(),
            value: pairs.clone(),
            reason,
        })?;
        let metrics = MetricsContext {
            function: get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "zru".into()),
            targets,
        };
        Ok(Self {
            metrics,
            config,
            queue_url: get("ZRU_QUEUE_URL"),
            raw_bucket: get("ZRU_RAW_BUCKET"),
            lock_dir: PathBuf::from(get("ZRU_LOCK_DIR").unwrap_or_else(|| DEFAULT_LOCK_DIR.into())),
            lock_timeout: seconds("ZRU_LOCK_TIMEOUT_SECONDS", 60)?,
            drain_safety: seconds("ZRU_DRAIN_SAFETY_SECONDS", 60)?,
            visibility: seconds("ZRU_VISIBILITY_SECONDS", 900)?,
            backoff,
            scratch_dir: get("ZRU_SCRATCH_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            efs_file_system_id: get("ZRU_EFS_FILE_SYSTEM_ID"),
            efs_access_point_id: get("ZRU_EFS_ACCESS_POINT_ID"),
            alarm_prefix: get("ZRU_ALARM_PREFIX"),
            doctor_window: doctor_window(get("ZRU_DOCTOR_WINDOW_MINUTES"))?,
        })
    }

    /// The queue URL, or an error naming the variable.
    pub fn require_queue_url(&self) -> Result<&str, SettingsError> {
        self.queue_url.as_deref().ok_or_else(|| SettingsError {
            name: "ZRU_QUEUE_URL".into(),
            value: String::new(),
            reason: "must be set to the FIFO queue's URL".into(),
        })
    }
}

/// `ZRU_DOCTOR_WINDOW_MINUTES`: 1 to 1440 minutes (GetMetricStatistics gives at most
/// 1440 one-minute data points), 60 when unset.
pub fn doctor_window(value: Option<String>) -> Result<Duration, SettingsError> {
    let Some(value) = value else {
        return Ok(Duration::from_secs(3600));
    };
    match value.trim().parse::<u64>() {
        Ok(minutes @ 1..=1440) => Ok(Duration::from_secs(minutes * 60)),
        _ => Err(SettingsError {
            name: "ZRU_DOCTOR_WINDOW_MINUTES".into(),
            value,
            reason: "a whole number of minutes from 1 to 1440".into(),
        }),
    }
}

/// The cap must hold the base and fit SQS's 12-hour visibility limit.
fn check_backoff(backoff: &Backoff) -> Result<(), SettingsError> {
    let error = |name: &str, value: std::time::Duration, reason: String| SettingsError {
        name: name.into(),
        value: value.as_secs().to_string(),
        reason,
    };
    if backoff.cap > MAX_VISIBILITY {
        return Err(error(
            "ZRU_BACKOFF_CAP_SECONDS",
            backoff.cap,
            format!(
                "at most {} (SQS's longest visibility timeout, 12 hours)",
                MAX_VISIBILITY.as_secs()
            ),
        ));
    }
    if backoff.base > backoff.cap {
        return Err(error(
            "ZRU_BACKOFF_BASE_SECONDS",
            backoff.base,
            format!(
                "at most ZRU_BACKOFF_CAP_SECONDS ({})",
                backoff.cap.as_secs()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_suit_a_lambda_function_with_an_efs_mount() {
        let s = settings(&[("LAMBDA_TASK_ROOT", "/var/task")]).unwrap();
        assert_eq!(s.config, "/var/task/config");
        assert_eq!(s.lock_dir, PathBuf::from("/mnt/efs/zru-locks"));
        assert_eq!(s.lock_timeout, Duration::from_secs(60));
        assert!(s.queue_url.is_none());
        assert!(s.require_queue_url().is_err());
        assert_eq!(settings(&[]).unwrap().config, "config");
    }

    #[test]
    fn variables_override_and_bad_numbers_name_the_variable() {
        let s = settings(&[
            ("ZRU_CONFIG", "s3://cfg/zru/"),
            ("ZRU_QUEUE_URL", "http://q/1/zru.fifo"),
            ("ZRU_LOCK_DIR", "/tmp/locks"),
            ("ZRU_DRAIN_SAFETY_SECONDS", "30"),
        ])
        .unwrap();
        assert_eq!(s.config, "s3://cfg/zru/");
        assert_eq!(s.require_queue_url().unwrap(), "http://q/1/zru.fifo");
        assert_eq!(s.drain_safety, Duration::from_secs(30));
        let err = settings(&[("ZRU_VISIBILITY_SECONDS", "soon")]).unwrap_err();
        assert_eq!(err.name, "ZRU_VISIBILITY_SECONDS");
        let s = settings(&[
            ("ZRU_LAG_TARGET_SECONDS", "3600"),
            ("ZRU_LAG_TARGETS", "sst=60"),
            ("AWS_LAMBDA_FUNCTION_NAME", "zru-updater"),
        ])
        .unwrap();
        assert_eq!(s.metrics.function, "zru-updater");
        assert_eq!(
            s.metrics.targets.for_dataset("sst"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            s.metrics.targets.for_dataset("argo"),
            Some(Duration::from_secs(3_600))
        );
        let s = settings(&[
            ("ZRU_ALARM_PREFIX", "zru-"),
            ("ZRU_DOCTOR_WINDOW_MINUTES", "15"),
        ])
        .unwrap();
        assert_eq!(s.alarm_prefix.as_deref(), Some("zru-"));
        assert_eq!(s.doctor_window, Duration::from_secs(900));
        assert_eq!(
            settings(&[]).unwrap().doctor_window,
            Duration::from_secs(3600)
        );
        for bad in ["0", "1441", "soon"] {
            let err = settings(&[("ZRU_DOCTOR_WINDOW_MINUTES", bad)]).unwrap_err();
            assert_eq!(err.name, "ZRU_DOCTOR_WINDOW_MINUTES");
        }
        let err = settings(&[("ZRU_LAG_TARGETS", "sst")]).unwrap_err();
        assert_eq!(err.name, "ZRU_LAG_TARGETS");
    }

    #[test]
    fn backoff_has_defaults_and_its_limits_are_checked() {
        assert_eq!(settings(&[]).unwrap().backoff, Backoff::default());
        let s = settings(&[
            ("ZRU_BACKOFF_BASE_SECONDS", "5"),
            ("ZRU_BACKOFF_CAP_SECONDS", "40"),
        ])
        .unwrap();
        assert_eq!(s.backoff.base, Duration::from_secs(5));
        assert_eq!(s.backoff.cap, Duration::from_secs(40));
        let err = settings(&[("ZRU_BACKOFF_CAP_SECONDS", "50000")]).unwrap_err();
        assert_eq!(err.name, "ZRU_BACKOFF_CAP_SECONDS");
        let err = settings(&[
            ("ZRU_BACKOFF_BASE_SECONDS", "3600"),
            ("ZRU_BACKOFF_CAP_SECONDS", "60"),
        ])
        .unwrap_err();
        assert_eq!(err.name, "ZRU_BACKOFF_BASE_SECONDS");
    }
}
