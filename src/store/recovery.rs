//! The intent record of a batch in progress, and the recovery pass that undoes what a
//! batch killed (or failed) before its metadata commit left behind.
//!
//! A transaction writes chunks before the array metadata that makes them part of the
//! store. Chunks of a batch that grows the store, written beyond the committed shape,
//! are invisible as long as the shape does not cover them; but a later batch that grows
//! the store over those indices without writing them (gap slots, blank slots) would
//! read them instead of the fill value. So before its first write, a transaction
//! records its intent in the store's sidecar directory ([`INTENT_KEY`]): per array it
//! creates or grows, the shape before the batch and the largest shape its chunks are
//! written for. The record is updated before a later flush of the batch writes beyond
//! it, and erased after the root group's metadata is committed.
//!
//! A batch may also overwrite keys inside the committed store (a revision of a slot,
//! array or root metadata, sidecar keys). If it dies half-way and its revised file is
//! withdrawn before its events come again, a slot would keep the withdrawn file's
//! values under the provenance of the key it held before. So the record also names each
//! key the batch writes: `saved` if it existed (its before-image is kept first, see
//! [`undo`]), `created` if not. Keys the growth step erases anyway are left out
//! ([`Intent::covers`]).
//!
//! A record found before the next batch (under the store's lock) means a batch stopped
//! between its first write and the end of its commit. It is not in the ledger, so its
//! events are received again; the recovery pass returns the store to its state before
//! that batch:
//! - `saved` keys get their before-images back, `created` keys are erased;
//! - chunks wholly beyond the recorded shape (per array, by chunk key) are erased;
//!   chunks across its boundary keep their values inside it, fill beyond;
//! - array metadata the batch had committed is restored to that shape (arrays the
//!   batch created lose their metadata), then the consolidated metadata is rewritten;
//!   a store the batch created loses its root metadata too;
//! - on a local store, temporary files of atomic writes (`*.zru-tmp-*`) left by a
//!   killed writer are removed (a PUT to S3 leaves none);
//! - last, the before-images and then the record are erased. Every step is idempotent,
//!   so a recovery that is itself interrupted is redone.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zarrs::array::{Array, ArraySubset};
use zarrs::storage::{Bytes, StorageError, StoreKey};

use super::atomic_fs::remove_empty_dirs;
use super::undo::{self, Images};
use super::{
    key, open_array, read_region, write_region, ArrayDoc, StagedStore, Storage, StoreError,
    StoreLocation, ZarrFormat, ZarrStore, SIDECAR_DIR,
};

/// The record's key in the store (under the sidecar directory `.zru/`).
pub const INTENT_KEY: &str = ".zru/intent.json";

/// The part of a temporary file's name that atomic writes add to the key they write.
pub const TEMP_MARK: &str = ".zru-tmp-";

/// What a batch in progress may have written beyond the committed store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub version: u32,
    pub zarr_format: u8,
    /// Whether the store had its root metadata before the batch.
    pub store_existed: bool,
    /// The arrays the batch creates or grows.
    pub arrays: BTreeMap<String, Growth>,
    /// Keys the batch writes or erases that existed before it: their before-images are
    /// kept under [`undo::UNDO_DIR`] (each kept before the record names it).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub saved: BTreeSet<String>,
    /// Keys the batch writes that did not exist before it (other than those the growth
    /// step erases anyway: see [`Intent::covers`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub created: BTreeSet<String>,
    /// Chunk keys wholly beyond the committed shape of arrays the batch grows (the
    /// growth step erases them), not serialised: derived from `arrays`.
    #[serde(skip)]
    beyond: HashSet<String>,
}

/// One array a batch creates or grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Its shape before the batch (`None`: the batch creates it).
    pub committed: Option<Vec<u64>>,
    /// The largest shape the batch's chunks are written for.
    pub extent: Vec<u64>,
    /// Its metadata document (`zarr.json`, or `.zarray` for V2) at that extent: its chunk
    /// grid and chunk key encoding name the chunks to erase.
    pub metadata: Map<String, Value>,
}

