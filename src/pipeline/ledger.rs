//! The ledger: per store, the last applied event of every source key.
//!
//! It lives beside the store, under the same root (`data/zarr/sst.zarr` has
//! `data/zarr/sst.zarr.zru-ledger.json`), so it survives restarts and moves with the
//! store. It is written after the store's commit (chunks, array metadata,
//! consolidated metadata) and before the queue acknowledgement, atomically (temporary
//! file created exclusively, fsync, rename). A symbolic link at the ledger's path is
//! refused when it is read, and replaced (its target untouched) if it is written. An event older than the ledger's entry for its key is stale;
//! an equal one is a duplicate. A store on S3 has its ledger beside it on S3
//! (`s3://b/sst.zarr` has `s3://b/sst.zarr.zru-ledger.json`), replaced by one PUT.
//!
//! For an Icechunk repository the commits are the ledger: each batch's commit records
//! its events with their order, etag and version (see `store::icechunk`), and the file
//! beside the repository is a cache that names the snapshot it reflects. Loading it
//! (`Ledger::load_for`) replays the commits made after that snapshot (a process
//! killed between a commit and the ledger's save), or rebuilds it from the whole
//! history when that snapshot is no longer on the branch (a rollback). The two can
//! therefore never disagree. A flush saves a ledger so brought up to date before its
//! first batch (`Ledger::is_stale`), so the file beside the repository reflects the
//! branch's tip after every flush, even one whose events were all duplicates of the
//! commit a killed process made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::event::EventOrder;
use crate::config::Dataset;
use crate::store::atomic_fs::{read_regular_nofollow, replace_file};
use crate::store::fenced::Fence;
use crate::store::location::Sibling;
use crate::store::{Backend, StoreLocation};
use crate::update::EventKind;

/// Why a store's ledger could not be read or saved.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// Reading or replacing a local ledger failed.
    #[error("ledger {path}: {source}")]
    Io {
        /// The ledger file (or its S3 URL).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse as a zru ledger.
    #[error("ledger {path}: not a zru ledger: {reason}")]
    Parse {
        /// The ledger file (or its S3 URL).
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// The Icechunk repository the ledger reflects could not be read.
    #[error("ledger {path}: {source}")]
    Store {
        /// The ledger file (or its S3 URL).
        path: PathBuf,
        /// The repository's error.
        #[source]
        source: Box<crate::store::StoreError>,
    },
    /// The ledger of an S3 store was changed by another writer since this batch read
    /// it (S3 conditional write refused): it was not overwritten.
    #[error(transparent)]
    Fenced(#[from] crate::store::fenced::FencedError),
    /// Reading or writing the ledger of an S3 store failed.
    #[error("ledger {path}: {source}")]
    Storage {
        /// The ledger file (or its S3 URL).
        path: PathBuf,
        /// The S3 storage error.
        #[source]
        source: zarrs::storage::StorageError,
    },
}

/// The last applied event of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Created or removed.
    pub kind: EventKind,
    /// Where the event stands among its key's events: a later event with an older
    /// order is stale.
    pub order: EventOrder,
    /// The object's ETag, when the event had one (a redelivery with the same ETag
    /// is a duplicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The object version, in versioned buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// What applying it did (`appended`, `overwrote`, `blanked`, `unchanged`).
    pub action: String,
    /// The region written or blanked, per dimension: `[start, end)` indices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<crate::update::Region>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LedgerFile {
    version: u32,
    /// For an Icechunk repository: the branch tip (snapshot id) the entries reflect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<String>,
    entries: BTreeMap<String, LedgerEntry>,
}

/// A store's ledger, loaded in memory.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    /// Where a ledger of a store on S3 lives (`None`: the local file `path`).
    remote: Option<Sibling>,
    /// What was read of a ledger on S3 (its ETag, or absent): it is saved only if it is
    /// still that object (fencing against a stale writer).
    fence: Option<Fence>,
    entries: BTreeMap<String, LedgerEntry>,
    /// For an Icechunk repository: the snapshot the entries reflect.
    snapshot: Option<String>,
    /// For an Icechunk repository: where it is and the branch (its tip is recorded
    /// when the ledger is saved).
    versioned: Option<(StoreLocation, String)>,
    /// True when loading replayed commits the saved copy did not reflect.
    stale: bool,
}

