//! Reading a NetCDF source file (netCDF3 classic or netCDF-4) through netCDF-C.
//!
//! A [`SourceFile`] lists its variables with their dimensions, element type, CF
//! encoding and attributes (as JSON, ready for Zarr), and reads a variable's values.
//! Packed integers stay packed; `char` arrays become text along their last dimension
//! when xarray would join it (see `string_dims`), else one-character strings.

use std::path::{Path, PathBuf};

use netcdf::types::{FloatType, IntType, NcVariableType};
use netcdf::AttributeValue;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::values::{CfEncoding, ElementType, Values};

pub(crate) mod bands;
pub(crate) mod chunked;
#[cfg(test)]
mod decode_tests;
pub(crate) mod diagnose;
mod filters;
mod hdf5_index;
pub(crate) mod passthrough;
#[cfg(test)]
mod passthrough_tests;
pub(crate) use bands::{Band, BandAssembler, BandPlan};
use chunked::ChunkReader;
pub use chunked::{Decode, DECODE_ENV};
pub use passthrough::{ChunkCodec, RawChunk, StoredChunks};

/// Why a source file could not be opened or read. Each message starts with the file's
/// path and is the reason an event is rejected with.
#[derive(Debug, Error)]
pub enum SourceError {
    /// netCDF-C cannot open the file (truncated, not netCDF, unreadable).
    #[error("{path}: cannot open as netCDF: {diagnosis} ({source})")]
    Open {
        /// The source file.
        path: PathBuf,
        /// What is wrong with the file, found by looking at its bytes (see `diagnose`).
        diagnosis: String,
        /// netCDF-C's error.
        #[source]
        source: netcdf::Error,
    },
    /// A variable's values cannot be read (a missing HDF5 filter, corrupt chunks).
    #[error("{path}: variable {variable}: cannot read values{hint}: {source}")]
    Read {
        /// The source file.
        path: PathBuf,
        /// The variable's name.
        variable: String,
        /// What the file says about the failure (its filters), or empty.
        hint: String,
        /// netCDF-C's error.
        #[source]
        source: netcdf::Error,
    },
    /// A variable's CF encoding is unusable (`scale_factor` of the wrong type,
    /// `_FillValue` outside the type, ...).
    #[error("{path}: variable {variable}: {reason}")]
    Encoding {
        /// The source file.
        path: PathBuf,
        /// The variable's name.
        variable: String,
        /// What is wrong.
        reason: String,
    },
    /// The file has groups: only the root group's variables are read.
    #[error(
        "{path}: groups are not supported: the file has groups {groups}; zru reads the \
         variables of the root group only (write the data variables in the root group)"
    )]
    Groups {
        /// The source file.
        path: PathBuf,
        /// The groups' names, comma-separated.
        groups: String,
    },
    /// The header is malformed in a way netCDF-C tolerates but zru does not (names
    /// that are not UTF-8, unreadable dimensions or attributes).
    #[error("{path}: {reason}")]
    Header {
        /// The source file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A variable needs more than zru reads at once ([`MAX_READ_BYTES`] bytes in one
    /// read, or too many strings).
    #[error("{path}: variable {variable}: {reason}")]
    TooLarge {
        /// The source file.
        path: PathBuf,
        /// The variable's name.
        variable: String,
        /// Its size and the limit.
        reason: String,
    },
    /// A variable's type has no Zarr counterpart zru writes (compound, opaque, enum,
    /// variable-length).
    #[error("{path}: variable {variable} has type {kind}, which zru cannot store")]
    UnsupportedType {
        /// The source file.
        path: PathBuf,
        /// The variable's name.
        variable: String,
        /// netCDF's name of the type.
        kind: String,
    },
    /// A classic (netCDF3) file is truncated or its header is malformed.
    #[error("{path}: {source}")]
    Classic {
        /// The source file.
        path: PathBuf,
        /// What the header check found.
        #[source]
        source: crate::netcdf3::ClassicError,
    },
    /// The pieces read from a variable could not be joined into bands (internal
    /// shape mismatch).
    #[error("{path}: variable {variable}: cannot join read pieces: {reason}")]
    Bands {
        /// The source file.
        path: PathBuf,
        /// The variable's name.
        variable: String,
        /// What did not fit.
        reason: String,
    },
    /// The file has no variable of that name.
    #[error("{path}: no variable {variable}")]
    NoVariable {
        /// The source file.
        path: PathBuf,
        /// The name asked for.
        variable: String,
    },
    /// `ZRU_DECODE` names no decode path.
    #[error("{path}: {reason}")]
    Decode {
        /// The source file.
        path: PathBuf,
        /// The value and the choices.
        reason: String,
    },
    /// An attribute cannot be read.
    #[error("{path}: attribute {attribute} of {variable}: {source}")]
    Attribute {
        /// The source file.
        path: PathBuf,
        /// The variable's name (or the file, for a global attribute).
        variable: String,
        /// The attribute's name.
        attribute: String,
        /// netCDF-C's error.
        #[source]
        source: netcdf::Error,
    },
}

