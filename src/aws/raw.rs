//! Raw objects read from S3: streamed to a file under a local raw root, so the
//! updater reads them as it reads local files (`raw_root/key`). Removed objects are
//! never read.

use std::path::{Component, Path, PathBuf};

use thiserror::Error;
use tokio::io::AsyncWriteExt;

use super::sdk::describe;

#[derive(Debug, Error)]
pub enum RawError {
    #[error("s3://{bucket}/{key}: {reason}")]
    S3 {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("s3://{bucket}/{key}: not a relative object key that stays under the raw root")]
    BadKey { bucket: String, key: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The local path of `key` under `raw_root`, if the key cannot escape it.
pub fn local_path(raw_root: &Path, key: &str) -> Option<PathBuf> {
    let relative = Path::new(key);
    let normal = !key.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    normal.then(|| raw_root.join(relative))
}

/// Downloads `s3://bucket/key` to `raw_root/key` (streamed, written to a temporary
/// name then renamed). Returns `false` if the object does not exist (any more).
pub async fn download(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    raw_root: &Path,
) -> Result<bool, RawError> {
    let path = local_path(raw_root, key).ok_or_else(|| RawError::BadKey {
        bucket: bucket.to_string(),
        key: key.to_string(),
    })?;
    let s3_error = |reason: String| RawError::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
        reason,
    };
    let response = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(response) => response,
        Err(error) => {
            let missing = error.as_service_error().is_some_and(|e| e.is_no_such_key());
            if missing {
                return Ok(false);
            }
            return Err(s3_error(describe(&error)));
        }
    };
    let io = |source| RawError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let temp = path.with_extension("zru-download");
    let mut file = tokio::fs::File::create(&temp).await.map_err(io)?;
    let mut body = response.body;
    while let Some(bytes) = body
        .try_next()
        .await
        .map_err(|e| s3_error(format!("reading the object: {e}")))?
    {
        file.write_all(&bytes).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    drop(file);
    tokio::fs::rename(&temp, &path).await.map_err(io)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_under_the_raw_root() {
        let root = Path::new("/tmp/raw");
        assert_eq!(
            local_path(root, "sst/dir one/a+b.nc"),
            Some(PathBuf::from("/tmp/raw/sst/dir one/a+b.nc"))
        );
        for bad in ["", "/etc/passwd", "../x.nc", "a/../../x", "./a.nc"] {
            assert_eq!(local_path(root, bad), None, "{bad}");
        }
    }
}
