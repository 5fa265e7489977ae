//! A staging overlay over a store.
//!
//! Every write of one update (chunks and metadata) first lands in memory as encoded
//! bytes. Reads see the staged values over the real store, so read-modify-write of a
//! partial chunk works. Only when the whole file has been read and encoded does
//! [`StagedStore::commit`] write to the real store, in the order chunks -> array
//! metadata -> group (consolidated) metadata. A file that fails half-way leaves the
//! store untouched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rayon::prelude::*;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    ReadableWritableListableStorageTraits, StorageError, StoreKey, StorePrefix,
    WritableStorageTraits,
};

/// Directory of zru's sidecar keys at the root of a store (ignored by Zarr readers).
pub const SIDECAR_DIR: &str = ".zru";

/// The storage zru writes through.
pub type Storage = dyn ReadableWritableListableStorageTraits;

/// Counts of what a commit wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CommitStats {
    /// Chunks written (new or replaced).
    pub chunks_written: u64,
    /// Chunks erased (wholly fill: a blanked slot, or beyond a shrunk extent).
    pub chunks_erased: u64,
    /// Bytes of encoded chunks and metadata written.
    pub bytes_written: u64,
    /// Metadata documents written (array metadata and consolidated metadata).
    pub metadata_written: u64,
    /// Of the chunks written, those copied compressed from the source file, neither
    /// decoded nor encoded (passthrough).
    pub chunks_passed_through: u64,
}

impl std::ops::AddAssign for CommitStats {
    fn add_assign(&mut self, other: Self) {
        self.chunks_written += other.chunks_written;
        self.chunks_erased += other.chunks_erased;
        self.bytes_written += other.bytes_written;
        self.metadata_written += other.metadata_written;
        self.chunks_passed_through += other.chunks_passed_through;
    }
}

/// In-memory overlay of pending writes (`None` = pending erase).
pub struct StagedStore {
    inner: Arc<Storage>,
    pending: Mutex<HashMap<StoreKey, Option<Bytes>>>,
}

impl std::fmt::Debug for StagedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedStore").finish_non_exhaustive()
    }
}

/// A staged write: the key and its value (`None`: an erase).
pub type Pending = (StoreKey, Option<Bytes>);

/// The rank of the root group's metadata keys: written last.
const ROOT_RANK: u8 = 2;

/// Metadata keys are committed after chunks; the root group's last.
///
/// zru's own sidecar keys, under [`SIDECAR_DIR`] (the profile identity index, ...),
/// rank with array metadata: they describe what the chunks hold and must reach the
/// store after them, in the same step as the array metadata they go with and before
/// the root group's (consolidated) metadata. Within a rank keys are committed in byte
/// order, so `.zru/` keys come before the arrays' (whose names start with a letter,
/// digit or `_`), and a sidecar can make its last key its commit point (the identity
/// index writes `.zru/profiles/meta.json` after its `identity/` and `key/` shards).
fn metadata_rank(key: &StoreKey) -> Option<u8> {
    let s = key.as_str();
    if s.starts_with(SIDECAR_DIR) && s[SIDECAR_DIR.len()..].starts_with('/') {
        return Some(1);
    }
    let name = s.rsplit('/').next().unwrap_or(s);
    let is_root = !s.contains('/');
    match name {
        "zarr.json" | ".zarray" | ".zattrs" | ".zgroup" | ".zmetadata" => {
            Some(if is_root { ROOT_RANK } else { 1 })
        }
        _ => None,
    }
}

