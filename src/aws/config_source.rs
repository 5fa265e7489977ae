//! The dataset catalog of a deployment: a directory packaged with the function, or
//! the `*.json` objects directly under an S3 prefix (`s3://bucket/prefix`).

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::sdk::describe;
use crate::config::{Catalog, ConfigError};

/// Why the dataset catalog could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigSourceError {
    /// A dataset file is invalid (or none is there).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Listing or downloading the files from S3 failed.
    #[error("configuration s3://{bucket}/{prefix}: {reason}")]
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix the dataset files are under.
        prefix: String,
        /// What failed (the SDK's error, described).
        reason: String,
    },
    /// The downloaded files cannot be written to a temporary directory.
    #[error("configuration: cannot stage the S3 files locally: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A local directory (in a Lambda package: under `$LAMBDA_TASK_ROOT`).
    Dir(PathBuf),
    /// An S3 prefix: its `*.json` objects are downloaded to a temporary directory.
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix the `*.json` files are under (no trailing `/`).
        prefix: String,
    },
}

impl ConfigSource {
    /// `s3://bucket/prefix` or a directory.
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Self::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                }
            }
            None => Self::Dir(PathBuf::from(text)),
        }
    }

    /// Loads and validates every dataset file.
    pub async fn load(&self, s3: &aws_sdk_s3::Client) -> Result<Catalog, ConfigSourceError> {
        match self {
            Self::Dir(dir) => Ok(Catalog::load_dir(dir)?),
            Self::S3 { bucket, prefix } => {
                let staged = tempfile::Builder::new().prefix("zru-config-").tempdir()?;
                fetch_prefix(s3, bucket, prefix, staged.path()).await?;
                Ok(Catalog::load_dir(staged.path())?)
            }
        }
    }
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Downloads the `*.json` objects directly under `prefix` into `dir`.
async fn fetch_prefix(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    dir: &Path,
) -> Result<(), ConfigSourceError> {
    let error = |reason: String| ConfigSourceError::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        reason,
    };
    let list_prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&list_prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| error(describe(&e)))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let name = &key[list_prefix.len()..];
            if !name.ends_with(".json") || name.contains('/') {
                continue;
            }
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| error(format!("{key}: {}", describe(&e))))?
                .body
                .collect()
                .await
                .map_err(|e| error(format!("{key}: {e}")))?;
            tokio::fs::write(dir.join(name), body.into_bytes()).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directories_and_s3_prefixes() {
        assert_eq!(
            ConfigSource::parse("/var/task/config"),
            ConfigSource::Dir("/var/task/config".into())
        );
        assert_eq!(
            ConfigSource::parse("s3://cfg/zru/datasets/"),
            ConfigSource::S3 {
                bucket: "cfg".into(),
                prefix: "zru/datasets".into()
            }
        );
        assert_eq!(
            ConfigSource::parse("s3://cfg").to_string(),
            "s3://cfg/".to_string()
        );
    }
}
