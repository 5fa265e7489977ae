//! The parallel chunk decode gives netCDF-C's values, bit for bit: on every real
//! netCDF-4 file under tests/data and on generated files with shuffle, Fletcher-32,
//! partial edge chunks, unwritten chunks (fill), an unlimited dimension, big-endian
//! and unfiltered variables.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use super::chunked::ChunkReader;
use super::{Decode, SourceFile};
use crate::values::{ElementType, Values};

/// The bytes of numeric values (floats compared bit for bit, NaN included).
fn raw_bytes(values: &Values) -> Vec<u8> {
    match values {
        Values::I8(v) => bytemuck::cast_slice(v).to_vec(),
        Values::U8(v) => v.clone(),
        Values::I16(v) => bytemuck::cast_slice(v).to_vec(),
        Values::U16(v) => bytemuck::cast_slice(v).to_vec(),
        Values::I32(v) => bytemuck::cast_slice(v).to_vec(),
        Values::U32(v) => bytemuck::cast_slice(v).to_vec(),
        Values::I64(v) => bytemuck::cast_slice(v).to_vec(),
        Values::U64(v) => bytemuck::cast_slice(v).to_vec(),
        Values::F32(v) => bytemuck::cast_slice(v).to_vec(),
        Values::F64(v) => bytemuck::cast_slice(v).to_vec(),
        Values::Text(v) => v.join("\u{0}").into_bytes(),
    }
}

/// Reads every variable of `path` whole and in bands through both paths and checks
/// they agree; returns the names of the variables whose chunks zru decoded itself.
fn compare_paths(path: &Path) -> Vec<String> {
    let mut c_side = SourceFile::open(path).unwrap();
    c_side.set_decode(Decode::NetcdfC);
    let mut ours = SourceFile::open(path).unwrap();
    ours.set_decode(Decode::Parallel);
    let mut decoded = Vec::new();
    for var in ours.variables().to_vec() {
        let expected = c_side.read(&var.name).unwrap();
        let actual = ours.read(&var.name).unwrap();
        assert_eq!(
            raw_bytes(&actual),
            raw_bytes(&expected),
            "{}: {}",
            path.display(),
            var.name
        );
        let reader = ChunkReader::open(path, &var.name, var.element, &var.shape);
        let start = vec![0; var.shape.len()];
        if reader.and_then(|r| r.read(&start, &var.shape)).is_some() {
            decoded.push(var.name.clone());
        }
        // Bands of store chunks a third of the variable along each axis (BandPlan
        // is not for empty variables: the gridded handler never bands them).
        if var.element_count() == 0 {
            continue;
        }
        let store: Vec<u64> = var.shape.iter().map(|&n| n.div_ceil(3).max(1)).collect();
        let bands = |source: &SourceFile| {
            let mut out = Vec::new();
            source
                .read_bands(&var.name, &store, |band| {
                    out.push((band.start, band.rows, raw_bytes(&band.values)));
                    true
                })
                .unwrap();
            out
        };
        assert_eq!(
            bands(&ours),
            bands(&c_side),
            "{}: {} bands",
            path.display(),
            var.name
        );
    }
    decoded
}

fn data_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            data_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("nc" | "nc4")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn every_real_file_reads_the_same_through_both_paths() {
    let mut files = Vec::new();
    data_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        &mut files,
    );
    files.sort();
    let mut netcdf4 = 0;
    for path in &files {
        // zru rejects files with groups (the same error on both paths).
        if SourceFile::open(path).is_err() {
            continue;
        }
        let decoded = compare_paths(path);
        let is_hdf5 = std::fs::read(path).unwrap().starts_with(b"\x89HDF");
        assert!(
            is_hdf5 || decoded.is_empty(),
            "{}: {decoded:?}",
            path.display()
        );
        netcdf4 += usize::from(is_hdf5);
        // Each netCDF-4 file has a compressed data variable zru decodes itself.
        assert!(!is_hdf5 || !decoded.is_empty(), "{}", path.display());
    }
    assert!(netcdf4 >= 8, "{netcdf4} netCDF-4 files under tests/data");
}

/// netCDF-C calls for what the netcdf crate does not set (Fletcher-32).
pub(crate) mod raw {
    use super::*;
    use netcdf_sys as nc;

    fn check(status: i32, what: &str) {
        assert_eq!(status, 0, "{what}: netCDF status {status}");
    }

