//! The persistent key index of a series collection, under `<store>/.zru/series/`, read
//! and written through the batch's [`Transaction`] like the profile identity index
//! (the sidecar mechanics and generation scheme of [`crate::collection::sidecar_index`]):
//!
//! - `key/<xx>.json`: source keys hashing to `xx` (`Shard::of_key`), each with its
//!   rows as `[start, stop)` ranges and its file's identity;
//! - `identity/<xx>.json`: identities hashing to `xx` (`Shard::of_identity`), each
//!   with the key holding it;
//! - `meta.json`: format, append dimension, identity, provenance variable, row count,
//!   generation, and the generation each shard was last written in (0: empty).
//!
//! A file loads the shards of its key and identity, then those of the key it takes
//! over and of the identity its key held: O(1) small files, and its rows come from its
//! key's ranges, not from a scan of the provenance column.
//!
//! **Rebuild.** As for profiles (no or another `meta.json`, another row count, a shard
//! missing or of another generation): the provenance column is scanned chunk by chunk
//! for every key's rows, and each key's identity is read from the store's identity
//! columns at its first row when every identity part is a variable. Identity parts
//! read from global attributes (`@name`) are not in the store's columns: after a
//! rebuild those keys have no identity until their file is ingested again.
//!
//! **Crash safety.** Shards and `meta.json` are staged after each successful event and
//! committed with the array metadata; the same order and argument as the profile index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zru_handlers::identity::{Identity, Shard};
use zru_handlers::ranges_from_indices;
use zru_handlers::series::{KeyEntry, SeriesError, SeriesIndex};

use super::options;
use crate::collection::rows::{identity_texts, zip_identities, Context};
use crate::collection::sidecar_index::{
    check_generation, index_error, open_meta, read_shard, stage, store_rows, IndexMeta, Sidecar,
};
use crate::store::Transaction;
use crate::update::UpdateError;

/// Where the index lives (`.zru/series/`) and its layout's version.
const SIDECAR: Sidecar = Sidecar {
    dir: "series",
    format: 1,
};

/// `key/<xx>.json`: key → rows as `[start, stop)` ranges and identity parts.
#[derive(Debug, Serialize, Deserialize)]
struct KeyShardFile {
    generation: u64,
    keys: BTreeMap<String, KeyFileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyFileEntry {
    rows: Vec<[u64; 2]>,
    identity: Option<Vec<String>>,
}

/// `identity/<xx>.json`: (identity parts, key).
#[derive(Debug, Serialize, Deserialize)]
struct IdentityShardFile {
    generation: u64,
    identities: Vec<(Vec<String>, String)>,
}

#[derive(Debug)]
struct Loaded {
    index: SeriesIndex,
    meta: IndexMeta,
}

/// The key index of one store during a batch.
#[derive(Debug, Default)]
pub struct IndexCache {
    loaded: Option<Loaded>,
}

pub(super) fn series_error(cx: &Context<'_>, tx: &Transaction<'_>, e: SeriesError) -> UpdateError {
    index_error(cx, tx, e.to_string())
}

impl IndexCache {
    /// Forgets the in-memory index (after a failed event).
    pub fn invalidate(&mut self) {
        self.loaded = None;
    }

    /// The index with every shard a file of this key and identity needs loaded.
    pub(super) fn prepare(
        &mut self,
        cx: &Context<'_>,
        tx: &Transaction<'_>,
        key: &str,
        identity: Option<&Identity>,
    ) -> Result<&mut SeriesIndex, UpdateError> {
        let mut loaded = match self.loaded.take() {
            Some(loaded) => loaded,
            None => open(cx, tx)?,
        };
        'rounds: loop {
            let missing = loaded.index.missing(key, identity);
            if missing.is_empty() {
                break;
            }
            for shard in missing {
                let expected = loaded.meta.written[shard.position()];
                if let Err(reason) = load_shard(cx, tx, &mut loaded.index, shard, expected)? {
                    let reason = format!("shard {shard}: {reason}");
                    loaded = rebuild(cx, tx, loaded.meta.generation, &reason)?;
                    continue 'rounds;
                }
            }
        }
        Ok(&mut self.loaded.insert(loaded).index)
    }

