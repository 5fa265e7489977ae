//! Where a store lives: a local directory or an S3 bucket and prefix.
//!
//! Local stores go through `AtomicFilesystemStore` (temporary file + rename). S3
//! stores go through `RawKeyObjectStore` over object_store's `AmazonS3`: each key is
//! the object name itself, as other Zarr readers expect (see `raw_keys`). Its
//! async API is bridged to zarrs' sync one by [`AsyncToSyncStorageAdapter`] running on
//! a tokio runtime owned by this module, never the caller's: calling it from inside an
//! async context panics, so async callers (the Lambda functions) run updates on a
//! blocking thread. A PUT to S3 replaces the whole object atomically, so each key is
//! written atomically there too.
//!
//! S3 settings come from the usual AWS environment variables (see `docs/aws.md`):
//! credentials, `AWS_REGION` / `AWS_DEFAULT_REGION`, and `AWS_ENDPOINT_URL_S3` or
//! `AWS_ENDPOINT_URL` for an emulator (plain `http://` endpoints are then allowed).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use thiserror::Error;
use zarrs::storage::{ReadableStorageTraits, StorageError, WritableStorageTraits};
use zarrs_storage::storage_adapter::async_to_sync::{
    AsyncToSyncBlockOn, AsyncToSyncStorageAdapter,
};

use super::atomic_fs::AtomicFilesystemStore;
use super::fault_points::with_fault_points;
use super::fenced::{self, Fence, FencedError};
use super::raw_keys::RawKeyObjectStore;
use super::staged::Storage;
use crate::text::redact_urls;

/// A store location as written in a dataset's `store` key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreLocation {
    /// A directory (`path` or `file://path`).
    Local(PathBuf),
    /// `s3://bucket/prefix` (the prefix may be empty: the bucket's root).
    S3 {
        /// The bucket's name.
        bucket: String,
        /// Key prefix of the store, without leading or trailing `/`.
        prefix: String,
    },
}

/// Why a dataset's `store` value is not a location zru can use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LocationError {
    /// The value is empty.
    #[error("must be a path, a file:// URL or an s3://bucket/prefix URL")]
    Empty,
    /// An `s3://` URL without a bucket name (the URL).
    #[error("{0:?}: an s3:// URL needs a bucket name (s3://bucket/prefix)")]
    NoBucket(String),
    /// An `s3://` URL zru cannot use: a bucket name S3 refuses, or an empty, `.` or
    /// `..` component in the prefix.
    #[error("{url:?}: {reason}")]
    BadS3 {
        /// The URL (credentials hidden).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL scheme other than `file://` and `s3://` (the value).
    #[error("{0:?}: only local paths, file:// and s3:// URLs are supported")]
    Scheme(String),
    /// A value that looks like a mistyped URL (`S3://`, `s3:/`).
    #[error(
        "{0:?} looks like a mistyped URL (a scheme must be lowercase and followed by \"://\")"
    )]
    Malformed(String),
    /// A local path with an empty component (`data//sst.zarr`): probably a
    /// mistyped URL.
    #[error("{0:?}: a local path may not contain \"//\" (an empty component; it looks like a mistyped URL)")]
    DoubleSlash(String),
}

impl LocationError {
    /// How to correct the location.
    pub fn fix(&self) -> String {
        match self {
            Self::Empty => "write a path such as \"data/zarr/sst.zarr\", \"file:///srv/zarr/sst.zarr\" or \"s3://bucket/prefix\"".into(),
            Self::NoBucket(_) | Self::BadS3 { .. } | Self::Malformed(_) => {
                "write s3://bucket/prefix (bucket: 3 to 63 lowercase letters, digits, '-' and '.'), file:///absolute/path or a plain path".into()
            }
            Self::Scheme(_) => "copy the store to S3 (s3://bucket/prefix) or a local directory (a plain path)".into(),
            Self::DoubleSlash(_) => "write s3://bucket/prefix for S3, or the path with single slashes".into(),
        }
    }
}