impl Intent {
    /// The intent of a transaction whose arrays are `arrays`, on `store` as committed,
    /// covering what `previous` (recorded earlier in the batch) covered too.
    pub fn new(
        store: &ZarrStore,
        arrays: &BTreeMap<String, ArrayDoc>,
        previous: Option<&Intent>,
    ) -> Self {
        let mut grown = previous.map(|p| p.arrays.clone()).unwrap_or_default();
        for doc in arrays.values() {
            let Ok(shape) = doc.shape() else {
                continue;
            };
            let committed = store.arrays.get(&doc.name).and_then(|d| d.shape().ok());
            let grows = committed.as_ref().is_none_or(|c| {
                c.len() != shape.len() || shape.iter().zip(c).any(|(now, before)| now > before)
            });
            if !grows {
                continue;
            }
            let extent = match grown.get(&doc.name) {
                Some(earlier) if earlier.extent.len() == shape.len() => shape
                    .iter()
                    .zip(&earlier.extent)
                    .map(|(a, b)| *a.max(b))
                    .collect(),
                _ => shape,
            };
            let mut metadata = doc.meta.clone();
            metadata.insert("shape".into(), json!(extent));
            grown.insert(
                doc.name.clone(),
                Growth {
                    committed,
                    extent,
                    metadata,
                },
            );
        }
        let beyond = grown
            .iter()
            .filter_map(|(name, growth)| {
                let committed = growth.committed.as_deref().filter(|_| store.exists)?;
                let doc = ArrayDoc {
                    name: name.clone(),
                    format: store.format,
                    meta: growth.metadata.clone(),
                    v2_attrs: Map::new(),
                };
                // Only chunk keys are needed: an empty store does.
                let array = open_array(
                    &store.location,
                    Arc::new(zarrs::storage::store::MemoryStore::new()),
                    &doc,
                )
                .ok()?;
                let chunks = chunks_beyond(&array, Some(committed)).ok()?;
                Some(
                    chunks
                        .into_iter()
                        .filter(|(_, kept)| kept.as_ref().is_some_and(|k| k.num_elements() == 0))
                        .map(|(chunk, _)| array.chunk_key(&chunk).as_str().to_string())
                        .collect::<Vec<_>>(),
                )
            })
            .flatten()
            .collect();
        Self {
            version: 2,
            zarr_format: store.format.number(),
            store_existed: store.exists,
            arrays: grown,
            saved: previous.map(|p| p.saved.clone()).unwrap_or_default(),
            created: previous.map(|p| p.created.clone()).unwrap_or_default(),
            beyond,
        }
    }

    /// True if the growth step of a recovery erases `key` whatever it held, so that it
    /// needs no before-image: a key of an array the batch creates, any key but a sidecar
    /// one of a store the batch creates, a chunk wholly beyond the committed shape.
    pub fn covers(&self, key: &StoreKey) -> bool {
        let key = key.as_str();
        let Some((array, _)) = key.split_once('/') else {
            return false;
        };
        if array == SIDECAR_DIR {
            return false;
        }
        !self.store_existed
            || self
                .arrays
                .get(array)
                .is_some_and(|g| g.committed.is_none())
            || self.beyond.contains(key)
    }
}

/// What a recovery pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Recovered {
    /// Keys the batch overwrote or erased, put back from their before-images.
    pub keys_restored: u64,
    /// Keys the batch created inside the committed store, erased.
    pub keys_erased: u64,
    /// Chunk keys erased (wholly beyond the recorded shape; some may not have existed).
    pub chunks_erased: u64,
    /// Chunks across the recorded shape's boundary rewritten with fill beyond it.
    pub chunks_rewritten: u64,
    /// Arrays whose metadata was restored (or erased, for arrays the batch created).
    pub arrays_restored: Vec<String>,
    /// Temporary files of killed writers removed.
    pub temp_files_removed: u64,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} keys restored from their before-images, {} keys the batch created erased, \
             {} chunk keys beyond the committed shape erased, {} boundary chunks rewritten, \
             metadata of {} arrays restored, {} temporary files removed",
            self.keys_restored,
            self.keys_erased,
            self.chunks_erased,
            self.chunks_rewritten,
            self.arrays_restored.len(),
            self.temp_files_removed
        )
    }
}

fn intent_key() -> StoreKey {
    key(INTENT_KEY)
}

/// A JSON document to write at `name`.
fn json_bytes(store: &Path, name: &str, value: &impl Serialize) -> Result<Bytes, StoreError> {
    serde_json::to_vec_pretty(value)
        .map(Bytes::from)
        .map_err(|e| StoreError::Json {
            store: store.to_path_buf(),
            key: name.to_string(),
            reason: e.to_string(),
        })
}

