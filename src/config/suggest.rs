//! `zru config suggest FILE`: a gridded dataset config whose chunks and compressor are
//! a file's, so that its variables' compressed chunks are copied into the store as
//! they are (passthrough, see `collection::gridded::passthrough`).
//!
//! The config is dataset-wide (one chunk length per dimension, one compressor): the
//! layout shared by most of the data variables' values wins; the others are listed as
//! decoded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use thiserror::Error;

use crate::source::{ChunkCodec, SourceError, SourceFile, StoredChunks};

/// Why no config can be suggested.
#[derive(Debug, Error)]
pub enum SuggestError {
    /// The file cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The file has no such append dimension.
    #[error("{path}: no dimension {dim} to append along; name it with --append-dim")]
    NoAppendDim {
        /// The file.
        path: PathBuf,
        /// The dimension asked for.
        dim: String,
    },
    /// No variable along the append dimension has chunks a store could take as they are.
    #[error("{path}: no variable along {dim} can be copied compressed: {reasons}")]
    NothingPasses {
        /// The file.
        path: PathBuf,
        /// The append dimension.
        dim: String,
        /// Each variable and why.
        reasons: String,
    },
}

/// A suggested config and what it means for each variable.
#[derive(Debug, Clone)]
pub struct Suggestion {
    /// The dataset config (valid for `zru config check`).
    pub config: Value,
    /// Variables whose chunks will be copied compressed.
    pub passed: Vec<String>,
    /// Variables that will be decoded and encoded, with why.
    pub decoded: Vec<(String, String)>,
}

/// The layout the config describes: chunk length per dimension and codecs.
type Choice = (BTreeMap<String, u64>, Vec<ChunkCodec>);

/// Suggests a config for dataset `name` of files like `path`, appended along
/// `append_dim`, for a store of Zarr format `zarr_format` (2 or 3: both take the
/// file's chunks as they are).
pub fn suggest(
    path: &Path,
    name: &str,
    append_dim: &str,
    zarr_format: u8,
) -> Result<Suggestion, SuggestError> {
    let source = SourceFile::open(path)?;
    if source.dim_len(append_dim).is_none() {
        return Err(SuggestError::NoAppendDim {
            path: path.to_path_buf(),
            dim: append_dim.to_string(),
        });
    }
    let data: Vec<_> = source
        .variables()
        .iter()
        .filter(|v| v.name != append_dim && v.has_dim(append_dim))
        .collect();
    let mut layouts = Vec::new();
    let mut decoded = Vec::new();
    for var in &data {
        match source.stored_chunks(&var.name) {
            Ok(stored) if compressor(&stored.codecs, None).is_none() => decoded.push((
                var.name.clone(),
                "its filters are no compressor zru writes (shuffle without deflate)".into(),
            )),
            Ok(stored) => layouts.push((var.name.clone(), var.element_count(), var, stored)),
            Err(reason) => decoded.push((var.name.clone(), reason)),
        }
    }
    let mut weights: BTreeMap<Choice, (u64, Option<u32>)> = BTreeMap::new();
    for (_, count, var, stored) in &layouts {
        let entry = weights
            .entry(choice_of(&var.dims, stored))
            .or_insert((0, stored.deflate_level));
        entry.0 = entry.0.saturating_add(*count);
    }
    let best = weights.into_iter().max_by_key(|(_, (weight, _))| *weight);
    let Some(((chunks, codecs), (_, level))) = best else {
        return Err(SuggestError::NothingPasses {
            path: path.to_path_buf(),
            dim: append_dim.to_string(),
            reasons: describe(&decoded),
        });
    };
    let mut passed = Vec::new();
    for (var_name, _, var, stored) in layouts {
        let (own_chunks, own_codecs) = choice_of(&var.dims, &stored);
        if own_codecs != codecs {
            decoded.push((
                var_name,
                "other filters than the config's compressor".into(),
            ));
        } else if var.dims.iter().any(|d| own_chunks.get(d) != chunks.get(d)) {
            decoded.push((var_name, "other chunks than the config's".into()));
        } else {
            passed.push(var_name);
        }
    }
    let config = json!({
        "name": name,
        "handler": "gridded",
        "key_patterns": [format!("^{}/.*\\.nc$", regex::escape(name))],
        "store": format!("data/zarr/{name}.zarr"),
        "append_dim": append_dim,
        "chunks": chunks,
        "zarr_format": zarr_format,
        "compressor": compressor(&codecs, level),
    });
    Ok(Suggestion {
        config,
        passed,
        decoded,
    })
}

/// A variable's chunk length per dimension name, and its codecs with the shuffle's
/// element size dropped (each array shuffles its own elements).
fn choice_of(dims: &[String], stored: &StoredChunks) -> Choice {
    let chunks = dims
        .iter()
        .cloned()
        .zip(stored.chunk.iter().copied())
        .collect();
    let codecs = stored
        .codecs
        .iter()
        .map(|c| match c {
            ChunkCodec::Shuffle(_) => ChunkCodec::Shuffle(0),
            other => *other,
        })
        .collect();
    (chunks, codecs)
}

/// The `compressor` whose codecs a layout's are, if zru writes one.
fn compressor(codecs: &[ChunkCodec], level: Option<u32>) -> Option<Value> {
    let level = level.unwrap_or(5).min(9);
    match codecs {
        [] => Some(json!({"name": "none"})),
        [ChunkCodec::Zlib] => Some(json!({"name": "zlib", "level": level})),
        [ChunkCodec::Shuffle(_), ChunkCodec::Zlib] => {
            Some(json!({"name": "zlib", "level": level, "shuffle": true}))
        }
        _ => None,
    }
}

fn describe(decoded: &[(String, String)]) -> String {
    decoded
        .iter()
        .map(|(name, why)| format!("{name}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}
