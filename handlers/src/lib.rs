//! Per-collection logic for zru.
//!
//! Handlers decide *what* region of a store a file covers and *which* rows a removal
//! blanks. They never touch files, stores, queues or locks: the caller (the `zru` crate)
//! gives them views of the store's axis and the file's coordinates, and performs the
//! I/O they plan.
//!
//! - [`cf_time`]: CF time units (`days since 1985-01-01`), conversion between epochs.
//! - [`gridded`]: gridded time series (time/lat/lon): placement on the time axis.
//! - [`identity`]: record identities and the stable hash shards of identity and key
//!   indexes (profiles, series).
//! - [`plan`]: [`AppendPlan`], where a file's records go along the append dimension
//!   (what every family's planning returns).
//! - [`profiles`]: profile collections (Argo): rows found by profile identity.
//! - [`region`]: index ranges along the append dimension.
//! - [`series`]: observation series (ship tracks, gliders, moorings): rows found by
//!   source key and optional identity.

pub mod cf_time;
pub mod gridded;
pub mod identity;
pub mod plan;
pub mod profiles;
pub mod region;
pub mod series;

pub use plan::AppendPlan;
pub use region::{ranges_from_indices, runs_by_position, IndexRange};
