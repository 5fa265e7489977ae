//! Truncation check for netCDF classic files (CDF-1, CDF-2 64-bit offset, CDF-5).
//!
//! netCDF-C reads past the end of a truncated classic file without an error, so a
//! partial upload would be ingested as zeros. The classic header records where every
//! variable's data begins; from it and the dimension lengths this module computes the
//! least number of bytes the data needs and compares it with the file's size.
//! netCDF-4 (HDF5) files are left to the HDF5 library, which detects truncation.

use std::io::Read;
use std::path::Path;

use thiserror::Error;

/// Why a classic file cannot be trusted.
#[derive(Debug, Error, PartialEq)]
pub enum ClassicError {
    /// The file ends before the data its header describes (a partial copy or upload).
    #[error("truncated: the header says the data needs {needed} bytes but the file has {actual}")]
    Truncated {
        /// Bytes the header's variables need, in bytes from the start of the file.
        needed: u64,
        /// The file's size in bytes.
        actual: u64,
    },
    /// The file ends inside its header.
    #[error("truncated inside its header ({actual} bytes)")]
    TruncatedHeader {
        /// The file's size in bytes.
        actual: u64,
    },
    /// The header cannot be parsed (or the file cannot be read): the reason.
    #[error("malformed netCDF classic header: {0}")]
    Header(String),
}

const HEADER_ENDS_EARLY: &str = "header ends early";

const NC_DIMENSION: u32 = 0x0A;
const NC_VARIABLE: u32 = 0x0B;
const NC_ATTRIBUTE: u32 = 0x0C;
const STREAMING: u64 = 0xFFFF_FFFF;

