//! The persistent identity index of a profile collection: sidecar keys beside the
//! store's arrays, under `<store>/.zru/profiles/` (zarr-python and xarray ignore a
//! `.zru/` directory), read and written through the batch's [`Transaction`]:
//!
//! - `identity/<xx>.json`: profiles whose identity hashes to shard `xx` (two hex
//!   digits, [`Shard::of_identity`]), each with its row and the key that wrote it;
//! - `key/<xx>.json`: source keys hashing to `xx` ([`Shard::of_key`]), each with its
//!   rows as `[start, stop)` ranges (a `_prof.nc` of 300 profiles is one range);
//! - `meta.json`: format version, the dataset's append dimension, identity and
//!   provenance variables, the store's row count, the shard count, and the generation
//!   each shard was last written in (0: empty, its file is not read).
//!
//! A file loads only the shards its identities and key fall in (a few, however large
//! the store), so a single-cycle update reads and writes O(1) small files. Rows a file
//! blanks (its key's rows it no longer holds, or every row of a removed key) are looked
//! up in the store's identity columns, to forget their profiles.
//!
//! **Rebuild.** The index is rebuilt from the store's identity and provenance columns
//! (the full scan, chunk by chunk) and every shard rewritten when `meta.json` is
//! missing or unreadable, names another format, dataset layout or shard count, or
//! counts other rows than the store holds (a store written by a zru without the index,
//! or appended to by another tool), or when a shard is missing, unreadable or of
//! another generation than `meta.json` records. Deleting `.zru/` forces a rebuild. Not
//! detected: another tool rewriting rows in place without changing their count.
//!
//! **Crash safety.** Shards and `meta.json` are staged in the transaction like array
//! metadata: after each successful event (so a failed event's rollback drops its index
//! changes with its other staged writes, and [`IndexCache::invalidate`] drops the
//! in-memory copy), and committed after every chunk, with array metadata, before the
//! root group's (consolidated) metadata: `.zru/` keys sort first, and within them the
//! shards (`identity/`, `key/`) before `meta.json`, the index's commit point. A process
//! killed in between leaves:
//! - chunks written, nothing else: index and array metadata both old. The rows the
//!   batch overwrote hold new values that the old index does not describe; replaying
//!   the batch's events plans exactly as the first time (same index, same files) and
//!   writes the same values: idempotent.
//! - some shards written, not `meta.json`: those shards carry a generation `meta.json`
//!   does not record for them, so loading one rebuilds the index from the store; the
//!   others are old, like `meta.json` and the array metadata.
//! - `meta.json` written, not (all) array metadata: the index is new; if the batch grew
//!   `N_PROF`, the provenance array's old length differs from the index's row count and
//!   the index is rebuilt from the store as its metadata describes it; if it did not,
//!   the index describes the chunks already written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zru_handlers::identity::{Identity, Shard};
use zru_handlers::profiles::{stale_rows, IdentityIndex, KeyRows, RowIdentities};
use zru_handlers::ranges_from_indices;

use super::{options, profile_error};
use crate::collection::rows::{identity_texts, zip_identities, Context};
use crate::collection::sidecar_index::{
    check_generation, open_meta, read_shard, stage, store_rows, IndexMeta, Sidecar,
};
use crate::store::Transaction;
use crate::update::UpdateError;

/// Where the index lives (`.zru/profiles/`) and its layout's version.
const SIDECAR: Sidecar = Sidecar {
    dir: "profiles",
    format: 1,
};

/// `identity/<xx>.json`: (identity parts, row, key), ordered by row.
#[derive(Debug, Serialize, Deserialize)]
struct IdentityShardFile {
    generation: u64,
    profiles: Vec<(Vec<String>, u64, String)>,
}

/// `key/<xx>.json`: key → its rows as ascending `[start, stop)` ranges.
#[derive(Debug, Serialize, Deserialize)]
struct KeyShardFile {
    generation: u64,
    keys: BTreeMap<String, Vec<[u64; 2]>>,
}

