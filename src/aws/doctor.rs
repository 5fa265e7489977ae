//! `zru doctor`: checks that a deployment can work. One line per check; any failure
//! makes the command exit non-zero.
//!
//! Checks: the configuration loads and validates; the queue answers and is FIFO
//! with a FIFO dead-letter queue; what waits in both (a failure when the dead-letter
//! queue holds events); the raw bucket and every S3 store's bucket answer;
//! the EFS file system and access point are available; the lock directory is
//! writable and a file in it can be locked; no alarm of the stack is in `ALARM`, and
//! each dataset's latest lag is within its target (CloudWatch, see `watch_figures`),
//! with the age of the queue's oldest event.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::path::Path;

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use super::config_source::ConfigSource;
use super::sdk::{describe, Clients};
use super::settings::Settings;
use super::watch_figures;
use crate::store::StoreLocation;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (one line of `zru doctor`).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or what to fix.
    pub detail: String,
}

impl Check {
    fn new(name: &str, result: Result<String, String>) -> Self {
        let (ok, detail) = match result {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        Self {
            name: name.to_string(),
            ok,
            detail,
        }
    }

    /// `ok    name  detail` or `FAIL  name  detail`.
    pub fn line(&self) -> String {
        let status = if self.ok { "ok  " } else { "FAIL" };
        format!("{status}  {:<18} {}", self.name, self.detail)
    }
}

/// Runs every check, in a fixed order.
pub async fn run(settings: &Settings, clients: &Clients) -> Vec<Check> {
    let mut checks = Vec::new();
    let source = ConfigSource::parse(&settings.config);
    let catalog = source.load(&clients.s3).await;
    let datasets: Vec<String> = match &catalog {
        Ok(catalog) => catalog
            .datasets
            .iter()
            .map(|d| d.name().to_string())
            .collect(),
        Err(_) => Vec::new(),
    };
    let store_buckets: BTreeSet<String> = match &catalog {
        Ok(catalog) => catalog
            .datasets
            .iter()
            .filter_map(|d| match &d.location {
                StoreLocation::S3 { bucket, .. } => Some(bucket.clone()),
                StoreLocation::Local(_) => None,
            })
            .collect(),
        Err(_) => BTreeSet::new(),
    };
    checks.push(Check::new(
        "config",
        catalog
            .map(|c| {
                let names: Vec<&str> = c.datasets.iter().map(|d| d.name()).collect();
                format!("{source}: {} dataset(s): {}", names.len(), names.join(", "))
            })
            .map_err(|e| e.to_string()),
    ));
    match &settings.queue_url {
        Some(url) => {
            let (queue, dlq) = check_queue(clients, url).await;
            let reachable = queue.is_ok();
            checks.push(Check::new("queue", queue));
            checks.push(Check::new("dead-letter queue", dlq));
            if reachable {
                checks.push(Check::new("backlog", check_backlog(clients, url).await));
            }
        }
        None => checks.push(Check::new("queue", Err("ZRU_QUEUE_URL is not set".into()))),
    }
    match &settings.raw_bucket {
        Some(bucket) => checks.push(Check::new(
            "raw bucket",
            check_bucket(clients, bucket).await,
        )),
        None => checks.push(Check::new(
            "raw bucket",
            Err("ZRU_RAW_BUCKET is not set".into()),
        )),
    }
    for bucket in &store_buckets {
        checks.push(Check::new(
            "store bucket",
            check_bucket(clients, bucket).await,
        ));
    }
    checks.push(Check::new(
        "efs file system",
        check_file_system(clients, settings).await,
    ));
    checks.push(Check::new(
        "efs access point",
        check_access_point(clients, settings).await,
    ));
    checks.push(Check::new(
        "lock directory",
        check_lock_dir(&settings.lock_dir),
    ));
    checks.extend(cloudwatch_checks(settings, clients, &datasets).await);
    checks
}

/// The stack's alarms, the age of the queue's oldest event and each dataset's lag.
async fn cloudwatch_checks(
    settings: &Settings,
    clients: &Clients,
    datasets: &[String],
) -> Vec<Check> {
    let window = settings.doctor_window;
    let mut checks = vec![Check::new(
        "alarms",
        match &settings.alarm_prefix {
            Some(prefix) => watch_figures::alarms(clients, prefix)
                .await
                .and_then(|alarms| watch_figures::alarms_verdict(prefix, &alarms)),
            None => Err("ZRU_ALARM_PREFIX is not set (the stack output AlarmPrefix)".into()),
        },
    )];
    if let Some(url) = &settings.queue_url {
        checks.push(Check::new(
            "queue age",
            watch_figures::queue_age(clients, url, window).await,
        ));
    }
    for dataset in datasets {
        checks.push(Check::new(
            "lag",
            watch_figures::lag(clients, dataset, window, &settings.metrics.targets).await,
        ));
    }
    checks
}

async fn queue_attributes(
    clients: &Clients,
    url: &str,
) -> Result<std::collections::HashMap<QueueAttributeName, String>, String> {
    let response = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    Ok(response.attributes.unwrap_or_default())
}

/// The queue (reachable, FIFO) and its dead-letter queue (configured, FIFO).
async fn check_queue(
    clients: &Clients,
    url: &str,
) -> (Result<String, String>, Result<String, String>) {
    let attributes = match queue_attributes(clients, url).await {
        Ok(a) => a,
        Err(e) => return (Err(e), Err("the queue is not reachable".into())),
    };
    let fifo = attributes
        .get(&QueueAttributeName::FifoQueue)
        .map(String::as_str)
        == Some("true");
    let visibility = attributes
        .get(&QueueAttributeName::VisibilityTimeout)
        .cloned()
        .unwrap_or_default();
    let queue = if fifo {
        Ok(format!("{url}: FIFO, visibility timeout {visibility} s"))
    } else {
        Err(format!(
            "{url}: not a FIFO queue (events would lose their order)"
        ))
    };
    let dlq = match attributes.get(&QueueAttributeName::RedrivePolicy) {
        None => Err(format!(
            "{url}: no redrive policy: a poison message would block its group"
        )),
        Some(policy) => check_dead_letter_queue(clients, policy).await,
    };
    (queue, dlq)
}

/// The dead-letter queue of a redrive policy: (its ARN, its URL, the policy's
/// `maxReceiveCount`).
async fn dead_letter_queue(
    clients: &Clients,
    policy: &str,
) -> Result<(String, String, serde_json::Value), String> {
    let policy: serde_json::Value =
        serde_json::from_str(policy).map_err(|e| format!("redrive policy is not JSON: {e}"))?;
    let arn = policy["deadLetterTargetArn"]
        .as_str()
        .ok_or("redrive policy has no deadLetterTargetArn")?;
    let name = arn.rsplit(':').next().unwrap_or(arn);
    let url = clients
        .sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| format!("{arn}: {}", describe(&e)))?
        .queue_url
        .ok_or_else(|| format!("{arn}: no URL"))?;
    Ok((arn.to_string(), url, policy["maxReceiveCount"].clone()))
}