/// True if an intent record may name `key` as saved or created: a valid key with no
/// `.` or `..` component (a path stays inside the store), neither a before-image nor
/// the record itself.
fn restorable(name: &str) -> bool {
    StoreKey::new(name).is_ok()
        && !name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        && name != INTENT_KEY
        && !name.starts_with(&format!("{}/", undo::UNDO_DIR))
}

/// True if `key` is a temporary file of an atomic write.
pub fn is_temp_key(key: &StoreKey) -> bool {
    key.as_str()
        .rsplit('/')
        .next()
        .is_some_and(|name| name.contains(TEMP_MARK))
}

impl ZarrStore {
    /// Writes (replaces) the store's intent record.
    pub(super) fn write_intent(&self, intent: &Intent) -> Result<(), StoreError> {
        let bytes = json_bytes(&self.location, INTENT_KEY, intent)?;
        self.storage
            .set(&intent_key(), bytes)
            .map_err(|e| self.storage_error(e))
    }

    /// Erases the store's intent record: the batch is committed.
    pub(super) fn erase_intent(&self) -> Result<(), StoreError> {
        self.storage
            .erase(&intent_key())
            .map_err(|e| self.storage_error(e))
    }

    /// Runs the recovery pass if the store at `location` has an intent record (see the
    /// module documentation); `None` if it has none. Call it holding the store's lock,
    /// before a transaction opens the store.
    pub fn recover_at(location: &StoreLocation) -> Result<Option<Recovered>, StoreError> {
        let storage = Self::storage(location)?;
        let storage_error = |source| StoreError::Storage {
            store: location.display_path(),
            source,
        };
        let images = Images {
            storage: storage.as_ref(),
            root: location.local_path(),
        };
        let Some(bytes) = storage.get(&intent_key()).map_err(storage_error)? else {
            // Before-images of a batch killed between its commit and their erasure (or
            // before its record named them) are garbage.
            if images.any_local() {
                images.drop_all().map_err(storage_error)?;
            }
            return Ok(None);
        };
        let intent: Intent = serde_json::from_slice(&bytes).map_err(|e| StoreError::Json {
            store: location.display_path(),
            key: INTENT_KEY.into(),
            reason: e.to_string(),
        })?;
        if let Some(name) = intent
            .arrays
            .keys()
            .find(|n| n.is_empty() || n.contains('/') || n.starts_with('.'))
        {
            return Err(StoreError::Json {
                store: location.display_path(),
                key: INTENT_KEY.into(),
                reason: format!("{name:?} is not an array name"),
            });
        }
        if let Some(bad) = intent
            .saved
            .iter()
            .chain(&intent.created)
            .find(|k| !restorable(k))
        {
            return Err(StoreError::Json {
                store: location.display_path(),
                key: INTENT_KEY.into(),
                reason: format!("{bad:?} is not a key a batch writes"),
            });
        }
        let mut recovered = Recovered::default();
        // First every key the batch changed goes back to what it held before it: the
        // before-images over the keys that existed, the keys it created erased. What
        // follows then finds the store as committed, apart from chunks beyond it.
        for name in &intent.saved {
            if images.restore(name).map_err(storage_error)? {
                recovered.keys_restored += 1;
            }
        }
        for name in &intent.created {
            storage.erase(&key(name)).map_err(storage_error)?;
            recovered.keys_erased += 1;
        }
        let format = if intent.zarr_format == 2 {
            ZarrFormat::V2
        } else {
            ZarrFormat::V3
        };
        // The store as the dead batch left it; its arrays' metadata is read per array,
        // since the root metadata of a store the batch created may be missing.
        let store = Self {
            location: location.display_path(),
            storage: storage.clone(),
            format,
            group_meta: Map::new(),
            root_attrs: Map::new(),
            arrays: BTreeMap::new(),
            exists: intent.store_existed,
            root: location.local_path().map(Path::to_path_buf),
            #[cfg(feature = "icechunk")]
            versioned: None,
            // Recovery writes unfenced, under the store's lock, before any batch reads.
            fences: super::RootFences::new(location),
        };
        let staged = Arc::new(StagedStore::new(storage.clone()));
        for (name, growth) in &intent.arrays {
            let keys = ArrayDoc {
                name: name.clone(),
                format,
                meta: growth.metadata.clone(),
                v2_attrs: Map::new(),
            };
            let array = open_array(&store.location, staged.clone(), &keys)?;
            let committed = growth.committed.as_deref().filter(|_| intent.store_existed);
            clear_beyond(
                &store.location,
                &staged,
                &array,
                &keys,
                committed,
                &mut recovered,
            )?;
            let restored = match (committed, store.load_array(name)?) {
                (Some(shape), Some(mut doc)) => {
                    if doc.shape().ok().as_deref() == Some(shape) {
                        continue;
                    }
                    doc.meta.insert("shape".into(), json!(shape));
                    let mut documents = Vec::new();
                    for (name, value) in doc.documents() {
                        let bytes = json_bytes(&store.location, &name, &value)?;
                        documents.push((name, Some(bytes)));
                    }
                    documents
                }
                (None, Some(doc)) => doc
                    .documents()
                    .into_iter()
                    .map(|(k, _)| (k, None))
                    .collect(),
                (_, None) => continue,
            };
            for (name, value) in restored {
                let key = key(&name);
                let result = match value {
                    Some(bytes) => {
                        zarrs::storage::WritableStorageTraits::set(&*staged, &key, bytes)
                    }
                    None => zarrs::storage::WritableStorageTraits::erase(&*staged, &key),
                };
                result.map_err(storage_error)?;
            }
            recovered.arrays_restored.push(name.clone());
        }
        // Chunks first, then the arrays' metadata.
        staged.commit(&[]).map_err(storage_error)?;
        if let Some(path) = location.local_path() {
            // The directories of arrays the batch created, now without a file.
            for (name, growth) in &intent.arrays {
                if growth.committed.is_none() || !intent.store_existed {
                    remove_empty_dirs(&path.join(name));
                }
            }
        }
        if !intent.store_existed {
            for name in ["zarr.json", ".zgroup", ".zattrs", ".zmetadata"] {
                storage.erase(&key(name)).map_err(storage_error)?;
            }
        } else if !recovered.arrays_restored.is_empty() {
            let store = Self::open_with(location, storage.clone())?;
            for (name, value) in store.root_documents(&store.arrays, &store.root_attrs) {
                let bytes = json_bytes(&store.location, &name, &value)?;
                storage.set(&key(&name), bytes).map_err(storage_error)?;
            }
        }
        if location.local_path().is_some() {
            recovered.temp_files_removed =
                sweep_temp_files(storage.as_ref()).map_err(storage_error)?;
        }
        // Before-images last but the record: a recovery interrupted while erasing them
        // finds the keys already restored (a key without an image is skipped).
        if location.local_path().is_some() || !intent.saved.is_empty() {
            images.drop_all().map_err(storage_error)?;
        }
        storage.erase(&intent_key()).map_err(storage_error)?;
        Ok(Some(recovered))
    }
}

