//! Icechunk repositories as stores (`"format": "icechunk"`, see `docs/icechunk.md`).
//!
//! A repository is opened (or created) at the dataset's `store`, a local directory or
//! `s3://bucket/prefix`. A batch writes through a writable session on the dataset's
//! branch (zarrs_icechunk's `AsyncIcechunkStore`, made sync by the same runtime as S3
//! stores): nothing a reader can see changes until the session commits, and a process
//! killed before the commit leaves the branch where it was (the uncommitted session is
//! simply dropped). So no intent record and no recovery pass exist on this backend.
//!
//! Each commit carries the batch's events in its metadata (property [`ZRU_PROPERTY`]);
//! the ledger is rebuilt from them whenever its cached copy beside the repository does
//! not name the branch's tip (see `pipeline::ledger`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use icechunk::repository::VersionInfo;
use icechunk::session::{Session, SessionErrorKind};
use icechunk::{Repository, Storage as IcechunkStorage};
use serde_json::{Map, Value};
use tokio::sync::RwLock;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix, WritableStorageTraits,
};
use zarrs_icechunk::AsyncIcechunkStore;
use zarrs_storage::storage_adapter::async_to_sync::AsyncToSyncStorageAdapter;

use super::fault_points::with_fault_points;
use super::location::{block_on, runtime, s3_endpoint_from_env, BlockOn};
use super::{Storage, StoreError, StoreLocation};

/// The snapshot property that holds zru's record of a commit: `{"events": [...]}`,
/// one object per applied event (`key`, `kind`, `action`, `region`, and the event's
/// `order`, `etag`, `version_id` when it came from the queue).
pub const ZRU_PROPERTY: &str = "zru";

/// An Icechunk repository and the branch zru writes.
pub struct Repo {
    location: StoreLocation,
    repo: Repository,
    /// The branch batches are committed to.
    pub branch: String,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("location", &self.location)
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

/// One commit of a branch, as `zru log` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Commit {
    /// The snapshot id.
    pub id: String,
    /// The parent snapshot's id (`None` for the repository's first snapshot).
    pub parent: Option<String>,
    /// When it was committed (UTC).
    pub time: DateTime<Utc>,
    /// The commit message.
    pub message: String,
    /// zru's events of the commit (empty for commits zru did not make).
    pub events: Vec<Value>,
}

fn versioned_error(
    location: &StoreLocation,
    what: &str,
    error: impl std::fmt::Display,
) -> StoreError {
    StoreError::Versioned {
        store: location.display_path(),
        reason: format!("{what}: {error}"),
    }
}

/// Icechunk's storage for a location.
fn icechunk_storage(
    location: &StoreLocation,
) -> Result<Arc<dyn IcechunkStorage + Send + Sync>, StoreError> {
    let error = |e: icechunk::storage::StorageError| {
        versioned_error(location, "cannot reach the repository's storage", e)
    };
    match location {
        StoreLocation::Local(path) => {
            std::fs::create_dir_all(path)
                .map_err(|e| versioned_error(location, "cannot create the directory", e))?;
            block_on(icechunk::storage::new_local_filesystem_storage(path))
                .map_err(|e| versioned_error(location, "runtime", e))?
                .map_err(error)
        }
        StoreLocation::S3 { bucket, prefix } => {
            let endpoint = s3_endpoint_from_env();
            let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .filter_map(|name| std::env::var(name).ok())
                .find(|v| !v.is_empty())
                .unwrap_or_else(|| "us-east-1".into());
            let mut options = icechunk::storage::S3Options::default()
                .with_region(region)
                .with_allow_http(
                    endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://")),
                );
            if let Some(endpoint) = endpoint {
                options = options
                    .with_endpoint_url(endpoint)
                    .with_force_path_style(true);
            }
            block_on(icechunk::storage::new_s3_object_store_storage(
                options,
                bucket.clone(),
                Some(prefix.clone()),
                Some(icechunk::storage::S3Credentials::FromEnv),
                Vec::new(),
                Vec::new(),
            ))
            .map_err(|e| versioned_error(location, "runtime", e))?
            .map_err(error)
        }
    }
}

impl Repo {
    /// True if `location` holds an Icechunk repository.
    pub fn exists(location: &StoreLocation) -> Result<bool, StoreError> {
        if let StoreLocation::Local(path) = location {
            if !path.is_dir() {
                return Ok(false);
            }
        }
        let storage = icechunk_storage(location)?;
        block_on(Repository::exists(storage, None))
            .map_err(|e| versioned_error(location, "runtime", e))?
            .map_err(|e| versioned_error(location, "cannot read the repository", e))
    }