    /// Stages the shards changed since the last call, and `meta.json`.
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

fn open(cx: &Context<'_>, tx: &Transaction<'_>) -> Result<Loaded, UpdateError> {
    let rows = store_rows(cx, tx)?;
    let meta = open_meta(SIDECAR, cx, tx, options(cx.dataset).identity, rows)?;
    match meta {
        Ok(meta) => Ok(Loaded {
            index: SeriesIndex::with_len(rows),
            meta,
        }),
        Err((reason, generation)) => rebuild(cx, tx, generation, &reason),
    }
}

fn load_shard(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    index: &mut SeriesIndex,
    shard: Shard,
    expected: u64,
) -> Result<Result<(), String>, UpdateError> {
    let bytes = match read_shard(SIDECAR, cx, tx, shard, expected)? {
        Ok(bytes) => bytes,
        Err(reason) => return Ok(Err(reason)),
    };
    let filled = match shard {
        Shard::Key(n) => parse_key_shard(bytes.as_deref(), expected)
            .map(|entries| index.insert_key_shard(n, entries)),
        Shard::Identity(n) => parse_identity_shard(bytes.as_deref(), expected)
            .map(|entries| index.insert_identity_shard(n, entries)),
    };
    Ok(filled.and_then(|inserted| inserted.map_err(|e| e.to_string())))
}

fn parse_key_shard(bytes: Option<&[u8]>, expected: u64) -> Result<Vec<(String, KeyEntry)>, String> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    let file: KeyShardFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    check_generation(file.generation, expected)?;
    Ok(file
        .keys
        .into_iter()
        .map(|(key, entry)| {
            let rows = entry.rows.iter().flat_map(|&[a, b]| a..b).collect();
            let identity = entry.identity.map(|parts| Identity::new(&parts));
            (key, KeyEntry { rows, identity })
        })
        .collect())
}

fn parse_identity_shard(
    bytes: Option<&[u8]>,
    expected: u64,
) -> Result<Vec<(Identity, String)>, String> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    let file: IdentityShardFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    check_generation(file.generation, expected)?;
    Ok(file
        .identities
        .into_iter()
        .map(|(parts, key)| (Identity::new(&parts), key))
        .collect())
}

/// A shard's file (`None` if the shard is empty).
fn shard_bytes(
    index: &SeriesIndex,
    shard: Shard,
    generation: u64,
) -> Result<Option<Vec<u8>>, String> {
    let not_loaded = || format!("shard {shard} is not loaded");
    let json = match shard {
        Shard::Key(n) => {
            let entries = index.key_entries(n).ok_or_else(not_loaded)?;
            if entries.is_empty() {
                return Ok(None);
            }
            let keys = entries
                .into_iter()
                .map(|(key, entry)| {
                    let rows = ranges_from_indices(&entry.rows)
                        .into_iter()
                        .map(|r| [r.start, r.stop])
                        .collect();
                    let identity = entry.identity.map(|i| i.parts().to_vec());
                    (key, KeyFileEntry { rows, identity })
                })
                .collect();
            serde_json::to_vec(&KeyShardFile { generation, keys })
        }
        Shard::Identity(n) => {
            let entries = index.identity_entries(n).ok_or_else(not_loaded)?;
            if entries.is_empty() {
                return Ok(None);
            }
            let identities = entries
                .into_iter()
                .map(|(identity, key)| (identity.parts().to_vec(), key))
                .collect();
            serde_json::to_vec(&IdentityShardFile {
                generation,
                identities,
            })
        }
    };
    json.map(Some).map_err(|e| format!("shard {shard}: {e}"))
}

/// Builds the index from the store's provenance (and identity) columns.
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
            "rebuilding the series index from the store's {rows} rows: {reason}"
        );
    }
    let mut index = SeriesIndex::complete(rows);
    for (key, key_rows) in rows_by_key(cx, tx, rows)? {
        let identity = stored_identity(cx, tx, key_rows[0])?;
        let entry = KeyEntry {
            rows: key_rows,
            identity,
        };
        index
            .record(&key, entry)
            .map_err(|e| series_error(cx, tx, e))?;
    }
    Ok(Loaded {
        index,
        meta: IndexMeta::new(SIDECAR, cx, options(cx.dataset).identity, rows, generation),
    })
}

/// Every key's rows, from the provenance column read chunk by chunk.
fn rows_by_key(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    len: u64,
) -> Result<BTreeMap<String, Vec<u64>>, UpdateError> {
    let provenance = cx.dataset.provenance_variable();
    let mut keys: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let Some(doc) = tx.array_doc(provenance) else {
        return Ok(keys);
    };
    let chunk = doc
        .chunk_shape()
        .map_err(|e| cx.schema(provenance, e.to_string()))?[0]
        .max(1);
    let mut start = 0;
    while start < len {
        let count = chunk.min(len - start);
        let values = tx
            .read(provenance, &[start], &[count])
            .map_err(|e| cx.store_error(e))?;
        for (offset, key) in identity_texts(&values).into_iter().enumerate() {
            if !key.is_empty() {
                keys.entry(key).or_default().push(start + offset as u64);
            }
        }
        start += count;
    }
    Ok(keys)
}

