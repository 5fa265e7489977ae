//! The writes every family shares along the append dimension: the event's [`Context`]
//! (and the errors that name its key), new array metadata, growing the append arrays,
//! the provenance column (create, write, scan), blanking rows and layout checks.
//!
//! "Slots" and "rows" are the same thing here: indices along the append dimension.

use std::collections::BTreeMap;

use serde_json::json;
use zru_handlers::identity::{number_text, Identity};
use zru_handlers::{ranges_from_indices, runs_by_position, IndexRange};

use crate::config::Dataset;
use crate::source::{SourceFile, SourceVariable};
use crate::store::{ArrayDoc, Compressor, NewArray, Transaction, ZarrFormat};
use crate::update::{Region, UpdateError};
use crate::values::{CfEncoding, ElementType, Values, ValuesError};

/// Chunk length of the 1-D arrays zru creates along the append dimension (the time
/// coordinate, time-like variables, provenance). Readers load these whole to index the
/// store, so they are not chunked like the data: one file per 1024 slots, not per slot.
pub const AXIS_CHUNK: u64 = 1024;

/// The event being applied: its dataset and object key (named in every error).
pub struct Context<'a> {
    /// The dataset the event was routed to.
    pub dataset: &'a Dataset,
    /// The object key (relative to the raw root).
    pub key: &'a str,
}

impl Context<'_> {
    /// A store read or write that failed.
    pub fn store_error(&self, source: crate::store::StoreError) -> UpdateError {
        UpdateError::Store {
            key: self.key.to_string(),
            source: Box::new(source),
        }
    }

    /// The source file that could not be read.
    pub fn source_error(&self, source: crate::source::SourceError) -> UpdateError {
        UpdateError::Source {
            key: self.key.to_string(),
            source: Box::new(source),
        }
    }

    /// The dataset's append dimension.
    pub fn append_dim(&self) -> &str {
        &self.dataset.config.append_dim
    }

    /// A file whose grid differs from the store's.
    pub fn wrong_grid(&self, reason: String) -> UpdateError {
        UpdateError::WrongGrid {
            key: self.key.to_string(),
            reason,
        }
    }

    /// Values of a variable that could not be converted.
    pub fn values_error(&self, variable: &str, source: ValuesError) -> UpdateError {
        UpdateError::Values {
            key: self.key.to_string(),
            variable: variable.to_string(),
            source,
        }
    }

    /// A file with a variable named like the dataset's provenance array is rejected:
    /// copying it would replace the slots' source keys (docs/config.md).
    pub fn reject_provenance_clash(&self, source: &SourceFile) -> Result<(), UpdateError> {
        let name = self.dataset.provenance_variable();
        if source.variable(name).is_some() {
            return Err(self.schema(
                name,
                format!(
                    "the file has a variable named like the dataset's provenance_variable {name:?}; set provenance_variable in {} to a name the files do not use",
                    self.dataset.file.display()
                ),
            ));
        }
        Ok(())
    }

    /// A variable that does not fit the store's schema.
    pub fn schema(&self, variable: &str, reason: String) -> UpdateError {
        UpdateError::Schema {
            key: self.key.to_string(),
            variable: variable.to_string(),
            reason,
        }
    }

    /// The metadata and element type of the store array that file variable `name` is
    /// written to, which the file's preparation created if it was missing.
    pub fn prepared_array<'t>(
        &self,
        tx: &'t Transaction<'_>,
        name: &str,
    ) -> Result<(&'t ArrayDoc, ElementType), UpdateError> {
        let doc = tx
            .array_doc(name)
            .ok_or_else(|| self.schema(name, "array missing after preparation".into()))?;
        let element = doc
            .element_type()
            .map_err(|e| self.schema(name, e.to_string()))?;
        Ok((doc, element))
    }
}