    /// Opens the repository at `location`; an error if there is none.
    pub fn open(location: &StoreLocation, branch: &str) -> Result<Self, StoreError> {
        if !Self::exists(location)? {
            return Err(StoreError::Versioned {
                store: location.display_path(),
                reason: "not an Icechunk repository (no repository metadata there)".into(),
            });
        }
        let storage = icechunk_storage(location)?;
        let repo = block_on(Repository::open(storage).execute())
            .map_err(|e| versioned_error(location, "runtime", e))?
            .map_err(|e| versioned_error(location, "cannot open the repository", e))?;
        Ok(Self {
            location: location.clone(),
            repo,
            branch: branch.to_string(),
        })
    }

    /// Opens the repository at `location`, creating it (an empty one) if there is
    /// none, and its branch `branch` (from `main`'s tip) if it has none.
    pub fn open_or_create(location: &StoreLocation, branch: &str) -> Result<Self, StoreError> {
        let repo = if Self::exists(location)? {
            Self::open(location, branch)?
        } else {
            let storage = icechunk_storage(location)?;
            let repo = block_on(Repository::create(storage).execute())
                .map_err(|e| versioned_error(location, "runtime", e))?
                .map_err(|e| versioned_error(location, "cannot create the repository", e))?;
            Self {
                location: location.clone(),
                repo,
                branch: branch.to_string(),
            }
        };
        let branches = repo.run("cannot list branches", repo.repo.list_branches())?;
        if !branches.contains(branch) {
            let main = repo.run("cannot find branch main", repo.repo.lookup_branch("main"))?;
            repo.run(
                "cannot create the branch",
                repo.repo.create_branch(branch, &main),
            )?;
        }
        Ok(repo)
    }

