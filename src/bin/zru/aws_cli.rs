//! `zru aws ...`: operations on an AWS deployment run from a shell (the Lambda functions
//! run the same library functions). Settings come from the `ZRU_*` environment
//! variables (docs/aws.md); flags override them.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use zru::aws::config_source::ConfigSource;
use zru::aws::replay::{replay, ReplayOptions};
use zru::aws::sdk::Clients;
use zru::aws::sweep::{sweep, SweepRequest};
use zru::aws::Settings;
use zru::config::Catalog;
use zru::text::safe_line;

use crate::{say, say_json};

/// `zru aws` and its subcommands.
#[derive(Subcommand)]
pub enum AwsCommand {
    /// Reconciliation sweep: list the raw bucket, compare it with the stores' ledgers
    /// and queue the creations and removals they miss, as the watcher would.
    Sweep(SweepArgs),
    /// Re-send the watcher's failed S3 notifications (the Lambda invocation records on
    /// its on-failure destination queue) to the FIFO queue, deleting each record once
    /// its events are queued. One line per record; exit code 1 if any stayed.
    ReplayFailedNotifications(ReplayArgs),
}

/// The settings `zru doctor` and `zru aws` share, each overriding its variable.
#[derive(Args)]
pub struct SettingsArgs {
    /// Dataset files: a directory or s3://bucket/prefix (ZRU_CONFIG).
    #[arg(long)]
    config: Option<String>,
    /// The FIFO queue's URL (ZRU_QUEUE_URL).
    #[arg(long)]
    queue_url: Option<String>,
    /// The raw bucket (ZRU_RAW_BUCKET).
    #[arg(long)]
    raw_bucket: Option<String>,
}

impl SettingsArgs {
    /// The settings from the environment, with these flags over them.
    pub fn settings(self) -> Result<Settings> {
        let mut settings = Settings::from_env()?;
        if let Some(config) = self.config {
            settings.config = config;
        }
        if self.queue_url.is_some() {
            settings.queue_url = self.queue_url;
        }
        if self.raw_bucket.is_some() {
            settings.raw_bucket = self.raw_bucket;
        }
        Ok(settings)
    }
}

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Only keys under this prefix.
    #[arg(long)]
    prefix: Option<String>,
    /// Print what is missed, send nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON document (the summary and every event) instead of lines.
    #[arg(long)]
    json: bool,
}

/// `zru aws replay-failed-notifications`.
#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// The on-failure destination queue's URL (stack output FailedNotificationsQueueUrl).
    #[arg(long = "queue")]
    failed_queue: String,
    /// Seconds a record that fails again stays hidden on the destination queue.
    #[arg(long, default_value_t = ReplayOptions::default().visibility_seconds)]
    visibility_timeout: i32,
    /// One JSON object per record.
    #[arg(long)]
    json: bool,
}

/// Runs `zru aws ...`.
pub fn run_aws(command: AwsCommand) -> Result<ExitCode> {
    match command {
        AwsCommand::Sweep(args) => run_sweep(args),
        AwsCommand::ReplayFailedNotifications(args) => replay_failed(args),
    }
}

fn run_sweep(args: SweepArgs) -> Result<ExitCode> {
    let settings = args.settings.settings()?;
    let request = SweepRequest {
        bucket: None,
        prefix: args.prefix,
        dry_run: args.dry_run,
    };
    let queue_url = settings.require_queue_url()?.to_string();
    let raw_bucket = settings.raw_bucket.clone();
    let summary = on_deployment(&settings, |clients, catalog| async move {
        let summary = sweep(
            &catalog,
            &clients,
            &queue_url,
            raw_bucket.as_deref(),
            &request,
        )
        .await?;
        anyhow::Ok(summary)
    })?;
    if args.json {
        say_json(serde_json::to_string_pretty(&summary)?);
    } else {
        for report in &summary.events {
            say(report.line());
        }
        eprintln!(
            "zru aws sweep: s3://{}: {} object(s) listed, {} a dataset takes, {} key(s) in \
             the ledgers; missed: {} creation(s), {} removal(s); {} message(s) sent",
            summary.bucket,
            summary.listed,
            summary.routed,
            summary.applied,
            summary.created,
            summary.removed,
            summary.sent
        );
    }
    Ok(if summary.events.iter().any(|r| r.failed()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn replay_failed(args: ReplayArgs) -> Result<ExitCode> {
    let settings = args.settings.settings()?;
    let queue_url = settings.require_queue_url()?.to_string();
    let outcomes = on_deployment(&settings, |clients, catalog| async move {
        replay(
            &catalog,
            &clients.sqs,
            &args.failed_queue,
            &queue_url,
            ReplayOptions {
                visibility_seconds: args.visibility_timeout,
                ..ReplayOptions::default()
            },
        )
        .await
        .context("reading the failed notifications")
    })?;
    for outcome in &outcomes {
        if args.json {
            say_json(serde_json::to_string(outcome)?);
        } else {
            let condition = outcome.condition.as_deref().unwrap_or("-");
            match &outcome.error {
                None => say(format!(
                    "replayed\t{}\t{condition}\t{} event(s)",
                    outcome.message_id, outcome.events
                )),
                Some(error) => say(format!(
                    "failed\t{}\t{condition}\t{}",
                    outcome.message_id,
                    safe_line(error)
                )),
            }
        }
    }
    Ok(if outcomes.iter().all(|o| o.error.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs `work` on a new async runtime with the deployment's SDK clients and its
/// dataset catalog (loaded from `settings.config`).
fn on_deployment<T, F, Fut>(settings: &Settings, work: F) -> Result<T>
where
    F: FnOnce(Clients, Catalog) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let clients = Clients::from_env().await;
        let catalog = ConfigSource::parse(&settings.config)
            .load(&clients.s3)
            .await
            .with_context(|| format!("loading the dataset files from {}", settings.config))?;
        work(clients, catalog).await
    })
}