/// The provenance keys of slots `[start, start + count)` ("" for each if the array
/// does not hold text).
pub fn provenance_keys(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    start: u64,
    count: u64,
) -> Result<Vec<String>, UpdateError> {
    let name = cx.dataset.provenance_variable();
    match tx
        .read(name, &[start], &[count])
        .map_err(|e| cx.store_error(e))?
    {
        Values::Text(keys) => Ok(keys),
        _ => Ok(vec![String::new(); count as usize]),
    }
}

/// The provenance (source key, "" if none) of each slot, reading each run of
/// consecutive slots at once.
pub fn provenance_at(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    slots: &[u64],
) -> Result<Vec<(u64, String)>, UpdateError> {
    let mut holders = Vec::with_capacity(slots.len());
    for range in ranges_from_indices(slots) {
        let keys = provenance_keys(cx, tx, range.start, range.len())?;
        holders.extend((range.start..range.stop).zip(keys));
    }
    Ok(holders)
}

/// Dimension lengths of the store, from its arrays' shapes.
pub fn store_dim_lengths(arrays: &BTreeMap<String, ArrayDoc>) -> BTreeMap<String, u64> {
    let mut lengths = BTreeMap::new();
    for doc in arrays.values() {
        if let (Ok(dims), Ok(shape)) = (doc.dims(), doc.shape()) {
            for (dim, len) in dims.into_iter().zip(shape) {
                lengths.entry(dim).or_insert(len);
            }
        }
    }
    lengths
}

/// Rejects a file variable whose dimension names, or text-ness, differ from the
/// store array of the same name.
pub fn check_same_layout(
    cx: &Context<'_>,
    doc: &ArrayDoc,
    var: &SourceVariable,
) -> Result<(), UpdateError> {
    let store_dims = doc
        .dims()
        .map_err(|e| cx.schema(&var.name, e.to_string()))?;
    if store_dims != var.dims {
        return Err(cx.schema(
            &var.name,
            format!(
                "dimensions {:?} in the file but {store_dims:?} in the store",
                var.dims
            ),
        ));
    }
    let store_type = doc
        .element_type()
        .map_err(|e| cx.schema(&var.name, e.to_string()))?;
    if (store_type == ElementType::Text) != (var.element == ElementType::Text) {
        return Err(cx.schema(
            &var.name,
            format!(
                "mismatched types: {:?} in the file but {store_type:?} in the store",
                var.element
            ),
        ));
    }
    Ok(())
}

/// Names of the transaction's arrays that have the append dimension (on any axis).
pub fn append_arrays(tx: &Transaction<'_>, append_dim: &str) -> Vec<String> {
    tx.arrays()
        .values()
        .filter(|doc| append_axis(doc, append_dim).is_some())
        .map(|doc| doc.name.clone())
        .collect()
}

/// The axis of a store array that is the append dimension, if it has it.
pub fn append_axis(doc: &ArrayDoc, append_dim: &str) -> Option<usize> {
    doc.dims().ok()?.iter().position(|d| d == append_dim)
}

/// The dataset's compressor, for arrays zru creates.
pub fn compressor_for_new_arrays(cx: &Context<'_>) -> Compressor {
    Compressor::from_config(cx.dataset.config.compressor.as_ref())
}

/// Stages a new array for a file variable, with the given shape, after checking that
/// the store's backend can hold its name (on S3 a control character cannot be part of
/// an object name): a name it cannot hold rejects the file before anything is written.
pub fn create_array(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    var: &SourceVariable,
    shape: Vec<u64>,
) -> Result<(), UpdateError> {
    if let Some(reason) = tx.unstorable_array_name(&var.name) {
        return Err(cx.schema(&var.name, format!("{reason}; rename the variable")));
    }
    let format = tx.format();
    tx.put_array(new_array_doc(cx, format, var, shape));
    Ok(())
}

