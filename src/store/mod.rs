//! Zarr stores on the local filesystem or S3: open, create, update in a transaction.
//!
//! - `array_doc`: array metadata documents (V2 and V3) edited as JSON.
//! - `staged`: the staging overlay that makes an update all-or-nothing.
//! - `atomic_fs`: atomic writes of single keys.
//! - [`location`]: where a store lives (directory or `s3://bucket/prefix`) and the
//!   storage backend for it.
//! - `raw_keys`: S3 storage whose object names are the Zarr keys unchanged.
//! - `root_fence`: conditional writes of the root group's metadata on S3 (fencing a
//!   stale writer).
//! - `recovery`: the intent record of a batch in progress, and the recovery pass
//!   that undoes a batch interrupted before its metadata commit.
//! - `undo`: before-images of the keys a batch overwrites, for that recovery pass.
//! - [`icechunk`] (feature `icechunk`): Icechunk repositories, where a batch is one
//!   commit (no intent record, no recovery pass).
//!
//! zru reads and writes metadata itself (so xarray's own metadata survives untouched)
//! and lets zarrs encode and decode chunks.

pub(crate) mod array_doc;
pub(crate) mod atomic_fs;
mod fault_points;
pub mod fenced;
#[cfg(feature = "icechunk")]
pub mod icechunk;
pub mod location;
pub(crate) mod raw_keys;
pub(crate) mod recovery;
mod root_fence;
pub(crate) mod staged;
pub(crate) mod undo;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use thiserror::Error;
use zarrs::array::{Array, ArraySubset};
use zarrs::storage::{Bytes, StorageError, StoreKey, StorePrefix};

pub use array_doc::{ArrayDoc, ArrayDocError, Compressor, NewArray, ZarrFormat};
pub use location::{LocationError, StoreLocation};
pub(crate) use recovery::Intent;
pub use recovery::{Recovered, INTENT_KEY};
pub use staged::{CommitStats, Storage};
pub(crate) use staged::{StagedStore, SIDECAR_DIR};

use crate::values::{ElementType, Values};
use array_doc::into_map;
use root_fence::RootFences;

/// Why a store could not be opened, read, updated or committed. Each message starts
/// with the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Reading or writing a key failed (I/O, S3, a chunk that does not decode).
    #[error("store {store}: {source}")]
    Storage {
        /// The store (its path, or its URL for S3).
        store: PathBuf,
        /// zarrs' storage error.
        #[source]
        source: StorageError,
    },
    /// A metadata key holds something that is not the JSON Zarr expects.
    #[error("store {store}: {key} is not valid JSON: {reason}")]
    Json {
        /// The store (its path, or its URL for S3).
        store: PathBuf,
        /// The key, relative to the store root (`zarr.json`, `sst/.zarray`, ...).
        key: String,
        /// The parse error.
        reason: String,
    },
    /// The location has no root group metadata and zru was asked to open (not
    /// create) it.
    #[error("store {store}: not a Zarr group (no zarr.json or .zgroup at its root)")]
    NotAGroup {
        /// The store (its path, or its URL for S3).
        store: PathBuf,
    },
    /// The location holds arrays but no root group metadata (a store damaged or
    /// half-copied): zru refuses to create a store over it.
    #[error(
        "store {store}: incomplete: it holds arrays ({}) but no root group metadata \
         (zarr.json for Zarr 3, .zgroup for Zarr 2); zru will not create a new store over \
         them. Restore the root metadata (from a backup, or as docs/pipeline.md \
         \"Incomplete stores\" shows), then run zru again",
        arrays.join(", ")
    )]
    Incomplete {
        /// The store (its path, or its URL for S3).
        store: PathBuf,
        /// The arrays found.
        arrays: Vec<String>,
    },
    /// An array's metadata cannot be interpreted (see [`ArrayDocError`]).
    #[error("store {store}: {source}")]
    Doc {
        /// The store (its path, or its URL for S3).
        store: PathBuf,
        /// What is wrong with the array's metadata.
        #[source]
        source: ArrayDocError,
    },
    /// An Icechunk repository could not be opened, read, reset or committed, or this
    /// build has no Icechunk support.
    #[error("store {store} (Icechunk): {reason}")]
    Versioned {
        /// The repository (its path, or its URL for S3).
        store: PathBuf,
        /// What failed and why.
        reason: String,
    },
    /// Another writer committed to the branch since the batch began: nothing of the
    /// batch was committed (zru never rebases); the batch is retried from the queue.
    #[error(
        "store {store} (Icechunk): branch {branch} moved while this batch was written \
         (another writer committed to it: {reason}); nothing of the batch was committed, \
         it is retried from the queue. Only one writer may update a branch: stop the other \
         writer or give it another branch"
    )]
    Conflict {
        /// The repository (its path, or its URL for S3).
        store: PathBuf,
        /// The branch.
        branch: String,
        /// Icechunk's description of the conflict.
        reason: String,
    },
    /// The root group's metadata of an S3 store was changed by another writer since
    /// this batch read it (S3 conditional write refused), or the conditional write
    /// failed otherwise: it was not overwritten.
    #[error("store {store}: {source}")]
    Fenced {
        /// The store (its URL).
        store: PathBuf,
        /// The refused or failed write.
        #[source]
        source: fenced::FencedError,
    },
    /// An array cannot take the update (shape, type or chunking does not fit).
    #[error("store {store}: array {array}: {reason}")]
    Array {
        /// The store (its path, or its URL for S3).
        store: PathBuf,
        /// The array's name.
        array: String,
        /// What does not fit.
        reason: String,
    },
}