/// What waits: messages ready and in flight in the queue, and in its dead-letter
/// queue (a failure when any: files wait for a fix).
async fn check_backlog(clients: &Clients, url: &str) -> Result<String, String> {
    let attributes = queue_attributes(clients, url).await?;
    let count = |attributes: &std::collections::HashMap<QueueAttributeName, String>,
                 name: QueueAttributeName| {
        attributes
            .get(&name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let waiting = count(&attributes, QueueAttributeName::ApproximateNumberOfMessages);
    let in_flight = count(
        &attributes,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    );
    let mut detail = format!("{waiting} event(s) waiting, {in_flight} in flight");
    if let Some(policy) = attributes.get(&QueueAttributeName::RedrivePolicy) {
        let (_, dlq, _) = dead_letter_queue(clients, policy).await?;
        let dead = count(
            &queue_attributes(clients, &dlq).await?,
            QueueAttributeName::ApproximateNumberOfMessages,
        );
        if dead > 0 {
            return Err(format!(
                "{detail}; {dead} in the dead-letter queue: fix or replace those files, \
                 then move the messages back (docs/aws.md)"
            ));
        }
        detail.push_str(", 0 dead letters");
    }
    Ok(detail)
}

async fn check_dead_letter_queue(clients: &Clients, policy: &str) -> Result<String, String> {
    let (arn, url, max) = dead_letter_queue(clients, policy).await?;
    let name = arn.rsplit(':').next().unwrap_or(&arn).to_string();
    let attributes = queue_attributes(clients, &url).await?;
    if attributes
        .get(&QueueAttributeName::FifoQueue)
        .map(String::as_str)
        != Some("true")
    {
        return Err(format!(
            "{arn}: the dead-letter queue of a FIFO queue must be FIFO"
        ));
    }
    Ok(format!("{name}: FIFO, after {max} receives"))
}

async fn check_bucket(clients: &Clients, bucket: &str) -> Result<String, String> {
    clients
        .s3
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| format!("s3://{bucket}: {}", describe(&e)))?;
    clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| format!("s3://{bucket}: cannot list: {}", describe(&e)))?;
    Ok(format!("s3://{bucket}: reachable, listable"))
}

