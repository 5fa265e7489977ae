//! Observation series (ship tracks, gliders, moorings per deployment, CTD casts): a
//! file's rows along its observation dimension (`series.file_dim`) go to the rows of
//! the store's `append_dim` its source key (or the key holding its identity) held, in
//! order; surplus rows are blanked, extra rows appended. A removal blanks the key's
//! rows. Scalar variables are broadcast to a column along the observation dimension.
//!
//! Rows are planned by [`zru_handlers::series`] against the store's key index
//! (`index.rs`). See docs/series.md.

mod index;
mod options;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use zru_handlers::identity::{number_text, Identity};
use zru_handlers::runs_by_position;
use zru_handlers::series::SeriesPlan;

pub use options::{SeriesOptions, DEFAULT_SERIES_CHUNK};

use self::index::{series_error, IndexCache};
use super::rows::{
    blank_rows, blank_uncovered, check_same_layout, check_static, create_array, ensure_provenance,
    grow_append_arrays, identity_texts, mask_text_fill, region, span, span_text, write_provenance,
    Context,
};
use super::time_like::TimeLikeVariables;
use super::{Batch, Collection, FamilyOptions};
use crate::config::{Dataset, DatasetConfig, Problem};
use crate::source::{SourceFile, SourceVariable};
use crate::store::Transaction;
use crate::update::{Action, Applied, UpdateError};
use crate::values::{Values, ValuesError};

/// The observation series family (`"handler": "series"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Series;

impl Collection for Series {
    fn name(&self) -> &'static str {
        "series"
    }

    fn option_keys(&self) -> &'static [&'static str] {
        options::OPTION_KEYS
    }

    fn parse_options(
        &self,
        config: &DatasetConfig,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Arc<dyn FamilyOptions>, Vec<Problem>> {
        options::parse(config, options)
    }

    fn default_append_chunk(&self) -> u64 {
        DEFAULT_SERIES_CHUNK
    }

    fn begin_batch(&self) -> Box<dyn Batch> {
        Box::new(SeriesBatch::default())
    }
}

/// A series batch: the store's key index, read as events need it and kept for the
/// transaction.
#[derive(Debug, Default)]
struct SeriesBatch {
    index: IndexCache,
}

impl Batch for SeriesBatch {
    fn stage_created(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
        path: &Path,
    ) -> Result<Applied, UpdateError> {
        apply_created(tx, dataset, key, path, &mut self.index)
    }

    fn stage_removed(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
    ) -> Result<Applied, UpdateError> {
        apply_removed(tx, dataset, key, &mut self.index)
    }

    fn adopt_refusal(&self) -> &'static str {
        "series rows are found by source key: ingest the file instead"
    }

    fn rolled_back(&mut self) {
        self.index.invalidate();
    }
}

/// The series options of a dataset (defaults if it is not a series dataset, which the
/// registry makes impossible).
fn options(dataset: &Dataset) -> SeriesOptions {
    dataset
        .options::<SeriesOptions>()
        .cloned()
        .unwrap_or_default()
}

/// Stages a created (or revised) file: its rows replace its key's (or, by identity,
/// another key's) rows in order; fewer rows blank the surplus, more are appended.
fn apply_created(
    tx: &mut Transaction<'_>,
    dataset: &Dataset,
    key: &str,
    path: &Path,
    cache: &mut IndexCache,
) -> Result<Applied, UpdateError> {
    let cx = Context { dataset, key };
    let source = SourceFile::open(path).map_err(|e| cx.source_error(e))?;
    cx.reject_provenance_clash(&source)?;
    let layout = Layout::of(&cx, &source)?;
    layout.check_against(&cx, tx, &source)?;
    let identity = read_identity(&cx, &source)?;
    let index = cache.prepare(&cx, tx, key, identity.as_ref())?;
    let plan = index
        .plan(key, identity.as_ref(), layout.count)
        .map_err(|e| series_error(&cx, tx, e))?;
    // A failure below rejects the event: the caller then drops the in-memory index.
    index.apply(&plan).map_err(|e| series_error(&cx, tx, e))?;

    if tx.arrays().is_empty() {
        tx.root_attrs = source.global_attributes().map_err(|e| cx.source_error(e))?;
    }
    layout.prepare_arrays(&cx, tx, &source, plan.new_len)?;
    layout.write_rows(&cx, tx, &source, &plan)?;
    let names: Vec<&str> = layout.columns.iter().map(|c| c.name.as_str()).collect();
    blank_uncovered(&cx, tx, &names, &plan.indices, plan.old_len)?;
    blank_rows(&cx, tx, &plan.surplus)?;
    write_provenance(&cx, tx, &plan.indices)?;
    cache.stage(&cx, tx)?;
    Ok(created_outcome(&cx, &plan))
}

