//! Profile collections (Argo): a file's profiles go to the rows of the append dimension
//! (`N_PROF`) that hold the same identity, or are appended; a removal blanks the rows
//! whose provenance is the removed key.
//!
//! Row location is planned by [`zru_handlers::profiles`] against the store's persistent
//! identity index (`IndexCache` in `index.rs`): the few shards a file needs
//! are read, updated and staged with the file's other writes.

mod index;
mod options;

use std::path::Path;
use std::sync::Arc;

use zru_handlers::identity::{number_text, Identity};
use zru_handlers::profiles::{plan_rows, ProfileError, RowPlan};
use zru_handlers::runs_by_position;

pub use options::{
    OtherDims, ProfileOptions, DEFAULT_IDENTITY, DEFAULT_LEVEL_DIM, DEFAULT_PROFILE_CHUNK,
};

use self::index::IndexCache;
use super::rows::{
    blank_rows, blank_uncovered, check_same_layout, create_array, ensure_provenance,
    grow_append_arrays, identity_texts, mask_text_fill, region, span, span_text, store_dim_lengths,
    write_provenance, zip_identities, Context,
};
use super::{Batch, Collection, FamilyOptions};
use crate::config::{Dataset, DatasetConfig, Problem};
use crate::source::{SourceFile, SourceVariable};
use crate::store::Transaction;
use crate::update::{Action, Applied, UpdateError};
use crate::values::{convert, Values};

/// The profiles family (`"handler": "profiles"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Profiles;

impl Collection for Profiles {
    fn name(&self) -> &'static str {
        "profiles"
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
        DEFAULT_PROFILE_CHUNK
    }

    fn begin_batch(&self) -> Box<dyn Batch> {
        Box::new(ProfilesBatch::default())
    }
}

/// A profiles batch: the store's identity index, read as events need it and kept
/// for the transaction.
#[derive(Debug, Default)]
struct ProfilesBatch {
    index: IndexCache,
}

impl Batch for ProfilesBatch {
    /// Stages a created (or revised) file: its profiles overwrite their rows or are
    /// appended; rows the key wrote before that the file no longer holds are blanked.
    fn stage_created(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
        path: &Path,
    ) -> Result<Applied, UpdateError> {
        let cx = Context { dataset, key };
        let source = SourceFile::open(path).map_err(|e| cx.source_error(e))?;
        cx.reject_provenance_clash(&source)?;
        let layout = Layout::of(&cx, &source)?;
        check_schema(&cx, tx, &layout.kept)?;
        let identities = read_identities(&cx, &source, &layout.identity)?;
        let (index, stale) = self.index.prepare(&cx, tx, &identities, key)?;
        let plan = plan_rows(index, &identities, key).map_err(|e| profile_error(&cx, e))?;

        if tx.arrays().is_empty() {
            tx.root_attrs = source.global_attributes().map_err(|e| cx.source_error(e))?;
        }
        prepare_arrays(&cx, tx, &layout.kept, &plan)?;
        write_variables(&cx, tx, &source, &layout.kept, &plan)?;
        let kept: Vec<&str> = layout.kept.iter().map(|v| v.name.as_str()).collect();
        blank_uncovered(&cx, tx, &kept, &plan.indices, plan.old_len)?;
        blank_rows(&cx, tx, &plan.stale)?;
        write_provenance(&cx, tx, &plan.indices)?;
        index
            .apply(&plan, identities, key, &stale)
            .map_err(|e| profile_error(&cx, e))?;
        self.index.stage(&cx, tx)?;
        Ok(created_outcome(&cx, &plan))
    }

    /// Stages the blanking of every row whose provenance is `key` (identity included).
    fn stage_removed(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
    ) -> Result<Applied, UpdateError> {
        let cx = Context { dataset, key };
        let (index, stale) = self.index.prepare(&cx, tx, &[], key)?;
        let rows: Vec<u64> = stale.iter().map(|(row, _)| *row).collect();
        if rows.is_empty() {
            self.index.stage(&cx, tx)?;
            return Ok(Applied {
                action: Action::Unchanged,
                region: None,
                note: Some(format!("no row of {} holds this key", dataset.name())),
                stats: Default::default(),
            });
        }
        blank_rows(&cx, tx, &rows)?;
        index
            .blank(key, &stale)
            .map_err(|e| profile_error(&cx, e))?;
        self.index.stage(&cx, tx)?;
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

    fn adopt_refusal(&self) -> &'static str {
        "profile rows are found by identity: ingest the file instead (it overwrites its rows in place)"
    }

    fn rolled_back(&mut self) {
        self.index.invalidate();
    }
}

/// The profiles options of a dataset (defaults if it is not a profiles dataset, which
/// the registry makes impossible).
fn options(dataset: &Dataset) -> ProfileOptions {
    dataset
        .options::<ProfileOptions>()
        .cloned()
        .unwrap_or_default()
}

pub(super) fn profile_error(cx: &Context<'_>, source: ProfileError) -> UpdateError {
    UpdateError::Profiles {
        key: cx.key.to_string(),
        source,
    }
}

