//! Fencing of the root group's metadata of an S3 store: `zarr.json` (Zarr 3, which
//! holds the consolidated metadata) or `.zgroup`, `.zattrs` and the consolidated
//! `.zmetadata` (Zarr 2, as xarray writes them).
//!
//! When a store is opened, each root key a commit may write is read (or, if the open
//! does not need its bytes, looked at with a HEAD) together with its ETag, or found
//! absent. The commit then writes each one conditionally (`If-Match` on that ETag,
//! `If-None-Match: *` if it was absent; see [`super::fenced`]): a stale writer (a
//! timed-out invocation still running, a second deployment) whose batch started before
//! another writer's commit gets [`StoreError::Fenced`] instead of overwriting the newer
//! root metadata. A local store has no fence: the store lock is its guard, and its
//! root keys are read and written as before. Neither has an Icechunk repository
//! ([`RootFences::unfenced`]): its keys are not objects of the bucket, and its commit
//! is its own optimistic fence (a moved branch is [`StoreError::Conflict`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use zarrs::storage::{Bytes, StorageError, StoreKey};

use super::fenced::{Fence, FencedError};
use super::staged::Storage;
use super::{StoreError, StoreLocation, ZarrFormat};

/// The root keys a commit of a store of `format` may write.
fn root_keys(format: ZarrFormat) -> &'static [&'static str] {
    match format {
        ZarrFormat::V3 => &["zarr.json"],
        ZarrFormat::V2 => &[".zattrs", ".zgroup", ".zmetadata"],
    }
}

/// The root key that holds the consolidated metadata: every commit that changes the
/// root metadata rewrites it.
fn consolidated_key(format: ZarrFormat) -> &'static str {
    match format {
        ZarrFormat::V3 => "zarr.json",
        ZarrFormat::V2 => ".zmetadata",
    }
}

/// What a writer read of a store's root keys: the conditions of their next writes.
pub(crate) struct RootFences {
    location: StoreLocation,
    /// False for a store whose root keys are not objects of `location` (Icechunk).
    fenced: bool,
    fences: Mutex<HashMap<String, Fence>>,
}

impl RootFences {
    /// No fence read yet.
    pub(crate) fn new(location: &StoreLocation) -> Self {
        Self {
            location: location.clone(),
            fenced: true,
            fences: Mutex::new(HashMap::new()),
        }
    }

    /// No fence ever: every root key is read and written through the store's storage,
    /// as locally. For an Icechunk repository, whose commit fences the whole batch.
    pub(crate) fn unfenced(location: &StoreLocation) -> Self {
        Self {
            fenced: false,
            ..Self::new(location)
        }
    }

    /// The S3 object that holds root key `name`, if this store's root keys are fenced.
    fn object(&self, name: &str) -> Option<super::location::Sibling> {
        if self.fenced {
            self.location.object(name)
        } else {
            None
        }
    }

    fn fences(&self) -> MutexGuard<'_, HashMap<String, Fence>> {
        // Every insert completes under the guard: a poisoned map is whole.
        self.fences.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fence of root key `name`, if one was read.
    #[cfg(test)]
    pub(crate) fn fence(&self, name: &str) -> Option<Fence> {
        self.fences().get(name).cloned()
    }

    /// Reads root key `name`: through `storage` locally; on S3 with its ETag (or its
    /// absence), the fence of its next write.
    pub(crate) fn read(
        &self,
        storage: &Storage,
        name: &str,
    ) -> Result<Option<Bytes>, StorageError> {
        let Some(object) = self.object(name) else {
            return storage.get(&root_key(name)?);
        };
        let (bytes, fence) = object.read_fenced()?;
        if let Some(fence) = fence {
            self.fences().insert(name.to_string(), fence);
        }
        Ok(bytes.map(Bytes::from))
    }

    /// Takes the fence of every root key a commit of `format` may write that was not
    /// read (a HEAD each on S3; nothing locally).
    pub(crate) fn observe(&self, format: ZarrFormat) -> Result<(), StorageError> {
        for name in root_keys(format) {
            if self.fences().contains_key(*name) {
                continue;
            }
            let Some(object) = self.object(name) else {
                return Ok(());
            };
            if let Some(fence) = object.head_fenced()? {
                self.fences().insert((*name).to_string(), fence);
            }
        }
        Ok(())
    }