/// An opened (or about to be created) Zarr group with its arrays' metadata.
pub struct ZarrStore {
    /// The store's path (for S3 stores, `s3://bucket/prefix` as a path).
    pub location: PathBuf,
    storage: Arc<Storage>,
    /// Zarr V2 or V3: an existing store keeps its format.
    pub format: ZarrFormat,
    /// Group metadata other than attributes and consolidated metadata.
    group_meta: Map<String, Value>,
    /// The root group's attributes (the dataset's global attributes).
    pub root_attrs: Map<String, Value>,
    /// Every array's metadata by name, as read when the store was opened.
    pub arrays: BTreeMap<String, ArrayDoc>,
    /// False for a store that `ZarrStore::open_or_new_at` found missing: the first
    /// commit creates it.
    pub exists: bool,
    /// The directory of a local store (before-images are hard links there).
    root: Option<PathBuf>,
    /// What was read of the root group's metadata: the conditions of its writes.
    fences: RootFences,
    /// For an Icechunk repository: the batch's session, committed by
    /// [`Transaction::commit`].
    #[cfg(feature = "icechunk")]
    versioned: Option<Versioned>,
}

/// The kind of store a dataset writes (its `format`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// A plain Zarr store (V2 or V3): batches are made all-or-nothing by the intent
    /// record and the recovery pass.
    #[default]
    Zarr,
    /// An Icechunk repository (Zarr V3): each batch is one commit on `branch`.
    Icechunk {
        /// The branch batches are committed to.
        branch: String,
        /// Tag every batch's commit (`zru-<time>-<id>`).
        tag_batches: bool,
    },
}

/// The Icechunk side of an opened store.
#[cfg(feature = "icechunk")]
struct Versioned {
    repo: icechunk::Repo,
    session: icechunk::BatchSession,
    tag_batches: bool,
}

/// What a batch's commit on an Icechunk repository records: its message and zru's
/// record of its events (see [`icechunk::ZRU_PROPERTY`]). Ignored by plain stores.
#[derive(Debug, Clone, Default)]
pub struct CommitNote {
    /// The commit message.
    pub message: String,
    /// zru's record (`{"events": [...]}`).
    pub record: Map<String, Value>,
}

