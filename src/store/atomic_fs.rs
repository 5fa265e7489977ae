//! A filesystem store whose writes are atomic: each value goes to a unique temporary
//! file beside its destination and is renamed over it, so a process killed mid-write
//! leaves either the old value or the new one, never half a chunk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix, WritableStorageTraits,
};

use super::staged::SIDECAR_DIR;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// [`FilesystemStore`] with write-to-temporary-then-rename semantics for `set`.
#[derive(Debug)]
pub struct AtomicFilesystemStore {
    inner: FilesystemStore,
}

impl AtomicFilesystemStore {
    pub fn new(base: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(base)?;
        let inner = FilesystemStore::new(base).map_err(|e| StorageError::Other(e.to_string()))?;
        Ok(Self { inner })
    }

    fn temp_path(destination: &Path) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = destination
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(format!(".zru-tmp-{}-{n}", std::process::id()));
        destination.with_file_name(name)
    }
}

/// Removes `dir` and the directories below it that hold no file (best effort: an error,
/// such as a file appearing, leaves a directory where it is). True if `dir` is gone.
pub fn remove_empty_dirs(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        empty &= is_dir && remove_empty_dirs(&entry.path());
    }
    empty && std::fs::remove_dir(dir).is_ok()
}

impl ReadableStorageTraits for AtomicFilesystemStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.inner.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

impl WritableStorageTraits for AtomicFilesystemStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        let destination = self.inner.key_to_fspath(key);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let temp = Self::temp_path(&destination);
        std::fs::write(&temp, &value)?;
        std::fs::rename(&temp, &destination).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            StorageError::from(e)
        })?;
        Ok(())
    }

    fn set_partial_many(
        &self,
        _key: &StoreKey,
        _offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        Err(StorageError::Other(
            "partial writes are not atomic and are not used by zru".into(),
        ))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.inner.erase(key)?;
        // zru's sidecar directory (`.zru/`, its intent record erased after every batch)
        // is not left behind empty: readers that list the group would warn about it.
        if key.as_str().starts_with(&format!("{SIDECAR_DIR}/")) {
            let sidecar = self.inner.key_to_fspath(&StoreKey::new(SIDECAR_DIR)?);
            remove_empty_dirs(&sidecar);
        }
        Ok(())
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.inner.erase_prefix(prefix)
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

impl ListableStorageTraits for AtomicFilesystemStore {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.inner.list()
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.inner.list_prefix(prefix)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        self.inner.list_dir(prefix)
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.inner.size_prefix(prefix)
    }
}
