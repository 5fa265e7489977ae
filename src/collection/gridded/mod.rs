//! Gridded time series: a file's variables go to the slots of the append dimension its
//! times occupy; a removal blanks the slots whose provenance is the removed key.
//!
//! Placement on the time axis is planned by [`zru_handlers::gridded`]; this module
//! reads the file, checks its grid against the store's and stages the writes.

mod options;
mod passthrough;
mod time_axis;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use zru_handlers::cf_time::TimeUnits;
use zru_handlers::gridded::{place_times, Placement, PlacementRules, DEFAULT_MAX_NEW_SLOTS};
use zru_handlers::{ranges_from_indices, runs_by_position};

pub use options::{
    GriddedOptions, DEFAULT_TIME_TOLERANCE, MAX_TIME_STEP_SECONDS, MAX_TIME_TOLERANCE_SECONDS,
    MIN_TIME_STEP_SECONDS,
};

use self::passthrough::Plan;
use self::time_axis::StoreTimeAxis;
use super::rows::{
    append_arrays, blank_slots, blank_slots_of_key, check_same_layout, check_static, create_array,
    describe_ranges, ensure_provenance, grow_append_arrays, provenance_at, slot_region,
    slots_with_provenance, store_dim_lengths, write_provenance, Context,
};
use super::time_like::{check_same_calendar, TimeLikeVariables};
use super::{Batch, Collection, FamilyOptions};
use crate::config::{Dataset, DatasetConfig, Problem};
use crate::source::{Band, RawChunk, SourceFile, SourceVariable};
use crate::store::{ArrayDoc, Transaction};
use crate::update::{Action, Applied, UpdateError};
use crate::values::{from_f64_values, CfEncoding, ElementType, Values};

/// The gridded family (`"handler": "gridded"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gridded;

impl Collection for Gridded {
    fn name(&self) -> &'static str {
        "gridded"
    }

    fn option_keys(&self) -> &'static [&'static str] {
        options::OPTION_KEYS
    }

    fn parse_options(
        &self,
        config: &DatasetConfig,
        options: serde_json::Map<String, Value>,
    ) -> Result<Arc<dyn FamilyOptions>, Vec<Problem>> {
        options::parse(config, options)
    }

    /// One slot per chunk: a file (one or a few times) rewrites only its own chunks.
    fn default_append_chunk(&self) -> u64 {
        1
    }

    fn begin_batch(&self) -> Box<dyn Batch> {
        Box::new(GriddedBatch)
    }
}

/// A gridded batch: nothing is cached between events (the time axis is read per
/// file, through the transaction).
struct GriddedBatch;

impl Batch for GriddedBatch {
    /// Stages a created (or revised) file into its region of the dataset's store.
    fn stage_created(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
        path: &Path,
    ) -> Result<Applied, UpdateError> {
        let cx = Context { dataset, key };
        let placed = place_file(&cx, tx, path)?;
        let (source, placement) = (&placed.source, &placed.placement);
        let variables = placed.variables();
        let variables = variables.as_slice();

        if tx.arrays().is_empty() {
            tx.root_attrs = source.global_attributes().map_err(|e| cx.source_error(e))?;
        }
        let created = prepare_arrays(&cx, tx, source, variables, placement)?;
        write_time_slots(&cx, tx, placement)?;
        let times = TimeLikeVariables::new(&cx, source, &placed.time_units);
        write_variables(&cx, tx, source, variables, placement, &created, &times)?;
        blank_uncovered(&cx, tx, variables, placement)?;
        // A revision whose times moved: the key's earlier slots the file no longer covers
        // are blanked, as if the old version had been removed first.
        let earlier: Vec<u64> = slots_with_provenance(&cx, tx)?
            .into_iter()
            .filter(|slot| !placement.indices.contains(slot))
            .collect();
        let earlier = blank_slots_of_key(&cx, tx, &earlier)?;
        write_provenance(&cx, tx, &placement.indices)?;

        let action = if placement.overwrites() {
            Action::Overwrote
        } else {
            Action::Appended
        };
        let region = placement.region();
        Ok(Applied {
            action,
            region: slot_region(&cx, region.start, region.stop),
            note: (!earlier.is_empty())
                .then(|| format!("blanked this key's earlier {}", describe_ranges(&earlier))),
            stats: Default::default(),
        })
    }

