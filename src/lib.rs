//! zru: the ordered Zarr region updater.
//!
//! When a NetCDF file arrives in, is revised in, or is removed from a raw bucket, zru
//! changes only the region of the dataset's Zarr store that the file covers.
//!
//! - [`aws`]: running on AWS: settings, SDK clients, `zru doctor`.
//! - [`config`]: per-dataset configuration and routing of object keys.
//! - [`source`]: reading NetCDF files.
//! - [`netcdf3`]: the truncation check of netCDF classic files.
//! - [`values`]: typed buffers and CF packing.
//! - [`store`]: Zarr stores (V2/V3), staged all-or-nothing updates.
//! - [`update`]: applying created and removed events.
//! - [`pipeline`]: the ordered event pipeline: durable queue, ledger, lock, flush, watcher.
//! - [`fault`]: fault injection for crash tests.
//! - [`inspect`]: describing a store.
//! - `sample` (feature `sample`, on by default): generated GHRSST-like files for the
//!   demo, tests and benchmarks.
//! - [`text`]: printing untrusted text: control characters escaped, URL credentials hidden.

pub mod aws;
pub mod collection;
pub mod config;
pub mod fault;
pub mod inspect;
pub mod netcdf3;
pub mod pipeline;
#[cfg(feature = "sample")]
pub mod sample;
pub mod source;
pub mod store;
pub mod text;
pub mod update;
pub mod values;