/// Stages the blanking of every row of `key` (provenance included).
fn apply_removed(
    tx: &mut Transaction<'_>,
    dataset: &Dataset,
    key: &str,
    cache: &mut IndexCache,
) -> Result<Applied, UpdateError> {
    let cx = Context { dataset, key };
    let index = cache.prepare(&cx, tx, key, None)?;
    let rows = index.remove(key).map_err(|e| series_error(&cx, tx, e))?;
    if rows.is_empty() {
        return Ok(Applied {
            action: Action::Unchanged,
            region: None,
            note: Some(format!("no row of {} holds this key", dataset.name())),
            stats: Default::default(),
        });
    }
    blank_rows(&cx, tx, &rows)?;
    cache.stage(&cx, tx)?;
    let span = span(&rows);
    Ok(Applied {
        action: Action::Blanked,
        region: Some(region(&cx, span)),
        note: Some(format!(
            "{} {} rows blanked",
            span_text(&cx, span),
            rows.len()
        )),
        stats: Default::default(),
    })
}

/// The file's observation dimension.
fn file_dim(cx: &Context<'_>) -> String {
    options(cx.dataset)
        .file_dim
        .unwrap_or_else(|| cx.append_dim().to_string())
}

/// A file variable written as a column of rows: its store view has the store's
/// observation dimension first, and `count` rows.
struct Column {
    /// As stored: the observation dimension renamed (or added, for a scalar).
    name: String,
    view: SourceVariable,
    /// A scalar of the file, repeated on every row.
    broadcast: bool,
}

/// Which of a file's variables are columns and which are static (no observation
/// dimension: an ADCP's `HEIGHT_ABOVE_SENSOR`), and the file's row count.
struct Layout<'f> {
    count: u64,
    columns: Vec<Column>,
    statics: Vec<&'f SourceVariable>,
}

impl<'f> Layout<'f> {
    fn of(cx: &Context<'_>, source: &'f SourceFile) -> Result<Self, UpdateError> {
        let file_dim = file_dim(cx);
        let append_dim = cx.append_dim();
        let count = source.dim_len(&file_dim).ok_or_else(|| {
            cx.schema(
                &file_dim,
                format!("the file has no {file_dim} dimension (series.file_dim)"),
            )
        })?;
        let mut layout = Self {
            count,
            columns: Vec::new(),
            statics: Vec::new(),
        };
        for var in source.variables() {
            let is_coordinate = var.dims.len() == 1 && var.dims[0] == var.name;
            if !cx.dataset.keeps_variable(&var.name, is_coordinate) {
                continue;
            }
            if var.dims.iter().skip(1).any(|d| *d == file_dim) {
                return Err(cx.schema(
                    &var.name,
                    format!(
                        "dimensions {:?}: {file_dim} must be the first dimension of a variable (or drop_variables it)",
                        var.dims
                    ),
                ));
            }
            if var.has_dim(append_dim) && append_dim != file_dim {
                return Err(cx.schema(
                    &var.name,
                    format!("uses the store's observation dimension {append_dim} in the file"),
                ));
            }
            let broadcast = var.dims.is_empty();
            if !broadcast && var.dims[0] != file_dim {
                layout.statics.push(var);
                continue;
            }
            let mut view = var.clone();
            if broadcast {
                view.dims = vec![append_dim.to_string()];
                view.shape = vec![count];
            } else {
                view.dims[0] = append_dim.to_string();
            }
            layout.columns.push(Column {
                name: var.name.clone(),
                view,
                broadcast,
            });
        }
        Ok(layout)
    }

