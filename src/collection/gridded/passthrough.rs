//! Compressed-chunk passthrough, the store side: when a variable's stored values need
//! no conversion (same type and packing, not time-like), its store array's codecs are
//! the file's filters (see [`crate::source::passthrough`]) and the file's chunks land
//! on whole store chunks, its compressed chunks are copied into the store as they are.
//!
//! [`Plan::new`] decides from the store array's metadata and the file's placement;
//! reading the chunks (`SourceFile::raw_chunks`) then checks the file's side (chunk
//! shape, filters, every chunk stored). Anything else is written as before.

use serde_json::Value;

use crate::source::{ChunkCodec, SourceVariable};
use crate::store::{ArrayDoc, ZarrFormat};
use crate::values::ElementType;

/// How a variable's file chunks map onto its store array's chunks.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    /// The chunk shape (the file's must be the same).
    pub chunk: Vec<u64>,
    /// The store array's codecs after `bytes`, in encoding order.
    pub codecs: Vec<ChunkCodec>,
    /// The append axis, if the variable has it.
    axis: Option<usize>,
    /// For each file chunk index along the append axis, the store chunk index.
    along: Vec<u64>,
}

impl Plan {
    /// The plan for `var` written into the store array `doc` (chunks `chunk`), its
    /// positions along the append axis `axis` going to `slots`; `None` if its chunks
    /// cannot be copied.
    pub fn new(
        var: &SourceVariable,
        doc: &ArrayDoc,
        chunk: &[u64],
        axis: Option<usize>,
        slots: &[u64],
    ) -> Option<Self> {
        let element = doc.element_type().ok()?;
        if element != var.element
            || element == ElementType::Text
            || var.shape.is_empty()
            || chunk.len() != var.shape.len()
            || !var.encoding.same_as(&doc.cf_encoding())
        {
            return None;
        }
        let codecs = store_codecs(doc, element.size())?;
        let along = match axis {
            Some(axis) => chunk_targets(var.shape[axis], chunk[axis], slots)?,
            None => Vec::new(),
        };
        Some(Self {
            chunk: chunk.to_vec(),
            codecs,
            axis,
            along,
        })
    }

    /// The store chunk index of the file chunk at grid index `grid`.
    pub fn store_chunk(&self, grid: &[u64]) -> Option<Vec<u64>> {
        let mut index = grid.to_vec();
        if let Some(axis) = self.axis {
            index[axis] = *self.along.get(usize::try_from(grid[axis]).ok()?)?;
        }
        Some(index)
    }
}

/// For each chunk (length `chunk`) of the `len` positions along the append axis, the
/// store chunk its positions fill wholly: positions `k * chunk..(k + 1) * chunk` must go
/// to consecutive slots starting on a chunk boundary. `None` otherwise, or if `len` is
/// not whole chunks (the last store chunk would be partly the file's).
fn chunk_targets(len: u64, chunk: u64, slots: &[u64]) -> Option<Vec<u64>> {
    if chunk == 0 || !len.is_multiple_of(chunk) || slots.len() as u64 != len {
        return None;
    }
    slots
        .chunks(usize::try_from(chunk).ok()?)
        .map(|run| {
            let first = run[0];
            let consecutive = run.iter().zip(first..).all(|(slot, want)| *slot == want);
            (consecutive && first.is_multiple_of(chunk)).then_some(first / chunk)
        })
        .collect()
}

/// The codecs after the array-to-bytes step of a store array, if they are all ones a
/// file's filters can be (little-endian values, C order, byte shuffle, zlib).
fn store_codecs(doc: &ArrayDoc, width: usize) -> Option<Vec<ChunkCodec>> {
    match doc.format {
        ZarrFormat::V2 => v2_codecs(doc, width),
        ZarrFormat::V3 => v3_codecs(doc),
    }
}

fn v2_codecs(doc: &ArrayDoc, width: usize) -> Option<Vec<ChunkCodec>> {
    let meta = &doc.meta;
    let dtype = meta.get("dtype").and_then(Value::as_str)?;
    let little = dtype.starts_with('<') || (width == 1 && dtype.starts_with('|'));
    if !little || meta.get("order").and_then(Value::as_str) != Some("C") {
        return None;
    }
    let mut codecs = match meta.get("filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(filters)) => filters
            .iter()
            .map(|f| codec(f.get("id")?.as_str()?, f))
            .collect::<Option<Vec<_>>>()?,
        Some(_) => return None,
    };
    match meta.get("compressor") {
        None | Some(Value::Null) => {}
        Some(compressor) => codecs.push(codec(compressor.get("id")?.as_str()?, compressor)?),
    }
    Some(codecs)
}