    /// Stages the blanking of every slot whose provenance is `key`; the time values stay.
    fn stage_removed(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
    ) -> Result<Applied, UpdateError> {
        let cx = Context { dataset, key };
        let slots = slots_with_provenance(&cx, tx)?;
        if slots.is_empty() {
            return Ok(Applied {
                action: Action::Unchanged,
                region: None,
                note: Some(format!("no slot of {} holds this key", dataset.name())),
                stats: Default::default(),
            });
        }
        let ranges = blank_slots_of_key(&cx, tx, &slots)?;
        let first = ranges.first().map_or(0, |r| r.start);
        let last = ranges.last().map_or(0, |r| r.stop);
        Ok(Applied {
            action: Action::Blanked,
            region: slot_region(&cx, first, last),
            note: (ranges.len() > 1).then(|| format!("blanked {}", describe_ranges(&ranges))),
            stats: Default::default(),
        })
    }

    /// Records `key` as the source of the slots its file's times occupy, writing no data:
    /// for slots written before zru managed the store (by `xarray.to_zarr`), so that a
    /// later removal or revision of the key finds them. Every time of the file must
    /// already be in the store, on a slot that no other key holds.
    fn stage_adopted(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
        path: &Path,
    ) -> Result<Applied, UpdateError> {
        if !path.is_file() {
            return Err(UpdateError::MissingObject {
                key: key.to_string(),
                path: path.to_path_buf(),
            });
        }
        let cx = Context { dataset, key };
        if tx.arrays().is_empty() {
            return Err(UpdateError::NoStore {
                key: key.to_string(),
                store: dataset.store_path.clone(),
            });
        }
        let placement = place_file(&cx, tx, path)?.placement;
        let not_adoptable = |reason: String| UpdateError::Adopt {
            key: key.to_string(),
            reason,
        };
        if placement.new_len > placement.old_len || placement.indices.is_empty() {
            return Err(not_adoptable(format!(
                "its times are not all in the store (it has {} slots): ingest it instead",
                placement.old_len
            )));
        }
        ensure_provenance(&cx, tx, placement.old_len);
        let holders = provenance_at(&cx, tx, &placement.indices)?;
        if let Some((slot, other)) = holders
            .iter()
            .find(|(_, holder)| !holder.is_empty() && holder != key)
        {
            return Err(not_adoptable(format!("slot {slot} already holds {other}")));
        }
        write_provenance(&cx, tx, &placement.indices)?;
        let region = placement.region();
        Ok(Applied {
            action: Action::Adopted,
            region: slot_region(&cx, region.start, region.stop),
            note: None,
            stats: Default::default(),
        })
    }
}

/// The gridded options of a dataset (defaults if it is not gridded, which the
/// registry makes impossible).
fn options(dataset: &Dataset) -> GriddedOptions {
    dataset
        .options::<GriddedOptions>()
        .cloned()
        .unwrap_or(GriddedOptions {
            time_step_seconds: None,
            time_tolerance_seconds: 1e-3,
        })
}

/// A file opened and placed on the store's time axis.
struct PlacedFile {
    source: SourceFile,
    variables: Vec<String>,
    placement: Placement,
    /// The time coordinate's units in the file and in the store.
    time_units: (TimeUnits, TimeUnits),
}

impl PlacedFile {
    fn variables(&self) -> Vec<&SourceVariable> {
        self.variables
            .iter()
            .filter_map(|name| self.source.variable(name))
            .collect()
    }
}

/// Opens a file, checks its grid against the store's and places its times.
fn place_file(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    path: &Path,
) -> Result<PlacedFile, UpdateError> {
    let source = SourceFile::open(path).map_err(|e| cx.source_error(e))?;
    cx.reject_provenance_clash(&source)?;
    let time_var = time_variable(cx, &source)?;
    let file_units = time_units(cx, &time_var)?;
    let store_units = match tx.array_doc(cx.append_dim()) {
        Some(doc) => store_time_units(cx, doc)?,
        None => file_units,
    };
    check_same_calendar(cx, &time_var.name, &file_units, &store_units)?;
    let raw_times = source
        .read(cx.append_dim())
        .map_err(|e| cx.source_error(e))?;
    let file_times = decode_times(
        cx,
        &raw_times,
        &time_var.encoding,
        &file_units,
        &store_units,
    )?;

    let variables = kept_variables(cx, &source);
    check_grid(cx, tx, &source, &variables)?;

    let options = options(cx.dataset);
    let rules = PlacementRules {
        time_step: options
            .time_step_seconds
            .map(|s| s / store_units.unit_seconds),
        tolerance: options.time_tolerance_seconds / store_units.unit_seconds,
        max_new_slots: DEFAULT_MAX_NEW_SLOTS,
    };
    let placement = {
        let axis = StoreTimeAxis::new(tx, cx.append_dim());
        place_times(&axis, &file_times, rules).map_err(|source| UpdateError::Placement {
            key: cx.key.to_string(),
            source,
        })?
    };
    let variables = variables.iter().map(|v| v.name.clone()).collect();
    Ok(PlacedFile {
        source,
        variables,
        placement,
        time_units: (file_units, store_units),
    })
}

