//! Which variables' chunks are copied compressed, and that the bytes copied are the
//! file's values: shuffle + deflate and unfiltered chunks are; Fletcher-32, big-endian,
//! half-written variables, another chunk shape or other codecs are not.

use std::path::Path;

use super::decode_tests::raw;
use super::filters::{self, Filter};
use super::passthrough::ChunkCodec;
use super::{Decode, SourceFile};
use crate::values::Values;

const CHUNK: [u64; 3] = [1, 10, 16];

/// A file of 3 x 37 x 53 variables chunked 1 x 10 x 16 (partial edge chunks).
fn write_file(path: &Path) -> Vec<u8> {
    use netcdf_sys as nc;
    let n = 3 * 37 * 53;
    let floats: Vec<u8> = (0..n)
        .flat_map(|i| ((i as f32) * 0.37).sin().to_le_bytes())
        .collect();
    let var = |name, shuffle, fletcher32, big_endian| raw::Var {
        name,
        nc_type: nc::NC_FLOAT,
        dims: &[0, 1, 2],
        chunks: Some(&[1, 10, 16]),
        deflate: if name == "plain" { 0 } else { 3 },
        shuffle,
        fletcher32,
        big_endian,
        fill: None,
    };
    let all = vec![3, 37, 53];
    let vars = vec![
        (var("sst", true, false, false), all.clone(), floats.clone()),
        (
            var("plain", false, false, false),
            all.clone(),
            floats.clone(),
        ),
        (
            var("checked", true, true, false),
            all.clone(),
            floats.clone(),
        ),
        (var("big", true, false, true), all.clone(), floats.clone()),
        // Only the first 20 rows: the other chunks are never stored.
        (
            var("partial", true, false, false),
            vec![3, 20, 53],
            floats[..3 * 20 * 53 * 4].to_vec(),
        ),
    ];
    raw::write(path, &[("time", 0), ("lat", 37), ("lon", 53)], &vars);
    floats
}

fn f32_bytes(values: Values) -> Vec<u8> {
    match values {
        Values::F32(v) => bytemuck::cast_slice(&v).to_vec(),
        other => panic!("not f32: {other:?}"),
    }
}

#[test]
fn shuffled_deflated_chunks_are_copied_and_decode_to_the_files_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pass.nc");
    write_file(&path);
    let source = SourceFile::open(&path).unwrap();
    let sst = [ChunkCodec::Shuffle(4), ChunkCodec::Zlib];
    let chunks = source.raw_chunks("sst", &CHUNK, &sst).unwrap();
    // 3 x 4 x 4 chunks, in C order of the chunk grid.
    assert_eq!(chunks.len(), 48);
    assert_eq!(chunks[5].grid, [0, 1, 1]);
    let chunk_bytes = 10 * 16 * 4;
    for chunk in chunks.iter().filter(|c| c.grid[1] < 3 && c.grid[2] < 3) {
        let plain = filters::decode(
            chunk.bytes.clone(),
            &[Filter::Shuffle(4), Filter::Deflate],
            0,
            chunk_bytes,
        )
        .unwrap();
        let start: Vec<usize> = chunk
            .grid
            .iter()
            .zip(CHUNK)
            .map(|(g, c)| (g * c) as usize)
            .collect();
        let region = vec![
            start[0]..start[0] + 1,
            start[1]..start[1] + 10,
            start[2]..start[2] + 16,
        ];
        let expected = f32_bytes(source.read_extents("sst", region.into()).unwrap());
        assert_eq!(plain, expected, "chunk {:?}", chunk.grid);
    }
    // Unfiltered chunks are the values themselves.
    let plain = source.raw_chunks("plain", &CHUNK, &[]).unwrap();
    assert_eq!(plain.len(), 48);
    assert_eq!(plain[0].bytes.len(), chunk_bytes);
}

#[test]
fn anything_but_the_same_chunks_and_codecs_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fallback.nc");
    write_file(&path);
    let mut source = SourceFile::open(&path).unwrap();
    let sst = [ChunkCodec::Shuffle(4), ChunkCodec::Zlib];
    // Another chunk shape or other codecs.
    assert!(source.raw_chunks("sst", &[1, 10, 32], &sst).is_none());
    assert!(source
        .raw_chunks("sst", &CHUNK, &[ChunkCodec::Zlib])
        .is_none());
    assert!(source
        .raw_chunks("sst", &CHUNK, &[ChunkCodec::Shuffle(2), ChunkCodec::Zlib])
        .is_none());
    assert!(source.raw_chunks("plain", &CHUNK, &sst).is_none());
    // Fletcher-32 (no Zarr codec reads it), big-endian values, unstored chunks.
    for name in ["checked", "big", "partial"] {
        assert!(source.raw_chunks(name, &CHUNK, &sst).is_none(), "{name}");
    }
    // ZRU_DECODE=parallel or netcdf-c: never.
    for decode in [Decode::Parallel, Decode::NetcdfC] {
        source.set_decode(decode);
        assert!(
            source.raw_chunks("sst", &CHUNK, &sst).is_none(),
            "{decode:?}"
        );
    }
}
