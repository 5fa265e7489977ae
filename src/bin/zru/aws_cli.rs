//! The `zru aws` commands: operations on a deployment (settings from the `ZRU_*`
//! environment variables, flags override them).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use zru::aws::config_source::ConfigSource;
use zru::aws::replay::{replay, ReplayOptions};
use zru::aws::sdk::Clients;
use zru::aws::Settings;
use zru::text::safe_line;

use crate::{say, say_json};

/// Operations on an AWS deployment.
#[derive(Subcommand)]
pub enum AwsCommand {
    /// Re-send the watcher's failed S3 notifications (the Lambda invocation records on
    /// its on-failure destination queue) to the FIFO queue, deleting each record once
    /// its events are queued. One line per record; exit code 1 if any stayed.
    ReplayFailedNotifications(ReplayArgs),
}

/// `zru aws replay-failed-notifications`.
#[derive(Args)]
pub struct ReplayArgs {
    /// The on-failure destination queue's URL (stack output FailedNotificationsQueueUrl).
    #[arg(long = "queue")]
    failed_queue: String,
    /// The FIFO queue's URL (ZRU_QUEUE_URL).
    #[arg(long)]
    queue_url: Option<String>,
    /// Dataset files: a directory or s3://bucket/prefix (ZRU_CONFIG).
    #[arg(long)]
    config: Option<String>,
    /// Seconds a record that fails again stays hidden on the destination queue.
    #[arg(long, default_value_t = ReplayOptions::default().visibility_seconds)]
    visibility_timeout: i32,
    /// One JSON object per record.
    #[arg(long)]
    json: bool,
}

/// Runs an `aws` command.
pub fn run(command: AwsCommand) -> Result<ExitCode> {
    match command {
        AwsCommand::ReplayFailedNotifications(args) => replay_failed(args),
    }
}

fn replay_failed(args: ReplayArgs) -> Result<ExitCode> {
    let mut settings = Settings::from_env()?;
    if let Some(config) = args.config {
        settings.config = config;
    }
    if args.queue_url.is_some() {
        settings.queue_url = args.queue_url;
    }
    let queue_url = settings.require_queue_url()?.to_string();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcomes = runtime.block_on(async {
        let clients = Clients::from_env().await;
        let catalog = ConfigSource::parse(&settings.config)
            .load(&clients.s3)
            .await
            .with_context(|| format!("loading the dataset files from {}", settings.config))?;
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
