//! Reading a netCDF-4 variable's chunks without netCDF-C: the chunk index through HDF5
//! (one thread, under the library lock), then reading and decoding the chunks on every
//! core (rayon), each written straight into its place in the region asked for.
//!
//! netCDF-C inflates on one thread under a global lock; here a region of many chunks
//! inflates in parallel. Anything unusual (a chunk not stored, a filter or type zru
//! does not decode, a chunk that does not decode) makes [`ChunkReader::read`] answer
//! `None` and the caller read the region through netCDF-C, so the values are always
//! netCDF-C's. `ZRU_DECODE=netcdf-c` turns this path off ([`Decode::from_env`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rayon::prelude::*;

use super::filters;
use super::hdf5_index::{ChunkIndex, ChunkLocation, Layout};
use crate::values::{ElementType, Values};

/// The environment variable that chooses how netCDF-4 chunks are decoded.
pub const DECODE_ENV: &str = "ZRU_DECODE";

/// How a source file's netCDF-4 chunks are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// As [`Decode::Parallel`], and a variable whose chunks and filters are its store
    /// array's chunks and codecs has its compressed chunks copied as they are (the
    /// default; see `passthrough`).
    Passthrough,
    /// zru reads the chunk index through HDF5 and decodes the chunks on every core
    /// (netCDF-C for what it does not handle); no chunk is copied compressed
    /// (`ZRU_DECODE=parallel`).
    Parallel,
    /// netCDF-C reads everything (`ZRU_DECODE=netcdf-c`).
    NetcdfC,
}

impl Decode {
    /// The choice of [`DECODE_ENV`]: `passthrough` (the default when unset),
    /// `parallel` or `netcdf-c`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(DECODE_ENV) {
            Err(_) => Ok(Self::Passthrough),
            Ok(value) => match value.as_str() {
                "" | "passthrough" => Ok(Self::Passthrough),
                "parallel" => Ok(Self::Parallel),
                "netcdf-c" => Ok(Self::NetcdfC),
                other => Err(format!(
                    "{DECODE_ENV}={other:?} is not a decode path; use `passthrough` (the \
                     default), `parallel` or `netcdf-c`"
                )),
            },
        }
    }
}

/// One variable's chunks, ready to read regions from.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    index: ChunkIndex,
    layout: Layout,
    element: ElementType,
    file: File,
}

/// A chunk of a region: its first element and where it is stored.
struct Stored {
    origin: Vec<u64>,
    location: ChunkLocation,
}

impl ChunkReader {
    /// A reader of variable `name` (`element` values of `shape`) of the file at `path`,
    /// or `None` if its chunks are not for zru to decode.
    pub(crate) fn open(
        path: &Path,
        name: &str,
        element: ElementType,
        shape: &[u64],
    ) -> Option<Self> {
        if element == ElementType::Text || !is_hdf5(path) {
            return None;
        }
        let (index, layout) = ChunkIndex::open(path, name, element, shape)?;
        let file = File::open(path).ok()?;
        Some(Self {
            index,
            layout,
            element,
            file,
        })
    }

    /// The values of the region `start..start + count` in C order, or `None` if
    /// netCDF-C must read it (a chunk of it is not stored or does not decode).
    pub(crate) fn read(&self, start: &[u64], count: &[u64]) -> Option<Values> {
        let rank = self.layout.shape.len();
        if start.len() != rank || count.len() != rank {
            return None;
        }
        let end: Vec<u64> = start.iter().zip(count).map(|(s, c)| s + c).collect();
        if count.contains(&0) || end.iter().zip(&self.layout.shape).any(|(e, len)| e > len) {
            return None;
        }
        let chunks = self.stored_chunks(start, &end)?;
        let region = Region { start, count };
        let total = count.iter().product::<u64>() as usize;
        Some(match self.element {
            ElementType::I8 => Values::I8(self.decode_into(&chunks, &region, total)?),
            ElementType::U8 => Values::U8(self.decode_into(&chunks, &region, total)?),
            ElementType::I16 => Values::I16(self.decode_into(&chunks, &region, total)?),
            ElementType::U16 => Values::U16(self.decode_into(&chunks, &region, total)?),
            ElementType::I32 => Values::I32(self.decode_into(&chunks, &region, total)?),
            ElementType::U32 => Values::U32(self.decode_into(&chunks, &region, total)?),
            ElementType::I64 => Values::I64(self.decode_into(&chunks, &region, total)?),
            ElementType::U64 => Values::U64(self.decode_into(&chunks, &region, total)?),
            ElementType::F32 => Values::F32(self.decode_into(&chunks, &region, total)?),
            ElementType::F64 => Values::F64(self.decode_into(&chunks, &region, total)?),
            ElementType::Text => return None,
        })
    }

    /// Every chunk the region `start..end` touches, located through HDF5 (serially);
    /// `None` if one is not stored.
    fn stored_chunks(&self, start: &[u64], end: &[u64]) -> Option<Vec<Stored>> {
        let chunk = &self.layout.chunk;
        let first: Vec<u64> = start.iter().zip(chunk).map(|(s, c)| s / c).collect();
        let last: Vec<u64> = end.iter().zip(chunk).map(|(e, c)| (e - 1) / c).collect();
        let mut grid = first.clone();
        let mut out = Vec::new();
        loop {
            let origin: Vec<u64> = grid.iter().zip(chunk).map(|(g, c)| g * c).collect();
            let location = self.index.locate(&origin)?;
            out.push(Stored { origin, location });
            if !next_index(&mut grid, &first, &last) {
                return Some(out);
            }
        }
    }