fn time_variable(cx: &Context<'_>, source: &SourceFile) -> Result<SourceVariable, UpdateError> {
    let dim = cx.append_dim();
    let missing = || UpdateError::MissingAppendDim {
        key: cx.key.to_string(),
        dim: dim.to_string(),
    };
    let var = source.variable(dim).ok_or_else(missing)?;
    if var.dims != [dim.to_string()] {
        return Err(missing());
    }
    Ok(var.clone())
}

fn time_units(cx: &Context<'_>, var: &SourceVariable) -> Result<TimeUnits, UpdateError> {
    let (units, calendar) = var.time_units();
    let units = units.ok_or_else(|| UpdateError::NoTimeUnits {
        key: cx.key.to_string(),
        variable: var.name.clone(),
    })?;
    TimeUnits::parse(units, calendar).map_err(|source| UpdateError::TimeUnits {
        key: cx.key.to_string(),
        variable: var.name.clone(),
        source,
    })
}

fn store_time_units(cx: &Context<'_>, doc: &ArrayDoc) -> Result<TimeUnits, UpdateError> {
    let attrs = doc.attributes();
    let units =
        attrs
            .get("units")
            .and_then(Value::as_str)
            .ok_or_else(|| UpdateError::NoTimeUnits {
                key: cx.key.to_string(),
                variable: format!("{} (in the store)", doc.name),
            })?;
    let calendar = attrs.get("calendar").and_then(Value::as_str);
    TimeUnits::parse(units, calendar).map_err(|source| UpdateError::TimeUnits {
        key: cx.key.to_string(),
        variable: format!("{} (in the store)", doc.name),
        source,
    })
}

fn decode_times(
    cx: &Context<'_>,
    raw: &Values,
    encoding: &CfEncoding,
    file_units: &TimeUnits,
    store_units: &TimeUnits,
) -> Result<Vec<f64>, UpdateError> {
    let values = raw
        .to_f64_vec()
        .map_err(|e| cx.values_error(cx.append_dim(), e))?;
    Ok(values
        .into_iter()
        .map(|v| {
            if encoding.fill_value == Some(v) {
                f64::NAN
            } else {
                store_units
                    .convert_from(file_units, v * encoding.scale_factor + encoding.add_offset)
            }
        })
        .collect())
}

/// The file's variables that go into the store: dimension coordinates always, others
/// per keep/drop configuration. The append coordinate is handled separately.
fn kept_variables<'f>(cx: &Context<'_>, source: &'f SourceFile) -> Vec<&'f SourceVariable> {
    source
        .variables()
        .iter()
        .filter(|v| v.name != cx.append_dim())
        .filter(|v| {
            let is_coordinate = v.dims.len() == 1 && v.dims[0] == v.name;
            cx.dataset.keeps_variable(&v.name, is_coordinate)
        })
        .collect()
}

/// Rejects a file whose grid (dimension lengths, coordinate values, variable layout)
/// differs from the store's.
fn check_grid(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    source: &SourceFile,
    variables: &[&SourceVariable],
) -> Result<(), UpdateError> {
    let append_dim = cx.append_dim();
    if tx.arrays().is_empty() {
        return Ok(());
    }
    let lengths = store_dim_lengths(tx.arrays());
    for var in variables {
        for (dim, &len) in var.dims.iter().zip(&var.shape) {
            if dim == append_dim {
                continue;
            }
            if let Some(&store_len) = lengths.get(dim) {
                if store_len != len {
                    return Err(cx.wrong_grid(format!(
                        "dimension {dim} has length {len} in the file but {store_len} in the store"
                    )));
                }
            }
        }
        if let Some(doc) = tx.array_doc(&var.name) {
            check_same_layout(cx, doc, var)?;
        }
    }
    let grid_mappings = grid_mapping_names(variables);
    for var in variables {
        if var.has_dim(append_dim) {
            continue;
        }
        if let Some(doc) = tx.array_doc(&var.name) {
            check_static(cx, tx, source, var, doc)?;
            if grid_mappings.contains(&var.name.as_str()) {
                check_same_attributes(cx, var, doc)?;
            }
        }
    }
    Ok(())
}