/// `scheme:` at the start of `text` (two or more characters, so a Windows drive letter
/// is not one).
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (scheme.len() >= 2
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
    .then_some(scheme)
}

impl StoreLocation {
    /// Parses `path`, `file://path` or `s3://bucket/prefix`. Anything else that looks
    /// like a URL (`s3:/b`, `S3://b`, `gs://b`, `http://h/x`, `file:/x`) or a mistyped
    /// one (`s3//b`: a path with `//`) is an error, never a local directory.
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        if text.trim().is_empty() {
            return Err(LocationError::Empty);
        }
        if let Some(path) = text.strip_prefix("file://") {
            if path.trim().is_empty() {
                return Err(LocationError::Empty);
            }
            if path.contains("//") {
                return Err(LocationError::DoubleSlash(redact_urls(text)));
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LocationError::NoBucket(redact_urls(text)));
            }
            let bad = |reason: &str| LocationError::BadS3 {
                url: redact_urls(text),
                reason: reason.to_string(),
            };
            if !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
            {
                return Err(bad(
                    "bucket names are lowercase letters, digits, '-' and '.'",
                ));
            }
            if !(3..=63).contains(&bucket.len())
                || !bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                || !bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
            {
                return Err(bad(
                    "bucket names are 3 to 63 characters and start and end with a letter or digit",
                ));
            }
            let prefix = prefix.trim_end_matches('/');
            if prefix
                .split('/')
                .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
            {
                return Err(bad("the prefix has an empty, '.' or '..' component"));
            }
            if prefix.chars().any(|c| c.is_ascii_control()) {
                return Err(bad(
                    "the prefix has a control character, which an S3 object name written by zru cannot hold",
                ));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(scheme) = url_scheme(text) {
            let lower = scheme.to_ascii_lowercase();
            return Err(if lower == "s3" || lower == "file" {
                LocationError::Malformed(redact_urls(text))
            } else {
                LocationError::Scheme(redact_urls(text))
            });
        }
        if text.contains("://") {
            return Err(LocationError::Scheme(redact_urls(text)));
        }
        if text.contains("//") {
            return Err(LocationError::DoubleSlash(redact_urls(text)));
        }
        Ok(Self::Local(PathBuf::from(text)))
    }

    /// The local directory, for local stores.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Self::Local(path) => Some(path),
            Self::S3 { .. } => None,
        }
    }

    /// A path-like name for messages and lock files (`s3://bucket/prefix` for S3).
    pub(crate) fn display_path(&self) -> PathBuf {
        match self {
            Self::Local(path) => path.clone(),
            Self::S3 { .. } => PathBuf::from(self.to_string()),
        }
    }

    /// The storage zru reads and writes the store through. Local stores' directory is
    /// created; nothing is written to S3.
    pub fn storage(&self) -> Result<Arc<Storage>, StorageError> {
        let storage: Arc<Storage> = match self {
            Self::Local(path) => Arc::new(AtomicFilesystemStore::new(path)?),
            Self::S3 { bucket, prefix } => s3_storage(bucket, prefix)?,
        };
        Ok(with_fault_points(storage))
    }
}

impl StoreLocation {
    /// The location of a file kept beside the store (the ledger): the store's path or
    /// key with `suffix` appended (`sst.zarr` -> `sst.zarr.zru-ledger.json`).
    pub fn sibling(&self, suffix: &str) -> Sibling {
        match self {
            Self::Local(path) => {
                let mut name = path
                    .file_name()
                    .map(|n| n.to_os_string())
                    .unwrap_or_else(|| "store".into());
                name.push(suffix);
                Sibling::Local(path.with_file_name(name))
            }
            Self::S3 { bucket, prefix } => Sibling::S3 {
                bucket: bucket.clone(),
                key: format!(
                    "{}{suffix}",
                    if prefix.is_empty() { "store" } else { prefix }
                ),
            },
        }
    }
}

