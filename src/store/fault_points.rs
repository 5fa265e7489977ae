//! A storage adapter that marks every key written or erased as a durable write for
//! fault injection ([`crate::fault`]), whatever the backend (local or S3), and fails
//! the writes an injected disk-full or read-only fault refuses. It wraps a store's
//! storage only while a fault is armed, so it costs nothing otherwise.

use std::sync::Arc;

use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix, WritableStorageTraits,
};

use super::staged::Storage;

/// `storage`, with a fault point after each write or erase if a fault is armed.
pub fn with_fault_points(storage: Arc<Storage>) -> Arc<Storage> {
    if crate::fault::armed() {
        Arc::new(FaultPoints(storage))
    } else {
        storage
    }
}

struct FaultPoints(Arc<Storage>);

/// The injected error of a store write, if a store fault refuses it.
pub(super) fn refused() -> Result<(), StorageError> {
    match crate::fault::store_write_error() {
        Some(error) => Err(StorageError::from(error)),
        None => Ok(()),
    }
}

impl ReadableStorageTraits for FaultPoints {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.0.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.0.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.0.supports_get_partial()
    }
}

impl WritableStorageTraits for FaultPoints {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        refused()?;
        self.0.set(key, value)?;
        crate::fault::point();
        Ok(())
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        refused()?;
        self.0.set_partial_many(key, offset_values)?;
        crate::fault::point();
        Ok(())
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        refused()?;
        self.0.erase(key)?;
        crate::fault::point();
        Ok(())
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        refused()?;
        self.0.erase_prefix(prefix)?;
        crate::fault::point();
        Ok(())
    }

    fn supports_set_partial(&self) -> bool {
        self.0.supports_set_partial()
    }
}

impl ListableStorageTraits for FaultPoints {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.0.list()
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.0.list_prefix(prefix)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        self.0.list_dir(prefix)
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.0.size_prefix(prefix)
    }
}