/// Variables named by a `grid_mapping` attribute (`"crs"` or the extended form
/// `"crs: lat lon"`).
fn grid_mapping_names<'v>(variables: &[&'v SourceVariable]) -> Vec<&'v str> {
    variables
        .iter()
        .filter_map(|v| v.attributes.get("grid_mapping").and_then(Value::as_str))
        .flat_map(|text| text.split_whitespace())
        .filter(|word| !word.ends_with(':'))
        .filter_map(|word| {
            variables
                .iter()
                .find(|v| v.name == word)
                .map(|v| v.name.as_str())
        })
        .collect()
}

/// Rejects a grid mapping whose attributes differ from the store's.
fn check_same_attributes(
    cx: &Context<'_>,
    var: &SourceVariable,
    doc: &ArrayDoc,
) -> Result<(), UpdateError> {
    let store = doc.attributes();
    for (name, value) in &var.attributes {
        if store.get(name) != Some(value) {
            return Err(cx.wrong_grid(format!(
                "grid mapping {} has {name} = {value} in the file but {} in the store",
                var.name,
                store
                    .get(name)
                    .map_or("nothing".to_string(), Value::to_string)
            )));
        }
    }
    Ok(())
}

/// Creates the arrays a file brings (a new store, new variables, provenance) and grows
/// every append-dimension array to the new length.
fn prepare_arrays(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    source: &SourceFile,
    variables: &[&SourceVariable],
    placement: &Placement,
) -> Result<Vec<String>, UpdateError> {
    let append_dim = cx.append_dim().to_string();
    let mut created = Vec::new();
    let new_len = placement.new_len;
    let time_var = time_variable(cx, source)?;
    let bounds = time_var
        .attributes
        .get("bounds")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut to_create: Vec<&SourceVariable> = vec![&time_var];
    to_create.extend(variables.iter().copied());
    for var in to_create {
        if tx.array_doc(&var.name).is_some() {
            continue;
        }
        let var = &with_time_fill(var, &append_dim, bounds.as_deref());
        let shape: Vec<u64> = var
            .dims
            .iter()
            .zip(&var.shape)
            .map(|(d, &n)| if *d == append_dim { new_len } else { n })
            .collect();
        created.push(var.name.clone());
        create_array(cx, tx, var, shape)?;
    }
    ensure_provenance(cx, tx, new_len);
    grow_append_arrays(cx, tx, new_len)?;
    Ok(created)
}

/// A time-like integer variable (CF time units, or the time coordinate's bounds) other
/// than the time coordinate, without a `_FillValue`, gets netCDF's default fill as its
/// `_FillValue` in the store: its blanked slots then read as NaT in xarray instead of as
/// a date (-2147483647 hours since 1950 is a valid instant). No real time equals it.
fn with_time_fill(var: &SourceVariable, append_dim: &str, bounds: Option<&str>) -> SourceVariable {
    let mut var = var.clone();
    let time_like = var
        .time_units()
        .0
        .is_some_and(|units| units.contains(" since "))
        || bounds == Some(var.name.as_str());
    if var.name != append_dim
        && time_like
        && var.element.is_integer()
        && var.encoding.fill_value.is_none()
    {
        var.encoding.fill_value = Some(var.element.netcdf_default_fill());
    }
    var
}

/// Writes the time coordinate of every new slot (file times and gap slots), and the
/// file's own time into every existing slot it covers: a gap slot filled later, or a
/// slot overwritten by a time within the tolerance, holds the file's time, as it would
/// had the files arrived in time order.
fn write_time_slots(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    placement: &Placement,
) -> Result<(), UpdateError> {
    let name = cx.append_dim().to_string();
    let doc = tx
        .array_doc(&name)
        .ok_or_else(|| cx.schema(&name, "time coordinate missing from the store".into()))?;
    let element = doc
        .element_type()
        .map_err(|e| cx.schema(&name, e.to_string()))?;
    if placement.appends() {
        let values = time_values(cx, element, &placement.new_slot_times)?;
        let count = placement.new_slot_times.len() as u64;
        tx.write(&name, &[placement.old_len], &[count], values)
            .map_err(|e| cx.store_error(e))?;
    }
    for (position, range) in runs_by_position(&placement.indices) {
        if range.start >= placement.old_len {
            continue;
        }
        let times = &placement.times[position..position + range.len() as usize];
        let values = time_values(cx, element, times)?;
        tx.write(&name, &[range.start], &[range.len()], values)
            .map_err(|e| cx.store_error(e))?;
    }
    Ok(())
}