/// Metadata of a new array for a file variable, with the given shape.
pub fn new_array_doc(
    cx: &Context<'_>,
    format: ZarrFormat,
    var: &SourceVariable,
    shape: Vec<u64>,
) -> ArrayDoc {
    let append_dim = cx.append_dim();
    let chunks = if var.dims.len() == 1 && var.dims[0] == append_dim {
        vec![AXIS_CHUNK.max(cx.dataset.chunk_len(append_dim, 1))]
    } else {
        var.dims
            .iter()
            .zip(&shape)
            .map(|(d, &n)| cx.dataset.chunk_len(d, n))
            .collect()
    };
    let mut attributes = var.attributes.clone();
    if var.element == ElementType::Text {
        attributes.remove("_FillValue");
    }
    ArrayDoc::create(
        format,
        NewArray {
            name: var.name.clone(),
            dims: var.dims.clone(),
            shape,
            chunks,
            element: var.element,
            fill_value: var.encoding.fill_value,
            attributes,
            compressor: compressor_for_new_arrays(cx),
        },
    )
}

/// Creates the provenance array of a new store.
pub fn ensure_provenance(cx: &Context<'_>, tx: &mut Transaction<'_>, len: u64) {
    let provenance = cx.dataset.provenance_variable().to_string();
    if tx.array_doc(&provenance).is_some() {
        return;
    }
    let mut attributes = serde_json::Map::new();
    attributes.insert(
        "long_name".into(),
        json!("object key of the source file of each slot (empty when blank)"),
    );
    attributes.insert("zru_dataset".into(), json!(cx.dataset.name()));
    let format = tx.format();
    tx.put_array(ArrayDoc::create(
        format,
        NewArray {
            name: provenance,
            dims: vec![cx.append_dim().to_string()],
            shape: vec![len],
            chunks: vec![AXIS_CHUNK],
            element: ElementType::Text,
            fill_value: None,
            attributes,
            compressor: compressor_for_new_arrays(cx),
        },
    ));
}

/// Grows every array that has the append dimension to `new_len` along it.
pub fn grow_append_arrays(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    new_len: u64,
) -> Result<(), UpdateError> {
    for name in append_arrays(tx, cx.append_dim()) {
        let Some(doc) = tx.array_doc(&name) else {
            continue;
        };
        let Some(axis) = append_axis(doc, cx.append_dim()) else {
            continue;
        };
        let shape = doc.shape().map_err(|e| cx.schema(&name, e.to_string()))?;
        if shape.get(axis).copied().unwrap_or(0) < new_len {
            let mut grown = doc.clone();
            grown
                .set_axis_len(axis, new_len)
                .map_err(|e| cx.schema(&name, e.to_string()))?;
            tx.put_array(grown);
        }
    }
    Ok(())
}

/// Blanks `range` along the append dimension of array `name` (written as fill).
pub fn blank_slots(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    name: &str,
    range: IndexRange,
) -> Result<(), UpdateError> {
    let doc = tx
        .array_doc(name)
        .ok_or_else(|| cx.schema(name, "no such array".into()))?;
    let axis = append_axis(doc, cx.append_dim())
        .ok_or_else(|| cx.schema(name, format!("has no {} dimension", cx.append_dim())))?;
    let mut shape = doc.shape().map_err(|e| cx.schema(name, e.to_string()))?;
    let mut start = vec![0; shape.len()];
    start[axis] = range.start;
    shape[axis] = range.len();
    tx.blank(name, &start, &shape)
        .map_err(|e| cx.store_error(e))
}

/// Writes the event's key into the provenance array at `indices`.
pub fn write_provenance(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    indices: &[u64],
) -> Result<(), UpdateError> {
    let name = cx.dataset.provenance_variable().to_string();
    for (_, range) in runs_by_position(indices) {
        let keys = Values::Text(vec![cx.key.to_string(); range.len() as usize]);
        tx.write(&name, &[range.start], &[range.len()], keys)
            .map_err(|e| cx.store_error(e))?;
    }
    Ok(())
}