    fn run<T, E: std::fmt::Display>(
        &self,
        what: &str,
        future: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, StoreError> {
        block_on(future)
            .map_err(|e| versioned_error(&self.location, "runtime", e))?
            .map_err(|e| {
                versioned_error(
                    &self.location,
                    &format!("branch {}: {what}", self.branch),
                    e,
                )
            })
    }

    /// The snapshot id at the tip of the branch.
    pub fn tip(&self) -> Result<String, StoreError> {
        Ok(self
            .run(
                "cannot read the branch",
                self.repo.lookup_branch(&self.branch),
            )?
            .to_string())
    }

    /// A writable session on the branch: the storage a batch writes through.
    pub fn session(&self) -> Result<BatchSession, StoreError> {
        let session = self.run(
            "cannot start a session",
            self.repo.writable_session(&self.branch),
        )?;
        Ok(BatchSession::new(
            self.location.clone(),
            self.branch.clone(),
            session,
        ))
    }

    /// A read-only session at `version` (a snapshot id or a tag), as storage.
    pub fn read_only(&self, version: &str) -> Result<Arc<Storage>, StoreError> {
        let id = self.resolve(version)?;
        let session = self.run(
            "cannot open the snapshot",
            self.repo.readonly_session(&VersionInfo::SnapshotId(id)),
        )?;
        BatchSession::new(self.location.clone(), self.branch.clone(), session).storage()
    }

    /// The branch's commits, newest first.
    pub fn history(&self) -> Result<Vec<Commit>, StoreError> {
        let version = VersionInfo::BranchTipRef(self.branch.clone());
        let infos: Vec<icechunk::format::snapshot::SnapshotInfo> =
            self.run("cannot read the history", async {
                let stream = self.repo.ancestry(&version).await?;
                stream.try_collect::<Vec<_>>().await
            })?;
        Ok(infos
            .into_iter()
            .map(|info| Commit {
                id: info.id.to_string(),
                parent: info.parent_id.map(|p| p.to_string()),
                time: info.flushed_at,
                message: info.message,
                events: info
                    .metadata
                    .get(ZRU_PROPERTY)
                    .and_then(|zru| zru.get("events"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// The snapshot id a commit id or a tag names.
    pub fn resolve(&self, version: &str) -> Result<icechunk::format::SnapshotId, StoreError> {
        if let Ok(id) = icechunk::format::SnapshotId::try_from(version) {
            return Ok(id);
        }
        self.run(
            &format!("{version:?} is neither a snapshot id nor a tag"),
            self.repo.lookup_tag(version),
        )
    }

    /// Moves the branch back to `version` (a snapshot id of its history, or a tag).
    pub fn reset(&self, version: &str) -> Result<String, StoreError> {
        let id = self.resolve(version)?;
        let history = self.history()?;
        if !history.iter().any(|c| c.id == id.to_string()) {
            return Err(StoreError::Versioned {
                store: self.location.display_path(),
                reason: format!(
                    "branch {}: {version} is not a commit of the branch's history (see `zru log`)",
                    self.branch
                ),
            });
        }
        self.run(
            "cannot reset the branch",
            self.repo.reset_branch(&self.branch, &id, None),
        )?;
        Ok(id.to_string())
    }

    /// Tags a snapshot.
    pub fn tag(&self, name: &str, snapshot: &str) -> Result<(), StoreError> {
        let id = self.resolve(snapshot)?;
        self.run("cannot create the tag", self.repo.create_tag(name, &id))
    }
}

/// A batch's writable session: zru's storage over it, and its commit.
pub struct BatchSession {
    location: StoreLocation,
    branch: String,
    store: Arc<AsyncIcechunkStore>,
}

impl BatchSession {
    fn new(location: StoreLocation, branch: String, session: Session) -> Self {
        Self {
            location,
            branch,
            store: Arc::new(AsyncIcechunkStore::from(Arc::new(RwLock::new(session)))),
        }
    }

    /// The session as zarrs storage (sync), with the fault points of crash tests (a
    /// write to the session is one).
    pub fn storage(&self) -> Result<Arc<Storage>, StoreError> {
        let handle = runtime()
            .map_err(|e| versioned_error(&self.location, "runtime", e))?
            .handle()
            .clone();
        let session = AsyncToSyncStorageAdapter::new(self.store.clone(), BlockOn(handle));
        Ok(with_fault_points(Arc::new(MissingNodeAbsent(Arc::new(
            session,
        )))))
    }

    /// Commits what the session holds, with `message` and zru's `record` as the
    /// snapshot property [`ZRU_PROPERTY`]. Never rebases: if the branch moved since the
    /// session began (another writer), the commit fails with
    /// [`StoreError::Conflict`] and nothing is committed.
    pub fn commit(&self, message: &str, record: Map<String, Value>) -> Result<String, StoreError> {
        let session = self.store.session();
        let result = block_on(async move {
            let mut session = session.write().await;
            let mut properties = icechunk::format::snapshot::SnapshotProperties::new();
            properties.insert(ZRU_PROPERTY.to_string(), Value::Object(record));
            session
                .commit(message)
                .properties(properties)
                .allow_empty(true)
                .execute()
                .await
        })
        .map_err(|e| versioned_error(&self.location, "runtime", e))?;
        match result {
            Ok(id) => {
                crate::fault::point();
                Ok(id.to_string())
            }
            Err(error) if matches!(error.kind(), SessionErrorKind::Conflict { .. }) => {
                Err(StoreError::Conflict {
                    store: self.location.display_path(),
                    branch: self.branch.clone(),
                    reason: error.kind().to_string(),
                })
            }
            Err(error) => Err(versioned_error(
                &self.location,
                &format!("branch {}: the commit failed", self.branch),
                error,
            )),
        }
    }
}

/// zarrs_icechunk reports some missing keys as errors where zarrs expects "absent":
/// a key under a node the session does not hold (a chunk of an array created in this
/// batch, read back for a read-modify-write), or a chunk beyond the array's shape as the
/// session knows it (an array grown in this batch, its metadata not yet written to the
/// session). Partial reads report it per range, lazily: they are read eagerly here.
struct MissingNodeAbsent(Arc<Storage>);

/// Icechunk's "key not found" messages (`icechunk::store::KeyNotFoundError`), as
/// zarrs_icechunk passes them on (as text).
const NOT_FOUND: [&str; 3] = [
    "node not found at",
    "chunk cannot be find for key",
    "v2 key not found at",
];

/// True if `error` is Icechunk's "key not found" (the key is simply absent).
fn is_not_found(error: &StorageError) -> bool {
    matches!(error, StorageError::Other(reason) if NOT_FOUND.iter().any(|m| reason.contains(m)))
}

impl ReadableStorageTraits for MissingNodeAbsent {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let parts = match self.0.get_partial_many(key, byte_ranges) {
            Ok(Some(parts)) => parts,
            Ok(None) => return Ok(None),
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error),
        };
        let mut read = Vec::new();
        for part in parts {
            match part {
                Ok(bytes) => read.push(Ok(bytes)),
                Err(error) if is_not_found(&error) => return Ok(None),
                Err(error) => read.push(Err(error)),
            }
        }
        Ok(Some(Box::new(read.into_iter())))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        match self.0.size_key(key) {
            Err(error) if is_not_found(&error) => Ok(None),
            other => other,
        }
    }

    fn supports_get_partial(&self) -> bool {
        self.0.supports_get_partial()
    }
}

impl WritableStorageTraits for MissingNodeAbsent {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.0.set(key, value)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        self.0.set_partial_many(key, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.0.erase(key)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.0.erase_prefix(prefix)
    }

    fn supports_set_partial(&self) -> bool {
        self.0.supports_set_partial()
    }
}

impl ListableStorageTraits for MissingNodeAbsent {
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