fn time_values(
    cx: &Context<'_>,
    element: ElementType,
    times: &[f64],
) -> Result<Values, UpdateError> {
    if element.is_integer() {
        let tolerance = options(cx.dataset).time_tolerance_seconds;
        if let Some(t) = times
            .iter()
            .find(|t| (t.round() - **t).abs() > tolerance.min(0.5))
        {
            return Err(cx.schema(
                cx.append_dim(),
                format!("time {t} is not a whole number of the store's integer time units"),
            ));
        }
        let (low, high) = element.range();
        if let Some(t) = times.iter().find(|t| !(low..=high).contains(&t.round())) {
            return Err(cx.schema(
                cx.append_dim(),
                format!(
                    "time {t} (in the store's time units) does not fit the store's {element:?} time encoding ({low} to {high}); zru never widens or clips a store's time encoding"
                ),
            ));
        }
        let rounded: Vec<f64> = times.iter().map(|t| t.round()).collect();
        return Ok(from_f64_values(element, &rounded));
    }
    Ok(from_f64_values(element, times))
}

/// Writes every variable with the append dimension into its slots (and creates static
/// variables the store does not have yet).
///
/// Reading and encoding overlap: a reader thread reads the next variable from the
/// NetCDF file (netCDF-C is single-threaded) while this thread converts the current
/// one and zarrs encodes its chunks on the rayon pool. At most two variables' values
/// are in memory at once; encoded chunks are staged, not written. A variable whose
/// chunks can be copied compressed ([`passthrough`]) is read as its stored chunks
/// instead, and they are staged as they are.
fn write_variables(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    source: &SourceFile,
    variables: &[&SourceVariable],
    placement: &Placement,
    created: &[String],
    times: &TimeLikeVariables,
) -> Result<(), UpdateError> {
    let append_dim = cx.append_dim();
    let to_write = variables
        .iter()
        .copied()
        .filter(|v| v.has_dim(append_dim) || created.contains(&v.name))
        .map(|var| {
            let chunks = store_chunks(cx, tx, &var.name)?;
            let plan = passthrough_plan(cx, tx, var, &chunks, placement, times)?;
            Ok((var, chunks, plan))
        })
        .collect::<Result<Vec<_>, UpdateError>>()?;
    // netCDF-C reads on one thread (HDF5 serialises reads) while this one converts and
    // encodes (zarrs spreads a band's chunks over the other cores): band k + 1 is
    // inflated while band k is encoded.
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        scope.spawn(move || {
            for (var, chunks, plan) in to_write {
                let raw = plan
                    .as_ref()
                    .and_then(|p| source.raw_chunks(&var.name, &p.chunk, &p.codecs));
                if let (Some(raw), Some(plan)) = (raw, plan) {
                    if sender.send((var, Ok(Piece::Raw(raw, plan)))).is_err() {
                        return;
                    }
                    continue;
                }
                let mut open = true;
                let read = source.read_bands(&var.name, &chunks, |band| {
                    open = sender.send((var, Ok(Piece::Band(band)))).is_ok();
                    open
                });
                if let Err(e) = read {
                    let _ = sender.send((var, Err(e)));
                    return;
                }
                // A closed channel means the writer stopped on an error.
                if !open {
                    return;
                }
            }
        });
        for (var, piece) in receiver {
            match piece.map_err(|e| cx.source_error(e))? {
                Piece::Band(band) => write_band(cx, tx, var, band, placement, times)?,
                Piece::Raw(raw, plan) => write_raw(cx, tx, var, raw, &plan)?,
            }
        }
        Ok(())
    })
}

/// What the reader thread hands the writer: a band of values, or a variable's chunks
/// still compressed, with where they go.
enum Piece {
    Band(Band),
    Raw(Vec<RawChunk>, Plan),
}

/// How `var`'s chunks could be copied compressed into its store array (chunks
/// `chunks`), if its values need no conversion; the file's side is checked when its
/// chunks are read.
fn passthrough_plan(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    var: &SourceVariable,
    chunks: &[u64],
    placement: &Placement,
    times: &TimeLikeVariables,
) -> Result<Option<Plan>, UpdateError> {
    if times.converts(&var.name) {
        return Ok(None);
    }
    let (doc, _) = cx.prepared_array(tx, &var.name)?;
    let axis = var.dims.iter().position(|d| d == cx.append_dim());
    Ok(Plan::new(var, doc, chunks, axis, &placement.indices))
}

