//! Helpers shared by the pipeline integration tests: a work directory with a config,
//! generated sample files, the built `zru` binary, and a canonical dump of a store.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use zru::store::ZarrStore;

pub const ZRU: &str = env!("CARGO_BIN_EXE_zru");

/// A scratch project: `config/sst.json`, `data/raw/sst/`, state under `data/state`.
pub struct Work {
    pub dir: tempfile::TempDir,
}

pub fn sample_name(day: u32) -> String {
    format!("202401{day:02}120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc")
}

pub fn sample_key(day: u32) -> String {
    format!("sst/{}", sample_name(day))
}

impl Work {
    /// A work directory whose dataset has (or has not) a `time_step`.
    pub fn new(time_step: bool) -> Self {
        Self::with_format(time_step, 3)
    }

    /// A work directory whose dataset creates a store of Zarr format `zarr_format`.
    pub fn with_format(time_step: bool, zarr_format: u8) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).expect("config dir");
        let step = if time_step {
            r#","time_step": "1 day""#
        } else {
            ""
        };
        let json = format!(
            r#"{{"name": "sst", "handler": "gridded", "key_patterns": ["^sst/.*\\.nc$"],
               "store": "data/zarr/sst.zarr", "append_dim": "time",
               "chunks": {{"time": 2, "lat": 8, "lon": 8}}, "zarr_format": {zarr_format}{step}}}"#
        );
        std::fs::write(config.join("sst.json"), json).expect("config");
        std::fs::create_dir_all(dir.path().join("data/raw/sst")).expect("raw dir");
        Self { dir }
    }

    /// A work directory whose dataset is an Icechunk repository (`"format": "icechunk"`,
    /// at [`Self::repo`]), with a `time_step`.
    pub fn icechunk() -> Self {
        let work = Self::new(true);
        let config = work.path().join("config/sst.json");
        let json = std::fs::read_to_string(&config).expect("config");
        let json = json.replace(
            r#""store": "data/zarr/sst.zarr","#,
            r#""store": "data/zarr/sst.icechunk", "format": "icechunk","#,
        );
        std::fs::write(config, json).expect("config");
        work
    }

    /// The Icechunk repository of a work directory made by [`Self::icechunk`].
    pub fn repo(&self) -> PathBuf {
        self.path().join("data/zarr/sst.icechunk")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn raw(&self, day: u32) -> PathBuf {
        self.path().join("data/raw").join(sample_key(day))
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("data/zarr/sst.zarr")
    }

    /// Writes `days` sample files of `revision` into `dir` (relative to the work dir).
    pub fn samples(&self, dir: &str, days: u32, revision: u32) {
        let out = self.zru(&[
            "sample",
            "gridded",
            dir,
            "--days",
            &days.to_string(),
            "--lat",
            "6",
            "--lon",
            "12",
            "--revision",
            &revision.to_string(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(ZRU);
        command.current_dir(self.path()).args(args);
        command.env_remove(zru::fault::KILL_AT_ENV);
        command
    }

    pub fn zru(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running zru")
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Lines of stdout whose third column (the action) is `action`.
pub fn lines_with_action(out: &Output, action: &str) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| l.split('\t').nth(2) == Some(action))
        .map(String::from)
        .collect()
}

/// Every array's metadata and decoded values, the root attributes and the consolidated
/// metadata (what xarray opens): equal dumps mean stores that read the same (whatever
/// the key order in the JSON documents).
pub fn dump(store_path: &Path) -> BTreeMap<String, String> {
    let store = ZarrStore::open(store_path).expect("open store");
    let read_json = |name: &str| -> Option<serde_json::Value> {
        let bytes = std::fs::read(store_path.join(name)).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let consolidated = read_json("zarr.json")
        .map(|root| root["consolidated_metadata"].clone())
        .filter(|c| !c.is_null())
        .or_else(|| read_json(".zmetadata"));
    let mut out = dump_opened(&store);
    out.insert(
        "/consolidated".to_string(),
        format!("{:?}", consolidated.as_ref().map(sorted)),
    );
    out
}

/// The commits of an Icechunk repository's branch `main`, oldest first.
#[cfg(feature = "icechunk")]
pub fn icechunk_history(repo_path: &Path) -> Vec<zru::store::icechunk::Commit> {
    let location = zru::store::StoreLocation::Local(repo_path.to_path_buf());
    let repo = zru::store::icechunk::Repo::open(&location, "main").expect("open repository");
    let mut history = repo.history().expect("history");
    history.reverse();
    history
}

/// [`dump`] of a snapshot of an Icechunk repository (no consolidated metadata there).
#[cfg(feature = "icechunk")]
pub fn dump_snapshot(repo_path: &Path, snapshot: &str) -> BTreeMap<String, String> {
    let location = zru::store::StoreLocation::Local(repo_path.to_path_buf());
    let repo = zru::store::icechunk::Repo::open(&location, "main").expect("open repository");
    let store = ZarrStore::open_snapshot(&location, &repo, snapshot).expect("open snapshot");
    dump_opened(&store)
}

/// The root attributes and every array's metadata and values of an opened store.
fn dump_opened(store: &ZarrStore) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(
        "/attrs".to_string(),
        format!(
            "{:?}",
            sorted(&serde_json::Value::Object(store.root_attrs.clone()))
        ),
    );
    for (name, doc) in &store.arrays {
        let shape = doc.shape().expect("shape");
        let values = store
            .read(name, &vec![0; shape.len()], &shape)
            .expect("read array");
        let mut meta = doc.meta.clone();
        meta.extend(doc.v2_attrs.clone());
        out.insert(
            format!("{name}/meta"),
            format!("{:?}", sorted(&serde_json::Value::Object(meta))),
        );
        out.insert(format!("{name}/values"), format!("{values:?}"));
    }
    out
}

/// A JSON value with object keys sorted, for order-insensitive comparison.
fn sorted(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(sorted).collect())
        }
        other => other.clone(),
    }
}

/// Store file names (temporary files of a killed writer included: recovery removes
/// them).
pub fn store_files(store: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .expect("prefix")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(store, store, &mut out);
    out.sort();
    out
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