fn v3_codecs(doc: &ArrayDoc) -> Option<Vec<ChunkCodec>> {
    let meta = &doc.meta;
    let transformers = meta.get("storage_transformers").and_then(Value::as_array);
    if transformers.is_some_and(|t| !t.is_empty()) {
        return None;
    }
    let codecs = meta.get("codecs")?.as_array()?;
    let (first, rest) = codecs.split_first()?;
    let endian = first
        .get("configuration")
        .and_then(|c| c.get("endian"))
        .and_then(Value::as_str);
    if first.get("name").and_then(Value::as_str) != Some("bytes")
        || !matches!(endian, None | Some("little"))
    {
        return None;
    }
    rest.iter()
        .map(|c| {
            let name = c.get("name")?.as_str()?;
            let config = c.get("configuration").unwrap_or(&Value::Null);
            codec(name.strip_prefix("numcodecs.")?, config)
        })
        .collect()
}

/// A numcodecs codec by its id and configuration (`elementsize` of a shuffle).
fn codec(id: &str, config: &Value) -> Option<ChunkCodec> {
    match id {
        "zlib" => Some(ChunkCodec::Zlib),
        "shuffle" => {
            let size = config.get("elementsize")?.as_u64()?;
            Some(ChunkCodec::Shuffle(usize::try_from(size).ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Compressor, NewArray};
    use serde_json::json;

    fn doc(format: ZarrFormat, compressor: Compressor) -> ArrayDoc {
        ArrayDoc::create(
            format,
            NewArray {
                name: "sst".into(),
                dims: vec!["time".into(), "lat".into(), "lon".into()],
                shape: vec![4, 20, 30],
                chunks: vec![1, 10, 15],
                element: ElementType::I16,
                fill_value: Some(-32768.0),
                attributes: serde_json::Map::new(),
                compressor,
            },
        )
    }

    #[test]
    fn zlib_and_shuffle_are_the_only_codecs_a_file_can_match() {
        let zlib = Compressor::Zlib {
            level: 4,
            shuffle: true,
        };
        let want = Some(vec![ChunkCodec::Shuffle(2), ChunkCodec::Zlib]);
        for format in [ZarrFormat::V2, ZarrFormat::V3] {
            assert_eq!(
                store_codecs(&doc(format, zlib.clone()), 2),
                want,
                "{format:?}"
            );
            let plain = Compressor::Zlib {
                level: 4,
                shuffle: false,
            };
            assert_eq!(
                store_codecs(&doc(format, plain), 2),
                Some(vec![ChunkCodec::Zlib])
            );
            assert_eq!(
                store_codecs(&doc(format, Compressor::None), 2),
                Some(vec![])
            );
            for other in [Compressor::Zstd(3), Compressor::Blosc(5)] {
                assert_eq!(store_codecs(&doc(format, other), 2), None, "{format:?}");
            }
        }
        // `gzip` is zlib in V2 (numcodecs' zlib), a gzip stream in V3.
        let gzip = |format| store_codecs(&doc(format, Compressor::Gzip(5)), 2);
        assert_eq!(gzip(ZarrFormat::V2), Some(vec![ChunkCodec::Zlib]));
        assert_eq!(gzip(ZarrFormat::V3), None);
        // Big-endian values, a sharded array.
        let mut big = doc(ZarrFormat::V2, zlib.clone());
        big.meta.insert("dtype".into(), json!(">i2"));
        assert_eq!(store_codecs(&big, 2), None);
        let mut v3_big = doc(ZarrFormat::V3, zlib.clone());
        v3_big.meta["codecs"][0]["configuration"]["endian"] = json!("big");
        assert_eq!(store_codecs(&v3_big, 2), None);
        let mut sharded = doc(ZarrFormat::V3, zlib);
        sharded.meta["codecs"] = json!([{"name": "sharding_indexed", "configuration": {}}]);
        assert_eq!(store_codecs(&sharded, 2), None);
    }

    #[test]
    fn file_chunks_must_fill_whole_store_chunks_along_the_append_axis() {
        // One time per chunk: any slots.
        assert_eq!(chunk_targets(2, 1, &[7, 3]), Some(vec![7, 3]));
        // Two per chunk: pairs of consecutive slots starting on an even slot.
        assert_eq!(chunk_targets(4, 2, &[4, 5, 0, 1]), Some(vec![2, 0]));
        assert_eq!(chunk_targets(2, 2, &[5, 6]), None);
        assert_eq!(chunk_targets(2, 2, &[4, 6]), None);
        // Not whole chunks, or not one slot per position.
        assert_eq!(chunk_targets(3, 2, &[0, 1, 2]), None);
        assert_eq!(chunk_targets(2, 1, &[0]), None);
    }
}