/// Removes the temporary files of atomic writes (local stores: a writer killed between
/// writing one and renaming it over its key leaves it behind).
fn sweep_temp_files(storage: &Storage) -> Result<u64, StorageError> {
    let mut removed = 0;
    for key in storage.list()? {
        if is_temp_key(&key) {
            storage.erase(&key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Every chunk of `array` (opened at the batch's extent) that reaches beyond `committed`
/// (all of them if `None`), with its part inside `committed` (`None` if `committed` is).
#[allow(clippy::type_complexity)]
fn chunks_beyond<S: ?Sized + 'static>(
    array: &Array<S>,
    committed: Option<&[u64]>,
) -> Result<Vec<(Vec<u64>, Option<ArraySubset>)>, String> {
    let extent = array.shape().to_vec();
    let committed = committed.filter(|c| c.len() == extent.len());
    // Regions beyond the committed shape: along each axis that grew, that axis's new
    // part across the whole extent of the others.
    let regions: Vec<ArraySubset> = match committed {
        None => vec![array.subset_all()],
        Some(committed) => (0..extent.len())
            .filter(|&axis| extent[axis] > committed[axis])
            .map(|axis| {
                let ranges: Vec<std::ops::Range<u64>> = (0..extent.len())
                    .map(|a| {
                        if a == axis {
                            committed[a]..extent[a]
                        } else {
                            0..extent[a]
                        }
                    })
                    .collect();
                ArraySubset::new_with_ranges(&ranges)
            })
            .collect(),
    };
    let mut chunks: BTreeSet<Vec<u64>> = BTreeSet::new();
    for region in &regions {
        let Some(in_region) = array
            .chunks_in_array_subset(region)
            .map_err(|e| e.to_string())?
        else {
            return Err(format!("region {region} is outside the chunk grid"));
        };
        chunks.extend(in_region.indices().iter().map(|c| c.to_vec()));
    }
    chunks
        .into_iter()
        .map(|chunk| {
            let kept = match committed {
                None => None,
                Some(committed) => Some(
                    array
                        .chunk_subset_bounded(&chunk)
                        .and_then(|s| Ok(s.bound(committed)?))
                        .map_err(|e| e.to_string())?,
                ),
            };
            Ok((chunk, kept))
        })
        .collect()
}

/// Stages, for every chunk of `array` (opened at the batch's extent) that reaches beyond
/// `committed` (all of them if `None`): its erasure if it lies wholly beyond, or else
/// its rewrite holding only its values inside `committed`.
fn clear_beyond(
    location: &Path,
    staged: &StagedStore,
    array: &Array<StagedStore>,
    keys: &ArrayDoc,
    committed: Option<&[u64]>,
    recovered: &mut Recovered,
) -> Result<(), StoreError> {
    let error = |reason: String| StoreError::Array {
        store: location.to_path_buf(),
        array: keys.name.clone(),
        reason,
    };
    let chunks = chunks_beyond(array, committed).map_err(error)?;
    for (chunk, kept) in chunks {
        match kept {
            Some(kept) if kept.num_elements() > 0 => {
                let key = array.chunk_key(&chunk);
                let stored = zarrs::storage::ReadableStorageTraits::size_key(staged, &key)
                    .map_err(|e| error(e.to_string()))?;
                if stored.is_none() {
                    continue;
                }
                let values = read_region(location, array, keys, kept.start(), kept.shape())?;
                array
                    .erase_chunk(&chunk)
                    .map_err(|e| error(e.to_string()))?;
                write_region(array, &kept, values)
                    .map_err(|e| error(format!("cannot rewrite chunk {chunk:?}: {e}")))?;
                recovered.chunks_rewritten += 1;
            }
            _ => {
                array
                    .erase_chunk(&chunk)
                    .map_err(|e| error(e.to_string()))?;
                recovered.chunks_erased += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::store::{Compressor, NewArray};
    use crate::values::{ElementType, Values};

    /// A 2-D array `v` (`time` x `x`) chunked 2 x 2, with a time coordinate `time`.
    fn docs(format: ZarrFormat, len: u64) -> Vec<ArrayDoc> {
        let new = |name: &str, dims: Vec<&str>, shape: Vec<u64>| {
            ArrayDoc::create(
                format,
                NewArray {
                    name: name.into(),
                    dims: dims.into_iter().map(String::from).collect(),
                    chunks: vec![2; shape.len()],
                    shape,
                    element: ElementType::F64,
                    fill_value: None,
                    attributes: Map::new(),
                    compressor: Compressor::None,
                },
            )
        };
        vec![
            new("v", vec!["time", "x"], vec![len, 3]),
            new("time", vec!["time"], vec![len]),
        ]
    }

    fn grow(tx: &mut super::super::Transaction<'_>, format: ZarrFormat, len: u64) {
        for doc in docs(format, len) {
            tx.put_array(doc);
        }
    }

    fn values(start: u64, len: u64, width: u64) -> Values {
        Values::F64(
            (0..len * width)
                .map(|i| (start * width + i) as f64)
                .collect(),
        )
    }

    fn read(location: &StoreLocation, len: u64) -> Vec<f64> {
        // Read through a transaction that grows the store without writing: slots beyond
        // the committed shape read what their chunks hold.
        let store = ZarrStore::open_at(location).unwrap();
        let mut tx = store.begin();
        grow(&mut tx, store.format, len);
        match tx.read("v", &[0, 0], &[len, 3]).unwrap() {
            Values::F64(v) => v,
            other => panic!("{other:?}"),
        }
    }

    /// A new store at `path` of `len` slots, `v` written in the first `written`.
    fn committed_store(path: PathBuf, format: ZarrFormat, len: u64, written: u64) -> StoreLocation {
        let location = StoreLocation::Local(path);
        let store = ZarrStore::open_or_new_at(&location, format).unwrap();
        let mut tx = store.begin();
        grow(&mut tx, format, len);
        tx.write("v", &[0, 0], &[written, 3], values(0, written, 3))
            .unwrap();
        tx.write("time", &[0], &[len], values(0, len, 1)).unwrap();
        tx.commit().unwrap();
        assert!(ZarrStore::recover_at(&location).unwrap().is_none());
        location
    }

    /// A store of 3 slots, then a batch that grows it to 6 and writes slots 3..6.
    fn store_then_growing_batch(dir: &Path, format: ZarrFormat, commit: bool) -> StoreLocation {
        let path = dir.join(format!("s{}.zarr", format.number()));
        let location = committed_store(path, format, 3, 3);

        let store = ZarrStore::open_at(&location).unwrap();
        let mut tx = store.begin();
        grow(&mut tx, format, 6);
        tx.write("v", &[3, 0], &[3, 3], values(3, 3, 3)).unwrap();
        tx.write("time", &[3], &[3], values(3, 3, 1)).unwrap();
        tx.flush_chunks().unwrap();
        let intent = tx.intent.clone().expect("recorded before the first flush");
        assert_eq!(intent.arrays["v"].committed, Some(vec![3, 3]));
        assert_eq!(intent.arrays["v"].extent, vec![6, 3]);
        if commit {
            // Killed after the metadata commit, before the record was erased.
            tx.commit().unwrap();
            store.write_intent(&intent).unwrap();
        }
        location
    }

    #[test]
    fn recovery_erases_chunks_beyond_the_committed_shape_and_restores_metadata() {
        let dir = tempfile::tempdir().unwrap();
        for format in [ZarrFormat::V3, ZarrFormat::V2] {
            for commit in [false, true] {
                let location = store_then_growing_batch(dir.path(), format, commit);
                let path = location.local_path().unwrap().to_path_buf();
                let temp = path.join("v").join(format!("x{TEMP_MARK}1-2"));
                std::fs::write(&temp, b"half a chunk").unwrap();
                assert_eq!(
                    read(&location, 6)[9..],
                    [9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0]
                );

                let recovered = ZarrStore::recover_at(&location).unwrap().unwrap();
                // Across the boundary (slots 2 and 3): two chunks of v, one of time;
                // beyond it (slots 4 and 5): two of v, one of time.
                assert_eq!(
                    (recovered.chunks_rewritten, recovered.chunks_erased),
                    (3, 3),
                    "{format:?} {commit}: {recovered:?}"
                );
                assert_eq!(recovered.temp_files_removed, 1);
                assert_eq!(recovered.arrays_restored.len(), if commit { 2 } else { 0 });
                assert!(!temp.exists() && !path.join(".zru").exists());
                assert!(ZarrStore::recover_at(&location).unwrap().is_none());

                let store = ZarrStore::open_at(&location).unwrap();
                assert_eq!(store.array("v").unwrap().shape().unwrap(), vec![3, 3]);
                let read = read(&location, 6);
                assert_eq!(read[..9], (0..9).map(f64::from).collect::<Vec<_>>()[..]);
                assert!(
                    read[9..].iter().all(|v| v.is_nan()),
                    "{format:?} {commit}: {read:?}"
                );
                // The consolidated metadata has the committed shape again.
                let (root, pointer) = match format {
                    ZarrFormat::V3 => ("zarr.json", "/consolidated_metadata/metadata/v/shape"),
                    ZarrFormat::V2 => (".zmetadata", "/metadata/v~1.zarray/shape"),
                };
                let root: Value =
                    serde_json::from_slice(&std::fs::read(path.join(root)).unwrap()).unwrap();
                assert_eq!(root.pointer(pointer), Some(&json!([3, 3])), "{root}");
            }
        }
    }

    #[test]
    fn a_store_created_by_an_interrupted_batch_is_erased() {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Local(dir.path().join("new.zarr"));
        let store = ZarrStore::open_or_new_at(&location, ZarrFormat::V3).unwrap();
        let mut tx = store.begin();
        grow(&mut tx, ZarrFormat::V3, 4);
        tx.write("v", &[0, 0], &[4, 3], values(0, 4, 3)).unwrap();
        tx.flush_chunks().unwrap();
        let intent = tx.intent.clone().unwrap();
        assert!(!intent.store_existed && intent.arrays["v"].committed.is_none());
        tx.commit().unwrap();
        store.write_intent(&intent).unwrap();

        ZarrStore::recover_at(&location).unwrap().unwrap();
        let storage = location.storage().unwrap();
        assert_eq!(storage.list().unwrap(), Vec::<StoreKey>::new());
        let left: Vec<_> = std::fs::read_dir(location.local_path().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_intent_covers_every_extent_recorded_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let location = store_then_growing_batch(dir.path(), ZarrFormat::V3, false);
        let store = ZarrStore::open_at(&location).unwrap();
        let mut arrays = store.arrays.clone();
        assert!(Intent::new(&store, &arrays, None).arrays.is_empty());
        let mut tx = store.begin();
        grow(&mut tx, ZarrFormat::V3, 5);
        let first = Intent::new(&store, tx.arrays(), None);
        assert_eq!(first.arrays["time"].extent, vec![5]);
        arrays.insert("time".into(), docs(ZarrFormat::V3, 4).remove(1));
        let second = Intent::new(&store, &arrays, Some(&first));
        assert_eq!(second.arrays["time"].extent, vec![5]);
        assert_eq!(second.arrays["time"].metadata["shape"], json!([5]));
    }

    #[test]
    fn temporary_files_are_recognised_by_name() {
        assert!(is_temp_key(&key("v/c/1/0.zru-tmp-12-3")));
        assert!(!is_temp_key(&key("v/c/1/0")));
        assert!(!is_temp_key(&key(".zru-tmp-dir/zarr.json")));
    }

    /// The key of chunk (`row`, `col`) of `v`.
    fn chunk_key(format: ZarrFormat, row: u64, col: u64) -> String {
        match format {
            ZarrFormat::V3 => format!("v/c/{row}/{col}"),
            ZarrFormat::V2 => format!("v/{row}.{col}"),
        }
    }

    /// Every file below `dir` and its bytes.
    fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    walk(&path, root, out);
                } else {
                    let name = path.strip_prefix(root).unwrap().display().to_string();
                    out.insert(name, std::fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    /// A store of 4 slots whose `v` has values in slots 0 and 1 only (chunk row 1 was
    /// never written), then a batch killed after flushing its chunks: it overwrote
    /// slots 0 and 1 (chunk row 0) and wrote slots 2 and 3 (chunk row 1, new keys).
    /// Returns the store and its files before the batch.
    fn killed_overwrite(
        dir: &Path,
        format: ZarrFormat,
    ) -> (StoreLocation, BTreeMap<String, Vec<u8>>) {
        let path = dir.join(format!("o{}.zarr", format.number()));
        let location = committed_store(path, format, 4, 2);
        let before = tree(location.local_path().unwrap());

        let store = ZarrStore::open_at(&location).unwrap();
        let mut tx = store.begin();
        tx.write("v", &[0, 0], &[4, 3], values(100, 4, 3)).unwrap();
        tx.flush_chunks().unwrap();
        let intent = tx.intent.clone().unwrap();
        let keys = |row| [chunk_key(format, row, 0), chunk_key(format, row, 1)];
        assert_eq!(intent.saved, keys(0).into_iter().collect());
        assert_eq!(intent.created, keys(1).into_iter().collect());
        assert!(intent.arrays.is_empty());
        (location, before)
    }

    #[test]
    fn recovery_restores_overwritten_keys_and_erases_created_ones() {
        let dir = tempfile::tempdir().unwrap();
        for format in [ZarrFormat::V3, ZarrFormat::V2] {
            let (location, before) = killed_overwrite(dir.path(), format);
            let path = location.local_path().unwrap();
            let image = undo::image_key(&chunk_key(format, 0, 0)).unwrap();
            assert!(path.join(image.as_str()).is_file());
            assert_eq!(read(&location, 4)[..3], [300.0, 301.0, 302.0]);

            let recovered = ZarrStore::recover_at(&location).unwrap().unwrap();
            assert_eq!(
                (recovered.keys_restored, recovered.keys_erased),
                (2, 2),
                "{format:?}: {recovered:?}"
            );
            assert_eq!(tree(path), before, "{format:?}");
            assert!(!path.join(SIDECAR_DIR).exists());
            let read = read(&location, 4);
            assert_eq!(read[..6], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
            assert!(read[6..].iter().all(|v| v.is_nan()), "{read:?}");
            assert!(ZarrStore::recover_at(&location).unwrap().is_none());
        }
    }

    #[test]
    fn a_committed_batch_leaves_no_before_images() {
        let dir = tempfile::tempdir().unwrap();
        let (location, _) = killed_overwrite(dir.path(), ZarrFormat::V3);
        let path = location.local_path().unwrap();
        ZarrStore::recover_at(&location).unwrap();
        let store = ZarrStore::open_at(&location).unwrap();
        let mut tx = store.begin();
        tx.write("v", &[0, 0], &[4, 3], values(100, 4, 3)).unwrap();
        tx.flush_chunks().unwrap();
        tx.write("v", &[0, 0], &[1, 3], values(7, 1, 3)).unwrap();
        tx.commit().unwrap();
        assert!(!path.join(SIDECAR_DIR).exists());
        assert_eq!(read(&location, 4)[..4], [21.0, 22.0, 23.0, 303.0]);
        // Images a killed batch left without naming them are swept before the next one.
        let stray = path.join(undo::UNDO_DIR).join("v/c/0/0");
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, b"stale").unwrap();
        assert!(ZarrStore::recover_at(&location).unwrap().is_none());
        assert!(!path.join(SIDECAR_DIR).exists());
    }

    #[test]
    fn an_interrupted_recovery_is_redone_to_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        for format in [ZarrFormat::V3, ZarrFormat::V2] {
            let (location, before) = killed_overwrite(dir.path(), format);
            let path = location.local_path().unwrap().to_path_buf();
            let killed = tree(&path);
            let intent: Intent = serde_json::from_slice(&killed[INTENT_KEY]).unwrap();
            let saved: Vec<&String> = intent.saved.iter().collect();
            let images: Vec<String> = saved
                .iter()
                .map(|k| undo::image_key(k).unwrap().as_str().to_string())
                .collect();
            assert_eq!(
                killed
                    .keys()
                    .filter(|k| k.starts_with(undo::UNDO_DIR))
                    .count(),
                2
            );
            let put_back = |files: &BTreeMap<String, Vec<u8>>| {
                for (name, bytes) in files {
                    let file = path.join(name);
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(file, bytes).unwrap();
                }
            };
            // Killed while restoring: one key restored, the other not yet.
            std::fs::write(path.join(saved[0]), &killed[&images[0]]).unwrap();
            ZarrStore::recover_at(&location).unwrap().unwrap();
            assert_eq!(tree(&path), before, "{format:?} killed while restoring");

            // Killed while erasing the images: keys restored, created ones erased,
            // one image and the record left.
            let left: BTreeMap<String, Vec<u8>> = killed
                .iter()
                .filter(|(k, _)| **k == images[1] || k.as_str() == INTENT_KEY)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            put_back(&left);
            let recovered = ZarrStore::recover_at(&location).unwrap().unwrap();
            assert_eq!(recovered.keys_restored, 1, "{recovered:?}");
            assert_eq!(
                tree(&path),
                before,
                "{format:?} killed while erasing images"
            );
        }
    }

    #[test]
    fn before_images_are_never_kept_or_restored_through_links_out_of_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("c/0")).unwrap();
        std::fs::write(outside.join("c/0/0"), b"not the store's").unwrap();
        let untouched = || {
            assert_eq!(
                tree(&outside),
                BTreeMap::from([("c/0/0".to_string(), b"not the store's".to_vec())])
            );
        };

        // A sidecar directory planted as a link: no image is linked out of the store.
        let (location, _) = killed_overwrite(dir.path(), ZarrFormat::V3);
        let path = location.local_path().unwrap().to_path_buf();
        ZarrStore::recover_at(&location).unwrap();
        std::os::unix::fs::symlink(&outside, path.join(SIDECAR_DIR)).unwrap();
        let store = ZarrStore::open_at(&location).unwrap();
        let mut tx = store.begin();
        tx.write("v", &[0, 0], &[2, 3], values(100, 2, 3)).unwrap();
        let error = tx.flush_chunks().unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        untouched();
        std::fs::remove_file(path.join(SIDECAR_DIR)).unwrap();

        // An array directory replaced by a link after the kill: nothing is restored
        // through it.
        let (location, _) = killed_overwrite(&dir.path().join("second"), ZarrFormat::V3);
        let path = location.local_path().unwrap().to_path_buf();
        std::fs::rename(path.join("v"), dir.path().join("v-moved")).unwrap();
        std::os::unix::fs::symlink(&outside, path.join("v")).unwrap();
        let error = ZarrStore::recover_at(&location).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        untouched();

        // A record naming a key out of the store is refused before anything is done.
        let mut intent: Intent =
            serde_json::from_slice(&std::fs::read(path.join(INTENT_KEY)).unwrap()).unwrap();
        intent.saved.insert("../outside/c/0/0".into());
        std::fs::write(path.join(INTENT_KEY), serde_json::to_vec(&intent).unwrap()).unwrap();
        let error = ZarrStore::recover_at(&location).unwrap_err().to_string();
        assert!(error.contains("not a key a batch writes"), "{error}");
        untouched();
    }
}