/// What zru knows about one variable of a source file.
#[derive(Debug, Clone)]
pub struct SourceVariable {
    /// The variable's name in the file (and the Zarr array's name).
    pub name: String,
    /// Dimensions as stored in Zarr (a `char` variable loses its string-length dim).
    pub dims: Vec<String>,
    /// Length of each of `dims`.
    pub shape: Vec<u64>,
    /// Element type as stored (packed integers stay integers; `char` becomes text).
    pub element: ElementType,
    /// `scale_factor`, `add_offset` and `_FillValue` (or `missing_value`).
    pub encoding: CfEncoding,
    /// CF attributes other than `_FillValue` (which lives in `encoding`).
    pub attributes: Map<String, Value>,
    /// Length of the trailing string dimension of a `char` variable.
    char_len: Option<usize>,
    /// `_FillValue` of a `char` variable (`" "` in Argo files), which xarray masks.
    pub text_fill: Option<String>,
}

impl SourceVariable {
    /// True if `dim` is one of the variable's (Zarr) dimensions.
    pub(crate) fn has_dim(&self, dim: &str) -> bool {
        self.dims.iter().any(|d| d == dim)
    }

    /// Number of elements (saturating: a file can declare absurd dimensions).
    pub(crate) fn element_count(&self) -> u64 {
        self.shape
            .iter()
            .fold(1u64, |n, &len| n.saturating_mul(len))
    }

    /// `units` and `calendar` attributes, for time variables.
    pub(crate) fn time_units(&self) -> (Option<&str>, Option<&str>) {
        let text = |k: &str| self.attributes.get(k).and_then(Value::as_str);
        (text("units"), text("calendar"))
    }
}

/// An open NetCDF file.
pub struct SourceFile {
    path: PathBuf,
    file: netcdf::File,
    variables: Vec<SourceVariable>,
    decode: Decode,
}

impl std::fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .finish()
    }
}