impl StagedStore {
    pub fn new(inner: Arc<Storage>) -> Self {
        Self {
            inner,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> Result<MutexGuard<'_, HashMap<StoreKey, Option<Bytes>>>, StorageError> {
        // Poisoned only by a panic caught while an event was staged: every insert or
        // removal completes under the guard, so the map is whole, and the event's
        // savepoint rollback restores what it had staged.
        Ok(self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn staged(&self, key: &StoreKey) -> Result<Option<Option<Bytes>>, StorageError> {
        Ok(self.pending()?.get(key).cloned())
    }

    /// The keys of the chunks (keys other than metadata) staged.
    pub fn chunk_keys(&self) -> Result<Vec<StoreKey>, StorageError> {
        Ok(self
            .pending()?
            .keys()
            .filter(|k| metadata_rank(k).is_none())
            .cloned()
            .collect())
    }

    /// The keys of everything staged.
    pub fn pending_keys(&self) -> Result<Vec<StoreKey>, StorageError> {
        Ok(self.pending()?.keys().cloned().collect())
    }

    /// A copy of everything staged (cheap: values are reference counted).
    pub fn snapshot(&self) -> Result<HashMap<StoreKey, Option<Bytes>>, StorageError> {
        Ok(self.pending()?.clone())
    }

    /// Replaces everything staged with a snapshot taken earlier.
    pub fn restore(&self, snapshot: HashMap<StoreKey, Option<Bytes>>) -> Result<(), StorageError> {
        *self.pending()? = snapshot;
        Ok(())
    }

    /// Writes the staged chunks (not metadata) to the real store, in parallel; the
    /// chunks of the arrays named in `last` only after all the others (see
    /// `write_chunks`).
    pub fn commit_chunks(&self, last: &[String]) -> Result<CommitStats, StorageError> {
        let chunks: Vec<(StoreKey, Option<Bytes>)> = {
            let mut pending = self.pending()?;
            let keys: Vec<StoreKey> = pending
                .keys()
                .filter(|k| metadata_rank(k).is_none())
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| pending.remove(&k).map(|v| (k, v)))
                .collect()
        };
        self.write_chunks(chunks, last)
    }

    /// Writes everything staged to the real store: chunks in parallel, then array
    /// metadata, then the root group's metadata (which holds consolidated metadata).
    pub fn commit(&self, last: &[String]) -> Result<CommitStats, StorageError> {
        let (mut stats, root) = self.commit_below_root(last)?;
        stats += self.write_metadata(root)?;
        Ok(stats)
    }

    /// Writes everything staged but the root group's metadata (chunks, then array
    /// metadata and sidecars), and returns the root group's keys still to be written, in
    /// the order to write them (the caller writes them, conditionally on S3).
    pub fn commit_below_root(
        &self,
        last: &[String],
    ) -> Result<(CommitStats, Vec<Pending>), StorageError> {
        let pending: Vec<(StoreKey, Option<Bytes>)> = self.pending()?.drain().collect();
        let (mut metadata, chunks): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(key, _)| metadata_rank(key).is_some());
        let mut stats = self.write_chunks(chunks, last)?;
        // .zattrs before .zarray does not matter to readers; zarr.json of arrays before
        // the root's (consolidated) one does.
        metadata.sort_by_key(|(key, _)| (metadata_rank(key), key.as_str().to_string()));
        let (root, below): (Vec<_>, Vec<_>) = metadata
            .into_iter()
            .partition(|(key, _)| metadata_rank(key) == Some(ROOT_RANK));
        stats += self.write_metadata(below)?;
        Ok((stats, root))
    }

    fn write_metadata(&self, metadata: Vec<Pending>) -> Result<CommitStats, StorageError> {
        let mut stats = CommitStats::default();
        for (key, value) in metadata {
            match value {
                Some(bytes) => {
                    stats.bytes_written += bytes.len() as u64;
                    self.inner.set(&key, bytes)?;
                }
                None => self.inner.erase(&key)?,
            }
            stats.metadata_written += 1;
        }
        Ok(stats)
    }

    /// Writes chunks in parallel, those of the arrays in `last` in a second round: an
    /// array that records what the others hold (the provenance of each slot) must not
    /// run ahead of them, or a process killed between the two would leave data that
    /// its provenance no longer names, which a replayed removal could not find.
    fn write_chunks(
        &self,
        chunks: Vec<(StoreKey, Option<Bytes>)>,
        last: &[String],
    ) -> Result<CommitStats, StorageError> {
        let in_last = |key: &StoreKey| {
            let array = key.as_str().split('/').next().unwrap_or_default();
            last.iter().any(|name| name == array)
        };
        let (second, first): (Vec<_>, Vec<_>) = chunks.into_iter().partition(|(k, _)| in_last(k));
        let mut stats = self.write_chunks_parallel(first)?;
        stats += self.write_chunks_parallel(second)?;
        Ok(stats)
    }

    fn write_chunks_parallel(
        &self,
        chunks: Vec<(StoreKey, Option<Bytes>)>,
    ) -> Result<CommitStats, StorageError> {
        let stats = Mutex::new(CommitStats::default());
        chunks
            .into_par_iter()
            .try_for_each(|(key, value)| -> Result<(), StorageError> {
                let written = match value {
                    Some(bytes) => {
                        let len = bytes.len() as u64;
                        self.inner.set(&key, bytes)?;
                        Some(len)
                    }
                    None => {
                        self.inner.erase(&key)?;
                        None
                    }
                };
                if let Ok(mut s) = stats.lock() {
                    match written {
                        Some(len) => {
                            s.chunks_written += 1;
                            s.bytes_written += len;
                        }
                        None => s.chunks_erased += 1,
                    }
                }
                Ok(())
            })?;
        stats
            .into_inner()
            .map_err(|_| StorageError::Other("commit statistics lock poisoned".into()))
    }
}

impl ReadableStorageTraits for StagedStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        match self.staged(key)? {
            None => self.inner.get_partial_many(key, byte_ranges),
            Some(None) => Ok(None),
            Some(Some(bytes)) => {
                let size = bytes.len() as u64;
                let parts: Vec<Result<Bytes, StorageError>> = byte_ranges
                    .map(|range| {
                        if range.end(size) > size {
                            return Err(StorageError::Other(format!(
                                "byte range beyond the end of staged key {key}"
                            )));
                        }
                        Ok(bytes.slice(range.to_range_usize(size)))
                    })
                    .collect();
                Ok(Some(Box::new(parts.into_iter())))
            }
        }
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        match self.staged(key)? {
            None => self.inner.size_key(key),
            Some(value) => Ok(value.map(|b| b.len() as u64)),
        }
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

impl WritableStorageTraits for StagedStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.pending()?.insert(key.clone(), Some(value));
        Ok(())
    }

    fn set_partial_many(
        &self,
        _key: &StoreKey,
        _offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        Err(StorageError::Other("partial writes are not staged".into()))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.pending()?.insert(key.clone(), None);
        Ok(())
    }

    fn erase_prefix(&self, _prefix: &StorePrefix) -> Result<(), StorageError> {
        Err(StorageError::Other("prefix erase is not staged".into()))
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zarrs::storage::store::MemoryStore;

    fn key(s: &str) -> StoreKey {
        StoreKey::new(s).unwrap()
    }

    #[test]
    fn reads_see_staged_values_and_nothing_reaches_the_store_before_commit() {
        let inner: Arc<Storage> = Arc::new(MemoryStore::new());
        inner
            .set(&key("a/c/0"), Bytes::from_static(b"old"))
            .unwrap();
        inner
            .set(&key("a/c/1"), Bytes::from_static(b"gone"))
            .unwrap();
        let staged = StagedStore::new(inner.clone());
        staged
            .set(&key("a/c/0"), Bytes::from_static(b"new"))
            .unwrap();
        staged.erase(&key("a/c/1")).unwrap();
        staged
            .set(&key("a/zarr.json"), Bytes::from_static(b"{}"))
            .unwrap();

        assert_eq!(
            staged.get(&key("a/c/0")).unwrap().unwrap(),
            Bytes::from_static(b"new")
        );
        assert!(staged.get(&key("a/c/1")).unwrap().is_none());
        assert_eq!(
            inner.get(&key("a/c/0")).unwrap().unwrap(),
            Bytes::from_static(b"old")
        );
        assert!(inner.get(&key("a/zarr.json")).unwrap().is_none());

        let stats = staged.commit(&[]).unwrap();
        assert_eq!(
            (
                stats.chunks_written,
                stats.chunks_erased,
                stats.metadata_written
            ),
            (1, 1, 1)
        );
        assert_eq!(
            inner.get(&key("a/c/0")).unwrap().unwrap(),
            Bytes::from_static(b"new")
        );
        assert!(inner.get(&key("a/c/1")).unwrap().is_none());
        assert!(inner.get(&key("a/zarr.json")).unwrap().is_some());
    }

    #[test]
    fn metadata_is_ranked_after_chunks_and_root_last() {
        assert_eq!(metadata_rank(&key("sst/c/0/0/0")), None);
        assert_eq!(metadata_rank(&key("sst/zarr.json")), Some(1));
        assert_eq!(metadata_rank(&key("sst/.zarray")), Some(1));
        assert_eq!(metadata_rank(&key("zarr.json")), Some(2));
        assert_eq!(metadata_rank(&key(".zmetadata")), Some(2));
        assert_eq!(metadata_rank(&key(".zru/profiles/key/0a.json")), Some(1));
        assert_eq!(metadata_rank(&key(".zru/profiles/meta.json")), Some(1));
        assert_eq!(metadata_rank(&key(".zrux/c/0")), None);
    }

    #[test]
    fn sidecar_keys_commit_after_chunks_shards_before_their_meta_and_root_last() {
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let inner: Arc<Storage> = Arc::new(Recording {
            inner: zarrs::storage::store::MemoryStore::new(),
            order: order.clone(),
        });
        let staged = StagedStore::new(inner);
        for k in [
            "zarr.json",
            "TEMP/zarr.json",
            ".zru/profiles/meta.json",
            "TEMP/c/0/0",
            ".zru/profiles/key/ff.json",
            "_x/zarr.json",
            ".zru/profiles/identity/00.json",
        ] {
            staged.set(&key(k), Bytes::from_static(b"{}")).unwrap();
        }
        staged.commit(&[]).unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            [
                "TEMP/c/0/0",
                ".zru/profiles/identity/00.json",
                ".zru/profiles/key/ff.json",
                ".zru/profiles/meta.json",
                "TEMP/zarr.json",
                "_x/zarr.json",
                "zarr.json",
            ]
        );
    }

    /// A store that records the order keys are set in.
    struct Recording {
        inner: zarrs::storage::store::MemoryStore,
        order: std::sync::Arc<Mutex<Vec<String>>>,
    }

    impl ReadableStorageTraits for Recording {
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
            true
        }
    }

    impl WritableStorageTraits for Recording {
        fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
            self.order.lock().unwrap().push(key.as_str().to_string());
            self.inner.set(key, value)
        }

        fn set_partial_many(
            &self,
            key: &StoreKey,
            offset_values: OffsetBytesIterator,
        ) -> Result<(), StorageError> {
            self.inner.set_partial_many(key, offset_values)
        }

        fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
            self.inner.erase(key)
        }

        fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
            self.inner.erase_prefix(prefix)
        }

        fn supports_set_partial(&self) -> bool {
            false
        }
    }

    impl zarrs::storage::ListableStorageTraits for Recording {
        fn list(&self) -> Result<zarrs::storage::StoreKeys, StorageError> {
            self.inner.list()
        }

        fn list_prefix(
            &self,
            prefix: &StorePrefix,
        ) -> Result<zarrs::storage::StoreKeys, StorageError> {
            self.inner.list_prefix(prefix)
        }

        fn list_dir(
            &self,
            prefix: &StorePrefix,
        ) -> Result<zarrs::storage::StoreKeysPrefixes, StorageError> {
            self.inner.list_dir(prefix)
        }

        fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
            self.inner.size_prefix(prefix)
        }
    }
}
