//! Running zru on AWS: settings from the environment, SDK clients, configuration
//! from a packaged directory or an S3 prefix, raw objects downloaded from S3, and
//! `zru doctor`. The Lambda entry points (`src/bin/watcher.rs`, `src/bin/updater.rs`)
//! are thin wrappers over these plain functions.
//!
//! - [`settings`]: the `ZRU_*` environment variables (see `docs/aws.md`).
//! - [`sdk`]: AWS SDK clients honouring endpoint overrides (emulators).
//! - [`config_source`]: loading the dataset catalog from a directory or `s3://`.
//! - [`raw`]: raw objects streamed from S3 to temporary files.
//! - [`doctor`]: checks of a deployment.

pub mod config_source;
pub mod doctor;
pub mod raw;
pub mod sdk;
pub mod settings;

pub use settings::Settings;