    /// One variable: type, dims, chunks (`None`: contiguous), deflate level, shuffle,
    /// Fletcher-32, big-endian, fill value (bytes of the type).
    pub struct Var<'a> {
        pub name: &'a str,
        pub nc_type: i32,
        pub dims: &'a [usize],
        pub chunks: Option<&'a [usize]>,
        pub deflate: i32,
        pub shuffle: bool,
        pub fletcher32: bool,
        pub big_endian: bool,
        pub fill: Option<Vec<u8>>,
    }

    /// Writes a netCDF-4 file with dims `dims` (length 0: unlimited) and `vars`, each
    /// given its values for the region `0..count` as bytes.
    pub fn write(path: &Path, dims: &[(&str, usize)], vars: &[(Var<'_>, Vec<usize>, Vec<u8>)]) {
        let c_path = CString::new(path.to_str().unwrap()).unwrap();
        let _guard = nc::libnetcdf_lock.lock();
        // SAFETY: netCDF-C calls on the file created here, with NUL-terminated names
        // and buffers sized by the variables' types and the regions written.
        unsafe {
            let mut ncid = 0;
            check(
                nc::nc_create(c_path.as_ptr(), nc::NC_NETCDF4, &mut ncid),
                "create",
            );
            let mut dim_ids = Vec::new();
            for (name, len) in dims {
                let name = CString::new(*name).unwrap();
                let mut id = 0;
                check(
                    nc::nc_def_dim(ncid, name.as_ptr(), *len, &mut id),
                    "def_dim",
                );
                dim_ids.push(id);
            }
            let mut var_ids = Vec::new();
            for (var, _, _) in vars {
                let name = CString::new(var.name).unwrap();
                let ids: Vec<i32> = var.dims.iter().map(|&d| dim_ids[d]).collect();
                let mut id = 0;
                check(
                    nc::nc_def_var(
                        ncid,
                        name.as_ptr(),
                        var.nc_type,
                        ids.len() as i32,
                        ids.as_ptr(),
                        &mut id,
                    ),
                    "def_var",
                );
                match var.chunks {
                    Some(c) => check(
                        nc::nc_def_var_chunking(ncid, id, nc::NC_CHUNKED, c.as_ptr()),
                        "chunking",
                    ),
                    None => check(
                        nc::nc_def_var_chunking(ncid, id, nc::NC_CONTIGUOUS, std::ptr::null()),
                        "contiguous",
                    ),
                }
                if var.deflate > 0 || var.shuffle {
                    let on = i32::from(var.deflate > 0);
                    check(
                        nc::nc_def_var_deflate(ncid, id, i32::from(var.shuffle), on, var.deflate),
                        "deflate",
                    );
                }
                if var.fletcher32 {
                    check(nc::nc_def_var_fletcher32(ncid, id, 1), "fletcher32");
                }
                if var.big_endian {
                    check(nc::nc_def_var_endian(ncid, id, nc::NC_ENDIAN_BIG), "endian");
                }
                if let Some(fill) = &var.fill {
                    check(
                        nc::nc_def_var_fill(ncid, id, 0, fill.as_ptr().cast()),
                        "fill",
                    );
                }
                var_ids.push(id);
            }
            check(nc::nc_enddef(ncid), "enddef");
            for ((var, count, bytes), id) in vars.iter().zip(&var_ids) {
                let start = vec![0usize; var.dims.len()];
                check(
                    nc::nc_put_vara(
                        ncid,
                        *id,
                        start.as_ptr(),
                        count.as_ptr(),
                        bytes.as_ptr().cast(),
                    ),
                    "put_vara",
                );
            }
            check(nc::nc_close(ncid), "close");
        }
    }
}

#[test]
fn generated_filters_edges_fill_and_unlimited_dims_read_the_same() {
    use netcdf_sys as nc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filters.nc");
    // time unlimited (3 records), lat 37, lon 53: chunks 1 x 10 x 16 leave partial edges.
    let dims = [("time", 0), ("lat", 37), ("lon", 53)];
    let n = 3 * 37 * 53;
    let floats: Vec<u8> = (0..n)
        .flat_map(|i| {
            let x = if i % 97 == 0 {
                f32::NAN
            } else {
                (i as f32).sin() * 300.0
            };
            x.to_le_bytes()
        })
        .collect();
    let doubles: Vec<u8> = (0..n)
        .flat_map(|i| (i as f64 / 7.0).to_le_bytes())
        .collect();
    let shorts: Vec<u8> = (0..n)
        .flat_map(|i| ((i % 5000) as i16 - 2500).to_le_bytes())
        .collect();
    let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let longs: Vec<u8> = (0..n)
        .flat_map(|i| (i as i64 * 1_000_003).to_le_bytes())
        .collect();
    let var = |name, nc_type, chunks, deflate, shuffle, fletcher32| raw::Var {
        name,
        nc_type,
        dims: &[0, 1, 2],
        chunks,
        deflate,
        shuffle,
        fletcher32,
        big_endian: false,
        fill: None,
    };
    let chunks: Option<&[usize]> = Some(&[1, 10, 16]);
    let all = vec![3, 37, 53];
    // Only the first 20 rows of each record: the chunks of the other rows are never
    // written and read as the fill value.
    let partial = vec![3, 20, 53];
    let vars = vec![
        (
            var("sst", nc::NC_FLOAT, chunks, 4, true, true),
            all.clone(),
            floats.clone(),
        ),
        (
            var("flags", nc::NC_UBYTE, chunks, 1, true, false),
            all.clone(),
            bytes,
        ),
        (
            var("counts", nc::NC_INT64, chunks, 0, true, true),
            all.clone(),
            longs,
        ),
        (
            var("checked", nc::NC_DOUBLE, chunks, 0, false, true),
            all.clone(),
            doubles.clone(),
        ),
        (
            var("plain", nc::NC_DOUBLE, chunks, 0, false, false),
            all.clone(),
            doubles,
        ),
        (
            raw::Var {
                dims: &[1, 2],
                ..var("contiguous", nc::NC_FLOAT, None, 0, false, false)
            },
            vec![37, 53],
            floats[..37 * 53 * 4].to_vec(),
        ),
        (
            raw::Var {
                big_endian: true,
                ..var("big", nc::NC_FLOAT, chunks, 2, true, false)
            },
            all.clone(),
            floats,
        ),
        (
            raw::Var {
                fill: Some((-32767i16).to_le_bytes().to_vec()),
                ..var("partial", nc::NC_SHORT, chunks, 5, true, false)
            },
            partial.clone(),
            shorts[..3 * 20 * 53 * 2].to_vec(),
        ),
    ];
    raw::write(&path, &dims, &vars);
    let decoded = compare_paths(&path);
    // Big-endian and contiguous data and the half-written variable go through
    // netCDF-C; every other variable is decoded by zru.
    assert_eq!(decoded, ["sst", "flags", "counts", "checked", "plain"]);
    // The written part of the half-written variable decodes in parallel.
    let source = SourceFile::open(&path).unwrap();
    let var = source.variable("partial").unwrap();
    let reader = ChunkReader::open(&path, "partial", ElementType::I16, &var.shape).unwrap();
    let values = reader.read(&[0, 0, 0], &[3, 20, 53]).unwrap();
    assert_eq!(raw_bytes(&values), shorts[..3 * 20 * 53 * 2]);
    assert!(
        reader.read(&[0, 0, 0], &[3, 21, 53]).is_none(),
        "row 20 is not stored"
    );
}

#[test]
fn a_damaged_chunk_is_left_to_netcdf_c_which_reports_it() {
    use netcdf_sys as nc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.nc");
    let n = 40 * 40;
    let values: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let var = raw::Var {
        name: "v",
        nc_type: nc::NC_FLOAT,
        dims: &[0, 1],
        chunks: Some(&[20, 20]),
        deflate: 0,
        shuffle: false,
        fletcher32: true,
        big_endian: false,
        fill: None,
    };
    raw::write(
        &path,
        &[("y", 40), ("x", 40)],
        &[(var, vec![40, 40], values)],
    );
    // Flip a byte of the stored values (unfiltered but checksummed: the float 1.0's
    // bytes appear once, in the first chunk).
    let mut bytes = std::fs::read(&path).unwrap();
    let one = 1.0f32.to_le_bytes();
    let at = bytes.windows(4).position(|w| w == one).unwrap();
    bytes[at + 3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let reader = ChunkReader::open(&path, "v", ElementType::F32, &[40, 40]).unwrap();
    assert!(reader.read(&[0, 0], &[40, 40]).is_none());
    assert!(
        reader.read(&[20, 20], &[20, 20]).is_some(),
        "other chunks decode"
    );
    let err = SourceFile::open(&path)
        .unwrap()
        .read("v")
        .unwrap_err()
        .to_string();
    assert!(err.contains("variable v: cannot read values"), "{err}");
}
