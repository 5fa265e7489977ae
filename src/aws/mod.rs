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
//! - [`sweep`]: the reconciliation sweep (raw bucket listing vs the ledgers -> queue).
//! - [`lambda_update`]: the updater function's work (SQS batch, scheduled drain).
//! - [`metrics`]: per-dataset CloudWatch Embedded Metric Format documents.
//! - [`watch_figures`]: what CloudWatch says now (alarm states, lag, queue age), for
//!   `zru doctor`.

pub mod config_source;
pub mod doctor;
mod emf_lines;
pub(crate) mod fifo;
pub mod lambda_update;
pub mod metrics;
pub(crate) mod raw;
pub mod replay;
pub mod retry;
pub mod sdk;
pub mod settings;
pub mod sqs;
pub mod sqs_queue;
pub mod sweep;
pub mod watch;
pub mod watch_figures;

pub use settings::Settings;

/// Logging of the Lambda functions, on stdout (Lambda sends it to CloudWatch Logs):
/// one JSON object per log event (`timestamp`, `level`, `message` and the event's
/// fields at the top level, so CloudWatch Logs Insights can filter on `key`,
/// `dataset`, `action`, ...), filtered by `ZRU_LOG` (default `info`); and the EMF
/// documents of [`metrics`] as they are, one line each, whatever `ZRU_LOG` says.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_from_env("ZRU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() != metrics::EMF_TARGET
        }))
        .with_filter(filter);
    let emf = emf_lines::EmfLines.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() == metrics::EMF_TARGET
    }));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(emf)
        .try_init();
}
