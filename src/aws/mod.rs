//! Running zru on AWS: settings from the environment, SDK clients, configuration
//! from a packaged directory or an S3 prefix, raw objects downloaded from S3, and
//! `zru doctor`. The Lambda entry points (`src/bin/watcher.rs`, `src/bin/updater.rs`)
//! are thin wrappers over these plain functions.
//!
//! - [`settings`]: the `ZRU_*` environment variables (see `docs/aws.md`).
//! - [`sdk`]: AWS SDK clients honouring endpoint overrides (emulators).
//! - [`config_source`]: loading the dataset catalog from a directory or `s3://`.
//! - `raw`: raw objects streamed from S3 to temporary files.
//! - [`doctor`]: checks of a deployment.
//! - `sqs`: the FIFO queue on SQS (send, receive, delete, dead-letter with reason).
//! - `fifo`: batch item failures with FIFO semantics, message group = store.
//! - [`retry`]: when a failed message comes back (backoff, dead letters).
//! - `sqs_queue`: the pipeline's queue trait over a batch received from SQS.
//! - [`watch`]: the watcher function's work (S3 notification -> queue).
//! - [`replay`]: the watcher's failed notifications (on-failure destination) -> queue.
//! - [`lambda_update`]: the updater function's work (SQS batch, scheduled drain).

pub mod config_source;
pub mod doctor;
pub(crate) mod fifo;
pub mod lambda_update;
pub(crate) mod raw;
pub mod replay;
pub mod retry;
pub mod sdk;
pub mod settings;
pub mod sqs;
pub mod sqs_queue;
pub mod watch;

pub use settings::Settings;

/// Logging of the Lambda functions: `ZRU_LOG` filter (default `info`), no colours
/// (CloudWatch shows them as escape codes).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZRU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
