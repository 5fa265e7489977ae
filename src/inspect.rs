//! `zru inspect`: what a store holds — dimensions, arrays, time range, blank slots
//! and provenance — without any configuration.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use zru_handlers::cf_time::TimeUnits;
use zru_handlers::{ranges_from_indices, IndexRange};

use crate::config::DEFAULT_PROVENANCE_VARIABLE;
use crate::store::{StoreError, StoreLocation, ZarrFormat, ZarrStore};
use crate::values::Values;

/// One array of a store, as `zru inspect` lists it.
#[derive(Debug, Serialize)]
pub struct ArraySummary {
    /// The array's name (its key under the store root).
    pub name: String,
    /// Dimension names (`_ARRAY_DIMENSIONS` in V2, `dimension_names` in V3).
    pub dims: Vec<String>,
    /// Length of each dimension.
    pub shape: Vec<u64>,
    /// Chunk length along each dimension.
    pub chunks: Vec<u64>,
    /// Zarr V3 data type name (`int16`, `float32`, `string`, ...), or `unknown`.
    pub data_type: String,
}

/// What a store holds: the output of `zru inspect` (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub struct StoreSummary {
    /// Where the store is: a path or an `s3://bucket/prefix` URL.
    pub store: String,
    /// 2 or 3.
    pub zarr_format: u8,
    /// Every dimension of the store's arrays and its length.
    pub dims: BTreeMap<String, u64>,
    /// The arrays, in name order.
    pub arrays: Vec<ArraySummary>,
    /// The dimension files are appended along (the provenance array's), if the store
    /// has a provenance array.
    pub append_dim: Option<String>,
    /// The first and last value of the append dimension's coordinate as ISO 8601
    /// date-times; `None` if it has no CF time units.
    pub time_range: Option<[String; 2]>,
    /// Slots with no source key: blanked by a removal, gap slots, or slots written
    /// before zru managed the store (a store made by `xarray.to_zarr`).
    pub blank_slots: Vec<[u64; 2]>,
    /// Slot ranges per source object key, in slot order.
    pub provenance: ProvenanceRanges,
    /// For an Icechunk repository: the snapshot described (the tip of `main`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// Describes a store. The append dimension is the dimension of its provenance array.
pub fn inspect(location: &Path) -> Result<StoreSummary, StoreError> {
    inspect_at(&StoreLocation::Local(location.to_path_buf()))
}

/// Describes a store, local or on S3.
pub fn inspect_at(location: &StoreLocation) -> Result<StoreSummary, StoreError> {
    let (store, snapshot) = open_for_inspect(location)?;
    let mut dims = BTreeMap::new();
    let mut arrays = Vec::new();
    for doc in store.arrays.values() {
        let (names, shape) = (
            doc.dims().unwrap_or_default(),
            doc.shape().unwrap_or_default(),
        );
        for (d, n) in names.iter().zip(&shape) {
            dims.entry(d.clone()).or_insert(*n);
        }
        arrays.push(ArraySummary {
            name: doc.name.clone(),
            dims: names,
            shape,
            chunks: doc.chunk_shape().unwrap_or_default(),
            data_type: doc
                .element_type()
                .map(|t| t.zarr_v3_name().to_string())
                .unwrap_or_else(|_| "unknown".into()),
        });
    }
    let provenance_doc = store.arrays.values().find(|d| {
        d.name == DEFAULT_PROVENANCE_VARIABLE || d.attributes().contains_key("zru_dataset")
    });
    let append_dim = provenance_doc.and_then(|d| d.dims().ok()?.first().cloned());
    let mut summary = StoreSummary {
        store: location.to_string(),
        zarr_format: match store.format {
            ZarrFormat::V2 => 2,
            ZarrFormat::V3 => 3,
        },
        dims,
        arrays,
        append_dim: append_dim.clone(),
        time_range: None,
        blank_slots: Vec::new(),
        provenance: Vec::new(),
        snapshot,
    };
    if let (Some(dim), Some(doc)) = (append_dim, provenance_doc) {
        summary.time_range = time_range(&store, &dim)?;
        let len = doc
            .shape()
            .ok()
            .and_then(|s| s.first().copied())
            .unwrap_or(0);
        if let Values::Text(keys) = store.read(&doc.name, &[0], &[len])? {
            let (blank, provenance) = group_keys(&keys);
            summary.blank_slots = blank.iter().map(|r| [r.start, r.stop]).collect();
            summary.provenance = provenance;
        }
    }
    Ok(summary)
}

