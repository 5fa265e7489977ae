//! Array metadata documents, edited as JSON so that everything a writer such as
//! xarray put there (codecs, attributes, key order) is kept as it was.
//!
//! V3: one `zarr.json` with `attributes` and `dimension_names` inside.
//! V2: `.zarray` plus `.zattrs` (dimension names in `_ARRAY_DIMENSIONS`).

use base64::Engine;
use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::values::{CfEncoding, ElementType};

/// Zarr format of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ZarrFormat {
    /// Zarr V2: `.zgroup`, `.zarray`, `.zattrs`, consolidated in `.zmetadata`.
    V2,
    /// Zarr V3: `zarr.json` per node, consolidated in the root `zarr.json`.
    V3,
}

impl ZarrFormat {
    /// 2 or 3, as `zarr_format` says.
    pub fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

/// An array's metadata is missing something zru needs or holds something it does
/// not understand.
#[derive(Debug, Error)]
#[error("array {array}: {reason}")]
pub struct ArrayDocError {
    /// The array's name.
    pub array: String,
    /// What is missing or wrong.
    pub reason: String,
}

/// Compressor for arrays zru creates.
#[derive(Debug, Clone, PartialEq)]
pub enum Compressor {
    /// Zstandard at this level (the default, level 3).
    Zstd(i32),
    /// Blosc with LZ4 and byte shuffle at this compression level.
    Blosc(i32),
    /// Deflate at this level (`gzip` in V3, `zlib` in V2).
    Gzip(i32),
    /// zlib-wrapped deflate (`numcodecs.zlib` in V3, `zlib` in V2), after a byte
    /// shuffle of numeric values if `shuffle`: the codecs of netCDF-4's deflate and
    /// shuffle filters, whose compressed chunks zru can copy as they are.
    Zlib {
        /// Deflate level.
        level: i32,
        /// Byte shuffle before compressing (numeric arrays only).
        shuffle: bool,
    },
    /// No compression.
    None,
}

impl Compressor {
    /// The compressor a dataset configures (`compressor` key); zstd level 3 when it
    /// says nothing, and zstd for a name the schema did not know.
    pub fn from_config(config: Option<&crate::config::CompressorConfig>) -> Self {
        match config {
            None => Self::Zstd(3),
            Some(c) => match c.name.as_str() {
                "blosc" => Self::Blosc(c.level.unwrap_or(5)),
                "gzip" => Self::Gzip(c.level.unwrap_or(5)),
                "zlib" => Self::Zlib {
                    level: c.level.unwrap_or(5),
                    shuffle: c.shuffle.unwrap_or(false),
                },
                "none" => Self::None,
                _ => Self::Zstd(c.level.unwrap_or(3)),
            },
        }
    }

    /// The V3 codecs after `bytes` (or `vlen-utf8`).
    fn v3_codecs(&self, element: ElementType) -> Vec<Value> {
        match self {
            Self::Zstd(level) => {
                vec![json!({"name": "zstd", "configuration": {"level": level, "checksum": false}})]
            }
            Self::Blosc(level) => vec![json!({"name": "blosc", "configuration": {
                "cname": "lz4", "clevel": level, "shuffle": "shuffle",
                "typesize": element.size().max(1), "blocksize": 0}})],
            Self::Gzip(level) => vec![json!({"name": "gzip", "configuration": {"level": level}})],
            Self::Zlib { level, shuffle } => {
                let mut codecs = Vec::new();
                if let Some(filter) = shuffle_filter(*shuffle, element) {
                    let size = filter["elementsize"].clone();
                    codecs.push(json!({"name": "numcodecs.shuffle",
                        "configuration": {"elementsize": size}}));
                }
                codecs.push(json!({"name": "numcodecs.zlib", "configuration": {"level": level}}));
                codecs
            }
            Self::None => Vec::new(),
        }
    }

    fn v2_compressor(&self) -> Value {
        match self {
            Self::Zstd(level) => json!({"id": "zstd", "level": level, "checksum": false}),
            Self::Blosc(level) => {
                json!({"id": "blosc", "cname": "lz4", "clevel": level, "shuffle": 1, "blocksize": 0})
            }
            Self::Gzip(level) | Self::Zlib { level, .. } => json!({"id": "zlib", "level": level}),
            Self::None => Value::Null,
        }
    }

