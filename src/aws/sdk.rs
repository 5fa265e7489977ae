//! AWS SDK clients. The SDK reads credentials, region and endpoint overrides
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, ...) from the environment; with an
//! endpoint override (an emulator) S3 requests use path-style addressing.

use aws_config::{BehaviorVersion, SdkConfig};

use crate::store::location::s3_endpoint_from_env;

/// Clients of the services zru uses, sharing one configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    /// S3: raw objects, stores, configuration.
    pub s3: aws_sdk_s3::Client,
    /// SQS: the FIFO queue and its dead-letter queue.
    pub sqs: aws_sdk_sqs::Client,
    /// EFS: `zru doctor`'s checks of the lock file system.
    pub efs: aws_sdk_efs::Client,
    /// CloudWatch: `zru doctor`'s alarm states, lag and queue age.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

/// The SDK configuration from the environment (us-east-1 when no region is set).
pub async fn sdk_config() -> SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}

impl Clients {
    /// Clients from `config`; S3 uses path-style addressing when an S3 endpoint is
    /// overridden (`AWS_ENDPOINT_URL[_S3]`, emulators).
    pub fn new(config: &SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(s3_endpoint_from_env().is_some())
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::new(config),
            efs: aws_sdk_efs::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
        }
    }

    /// Clients configured from the environment.
    pub async fn from_env() -> Self {
        Self::new(&sdk_config().await)
    }
}

/// An SDK error with its service error's code and message, not just "service error".
pub(crate) fn describe<E, R>(error: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            match (inner.code(), inner.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => inner.to_string(),
            }
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}
