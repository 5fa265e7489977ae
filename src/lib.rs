//! zru: the ordered Zarr region updater.
//!
//! When a NetCDF file arrives in, is revised in, or is removed from a raw bucket, zru
//! changes only the region of the dataset's Zarr store that the file covers.
//!
//! - [`aws`]: running on AWS: settings, SDK clients, `zru doctor`.
//! - [`config`]: per-dataset configuration and routing of object keys.
//! - [`source`]: reading NetCDF files.
//! - [`values`]: typed buffers and CF packing.
//! - [`store`]: Zarr stores (V2/V3), staged all-or-nothing updates.
//! - [`update`]: applying created and removed events.
//! - [`pipeline`]: the ordered event pipeline: durable queue, ledger, lock, flush, watcher.
//! - [`fault`]: fault injection for crash tests.
//! - [`inspect`]: describing a store.
//! - `sample` (feature `sample`, on by default): generated GHRSST-like files for the
//!   demo, tests and benchmarks.
//! - [`text`]: printing untrusted text: control characters escaped, URL credentials hidden.

// TODO(issue 13): documented module by module in this branch
#[allow(missing_docs)]
pub mod aws;
// TODO(issue 13): removed once the collection refactor documents these
#[allow(missing_docs)]
pub mod config;
pub mod fault;
// TODO(issue 13): documented module by module in this branch
#[allow(missing_docs)]
pub mod inspect;
// TODO(issue 13): documented module by module in this branch
#[allow(missing_docs)]
pub mod netcdf3;
// TODO(issue 13): documented module by module in this branch
#[allow(missing_docs)]
pub mod pipeline;
#[cfg(feature = "sample")]
pub mod sample;
// TODO(issue 13): documented module by module in this branch
#[allow(missing_docs)]
pub mod source;
// TODO(issue 13): documented module by module in this branch
#[allow(missing_docs)]
pub mod store;
pub mod text;
// TODO(issue 13): removed once the collection refactor documents these
#[allow(missing_docs)]
pub mod update;
// TODO(issue 13): documented module by module in this branch
#[allow(missing_docs)]
pub mod values;