async fn check_file_system(clients: &Clients, settings: &Settings) -> Result<String, String> {
    let id = settings
        .efs_file_system_id
        .as_deref()
        .ok_or("ZRU_EFS_FILE_SYSTEM_ID is not set")?;
    let response = clients
        .efs
        .describe_file_systems()
        .file_system_id(id)
        .send()
        .await
        .map_err(|e| format!("{id}: {}", describe(&e)))?;
    let fs = response
        .file_systems()
        .first()
        .ok_or_else(|| format!("{id}: no such file system"))?;
    let state = fs.life_cycle_state().as_str();
    if state != "available" {
        return Err(format!("{id}: state {state}, not available"));
    }
    Ok(format!(
        "{id}: available, {} mount target(s)",
        fs.number_of_mount_targets()
    ))
}

async fn check_access_point(clients: &Clients, settings: &Settings) -> Result<String, String> {
    let id = settings
        .efs_access_point_id
        .as_deref()
        .ok_or("ZRU_EFS_ACCESS_POINT_ID is not set")?;
    let response = clients
        .efs
        .describe_access_points()
        .access_point_id(id)
        .send()
        .await
        .map_err(|e| format!("{id}: {}", describe(&e)))?;
    let ap = response
        .access_points()
        .first()
        .ok_or_else(|| format!("{id}: no such access point"))?;
    let state = ap
        .life_cycle_state()
        .map(|s| s.as_str())
        .unwrap_or("unknown");
    if state != "available" {
        return Err(format!("{id}: state {state}, not available"));
    }
    let fs = ap.file_system_id().unwrap_or("?");
    if let Some(expected) = &settings.efs_file_system_id {
        if fs != expected {
            return Err(format!("{id}: belongs to file system {fs}, not {expected}"));
        }
    }
    let root = ap.root_directory().and_then(|r| r.path()).unwrap_or("/");
    Ok(format!("{id}: available, file system {fs}, root {root}"))
}

/// Creates the directory, writes a probe file, locks and unlocks it, removes it.
pub(crate) fn check_lock_dir(dir: &Path) -> Result<String, String> {
    let fail = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| fail("cannot create", e))?;
    let probe = dir.join(format!(".zru-doctor-{}.lock", std::process::id()));
    let result = (|| {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&probe)
            .map_err(|e| fail("not writable", e))?;
        file.try_lock()
            .map_err(|e| format!("{}: cannot lock a file: {e}", dir.display()))?;
        file.unlock().map_err(|e| fail("cannot unlock", e))?;
        Ok(format!("{}: writable, lockable", dir.display()))
    })();
    let _ = std::fs::remove_file(&probe);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_dir_check_creates_and_locks_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("a/b");
        assert!(check_lock_dir(&locks).is_ok());
        assert_eq!(std::fs::read_dir(&locks).unwrap().count(), 0);
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = check_lock_dir(&file.join("locks")).unwrap_err();
        assert!(err.contains("cannot create"), "{err}");
    }

    #[test]
    fn lines_are_aligned_and_say_ok_or_fail() {
        let ok = Check::new("queue", Ok("fine".into()));
        let bad = Check::new("raw bucket", Err("gone".into()));
        assert!(ok.line().starts_with("ok    queue"));
        assert!(bad.line().starts_with("FAIL  raw bucket"));
    }
}