    /// Rejects columns whose dimensions, text-ness or other lengths differ from the
    /// store's, and static variables whose values differ.
    fn check_against(
        &self,
        cx: &Context<'_>,
        tx: &Transaction<'_>,
        source: &SourceFile,
    ) -> Result<(), UpdateError> {
        let views = self.columns.iter().map(|c| &c.view);
        for var in views.chain(self.statics.iter().copied()) {
            let Some(doc) = tx.array_doc(&var.name) else {
                continue;
            };
            check_same_layout(cx, doc, var)?;
            let shape = doc
                .shape()
                .map_err(|e| cx.schema(&var.name, e.to_string()))?;
            let fixed = usize::from(var.has_dim(cx.append_dim()));
            if shape[fixed..] != var.shape[fixed..] {
                return Err(UpdateError::WrongGrid {
                    key: cx.key.to_string(),
                    reason: format!(
                        "{} has the shape {:?} in the file but {shape:?} in the store (beyond {})",
                        var.name,
                        var.shape,
                        cx.append_dim()
                    ),
                });
            }
            if fixed == 0 {
                check_static(cx, tx, source, var, doc)?;
            }
        }
        Ok(())
    }

    /// Creates the arrays the file brings (static ones written), grows every
    /// observation array to `new_len`.
    fn prepare_arrays(
        &self,
        cx: &Context<'_>,
        tx: &mut Transaction<'_>,
        source: &SourceFile,
        new_len: u64,
    ) -> Result<(), UpdateError> {
        for column in &self.columns {
            if tx.array_doc(&column.name).is_none() {
                let mut shape = column.view.shape.clone();
                shape[0] = new_len;
                create_array(cx, tx, &column.view, shape)?;
            }
        }
        for var in &self.statics {
            if tx.array_doc(&var.name).is_some() {
                continue;
            }
            create_array(cx, tx, var, var.shape.clone())?;
            let (doc, store_type) = cx.prepared_array(tx, &var.name)?;
            let values = to_store(cx, source, var, doc, store_type)?;
            tx.write(&var.name, &vec![0; var.shape.len()], &var.shape, values)
                .map_err(|e| cx.store_error(e))?;
        }
        ensure_provenance(cx, tx, new_len);
        grow_append_arrays(cx, tx, new_len)
    }

    /// Writes every column into the plan's rows.
    fn write_rows(
        &self,
        cx: &Context<'_>,
        tx: &mut Transaction<'_>,
        source: &SourceFile,
        plan: &SeriesPlan,
    ) -> Result<(), UpdateError> {
        let runs = runs_by_position(&plan.indices);
        for column in &self.columns {
            let var = &column.view;
            let (doc, store_type) = cx.prepared_array(tx, &var.name)?;
            let mut values = to_store(cx, source, var, doc, store_type)?;
            if column.broadcast {
                values = repeated(&values, self.count as usize)
                    .map_err(|e| cx.values_error(&var.name, e))?;
            }
            let slab: u64 = var.shape[1..].iter().product();
            for (position, range) in &runs {
                let mut start = vec![0; var.shape.len()];
                let mut shape = var.shape.clone();
                start[0] = range.start;
                shape[0] = range.len();
                let part = values.slice(
                    (*position as u64 * slab) as usize,
                    (range.len() * slab) as usize,
                );
                tx.write(&var.name, &start, &shape, part)
                    .map_err(|e| cx.store_error(e))?;
            }
        }
        Ok(())
    }
}