impl std::fmt::Debug for ZarrStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrStore")
            .field("location", &self.location)
            .field("format", &self.format)
            .field("arrays", &self.arrays.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn key(s: &str) -> StoreKey {
    // Keys are built from array names zru validated or read from the store.
    StoreKey::new(s).unwrap_or_else(|_| StoreKey::root())
}

impl ZarrStore {
    /// True if the local directory `location` holds a Zarr group.
    pub fn exists(location: &Path) -> bool {
        location.join("zarr.json").is_file() || location.join(".zgroup").is_file()
    }

    /// True if `location` holds a Zarr group (a GET of its root metadata on S3). A
    /// store that has arrays but no root metadata is an error
    /// ([`StoreError::Incomplete`]), never a store that does not exist.
    pub fn exists_at(location: &StoreLocation) -> Result<bool, StoreError> {
        match location {
            StoreLocation::Local(path) if Self::exists(path) => Ok(true),
            StoreLocation::Local(path) if !path.is_dir() => Ok(false),
            _ => {
                let storage = Self::storage(location)?;
                if Self::has_group(location, storage.as_ref())?.is_some() {
                    return Ok(true);
                }
                Self::refuse_incomplete(location, storage.as_ref())?;
                Ok(false)
            }
        }
    }

    /// An error if `storage`, which has no root group metadata, holds arrays (array
    /// metadata one level below its root): the root metadata was lost, and a new store
    /// written there would overwrite the arrays' chunks.
    fn refuse_incomplete(location: &StoreLocation, storage: &Storage) -> Result<(), StoreError> {
        let error = |source| StoreError::Storage {
            store: location.display_path(),
            source,
        };
        let listing = storage.list_dir(&StorePrefix::root()).map_err(error)?;
        let mut arrays = Vec::new();
        for prefix in listing.prefixes() {
            let name = prefix.as_str().trim_end_matches('/');
            if name == SIDECAR_DIR || name.is_empty() {
                continue;
            }
            for meta in ["zarr.json", ".zarray"] {
                let Ok(meta_key) = StoreKey::new(format!("{name}/{meta}")) else {
                    continue;
                };
                if storage.size_key(&meta_key).map_err(error)?.is_some() {
                    arrays.push(name.to_string());
                    break;
                }
            }
        }
        if arrays.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Incomplete {
                store: location.display_path(),
                arrays,
            })
        }
    }

    /// The root metadata key of the group `storage` holds, if any.
    fn has_group(
        location: &StoreLocation,
        storage: &Storage,
    ) -> Result<Option<ZarrFormat>, StoreError> {
        let error = |source| StoreError::Storage {
            store: location.display_path(),
            source,
        };
        if storage
            .size_key(&key("zarr.json"))
            .map_err(error)?
            .is_some()
        {
            return Ok(Some(ZarrFormat::V3));
        }
        if storage.size_key(&key(".zgroup")).map_err(error)?.is_some() {
            return Ok(Some(ZarrFormat::V2));
        }
        Ok(None)
    }

    /// Opens an existing local store, or prepares a new one (nothing is written until
    /// a transaction commits).
    #[cfg(test)]
    pub(crate) fn open_or_new(location: &Path, new_format: ZarrFormat) -> Result<Self, StoreError> {
        Self::open_or_new_at(&StoreLocation::Local(location.to_path_buf()), new_format)
    }

    /// Opens an existing store, local or on S3, or prepares a new one.
    pub fn open_or_new_at(
        location: &StoreLocation,
        new_format: ZarrFormat,
    ) -> Result<Self, StoreError> {
        let storage = match location {
            StoreLocation::Local(path) if Self::exists(path) => return Self::open_at(location),
            StoreLocation::Local(_) => Self::storage(location)?,
            StoreLocation::S3 { .. } => {
                let storage = Self::storage(location)?;
                if Self::has_group(location, storage.as_ref())?.is_some() {
                    return Self::open_with(location, storage);
                }
                storage
            }
        };
        // No root metadata: a new store, unless arrays are there (the root metadata
        // was lost).
        Self::refuse_incomplete(location, storage.as_ref())?;
        let fences = RootFences::new(location);
        fences
            .observe(new_format)
            .map_err(|source| StoreError::Storage {
                store: location.display_path(),
                source,
            })?;
        Ok(Self::unread(location, storage, new_format, false, fences))
    }

    /// A store at `location` whose root keys are not read yet: no group metadata,
    /// attributes or arrays; `exists` says whether its root metadata is there.
    fn unread(
        location: &StoreLocation,
        storage: Arc<Storage>,
        format: ZarrFormat,
        exists: bool,
        fences: RootFences,
    ) -> Self {
        Self {
            location: location.display_path(),
            storage,
            format,
            group_meta: Map::new(),
            root_attrs: Map::new(),
            arrays: BTreeMap::new(),
            exists,
            root: location.local_path().map(Path::to_path_buf),
            fences,
            #[cfg(feature = "icechunk")]
            versioned: None,
        }
    }

    /// Opens (or prepares) the store of a dataset whose backend is `backend`. An
    /// Icechunk repository is created if missing; its batch session starts here.
    pub fn open_or_new_backend(
        location: &StoreLocation,
        backend: &Backend,
        new_format: ZarrFormat,
    ) -> Result<Self, StoreError> {
        match backend {
            Backend::Zarr => Self::open_or_new_at(location, new_format),
            Backend::Icechunk {
                branch,
                tag_batches,
            } => Self::open_icechunk(location, branch, *tag_batches),
        }
    }

    #[cfg(not(feature = "icechunk"))]
    fn open_icechunk(location: &StoreLocation, _: &str, _: bool) -> Result<Self, StoreError> {
        Err(no_icechunk(location))
    }

    #[cfg(feature = "icechunk")]
    fn open_icechunk(
        location: &StoreLocation,
        branch: &str,
        tag_batches: bool,
    ) -> Result<Self, StoreError> {
        let repo = icechunk::Repo::open_or_create(location, branch)?;
        let session = repo.session()?;
        let storage = session.storage()?;
        // zarrs_icechunk reports a missing root node as an error, not as a missing key.
        let has_root = match storage.get(&key("zarr.json")) {
            Ok(root) => root.is_some(),
            Err(StorageError::Other(reason)) if reason.contains("node not found") => false,
            Err(source) => {
                return Err(StoreError::Storage {
                    store: location.display_path(),
                    source,
                })
            }
        };
        // The commit is the repository's fence; its keys are no objects of the bucket.
        let fences = RootFences::unfenced(location);
        let mut store = if has_root {
            Self::open_fenced(location, storage, fences)?
        } else {
            // A new repository has no root node, which listing and reading keys under it
            // need: an empty root group, in the session only (the commit rewrites it).
            let root = json!({"zarr_format": 3, "node_type": "group"}).to_string();
            storage
                .set(&key("zarr.json"), Bytes::from(root))
                .map_err(|source| StoreError::Storage {
                    store: location.display_path(),
                    source,
                })?;
            Self::unread(location, storage, ZarrFormat::V3, false, fences)
        };
        // Before-images are never kept (no recovery pass): `root` only names them.
        store.root = None;
        store.versioned = Some(Versioned {
            repo,
            session,
            tag_batches,
        });
        Ok(store)
    }

    /// True if a dataset's store holds a Zarr group: for an Icechunk repository, if
    /// the branch's tip has root group metadata.
    pub fn exists_backend(location: &StoreLocation, backend: &Backend) -> Result<bool, StoreError> {
        match backend {
            Backend::Zarr => Self::exists_at(location),
            Backend::Icechunk { branch, .. } => Self::icechunk_exists(location, branch),
        }
    }

    #[cfg(not(feature = "icechunk"))]
    fn icechunk_exists(location: &StoreLocation, _: &str) -> Result<bool, StoreError> {
        Err(no_icechunk(location))
    }

    #[cfg(feature = "icechunk")]
    fn icechunk_exists(location: &StoreLocation, branch: &str) -> Result<bool, StoreError> {
        if !icechunk::Repo::exists(location)? {
            return Ok(false);
        }
        let repo = icechunk::Repo::open(location, branch)?;
        let storage = repo.read_only(&repo.tip()?)?;
        let root = storage
            .get(&key("zarr.json"))
            .map_err(|source| StoreError::Storage {
                store: location.display_path(),
                source,
            })?;
        Ok(root.is_some())
    }

    /// Opens a snapshot (a snapshot id or a tag) of an Icechunk repository, read-only.
    #[cfg(feature = "icechunk")]
    pub fn open_snapshot(
        location: &StoreLocation,
        repo: &icechunk::Repo,
        version: &str,
    ) -> Result<Self, StoreError> {
        let storage = repo.read_only(version)?;
        let mut store = Self::open_fenced(location, storage, RootFences::unfenced(location))?;
        store.root = None;
        Ok(store)
    }

    /// Whether this store is an Icechunk repository (no intent record, no sidecars).
    fn is_versioned(&self) -> bool {
        #[cfg(feature = "icechunk")]
        return self.versioned.is_some();
        #[cfg(not(feature = "icechunk"))]
        false
    }

    fn storage(location: &StoreLocation) -> Result<Arc<Storage>, StoreError> {
        location.storage().map_err(|source| StoreError::Storage {
            store: location.display_path(),
            source,
        })
    }

    /// Opens an existing local V2 or V3 store and reads every array's metadata.
    pub fn open(location: &Path) -> Result<Self, StoreError> {
        Self::open_at(&StoreLocation::Local(location.to_path_buf()))
    }

    /// Opens an existing V2 or V3 store, local or on S3.
    pub fn open_at(location: &StoreLocation) -> Result<Self, StoreError> {
        if let StoreLocation::Local(path) = location {
            if !Self::exists(path) {
                return Err(StoreError::NotAGroup {
                    store: path.clone(),
                });
            }
        }
        let storage = Self::storage(location)?;
        Self::open_with(location, storage)
    }

    fn open_with(location: &StoreLocation, storage: Arc<Storage>) -> Result<Self, StoreError> {
        Self::open_fenced(location, storage, RootFences::new(location))
    }

    /// Opens the store `storage` holds, reading its root keys through `fences`.
    fn open_fenced(
        location: &StoreLocation,
        storage: Arc<Storage>,
        fences: RootFences,
    ) -> Result<Self, StoreError> {
        let mut store = Self::unread(location, storage, ZarrFormat::V3, true, fences);
        if let Some(mut root) = store.read_root_json("zarr.json")? {
            root.remove("consolidated_metadata");
            store.root_attrs = root.remove("attributes").map(into_map).unwrap_or_default();
            store.group_meta = root;
        } else if let Some(group) = store.read_root_json(".zgroup")? {
            store.format = ZarrFormat::V2;
            store.group_meta = group;
            store.root_attrs = store.read_root_json(".zattrs")?.unwrap_or_default();
        } else {
            return Err(StoreError::NotAGroup {
                store: store.location,
            });
        }
        store
            .fences
            .observe(store.format)
            .map_err(|e| store.storage_error(e))?;
        store.arrays = store.load_arrays()?;
        Ok(store)
    }

    fn storage_error(&self, source: StorageError) -> StoreError {
        StoreError::Storage {
            store: self.location.clone(),
            source,
        }
    }

    fn read_json(&self, name: &str) -> Result<Option<Map<String, Value>>, StoreError> {
        let bytes = self
            .storage
            .get(&key(name))
            .map_err(|e| self.storage_error(e))?;
        self.parse_json(name, bytes)
    }

    /// Reads a root key, taking the fence of its next write on S3 (see `root_fence`).
    fn read_root_json(&self, name: &str) -> Result<Option<Map<String, Value>>, StoreError> {
        let bytes = self
            .fences
            .read(self.storage.as_ref(), name)
            .map_err(|e| self.storage_error(e))?;
        self.parse_json(name, bytes)
    }

    fn parse_json(
        &self,
        name: &str,
        bytes: Option<Bytes>,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        bytes
            .map(|b| {
                serde_json::from_slice::<Value>(&b)
                    .map(into_map)
                    .map_err(|e| StoreError::Json {
                        store: self.location.clone(),
                        key: name.to_string(),
                        reason: e.to_string(),
                    })
            })
            .transpose()
    }

    fn load_arrays(&self) -> Result<BTreeMap<String, ArrayDoc>, StoreError> {
        let listing = self
            .storage
            .list_dir(&StorePrefix::root())
            .map_err(|e| self.storage_error(e))?;
        let mut arrays = BTreeMap::new();
        for prefix in listing.prefixes() {
            let name = prefix.as_str().trim_end_matches('/').to_string();
            if let Some(doc) = self.load_array(&name)? {
                arrays.insert(name, doc);
            }
        }
        Ok(arrays)
    }

    /// The metadata of array `name` as stored, if it has any.
    fn load_array(&self, name: &str) -> Result<Option<ArrayDoc>, StoreError> {
        Ok(match self.format {
            ZarrFormat::V3 => match self.read_json(&format!("{name}/zarr.json"))? {
                Some(meta) if meta.get("node_type") == Some(&json!("array")) => Some(ArrayDoc {
                    name: name.to_string(),
                    format: ZarrFormat::V3,
                    meta,
                    v2_attrs: Map::new(),
                }),
                _ => None,
            },
            ZarrFormat::V2 => match self.read_json(&format!("{name}/.zarray"))? {
                Some(meta) => Some(ArrayDoc {
                    name: name.to_string(),
                    format: ZarrFormat::V2,
                    meta,
                    v2_attrs: self
                        .read_json(&format!("{name}/.zattrs"))?
                        .unwrap_or_default(),
                }),
                None => None,
            },
        })
    }

    /// The metadata of the array `name`, as read when the store was opened.
    pub fn array(&self, name: &str) -> Option<&ArrayDoc> {
        self.arrays.get(name)
    }

    /// Why an array of this store cannot be named `name`, if it cannot: on S3 a name
    /// holding an ASCII control character (or `.`, `..`, `/`) cannot be part of an
    /// object name (see `raw_keys::unstorable`); local stores hold any name. The
    /// families refuse such a file variable before anything is staged or written.
    pub fn unstorable_array_name(&self, name: &str) -> Option<String> {
        if self.root.is_some() {
            return None;
        }
        raw_keys::unstorable(name).map(|reason| {
            format!(
                "store {}: no array can be named {name:?} there: {reason}",
                self.location.display()
            )
        })
    }

    /// Where this store keeps before-images.
    fn images(&self) -> undo::Images<'_> {
        undo::Images {
            storage: self.storage.as_ref(),
            root: self.root.as_deref(),
        }
    }

    /// Starts an all-or-nothing update.
    pub fn begin(&self) -> Transaction<'_> {
        Transaction {
            store: self,
            staged: Arc::new(StagedStore::new(self.storage.clone())),
            arrays: self.arrays.clone(),
            root_attrs: self.root_attrs.clone(),
            opened: Mutex::new(HashMap::new()),
            stats: CommitStats::default(),
            written_last: Vec::new(),
            intent: None,
            note: None,
            session_metadata: None,
            passed_through: Default::default(),
        }
    }

    /// Reads a region of an array as committed.
    pub fn read(&self, name: &str, start: &[u64], shape: &[u64]) -> Result<Values, StoreError> {
        let doc = self.array(name).ok_or_else(|| StoreError::Array {
            store: self.location.clone(),
            array: name.into(),
            reason: "no such array".into(),
        })?;
        let array = open_array(&self.location, self.storage.clone(), doc)?;
        read_region(&self.location, &array, doc, start, shape)
    }

    /// The root group's documents for these arrays and root attributes, with
    /// consolidated metadata (V2: `.zgroup` and `.zattrs` only where they change).
    fn root_documents(
        &self,
        arrays: &BTreeMap<String, ArrayDoc>,
        root_attrs: &Map<String, Value>,
    ) -> Vec<(String, Value)> {
        let mut documents = Vec::new();
        match self.format {
            ZarrFormat::V3 => {
                let consolidated: Map<String, Value> = arrays
                    .values()
                    .map(|doc| (doc.name.clone(), Value::Object(doc.meta.clone())))
                    .collect();
                let mut root = Map::new();
                root.insert("attributes".into(), Value::Object(root_attrs.clone()));
                root.insert("zarr_format".into(), json!(3));
                root.insert(
                    "consolidated_metadata".into(),
                    json!({"kind": "inline", "must_understand": false, "metadata": consolidated}),
                );
                root.insert("node_type".into(), json!("group"));
                for (k, v) in &self.group_meta {
                    root.entry(k.clone()).or_insert_with(|| v.clone());
                }
                documents.push(("zarr.json".into(), Value::Object(root)));
            }
            ZarrFormat::V2 => {
                let mut consolidated = Map::new();
                consolidated.insert(".zgroup".into(), json!({"zarr_format": 2}));
                consolidated.insert(".zattrs".into(), Value::Object(root_attrs.clone()));
                for doc in arrays.values() {
                    for (k, v) in doc.documents() {
                        consolidated.insert(k, v);
                    }
                }
                if !self.exists {
                    documents.push((".zgroup".into(), json!({"zarr_format": 2})));
                }
                if !self.exists || *root_attrs != self.root_attrs {
                    documents.push((".zattrs".into(), Value::Object(root_attrs.clone())));
                }
                documents.push((
                    ".zmetadata".into(),
                    json!({"metadata": consolidated, "zarr_consolidated_format": 1}),
                ));
            }
        }
        documents
    }
}