    /// An error ([`StoreError::Fenced`]) if the key that every root metadata change
    /// rewrites (`zarr.json`; `.zmetadata` for Zarr 2) is no longer what was read: another
    /// writer committed since (S3: one HEAD; nothing to check locally). A batch checks
    /// before it writes anything of its own, so a stale writer stops before its first
    /// chunk; the conditional write of the root metadata catches a commit that slips in
    /// after the check.
    pub(crate) fn check(&self, format: ZarrFormat) -> Result<(), StoreError> {
        let name = consolidated_key(format);
        let Some(fence) = self.fences().get(name).cloned() else {
            return Ok(());
        };
        let Some(object) = self.object(name) else {
            return Ok(());
        };
        let store = self.location.display_path();
        let now = object.head_fenced().map_err(|source| StoreError::Storage {
            store: store.clone(),
            source,
        })?;
        match now {
            Some(now) if now != fence && fence != Fence::Unknown => Err(StoreError::Fenced {
                store,
                source: FencedError::Conflict {
                    path: object.to_string(),
                    expected: fence.describe(),
                },
            }),
            _ => Ok(()),
        }
    }

    /// Writes root key `key`: on S3 only if it is still what was read (then its new
    /// ETag fences the next write); locally, or without a fence, through `storage`.
    pub(crate) fn write(
        &self,
        storage: &Storage,
        key: &StoreKey,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let store = self.location.display_path();
        let fence = self.fences().get(key.as_str()).cloned();
        let (Some(object), Some(fence)) = (self.object(key.as_str()), fence) else {
            return storage
                .set(key, bytes)
                .map_err(|source| StoreError::Storage { store, source });
        };
        super::fault_points::refused().map_err(|source| StoreError::Storage {
            store: store.clone(),
            source,
        })?;
        let next = object
            .write_fenced(&bytes, Some(&fence))
            .map_err(|source| StoreError::Fenced { store, source })?;
        if let Some(next) = next {
            self.fences().insert(key.as_str().to_string(), next);
        }
        crate::fault::point();
        Ok(())
    }
}

fn root_key(name: &str) -> Result<StoreKey, StorageError> {
    StoreKey::new(name).map_err(|e| StorageError::Other(format!("{name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_fences_the_root_keys_its_commit_writes() {
        assert_eq!(root_keys(ZarrFormat::V3), ["zarr.json"]);
        assert_eq!(
            root_keys(ZarrFormat::V2),
            [".zattrs", ".zgroup", ".zmetadata"]
        );
    }

    #[test]
    fn a_local_store_has_no_fence() {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Local(dir.path().join("s.zarr"));
        let storage = location.storage().unwrap();
        let fences = RootFences::new(&location);
        assert_eq!(fences.read(storage.as_ref(), "zarr.json").unwrap(), None);
        fences.observe(ZarrFormat::V3).unwrap();
        assert_eq!(fences.fence("zarr.json"), None);
        fences.check(ZarrFormat::V3).unwrap();
        let key = StoreKey::new("zarr.json").unwrap();
        fences
            .write(storage.as_ref(), &key, Bytes::from_static(b"{}"))
            .unwrap();
        // A second writer that read nothing writes too: the lock is the guard.
        RootFences::new(&location)
            .write(storage.as_ref(), &key, Bytes::from_static(b"{ }"))
            .unwrap();
        assert_eq!(
            fences
                .read(storage.as_ref(), "zarr.json")
                .unwrap()
                .as_deref(),
            Some(&b"{ }"[..])
        );
    }

    #[test]
    fn an_unfenced_s3_store_reads_and_writes_its_root_keys_through_its_storage() {
        // An Icechunk repository on S3: its root keys live in the session, not in the
        // bucket, so nothing may be read or written beside it (no S3 call is made).
        let dir = tempfile::tempdir().unwrap();
        let session = StoreLocation::Local(dir.path().join("session"))
            .storage()
            .unwrap();
        let location = StoreLocation::S3 {
            bucket: "bucket".to_string(),
            prefix: "repo".to_string(),
        };
        let fences = RootFences::unfenced(&location);
        assert_eq!(fences.read(session.as_ref(), "zarr.json").unwrap(), None);
        fences.observe(ZarrFormat::V3).unwrap();
        fences.check(ZarrFormat::V3).unwrap();
        let key = StoreKey::new("zarr.json").unwrap();
        fences
            .write(session.as_ref(), &key, Bytes::from_static(b"{}"))
            .unwrap();
        assert_eq!(fences.fence("zarr.json"), None);
        assert_eq!(
            fences
                .read(session.as_ref(), "zarr.json")
                .unwrap()
                .as_deref(),
            Some(&b"{}"[..])
        );
    }
}
