//! Collection families: how the files of a dataset map onto its store.
//!
//! A family (the dataset file's `"handler"`) is one implementation of [`Collection`]:
//! it parses and checks its own configuration options, and stages created, removed
//! and adopted files in a store [`Transaction`] through a per-batch [`Batch`] (which
//! holds whatever the family caches during one transaction, such as the profile
//! identity index). [`family`] is the one place a `"handler"` name is mapped to its
//! implementation: nothing else in zru matches on the family.
//!
//! Each family has one folder here (its store side) and one in `zru-handlers` (its
//! pure planning); the writes all families share along the append dimension are in
//! `rows.rs`, the sharded index sidecar of profiles and series in `sidecar_index.rs`.

use std::any::Any;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use crate::config::{DatasetConfig, Problem};
use crate::store::Transaction;
use crate::update::{Applied, UpdateError};

pub use crate::config::Dataset;

pub mod gridded;
pub mod profiles;
pub(crate) mod rows;
pub mod series;
pub(crate) mod sidecar_index;
pub(crate) mod time_like;

/// Every registered family, in the order their names are listed in messages.
static FAMILIES: &[&dyn Collection] = &[&gridded::Gridded, &profiles::Profiles, &series::Series];

/// The family registered under a dataset file's `"handler"` name.
pub fn family(name: &str) -> Option<&'static dyn Collection> {
    FAMILIES.iter().copied().find(|f| f.name() == name)
}

/// The registered families' names (`"gridded"`, `"profiles"`, ...).
pub fn family_names() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.name()).collect()
}

/// The registered family, other than `except`, whose options include `key`.
pub fn family_with_option(key: &str, except: &str) -> Option<&'static dyn Collection> {
    FAMILIES
        .iter()
        .copied()
        .find(|f| f.name() != except && f.option_keys().contains(&key))
}

/// A family's options struct (`#[serde(deny_unknown_fields)]`) from the option keys
/// of a dataset file; a type error is a problem of key `handler` options.
pub fn parse_written<T: serde::de::DeserializeOwned>(
    options: serde_json::Map<String, serde_json::Value>,
) -> Result<T, Vec<Problem>> {
    serde_json::from_value(serde_json::Value::Object(options)).map_err(|e| {
        vec![Problem::new(
            "handler",
            &e.to_string(),
            "see docs/config.md",
        )]
    })
}

/// A collection family: what the dataset file's `"handler"` selects.
pub trait Collection: Send + Sync {
    /// The `"handler"` name of the family in dataset files.
    fn name(&self) -> &'static str;

    /// The configuration keys that belong to this family (beyond the common keys of
    /// [`DatasetConfig`]); a key of another family is an error in this family's files.
    fn option_keys(&self) -> &'static [&'static str];

    /// Parses and checks this family's options (`options` holds only keys from
    /// [`Self::option_keys`]); `config` is the rest of the file, for rules across keys.
    /// Each problem names its key; the loader adds the file.
    fn parse_options(
        &self,
        config: &DatasetConfig,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Arc<dyn FamilyOptions>, Vec<Problem>>;

    /// Chunk length along the append dimension of arrays zru creates, when `chunks`
    /// does not set one.
    fn default_append_chunk(&self) -> u64;

    /// The per-batch state of one store transaction, which stages each event.
    fn begin_batch(&self) -> Box<dyn Batch>;
}

impl Debug for dyn Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.name())
    }
}

/// Any value as [`Any`] (implemented for every type), for downcasting trait objects.
pub trait AsAny: Any {
    /// `self` as [`Any`].
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A family's parsed options, kept in the [`Dataset`] (see [`Dataset::options`]).
pub trait FamilyOptions: AsAny + Debug + Send + Sync {
    /// Names of the data that the options declare, with the key naming each (the
    /// provenance array must not take one of these names).
    fn data_names(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// One transaction's worth of a family's work: stages each event of a batch of one
/// dataset, in order. Anything it caches lives for the batch only.
pub trait Batch {
    /// Stages a created (or revised) object: reads `path` and writes its region.
    fn stage_created(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
        path: &Path,
    ) -> Result<Applied, UpdateError>;

    /// Stages a removed object: blanks the rows whose provenance is `key` (the store
    /// exists; the object is not read).
    fn stage_removed(
        &mut self,
        tx: &mut Transaction<'_>,
        dataset: &Dataset,
        key: &str,
    ) -> Result<Applied, UpdateError>;

    /// Records `key` as the source of the rows already holding its file's data (`zru
    /// adopt`). Families that cannot adopt refuse with their reason.
    fn stage_adopted(
        &mut self,
        _tx: &mut Transaction<'_>,
        _dataset: &Dataset,
        key: &str,
        _path: &Path,
    ) -> Result<Applied, UpdateError> {
        Err(UpdateError::Adopt {
            key: key.to_string(),
            reason: self.adopt_refusal().to_string(),
        })
    }

    /// Why the family cannot adopt files (the default [`Self::stage_adopted`]'s reason).
    fn adopt_refusal(&self) -> &'static str {
        "this collection family does not adopt files: ingest the file instead"
    }

    /// The event just staged failed and was rolled back: drop whatever the batch
    /// cached from it.
    fn rolled_back(&mut self) {}
}