/// The index as loaded in this batch.
#[derive(Debug)]
struct Loaded {
    index: IdentityIndex,
    meta: IndexMeta,
}

/// The identity index of one store during a batch: `meta.json` read on first use,
/// shards read as events need them and kept for the batch.
#[derive(Debug, Default)]
pub struct IndexCache {
    loaded: Option<Loaded>,
}

impl IndexCache {
    /// Forgets the in-memory index (after a failed event, whose staged index changes
    /// were rolled back): the next event reads it again through the transaction.
    pub fn invalidate(&mut self) {
        self.loaded = None;
    }

    /// The index with every shard a file with these identities (none for a removal)
    /// and key needs loaded, rebuilt from the store if it does not match it; and the
    /// rows the file blanks ([`stale_rows`]) with the identities the store holds there.
    pub(super) fn prepare(
        &mut self,
        cx: &Context<'_>,
        tx: &Transaction<'_>,
        identities: &[Identity],
        key: &str,
    ) -> Result<(&mut IdentityIndex, RowIdentities), UpdateError> {
        let loaded = match self.loaded.take() {
            Some(loaded) => loaded,
            None => open(cx, tx)?,
        };
        let loaded = load_shards(cx, tx, loaded, |index| index.missing(identities, key))?;
        let rows = stale_rows(&loaded.index, identities, key).map_err(|e| profile_error(cx, e))?;
        let stale = identities_at(cx, tx, &rows)?;
        let stale_ids =
            |index: &IdentityIndex| index.missing_identities(stale.iter().map(|s| &s.1));
        let loaded = self.loaded.insert(load_shards(cx, tx, loaded, stale_ids)?);
        // Loading may have rebuilt the index from the store, which may not blank the
        // same rows.
        let again = stale_rows(&loaded.index, identities, key).map_err(|e| profile_error(cx, e))?;
        let stale = if again == rows {
            stale
        } else {
            identities_at(cx, tx, &again)?
        };
        Ok((&mut loaded.index, stale))
    }

    /// Stages the shards changed since the last call, and `meta.json`, in `tx`.
    pub(super) fn stage(
        &mut self,
        cx: &Context<'_>,
        tx: &Transaction<'_>,
    ) -> Result<(), UpdateError> {
        let Some(loaded) = self.loaded.as_mut() else {
            return Ok(());
        };
        let dirty = loaded.index.take_dirty();
        let rows = loaded.index.len();
        let index = &loaded.index;
        stage(
            SIDECAR,
            cx,
            tx,
            &mut loaded.meta,
            rows,
            dirty,
            |shard, generation| shard_bytes(index, shard, generation),
        )
    }
}

/// Reads `meta.json`; an index that does not match the store is rebuilt.
fn open(cx: &Context<'_>, tx: &Transaction<'_>) -> Result<Loaded, UpdateError> {
    let rows = store_rows(cx, tx)?;
    let meta = open_meta(SIDECAR, cx, tx, options(cx.dataset).identity, rows)?;
    match meta {
        Ok(meta) => Ok(Loaded {
            index: IdentityIndex::with_len(rows),
            meta,
        }),
        Err((reason, generation)) => rebuild(cx, tx, generation, &reason),
    }
}

/// Builds the index from the store's columns; every shard is to be written.
fn rebuild(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    generation: u64,
    reason: &str,
) -> Result<Loaded, UpdateError> {
    let rows = store_rows(cx, tx)?;
    if rows > 0 {
        tracing::info!(
            store = %tx.location().display(),
            "rebuilding the identity index from the store's {rows} rows: {reason}"
        );
    }
    Ok(Loaded {
        index: build_index(cx, tx)?,
        meta: IndexMeta::new(SIDECAR, cx, options(cx.dataset).identity, rows, generation),
    })
}

