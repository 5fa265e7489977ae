//! Compressed-chunk passthrough, the source side: a netCDF-4 variable's stored chunks,
//! still compressed, for a store array whose chunks and codecs are the file's.
//!
//! An HDF5 chunk filtered by byte shuffle then deflate holds exactly the bytes a Zarr
//! chunk encoded by the `shuffle` filter then the `zlib` compressor holds (numcodecs'
//! byte shuffle is HDF5's, and HDF5's deflate filter writes a zlib stream). When the
//! chunk shapes are equal too, the stored chunk is copied as it is, with no inflate and
//! no deflate. [`ChunkReader::raw_chunks`] gives every chunk of a variable only if each
//! one is stored with its whole pipeline applied; anything else (a chunk not written,
//! Fletcher-32, another filter, another chunk shape) is `None` and the caller decodes
//! and encodes as usual.

use rayon::prelude::*;

use super::chunked::{next_index, ChunkReader};
use super::filters::Filter;
use super::SourceFile;
use crate::values::ElementType;

/// How a variable's chunks are stored, when they could be copied compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunks {
    /// The chunk shape.
    pub chunk: Vec<u64>,
    /// The codecs its filters are, in pipeline order.
    pub codecs: Vec<ChunkCodec>,
    /// The deflate level, if deflated.
    pub deflate_level: Option<u32>,
}

impl SourceFile {
    /// How variable `name`'s chunks are stored, or why they can never be copied
    /// compressed (whatever the store).
    pub fn stored_chunks(&self, name: &str) -> Result<StoredChunks, String> {
        let var = self
            .variable(name)
            .ok_or_else(|| format!("no variable {name}"))?;
        if var.element == ElementType::Text || var.shape.is_empty() {
            return Err("text or scalar".into());
        }
        let reader = ChunkReader::open(&self.path, name, var.element, &var.shape).ok_or(
            "not chunked netCDF-4 data zru reads itself (contiguous, big-endian, a filter \
             other than shuffle, deflate and Fletcher-32, or netCDF3)",
        )?;
        let layout = reader.layout();
        let codecs =
            codecs_of(&layout.filters).ok_or("Fletcher-32 checksums: no Zarr codec reads them")?;
        Ok(StoredChunks {
            chunk: layout.chunk.clone(),
            codecs,
            deflate_level: layout.deflate_level,
        })
    }
}

/// A bytes-to-bytes codec that an HDF5 filter is the same as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChunkCodec {
    /// Byte shuffle of elements of this many bytes (Zarr V2 filter `shuffle`, V3
    /// `numcodecs.shuffle`; HDF5 filter 2).
    Shuffle(usize),
    /// zlib-wrapped deflate (Zarr V2 compressor `zlib`, V3 `numcodecs.zlib`; HDF5
    /// filter 1).
    Zlib,
}

/// One stored chunk of a variable: its place in the chunk grid and its bytes as the
/// file stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChunk {
    /// The chunk's index along each axis of the variable's chunk grid.
    pub grid: Vec<u64>,
    /// Its encoded bytes.
    pub bytes: Vec<u8>,
}

/// The codecs an HDF5 filter pipeline is the same as, in pipeline order; `None` if a
/// filter has no Zarr counterpart that reads its bytes (Fletcher-32).
pub(crate) fn codecs_of(filters: &[Filter]) -> Option<Vec<ChunkCodec>> {
    filters
        .iter()
        .map(|filter| match *filter {
            Filter::Deflate => Some(ChunkCodec::Zlib),
            Filter::Shuffle(width) => Some(ChunkCodec::Shuffle(width)),
            Filter::Fletcher32 => None,
        })
        .collect()
}

impl ChunkReader {
    /// Every chunk of the variable, still encoded, if its chunk shape is `chunk`, its
    /// filters are `codecs` and every chunk is stored with all of them applied; else
    /// `None`. The chunk index is read serially (HDF5), the bytes in parallel.
    pub(crate) fn raw_chunks(&self, chunk: &[u64], codecs: &[ChunkCodec]) -> Option<Vec<RawChunk>> {
        let layout = self.layout();
        if layout.chunk != chunk || codecs_of(&layout.filters)? != codecs {
            return None;
        }
        if layout.shape.contains(&0) {
            return None;
        }
        let last: Vec<u64> = layout
            .shape
            .iter()
            .zip(chunk)
            .map(|(n, c)| n.div_ceil(*c) - 1)
            .collect();
        let first = vec![0u64; last.len()];
        let mut grid = first.clone();
        let mut located = Vec::new();
        loop {
            let origin: Vec<u64> = grid.iter().zip(chunk).map(|(g, c)| g * c).collect();
            let location = self.locate(&origin)?;
            if location.mask != 0 {
                return None;
            }
            located.push((grid.clone(), location));
            if !next_index(&mut grid, &first, &last) {
                break;
            }
        }
        located
            .into_par_iter()
            .map(|(grid, location)| {
                Some(RawChunk {
                    grid,
                    bytes: self.read_raw(&location)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fletcher32_has_no_zarr_counterpart() {
        assert_eq!(
            codecs_of(&[Filter::Shuffle(2), Filter::Deflate]),
            Some(vec![ChunkCodec::Shuffle(2), ChunkCodec::Zlib])
        );
        assert_eq!(codecs_of(&[]), Some(vec![]));
        assert_eq!(codecs_of(&[Filter::Deflate, Filter::Fletcher32]), None);
    }
}
