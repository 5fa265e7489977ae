//! The mechanics shared by the sharded indexes a family keeps beside its store, under
//! `<store>/.zru/<dir>/` (the profile identity index, the series key index): files read
//! and staged through the batch's [`Transaction`] (so they commit with the arrays),
//! `meta.json` ([`IndexMeta`]: what the index describes, its generation and the
//! generation each shard file was written in), the generation check of a shard file,
//! and the store's row count an index must match.
//!
//! What a shard holds, and how an index is rebuilt from the store's columns, is the
//! family's.

use serde::{Deserialize, Serialize};
use zru_handlers::identity::{Shard, SHARDS};

use super::rows::{store_dim_lengths, Context};
use crate::store::Transaction;
use crate::update::UpdateError;

/// Where a family's index lives and which layout this zru writes.
#[derive(Debug, Clone, Copy)]
pub struct Sidecar {
    /// Directory of the index, relative to the store's `.zru/` sidecar directory.
    pub dir: &'static str,
    /// Version of the index's layout; another one is rebuilt.
    pub format: u32,
}

/// `meta.json`: what the index describes, and which shard files belong to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// Version of the index's layout ([`Sidecar::format`]).
    pub format: u32,
    /// The store's append dimension.
    pub append_dim: String,
    /// The identity the index was built with (its parts' names).
    pub identity: Vec<String>,
    /// The provenance variable.
    pub provenance: String,
    /// Rows of the store (blank ones included).
    pub rows: u64,
    /// Number of identity (and of key) shards.
    pub shards: u16,
    /// Incremented every time the index is staged.
    pub generation: u64,
    /// Per shard (in [`Shard::all`] order): the generation its file was written in, or
    /// 0 if it is empty.
    pub written: Vec<u64>,
}

impl IndexMeta {
    /// The meta of a new index of `rows` rows, no shard written.
    pub fn new(
        sidecar: Sidecar,
        cx: &Context<'_>,
        identity: Vec<String>,
        rows: u64,
        generation: u64,
    ) -> Self {
        Self {
            format: sidecar.format,
            append_dim: cx.append_dim().to_string(),
            identity,
            provenance: cx.dataset.provenance_variable().to_string(),
            rows,
            shards: SHARDS,
            generation,
            written: vec![0; Shard::all().count()],
        }
    }

    /// Why the index does not describe this store as the dataset reads it (with this
    /// identity), if it does not.
    pub fn mismatch(
        &self,
        sidecar: Sidecar,
        cx: &Context<'_>,
        identity: Vec<String>,
        rows: u64,
    ) -> Option<String> {
        let expected = Self::new(sidecar, cx, identity, rows, self.generation);
        if self.format != sidecar.format {
            Some(format!(
                "index format {} (this zru writes {})",
                self.format, sidecar.format
            ))
        } else if (&self.append_dim, &self.identity, &self.provenance)
            != (
                &expected.append_dim,
                &expected.identity,
                &expected.provenance,
            )
        {
            Some("index of other append, identity or provenance variables".into())
        } else if self.shards != SHARDS || self.written.len() != expected.written.len() {
            Some(format!("index of {} shards", self.shards))
        } else if self.rows != rows {
            Some(format!("index of {} rows, store of {rows}", self.rows))
        } else {
            None
        }
    }
}

/// An index error of the event's key in the transaction's store.
pub fn index_error(cx: &Context<'_>, tx: &Transaction<'_>, reason: String) -> UpdateError {
    UpdateError::Index {
        key: cx.key.to_string(),
        store: tx.location().to_path_buf(),
        reason,
    }
}

/// Reads `path` of the index (as staged in `tx`, else as stored).
pub fn read(
    sidecar: Sidecar,
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    path: &str,
) -> Result<Option<Vec<u8>>, UpdateError> {
    tx.read_sidecar(&format!("{}/{path}", sidecar.dir))
        .map(|bytes| bytes.map(|b| b.to_vec()))
        .map_err(|e| cx.store_error(e))
}