impl SourceFile {
    /// Opens a file and describes its variables (no values are read).
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        crate::netcdf3::check_size(path).map_err(|source| SourceError::Classic {
            path: path.to_path_buf(),
            source,
        })?;
        diagnose::check_names(path).map_err(|reason| SourceError::Header {
            path: path.to_path_buf(),
            reason,
        })?;
        let file = netcdf::open(path).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            diagnosis: diagnose::diagnose_open(path),
            source,
        })?;
        let groups = groups_with_variables(&file).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            diagnosis: "cannot list its groups".into(),
            source,
        })?;
        if !groups.is_empty() {
            return Err(SourceError::Groups {
                path: path.to_path_buf(),
                groups: groups.join(", "),
            });
        }
        let decode = Decode::from_env().map_err(|reason| SourceError::Decode {
            path: path.to_path_buf(),
            reason,
        })?;
        let joined = string_dims(&file);
        let variables = file
            .variables()
            .map(|v| describe(path, &v, &joined))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            variables,
            decode,
        })
    }

    /// Chooses how netCDF-4 chunks are decoded (the tests compare both paths).
    pub fn set_decode(&mut self, decode: Decode) {
        self.decode = decode;
    }

    /// A reader of the variable's chunks when they are zru's to decode (see
    /// [`chunked`]), else `None` (netCDF-C reads).
    fn chunk_reader(&self, var: &SourceVariable) -> Option<ChunkReader> {
        match self.decode {
            Decode::Passthrough | Decode::Parallel => {
                ChunkReader::open(&self.path, &var.name, var.element, &var.shape)
            }
            Decode::NetcdfC => None,
        }
    }

    /// Every chunk of variable `name`, still encoded, when its chunk shape is `chunk`
    /// and its filters are `codecs` (see [`passthrough`]); `None` if it cannot be copied
    /// that way, or `ZRU_DECODE` asks for decoding.
    pub(crate) fn raw_chunks(
        &self,
        name: &str,
        chunk: &[u64],
        codecs: &[ChunkCodec],
    ) -> Option<Vec<RawChunk>> {
        if self.decode != Decode::Passthrough {
            return None;
        }
        let var = self.variable(name)?;
        if var.element == ElementType::Text || var.shape.is_empty() {
            return None;
        }
        self.chunk_reader(var)?.raw_chunks(chunk, codecs)
    }

    /// Reads `start..start + count` of a variable: its chunks decoded in parallel by
    /// `chunks` if it can, else through netCDF-C.
    fn read_region(
        &self,
        var: &SourceVariable,
        chunks: Option<&ChunkReader>,
        start: &[u64],
        count: &[u64],
    ) -> Result<Values, SourceError> {
        if let Some(values) = chunks.and_then(|reader| reader.read(start, count)) {
            return Ok(values);
        }
        let extents: Vec<std::ops::Range<usize>> = start
            .iter()
            .zip(count)
            .map(|(&s, &c)| s as usize..(s + c) as usize)
            .collect();
        self.read_extents(&var.name, extents.into())
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root group's variables, in file order.
    pub fn variables(&self) -> &[SourceVariable] {
        &self.variables
    }

    /// The variable called `name`, if the file has it.
    pub(crate) fn variable(&self, name: &str) -> Option<&SourceVariable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// Length of a dimension, if the file has it.
    pub(crate) fn dim_len(&self, name: &str) -> Option<u64> {
        self.file.dimension(name).map(|d| d.len() as u64)
    }

    /// Global attributes as JSON.
    pub(crate) fn global_attributes(&self) -> Result<Map<String, Value>, SourceError> {
        let mut map = Map::new();
        for attribute in self.file.attributes() {
            let name = attribute.name().to_string();
            let value = attribute.value().map_err(|source| SourceError::Attribute {
                path: self.path.clone(),
                variable: "(global)".into(),
                attribute: name.clone(),
                source,
            })?;
            map.insert(name, attribute_json(value));
        }
        Ok(map)
    }

    /// Reads a whole variable in C order.
    pub fn read(&self, name: &str) -> Result<Values, SourceError> {
        let described = self.described(name)?;
        self.check_read_size(described, described.element_count())?;
        if described.element != ElementType::Text && !described.shape.is_empty() {
            let start = vec![0; described.shape.len()];
            let chunks = self.chunk_reader(described);
            if let Some(values) = chunks.and_then(|r| r.read(&start, &described.shape)) {
                return Ok(values);
            }
        }
        self.read_extents(name, netcdf::Extents::All)
    }

    /// Rejects a read of more than [`MAX_READ_BYTES`]: a tiny netCDF-4 file can declare
    /// huge dimensions (unwritten chunks read as fill), and allocating their values
    /// would abort the process.
    fn check_read_size(&self, var: &SourceVariable, elements: u64) -> Result<(), SourceError> {
        let width = match var.element {
            ElementType::Text => var.char_len.unwrap_or(1).max(1) as u64,
            other => other.size() as u64,
        };
        let bytes = elements.saturating_mul(width);
        if bytes > MAX_READ_BYTES {
            return Err(SourceError::TooLarge {
                path: self.path.clone(),
                variable: var.name.clone(),
                reason: format!(
                    "shape {:?} needs {bytes} bytes in one read, more than zru reads at once \
                     ({MAX_READ_BYTES}); configure smaller store chunks for its dimensions",
                    var.shape
                ),
            });
        }
        Ok(())
    }

    /// Reads a variable in bands along one axis (see `bands`), calling `emit` with
    /// each band in order; `emit` returns `false` to stop early. A variable that is one
    /// band anyway is read whole, as one band along axis 0.
    pub(crate) fn read_bands(
        &self,
        name: &str,
        store_chunks: &[u64],
        mut emit: impl FnMut(Band) -> bool,
    ) -> Result<(), SourceError> {
        let described = self.described(name)?;
        let plan = match described.element {
            ElementType::Text => None,
            _ => BandPlan::new(
                &described.shape,
                store_chunks,
                self.file_chunks(name)?.as_deref(),
            ),
        };
        let Some(plan) = plan else {
            let values = self.read(name)?;
            emit(Band {
                axis: 0,
                start: 0,
                rows: described.shape.first().copied().unwrap_or(1),
                values,
            });
            return Ok(());
        };
        let row_len: u64 = described.shape[plan.axis + 1..]
            .iter()
            .fold(1u64, |n, &len| n.saturating_mul(len));
        self.check_read_size(described, plan.piece.saturating_mul(row_len))?;
        let mut assembler = BandAssembler::new(plan, row_len);
        let chunks = self.chunk_reader(described);
        for piece in plan.pieces() {
            let mut start = vec![0; described.shape.len()];
            let mut count = described.shape.clone();
            start[plan.axis] = piece.start;
            count[plan.axis] = piece.end - piece.start;
            let values = self.read_region(described, chunks.as_ref(), &start, &count)?;
            let band = assembler
                .push(values, piece.end - piece.start)
                .map_err(|e| SourceError::Bands {
                    path: self.path.clone(),
                    variable: name.into(),
                    reason: e.to_string(),
                })?;
            if let Some(band) = band {
                if !emit(band) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The file's chunk shape of a variable (`None`: contiguous or classic).
    fn file_chunks(&self, name: &str) -> Result<Option<Vec<u64>>, SourceError> {
        let variable = self.nc_variable(name)?;
        let chunks = variable.chunking().map_err(|source| SourceError::Read {
            path: self.path.clone(),
            variable: name.into(),
            hint: String::new(),
            source,
        })?;
        Ok(chunks.map(|c| c.into_iter().map(|n| n as u64).collect()))
    }

    fn described(&self, name: &str) -> Result<&SourceVariable, SourceError> {
        self.variable(name).ok_or_else(|| SourceError::NoVariable {
            path: self.path.clone(),
            variable: name.into(),
        })
    }

    fn nc_variable(&self, name: &str) -> Result<netcdf::Variable<'_>, SourceError> {
        self.file
            .variable(name)
            .ok_or_else(|| SourceError::NoVariable {
                path: self.path.clone(),
                variable: name.into(),
            })
    }

    /// Reads part of a variable in C order.
    fn read_extents(&self, name: &str, extents: netcdf::Extents) -> Result<Values, SourceError> {
        let described = self.described(name)?;
        let variable = self.nc_variable(name)?;
        let read_error = |source| SourceError::Read {
            path: self.path.clone(),
            variable: name.into(),
            hint: diagnose::read_hint(&self.path, name),
            source,
        };
        let e = extents;
        let values = match described.element {
            ElementType::I8 => Values::I8(variable.get_values(e).map_err(read_error)?),
            ElementType::U8 => Values::U8(variable.get_values(e).map_err(read_error)?),
            ElementType::I16 => Values::I16(variable.get_values(e).map_err(read_error)?),
            ElementType::U16 => Values::U16(variable.get_values(e).map_err(read_error)?),
            ElementType::I32 => Values::I32(variable.get_values(e).map_err(read_error)?),
            ElementType::U32 => Values::U32(variable.get_values(e).map_err(read_error)?),
            ElementType::I64 => Values::I64(variable.get_values(e).map_err(read_error)?),
            ElementType::U64 => Values::U64(variable.get_values(e).map_err(read_error)?),
            ElementType::F32 => Values::F32(variable.get_values(e).map_err(read_error)?),
            ElementType::F64 => Values::F64(variable.get_values(e).map_err(read_error)?),
            ElementType::Text => match described.char_len {
                Some(len) => {
                    let bytes = variable.get_raw_values(e).map_err(read_error)?;
                    Values::Text(chars_to_strings(&bytes, len))
                }
                // Strings are read whole (text is never split into bands).
                None => {
                    Values::Text(read_strings(&variable, &described.shape).map_err(read_error)?)
                }
            },
        };
        Ok(values)
    }
}

/// Every element of a netCDF-4 string variable of `shape`, in C order.
fn read_strings(variable: &netcdf::Variable<'_>, shape: &[u64]) -> netcdf::Result<Vec<String>> {
    let count: u64 = shape.iter().product();
    let mut strings = Vec::with_capacity(count as usize);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        strings.push(variable.get_string(index.as_slice())?);
        // The next index in C order.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if (index[axis] as u64) < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(strings)
}

/// Splits a `char` array into strings of `len` bytes, dropping trailing NULs
/// (as xarray does when it decodes char arrays).
fn chars_to_strings(bytes: &[u8], len: usize) -> Vec<String> {
    bytes
        .chunks(len.max(1))
        .map(|chunk| {
            let end = chunk.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            chunk[..end].iter().map(|&b| b as char).collect()
        })
        .collect()
}

/// Dimensions that are string lengths, by xarray's rule: a `char` array's last dimension
/// is joined into strings only if no variable is named after it and every variable
/// using it is a `char` array with it last. So `PLATFORM_NUMBER(N_PROF, STRING8)` reads
/// as one string per profile, while `DIRECTION(N_PROF)` and `PRES_QC(N_PROF, N_LEVELS)`
/// (N_LEVELS is also used by `PRES`) read as one-character strings per element.
fn string_dims(file: &netcdf::File) -> std::collections::HashSet<String> {
    let mut candidates = std::collections::HashSet::new();
    let mut excluded = std::collections::HashSet::new();
    for variable in file.variables() {
        let dims: Vec<String> = variable.dimensions().iter().map(|d| d.name()).collect();
        let is_char = matches!(variable.vartype(), NcVariableType::Char);
        excluded.insert(variable.name());
        for (i, dim) in dims.iter().enumerate() {
            if is_char && i + 1 == dims.len() {
                candidates.insert(dim.clone());
            } else {
                excluded.insert(dim.clone());
            }
        }
    }
    candidates.retain(|d| !excluded.contains(d));
    candidates
}

fn describe(
    path: &Path,
    variable: &netcdf::Variable<'_>,
    string_dims: &std::collections::HashSet<String>,
) -> Result<SourceVariable, SourceError> {
    let name = variable.name();
    let mut dims: Vec<String> = variable.dimensions().iter().map(|d| d.name()).collect();
    let mut shape: Vec<u64> = variable
        .dimensions()
        .iter()
        .map(|d| d.len() as u64)
        .collect();
    let vartype = variable.vartype();
    let vlen_string = matches!(vartype, NcVariableType::String);
    let (element, char_len) = match element_type(&vartype) {
        // netCDF-4 variable-length strings: one string per element.
        Some(ElementType::Text) if matches!(vartype, NcVariableType::String) => {
            (ElementType::Text, None)
        }
        Some(ElementType::Text) if dims.last().is_some_and(|d| string_dims.contains(d)) => {
            // The last dimension of this char array is its string length.
            let len = shape.pop().unwrap_or(1) as usize;
            dims.pop();
            (ElementType::Text, Some(len))
        }
        // A char array whose last dimension is shared with other data: one character
        // per element, as xarray reads it.
        Some(ElementType::Text) => (ElementType::Text, Some(1)),
        Some(t) => (t, None),
        None => {
            return Err(SourceError::UnsupportedType {
                path: path.to_path_buf(),
                variable: name,
                kind: type_name(&vartype),
            })
        }
    };
    let count = shape.iter().try_fold(1u64, |n, &len| n.checked_mul(len));
    if vlen_string && count.is_none_or(|n| n > MAX_STRINGS) {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
            variable: name,
            reason: format!(
                "a string variable of shape {shape:?} is more than zru reads ({MAX_STRINGS} strings)"
            ),
        });
    }
    let mut attributes = Map::new();
    let mut encoding = CfEncoding::default();
    let mut text_fill = None;
    let mut fill = None;
    let mut missing = None;
    let encoding_error = |reason: String| SourceError::Encoding {
        path: path.to_path_buf(),
        variable: name.clone(),
        reason,
    };
    for attribute in variable.attributes() {
        let attr_name = attribute.name().to_string();
        let value = attribute.value().map_err(|source| SourceError::Attribute {
            path: path.to_path_buf(),
            variable: name.clone(),
            attribute: attr_name.clone(),
            source,
        })?;
        let is_encoding = matches!(
            attr_name.as_str(),
            "_FillValue" | "missing_value" | "scale_factor" | "add_offset"
        );
        if element == ElementType::Text {
            // Text: `_FillValue` is text (masked by xarray); packing does not apply.
            if attr_name == "_FillValue" {
                if let AttributeValue::Str(text) = &value {
                    text_fill = Some(text.clone());
                }
                continue;
            }
        } else if is_encoding {
            let number = encoding_number(&attr_name, &value).map_err(&encoding_error)?;
            match attr_name.as_str() {
                "_FillValue" => {
                    fill = Some(number);
                    continue;
                }
                "missing_value" => missing = Some(number),
                "scale_factor" => encoding.scale_factor = number,
                _ => encoding.add_offset = number,
            }
        }
        attributes.insert(attr_name, attribute_json(value));
    }
    if element != ElementType::Text {
        encoding.fill_value = match (fill, missing) {
            (Some(f), Some(m)) if !same_number(f, m) => {
                return Err(encoding_error(format!(
                    "_FillValue ({f}) and missing_value ({m}) differ; xarray masks both, \
                     zru stores one missing value"
                )))
            }
            (f, m) => f.or(m),
        };
    }
    Ok(SourceVariable {
        name,
        dims,
        shape,
        element,
        encoding,
        attributes,
        char_len,
        text_fill,
    })
}