    /// The V2 filters of a numeric array (`null` when none).
    fn v2_filters(&self, element: ElementType) -> Value {
        match self {
            Self::Zlib { shuffle, .. } => {
                shuffle_filter(*shuffle, element).map_or(Value::Null, |filter| json!([filter]))
            }
            _ => Value::Null,
        }
    }
}

/// numcodecs' byte shuffle of `element` values (V2 filter form), if asked for and the
/// values are numbers.
fn shuffle_filter(shuffle: bool, element: ElementType) -> Option<Value> {
    (shuffle && element != ElementType::Text)
        .then(|| json!({"id": "shuffle", "elementsize": element.size()}))
}

/// What zru needs to create a new array.
#[derive(Debug, Clone)]
pub struct NewArray {
    /// The array's name (a variable of the source file).
    pub name: String,
    /// Dimension names.
    pub dims: Vec<String>,
    /// Initial length of each dimension.
    pub shape: Vec<u64>,
    /// Chunk length along each dimension.
    pub chunks: Vec<u64>,
    /// Element type as stored.
    pub element: ElementType,
    /// CF `_FillValue` in stored units (`None`: the type's default fill is used).
    pub fill_value: Option<f64>,
    /// Attributes (CF attributes of the variable).
    pub attributes: Map<String, Value>,
    /// How chunks are compressed.
    pub compressor: Compressor,
}

/// One array's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayDoc {
    /// The array's name (its path under the store root).
    pub name: String,
    /// The store's format, which decides where each field lives.
    pub format: ZarrFormat,
    /// `zarr.json` (V3) or `.zarray` (V2).
    pub meta: Map<String, Value>,
    /// `.zattrs` (V2 only; V3 attributes live in `meta`).
    pub v2_attrs: Map<String, Value>,
}

fn json_number(x: f64, element: ElementType) -> Value {
    if element.is_integer() {
        if element == ElementType::U64 {
            return json!(x as u64);
        }
        return json!(x as i64);
    }
    if x.is_nan() {
        return json!("NaN");
    }
    if x.is_infinite() {
        return json!(if x > 0.0 { "Infinity" } else { "-Infinity" });
    }
    json!(x)
}

fn number_from_json(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// xarray writes a V3 float `_FillValue` as base64 of the little-endian bytes of a
/// float64, for float32 arrays too (and reads only that).
fn encode_fill_attribute(fill: f64, element: ElementType) -> Value {
    let engine = base64::engine::general_purpose::STANDARD;
    match element {
        ElementType::F32 => json!(engine.encode(f64::from(fill as f32).to_le_bytes())),
        ElementType::F64 => json!(engine.encode(fill.to_le_bytes())),
        _ => json_number(fill, element),
    }
}

fn decode_fill_attribute(value: &Value, element: ElementType) -> Option<f64> {
    if let Value::String(s) = value {
        if element.is_float() {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s) {
                return match (element, bytes.len()) {
                    (ElementType::F32, 4) => {
                        Some(f64::from(f32::from_le_bytes(bytes.try_into().ok()?)))
                    }
                    (ElementType::F32 | ElementType::F64, 8) => {
                        Some(f64::from_le_bytes(bytes.try_into().ok()?))
                    }
                    _ => None,
                };
            }
        }
    }
    number_from_json(value)
}