/// Fills the shards a file needs (two rounds at most); rebuilds the index if one is
/// missing, unreadable or not of the generation `meta.json` records.
fn load_shards(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    mut loaded: Loaded,
    missing: impl Fn(&IdentityIndex) -> Vec<Shard>,
) -> Result<Loaded, UpdateError> {
    loop {
        let missing = missing(&loaded.index);
        if missing.is_empty() {
            return Ok(loaded);
        }
        for shard in missing {
            let expected = loaded.meta.written[shard.position()];
            let rows = loaded.meta.rows;
            if let Err(reason) = load_shard(cx, tx, &mut loaded.index, shard, expected, rows)? {
                let reason = format!("shard {shard}: {reason}");
                loaded = rebuild(cx, tx, loaded.meta.generation, &reason)?;
                break;
            }
        }
    }
}

/// Loads one shard: `Ok(Err(reason))` if its file does not belong to the index.
fn load_shard(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    index: &mut IdentityIndex,
    shard: Shard,
    expected: u64,
    rows: u64,
) -> Result<Result<(), String>, UpdateError> {
    let bytes = match read_shard(SIDECAR, cx, tx, shard, expected)? {
        Ok(bytes) => bytes,
        Err(reason) => return Ok(Err(reason)),
    };
    let filled = match shard {
        Shard::Identity(n) => parse_identity_shard(bytes.as_deref(), expected)
            .map(|entries| index.insert_identity_shard(n, entries)),
        Shard::Key(n) => parse_key_shard(bytes.as_deref(), expected, rows)
            .map(|entries| index.insert_key_shard(n, entries)),
    };
    match filled {
        Ok(inserted) => Ok(inserted.map_err(|e| e.to_string())),
        Err(reason) => Ok(Err(reason)),
    }
}

fn parse_identity_shard(
    bytes: Option<&[u8]>,
    expected: u64,
) -> Result<Vec<(Identity, u64, String)>, String> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    let file: IdentityShardFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    check_generation(file.generation, expected)?;
    Ok(file
        .profiles
        .into_iter()
        .map(|(parts, row, key)| (Identity::new(&parts), row, key))
        .collect())
}

fn parse_key_shard(
    bytes: Option<&[u8]>,
    expected: u64,
    rows: u64,
) -> Result<Vec<(String, KeyRows)>, String> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    let file: KeyShardFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    check_generation(file.generation, expected)?;
    file.keys
        .into_iter()
        .map(|(key, ranges)| {
            if let Some([start, stop]) = ranges.iter().find(|[a, b]| a > b || *b > rows) {
                return Err(format!(
                    "{key}: rows [{start}, {stop}) outside the {rows} rows"
                ));
            }
            Ok((key, ranges.iter().flat_map(|&[a, b]| a..b).collect()))
        })
        .collect()
}

/// A shard's file (`None` if the shard is empty).
fn shard_bytes(
    index: &IdentityIndex,
    shard: Shard,
    generation: u64,
) -> Result<Option<Vec<u8>>, String> {
    let not_loaded = || format!("shard {shard} is not loaded");
    let json = match shard {
        Shard::Identity(n) => {
            let entries = index.identity_entries(n).ok_or_else(not_loaded)?;
            if entries.is_empty() {
                return Ok(None);
            }
            let profiles = entries
                .into_iter()
                .map(|(id, row, key)| (id.parts().to_vec(), row, key))
                .collect();
            serde_json::to_vec(&IdentityShardFile {
                generation,
                profiles,
            })
        }
        Shard::Key(n) => {
            let entries = index.key_entries(n).ok_or_else(not_loaded)?;
            if entries.is_empty() {
                return Ok(None);
            }
            let keys = entries
                .into_iter()
                .map(|(key, rows)| {
                    let ranges = ranges_from_indices(&rows)
                        .into_iter()
                        .map(|r| [r.start, r.stop])
                        .collect();
                    (key, ranges)
                })
                .collect();
            serde_json::to_vec(&KeyShardFile { generation, keys })
        }
    };
    json.map(Some).map_err(|e| format!("shard {shard}: {e}"))
}

/// A text (or numeric, as text) column of the store at rows `[start, start + count)`.
fn read_texts(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    name: &str,
    start: u64,
    count: u64,
) -> Result<Vec<String>, UpdateError> {
    tx.read(name, &[start], &[count])
        .map(|values| identity_texts(&values))
        .map_err(|e| cx.store_error(e))
}

