//! Raw objects read from S3: streamed to a file under a local raw root, so the
//! updater reads them as it reads local files (`raw_root/key`). A created event's
//! object is read at the event's version (`versionId`) when it has one. The key of a
//! removal is checked with a HEAD (no version id): if it still has a current version
//! (versioned buckets), that version is downloaded too (see
//! [`crate::pipeline::current`]).

use std::path::{Component, Path, PathBuf};

use thiserror::Error;
use tokio::io::AsyncWriteExt;

use super::sdk::describe;
use crate::pipeline::current::CurrentObject;
use aws_sdk_s3::config::http::HttpResponse;

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

/// True for the errors of a GET or HEAD that say the object (or the version asked
/// for) does not exist: `NoSuchKey`, `NoSuchVersion`, `NotFound`, any other 404 but
/// `NoSuchBucket`. A HEAD of a key whose current version is a delete marker is a 404
/// (a HEAD has no body: a missing bucket is a 404 `NotFound` there too, and the GETs
/// of the batch's created objects report it).
fn is_missing<E>(error: &aws_sdk_s3::error::SdkError<E, HttpResponse>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::ServiceError(service) => match service.err().code() {
            // A bucket that does not exist is a configuration error, not a gone object.
            Some("NoSuchBucket") => false,
            Some("NoSuchKey" | "NoSuchVersion" | "NotFound") => true,
            _ => service.raw().status().as_u16() == 404,
        },
        _ => false,
    }
}

/// The current object of `s3://bucket/key` (HEAD without version id): its version id
/// and etag, or `None` if the key has no current version (never created, deleted, or a
/// delete marker is current).
pub async fn head(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<CurrentObject>, RawError> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(Some(CurrentObject::new(
            head.version_id().map(String::from),
            head.e_tag().map(String::from),
        ))),
        Err(error) if is_missing(&error) => Ok(None),
        Err(error) => Err(RawError::S3 {
            bucket: bucket.to_string(),
            key: key.to_string(),
            reason: format!("HEAD: {}", describe(&error)),
        }),
    }
}

/// Downloads `s3://bucket/key` (at `version_id` if given, else its current version) to
/// `raw_root/key` (streamed, written to a temporary name then renamed). Returns `false`
/// if the object, or that version of it, does not exist (any more).
pub async fn download(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
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
    let request = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(String::from));
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if is_missing(&error) => return Ok(false),
        Err(error) => return Err(s3_error(describe(&error))),
    };
    let io = |source| RawError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let temp = download_path(&path);
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

/// Where the object for `path` is streamed before it is renamed to `path`: beside it,
/// its whole name plus a suffix, so that keys that differ only in their extension
/// (`a.nc`, `a.nc4`), fetched at the same time, never share one.
fn download_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".zru-download");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_differ_in_their_extension_download_to_different_files() {
        let root = Path::new("/tmp/raw");
        let paths: Vec<PathBuf> = ["sst/a.nc", "sst/a.nc4", "sst/a"]
            .iter()
            .filter_map(|key| local_path(root, key))
            .map(|path| download_path(&path))
            .collect();
        assert_eq!(
            paths,
            [
                "/tmp/raw/sst/a.nc.zru-download",
                "/tmp/raw/sst/a.nc4.zru-download",
                "/tmp/raw/sst/a.zru-download"
            ]
            .map(PathBuf::from)
        );
    }

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