/// Stages a variable's compressed chunks as its store array's chunks.
fn write_raw(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    var: &SourceVariable,
    raw: Vec<RawChunk>,
    plan: &Plan,
) -> Result<(), UpdateError> {
    for chunk in raw {
        let index = plan.store_chunk(&chunk.grid).ok_or_else(|| {
            cx.schema(
                &var.name,
                format!("file chunk {:?} has no place in the store", chunk.grid),
            )
        })?;
        tx.put_encoded_chunk(&var.name, &index, chunk.bytes)
            .map_err(|e| cx.store_error(e))?;
    }
    crate::fault::panic_point(cx.key);
    Ok(())
}

/// The store's chunk shape of an array.
fn store_chunks(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    name: &str,
) -> Result<Vec<u64>, UpdateError> {
    let (doc, _) = cx.prepared_array(tx, name)?;
    doc.chunk_shape()
        .map_err(|e| cx.schema(name, e.to_string()))
}

/// Converts one band of a variable to the store's encoding and writes it into its
/// slots (the append dimension may be any of the variable's dimensions; a variable
/// without it, scalars included, is written where it is).
fn write_band(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    var: &SourceVariable,
    band: Band,
    placement: &Placement,
    times: &TimeLikeVariables,
) -> Result<(), UpdateError> {
    let (doc, store_type) = cx.prepared_array(tx, &var.name)?;
    let values = times.to_store(cx, var, doc, store_type, band.values)?;
    let mut start = vec![0; var.shape.len()];
    let mut shape = var.shape.clone();
    if band.axis < shape.len() {
        start[band.axis] = band.start;
        shape[band.axis] = band.rows;
    }
    let Some(axis) = var.dims.iter().position(|d| d == cx.append_dim()) else {
        return tx
            .write(&var.name, &start, &shape, values)
            .map_err(|e| cx.store_error(e));
    };
    // The band's positions along the append dimension, and the slots they go to.
    let positions = if band.axis == axis {
        band.start as usize..(band.start + band.rows) as usize
    } else {
        0..var.shape[axis] as usize
    };
    let slots = placement.indices.get(positions.clone()).ok_or_else(|| {
        cx.schema(
            &var.name,
            format!(
                "positions {positions:?} along {} beyond the file's {} times",
                cx.append_dim(),
                placement.indices.len()
            ),
        )
    })?;
    let runs = runs_by_position(slots);
    if let [(0, range)] = runs.as_slice() {
        // The common case: the band is one run of slots; no copy of the values.
        start[axis] = range.start;
        tx.write(&var.name, &start, &shape, values)
            .map_err(|e| cx.store_error(e))?;
        crate::fault::panic_point(cx.key);
        return Ok(());
    }
    let band_shape = shape.clone();
    for (position, range) in runs {
        start[axis] = range.start;
        shape[axis] = range.len();
        let part = values
            .select_along(&band_shape, axis, position as u64, range.len())
            .map_err(|e| cx.values_error(&var.name, e))?;
        tx.write(&var.name, &start, &shape, part)
            .map_err(|e| cx.store_error(e))?;
    }
    Ok(())
}

/// Blanks, in the slots the file writes, the store's variables the file lacks, and, in
/// gap slots, the variables whose missing chunks would not read as blank.
fn blank_uncovered(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    variables: &[&SourceVariable],
    placement: &Placement,
) -> Result<(), UpdateError> {
    let append_dim = cx.append_dim();
    let provenance = cx.dataset.provenance_variable();
    let covered: Vec<&str> = variables.iter().map(|v| v.name.as_str()).collect();
    let gap = ranges_from_indices(&placement.gap_slots());
    for name in append_arrays(tx, append_dim) {
        if name == append_dim || name == provenance {
            continue;
        }
        let blank_is_free = tx
            .array_doc(&name)
            .is_some_and(ArrayDoc::missing_chunk_is_blank);
        if !covered.contains(&name.as_str()) {
            for (_, range) in runs_by_position(&placement.indices) {
                if range.start < placement.old_len || !blank_is_free {
                    blank_slots(cx, tx, &name, range)?;
                }
            }
        }
        if !blank_is_free {
            for range in &gap {
                blank_slots(cx, tx, &name, *range)?;
            }
        }
    }
    Ok(())
}