/// Opens a zarrs array over `storage` from a metadata document.
fn open_array<S: ?Sized + zarrs::storage::ReadableStorageTraits + 'static>(
    location: &Path,
    storage: Arc<S>,
    doc: &ArrayDoc,
) -> Result<Array<S>, StoreError> {
    let array_error = |reason: String| StoreError::Array {
        store: location.to_path_buf(),
        array: doc.name.clone(),
        reason,
    };
    let mut meta = doc.meta.clone();
    if doc.format == ZarrFormat::V2 {
        meta.insert("attributes".into(), Value::Object(doc.v2_attrs.clone()));
    }
    let metadata: zarrs::array::ArrayMetadata = serde_json::from_value(Value::Object(meta))
        .map_err(|e| array_error(format!("metadata zarrs cannot read: {e}")))?;
    Array::new_with_metadata(storage, &format!("/{}", doc.name), metadata)
        .map_err(|e| array_error(e.to_string()))
}

fn subset(start: &[u64], shape: &[u64]) -> ArraySubset {
    let ranges: Vec<std::ops::Range<u64>> =
        start.iter().zip(shape).map(|(&s, &n)| s..s + n).collect();
    ArraySubset::new_with_ranges(&ranges)
}

fn read_region<S: ?Sized + zarrs::storage::ReadableStorageTraits + 'static>(
    location: &Path,
    array: &Array<S>,
    doc: &ArrayDoc,
    start: &[u64],
    shape: &[u64],
) -> Result<Values, StoreError> {
    let region = subset(start, shape);
    let element = doc.element_type().map_err(|source| StoreError::Doc {
        store: location.to_path_buf(),
        source,
    })?;
    let error = |e: zarrs::array::ArrayError| StoreError::Array {
        store: location.to_path_buf(),
        array: doc.name.clone(),
        reason: format!("cannot read region {region}: {e}"),
    };
    Ok(match element {
        ElementType::I8 => Values::I8(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::U8 => Values::U8(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::I16 => Values::I16(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::U16 => Values::U16(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::I32 => Values::I32(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::U32 => Values::U32(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::I64 => Values::I64(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::U64 => Values::U64(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::F32 => Values::F32(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::F64 => Values::F64(array.retrieve_array_subset(&region).map_err(error)?),
        ElementType::Text => Values::Text(array.retrieve_array_subset(&region).map_err(error)?),
    })
}

/// Writes `values` (already in the array's type) into `region` of `array`.
fn write_region<S: ?Sized + zarrs::storage::ReadableWritableStorageTraits + 'static>(
    array: &Array<S>,
    region: &ArraySubset,
    values: Values,
) -> Result<(), zarrs::array::ArrayError> {
    match values {
        Values::I8(v) => array.store_array_subset(region, v),
        Values::U8(v) => array.store_array_subset(region, v),
        Values::I16(v) => array.store_array_subset(region, v),
        Values::U16(v) => array.store_array_subset(region, v),
        Values::I32(v) => array.store_array_subset(region, v),
        Values::U32(v) => array.store_array_subset(region, v),
        Values::I64(v) => array.store_array_subset(region, v),
        Values::U64(v) => array.store_array_subset(region, v),
        Values::F32(v) => array.store_array_subset(region, v),
        Values::F64(v) => array.store_array_subset(region, v),
        Values::Text(v) => array.store_array_subset(region, v),
    }
}

/// A set of changes to one store.
///
/// Writes are staged in memory. `Transaction::savepoint` and
/// `Transaction::rollback` undo one file's staged writes; `Transaction::flush_chunks`
/// writes the staged chunks of the files applied so far (keeping metadata staged), and
/// `Transaction::commit` writes what is left, array metadata and consolidated
/// metadata last — once per batch, however many files it held.
pub struct Transaction<'s> {
    store: &'s ZarrStore,
    staged: Arc<StagedStore>,
    /// Array metadata as it will be after the commit.
    arrays: BTreeMap<String, ArrayDoc>,
    /// The root group's attributes as they will be after the commit.
    pub root_attrs: Map<String, Value>,
    opened: Mutex<HashMap<String, Arc<Array<StagedStore>>>>,
    stats: CommitStats,
    /// Arrays whose chunks are written after all others (see [`Self::write_last`]).
    written_last: Vec<String>,
    /// The intent record as written to the store, once the transaction has written.
    intent: Option<Intent>,
    /// What an Icechunk commit records (see [`Self::set_note`]).
    note: Option<CommitNote>,
    /// The metadata documents last written to an Icechunk session (see
    /// [`Self::write_session_metadata`]).
    session_metadata: Option<Vec<(String, Value)>>,
    /// Chunks staged by [`Self::put_encoded_chunk`] since the last flush.
    passed_through: std::sync::atomic::AtomicU64,
}

/// The state of a transaction before one file was applied.
pub struct Savepoint {
    pending: HashMap<StoreKey, Option<Bytes>>,
    arrays: BTreeMap<String, ArrayDoc>,
    root_attrs: Map<String, Value>,
}

impl Transaction<'_> {
    /// The store's path (see [`ZarrStore::location`]).
    pub fn location(&self) -> &Path {
        &self.store.location
    }

    /// The store's Zarr format.
    pub fn format(&self) -> ZarrFormat {
        self.store.format
    }

    fn error(&self, array: &str, reason: impl Into<String>) -> StoreError {
        StoreError::Array {
            store: self.store.location.clone(),
            array: array.to_string(),
            reason: reason.into(),
        }
    }

    fn storage_error(&self, source: StorageError) -> StoreError {
        StoreError::Storage {
            store: self.store.location.clone(),
            source,
        }
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Array<StagedStore>>>> {
        // A poisoned cache only means a panic elsewhere; its contents are still valid.
        self.opened.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces an array's metadata.
    pub fn put_array(&mut self, doc: ArrayDoc) {
        self.opened().remove(&doc.name);
        self.arrays.insert(doc.name.clone(), doc);
    }

    /// The metadata of the array `name` as it stands in this transaction.
    pub(crate) fn array_doc(&self, name: &str) -> Option<&ArrayDoc> {
        self.arrays.get(name)
    }

    /// See [`ZarrStore::unstorable_array_name`].
    pub fn unstorable_array_name(&self, name: &str) -> Option<String> {
        self.store.unstorable_array_name(name)
    }

    /// Every array's metadata as it stands in this transaction.
    pub fn arrays(&self) -> &BTreeMap<String, ArrayDoc> {
        &self.arrays
    }

    /// Marks the state to return to if the next file fails.
    pub(crate) fn savepoint(&self) -> Result<Savepoint, StoreError> {
        Ok(Savepoint {
            pending: self.staged.snapshot().map_err(|e| self.storage_error(e))?,
            arrays: self.arrays.clone(),
            root_attrs: self.root_attrs.clone(),
        })
    }

    /// Forgets everything staged since `savepoint`.
    pub(crate) fn rollback(&mut self, savepoint: Savepoint) -> Result<(), StoreError> {
        self.staged
            .restore(savepoint.pending)
            .map_err(|e| self.storage_error(e))?;
        self.arrays = savepoint.arrays;
        self.root_attrs = savepoint.root_attrs;
        self.opened().clear();
        self.passed_through = Default::default();
        Ok(())
    }

    /// Chunks of these arrays are written after the chunks of all others, in every
    /// flush: for arrays that describe the others (provenance), so that a process killed
    /// mid-flush never leaves them ahead of the data they describe.
    pub(crate) fn write_last(&mut self, arrays: Vec<String>) {
        self.written_last = arrays;
    }

    fn sidecar_key(&self, path: &str) -> Result<StoreKey, StoreError> {
        StoreKey::new(format!("{SIDECAR_DIR}/{path}")).map_err(|e| StoreError::Storage {
            store: self.store.location.clone(),
            source: StorageError::Other(format!("bad sidecar path {path}: {e}")),
        })
    }

    /// Reads a sidecar key (`path` under the store's `.zru/` directory), seeing this
    /// transaction's staged writes.
    pub(crate) fn read_sidecar(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        let key = self.sidecar_key(path)?;
        zarrs::storage::ReadableStorageTraits::get(self.staged.as_ref(), &key)
            .map_err(|e| self.storage_error(e))
    }

    /// Stages a sidecar key (`path` under the store's `.zru/` directory). It is kept
    /// staged by [`Self::flush_chunks`], dropped by [`Self::rollback`] and written by
    /// [`Self::commit`] with array metadata, after every chunk and before the root
    /// group's metadata.
    pub(crate) fn write_sidecar(&self, path: &str, value: Vec<u8>) -> Result<(), StoreError> {
        if self.store.is_versioned() {
            return Err(StoreError::Versioned {
                store: self.store.location.clone(),
                reason: format!(
                    "an Icechunk repository holds Zarr keys only, not zru's sidecar key \
                     {SIDECAR_DIR}/{path} (the identity index of profiles and series \
                     datasets): use \"format\": \"zarr\" for this dataset"
                ),
            });
        }
        let key = self.sidecar_key(path)?;
        zarrs::storage::WritableStorageTraits::set(self.staged.as_ref(), &key, Bytes::from(value))
            .map_err(|e| self.storage_error(e))
    }

    /// Records (or extends) the store's intent record before the transaction writes
    /// what it does not cover yet: the arrays it creates or grows, up to their shape
    /// now, and `keys`, about to be written or erased: the before-image of each that
    /// exists is kept first, the others are recorded as created (see `recovery`).
    ///
    /// On S3 it first checks that no other writer committed the store since it was
    /// opened ([`StoreError::Fenced`]; see `root_fence`), so a stale writer writes
    /// nothing.
    fn record_intent(&mut self, keys: Vec<StoreKey>) -> Result<(), StoreError> {
        if self.store.is_versioned() {
            // The batch's session is its own transaction (and its commit its fence):
            // nothing to undo.
            return Ok(());
        }
        self.store.fences.check(self.store.format)?;
        let mut intent = Intent::new(self.store, &self.arrays, self.intent.as_ref());
        let new: Vec<StoreKey> = keys
            .into_iter()
            .filter(|k| !intent.saved.contains(k.as_str()) && !intent.created.contains(k.as_str()))
            .filter(|k| !intent.covers(k))
            .collect();
        let kept = self
            .store
            .images()
            .keep(&new)
            .map_err(|e| self.storage_error(e))?;
        intent.saved.extend(kept.saved);
        intent.created.extend(kept.created);
        if self.intent.as_ref() != Some(&intent) {
            self.store.write_intent(&intent)?;
            self.intent = Some(intent);
        }
        Ok(())
    }

    /// An Icechunk session takes a chunk only for an array it holds, within its shape:
    /// the metadata as it stands is written to the session before chunks (invisible to
    /// readers until the commit, so the order does not matter to them).
    fn write_session_metadata(&mut self) -> Result<(), StoreError> {
        if !self.store.is_versioned() {
            return Ok(());
        }
        let documents = self.metadata_documents();
        if self.session_metadata.as_ref() == Some(&documents) {
            return Ok(());
        }
        for (key_name, value) in &documents {
            let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Json {
                store: self.store.location.clone(),
                key: key_name.clone(),
                reason: e.to_string(),
            })?;
            self.store
                .storage
                .set(&key(key_name), Bytes::from(bytes))
                .map_err(|e| self.storage_error(e))?;
        }
        self.session_metadata = Some(documents);
        Ok(())
    }

    /// Writes the chunks staged so far; metadata stays staged until [`Self::commit`].
    pub fn flush_chunks(&mut self) -> Result<CommitStats, StoreError> {
        let chunks = self
            .staged
            .chunk_keys()
            .map_err(|e| self.storage_error(e))?;
        if !chunks.is_empty() {
            self.record_intent(chunks)?;
            self.write_session_metadata()?;
        }
        let mut stats = self
            .staged
            .commit_chunks(&self.written_last)
            .map_err(|e| self.storage_error(e))?;
        stats.chunks_passed_through = std::mem::take(self.passed_through.get_mut());
        self.stats += stats;
        Ok(stats)
    }

    fn array(&self, name: &str) -> Result<Arc<Array<StagedStore>>, StoreError> {
        if let Some(array) = self.opened().get(name) {
            return Ok(array.clone());
        }
        let doc = self
            .arrays
            .get(name)
            .ok_or_else(|| self.error(name, "no such array"))?;
        let array = Arc::new(open_array(&self.store.location, self.staged.clone(), doc)?);
        self.opened().insert(name.to_string(), array.clone());
        Ok(array)
    }

    /// Writes `values` (already in the array's type) into a region.
    pub fn write(
        &self,
        name: &str,
        start: &[u64],
        shape: &[u64],
        values: Values,
    ) -> Result<(), StoreError> {
        let array = self.array(name)?;
        let region = subset(start, shape);
        write_region(&array, &region, values)
            .map_err(|e| self.error(name, format!("cannot write region {region}: {e}")))
    }

    /// Stages a chunk already encoded with the array's codecs (compressed bytes copied
    /// from a source file: passthrough), at chunk grid index `chunk`.
    pub fn put_encoded_chunk(
        &self,
        name: &str,
        chunk: &[u64],
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let array = self.array(name)?;
        let grid = array.chunk_grid_shape().to_vec();
        if chunk.len() != grid.len() || chunk.iter().zip(&grid).any(|(i, n)| i >= n) {
            return Err(self.error(
                name,
                format!("chunk {chunk:?} is outside the chunk grid {grid:?}"),
            ));
        }
        zarrs::storage::WritableStorageTraits::set(
            self.staged.as_ref(),
            &array.chunk_key(chunk),
            Bytes::from(bytes),
        )
        .map_err(|e| self.storage_error(e))?;
        self.passed_through
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Reads a region, seeing this transaction's staged writes.
    pub fn read(&self, name: &str, start: &[u64], shape: &[u64]) -> Result<Values, StoreError> {
        let array = self.array(name)?;
        let doc = self
            .arrays
            .get(name)
            .ok_or_else(|| self.error(name, "no such array"))?;
        read_region(&self.store.location, &array, doc, start, shape)
    }

    /// Sets a region to the array's blank value. Chunks wholly inside the region are
    /// erased when a missing chunk already reads as blank; others are written.
    pub fn blank(&self, name: &str, start: &[u64], shape: &[u64]) -> Result<(), StoreError> {
        let array = self.array(name)?;
        let doc = self
            .arrays
            .get(name)
            .ok_or_else(|| self.error(name, "no such array"))?;
        let region = subset(start, shape);
        let element = doc.element_type().map_err(|source| StoreError::Doc {
            store: self.store.location.clone(),
            source,
        })?;
        if !doc.missing_chunk_is_blank() {
            let len = shape.iter().product::<u64>() as usize;
            return self.write(name, start, shape, blank_values(doc, element, len));
        }
        let chunks = array
            .chunks_in_array_subset(&region)
            .map_err(|e| self.error(name, e.to_string()))?
            .ok_or_else(|| {
                self.error(name, format!("region {region} is outside the chunk grid"))
            })?;
        for chunk in chunks.indices().iter() {
            let chunk_region = array
                .chunk_subset_bounded(&chunk)
                .map_err(|e| self.error(name, e.to_string()))?;
            let overlap = chunk_region
                .overlap(&region)
                .map_err(|e| self.error(name, e.to_string()))?;
            if overlap == chunk_region {
                array
                    .erase_chunk(&chunk)
                    .map_err(|e| self.error(name, e.to_string()))?;
            } else {
                let fill = blank_values(doc, element, overlap.num_elements_usize());
                let (o_start, o_shape) = (overlap.start().to_vec(), overlap.shape().to_vec());
                self.write(name, &o_start, &o_shape, fill)?;
            }
        }
        Ok(())
    }

    /// Sets what the commit of an Icechunk repository records (its message and events).
    pub fn set_note(&mut self, note: CommitNote) {
        self.note = Some(note);
    }

    /// Writes everything still staged. Metadata documents (and the consolidated
    /// metadata) are written only if some array's metadata or the root attributes
    /// changed, so a batch of overwrites, or of rejected files, leaves them untouched.
    pub fn commit(mut self) -> Result<CommitStats, StoreError> {
        let location = self.store.location.clone();
        let metadata_changed =
            self.arrays != self.store.arrays || self.root_attrs != self.store.root_attrs;
        if metadata_changed {
            for (key_name, value) in self.metadata_documents() {
                let bytes = serde_json::to_vec_pretty(&value).map_err(|e| StoreError::Json {
                    store: location.clone(),
                    key: key_name.clone(),
                    reason: e.to_string(),
                })?;
                zarrs::storage::WritableStorageTraits::set(
                    self.staged.as_ref(),
                    &key(&key_name),
                    Bytes::from(bytes),
                )
                .map_err(|e| self.storage_error(e))?;
            }
        }
        let pending = self
            .staged
            .pending_keys()
            .map_err(|e| self.storage_error(e))?;
        if metadata_changed || !pending.is_empty() {
            self.record_intent(pending)?;
            self.write_session_metadata()?;
        }
        let (mut stats, root) = self
            .staged
            .commit_below_root(&self.written_last)
            .map_err(|e| self.storage_error(e))?;
        // The root group's metadata last, conditional on what was read on S3: a stale
        // writer stops here, its intent record left for the next batch to undo.
        for (root_key, value) in root {
            match value {
                Some(bytes) => {
                    stats.bytes_written += bytes.len() as u64;
                    self.store
                        .fences
                        .write(self.store.storage.as_ref(), &root_key, bytes)?;
                }
                None => self
                    .store
                    .storage
                    .erase(&root_key)
                    .map_err(|e| self.storage_error(e))?,
            }
            stats.metadata_written += 1;
        }
        self.stats += stats;
        #[cfg(feature = "icechunk")]
        if let Some(versioned) = &self.store.versioned {
            let note = self.note.take().unwrap_or_default();
            let id = versioned.session.commit(&note.message, note.record)?;
            if versioned.tag_batches {
                let time = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
                versioned.repo.tag(&format!("zru-{time}-{id}"), &id)?;
            }
        }
        if let Some(intent) = &self.intent {
            self.store.erase_intent()?;
            // Before-images are garbage once the record is gone; on S3 only a batch that
            // kept some lists them.
            let images = self.store.images();
            if !intent.saved.is_empty() || images.any_local() {
                images.drop_all().map_err(|e| self.storage_error(e))?;
            }
        }
        Ok(self.stats)
    }

    /// Every array document that changed plus the root group's, with consolidated
    /// metadata.
    fn metadata_documents(&self) -> Vec<(String, Value)> {
        let mut documents: Vec<(String, Value)> = Vec::new();
        for doc in self.arrays.values() {
            if self.store.arrays.get(&doc.name) != Some(doc) {
                documents.extend(doc.documents());
            }
        }
        documents.extend(self.store.root_documents(&self.arrays, &self.root_attrs));
        documents
    }
}

/// The error of a build without Icechunk support.
#[cfg(not(feature = "icechunk"))]
pub(crate) fn no_icechunk(location: &StoreLocation) -> StoreError {
    StoreError::Versioned {
        store: location.display_path(),
        reason: "this zru was built without Icechunk support (cargo feature `icechunk`)".into(),
    }
}

/// `len` blank values of an array: its CF fill, or netCDF's default fill (exact, also
/// for the 64-bit integers) where it has none.
fn blank_values(doc: &ArrayDoc, element: ElementType, len: usize) -> Values {
    match doc.cf_encoding().fill_value {
        Some(fill) => Values::filled(element, len, fill),
        None => Values::filled_with_netcdf_default(element, len),
    }
}