/// Most bytes zru reads from a variable at once (a whole variable, or one band).
pub const MAX_READ_BYTES: u64 = 4 << 30;

/// Most strings zru reads from one variable-length string variable.
const MAX_STRINGS: u64 = 1 << 22;

fn same_number(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The single number of an encoding attribute (`_FillValue`, `missing_value`,
/// `scale_factor`, `add_offset`) of a numeric variable. Text, several values, a zero or
/// non-finite `scale_factor` and a non-finite `add_offset` are errors: xarray would fail
/// on them or decode wrong values, so zru rejects the file rather than guess.
fn encoding_number(attr: &str, value: &AttributeValue) -> Result<f64, String> {
    let numbers: Vec<Option<f64>> = match value {
        AttributeValue::Str(text) => {
            return Err(format!("{attr} is a string ({text:?}), expected a number"))
        }
        AttributeValue::Strs(texts) if texts.len() == 1 => {
            return Err(format!(
                "{attr} is a string ({:?}), expected a number",
                texts[0]
            ))
        }
        AttributeValue::Strs(texts) => {
            return Err(format!(
                "{attr} is a list of strings ({texts:?}), expected a number"
            ))
        }
        other => match attribute_json(other.clone()) {
            Value::Array(items) => items.iter().map(json_number).collect(),
            single => vec![json_number(&single)],
        },
    };
    let number = match numbers.as_slice() {
        [one] => one.ok_or_else(|| format!("{attr} is not a number"))?,
        [] => return Err(format!("{attr} has no value, expected a number")),
        many => {
            return Err(format!(
                "{attr} has {} values, expected one number",
                many.len()
            ))
        }
    };
    match attr {
        "scale_factor" if number == 0.0 || !number.is_finite() => Err(format!(
            "scale_factor is {number}; it must be a finite, non-zero number"
        )),
        "add_offset" if !number.is_finite() => Err(format!(
            "add_offset is {number}; it must be a finite number"
        )),
        _ => Ok(number),
    }
}

/// A number of [`attribute_json`]'s output, non-finite floats (text there) included.
fn json_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Paths of the groups (at any depth) that hold variables, or have groups that do.
fn groups_with_variables(file: &netcdf::File) -> Result<Vec<String>, netcdf::Error> {
    fn walk(group: &netcdf::Group<'_>, prefix: &str, out: &mut Vec<String>) -> bool {
        let path = format!("{prefix}/{}", group.name());
        let mut has = group.variables().next().is_some();
        for sub in group.groups() {
            has |= walk(&sub, &path, out);
        }
        if has && !out.iter().any(|p| p.starts_with(&format!("{path}/"))) {
            out.push(path);
        }
        has
    }
    let mut out = Vec::new();
    for group in file.groups()? {
        walk(&group, "", &mut out);
    }
    out.sort();
    Ok(out)
}

/// A readable name of a NetCDF type zru cannot store.
fn type_name(vartype: &NcVariableType) -> String {
    match vartype {
        NcVariableType::Compound(_) => "compound".into(),
        NcVariableType::Opaque(_) => "opaque".into(),
        NcVariableType::Enum(_) => "enum".into(),
        NcVariableType::Vlen(_) => "vlen (variable-length array)".into(),
        other => format!("{other:?}"),
    }
}

fn element_type(vartype: &NcVariableType) -> Option<ElementType> {
    Some(match vartype {
        NcVariableType::Int(IntType::I8) => ElementType::I8,
        NcVariableType::Int(IntType::U8) => ElementType::U8,
        NcVariableType::Int(IntType::I16) => ElementType::I16,
        NcVariableType::Int(IntType::U16) => ElementType::U16,
        NcVariableType::Int(IntType::I32) => ElementType::I32,
        NcVariableType::Int(IntType::U32) => ElementType::U32,
        NcVariableType::Int(IntType::I64) => ElementType::I64,
        NcVariableType::Int(IntType::U64) => ElementType::U64,
        NcVariableType::Float(FloatType::F32) => ElementType::F32,
        NcVariableType::Float(FloatType::F64) => ElementType::F64,
        NcVariableType::Char | NcVariableType::String => ElementType::Text,
        _ => return None,
    })
}

fn float_json(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or_else(
        || {
            Value::String(
                if x.is_nan() {
                    "NaN"
                } else if x > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
                .into(),
            )
        },
        Value::Number,
    )
}

/// A NetCDF attribute as JSON: numbers, lists of numbers, or text.
pub(crate) fn attribute_json(value: AttributeValue) -> Value {
    fn list<T: Into<Value>>(items: Vec<T>) -> Value {
        Value::Array(items.into_iter().map(Into::into).collect())
    }
    match value {
        AttributeValue::Uchar(x) => x.into(),
        AttributeValue::Uchars(x) => list(x),
        AttributeValue::Schar(x) => x.into(),
        AttributeValue::Schars(x) => list(x),
        AttributeValue::Ushort(x) => x.into(),
        AttributeValue::Ushorts(x) => list(x),
        AttributeValue::Short(x) => x.into(),
        AttributeValue::Shorts(x) => list(x),
        AttributeValue::Uint(x) => x.into(),
        AttributeValue::Uints(x) => list(x),
        AttributeValue::Int(x) => x.into(),
        AttributeValue::Ints(x) => list(x),
        AttributeValue::Ulonglong(x) => x.into(),
        AttributeValue::Ulonglongs(x) => list(x),
        AttributeValue::Longlong(x) => x.into(),
        AttributeValue::Longlongs(x) => list(x),
        AttributeValue::Float(x) => float_json(f64::from(x)),
        AttributeValue::Floats(x) => {
            Value::Array(x.into_iter().map(|v| float_json(v.into())).collect())
        }
        AttributeValue::Double(x) => float_json(x),
        AttributeValue::Doubles(x) => Value::Array(x.into_iter().map(float_json).collect()),
        AttributeValue::Str(s) => Value::String(s),
        // netCDF4-python writes non-ASCII text attributes as NC_STRING; one string reads
        // as a plain string in xarray.
        AttributeValue::Strs(mut s) if s.len() == 1 => Value::String(s.remove(0)),
        AttributeValue::Strs(s) => list(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_arrays_split_into_strings_without_trailing_nuls() {
        let bytes = b"2902093 ab\0\0\0\0\0\0";
        assert_eq!(chars_to_strings(bytes, 8), vec!["2902093 ", "ab"]);
    }

    #[test]
    fn float_attributes_keep_nan_as_text() {
        assert_eq!(
            attribute_json(AttributeValue::Double(f64::NAN)),
            Value::String("NaN".into())
        );
        assert_eq!(
            encoding_number("_FillValue", &AttributeValue::Shorts(vec![-32766])),
            Ok(-32766.0)
        );
    }

    #[test]
    fn char_dims_are_joined_only_where_xarray_joins_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prof.nc");
        {
            let mut file = netcdf::create(&path).unwrap();
            for (name, len) in [("N_PROF", 2), ("N_LEVELS", 3), ("STRING8", 8)] {
                file.add_dimension(name, len).unwrap();
            }
            let char_type = NcVariableType::Char;
            for (name, dims) in [
                ("PLATFORM_NUMBER", &["N_PROF", "STRING8"][..]),
                ("DIRECTION", &["N_PROF"][..]),
                ("PRES_QC", &["N_PROF", "N_LEVELS"][..]),
            ] {
                file.add_variable_with_type(name, dims, &char_type).unwrap();
            }
            file.add_variable::<f32>("PRES", &["N_PROF", "N_LEVELS"])
                .unwrap();
        }
        let source = SourceFile::open(&path).unwrap();
        let dims = |name: &str| source.variable(name).unwrap().dims.clone();
        assert_eq!(dims("PLATFORM_NUMBER"), vec!["N_PROF"]);
        assert_eq!(dims("DIRECTION"), vec!["N_PROF"]);
        assert_eq!(dims("PRES_QC"), vec!["N_PROF", "N_LEVELS"]);
        match source.read("PRES_QC").unwrap() {
            Values::Text(v) => assert_eq!(v.len(), 6),
            other => panic!("PRES_QC read as {other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_netcdf_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.nc");
        std::fs::write(&path, b"this is not a netCDF file").unwrap();
        let err = SourceFile::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.nc") && err.contains("cannot open as netCDF"),
            "{err}"
        );
    }

    fn encoded_file(dir: &Path, attr: &str, value: AttributeValue) -> PathBuf {
        let path = dir.join(format!("{attr}.nc"));
        let mut file = netcdf::create(&path).unwrap();
        file.add_dimension("t", 2).unwrap();
        let mut var = file.add_variable::<i16>("PS", &["t"]).unwrap();
        var.put_attribute(attr, value).unwrap();
        path
    }

    #[test]
    fn encoding_attributes_must_be_one_usable_number() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "scale_factor",
                AttributeValue::Str("0.01".into()),
                r#"variable PS: scale_factor is a string ("0.01"), expected a number"#,
            ),
            (
                "add_offset",
                AttributeValue::Str("1".into()),
                r#"variable PS: add_offset is a string ("1"), expected a number"#,
            ),
            (
                "missing_value",
                AttributeValue::Str("-9999".into()),
                r#"variable PS: missing_value is a string ("-9999"), expected a number"#,
            ),
            (
                "scale_factor",
                AttributeValue::Double(0.0),
                "variable PS: scale_factor is 0; it must be a finite, non-zero number",
            ),
            (
                "scale_factor",
                AttributeValue::Float(f32::NAN),
                "variable PS: scale_factor is NaN; it must be a finite, non-zero number",
            ),
            (
                "add_offset",
                AttributeValue::Double(f64::INFINITY),
                "variable PS: add_offset is inf; it must be a finite number",
            ),
            (
                "scale_factor",
                AttributeValue::Doubles(vec![1.0, 2.0]),
                "variable PS: scale_factor has 2 values, expected one number",
            ),
        ];
        for (attr, value, want) in cases {
            let path = encoded_file(dir.path(), attr, value);
            let err = SourceFile::open(&path).unwrap_err().to_string();
            assert!(err.ends_with(want), "{attr}: {err}");
        }
        // A NaN _FillValue and a one-element list are fine.
        let path = encoded_file(dir.path(), "_FillValue", AttributeValue::Shorts(vec![-5]));
        let source = SourceFile::open(&path).unwrap();
        assert_eq!(
            source.variable("PS").unwrap().encoding.fill_value,
            Some(-5.0)
        );
        assert_eq!(
            encoding_number("_FillValue", &AttributeValue::Float(f32::NAN)).map(f64::is_nan),
            Ok(true)
        );
    }

    #[test]
    fn fill_value_and_a_different_missing_value_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("both.nc");
        {
            let mut file = netcdf::create(&path).unwrap();
            file.add_dimension("t", 2).unwrap();
            let mut var = file.add_variable::<f32>("PS", &["t"]).unwrap();
            var.set_fill_value(-9999f32).unwrap();
            var.put_attribute("missing_value", -1.0f32).unwrap();
        }
        let err = SourceFile::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("variable PS: _FillValue (-9999) and missing_value (-1) differ"),
            "{err}"
        );
    }

    #[test]
    fn variables_in_groups_are_rejected_naming_the_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.nc");
        {
            let mut file = netcdf::create(&path).unwrap();
            file.add_dimension("t", 2).unwrap();
            file.add_group("meta").unwrap(); // attributes only: ignored
            for name in ["b", "a"] {
                let mut group = file.add_group(name).unwrap();
                let mut inner = group.add_group("deep").unwrap();
                inner.add_variable::<f32>("sst", &["t"]).unwrap();
            }
        }
        let err = SourceFile::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("groups are not supported: the file has groups /a/deep, /b/deep;"),
            "{err}"
        );
    }

    #[test]
    fn string_variables_read_as_text_scalars_included() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strings.nc");
        {
            let mut file = netcdf::create(&path).unwrap();
            file.add_dimension("n", 3).unwrap();
            let mut crs = file.add_string_variable("crs", &[]).unwrap();
            crs.put_string("albers", netcdf::Extents::All).unwrap();
            let mut names = file.add_string_variable("names", &["n"]).unwrap();
            for (i, name) in ["a", "bb", ""].iter().enumerate() {
                names.put_string(name, [i]).unwrap();
            }
        }
        let source = SourceFile::open(&path).unwrap();
        assert_eq!(source.variable("crs").unwrap().shape, Vec::<u64>::new());
        assert_eq!(
            source.read("crs").unwrap(),
            Values::Text(vec!["albers".into()])
        );
        assert_eq!(
            source.read("names").unwrap(),
            Values::Text(vec!["a".into(), "bb".into(), "".into()])
        );
    }
}
