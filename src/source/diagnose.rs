//! Saying what is wrong with a file netCDF-C cannot open or read.
//!
//! netCDF-C reports a damaged netCDF-4 file as `NetCDF: HDF error`, which tells a user
//! nothing. When an open fails, [`diagnose_open`] looks at the file's bytes: empty, not a
//! netCDF or HDF5 file at all (its first bytes), or an HDF5 file whose superblock
//! records an end of file beyond the file's size (a truncated copy or partial upload).
//! When a read fails, [`read_hint`] names the variable's HDF5 filters and whether this
//! build of netCDF-C can decode them.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// What the file's bytes say about why it cannot be opened, in a short sentence.
pub fn diagnose_open(path: &Path) -> String {
    match std::fs::File::open(path) {
        Ok(mut file) => diagnose_bytes(&mut file),
        Err(e) => format!("cannot read the file ({e})"),
    }
}

/// As [`diagnose_open`], on any seekable reader.
pub fn diagnose_bytes(file: &mut (impl Read + Seek)) -> String {
    let size = match file.seek(SeekFrom::End(0)) {
        Ok(size) => size,
        Err(e) => return format!("cannot read the file ({e})"),
    };
    if size == 0 {
        return "the file is empty (0 bytes)".into();
    }
    let mut head = [0u8; 8];
    let head_len = read_at(file, 0, &mut head).unwrap_or(0);
    if head_len >= 4 && &head[..3] == b"CDF" {
        return match head[3] {
            1 | 2 | 5 => "a netCDF classic file whose header netCDF-C cannot read (damaged)".into(),
            v => format!("starts like a netCDF classic file but has unknown version byte {v}"),
        };
    }
    // The HDF5 superblock is at offset 0, 512, 1024, 2048, ... (after a user block).
    let mut offset = 0u64;
    while offset + 8 <= size {
        let mut signature = [0u8; 8];
        if read_at(file, offset, &mut signature).ok() == Some(8) && &signature == HDF5_SIGNATURE {
            return diagnose_hdf5(file, offset, size);
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    format!(
        "not a netCDF or HDF5 file: it starts with {} ({size} bytes)",
        describe_head(&head[..head_len])
    )
}

/// An HDF5 file with its superblock at `at`: truncated, or something netCDF-C rejects.
fn diagnose_hdf5(file: &mut (impl Read + Seek), at: u64, size: u64) -> String {
    match hdf5_end_of_file(file, at) {
        Ok(Some(end)) if end > size => format!(
            "truncated: the HDF5 superblock says the file ends at byte {end} but it has {size} \
             bytes (a partial copy or upload?)"
        ),
        Ok(Some(_)) => "an HDF5 file of full length that netCDF-C cannot open (not netCDF-4, \
                        or damaged inside)"
            .into(),
        Ok(None) => "an HDF5 file with a superblock version zru does not know".into(),
        Err(reason) => format!("an HDF5 file with a damaged superblock ({reason})"),
    }
}

/// The end-of-file address the superblock records (base address included), if its
/// version is one zru knows (0, 1, 2, 3).
fn hdf5_end_of_file(file: &mut (impl Read + Seek), at: u64) -> Result<Option<u64>, String> {
    let mut block = [0u8; 96];
    let n = read_at(file, at, &mut block).map_err(|e| e.to_string())?;
    let block = &block[..n];
    let byte = |i: usize| {
        block
            .get(i)
            .copied()
            .ok_or_else(|| "superblock cut short".to_string())
    };
    let version = byte(8)?;
    // Where the addresses start and how wide they are.
    let (sizes_at, addresses_at) = match version {
        0 => (13, 24),
        1 => (13, 28),
        2 | 3 => (9, 12),
        _ => return Ok(None),
    };
    let width = usize::from(byte(sizes_at)?);
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("size of offsets is {width}"));
    }
    let address = |index: usize| -> Result<u64, String> {
        let start = addresses_at + index * width;
        let bytes = block
            .get(start..start + width)
            .ok_or_else(|| "superblock cut short".to_string())?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    // v0/v1: base, free-space info, end of file, driver info. v2/v3: base, superblock
    // extension, end of file, root group.
    let base = address(0)?;
    let end = address(2)?;
    Ok(Some(base.saturating_add(end)))
}

fn read_at(file: &mut (impl Read + Seek), offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The first bytes, as text when printable (`"<html>"`), else hex; gzip is named.
fn describe_head(head: &[u8]) -> String {
    if head.starts_with(&[0x1f, 0x8b]) {
        return "the gzip signature (a compressed file: decompress it first)".into();
    }
    if !head.is_empty() && head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return format!("the text {:?}", String::from_utf8_lossy(head));
    }
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    format!("the bytes {}", hex.join(" "))
}

/// Why reading a variable may have failed, from its filters: `" (filters: 32015
/// (zstd, not available to this netCDF-C))"`, or empty when the file says nothing.
pub fn read_hint(path: &Path, variable: &str) -> String {
    match filters(path, variable) {
        Some(list) if !list.is_empty() => {
            let named: Vec<String> = list
                .iter()
                .map(|(id, available)| {
                    let name = filter_name(*id).map_or(String::new(), |n| format!("{n}, "));
                    let state = if *available {
                        "available"
                    } else {
                        "not available to this netCDF-C: install its HDF5 plugin"
                    };
                    format!("{id} ({name}{state})")
                })
                .collect();
            format!(" (HDF5 filters of this variable: {})", named.join(", "))
        }
        _ => String::new(),
    }
}

/// Well-known HDF5 filter ids (registered with The HDF Group).
fn filter_name(id: u32) -> Option<&'static str> {
    Some(match id {
        1 => "deflate",
        2 => "shuffle",
        3 => "fletcher32",
        4 => "szip",
        307 => "bzip2",
        32001 => "blosc",
        32004 => "lz4",
        32008 => "bitshuffle",
        32013 => "zfp",
        32015 => "zstd",
        32017 => "sz",
        32026 => "blosc2",
        _ => return None,
    })
}