/// A file variable's values in its store array's encoding (text fill masked, times
/// converted to the store's units, packing and fills mapped).
fn to_store(
    cx: &Context<'_>,
    source: &SourceFile,
    var: &SourceVariable,
    doc: &crate::store::ArrayDoc,
    store_type: crate::values::ElementType,
) -> Result<Values, UpdateError> {
    let raw = source.read(&var.name).map_err(|e| cx.source_error(e))?;
    let raw = mask_text_fill(var, raw);
    TimeLikeVariables::every(source).to_store(cx, var, doc, store_type, raw)
}

/// One value repeated `count` times.
fn repeated(one: &Values, count: usize) -> Result<Values, ValuesError> {
    let mut out = one.slice(0, 0);
    for _ in 0..count {
        out.append(one.clone())?;
    }
    Ok(out)
}

/// The file's identity (`None` if the dataset has none): scalar variables' values and
/// global attributes (`@name`) as text.
fn read_identity(cx: &Context<'_>, source: &SourceFile) -> Result<Option<Identity>, UpdateError> {
    let names = options(cx.dataset).identity;
    if names.is_empty() {
        return Ok(None);
    }
    let attributes = source.global_attributes().map_err(|e| cx.source_error(e))?;
    let mut parts = Vec::with_capacity(names.len());
    for name in &names {
        let part = match name.strip_prefix('@') {
            Some(attribute) => attribute_text(attributes.get(attribute)),
            None => scalar_text(cx, source, name)?,
        };
        match part {
            Some(text) if !text.trim().is_empty() => parts.push(text),
            _ => {
                return Err(cx.schema(
                    name,
                    format!(
                        "identity part missing or blank in the file (series.identity is {names:?}; \
                         a name is a scalar variable, \"@name\" a global attribute)"
                    ),
                ))
            }
        }
    }
    Ok(Some(Identity::new(&parts)))
}

/// A global attribute as text (numbers without decimals when whole).
fn attribute_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => n.as_f64().map(number_text),
        Value::Array(items) if items.len() == 1 => attribute_text(items.first()),
        _ => None,
    }
}

/// A scalar variable's value as text; `None` if it is its fill, NaN or blank.
fn scalar_text(
    cx: &Context<'_>,
    source: &SourceFile,
    name: &str,
) -> Result<Option<String>, UpdateError> {
    let var = source
        .variable(name)
        .ok_or_else(|| cx.schema(name, "identity variable missing from the file".into()))?;
    if !var.dims.is_empty() {
        return Err(cx.schema(
            name,
            format!(
                "an identity variable must be a scalar (one value per file), found dimensions {:?}",
                var.dims
            ),
        ));
    }
    let values = mask_text_fill(var, source.read(name).map_err(|e| cx.source_error(e))?);
    if let Values::Text(_) = values {
        return Ok(identity_texts(&values).pop());
    }
    let raw = values
        .to_f64_vec()
        .map_err(|e| cx.values_error(name, e))?
        .pop();
    Ok(raw
        .filter(|x| !x.is_nan() && var.encoding.fill_value != Some(*x))
        .map(number_text))
}

fn created_outcome(cx: &Context<'_>, plan: &SeriesPlan) -> Applied {
    let touched: Vec<u64> = plan.indices.iter().chain(&plan.surplus).copied().collect();
    if touched.is_empty() {
        return Applied {
            action: Action::Unchanged,
            region: None,
            note: Some("the file holds no observations".into()),
            stats: Default::default(),
        };
    }
    let action = if plan.overwritten() > 0 || !plan.surplus.is_empty() {
        Action::Overwrote
    } else {
        Action::Appended
    };
    let span = span(&touched);
    let mut note = format!(
        "{} {} overwritten, {} appended",
        span_text(cx, span),
        plan.overwritten(),
        plan.appended()
    );
    if !plan.surplus.is_empty() {
        note.push_str(&format!(", {} surplus blanked", plan.surplus.len()));
    }
    if let Some(holder) = &plan.taken_over {
        note.push_str(&format!(", taken over from {holder}"));
    }
    Applied {
        action,
        region: Some(region(cx, span)),
        note: Some(note),
        stats: Default::default(),
    }
}