/// The identities the store holds at rows `[start, start + count)`.
fn read_identities(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    start: u64,
    count: u64,
) -> Result<Vec<Identity>, UpdateError> {
    let columns = options(cx.dataset)
        .identity
        .iter()
        .map(|name| read_texts(cx, tx, name, start, count))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(zip_identities(&columns, count as usize))
}

/// The identities the store holds at some rows, read range by range.
fn identities_at(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    rows: &[u64],
) -> Result<RowIdentities, UpdateError> {
    let mut found = Vec::with_capacity(rows.len());
    for range in ranges_from_indices(rows) {
        let identities = read_identities(cx, tx, range.start, range.len())?;
        found.extend((range.start..range.stop).zip(identities));
    }
    Ok(found)
}

/// Builds the identity index of the store as this transaction sees it, reading the
/// provenance and identity columns chunk by chunk. Rows with no provenance are blank.
fn build_index(cx: &Context<'_>, tx: &Transaction<'_>) -> Result<IdentityIndex, UpdateError> {
    let provenance = cx.dataset.provenance_variable();
    let len = store_rows(cx, tx)?;
    let Some(doc) = tx.array_doc(provenance) else {
        return Ok(IdentityIndex::complete(len));
    };
    let chunk = doc
        .chunk_shape()
        .map_err(|e| cx.schema(provenance, e.to_string()))?[0]
        .max(1);
    let names = options(cx.dataset).identity;
    if len > 0 {
        if let Some(missing) = names.iter().find(|n| tx.array_doc(n).is_none()) {
            return Err(cx.schema(missing, "identity variable missing from the store".into()));
        }
    }
    let mut index = IdentityIndex::complete(len);
    let mut start = 0;
    while start < len {
        let count = chunk.min(len - start);
        let keys = read_texts(cx, tx, provenance, start, count)?;
        let identities = read_identities(cx, tx, start, count)?;
        for (offset, (key, identity)) in keys.iter().zip(identities).enumerate() {
            if !key.is_empty() {
                index
                    .record(start + offset as u64, identity, key)
                    .map_err(|source| profile_error(cx, source))?;
            }
        }
        start += count;
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::{json, Map};
    use zru_handlers::profiles::plan_rows;

    use super::*;
    use crate::config::{load_file, Dataset};
    use crate::store::{ArrayDoc, Compressor, NewArray, ZarrFormat, ZarrStore};
    use crate::values::{ElementType, Values};

    use zru_handlers::identity::SHARDS;

    const EVERY_SHARD: usize = 2 * SHARDS as usize;
    /// At most the shards of one key with ten profiles.
    const FEW: usize = 12;

    fn dataset(dir: &Path) -> Dataset {
        let file = dir.join("argo.json");
        let config = json!({
            "name": "argo", "handler": "profiles", "key_patterns": ["^argo/"],
            "store": dir.join("argo.zarr"), "append_dim": "N_PROF",
        });
        std::fs::write(&file, config.to_string()).unwrap();
        load_file(&file).unwrap()
    }

    fn platform(row: u64) -> String {
        format!("{}", 5_900_000 + row / 10)
    }

    fn key_of(row: u64) -> String {
        format!("argo/{}_prof.nc", platform(row))
    }

    fn identity_of(row: u64) -> Identity {
        Identity::new(&[platform(row), (row % 10 + 1).to_string(), "A".into()])
    }

    fn column(name: &str, rows: u64) -> (ElementType, Values) {
        let texts = |f: &dyn Fn(u64) -> String| Values::Text((0..rows).map(f).collect());
        match name {
            "zru_source_key" => (ElementType::Text, texts(&key_of)),
            "PLATFORM_NUMBER" => (ElementType::Text, texts(&|r| format!("{} ", platform(r)))),
            "DIRECTION" => (ElementType::Text, texts(&|_| "A".into())),
            _ => (
                ElementType::I32,
                Values::I32((0..rows).map(|r| (r % 10 + 1) as i32).collect()),
            ),
        }
    }

    /// A store of `rows` profiles, ten per float and key, written without an index.
    fn make_store(dataset: &Dataset, rows: u64) -> PathBuf {
        let store = ZarrStore::open_or_new(&dataset.store_path, ZarrFormat::V3).unwrap();
        let mut tx = store.begin();
        for name in [
            "zru_source_key",
            "PLATFORM_NUMBER",
            "CYCLE_NUMBER",
            "DIRECTION",
        ] {
            let (element, values) = column(name, rows);
            tx.put_array(ArrayDoc::create(
                ZarrFormat::V3,
                NewArray {
                    name: name.into(),
                    dims: vec!["N_PROF".into()],
                    shape: vec![rows],
                    chunks: vec![8],
                    element,
                    fill_value: None,
                    attributes: Map::new(),
                    compressor: Compressor::None,
                },
            ));
            tx.write(name, &[0], &[rows], values).unwrap();
        }
        tx.commit().unwrap();
        dataset.store_path.clone()
    }

    fn cx<'a>(dataset: &'a Dataset, key: &'a str) -> Context<'a> {
        Context { dataset, key }
    }

    /// Opens the store, prepares the index for one row's profile and commits what the
    /// cache staged; returns how many shards were loaded (all of them: rebuilt).
    fn prepare_and_commit(dataset: &Dataset, row: u64) -> usize {
        let store = ZarrStore::open(&dataset.store_path).unwrap();
        let tx = store.begin();
        let key = key_of(row);
        let cx = cx(dataset, &key);
        let mut cache = IndexCache::default();
        let (index, stale) = cache.prepare(&cx, &tx, &[identity_of(row)], &key).unwrap();
        let expected: Vec<_> = (row - row % 10..row - row % 10 + 10)
            .filter(|&r| r != row)
            .map(|r| (r, identity_of(r)))
            .collect();
        assert_eq!(stale, expected, "read from the store");
        assert_eq!(index.row(&identity_of(row)).unwrap(), Some(row));
        let first = row - row % 10;
        assert_eq!(
            index.rows_of(&key).unwrap(),
            (first..first + 10).collect::<Vec<_>>()
        );
        let loaded = index.loaded_shards();
        cache.stage(&cx, &tx).unwrap();
        tx.commit().unwrap();
        loaded
    }

    fn index_file(dataset: &Dataset, path: &str) -> PathBuf {
        dataset.store_path.join(".zru/profiles").join(path)
    }

    #[test]
    fn the_index_is_built_once_then_read_shard_by_shard() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = dataset(dir.path());
        make_store(&dataset, 100);
        assert_eq!(
            prepare_and_commit(&dataset, 42),
            EVERY_SHARD,
            "no index: rebuilt"
        );
        let meta: IndexMeta =
            serde_json::from_slice(&std::fs::read(index_file(&dataset, "meta.json")).unwrap())
                .unwrap();
        assert_eq!(
            (meta.rows, meta.shards, meta.format),
            (100, SHARDS, SIDECAR.format)
        );
        for row in [0, 42, 99] {
            // The profile's identity shard, its key's shard and the identity shards of
            // the key's ten profiles.
            let loaded = prepare_and_commit(&dataset, row);
            assert!(loaded <= FEW, "row {row}: {loaded} shards loaded");
        }
    }

    #[test]
    fn a_missing_or_mismatched_meta_or_shard_rebuilds_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = dataset(dir.path());
        make_store(&dataset, 30);
        prepare_and_commit(&dataset, 5);
        let meta_file = index_file(&dataset, "meta.json");
        type Edit = fn(&mut IndexMeta);
        let cases: [(&str, Option<Edit>); 6] = [
            ("missing", None),
            ("unreadable", Some(|m| m.shards = 0)),
            ("older format", Some(|m| m.format = 0)),
            ("other row count", Some(|m| m.rows = 31)),
            (
                "other identity",
                Some(|m| m.identity = vec!["PLATFORM_NUMBER".into()]),
            ),
            (
                "other shard generation",
                Some(|m| m.written.iter_mut().for_each(|g| *g += 100)),
            ),
        ];
        for (case, edit) in cases {
            let mut meta: IndexMeta =
                serde_json::from_slice(&std::fs::read(&meta_file).unwrap()).unwrap();
            match edit {
                Some(edit) if case == "unreadable" => {
                    edit(&mut meta);
                    std::fs::write(&meta_file, b"{").unwrap();
                }
                Some(edit) => {
                    edit(&mut meta);
                    std::fs::write(&meta_file, serde_json::to_vec(&meta).unwrap()).unwrap();
                }
                None => std::fs::remove_file(&meta_file).unwrap(),
            }
            assert_eq!(prepare_and_commit(&dataset, 5), EVERY_SHARD, "{case}");
            // The rebuilt index is written and used from then on.
            assert!(prepare_and_commit(&dataset, 5) <= FEW, "{case}");
        }
        std::fs::remove_dir_all(index_file(&dataset, "identity")).unwrap();
        assert_eq!(
            prepare_and_commit(&dataset, 5),
            EVERY_SHARD,
            "shards deleted"
        );
    }

    #[test]
    fn a_rolled_back_event_leaves_no_index_change() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = dataset(dir.path());
        make_store(&dataset, 20);
        prepare_and_commit(&dataset, 0);
        let before = std::fs::read(index_file(&dataset, "meta.json")).unwrap();
        let store = ZarrStore::open(&dataset.store_path).unwrap();
        let mut tx = store.begin();
        let (key, new) = ("argo/new.nc", Identity::new(&["1", "1", "A"]));
        let cx = cx(&dataset, key);
        let mut cache = IndexCache::default();
        let savepoint = tx.savepoint().unwrap();
        let (index, _) = cache
            .prepare(&cx, &tx, std::slice::from_ref(&new), key)
            .unwrap();
        let plan = plan_rows(index, std::slice::from_ref(&new), key).unwrap();
        assert_eq!(plan.indices, vec![20]);
        index.apply(&plan, vec![new.clone()], key, &[]).unwrap();
        cache.stage(&cx, &tx).unwrap();
        tx.rollback(savepoint).unwrap();
        cache.invalidate();
        let (index, _) = cache
            .prepare(&cx, &tx, std::slice::from_ref(&new), key)
            .unwrap();
        assert_eq!(index.row(&new).unwrap(), None);
        assert_eq!(index.len(), 20);
        tx.commit().unwrap();
        assert_eq!(
            std::fs::read(index_file(&dataset, "meta.json")).unwrap(),
            before
        );
    }

    #[test]
    fn shard_files_round_trip() {
        let mut index = IdentityIndex::complete(3);
        index.record(0, identity_of(0), "argo/a.nc").unwrap();
        index.record(2, identity_of(2), "argo/a.nc").unwrap();
        for shard in index.take_dirty() {
            let bytes = shard_bytes(&index, shard, 7).unwrap();
            let mut copy = IdentityIndex::with_len(3);
            let Some(bytes) = bytes else { continue };
            match shard {
                Shard::Identity(n) => {
                    let entries = parse_identity_shard(Some(&bytes), 7).unwrap();
                    copy.insert_identity_shard(n, entries).unwrap();
                    assert_eq!(copy.identity_entries(n), index.identity_entries(n));
                    assert!(parse_identity_shard(Some(&bytes), 8).is_err());
                }
                Shard::Key(n) => {
                    let entries = parse_key_shard(Some(&bytes), 7, 3).unwrap();
                    copy.insert_key_shard(n, entries).unwrap();
                    assert_eq!(copy.key_entries(n), index.key_entries(n));
                    assert!(parse_key_shard(Some(&bytes), 8, 3).is_err());
                    assert!(parse_key_shard(Some(&bytes), 7, 2).is_err(), "row 2 of 2");
                }
            }
        }
    }
}