/// Which of a file's variables are identity and which are copied.
struct Layout<'f> {
    identity: Vec<&'f SourceVariable>,
    /// Variables copied into the store (identity variables included).
    kept: Vec<&'f SourceVariable>,
}

impl<'f> Layout<'f> {
    /// Identity variables must be 1-D on the append dimension. Copied: variables with the
    /// append dimension first (per keep/drop and `other_dims`); variables without it
    /// (per-file metadata such as `DATA_TYPE`) or with it later (`HISTORY_*`) are not.
    fn of(cx: &Context<'_>, source: &'f SourceFile) -> Result<Self, UpdateError> {
        let append_dim = cx.append_dim();
        if source.dim_len(append_dim).is_none() {
            return Err(cx.schema(
                append_dim,
                format!("the file has no {append_dim} dimension"),
            ));
        }
        let identity_names = options(cx.dataset).identity;
        let mut identity = Vec::new();
        for name in &identity_names {
            let var = source.variable(name).ok_or_else(|| {
                cx.schema(
                    name,
                    format!(
                        "identity variable missing from the file (identity is {identity_names:?})"
                    ),
                )
            })?;
            if var.dims != [append_dim] {
                return Err(cx.schema(
                    name,
                    format!(
                        "an identity variable must have the dimension ({append_dim},), found {:?}",
                        var.dims
                    ),
                ));
            }
            identity.push(var);
        }
        let kept = source
            .variables()
            .iter()
            .filter(|v| identity_names.contains(&v.name) || is_copied(cx, v))
            .collect();
        Ok(Self { identity, kept })
    }
}

fn is_copied(cx: &Context<'_>, var: &SourceVariable) -> bool {
    let dataset = cx.dataset;
    let options = options(dataset);
    let level_dim = options.level_dim.as_str();
    var.dims.first().map(String::as_str) == Some(cx.append_dim())
        && var.name != dataset.provenance_variable()
        && dataset.keeps_variable(&var.name, false)
        && (options.other_dims == OtherDims::Keep || var.dims[1..].iter().all(|d| d == level_dim))
}

/// Rejects a file whose variables have other dimensions, or text where the store has
/// numbers (or the reverse), than the store's arrays of the same name.
fn check_schema(
    cx: &Context<'_>,
    tx: &Transaction<'_>,
    kept: &[&SourceVariable],
) -> Result<(), UpdateError> {
    for var in kept {
        if let Some(doc) = tx.array_doc(&var.name) {
            check_same_layout(cx, doc, var)?;
        }
    }
    Ok(())
}

