//! zarrs storage over an [`object_store::ObjectStore`] (S3) whose object names are
//! exactly the Zarr keys, as zarr-python, xarray, fsspec/s3fs and obstore write and read
//! them.
//!
//! `zarrs_object_store` (which zru used before) maps a key to an object with
//! object_store's `Path::from`, which percent-encodes `% ~ [ ] # | ^ { } < > \` backquote
//! `"` `* ?`, control characters and every non-ASCII byte, while listings give back the
//! object names as stored, which `Path::from` then encodes again. A key such as
//! `sst~anomaly[K]/zarr.json` was stored as `sst%7Eanomaly%5BK%5D/zarr.json`, which no
//! other reader looks up, and a listed key did not read back: an array so named was lost
//! when the store was opened again.
//!
//! Here a key becomes an object name with [`Path::parse`], which keeps it as it is, and
//! listings give back the names S3 holds. object_store percent-encodes the name once in
//! the request URL (and signs that URL), as S3 expects. `Path::parse` refuses what no
//! object_store path may hold: ASCII control characters and `.` or `..` segments. A
//! key with one is an error here, and [`unstorable`] lets callers refuse such an array
//! name before anything is written.

use futures::{StreamExt, TryStreamExt};
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, ObjectStoreExt};
use zarrs_storage::byte_range::ByteRangeIterator;
use zarrs_storage::{
    async_store_set_partial_many, AsyncListableStorageTraits, AsyncMaybeBytesIterator,
    AsyncReadableStorageTraits, AsyncWritableStorageTraits, Bytes, MaybeBytes, OffsetBytesIterator,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix,
};

/// Why `name` (one path segment: an array name) cannot be part of an S3 object name
/// written through object_store, if it cannot.
pub fn unstorable(name: &str) -> Option<String> {
    if let Some(c) = name.chars().find(char::is_ascii_control) {
        return Some(format!(
            "it holds the control character U+{:04X}, which zru's S3 client (object_store) \
             cannot put in an object name",
            c as u32
        ));
    }
    PathPart::parse(name).err().map(|e| {
        format!("it cannot be an S3 object name segment for zru's S3 client (object_store): {e}")
    })
}

/// The object name of `key`: the key itself.
pub(crate) fn path(key: &str) -> Result<Path, StorageError> {
    Path::parse(key)
        .map_err(|e| StorageError::Other(format!("{key:?} cannot be an S3 object name: {e}")))
}

/// The object name of a prefix (`a/b/` -> `a/b`, the root -> the bucket's or prefix
/// store's root).
fn prefix_path(prefix: &StorePrefix) -> Result<Path, StorageError> {
    path(prefix.as_str())
}

/// A listed object name as a key (the name itself).
fn listed_key(location: &Path) -> Result<StoreKey, StorageError> {
    StoreKey::new(location.as_ref()).map_err(StorageError::from)
}

fn not_found_is_none<T>(result: object_store::Result<T>) -> Result<Option<T>, StorageError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(StorageError::Other(e.to_string())),
    }
}

fn other<T>(result: object_store::Result<T>) -> Result<T, StorageError> {
    result.map_err(|e| StorageError::Other(e.to_string()))
}

/// A zarrs async store whose keys are the object names of `T` (see the module docs).
pub struct RawKeyObjectStore<T> {
    inner: T,
}

impl<T: ObjectStore> RawKeyObjectStore<T> {
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    async fn keys_under(&self, prefix: Option<&Path>) -> Result<StoreKeys, StorageError> {
        let metas: Vec<_> = other(self.inner.list(prefix).try_collect().await)?;
        let mut keys = metas
            .iter()
            .map(|meta| listed_key(&meta.location))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort();
        Ok(keys)
    }
}