/// Opens a plain store, or the tip of `main` of an Icechunk repository (with its
/// snapshot id).
#[cfg(feature = "icechunk")]
fn open_for_inspect(location: &StoreLocation) -> Result<(ZarrStore, Option<String>), StoreError> {
    use crate::store::icechunk::Repo;
    if !Repo::exists(location)? {
        return Ok((ZarrStore::open_at(location)?, None));
    }
    let repo = Repo::open(location, crate::config::DEFAULT_BRANCH)?;
    let tip = repo.tip()?;
    let store = ZarrStore::open_snapshot(location, &repo, &tip)?;
    Ok((store, Some(tip)))
}

#[cfg(not(feature = "icechunk"))]
fn open_for_inspect(location: &StoreLocation) -> Result<(ZarrStore, Option<String>), StoreError> {
    Ok((ZarrStore::open_at(location)?, None))
}

/// Slot ranges per source key.
type ProvenanceRanges = Vec<(String, Vec<[u64; 2]>)>;

fn group_keys(keys: &[String]) -> (Vec<IndexRange>, ProvenanceRanges) {
    let mut by_key: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        by_key.entry(k.as_str()).or_default().push(i as u64);
    }
    let blank = by_key
        .remove("")
        .map(|i| ranges_from_indices(&i))
        .unwrap_or_default();
    let mut provenance: ProvenanceRanges = by_key
        .into_iter()
        .map(|(k, idx)| {
            let ranges = ranges_from_indices(&idx)
                .iter()
                .map(|r| [r.start, r.stop])
                .collect();
            (k.to_string(), ranges)
        })
        .collect();
    provenance.sort_by_key(|(_, r)| r.first().map_or(0, |x| x[0]));
    (blank, provenance)
}

/// First and last time of the append coordinate, as ISO 8601 text.
fn time_range(store: &ZarrStore, dim: &str) -> Result<Option<[String; 2]>, StoreError> {
    let Some(doc) = store.array(dim) else {
        return Ok(None);
    };
    let len = doc
        .shape()
        .ok()
        .and_then(|s| s.first().copied())
        .unwrap_or(0);
    let units = doc.attributes().get("units").and_then(Value::as_str);
    let calendar = doc.attributes().get("calendar").and_then(Value::as_str);
    let (Some(units), true) = (units, len > 0) else {
        return Ok(None);
    };
    let Ok(units) = TimeUnits::parse(units, calendar) else {
        return Ok(None);
    };
    let first = store
        .read(dim, &[0], &[1])?
        .to_f64_vec()
        .unwrap_or_default();
    let last = store
        .read(dim, &[len - 1], &[1])?
        .to_f64_vec()
        .unwrap_or_default();
    Ok(match (first.first(), last.first()) {
        (Some(&a), Some(&b)) => {
            Some([iso(units.to_unix_seconds(a)), iso(units.to_unix_seconds(b))])
        }
        _ => None,
    })
}

/// ISO 8601 text of seconds since the Unix epoch.
pub(crate) fn iso(seconds: f64) -> String {
    chrono::DateTime::from_timestamp(seconds.floor() as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{seconds} s since 1970"))
}

impl std::fmt::Display for StoreSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "store        {} (Zarr V{})",
            self.store, self.zarr_format
        )?;
        if let Some(snapshot) = &self.snapshot {
            writeln!(f, "snapshot     {snapshot} (Icechunk, tip of main)")?;
        }
        let dims: Vec<String> = self.dims.iter().map(|(d, n)| format!("{d}={n}")).collect();
        writeln!(f, "dimensions   {}", dims.join(" "))?;
        if let Some([a, b]) = &self.time_range {
            writeln!(
                f,
                "time range   {a} .. {b} ({})",
                self.append_dim.as_deref().unwrap_or("?")
            )?;
        }
        let fmt_ranges = |r: &[[u64; 2]]| {
            r.iter()
                .map(|[a, b]| {
                    if b - a == 1 {
                        format!("{a}")
                    } else {
                        format!("{a}..{}", b - 1)
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        if self.append_dim.is_some() {
            writeln!(
                f,
                "no source    {}",
                if self.blank_slots.is_empty() {
                    "none".into()
                } else {
                    format!(
                        "{} (blank: removed, gap, or written before zru managed the store)",
                        fmt_ranges(&self.blank_slots)
                    )
                }
            )?;
        }
        writeln!(f, "arrays")?;
        for a in &self.arrays {
            writeln!(
                f,
                "  {:<28} {:<8} {:?} shape {:?} chunks {:?}",
                a.name, a.data_type, a.dims, a.shape, a.chunks
            )?;
        }
        if !self.provenance.is_empty() {
            writeln!(f, "provenance")?;
            for (key, ranges) in &self.provenance {
                writeln!(f, "  slot {:<10} {key}", fmt_ranges(ranges))?;
            }
        }
        Ok(())
    }
}
