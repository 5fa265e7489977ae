//! The watcher Lambda function: S3 notifications of the raw bucket -> the FIFO queue.
//! Invoked with `{"zru": "sweep"}` (a schedule), it runs the reconciliation sweep
//! instead. A thin entry point over [`zru::aws::watch::handle`] and
//! [`zru::aws::sweep::sweep`]; settings in `docs/aws.md`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use zru::aws::config_source::ConfigSource;
use zru::aws::sdk::Clients;
use zru::aws::sweep::{sweep, SweepRequest};
use zru::aws::Settings;
use zru::config::Catalog;

struct Watcher {
    catalog: Catalog,
    clients: Clients,
    queue_url: String,
    raw_bucket: Option<String>,
}

async fn handle(watcher: &Watcher, event: LambdaEvent<Value>) -> Result<Value, Error> {
    if let Some(request) = SweepRequest::from_payload(&event.payload) {
        let summary = sweep(
            &watcher.catalog,
            &watcher.clients,
            &watcher.queue_url,
            watcher.raw_bucket.as_deref(),
            &request,
        )
        .await?;
        tracing::info!(
            bucket = %summary.bucket,
            listed = summary.listed,
            created = summary.created,
            removed = summary.removed,
            sent = summary.sent,
            "sweep finished"
        );
        return Ok(serde_json::to_value(summary)?);
    }
    let reports = zru::aws::watch::handle(
        &watcher.catalog,
        &watcher.clients.sqs,
        &watcher.queue_url,
        &event.payload.to_string(),
    )
    .await?;
    Ok(json!({ "events": reports }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    zru::aws::init_logging();
    let settings = Settings::from_env()?;
    let clients = Clients::from_env().await;
    let catalog = ConfigSource::parse(&settings.config)
        .load(&clients.s3)
        .await?;
    let watcher = Watcher {
        queue_url: settings.require_queue_url()?.to_string(),
        raw_bucket: settings.raw_bucket.clone(),
        catalog,
        clients,
    };
    lambda_runtime::run(service_fn(|event| handle(&watcher, event))).await
}