/// Indices whose provenance is the key, scanning the provenance array chunk by chunk.
pub fn slots_with_provenance(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
) -> Result<Vec<u64>, UpdateError> {
    let name = cx.dataset.provenance_variable();
    let Some(doc) = tx.array_doc(name) else {
        return Ok(Vec::new());
    };
    let len = doc.shape().map_err(|e| cx.schema(name, e.to_string()))?[0];
    let chunk = doc
        .chunk_shape()
        .map_err(|e| cx.schema(name, e.to_string()))?[0]
        .max(1);
    let mut slots = Vec::new();
    let mut start = 0;
    while start < len {
        let count = chunk.min(len - start);
        let keys = provenance_keys(cx, tx, start, count)?;
        slots.extend(
            keys.iter()
                .enumerate()
                .filter(|(_, k)| k.as_str() == cx.key)
                .map(|(i, _)| start + i as u64),
        );
        start += count;
    }
    Ok(slots)
}

/// Blanks every append-dimension array except the coordinate (so the provenance too)
/// at `slots`; returns the slots as ranges.
pub fn blank_slots_of_key(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    slots: &[u64],
) -> Result<Vec<IndexRange>, UpdateError> {
    let ranges = ranges_from_indices(slots);
    if ranges.is_empty() {
        return Ok(ranges);
    }
    let names: Vec<String> = append_arrays(tx, cx.append_dim())
        .into_iter()
        .filter(|n| n != cx.append_dim())
        .collect();
    for name in names {
        for range in &ranges {
            blank_slots(cx, tx, &name, *range)?;
        }
    }
    Ok(ranges)
}

/// An event's region: slots `[start, stop)` of the append dimension.
pub fn slot_region(cx: &Context<'_>, start: u64, stop: u64) -> Option<Region> {
    Some(Region::along(cx.append_dim(), start, stop))
}