/// Checks a file if it is netCDF classic; other formats pass unchecked.
pub(crate) fn check_size(path: &Path) -> Result<(), ClassicError> {
    let io = |e: std::io::Error| ClassicError::Header(e.to_string());
    let actual = std::fs::metadata(path).map_err(io)?.len();
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic[..3] != b"CDF" {
        return Ok(());
    }
    // The header is at most the file; read it whole (headers are small, but cap it).
    let mut header = magic.to_vec();
    file.take(64 << 20).read_to_end(&mut header).map_err(io)?;
    let needed = match needed_bytes(&header) {
        Err(ClassicError::Header(reason)) if reason == HEADER_ENDS_EARLY => {
            return Err(ClassicError::TruncatedHeader { actual })
        }
        other => other?,
    };
    if needed > actual {
        return Err(ClassicError::Truncated { needed, actual });
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// CDF-5 uses 8-byte counts; CDF-2 and CDF-5 use 8-byte offsets.
    wide_counts: bool,
    wide_offsets: bool,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ClassicError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| ClassicError::Header(HEADER_ENDS_EARLY.into()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, ClassicError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ClassicError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn count(&mut self) -> Result<u64, ClassicError> {
        if self.wide_counts {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }

    fn offset(&mut self) -> Result<u64, ClassicError> {
        if self.wide_offsets {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }

    fn skip_padded(&mut self, n: u64) -> Result<(), ClassicError> {
        let padded = n.div_ceil(4) * 4;
        let padded =
            usize::try_from(padded).map_err(|_| ClassicError::Header("size overflow".into()))?;
        self.take(padded).map(|_| ())
    }

    fn name(&mut self) -> Result<(), ClassicError> {
        let len = self.count()?;
        self.skip_padded(len)
    }

    /// A list tag and its length (`ABSENT` is a zero tag and a zero count).
    fn list(&mut self, tag: u32) -> Result<u64, ClassicError> {
        let found = self.u32()?;
        let n = self.count()?;
        match found {
            0 if n == 0 => Ok(0),
            t if t == tag => Ok(n),
            t => Err(ClassicError::Header(format!(
                "expected list tag {tag:#x}, found {t:#x}"
            ))),
        }
    }

    fn skip_attributes(&mut self) -> Result<(), ClassicError> {
        for _ in 0..self.list(NC_ATTRIBUTE)? {
            self.name()?;
            let size = type_size(self.u32()?)?;
            let n = self.count()?;
            self.skip_padded(n.saturating_mul(size))?;
        }
        Ok(())
    }
}

fn type_size(nc_type: u32) -> Result<u64, ClassicError> {
    Ok(match nc_type {
        1 | 2 | 7 => 1,
        3 | 8 => 2,
        4 | 5 | 9 => 4,
        6 | 10 | 11 => 8,
        t => return Err(ClassicError::Header(format!("unknown type {t}"))),
    })
}

/// Least file size (bytes) that holds every variable's data as the header lays it out.
fn needed_bytes(header: &[u8]) -> Result<u64, ClassicError> {
    let version = *header
        .get(3)
        .ok_or_else(|| ClassicError::Header("no version byte".into()))?;
    let mut r = Reader {
        bytes: header,
        pos: 4,
        wide_counts: version == 5,
        wide_offsets: version == 2 || version == 5,
    };
    if !matches!(version, 1 | 2 | 5) {
        return Err(ClassicError::Header(format!("unknown version {version}")));
    }
    let numrecs = r.count()?;
    let mut dims = Vec::new();
    for _ in 0..r.list(NC_DIMENSION)? {
        r.name()?;
        dims.push(r.count()?);
    }
    r.skip_attributes()?;
    struct Var {
        record: bool,
        bytes: u64,
        begin: u64,
    }
    let mut vars = Vec::new();
    for _ in 0..r.list(NC_VARIABLE)? {
        r.name()?;
        let rank = r.count()?;
        let mut ids = Vec::new();
        for _ in 0..rank {
            ids.push(r.count()?);
        }
        r.skip_attributes()?;
        let size = type_size(r.u32()?)?;
        let _vsize = r.count()?;
        let begin = r.offset()?;
        let lengths = ids
            .iter()
            .map(|&id| {
                dims.get(id as usize)
                    .copied()
                    .ok_or_else(|| ClassicError::Header(format!("dimension id {id} out of range")))
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let record = lengths.first() == Some(&0) && rank > 0;
        let per_record: u64 = lengths.iter().skip(usize::from(record)).product();
        vars.push(Var {
            record,
            bytes: per_record.saturating_mul(size),
            begin,
        });
    }
    let record_size: u64 = {
        let record_vars: Vec<&Var> = vars.iter().filter(|v| v.record).collect();
        match record_vars.as_slice() {
            [one] => one.bytes,
            many => many.iter().map(|v| v.bytes.div_ceil(4) * 4).sum(),
        }
    };
    let mut needed = r.pos as u64;
    for v in &vars {
        let end = if v.record {
            if numrecs == STREAMING || numrecs == 0 {
                continue;
            }
            v.begin + (numrecs - 1) * record_size + v.bytes
        } else {
            v.begin + v.bytes
        };
        needed = needed.max(end);
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsla_2011() -> Option<std::path::PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/imos/gsla/IMOS_OceanCurrent_HV_20110901T000000Z_GSLA_FV02_NRT.nc");
        path.is_file().then_some(path)
    }

    #[test]
    fn a_whole_real_classic_file_passes_and_its_truncations_fail() {
        let source = gsla_2011().expect("tests/data/imos/gsla must be present for this test");
        assert!(check_size(&source).is_ok());
        let bytes = std::fs::read(&source).unwrap();
        let needed = needed_bytes(&bytes).unwrap() as usize;
        // The file may end with up to 3 bytes of padding after its last value.
        assert!(
            needed <= bytes.len() && bytes.len() - needed < 4,
            "{needed} vs {}",
            bytes.len()
        );
        let dir = tempfile::tempdir().unwrap();
        for cut in [needed - 1, bytes.len() * 2 / 3, 5000] {
            let path = dir.path().join("cut.nc");
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(
                matches!(
                    check_size(&path),
                    Err(ClassicError::Truncated { .. } | ClassicError::TruncatedHeader { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_real_file_in_tests_data_passes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/imos");
        let mut checked = 0;
        for family in ["gsla", "argo"] {
            for entry in std::fs::read_dir(root.join(family)).expect("tests/data present") {
                let path = entry.unwrap().path();
                assert_eq!(check_size(&path), Ok(()), "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 6, "checked {checked} files");
    }

    #[test]
    fn other_formats_are_not_checked_and_garbage_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let hdf5 = dir.path().join("a.nc");
        std::fs::write(&hdf5, b"\x89HDF\r\n\x1a\n....").unwrap();
        assert!(check_size(&hdf5).is_ok());
        assert!(matches!(
            needed_bytes(b"CDF\x01\0\0"),
            Err(ClassicError::Header(_))
        ));
        assert!(matches!(
            needed_bytes(b"CDF\x09\0\0\0\0"),
            Err(ClassicError::Header(_))
        ));
    }
}