/// The suffix of a ledger's name after its store's.
pub const LEDGER_SUFFIX: &str = ".zru-ledger.json";

impl Ledger {
    /// Where the ledger of `store` lives.
    pub fn path_for_store(store: &Path) -> PathBuf {
        let mut name = store
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "store".into());
        name.push(LEDGER_SUFFIX);
        store.with_file_name(name)
    }

    /// Loads the ledger of `store` (empty if it has none yet).
    pub fn load(store: &Path) -> Result<Self, LedgerError> {
        let path = Self::path_for_store(store);
        let entries = match read_regular_nofollow(&path) {
            Ok(Some(bytes)) => {
                let file: LedgerFile =
                    serde_json::from_slice(&bytes).map_err(|e| LedgerError::Parse {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                (file.entries, file.snapshot)
            }
            Ok(None) => (BTreeMap::new(), None),
            Err(source) => return Err(LedgerError::Io { path, source }),
        };
        Ok(Self {
            path,
            remote: None,
            fence: None,
            entries: entries.0,
            snapshot: entries.1,
            versioned: None,
            stale: false,
        })
    }

    /// Loads the ledger of a store, local or on S3 (empty if it has none yet).
    pub(crate) fn load_at(location: &StoreLocation) -> Result<Self, LedgerError> {
        let StoreLocation::S3 { .. } = location else {
            return Self::load(&location.display_path());
        };
        let remote = location.sibling(LEDGER_SUFFIX);
        let path = PathBuf::from(remote.to_string());
        let (bytes, fence) = remote
            .read_fenced()
            .map_err(|source| LedgerError::Storage {
                path: path.clone(),
                source,
            })?;
        let entries = match bytes {
            Some(bytes) => {
                let file: LedgerFile =
                    serde_json::from_slice(&bytes).map_err(|e| LedgerError::Parse {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                (file.entries, file.snapshot)
            }
            None => (BTreeMap::new(), None),
        };
        Ok(Self {
            path,
            remote: Some(remote),
            fence,
            entries: entries.0,
            snapshot: entries.1,
            versioned: None,
            stale: false,
        })
    }

    /// Loads the ledger of a dataset's store; for an Icechunk repository, brought up to
    /// date with the branch's commits (see the module's documentation).
    pub(crate) fn load_for(dataset: &Dataset) -> Result<Self, LedgerError> {
        let mut ledger = Self::load_at(&dataset.location)?;
        if let Backend::Icechunk { branch, .. } = dataset.backend() {
            ledger.versioned = Some((dataset.location.clone(), branch));
            ledger.catch_up()?;
        }
        Ok(ledger)
    }

    /// The snapshot an Icechunk repository's ledger reflects.
    pub fn snapshot(&self) -> Option<&str> {
        self.snapshot.as_deref()
    }

    /// True if loading brought an Icechunk repository's ledger up to date with commits
    /// its saved copy did not reflect (a process killed between a commit and the
    /// ledger's save, or a rollback): the saved copy is behind until the next save.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale
    }

    #[cfg(not(feature = "icechunk"))]
    fn catch_up(&mut self) -> Result<(), LedgerError> {
        Ok(())
    }

    /// Replays the commits the ledger does not reflect yet (all of them if its
    /// snapshot left the branch's history).
    #[cfg(feature = "icechunk")]
    fn catch_up(&mut self) -> Result<(), LedgerError> {
        use crate::store::icechunk::Repo;
        let Some((location, branch)) = &self.versioned else {
            return Ok(());
        };
        let error = |source| LedgerError::Store {
            path: self.path.clone(),
            source: Box::new(source),
        };
        if !Repo::exists(location).map_err(error)? {
            return Ok(());
        }
        let repo = Repo::open(location, branch).map_err(error)?;
        let history = repo.history().map_err(error)?;
        let tip = history.first().map(|c| c.id.clone());
        if tip.is_none() || tip == self.snapshot {
            return Ok(());
        }
        let known = self
            .snapshot
            .as_ref()
            .and_then(|id| history.iter().position(|c| &c.id == id));
        let newer = match known {
            Some(position) => &history[..position],
            None => {
                self.entries.clear();
                &history[..]
            }
        };
        for commit in newer.iter().rev() {
            for event in &commit.events {
                let key = event.get("key").and_then(Value::as_str);
                let entry = serde_json::from_value::<LedgerEntry>(event.clone());
                // Events without an order (applied outside the queue) are not recorded.
                if let (Some(key), Ok(entry)) = (key, entry) {
                    self.entries.insert(key.to_string(), entry);
                }
            }
        }
        self.snapshot = tip;
        self.stale = true;
        Ok(())
    }

    /// The branch tip of an Icechunk repository's ledger, read now.
    #[cfg(feature = "icechunk")]
    fn current_tip(&self) -> Result<Option<String>, LedgerError> {
        let Some((location, branch)) = &self.versioned else {
            return Ok(self.snapshot.clone());
        };
        let error = |source| LedgerError::Store {
            path: self.path.clone(),
            source: Box::new(source),
        };
        let repo = crate::store::icechunk::Repo::open(location, branch).map_err(error)?;
        Ok(Some(repo.tip().map_err(error)?))
    }

    #[cfg(not(feature = "icechunk"))]
    fn current_tip(&self) -> Result<Option<String>, LedgerError> {
        Ok(self.snapshot.clone())
    }

    /// Where the ledger is kept (beside the store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last applied event of `key`.
    pub fn get(&self, key: &str) -> Option<&LedgerEntry> {
        self.entries.get(key)
    }

    /// The last applied event of every key, by key.
    pub fn entries(&self) -> &BTreeMap<String, LedgerEntry> {
        &self.entries
    }

    /// Records `entry` as the last applied event of `key` (in memory: saving it is a
    /// separate step).
    pub fn record(&mut self, key: &str, entry: LedgerEntry) {
        self.entries.insert(key.to_string(), entry);
    }

    /// Writes the ledger atomically: temporary file, fsync, rename; on S3 one PUT,
    /// conditional on the object read at load time (or on the last save):
    /// [`LedgerError::Fenced`] if another writer changed it since.
    pub(crate) fn save(&mut self) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        let file = LedgerFile {
            version: 1,
            snapshot: self.current_tip()?,
            entries: self.entries.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| LedgerError::Parse {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(remote) = &self.remote {
            self.fence = remote.write_fenced(&bytes, self.fence.as_ref())?;
            self.stale = false;
            crate::fault::point();
            return Ok(());
        }
        replace_file(&self.path, &bytes).map_err(io)?;
        self.stale = false;
        crate::fault::point();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lives_beside_the_store_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("zarr/sst.zarr");
        assert_eq!(
            Ledger::path_for_store(&store),
            dir.path().join("zarr/sst.zarr.zru-ledger.json")
        );
        let mut ledger = Ledger::load(&store).unwrap();
        assert!(ledger.get("sst/a.nc").is_none());
        let entry = LedgerEntry {
            kind: EventKind::Created,
            order: EventOrder {
                sequencer: Some("0A".into()),
                event_time_us: 5,
                arrival: 7,
            },
            etag: Some("e".into()),
            version_id: None,
            action: "appended".into(),
            region: Some(crate::update::Region::along("time", 0, 1)),
        };
        ledger.record("sst/a.nc", entry.clone());
        ledger.save().unwrap();
        let reloaded = Ledger::load(&store).unwrap();
        assert_eq!(reloaded.get("sst/a.nc"), Some(&entry));
    }

    #[test]
    fn a_symlink_at_the_ledger_path_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.zarr");
        let victim = dir.path().join("victim.json");
        std::fs::write(&victim, b"{\"version\": 1, \"entries\": {}}").unwrap();
        let path = Ledger::path_for_store(&store);
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let error = Ledger::load(&store).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        // Saving replaces the link itself; the target keeps its bytes.
        let mut ledger = Ledger {
            path: path.clone(),
            remote: None,
            fence: None,
            entries: BTreeMap::new(),
            snapshot: None,
            versioned: None,
            stale: false,
        };
        ledger.save().unwrap();
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"{\"version\": 1, \"entries\": {}}"
        );
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert!(Ledger::load(&store).unwrap().entries().is_empty());
    }

    #[test]
    fn a_corrupt_ledger_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.zarr");
        std::fs::write(Ledger::path_for_store(&store), b"{not json").unwrap();
        let error = Ledger::load(&store).unwrap_err().to_string();
        assert!(error.contains("s.zarr.zru-ledger.json"), "{error}");
    }
}
