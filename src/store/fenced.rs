//! Conditional writes of one object (the ledger beside an S3 store): fencing.
//!
//! A writer reads the object with its ETag, and writes it back only if it is still
//! the object it read: `If-Match: <etag>` to replace it, `If-None-Match: *` to create
//! it (object_store's `PutMode::Update` and `PutMode::Create`; S3 conditional writes).
//! A stale writer (a timed-out invocation still running, a second deployment on the
//! same stores) then gets [`FencedError::Conflict`] instead of overwriting what a
//! newer writer saved.

use object_store::path::Path;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use thiserror::Error;

/// What a writer read of an object: the condition of its next write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// The object did not exist: create it only if it still does not.
    Absent,
    /// The object had this ETag: replace it only if it still has.
    ETag(String),
    /// The store reported no ETag: the write is unconditional.
    Unknown,
}

impl Fence {
    /// What the writer read, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Absent => "it did not exist".into(),
            Self::ETag(etag) => format!("it had ETag {etag}"),
            Self::Unknown => "no ETag".into(),
        }
    }
}

/// A conditional read or write that failed.
#[derive(Debug, Error)]
pub enum FencedError {
    /// Another writer created or replaced the object since it was read.
    #[error(
        "{path}: another writer changed it since this batch read it ({expected}): not \
         overwritten (a stale invocation or a second deployment writes this store; the \
         batch is retried on the newer state)"
    )]
    Conflict {
        /// The object.
        path: String,
        /// What the batch had read.
        expected: String,
    },
    /// The client could not be set up, or a local write failed.
    #[error("{path}: {reason}")]
    Other {
        /// The object.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The request failed otherwise.
    #[error("{path}: {source}")]
    Storage {
        /// The object.
        path: String,
        /// object_store's error.
        #[source]
        source: object_store::Error,
    },
}

/// The object's bytes (`None`: absent) and the fence of its next write.
pub async fn read<S: ObjectStore + ?Sized>(
    store: &S,
    path: &Path,
) -> Result<(Option<Vec<u8>>, Fence), FencedError> {
    let storage = |source| FencedError::Storage {
        path: path.to_string(),
        source,
    };
    let result = match store.get_opts(path, GetOptions::default()).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok((None, Fence::Absent)),
        Err(error) => return Err(storage(error)),
    };
    let fence = result
        .meta
        .e_tag
        .clone()
        .map_or(Fence::Unknown, Fence::ETag);
    let bytes = result.bytes().await.map_err(storage)?;
    Ok((Some(bytes.to_vec()), fence))
}

/// The fence of the object's next write, without reading its bytes (a HEAD).
pub async fn head<S: ObjectStore + ?Sized>(store: &S, path: &Path) -> Result<Fence, FencedError> {
    match store.head(path).await {
        Ok(meta) => Ok(meta.e_tag.map_or(Fence::Unknown, Fence::ETag)),
        Err(object_store::Error::NotFound { .. }) => Ok(Fence::Absent),
        Err(source) => Err(FencedError::Storage {
            path: path.to_string(),
            source,
        }),
    }
}

/// Writes `bytes` if the object is still what `fence` says; returns the fence of the
/// next write (the new ETag).
pub async fn write<S: ObjectStore + ?Sized>(
    store: &S,
    path: &Path,
    bytes: Vec<u8>,
    fence: &Fence,
) -> Result<Fence, FencedError> {
    let mode = match fence {
        Fence::Absent => PutMode::Create,
        Fence::ETag(etag) => PutMode::Update(UpdateVersion {
            e_tag: Some(etag.clone()),
            version: None,
        }),
        Fence::Unknown => PutMode::Overwrite,
    };
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    match store.put_opts(path, PutPayload::from(bytes), options).await {
        Ok(result) => Ok(result.e_tag.map_or(Fence::Unknown, Fence::ETag)),
        Err(
            object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
        ) => Err(FencedError::Conflict {
            path: path.to_string(),
            expected: fence.describe(),
        }),
        Err(source) => Err(FencedError::Storage {
            path: path.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_stale_writer_fails_instead_of_overwriting() {
        run(async {
            let store = InMemory::new();
            let path = Path::parse("stores/sst.zarr.zru-ledger.json").unwrap();
            // Two writers read the absent ledger; the first creates it, the second
            // (stale) may not.
            let (bytes, fence) = read(&store, &path).await.unwrap();
            assert_eq!((bytes, &fence), (None, &Fence::Absent));
            assert_eq!(head(&store, &path).await.unwrap(), Fence::Absent);
            let first = write(&store, &path, b"one".to_vec(), &fence).await.unwrap();
            assert!(matches!(first, Fence::ETag(_)), "{first:?}");
            let error = write(&store, &path, b"stale".to_vec(), &fence)
                .await
                .unwrap_err();
            assert!(matches!(error, FencedError::Conflict { .. }), "{error}");
            assert!(error.to_string().contains("another writer"), "{error}");
            // Both read version one; the first replaces it, the second is refused.
            let (bytes, read_fence) = read(&store, &path).await.unwrap();
            assert_eq!(bytes.as_deref(), Some(&b"one"[..]));
            assert_eq!(read_fence, first);
            assert_eq!(head(&store, &path).await.unwrap(), first);
            let second = write(&store, &path, b"two".to_vec(), &read_fence)
                .await
                .unwrap();
            assert_ne!(second, first);
            let error = write(&store, &path, b"stale".to_vec(), &read_fence)
                .await
                .unwrap_err();
            assert!(matches!(error, FencedError::Conflict { .. }), "{error}");
            // The writer that holds the newest fence goes on.
            write(&store, &path, b"three".to_vec(), &second)
                .await
                .unwrap();
            let (bytes, _) = read(&store, &path).await.unwrap();
            assert_eq!(bytes.as_deref(), Some(&b"three"[..]));
        });
    }
}
