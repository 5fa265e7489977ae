//! The updater Lambda function: SQS batches (event source) and scheduled drains ->
//! Zarr stores on S3. A thin entry point over [`zru::aws::lambda_update`]; settings in
//! `docs/aws.md`.

use std::time::{Duration, SystemTime};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use zru::aws::lambda_update::{drain, handle_sqs_event, Deployment, Invocation};

async fn handle(deployment: &Deployment, event: LambdaEvent<Value>) -> Result<Value, Error> {
    match Invocation::classify(event.payload)? {
        Invocation::Sqs(batch) => Ok(serde_json::to_value(
            handle_sqs_event(deployment, &batch).await?,
        )?),
        Invocation::Scheduled => {
            let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let summary = drain(deployment, deadline).await?;
            tracing::info!(?summary, "drain finished");
            Ok(serde_json::to_value(summary)?)
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    zru::aws::init_logging();
    let deployment = Deployment::from_env().await?;
    lambda_runtime::run(service_fn(|event| handle(&deployment, event))).await
}