impl StoreLocation {
    /// The object of key `name` of an S3 store, read and written whole (the root
    /// group's metadata, fenced); `None` for a local store.
    pub(crate) fn object(&self, name: &str) -> Option<Sibling> {
        match self {
            Self::Local(_) => None,
            Self::S3 { bucket, prefix } => Some(Sibling::S3 {
                bucket: bucket.clone(),
                key: if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                },
            }),
        }
    }
}

/// A single object kept beside a store, read and replaced whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sibling {
    /// A file beside a local store.
    Local(PathBuf),
    /// An object beside an S3 store: `s3://bucket/key`.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// The object's key.
        key: String,
    },
}

impl fmt::Display for Sibling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl Sibling {
    fn s3_storage(bucket: &str) -> Result<Arc<Storage>, StorageError> {
        s3_storage(bucket, "")
    }

    fn s3_key(key: &str) -> Result<zarrs::storage::StoreKey, StorageError> {
        zarrs::storage::StoreKey::new(key).map_err(|e| StorageError::Other(e.to_string()))
    }

    /// Its bytes, or `None` if it does not exist yet.
    pub fn read(&self) -> Result<Option<Vec<u8>>, StorageError> {
        match self {
            Self::Local(path) => Ok(super::atomic_fs::read_regular_nofollow(path)
                .map_err(|e| StorageError::Other(format!("{}: {e}", path.display())))?),
            Self::S3 { bucket, key } => Ok(Self::s3_storage(bucket)?
                .get(&Self::s3_key(key)?)?
                .map(|b| b.to_vec())),
        }
    }

    /// Reads the object with the fence of its next [`Self::write_fenced`] (`None`
    /// for a local file: the store lock is its only guard).
    pub fn read_fenced(&self) -> Result<(Option<Vec<u8>>, Option<Fence>), StorageError> {
        match self {
            Self::Local(_) => Ok((self.read()?, None)),
            Self::S3 { bucket, key } => {
                let s3 = amazon_s3(bucket)?;
                let path = super::raw_keys::path(key)?;
                let (bytes, fence) = runtime()?
                    .block_on(fenced::read(&s3, &path))
                    .map_err(|e| StorageError::Other(redact_urls(&e.to_string())))?;
                Ok((bytes, Some(fence)))
            }
        }
    }

    /// The fence of the object's next [`Self::write_fenced`] without reading it (a HEAD;
    /// `None` for a local file).
    pub fn head_fenced(&self) -> Result<Option<Fence>, StorageError> {
        match self {
            Self::Local(_) => Ok(None),
            Self::S3 { bucket, key } => {
                let s3 = amazon_s3(bucket)?;
                let path = super::raw_keys::path(key)?;
                let fence = runtime()?
                    .block_on(fenced::head(&s3, &path))
                    .map_err(|e| StorageError::Other(redact_urls(&e.to_string())))?;
                Ok(Some(fence))
            }
        }
    }

    /// Writes the object if it is still what `fence` says (S3 conditional write), or
    /// unconditionally without a fence; returns the fence of the next write.
    pub fn write_fenced(
        &self,
        bytes: &[u8],
        fence: Option<&Fence>,
    ) -> Result<Option<Fence>, FencedError> {
        let other = |source: StorageError| FencedError::Other {
            path: self.to_string(),
            reason: redact_urls(&source.to_string()),
        };
        let (Self::S3 { bucket, key }, Some(fence)) = (self, fence) else {
            self.write(bytes).map_err(other)?;
            return Ok(None);
        };
        let s3 = amazon_s3(bucket).map_err(other)?;
        let path = super::raw_keys::path(key).map_err(other)?;
        let next =
            runtime()
                .map_err(other)?
                .block_on(fenced::write(&s3, &path, bytes.to_vec(), fence))?;
        Ok(Some(next))
    }