fn read_identities(
    cx: &Context<'_>,
    source: &SourceFile,
    identity: &[&SourceVariable],
) -> Result<Vec<Identity>, UpdateError> {
    let count = source.dim_len(cx.append_dim()).unwrap_or(0) as usize;
    let columns = identity
        .iter()
        .map(|var| {
            let values = source.read(&var.name).map_err(|e| cx.source_error(e))?;
            if let Some((row, what)) = first_missing_identity(var, &values) {
                return Err(cx.schema(
                    &var.name,
                    format!(
                        "profile {row} (index along {}) has no identity: {} is {what}; \
                         a profile without an identity cannot be placed, so the file is \
                         rejected (fix or drop that profile)",
                        cx.append_dim(),
                        var.name
                    ),
                ));
            }
            Ok(identity_texts(&values))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(zip_identities(&columns, count))
}

/// The first row whose identity part is missing, and how: equal to the variable's
/// `_FillValue`/`missing_value` (Argo's 99999), NaN, or blank text (or the text fill).
fn first_missing_identity(var: &SourceVariable, values: &Values) -> Option<(usize, String)> {
    match values {
        Values::Text(texts) => texts
            .iter()
            .position(|t| t.trim().is_empty() || var.text_fill.as_deref().is_some_and(|f| f == t))
            .map(|row| (row, "blank".to_string())),
        numbers => {
            let raw = numbers.to_f64_vec().ok()?;
            let fill = var.encoding.fill_value;
            raw.iter().enumerate().find_map(|(row, &x)| {
                if x.is_nan() {
                    Some((row, "NaN".to_string()))
                } else if fill.is_some_and(|f| f == x) {
                    Some((row, format!("its _FillValue ({})", number_text(x))))
                } else {
                    None
                }
            })
        }
    }
}

/// Creates the arrays the file brings, grows every append-dimension array to the new
/// row count, and grows other dimensions (levels) to the file's length where longer.
fn prepare_arrays(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    kept: &[&SourceVariable],
    plan: &RowPlan,
) -> Result<(), UpdateError> {
    let mut lengths = store_dim_lengths(tx.arrays());
    for var in kept {
        for (dim, &len) in var.dims.iter().zip(&var.shape).skip(1) {
            let entry = lengths.entry(dim.clone()).or_insert(len);
            *entry = (*entry).max(len);
        }
    }
    for var in kept {
        if tx.array_doc(&var.name).is_some() {
            continue;
        }
        let mut shape = vec![plan.new_len];
        shape.extend(
            var.dims[1..]
                .iter()
                .map(|d| lengths.get(d).copied().unwrap_or(0)),
        );
        create_array(cx, tx, var, shape)?;
    }
    ensure_provenance(cx, tx, plan.new_len);
    grow_append_arrays(cx, tx, plan.new_len)?;
    for (dim, &len) in &lengths {
        if dim != cx.append_dim() {
            grow_dim(cx, tx, dim, len, plan.old_len)?;
        }
    }
    Ok(())
}

/// Grows dimension `dim` of every array that has it to `len`. Where a missing chunk
/// does not read as blank, the new part of the first `old_rows` rows is blanked.
fn grow_dim(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    dim: &str,
    len: u64,
    old_rows: u64,
) -> Result<(), UpdateError> {
    let names: Vec<String> = tx.arrays().keys().cloned().collect();
    for name in names {
        let Some(doc) = tx.array_doc(&name) else {
            continue;
        };
        let dims = doc.dims().map_err(|e| cx.schema(&name, e.to_string()))?;
        let Some(axis) = dims.iter().position(|d| d == dim) else {
            continue;
        };
        let shape = doc.shape().map_err(|e| cx.schema(&name, e.to_string()))?;
        let old_len = shape[axis];
        if old_len >= len {
            continue;
        }
        let mut grown = doc.clone();
        grown
            .set_axis_len(axis, len)
            .map_err(|e| cx.schema(&name, e.to_string()))?;
        let blank_is_free = grown.missing_chunk_is_blank();
        tx.put_array(grown);
        if !blank_is_free && old_rows > 0 {
            let mut start = vec![0; shape.len()];
            let mut region = shape.clone();
            start[axis] = old_len;
            region[axis] = len - old_len;
            region[0] = old_rows.min(shape[0]);
            tx.blank(&name, &start, &region)
                .map_err(|e| cx.store_error(e))?;
        }
    }
    Ok(())
}

/// Writes every copied variable into the file's rows, padded with the store's blank
/// value to the store's level (and other) lengths.
fn write_variables(
    cx: &Context<'_>,
    tx: &mut Transaction<'_>,
    source: &SourceFile,
    kept: &[&SourceVariable],
    plan: &RowPlan,
) -> Result<(), UpdateError> {
    let runs = runs_by_position(&plan.indices);
    for var in kept {
        let values_error = |e| cx.values_error(&var.name, e);
        let (doc, store_type) = cx.prepared_array(tx, &var.name)?;
        let mut row_shape = doc
            .shape()
            .map_err(|e| cx.schema(&var.name, e.to_string()))?;
        row_shape[0] = var.shape[0];
        let (encoding, blank) = (doc.cf_encoding(), doc.blank_value());
        let raw = mask_text_fill(var, source.read(&var.name).map_err(|e| cx.source_error(e))?);
        let values = convert(raw, &var.encoding, store_type, &encoding)
            .and_then(|v| v.padded(&var.shape, &row_shape, blank))
            .map_err(values_error)?;
        let slab: u64 = row_shape[1..].iter().product();
        for (position, range) in &runs {
            let mut start = vec![0; row_shape.len()];
            let mut shape = row_shape.clone();
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

fn created_outcome(cx: &Context<'_>, plan: &RowPlan) -> Applied {
    let touched: Vec<u64> = plan.indices.iter().chain(&plan.stale).copied().collect();
    if touched.is_empty() {
        return Applied {
            action: Action::Unchanged,
            region: None,
            note: Some("the file holds no profiles".into()),
            stats: Default::default(),
        };
    }
    let action = if plan.overwritten() > 0 || !plan.stale.is_empty() {
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
    if !plan.stale.is_empty() {
        note.push_str(&format!(
            ", {} no longer in the file blanked",
            plan.stale.len()
        ));
    }
    Applied {
        action,
        region: Some(region(cx, span)),
        note: Some(note),
        stats: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_equal_to_their_fill_or_blank_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prof.nc");
        {
            let mut file = netcdf::create(&path).unwrap();
            file.add_dimension("N_PROF", 3).unwrap();
            let mut cycle = file
                .add_variable::<i32>("CYCLE_NUMBER", &["N_PROF"])
                .unwrap();
            cycle.set_fill_value(99999i32).unwrap();
            cycle.put_values(&[1, 99999, 3], ..).unwrap();
            let mut platform = file
                .add_string_variable("PLATFORM_NUMBER", &["N_PROF"])
                .unwrap();
            for (i, text) in ["2902093 ", "2902093 ", "        "].iter().enumerate() {
                platform.put_string(text, [i]).unwrap();
            }
            let mut pres = file.add_variable::<f64>("JULD", &["N_PROF"]).unwrap();
            pres.put_values(&[1.0, 2.0, f64::NAN], ..).unwrap();
        }
        let source = SourceFile::open(&path).unwrap();
        let missing = |name: &str| {
            let var = source.variable(name).unwrap();
            first_missing_identity(var, &source.read(name).unwrap())
        };
        assert_eq!(
            missing("CYCLE_NUMBER"),
            Some((1, "its _FillValue (99999)".into()))
        );
        assert_eq!(missing("PLATFORM_NUMBER"), Some((2, "blank".into())));
        assert_eq!(missing("JULD"), Some((2, "NaN".into())));
    }
}