impl ArrayDoc {
    /// Builds the metadata of a new array the way xarray writes it.
    pub fn create(format: ZarrFormat, new: NewArray) -> Self {
        let element = new.element;
        // xarray reads a V2 array's fill_value as its _FillValue, so an integer or text
        // array without a CF fill gets `null` there (V3 keeps CF fills in attributes).
        // A V3 integer array without one gets netCDF's default fill, which xarray does
        // not mask (as from the NetCDF file), so missing chunks read as blank.
        let fill_json = match (format, element, new.fill_value) {
            (ZarrFormat::V2, ElementType::Text, _) => Value::Null,
            (ZarrFormat::V3, ElementType::Text, _) => json!(""),
            (_, _, Some(fill)) => json_number(fill, element),
            (_, e, None) if e.is_float() => json!("NaN"),
            (ZarrFormat::V2, _, None) => Value::Null,
            (ZarrFormat::V3, ElementType::I64, None) => json!(crate::values::NC_FILL_INT64),
            (ZarrFormat::V3, ElementType::U64, None) => json!(crate::values::NC_FILL_UINT64),
            (ZarrFormat::V3, e, None) => json_number(e.netcdf_default_fill(), e),
        };
        let mut attributes = new.attributes;
        match format {
            ZarrFormat::V3 => {
                if let (Some(fill), false) = (new.fill_value, element == ElementType::Text) {
                    attributes.insert("_FillValue".into(), encode_fill_attribute(fill, element));
                }
                let array_to_bytes = if element == ElementType::Text {
                    json!({"name": "vlen-utf8", "configuration": {}})
                } else {
                    json!({"name": "bytes", "configuration": {"endian": "little"}})
                };
                let mut codecs = vec![array_to_bytes];
                codecs.extend(new.compressor.v3_codecs(element));
                let meta = json!({
                    "shape": new.shape,
                    "data_type": element.zarr_v3_name(),
                    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": new.chunks}},
                    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                    "fill_value": fill_json,
                    "codecs": codecs,
                    "attributes": attributes,
                    "dimension_names": new.dims,
                    "zarr_format": 3,
                    "node_type": "array",
                    "storage_transformers": [],
                });
                Self {
                    name: new.name,
                    format,
                    meta: into_map(meta),
                    v2_attrs: Map::new(),
                }
            }
            ZarrFormat::V2 => {
                attributes.insert("_ARRAY_DIMENSIONS".into(), json!(new.dims));
                let filters = if element == ElementType::Text {
                    json!([{"id": "vlen-utf8"}])
                } else {
                    new.compressor.v2_filters(element)
                };
                let meta = json!({
                    "shape": new.shape,
                    "chunks": new.chunks,
                    "dtype": element.zarr_v2_dtype(),
                    "fill_value": fill_json,
                    "order": "C",
                    "filters": filters,
                    "dimension_separator": ".",
                    "compressor": new.compressor.v2_compressor(),
                    "zarr_format": 2,
                });
                Self {
                    name: new.name,
                    format,
                    meta: into_map(meta),
                    v2_attrs: attributes,
                }
            }
        }
    }