    /// Reads and decodes `chunks` in parallel into a new vector of the region's
    /// `total` values.
    fn decode_into<T: bytemuck::Pod + Send>(
        &self,
        chunks: &[Stored],
        region: &Region<'_>,
        total: usize,
    ) -> Option<Vec<T>> {
        let mut values = vec![T::zeroed(); total];
        let out = SharedOut::new(bytemuck::cast_slice_mut(&mut values));
        let width = self.element.size();
        let chunk_bytes = self.layout.chunk.iter().product::<u64>() as usize * width;
        chunks.par_iter().try_for_each(|stored| {
            let raw = self.read_raw(&stored.location)?;
            let plain =
                filters::decode(raw, &self.layout.filters, stored.location.mask, chunk_bytes)?;
            copy_intersection(
                &plain,
                &stored.origin,
                &self.layout.chunk,
                region,
                width,
                &out,
            );
            Some(())
        })?;
        Some(values)
    }

    /// How the variable's chunks are stored.
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The stored chunk whose first element is at `origin` (see [`ChunkIndex::locate`]).
    pub(crate) fn locate(&self, origin: &[u64]) -> Option<ChunkLocation> {
        self.index.locate(origin)
    }

    /// The stored bytes of a chunk, as the file holds them.
    pub(crate) fn read_raw(&self, location: &ChunkLocation) -> Option<Vec<u8>> {
        let mut raw = vec![0u8; usize::try_from(location.size).ok()?];
        self.file.read_exact_at(&mut raw, location.offset).ok()?;
        Some(raw)
    }
}

/// True if the file starts with the HDF5 signature (a netCDF-4 file without a user
/// block).
fn is_hdf5(path: &Path) -> bool {
    let mut head = [0u8; 8];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut head, 0))
        .is_ok()
        && &head == b"\x89HDF\r\n\x1a\n"
}

/// The region read: its first element and its extent along each axis.
struct Region<'a> {
    start: &'a [u64],
    count: &'a [u64],
}

/// Advances a C-order multi-index within `first..=last`; false when done.
pub(crate) fn next_index(index: &mut [u64], first: &[u64], last: &[u64]) -> bool {
    for axis in (0..index.len()).rev() {
        if index[axis] < last[axis] {
            index[axis] += 1;
            return true;
        }
        index[axis] = first[axis];
    }
    false
}

/// The output buffer of a region, written by several threads at once, each chunk to
/// its own elements.
struct SharedOut {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer outlives the parallel loop that writes it (`decode_into` owns it
// and waits for the loop) and threads write disjoint byte ranges (see `write`).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn new(bytes: &mut [u8]) -> Self {
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
        }
    }

    /// Copies `src` to `offset..offset + src.len()`. Callers write disjoint ranges:
    /// chunks do not overlap, so neither do their parts of a region.
    fn write(&self, offset: usize, src: &[u8]) {
        assert!(
            offset + src.len() <= self.len,
            "chunk part outside the region"
        );
        // SAFETY: in bounds (checked above); no other thread writes these bytes (each
        // element of the region belongs to one chunk) and nothing reads them until
        // the parallel loop has ended.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(offset), src.len()) };
    }
}

/// Copies the part of a decoded chunk (first element `origin`, shape `chunk`) that
/// lies in `region` to its place in `out`, one run along the last axis at a time.
fn copy_intersection(
    plain: &[u8],
    origin: &[u64],
    chunk: &[u64],
    region: &Region<'_>,
    width: usize,
    out: &SharedOut,
) {
    let rank = chunk.len();
    let lo: Vec<u64> = (0..rank).map(|a| origin[a].max(region.start[a])).collect();
    let hi: Vec<u64> = (0..rank)
        .map(|a| (origin[a] + chunk[a]).min(region.start[a] + region.count[a]))
        .collect();
    if (0..rank).any(|a| lo[a] >= hi[a]) {
        return;
    }
    let run = (hi[rank - 1] - lo[rank - 1]) as usize * width;
    let last: Vec<u64> = hi.iter().map(|h| h - 1).collect();
    let mut at = lo.clone();
    loop {
        let (mut src, mut dst) = (0u64, 0u64);
        for a in 0..rank {
            src = src * chunk[a] + (at[a] - origin[a]);
            dst = dst * region.count[a] + (at[a] - region.start[a]);
        }
        let src = src as usize * width;
        out.write(dst as usize * width, &plain[src..src + run]);
        // Next run: advance every axis but the last.
        if rank == 1 || !next_index(&mut at[..rank - 1], &lo[..rank - 1], &last[..rank - 1]) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_lands_where_it_overlaps_the_region() {
        // A 3 x 4 chunk at (2, 4) of u8 values 10 * row + col, into region (3.., 5..7).
        let plain: Vec<u8> = (0..3)
            .flat_map(|r| (0..4).map(move |c| 10 * r + c))
            .collect();
        let mut buf = vec![0u8; 2 * 3];
        let out = SharedOut::new(&mut buf);
        let region = Region {
            start: &[3, 5],
            count: &[2, 3],
        };
        copy_intersection(&plain, &[2, 4], &[3, 4], &region, 1, &out);
        // Region rows 3, 4; cols 5, 6, 7 = chunk rows 1, 2; cols 1, 2, 3.
        assert_eq!(buf, [11, 12, 13, 21, 22, 23]);
    }
}