/// Ranges as `a:b c:d`, for notes.
pub fn describe_ranges(ranges: &[IndexRange]) -> String {
    ranges
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Relative tolerance when comparing a file's coordinate values with the store's.
const COORDINATE_TOLERANCE: f64 = 1e-6;

/// Rejects a static variable (coordinates, grid mappings, 2-D latitude/longitude,
/// bounds, masks: anything without the append dimension) whose values differ from the
/// store's. Numbers are compared as physical values (unpacked, fill as missing) with a
/// relative tolerance, so float32 and float64 copies of one grid agree; text exactly.
pub fn check_static(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    source: &SourceFile,
    var: &SourceVariable,
    doc: &ArrayDoc,
) -> Result<(), UpdateError> {
    let file_values = source.read(&var.name).map_err(|e| cx.source_error(e))?;
    let start = vec![0; var.shape.len()];
    let store_values = tx
        .read(&var.name, &start, &var.shape)
        .map_err(|e| cx.store_error(e))?;
    let differs = |i: usize, a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
        let what = if var.dims.len() == 1 && var.dims[0] == var.name {
            "coordinate"
        } else {
            "static variable"
        };
        Err(cx.wrong_grid(format!(
            "{what} {}[{i}] is {a} in the file but {b} in the store",
            var.name
        )))
    };
    if let (Values::Text(a), Values::Text(b)) = (&file_values, &store_values) {
        return match a.iter().zip(b).position(|(x, y)| x != y) {
            Some(i) => differs(i, &a[i], &b[i]),
            None => Ok(()),
        };
    }
    let physical = |values: &Values, encoding: &CfEncoding| {
        values
            .to_f64_vec()
            .map(|raw| {
                raw.into_iter()
                    .map(|r| encoding.physical(r))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| cx.values_error(&var.name, e))
    };
    let file_values = physical(&file_values, &var.encoding)?;
    let store_values = physical(&store_values, &doc.cf_encoding())?;
    for (i, (a, b)) in file_values.iter().zip(&store_values).enumerate() {
        let scale = a.abs().max(b.abs()).max(1.0);
        let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= COORDINATE_TOLERANCE * scale;
        if !same {
            return differs(i, a, b);
        }
    }
    Ok(())
}

/// Identity parts as text: strings as they are, numbers without decimals.
pub fn identity_texts(values: &Values) -> Vec<String> {
    match values {
        Values::Text(texts) => texts.clone(),
        numbers => numbers
            .to_f64_vec()
            .unwrap_or_default()
            .into_iter()
            .map(number_text)
            .collect(),
    }
}

/// Zips identity columns (one per identity variable) into identities.
pub fn zip_identities(columns: &[Vec<String>], count: usize) -> Vec<Identity> {
    (0..count)
        .map(|i| {
            let parts: Vec<&str> = columns
                .iter()
                .map(|c| c.get(i).map_or("", String::as_str))
                .collect();
            Identity::new(&parts)
        })
        .collect()
}

/// Text equal to a `char` variable's `_FillValue` (`" "` in Argo files) becomes the
/// store's missing text, `""`: xarray masks it when it reads the file, and `""` is what
/// levels and rows a file does not have read as.
pub fn mask_text_fill(var: &SourceVariable, values: Values) -> Values {
    match (values, &var.text_fill) {
        (Values::Text(texts), Some(fill)) => Values::Text(
            texts
                .into_iter()
                .map(|t| if t == *fill { String::new() } else { t })
                .collect(),
        ),
        (values, _) => values,
    }
}

/// Blanks, in the file's rows, the store's variables the file lacks (`kept`: the
/// variables it writes, by their names in the store). Rows from `old_len` on (appended)
/// need it only where a missing chunk does not read as blank.
pub fn blank_uncovered(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    kept: &[&str],
    rows: &[u64],
    old_len: u64,
) -> Result<(), UpdateError> {
    let provenance = cx.dataset.provenance_variable();
    let runs = runs_by_position(rows);
    for name in append_arrays(tx, cx.append_dim()) {
        if name == provenance || kept.contains(&name.as_str()) {
            continue;
        }
        let blank_is_free = tx
            .array_doc(&name)
            .is_some_and(crate::store::ArrayDoc::missing_chunk_is_blank);
        for (_, range) in &runs {
            if range.start < old_len || !blank_is_free {
                blank_slots(cx, tx, &name, *range)?;
            }
        }
    }
    Ok(())
}

/// Blanks rows in every append-dimension array, identity and provenance included.
pub fn blank_rows(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    rows: &[u64],
) -> Result<(), UpdateError> {
    let ranges = ranges_from_indices(rows);
    for name in append_arrays(tx, cx.append_dim()) {
        for range in &ranges {
            blank_slots(cx, tx, &name, *range)?;
        }
    }
    Ok(())
}

/// `[first, last + 1)` of some rows.
pub fn span(rows: &[u64]) -> IndexRange {
    let first = rows.iter().min().copied().unwrap_or(0);
    let last = rows.iter().max().map_or(0, |r| r + 1);
    IndexRange::new(first, last)
}

/// The region of a span of rows along the append dimension.
pub fn region(cx: &Context<'_>, span: IndexRange) -> Region {
    Region::along(cx.append_dim(), span.start, span.stop)
}

/// A span of rows as text: `N_PROF[3:7]`.
pub fn span_text(cx: &Context<'_>, span: IndexRange) -> String {
    format!("{}[{}:{}]", cx.append_dim(), span.start, span.stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_columns_zip_into_trimmed_identities() {
        let platforms = identity_texts(&Values::Text(vec!["2902093 ".into(), "2902093 ".into()]));
        let cycles = identity_texts(&Values::I32(vec![1, 2]));
        let directions = identity_texts(&Values::Text(vec!["A".into(), "D".into()]));
        let ids = zip_identities(&[platforms, cycles, directions], 2);
        assert_eq!(ids[0].to_string(), "2902093/1/A");
        assert_eq!(ids[1].to_string(), "2902093/2/D");
    }

    #[test]
    fn the_span_covers_scattered_rows() {
        assert_eq!(span(&[7, 2, 9]), IndexRange::new(2, 10));
    }
}