/// The variable's filter ids and whether netCDF-C can apply each, through netCDF-C's
/// own calls (the file is opened again, read-only, under the library's lock).
fn filters(path: &Path, variable: &str) -> Option<Vec<(u32, bool)>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let c_name = CString::new(variable).ok()?;
    let _guard = netcdf_sys::libnetcdf_lock.lock();
    let mut ncid = 0;
    // SAFETY: valid NUL-terminated strings and out-pointers; the file is closed below.
    unsafe {
        if netcdf_sys::nc_open(c_path.as_ptr(), netcdf_sys::NC_NOWRITE, &mut ncid) != 0 {
            return None;
        }
        let mut varid = 0;
        let mut result = None;
        if netcdf_sys::nc_inq_varid(ncid, c_name.as_ptr(), &mut varid) == 0 {
            let mut count = 0usize;
            if netcdf_sys::nc_inq_var_filter_ids(ncid, varid, &mut count, std::ptr::null_mut()) == 0
                && count <= 64
            {
                let mut ids = vec![0u32; count];
                if netcdf_sys::nc_inq_var_filter_ids(ncid, varid, &mut count, ids.as_mut_ptr()) == 0
                {
                    result = Some(
                        ids.into_iter()
                            .map(|id| (id, netcdf_sys::nc_inq_filter_avail(ncid, id) == 0))
                            .collect(),
                    );
                }
            }
        }
        netcdf_sys::nc_close(ncid);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn gsla_2024() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/imos/gsla/IMOS_OceanCurrent_HV_20240101T000000Z_GSLA_FV02_NRT.nc")
    }

    #[test]
    fn empty_random_and_text_files_are_named() {
        assert_eq!(
            diagnose_bytes(&mut Cursor::new(Vec::new())),
            "the file is empty (0 bytes)"
        );
        let html = diagnose_bytes(&mut Cursor::new(b"<html><body>Not Found".to_vec()));
        assert!(
            html.contains("not a netCDF or HDF5 file") && html.contains("<html>"),
            "{html}"
        );
        // Fixed pseudo-random bytes (an LCG), no HDF5 signature anywhere.
        let mut x = 12345u32;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let said = diagnose_bytes(&mut Cursor::new(noise));
        assert!(
            said.starts_with("not a netCDF or HDF5 file: it starts with the bytes"),
            "{said}"
        );
        let gz = diagnose_bytes(&mut Cursor::new(vec![0x1f, 0x8b, 8, 0, 0, 0]));
        assert!(gz.contains("gzip"), "{gz}");
    }

    #[test]
    fn truncated_netcdf4_files_say_truncated() {
        let bytes = std::fs::read(gsla_2024()).unwrap();
        let full = diagnose_bytes(&mut Cursor::new(bytes.clone()));
        assert!(full.contains("of full length"), "{full}");
        for cut in [bytes.len() / 2, bytes.len() - 1, 4096] {
            let said = diagnose_bytes(&mut Cursor::new(bytes[..cut].to_vec()));
            assert!(
                said.starts_with("truncated: the HDF5 superblock says the file ends at byte")
                    && said.contains(&format!("ends at byte {} ", bytes.len()))
                    && said.contains(&format!("has {cut} bytes")),
                "cut at {cut}: {said}"
            );
        }
    }

    #[test]
    fn a_superblock_after_a_user_block_is_found() {
        let bytes = std::fs::read(gsla_2024()).unwrap();
        let mut shifted = vec![0u8; 512];
        shifted.extend_from_slice(&bytes[..bytes.len() / 3]);
        let said = diagnose_bytes(&mut Cursor::new(shifted));
        assert!(said.starts_with("truncated"), "{said}");
    }
}