    /// Replaces it atomically: temporary file, fsync, rename locally; one PUT on S3.
    pub fn write(&self, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            Self::Local(path) => Ok(super::atomic_fs::replace_file(path, bytes)?),
            Self::S3 { bucket, key } => Self::s3_storage(bucket)?.set(
                &Self::s3_key(key)?,
                zarrs::storage::Bytes::copy_from_slice(bytes),
            ),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The S3 endpoint override from the environment, if any.
pub(crate) fn s3_endpoint_from_env() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
}

/// The runtime that runs S3 requests for the sync storage API. It is never dropped
/// (dropping a runtime inside an async context panics) and never the caller's.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, StorageError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("zru-s3")
        .enable_all()
        .build()
        .map_err(|e| StorageError::Other(format!("cannot start the S3 I/O runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// Runs futures to completion on the store I/O runtime (see [`runtime`]).
pub(crate) struct BlockOn(pub(crate) tokio::runtime::Handle);

/// Runs `future` on the store I/O runtime and waits for it (never from inside an async
/// context).
#[cfg(feature = "icechunk")]
pub(crate) fn block_on<F: core::future::Future>(future: F) -> Result<F::Output, StorageError> {
    Ok(runtime()?.block_on(future))
}

impl AsyncToSyncBlockOn for BlockOn {
    fn block_on<F: core::future::Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// object_store's S3 client for `bucket`, from the environment (endpoint overrides,
/// region default `us-east-1`).
fn amazon_s3(bucket: &str) -> Result<AmazonS3, StorageError> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = s3_endpoint_from_env() {
        let http = endpoint.starts_with("http://");
        builder = builder.with_endpoint(endpoint).with_allow_http(http);
    }
    let has_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
    if !has_region {
        builder = builder.with_region("us-east-1");
    }
    builder
        .build()
        .map_err(|e| StorageError::Other(redact_urls(&format!("s3://{bucket}: {e}"))))
}

fn s3_storage(bucket: &str, prefix: &str) -> Result<Arc<Storage>, StorageError> {
    let s3 = amazon_s3(bucket)?;
    let runtime = runtime()?;
    let block_on = BlockOn(runtime.handle().clone());
    Ok(if prefix.is_empty() {
        Arc::new(AsyncToSyncStorageAdapter::new(
            Arc::new(RawKeyObjectStore::new(s3)),
            block_on,
        ))
    } else {
        // The prefix as it is (`PrefixStore::new` of a `&str` would percent-encode it).
        let prefix = ObjectPath::parse(prefix).map_err(|e| {
            StorageError::Other(format!("s3://{bucket}/{prefix}: not an S3 prefix: {e}"))
        })?;
        Arc::new(AsyncToSyncStorageAdapter::new(
            Arc::new(RawKeyObjectStore::new(PrefixStore::new(s3, prefix))),
            block_on,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_file_and_s3_urls() {
        assert_eq!(
            StoreLocation::parse("data/zarr/sst.zarr").unwrap(),
            StoreLocation::Local("data/zarr/sst.zarr".into())
        );
        assert_eq!(
            StoreLocation::parse("file:///tmp/x.zarr").unwrap(),
            StoreLocation::Local("/tmp/x.zarr".into())
        );
        let s3 = StoreLocation::parse("s3://zarr-bucket/stores/sst.zarr/").unwrap();
        assert_eq!(
            s3,
            StoreLocation::S3 {
                bucket: "zarr-bucket".into(),
                prefix: "stores/sst.zarr".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://zarr-bucket/stores/sst.zarr");
        assert!(matches!(s3, StoreLocation::S3 { .. }) && s3.local_path().is_none());
        assert_eq!(
            StoreLocation::parse("s3://bkt").unwrap().to_string(),
            "s3://bkt"
        );
    }

    #[test]
    fn siblings_sit_beside_the_store() {
        let local = StoreLocation::parse("data/zarr/sst.zarr").unwrap();
        assert_eq!(
            local.sibling(".zru-ledger.json"),
            Sibling::Local("data/zarr/sst.zarr.zru-ledger.json".into())
        );
        let s3 = StoreLocation::parse("s3://bkt/stores/sst.zarr").unwrap();
        assert_eq!(
            s3.sibling(".zru-ledger.json").to_string(),
            "s3://bkt/stores/sst.zarr.zru-ledger.json"
        );
        let dir = tempfile::tempdir().unwrap();
        let store = StoreLocation::Local(dir.path().join("x.zarr"));
        let sibling = store.sibling(".j");
        assert_eq!(sibling.read().unwrap(), None);
        sibling.write(b"{}").unwrap();
        assert_eq!(sibling.read().unwrap().as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn rejects_bad_urls() {
        assert_eq!(StoreLocation::parse(" "), Err(LocationError::Empty));
        assert!(matches!(
            StoreLocation::parse("s3:///x"),
            Err(LocationError::NoBucket(_))
        ));
        assert!(matches!(
            StoreLocation::parse("s3://Bad_Bucket/x"),
            Err(LocationError::BadS3 { .. })
        ));
        assert!(matches!(
            StoreLocation::parse("s3://bkt/a//c"),
            Err(LocationError::BadS3 { .. })
        ));
        assert!(matches!(
            StoreLocation::parse("s3://bkt/../c"),
            Err(LocationError::BadS3 { .. })
        ));
        assert!(matches!(
            StoreLocation::parse("s3://bkt/a\u{1}b"),
            Err(LocationError::BadS3 { .. })
        ));
        // Characters object_store would have escaped are kept as they are.
        assert_eq!(
            StoreLocation::parse("s3://bkt/sst~[K].zarr")
                .unwrap()
                .to_string(),
            "s3://bkt/sst~[K].zarr"
        );
        assert!(matches!(
            StoreLocation::parse("gs://b/x"),
            Err(LocationError::Scheme(_))
        ));
    }

    #[test]
    fn credentials_in_store_urls_are_never_printed() {
        for url in [
            "s3://user:hunter2@bucket/x",
            "https://user:hunter2@host/x.zarr",
        ] {
            let error = StoreLocation::parse(url).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.contains("user:***@"), "{error}");
        }
    }

    #[test]
    fn url_lookalikes_never_become_local_directories() {
        for text in [
            "s3:/bucket/x",
            "S3://bucket/x",
            "s3:bucket",
            "file:/x",
            "FILE:///x",
        ] {
            assert_eq!(
                StoreLocation::parse(text),
                Err(LocationError::Malformed(text.into())),
                "{text}"
            );
        }
        for text in [
            "gs://b/x",
            "http://host/x",
            "https://host/x",
            "az://c/x",
            "gcs:b",
        ] {
            assert_eq!(
                StoreLocation::parse(text),
                Err(LocationError::Scheme(text.into())),
                "{text}"
            );
        }
        for text in ["s3//bucket", "data//zarr/x.zarr", "file://a//b"] {
            assert_eq!(
                StoreLocation::parse(text),
                Err(LocationError::DoubleSlash(text.into())),
                "{text}"
            );
        }
        assert_eq!(
            StoreLocation::parse("s3://"),
            Err(LocationError::NoBucket("s3://".into()))
        );
        assert_eq!(StoreLocation::parse("file://"), Err(LocationError::Empty));
        assert!(matches!(
            StoreLocation::parse("s3://ab/x"),
            Err(LocationError::BadS3 { .. })
        ));
        assert!(matches!(
            StoreLocation::parse("s3://-bucket/x"),
            Err(LocationError::BadS3 { .. })
        ));
        assert_eq!(
            StoreLocation::parse("C:/zarr/x.zarr"),
            Ok(StoreLocation::Local("C:/zarr/x.zarr".into()))
        );
        assert_eq!(
            StoreLocation::parse("data/a:b.zarr"),
            Ok(StoreLocation::Local("data/a:b.zarr".into()))
        );
    }
}
