//! Reading a NetCDF source file (netCDF3 classic or netCDF-4) through netCDF-C.
//!
//! A [`SourceFile`] lists its variables with their dimensions, element type, CF
//! encoding and attributes (as JSON, ready for Zarr), and reads a variable's values.
//! Packed integers stay packed; `char` arrays become text along their last dimension
//! when xarray would join it (see [`string_dims`]), else one-character strings.

use std::path::{Path, PathBuf};

use netcdf::types::{FloatType, IntType, NcVariableType};
use netcdf::AttributeValue;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::values::{CfEncoding, ElementType, Values};

pub mod bands;
pub use bands::{Band, BandAssembler, BandPlan};

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{path}: cannot open as netCDF: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: netcdf::Error,
    },
    #[error("{path}: variable {variable}: cannot read values: {source}")]
    Read {
        path: PathBuf,
        variable: String,
        #[source]
        source: netcdf::Error,
    },
    #[error("{path}: variable {variable} has type {kind}, which zru cannot store")]
    UnsupportedType {
        path: PathBuf,
        variable: String,
        kind: String,
    },
    #[error("{path}: {source}")]
    Classic {
        path: PathBuf,
        #[source]
        source: crate::netcdf3::ClassicError,
    },
    #[error("{path}: variable {variable}: cannot join read pieces: {reason}")]
    Bands {
        path: PathBuf,
        variable: String,
        reason: String,
    },
    #[error("{path}: no variable {variable}")]
    NoVariable { path: PathBuf, variable: String },
    #[error("{path}: attribute {attribute} of {variable}: {source}")]
    Attribute {
        path: PathBuf,
        variable: String,
        attribute: String,
        #[source]
        source: netcdf::Error,
    },
}

/// What zru knows about one variable of a source file.
#[derive(Debug, Clone)]
pub struct SourceVariable {
    pub name: String,
    /// Dimensions as stored in Zarr (a `char` variable loses its string-length dim).
    pub dims: Vec<String>,
    pub shape: Vec<u64>,
    pub element: ElementType,
    pub encoding: CfEncoding,
    /// CF attributes other than `_FillValue` (which lives in `encoding`).
    pub attributes: Map<String, Value>,
    /// Length of the trailing string dimension of a `char` variable.
    char_len: Option<usize>,
    /// `_FillValue` of a `char` variable (`" "` in Argo files), which xarray masks.
    pub text_fill: Option<String>,
}

impl SourceVariable {
    pub fn has_dim(&self, dim: &str) -> bool {
        self.dims.iter().any(|d| d == dim)
    }

    pub fn element_count(&self) -> u64 {
        self.shape.iter().product()
    }

    /// `units` and `calendar` attributes, for time variables.
    pub fn time_units(&self) -> (Option<&str>, Option<&str>) {
        let text = |k: &str| self.attributes.get(k).and_then(Value::as_str);
        (text("units"), text("calendar"))
    }
}

/// An open NetCDF file.
pub struct SourceFile {
    path: PathBuf,
    file: netcdf::File,
    variables: Vec<SourceVariable>,
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
        let file = netcdf::open(path).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
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
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn variables(&self) -> &[SourceVariable] {
        &self.variables
    }

    pub fn variable(&self, name: &str) -> Option<&SourceVariable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// Length of a dimension, if the file has it.
    pub fn dim_len(&self, name: &str) -> Option<u64> {
        self.file.dimension(name).map(|d| d.len() as u64)
    }

    /// Global attributes as JSON.
    pub fn global_attributes(&self) -> Result<Map<String, Value>, SourceError> {
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
        self.read_extents(name, netcdf::Extents::All)
    }

    /// Reads a variable in bands along one axis (see [`bands`]), calling `emit` with
    /// each band in order; `emit` returns `false` to stop early. A variable that is one
    /// band anyway is read whole, as one band along axis 0.
    pub fn read_bands(
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
        let row_len: u64 = described.shape[plan.axis + 1..].iter().product();
        let mut assembler = BandAssembler::new(plan, row_len);
        for piece in plan.pieces() {
            let extents: Vec<std::ops::Range<usize>> = described
                .shape
                .iter()
                .enumerate()
                .map(|(axis, &len)| match axis == plan.axis {
                    true => piece.start as usize..piece.end as usize,
                    false => 0..len as usize,
                })
                .collect();
            let values = self.read_extents(name, extents.into())?;
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
                kind: format!("{vartype:?}"),
            })
        }
    };
    let mut attributes = Map::new();
    let mut encoding = CfEncoding::default();
    let mut text_fill = None;
    for attribute in variable.attributes() {
        let attr_name = attribute.name().to_string();
        let value = attribute.value().map_err(|source| SourceError::Attribute {
            path: path.to_path_buf(),
            variable: name.clone(),
            attribute: attr_name.clone(),
            source,
        })?;
        match attr_name.as_str() {
            "_FillValue" => {
                if let AttributeValue::Str(text) = &value {
                    text_fill = Some(text.clone());
                }
                encoding.fill_value = attribute_number(&value);
                continue;
            }
            "scale_factor" => encoding.scale_factor = attribute_number(&value).unwrap_or(1.0),
            "add_offset" => encoding.add_offset = attribute_number(&value).unwrap_or(0.0),
            "missing_value" if encoding.fill_value.is_none() => {
                encoding.fill_value = attribute_number(&value)
            }
            _ => {}
        }
        attributes.insert(attr_name, attribute_json(value));
    }
    if element == ElementType::Text {
        encoding = CfEncoding::default();
    } else if encoding.fill_value.is_none() && element.is_float() {
        // netCDF-C's default fill for floats; xarray masks it only when declared, so
        // only declared fills matter. Keep None.
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

/// The first number of an attribute (for `_FillValue`, `scale_factor`, ...).
fn attribute_number(value: &AttributeValue) -> Option<f64> {
    match attribute_json(value.clone()) {
        Value::Number(n) => n.as_f64(),
        Value::Array(items) => items.first().and_then(Value::as_f64),
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        _ => None,
    }
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
pub fn attribute_json(value: AttributeValue) -> Value {
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
            attribute_number(&AttributeValue::Shorts(vec![-32766, 1])),
            Some(-32766.0)
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
}