/// Checks, through netCDF-C's own calls, what the `netcdf` crate assumes when it lists a
/// file: every group, dimension, variable and attribute can be inquired about, and every
/// name is UTF-8. The crate panics otherwise (a damaged header, or names written in
/// another encoding); this turns that into a reason. `Ok` also when the file cannot be
/// opened here (the open then reports it).
pub fn check_names(path: &Path) -> Result<(), String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return Ok(());
    };
    let _guard = netcdf_sys::libnetcdf_lock.lock();
    let mut ncid = 0;
    // SAFETY: a valid NUL-terminated path and out-pointer; closed below.
    unsafe {
        if netcdf_sys::nc_open(c_path.as_ptr(), netcdf_sys::NC_NOWRITE, &mut ncid) != 0 {
            return Ok(());
        }
        let result = check_group_names(ncid, "", 0);
        netcdf_sys::nc_close(ncid);
        result
    }
}

type Int = std::os::raw::c_int;

/// A name buffer as netCDF-C fills it (at most `NC_MAX_NAME` bytes and a NUL).
type NameBuffer = [std::os::raw::c_char; netcdf_sys::NC_MAX_NAME as usize + 1];

/// `Err` naming `what` when a netCDF-C call failed.
fn status(code: Int, what: impl FnOnce() -> String) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: nc_strerror returns a static NUL-terminated message for any code.
    let message = unsafe { std::ffi::CStr::from_ptr(netcdf_sys::nc_strerror(code)) };
    Err(format!(
        "cannot read {} (netCDF error {code}: {}): a damaged header?",
        what(),
        message.to_string_lossy()
    ))
}