/// Stages `path` of the index in `tx`.
pub fn write(
    sidecar: Sidecar,
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    path: &str,
    bytes: Vec<u8>,
) -> Result<(), UpdateError> {
    tx.write_sidecar(&format!("{}/{path}", sidecar.dir), bytes)
        .map_err(|e| cx.store_error(e))
}

/// Rows of the store: the provenance array's length, else the append dimension's.
pub fn store_rows(cx: &Context<'_>, tx: &Transaction<'_>) -> Result<u64, UpdateError> {
    let provenance = cx.dataset.provenance_variable();
    match tx.array_doc(provenance) {
        Some(doc) => doc
            .shape()
            .map(|shape| shape.first().copied().unwrap_or(0))
            .map_err(|e| cx.schema(provenance, e.to_string())),
        None => Ok(store_dim_lengths(tx.arrays())
            .get(cx.append_dim())
            .copied()
            .unwrap_or(0)),
    }
}

/// Reads `meta.json` of an index of the store's `rows` rows with this identity:
/// `Err((reason, generation))` if there is none or it does not match (the index is to
/// be rebuilt, its generations continuing from `generation`).
pub fn open_meta(
    sidecar: Sidecar,
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    identity: Vec<String>,
    rows: u64,
) -> Result<Result<IndexMeta, (String, u64)>, UpdateError> {
    let meta = match read(sidecar, cx, tx, "meta.json")? {
        None => Err(("no index".to_string(), 0)),
        Some(bytes) => serde_json::from_slice::<IndexMeta>(&bytes)
            .map_err(|e| (format!("meta.json unreadable: {e}"), 0)),
    };
    Ok(
        meta.and_then(|meta| match meta.mismatch(sidecar, cx, identity, rows) {
            Some(reason) => Err((reason, meta.generation)),
            None => Ok(meta),
        }),
    )
}

/// A shard's file, `expected` being the generation `meta.json` records for it:
/// `Ok(Ok(None))` if it is empty (0: never written), `Ok(Err(reason))` if it is missing.
pub fn read_shard(
    sidecar: Sidecar,
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    shard: Shard,
    expected: u64,
) -> Result<Result<Option<Vec<u8>>, String>, UpdateError> {
    if expected == 0 {
        return Ok(Ok(None));
    }
    Ok(
        read(sidecar, cx, tx, &shard.path())?
            .map_or_else(|| Err("missing".into()), |b| Ok(Some(b))),
    )
}

/// Stages the `dirty` shards (`bytes` of a shard at a generation, `None` if it is
/// empty) and `meta.json`, in a new generation of an index of `rows` rows.
pub fn stage(
    sidecar: Sidecar,
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    meta: &mut IndexMeta,
    rows: u64,
    dirty: Vec<Shard>,
    bytes: impl Fn(Shard, u64) -> Result<Option<Vec<u8>>, String>,
) -> Result<(), UpdateError> {
    if dirty.is_empty() {
        return Ok(());
    }
    meta.generation += 1;
    meta.rows = rows;
    let generation = meta.generation;
    for shard in dirty {
        let bytes = bytes(shard, generation).map_err(|reason| index_error(cx, tx, reason))?;
        meta.written[shard.position()] = match bytes {
            Some(bytes) => {
                write(sidecar, cx, tx, &shard.path(), bytes)?;
                generation
            }
            None => 0,
        };
    }
    let json =
        serde_json::to_vec(&meta).map_err(|e| index_error(cx, tx, format!("meta.json: {e}")))?;
    write(sidecar, cx, tx, "meta.json", json)
}

/// Rejects a shard file written in another generation than `meta.json` records.
pub fn check_generation(found: u64, expected: u64) -> Result<(), String> {
    if found == expected {
        Ok(())
    } else {
        Err(format!(
            "written in generation {found}, meta.json records {expected}"
        ))
    }
}