/// The identity the store's columns hold at a row, if every identity part is a
/// variable the store has.
fn stored_identity(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    row: u64,
) -> Result<Option<Identity>, UpdateError> {
    let names = options(cx.dataset).identity;
    if names.is_empty()
        || names
            .iter()
            .any(|n| n.starts_with('@') || tx.array_doc(n).is_none())
    {
        return Ok(None);
    }
    let columns = names
        .iter()
        .map(|name| {
            tx.read(name, &[row], &[1])
                .map(|values| identity_texts(&values))
                .map_err(|e| cx.store_error(e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(zip_identities(&columns, 1).pop())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{json, Map};

    use super::*;
    use crate::config::{load_file, Dataset};
    use crate::store::{ArrayDoc, Compressor, NewArray, ZarrFormat, ZarrStore};
    use crate::values::{ElementType, Values};

    const EVERY_SHARD: usize = 2 * zru_handlers::identity::SHARDS as usize;

    fn dataset(dir: &Path) -> Dataset {
        let file = dir.join("soop.json");
        let config = json!({
            "name": "soop", "handler": "series", "key_patterns": ["^soop/"],
            "store": dir.join("soop.zarr"), "append_dim": "OBSERVATION",
            "series": {"identity": ["PLATFORM"]},
        });
        std::fs::write(&file, config.to_string()).unwrap();
        load_file(&file).unwrap()
    }

    fn key_of(row: u64) -> String {
        format!("soop/{}.nc", row / 10)
    }

    /// A store of `rows` rows, ten per key, written without an index.
    fn make_store(dataset: &Dataset, rows: u64) {
        let store = ZarrStore::open_or_new(&dataset.store_path, ZarrFormat::V3).unwrap();
        let mut tx = store.begin();
        for (name, text) in [
            ("zru_source_key", key_of as fn(u64) -> String),
            ("PLATFORM", |row| format!("P{}", row / 10)),
        ] {
            tx.put_array(ArrayDoc::create(
                ZarrFormat::V3,
                NewArray {
                    name: name.into(),
                    dims: vec!["OBSERVATION".into()],
                    shape: vec![rows],
                    chunks: vec![16],
                    element: ElementType::Text,
                    fill_value: None,
                    attributes: Map::new(),
                    compressor: Compressor::None,
                },
            ));
            let values = Values::Text((0..rows).map(text).collect());
            tx.write(name, &[0], &[rows], values).unwrap();
        }
        tx.commit().unwrap();
    }

    /// Prepares the index for a revision of `key` (identity `P<n>`), commits what the
    /// cache staged, and returns the shards loaded and the key's rows.
    fn prepare_and_commit(dataset: &Dataset, key: &str, identity: &str) -> (usize, Vec<u64>) {
        let store = ZarrStore::open(&dataset.store_path).unwrap();
        let tx = store.begin();
        let cx = Context { dataset, key };
        let mut cache = IndexCache::default();
        let identity = Identity::new(&[identity]);
        let index = cache.prepare(&cx, &tx, key, Some(&identity)).unwrap();
        let loaded = index.loaded_shards();
        let plan = index.plan(key, Some(&identity), 10).unwrap();
        index.apply(&plan).unwrap();
        cache.stage(&cx, &tx).unwrap();
        tx.commit().unwrap();
        (loaded, plan.rows.indices)
    }

    #[test]
    fn the_index_is_rebuilt_once_then_read_shard_by_shard() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = dataset(dir.path());
        make_store(&dataset, 1000);
        let (loaded, rows) = prepare_and_commit(&dataset, "soop/42.nc", "P42");
        assert_eq!(
            loaded, EVERY_SHARD,
            "no index: rebuilt from the provenance column"
        );
        assert_eq!(rows, (420..430).collect::<Vec<_>>());
        let (loaded, rows) = prepare_and_commit(&dataset, "soop/7.nc", "P7");
        assert!(loaded <= 4, "{loaded} shards loaded");
        assert_eq!(rows, (70..80).collect::<Vec<_>>());
        // The identity read back from the store's column finds the rows of another key.
        let (loaded, rows) = prepare_and_commit(&dataset, "soop/7-republished.nc", "P7");
        assert!(loaded <= 4, "{loaded} shards loaded");
        assert_eq!(rows, (70..80).collect::<Vec<_>>());
        // Another row count (another tool appended): rebuilt.
        let meta_file = dataset.store_path.join(".zru/series/meta.json");
        let mut meta: IndexMeta =
            serde_json::from_slice(&std::fs::read(&meta_file).unwrap()).unwrap();
        meta.rows += 1;
        std::fs::write(&meta_file, serde_json::to_vec(&meta).unwrap()).unwrap();
        let (loaded, _) = prepare_and_commit(&dataset, "soop/8.nc", "P8");
        assert_eq!(loaded, EVERY_SHARD);
    }
}