fn utf8_name(buffer: &NameBuffer, what: &str) -> Result<String, String> {
    // SAFETY: netCDF-C NUL-terminates names within NC_MAX_NAME + 1 bytes; the buffer
    // starts zeroed, so a NUL is there even if a call wrote nothing.
    let bytes = unsafe { std::ffi::CStr::from_ptr(buffer.as_ptr()) }.to_bytes();
    std::str::from_utf8(bytes).map(str::to_string).map_err(|_| {
        format!(
            "the name of {what} is not valid UTF-8 ({:?}): a damaged header, or a file \
             written in another encoding",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// Ids listed by an `nc_inq_*ids`-style call (count first, then the ids).
unsafe fn ids(what: &str, list: impl Fn(*mut Int, *mut Int) -> Int) -> Result<Vec<Int>, String> {
    let mut count = 0;
    status(list(&mut count, std::ptr::null_mut()), || what.to_string())?;
    if !(0..=1 << 24).contains(&count) {
        return Err(format!("{what}: {count} of them"));
    }
    let mut out = vec![0; count as usize];
    status(list(&mut count, out.as_mut_ptr()), || what.to_string())?;
    out.truncate(count.max(0) as usize);
    Ok(out)
}

unsafe fn check_attribute_names(ncid: Int, varid: Int, owner: &str) -> Result<(), String> {
    // SAFETY: `ncid`/`varid` name an open file's variable (the caller's contract);
    // name buffers hold NC_MAX_NAME + 1 bytes and out-pointers are live locals.
    unsafe {
        let mut count = 0;
        let code = if varid == netcdf_sys::NC_GLOBAL {
            netcdf_sys::nc_inq_natts(ncid, &mut count)
        } else {
            netcdf_sys::nc_inq_varnatts(ncid, varid, &mut count)
        };
        status(code, || format!("the attributes of {owner}"))?;
        for number in 0..count.clamp(0, 1 << 16) {
            let mut name: NameBuffer = [0; netcdf_sys::NC_MAX_NAME as usize + 1];
            let what = || format!("attribute {number} of {owner}");
            status(
                netcdf_sys::nc_inq_attname(ncid, varid, number, name.as_mut_ptr()),
                what,
            )?;
            let attr = utf8_name(&name, &what())?;
            let (mut kind, mut len) = (0, 0);
            status(
                netcdf_sys::nc_inq_att(ncid, varid, name.as_ptr(), &mut kind, &mut len),
                || format!("attribute {attr} of {owner}"),
            )?;
        }
        Ok(())
    }
}

unsafe fn check_group_names(ncid: Int, group: &str, depth: usize) -> Result<(), String> {
    // SAFETY: `ncid` is an open group (the caller's contract); child ids come from
    // nc_inq_grps on it, name buffers hold NC_MAX_NAME + 1 bytes, out-pointers are live.
    unsafe {
        let owner = if group.is_empty() { "/" } else { group };
        let listed = format!("the dimensions of group {owner}");
        for dimid in ids(&listed, |n, out| netcdf_sys::nc_inq_dimids(ncid, n, out, 0))? {
            let mut name: NameBuffer = [0; netcdf_sys::NC_MAX_NAME as usize + 1];
            let mut len = 0;
            let what = || format!("dimension {dimid} of group {owner}");
            status(
                netcdf_sys::nc_inq_dim(ncid, dimid, name.as_mut_ptr(), &mut len),
                what,
            )?;
            utf8_name(&name, &what())?;
        }
        check_attribute_names(ncid, netcdf_sys::NC_GLOBAL, &format!("group {owner}"))?;
        let listed = format!("the variables of group {owner}");
        for varid in ids(&listed, |n, out| netcdf_sys::nc_inq_varids(ncid, n, out))? {
            let mut name: NameBuffer = [0; netcdf_sys::NC_MAX_NAME as usize + 1];
            let what = || format!("variable {varid} of group {owner}");
            status(
                netcdf_sys::nc_inq_varname(ncid, varid, name.as_mut_ptr()),
                what,
            )?;
            let var = utf8_name(&name, &what())?;
            let (mut kind, mut ndims) = (0, 0);
            status(netcdf_sys::nc_inq_vartype(ncid, varid, &mut kind), || {
                format!("the type of variable {group}/{var}")
            })?;
            status(netcdf_sys::nc_inq_varndims(ncid, varid, &mut ndims), || {
                format!("the dimensions of variable {group}/{var}")
            })?;
            let mut dimids = vec![0; ndims.clamp(0, 1024) as usize];
            status(
                netcdf_sys::nc_inq_vardimid(ncid, varid, dimids.as_mut_ptr()),
                || format!("the dimensions of variable {group}/{var}"),
            )?;
            for dimid in dimids {
                let mut len = 0;
                status(netcdf_sys::nc_inq_dimlen(ncid, dimid, &mut len), || {
                    format!("dimension {dimid} of variable {group}/{var}")
                })?;
            }
            check_attribute_names(ncid, varid, &format!("variable {group}/{var}"))?;
        }
        if depth >= 32 {
            return Err("groups nested more than 32 deep".into());
        }
        let listed = format!("the groups in {owner}");
        for child in ids(&listed, |n, out| netcdf_sys::nc_inq_grps(ncid, n, out))? {
            let mut name: NameBuffer = [0; netcdf_sys::NC_MAX_NAME as usize + 1];
            let what = || format!("a group in {owner}");
            status(netcdf_sys::nc_inq_grpname(child, name.as_mut_ptr()), what)?;
            let child_name = utf8_name(&name, &what())?;
            check_group_names(child, &format!("{group}/{child_name}"), depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_utf8_is_a_reason_not_a_panic() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/imos/gsla/IMOS_OceanCurrent_HV_20110901T000000Z_GSLA_FV02_NRT.nc");
        let mut bytes = std::fs::read(source).unwrap();
        // The first attribute name in the classic header: a global attribute's.
        let at = bytes.windows(11).position(|w| w == b"Conventions").unwrap();
        bytes[at] = 0xff;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.nc");
        std::fs::write(&path, &bytes).unwrap();
        let err = check_names(&path).unwrap_err();
        assert!(
            err.starts_with("the name of attribute ") && err.contains("is not valid UTF-8"),
            "{err}"
        );
        let err = crate::source::SourceFile::open(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not valid UTF-8"), "{err}");
        let good = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/imos/gsla/IMOS_OceanCurrent_HV_20240101T000000Z_GSLA_FV02_NRT.nc");
        assert_eq!(check_names(&good), Ok(()));
    }
}