#[async_trait::async_trait]
impl<T: ObjectStore> AsyncReadableStorageTraits for RawKeyObjectStore<T> {
    async fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        match not_found_is_none(self.inner.get(&path(key.as_str())?).await)? {
            Some(result) => Ok(Some(other(result.bytes().await)?)),
            None => Ok(None),
        }
    }

    async fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<AsyncMaybeBytesIterator<'a>, StorageError> {
        let Some(size) = self.size_key(key).await? else {
            return Ok(None);
        };
        let ranges: Vec<_> = byte_ranges.map(|r| r.to_range(size)).collect();
        let Some(parts) =
            not_found_is_none(self.inner.get_ranges(&path(key.as_str())?, &ranges).await)?
        else {
            return Ok(None);
        };
        let key = key.clone();
        let checked = ranges.into_iter().zip(parts).map(move |(range, bytes)| {
            let expected = range.end.saturating_sub(range.start);
            if expected == bytes.len() as u64 {
                Ok(bytes)
            } else {
                Err(StorageError::Other(format!(
                    "{key}: asked for {expected} bytes, got {}",
                    bytes.len()
                )))
            }
        });
        Ok(Some(futures::stream::iter(checked).boxed()))
    }

    async fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        Ok(not_found_is_none(self.inner.head(&path(key.as_str())?).await)?.map(|m| m.size))
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

#[async_trait::async_trait]
impl<T: ObjectStore> AsyncWritableStorageTraits for RawKeyObjectStore<T> {
    async fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        other(self.inner.put(&path(key.as_str())?, value.into()).await)?;
        Ok(())
    }

    async fn set_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator<'a>,
    ) -> Result<(), StorageError> {
        async_store_set_partial_many(self, key, offset_values).await
    }

    async fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        not_found_is_none(self.inner.delete(&path(key.as_str())?).await)?;
        Ok(())
    }

    async fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        let prefix = prefix_path(prefix)?;
        let locations = self
            .inner
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .boxed();
        let _: Vec<Path> = other(self.inner.delete_stream(locations).try_collect().await)?;
        Ok(())
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl<T: ObjectStore> AsyncListableStorageTraits for RawKeyObjectStore<T> {
    async fn list(&self) -> Result<StoreKeys, StorageError> {
        self.keys_under(None).await
    }

    async fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.keys_under(Some(&prefix_path(prefix)?)).await
    }

    async fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let listing = other(
            self.inner
                .list_with_delimiter(Some(&prefix_path(prefix)?))
                .await,
        )?;
        let mut keys = listing
            .objects
            .iter()
            .map(|meta| listed_key(&meta.location))
            .collect::<Result<Vec<_>, _>>()?;
        let mut prefixes = listing
            .common_prefixes
            .iter()
            .map(|p| StorePrefix::new(format!("{}/", p.as_ref())))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort();
        prefixes.sort();
        Ok(StoreKeysPrefixes::new(keys, prefixes))
    }

    async fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        let prefix = prefix_path(prefix)?;
        let metas: Vec<_> = other(self.inner.list(Some(&prefix)).try_collect().await)?;
        Ok(metas.iter().map(|m| m.size).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_object_names_as_they_are() {
        for key in [
            "sst~anomaly[K]/zarr.json",
            "a%7Eb/c/0",
            ".zru/undo/v%2Fc%2F0%2F0",
            "t\u{e9}mp\u{e9}rature/c/0",
            "a b+c=d&e'f*g?h#i|j^k{l}m<n>o`p\\q\"r/zarr.json",
        ] {
            assert_eq!(path(key).unwrap().as_ref(), key);
        }
        assert_eq!(
            prefix_path(&StorePrefix::new("a~b/").unwrap())
                .unwrap()
                .as_ref(),
            "a~b"
        );
        assert!(prefix_path(&StorePrefix::root()).unwrap().is_root());
        assert!(path("a\u{1}b/zarr.json").is_err());
        assert!(path("../zarr.json").is_err());
    }

    #[test]
    fn array_names_object_store_cannot_hold_are_named() {
        assert_eq!(unstorable("sst~anomaly[K]"), None);
        assert_eq!(unstorable("t\u{e9}mp"), None);
        let reason = unstorable("a\u{7}b").unwrap();
        assert!(reason.contains("U+0007"), "{reason}");
        assert!(unstorable("..").is_some());
        assert!(unstorable("a/b").is_some());
    }
}