    fn error(&self, reason: impl Into<String>) -> ArrayDocError {
        ArrayDocError {
            array: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn u64_list(&self, value: Option<&Value>, what: &str) -> Result<Vec<u64>, ArrayDocError> {
        value
            .and_then(Value::as_array)
            .and_then(|items| items.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
            .ok_or_else(|| self.error(format!("metadata has no valid {what}")))
    }

    /// Length of each dimension (`shape`).
    pub fn shape(&self) -> Result<Vec<u64>, ArrayDocError> {
        self.u64_list(self.meta.get("shape"), "shape")
    }

    /// Sets the length of one axis.
    pub fn set_axis_len(&mut self, axis: usize, len: u64) -> Result<(), ArrayDocError> {
        let mut shape = self.shape()?;
        let slot = shape
            .get_mut(axis)
            .ok_or_else(|| self.error(format!("has no axis {axis}")))?;
        *slot = len;
        self.meta.insert("shape".into(), json!(shape));
        Ok(())
    }

    /// Regular chunk shape (for sharded V3 arrays, the shard shape).
    pub fn chunk_shape(&self) -> Result<Vec<u64>, ArrayDocError> {
        match self.format {
            ZarrFormat::V2 => self.u64_list(self.meta.get("chunks"), "chunks"),
            ZarrFormat::V3 => {
                let grid = self.meta.get("chunk_grid");
                if grid.and_then(|g| g.get("name")).and_then(Value::as_str) != Some("regular") {
                    return Err(self.error("only regular chunk grids are supported"));
                }
                self.u64_list(
                    grid.and_then(|g| g.get("configuration"))
                        .and_then(|c| c.get("chunk_shape")),
                    "chunk_grid.configuration.chunk_shape",
                )
            }
        }
    }

    /// The array's attributes (`.zattrs` in V2, `attributes` in V3).
    pub fn attributes(&self) -> &Map<String, Value> {
        match self.format {
            ZarrFormat::V2 => &self.v2_attrs,
            ZarrFormat::V3 => self
                .meta
                .get("attributes")
                .and_then(Value::as_object)
                .unwrap_or(empty_map()),
        }
    }

    /// The array's attributes, to edit (created empty if missing).
    pub fn attributes_mut(&mut self) -> &mut Map<String, Value> {
        match self.format {
            ZarrFormat::V2 => &mut self.v2_attrs,
            ZarrFormat::V3 => {
                let entry = self
                    .meta
                    .entry("attributes")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                match entry {
                    Value::Object(map) => map,
                    _ => unreachable!("attributes was just made an object"),
                }
            }
        }
    }

    /// Dimension names (V3 `dimension_names`, V2 `_ARRAY_DIMENSIONS`).
    pub fn dims(&self) -> Result<Vec<String>, ArrayDocError> {
        let names = match self.format {
            ZarrFormat::V3 => self.meta.get("dimension_names"),
            ZarrFormat::V2 => self.v2_attrs.get("_ARRAY_DIMENSIONS"),
        };
        names
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| self.error("has no dimension names (xarray needs them)"))
    }

    /// The element type (`data_type` in V3, `dtype` in V2); an error for a type zru
    /// does not handle.
    pub fn element_type(&self) -> Result<ElementType, ArrayDocError> {
        let found = match self.format {
            ZarrFormat::V3 => self
                .meta
                .get("data_type")
                .and_then(Value::as_str)
                .and_then(ElementType::from_zarr_v3_name),
            ZarrFormat::V2 => self
                .meta
                .get("dtype")
                .and_then(Value::as_str)
                .and_then(ElementType::from_zarr_v2_dtype),
        };
        found.ok_or_else(|| self.error("has a data type zru does not handle"))
    }

    /// The Zarr-level fill value (what a missing chunk reads as).
    pub fn zarr_fill(&self) -> Option<f64> {
        self.meta.get("fill_value").and_then(number_from_json)
    }

    /// How the stored numbers map to physical values, as xarray reads this array.
    pub fn cf_encoding(&self) -> CfEncoding {
        let attrs = self.attributes();
        let number = |k: &str| attrs.get(k).and_then(number_from_json);
        let element = self.element_type().unwrap_or(ElementType::F64);
        let fill_value = match self.format {
            ZarrFormat::V3 => attrs
                .get("_FillValue")
                .and_then(|v| decode_fill_attribute(v, element)),
            // xarray reads a V2 array's fill_value as its _FillValue.
            ZarrFormat::V2 => attrs
                .get("_FillValue")
                .and_then(number_from_json)
                .or_else(|| self.zarr_fill()),
        }
        .or_else(|| number("missing_value"));
        CfEncoding {
            scale_factor: number("scale_factor").unwrap_or(1.0),
            add_offset: number("add_offset").unwrap_or(0.0),
            fill_value,
        }
    }

    /// The value a blanked element gets: the CF fill if there is one; else NaN for
    /// floats and netCDF's default fill for integers (what an unwritten element of a
    /// NetCDF variable without `_FillValue` holds, and what xarray reads unmasked there).
    pub fn blank_value(&self) -> f64 {
        let element = self.element_type().unwrap_or(ElementType::F64);
        self.cf_encoding()
            .fill_value
            .unwrap_or_else(|| element.netcdf_default_fill())
    }

    /// True when a missing chunk already reads as blank, so blank chunks can be erased
    /// instead of written.
    pub fn missing_chunk_is_blank(&self) -> bool {
        if self.element_type() == Ok(ElementType::Text) {
            return true;
        }
        match (self.zarr_fill(), self.blank_value()) {
            (Some(z), b) => z == b || (z.is_nan() && b.is_nan()),
            (None, _) => false,
        }
    }

    /// Documents to write: `(key, json)`.
    pub fn documents(&self) -> Vec<(String, Value)> {
        match self.format {
            ZarrFormat::V3 => vec![(
                format!("{}/zarr.json", self.name),
                Value::Object(self.meta.clone()),
            )],
            ZarrFormat::V2 => vec![
                (
                    format!("{}/.zarray", self.name),
                    Value::Object(self.meta.clone()),
                ),
                (
                    format!("{}/.zattrs", self.name),
                    Value::Object(self.v2_attrs.clone()),
                ),
            ],
        }
    }
}

impl PartialEq for ArrayDocError {
    fn eq(&self, other: &Self) -> bool {
        self.array == other.array && self.reason == other.reason
    }
}

fn empty_map() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

pub(crate) fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sst(format: ZarrFormat) -> ArrayDoc {
        ArrayDoc::create(
            format,
            NewArray {
                name: "sst".into(),
                dims: vec!["time".into(), "lat".into()],
                shape: vec![2, 10],
                chunks: vec![1, 10],
                element: ElementType::I16,
                fill_value: Some(-32768.0),
                attributes: into_map(json!({"scale_factor": 0.01, "add_offset": 273.15})),
                compressor: Compressor::Zstd(3),
            },
        )
    }

    #[test]
    fn new_arrays_round_trip_their_properties_in_both_formats() {
        for format in [ZarrFormat::V2, ZarrFormat::V3] {
            let mut doc = sst(format);
            assert_eq!(doc.shape().unwrap(), vec![2, 10]);
            assert_eq!(doc.chunk_shape().unwrap(), vec![1, 10]);
            assert_eq!(doc.dims().unwrap(), vec!["time", "lat"]);
            assert_eq!(doc.element_type().unwrap(), ElementType::I16);
            let enc = doc.cf_encoding();
            assert_eq!(enc.fill_value, Some(-32768.0));
            assert_eq!(enc.scale_factor, 0.01);
            assert!(doc.missing_chunk_is_blank());
            doc.set_axis_len(0, 5).unwrap();
            assert_eq!(doc.shape().unwrap(), vec![5, 10]);
        }
    }

    #[test]
    fn integers_without_cf_fill_blank_to_the_netcdf_default_fill() {
        for format in [ZarrFormat::V2, ZarrFormat::V3] {
            let mut new = NewArray {
                name: "flags".into(),
                dims: vec!["time".into()],
                shape: vec![3],
                chunks: vec![1],
                element: ElementType::I16,
                fill_value: None,
                attributes: Map::new(),
                compressor: Compressor::None,
            };
            let doc = ArrayDoc::create(format, new.clone());
            assert_eq!(doc.blank_value(), -32767.0);
            assert_eq!(
                doc.cf_encoding().fill_value,
                None,
                "{format:?}: no mask in xarray"
            );
            // V3 missing chunks read as the default fill; V2 (fill_value null) must write it.
            assert_eq!(doc.missing_chunk_is_blank(), format == ZarrFormat::V3);
            new.element = ElementType::F32;
            assert!(ArrayDoc::create(format, new).blank_value().is_nan());
        }
    }

    #[test]
    fn xarray_v3_float_fill_is_base64_and_int_zarr_fill_may_differ() {
        let mut doc = sst(ZarrFormat::V3);
        // As xarray writes int arrays: zarr fill_value 0, CF _FillValue in attributes.
        doc.meta.insert("fill_value".into(), json!(0));
        assert!(!doc.missing_chunk_is_blank());
        assert_eq!(doc.blank_value(), -32768.0);
        assert_eq!(
            decode_fill_attribute(&json!("AAAAAAAA+H8="), ElementType::F64).map(f64::is_nan),
            Some(true)
        );
        assert_eq!(
            encode_fill_attribute(f64::NAN, ElementType::F64),
            json!("AAAAAAAA+H8=")
        );
        // float32 fills are written as float64 bytes, as xarray writes and reads them.
        let f32_fill = encode_fill_attribute(99999.0, ElementType::F32);
        assert_eq!(f32_fill, json!("AAAAAPBp+EA="));
        assert_eq!(
            decode_fill_attribute(&f32_fill, ElementType::F32),
            Some(99999.0)
        );
    }
}
