//! Per-dataset configuration files (`config/*.json`) and the catalog that routes
//! object keys to datasets.
//!
//! One JSON file per dataset. Unknown keys, bad regexes and impossible values are
//! errors that name the file and the key. See `docs/config.md` for every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use thiserror::Error;

use crate::collection::{Collection, FamilyOptions};
use crate::store::{Backend, StoreLocation};

pub mod checks;
pub mod schema;
pub mod suggest;
mod witness;

#[cfg(test)]
mod check_tests;

pub use checks::{MAX_CHUNK_ELEMENTS, MAX_CHUNK_LEN};

/// One thing wrong with a configuration file: the key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The configuration key at fault (`time_step`, `chunks.time`), as `docs/config.md`
    /// names it.
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
    /// What to change to fix it.
    pub fix: String,
}

impl Problem {
    /// A problem with `key`: what is wrong, how to fix it.
    pub(crate) fn new(key: &str, reason: &str, fix: &str) -> Self {
        Self {
            key: key.to_string(),
            reason: reason.to_string(),
            fix: fix.to_string(),
        }
    }

    fn into_error(self, file: &Path) -> ConfigError {
        ConfigError::Invalid {
            file: file.to_path_buf(),
            key: self.key,
            reason: self.reason,
            fix: self.fix,
        }
    }
}

/// Compressor for arrays zru creates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressorConfig {
    /// `zstd` (default), `blosc` (lz4 + shuffle), `gzip`, `zlib` or `none`.
    pub name: String,
    /// Codec level (zstd default 3, gzip, zlib and blosc default 5).
    #[serde(default)]
    pub level: Option<i32>,
    /// Byte shuffle before `zlib` (netCDF-4's shuffle filter); only with `zlib`.
    #[serde(default)]
    pub shuffle: Option<bool>,
}

/// One dataset's configuration file, as written by the user: the keys common to every
/// family, typed, and the family's own keys in [`DatasetConfig::options`].
#[derive(Debug, Clone, Deserialize)]
pub struct DatasetConfig {
    /// The schema the file follows (for editors); ignored.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// The dataset's name (its queue group, and the name in every message).
    pub name: String,
    /// The collection family, by its registered name (see [`crate::collection::family`]).
    pub handler: String,
    /// Regexes of the object keys that belong to the dataset.
    pub key_patterns: Vec<String>,
    /// Keys this dataset must match and no other may (checked by `config check`).
    #[serde(default)]
    pub example_keys: Vec<String>,
    /// A path (relative to the working directory), a `file://` or an `s3://` URL.
    pub store: String,
    /// The dimension files are appended along.
    pub append_dim: String,
    /// Chunk length per dimension for arrays zru creates; unlisted dims are whole.
    #[serde(default)]
    pub chunks: BTreeMap<String, u64>,
    /// Zarr format of stores zru creates: 3 (default) or 2. Existing stores keep theirs.
    #[serde(default)]
    pub zarr_format: Option<u8>,
    /// Compressor of arrays zru creates (default zstd).
    #[serde(default)]
    pub compressor: Option<CompressorConfig>,
    /// The kind of store: `zarr` (default) or `icechunk` (docs/icechunk.md).
    #[serde(default)]
    pub format: StoreFormat,
    /// Icechunk only: the branch batches are committed to (default `main`).
    #[serde(default)]
    pub branch: Option<String>,
    /// Icechunk only: tag every batch's commit (default false).
    #[serde(default)]
    pub tag_batches: bool,
    /// Variables never copied into the store.
    #[serde(default)]
    pub drop_variables: Vec<String>,
    /// If set, only these variables (plus coordinates) are copied.
    #[serde(default)]
    pub keep_variables: Option<Vec<String>>,
    /// Name of the string variable holding each slot's source object key.
    #[serde(default)]
    pub provenance_variable: Option<String>,
    /// Every other key: the family's options, parsed by the family when the catalog
    /// loads (an unknown key is an error there).
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// A dataset's `format`: a plain Zarr store or an Icechunk repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreFormat {
    /// A Zarr store (V2 or V3).
    #[default]
    Zarr,
    /// An Icechunk repository (Zarr V3, one commit per batch).
    Icechunk,
}

/// The branch of an Icechunk dataset whose configuration names none.
pub const DEFAULT_BRANCH: &str = "main";

/// A validated dataset: configuration plus compiled patterns and parsed durations.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The configuration as written.
    pub config: DatasetConfig,
    /// The file it was read from.
    pub file: PathBuf,
    patterns: Vec<Regex>,
    /// The collection family named by `handler`.
    pub family: &'static dyn Collection,
    /// The family's options, parsed (see [`Dataset::options`]).
    options: Arc<dyn FamilyOptions>,
    /// Where the store lives.
    pub location: StoreLocation,
    /// The store's local path, or its `s3://bucket/prefix` URL as a path-like name
    /// (for messages and lock names).
    pub store_path: PathBuf,
}

/// Provenance variable of a dataset whose configuration names none.
pub(crate) const DEFAULT_PROVENANCE_VARIABLE: &str = "zru_source_key";

impl Dataset {
    /// The dataset's name (`name` in its file): its queue group and the name in every
    /// message.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether one of the dataset's `key_patterns` matches the object key.
    pub(crate) fn matches(&self, key: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(key))
    }

    /// Name of the string variable holding each row's source object key: the
    /// configured `provenance_variable`, else [`DEFAULT_PROVENANCE_VARIABLE`].
    pub(crate) fn provenance_variable(&self) -> &str {
        self.config
            .provenance_variable
            .as_deref()
            .unwrap_or(DEFAULT_PROVENANCE_VARIABLE)
    }

    /// Zarr format (2 or 3) of a store zru creates for this dataset: the configured
    /// one, else 3.
    pub(crate) fn zarr_format(&self) -> u8 {
        self.config.zarr_format.unwrap_or(3)
    }

    /// The kind of store the dataset writes, with its Icechunk settings.
    pub fn backend(&self) -> Backend {
        match self.config.format {
            StoreFormat::Zarr => Backend::Zarr,
            StoreFormat::Icechunk => Backend::Icechunk {
                branch: self
                    .config
                    .branch
                    .clone()
                    .unwrap_or_else(|| DEFAULT_BRANCH.to_string()),
                tag_batches: self.config.tag_batches,
            },
        }
    }

    /// Whether a file variable is copied into the store (coordinates always are).
    pub fn keeps_variable(&self, name: &str, is_coordinate: bool) -> bool {
        if self.config.drop_variables.iter().any(|d| d == name) {
            return false;
        }
        is_coordinate
            || self
                .config
                .keep_variables
                .as_ref()
                .is_none_or(|keep| keep.iter().any(|k| k == name))
    }

    /// Chunk length for a dimension of length `len` in arrays zru creates: the
    /// configured one, else along the append dimension the family's default
    /// ([`Collection::default_append_chunk`]), and the whole length elsewhere.
    pub fn chunk_len(&self, dim: &str, len: u64) -> u64 {
        match self.config.chunks.get(dim) {
            Some(&configured) => configured,
            None if dim == self.config.append_dim => self.family.default_append_chunk(),
            None => len.max(1),
        }
    }

    /// The family's parsed options, if they are of type `T` (the family's own type).
    pub fn options<T: FamilyOptions>(&self) -> Option<&T> {
        (*self.options).as_any().downcast_ref()
    }
}

/// Why a configuration directory or dataset file cannot be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The configuration directory cannot be listed (missing, not a directory, no
    /// permission).
    #[error("config directory {dir}: {source}")]
    ReadDir {
        /// The configuration directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration directory holds no `*.json` file.
    #[error("config directory {0} holds no *.json dataset files")]
    Empty(PathBuf),
    /// A dataset file cannot be read: an I/O error, not a regular file (a FIFO, a
    /// directory), or not UTF-8.
    #[error("{file}: {source}")]
    Read {
        /// The dataset file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset file is not valid JSON, or its JSON does not deserialize into a
    /// [`DatasetConfig`].
    #[error("{file}: {reason}")]
    Parse {
        /// The dataset file.
        file: PathBuf,
        /// The parser's message and where to look.
        reason: String,
    },
    /// A value breaks the schema or a rule the schema cannot express (a [`Problem`]),
    /// including rules across files (unique names, disjoint key patterns, one store
    /// per dataset).
    #[error("{file}: {key}: {reason}; {fix}")]
    Invalid {
        /// The dataset file at fault (for a rule across files, the later of the pair).
        file: PathBuf,
        /// The key at fault ([`Problem::key`]).
        key: String,
        /// What is wrong ([`Problem::reason`]).
        reason: String,
        /// How to fix it ([`Problem::fix`]).
        fix: String,
    },
    /// The raw root cannot be scanned for keys (`zru config check` with
    /// [`LoadOptions::scan_raw_root`]).
    #[error("raw root {root}: {source}")]
    RawRoot {
        /// The raw root.
        root: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The file the error is about, if any.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Read { file, .. } | Self::Parse { file, .. } | Self::Invalid { file, .. } => {
                Some(file)
            }
            _ => None,
        }
    }
}

/// Every dataset of a configuration directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The valid datasets, in file name order.
    pub(crate) datasets: Vec<Dataset>,
}

/// Why an object key belongs to no single dataset ([`Catalog::route`]).
#[derive(Debug, Error, PartialEq)]
pub enum RouteError {
    /// No dataset's `key_patterns` match the key (the key).
    #[error("no dataset's key_patterns match key {0:?}")]
    NoMatch(String),
    /// The patterns of two or more datasets match the key (`zru config check` reports
    /// such overlaps on example and raw keys).
    #[error("key {key:?} matches more than one dataset: {datasets:?}")]
    Ambiguous {
        /// The object key.
        key: String,
        /// Names of the matching datasets, in catalog order.
        datasets: Vec<String>,
    },
}

/// What a load knows beyond the configuration directory.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The raw root (local runs): no store may be, hold or lie inside it.
    pub raw_root: Option<PathBuf>,
    /// Also read every key under the raw root and report keys two datasets match
    /// (`zru config check`; a missing raw root is skipped).
    pub scan_raw_root: bool,
}

impl Catalog {
    /// Loads and validates every `*.json` file of `dir`; the first error wins.
    pub fn load_dir(dir: &Path) -> Result<Self, ConfigError> {
        Self::load_dir_with(dir, &LoadOptions::default())
    }

    /// [`Catalog::load_dir`] knowing the raw root (ingest, flush, watch).
    pub fn load_dir_with(dir: &Path, options: &LoadOptions) -> Result<Self, ConfigError> {
        let (datasets, mut errors) = load_all(dir, options)?;
        if let Some(error) = errors.drain(..).next() {
            return Err(error);
        }
        Ok(Self { datasets })
    }

    /// Validates a directory and returns the valid datasets and every problem found
    /// (for `zru config check`).
    pub fn check_dir(
        dir: &Path,
        options: &LoadOptions,
    ) -> Result<(Vec<Dataset>, Vec<ConfigError>), ConfigError> {
        load_all(dir, options)
    }

    /// The one dataset whose patterns match `key`.
    pub fn route(&self, key: &str) -> Result<&Dataset, RouteError> {
        let matching: Vec<&Dataset> = self.datasets.iter().filter(|d| d.matches(key)).collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(RouteError::NoMatch(key.to_string())),
            many => Err(RouteError::Ambiguous {
                key: key.to_string(),
                datasets: many.iter().map(|d| d.name().to_string()).collect(),
            }),
        }
    }

    /// The dataset named `name`, if the catalog has it.
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name() == name)
    }
}

/// At most this many raw keys matched by two datasets are reported.
const MAX_REPORTED_RAW_KEYS: usize = 20;

fn load_all(
    dir: &Path,
    options: &LoadOptions,
) -> Result<(Vec<Dataset>, Vec<ConfigError>), ConfigError> {
    let read_dir = |source| ConfigError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ConfigError::Empty(dir.to_path_buf()));
    }
    let places = checks::Places::new(dir, options.raw_root.as_deref());
    let mut datasets: Vec<Dataset> = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_file_with(&file, &places) {
            Ok(dataset) => datasets.push(dataset),
            Err(problems) => errors.extend(problems),
        }
    }
    let mut broken: Vec<PathBuf> = Vec::new();
    for (file, problem) in checks::cross_checks(&datasets, &places.cwd) {
        broken.push(file.clone());
        errors.push(problem.into_error(&file));
    }
    if options.scan_raw_root {
        if let Some(root) = options.raw_root.as_deref().filter(|r| r.is_dir()) {
            let keys = checks::raw_keys(root).map_err(|source| ConfigError::RawRoot {
                root: root.to_path_buf(),
                source,
            })?;
            let mut reported = 0;
            for key in keys {
                let matching: Vec<&Dataset> = datasets.iter().filter(|d| d.matches(&key)).collect();
                if let [first, .., last] = matching.as_slice() {
                    broken.push(last.file.clone());
                    errors.push(ConfigError::Invalid {
                        file: last.file.clone(),
                        key: "key_patterns".into(),
                        reason: format!(
                            "the raw object {key:?} under {} is matched by dataset {:?} ({}) too",
                            root.display(),
                            first.name(),
                            first.file.display()
                        ),
                        fix: "make the patterns disjoint so each key belongs to one dataset".into(),
                    });
                    reported += 1;
                    if reported == MAX_REPORTED_RAW_KEYS {
                        break;
                    }
                }
            }
        }
    }
    datasets.retain(|d| !broken.contains(&d.file));
    Ok((datasets, errors))
}

/// Loads and validates one dataset file on its own (no cross-file rules); the first
/// problem is the error.
pub fn load_file(file: &Path) -> Result<Dataset, ConfigError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    load_file_with(file, &checks::Places::new(dir, None))
        .map_err(|mut errors| errors.swap_remove(0))
}

/// The UTF-8 byte order mark some editors write at the start of a file.
const BOM: char = '\u{feff}';

fn load_file_with(file: &Path, places: &checks::Places) -> Result<Dataset, Vec<ConfigError>> {
    // Not blocking: a FIFO named like a config is refused instead of hanging.
    let text = crate::store::atomic_fs::read_regular(file)
        .and_then(|bytes| String::from_utf8(bytes).map_err(std::io::Error::other))
        .map_err(|source| {
            vec![ConfigError::Read {
                file: file.to_path_buf(),
                source,
            }]
        })?;
    let text = text.strip_prefix(BOM).unwrap_or(&text);
    let parse = |reason: String| {
        vec![ConfigError::Parse {
            file: file.to_path_buf(),
            reason,
        }]
    };
    let document: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| parse(format!("not valid JSON: {e}; fix the syntax there")))?;
    let problems = schema::validate(&document);
    let errors = |problems: Vec<Problem>| -> Vec<ConfigError> {
        problems.into_iter().map(|p| p.into_error(file)).collect()
    };
    if !problems.is_empty() {
        return Err(errors(problems));
    }
    let config: DatasetConfig =
        serde_json::from_value(document).map_err(|e| parse(format!("{e}; see docs/config.md")))?;
    validate(config, file, places).map_err(errors)
}

fn validate(
    config: DatasetConfig,
    file: &Path,
    places: &checks::Places,
) -> Result<Dataset, Vec<Problem>> {
    let family = family_options(&config);
    let data_names = match &family {
        Ok((_, options)) => options.data_names(),
        Err(_) => Vec::new(),
    };
    let mut problems = checks::check_keys(&config, &data_names);
    let family = family.map_err(|more| problems.extend(more));
    let mut patterns = Vec::new();
    for (i, pattern) in config.key_patterns.iter().enumerate() {
        match Regex::new(pattern) {
            Ok(regex) => patterns.push(regex),
            Err(e) => problems.push(Problem::new(
                &format!("key_patterns[{i}]"),
                &e.to_string(),
                "write a valid regex (Rust regex syntax), e.g. \"^sst/.*\\\\.nc$\"",
            )),
        }
    }
    if patterns.len() == config.key_patterns.len() {
        for (i, key) in config.example_keys.iter().enumerate() {
            if !patterns.iter().any(|p| p.is_match(key)) {
                problems.push(Problem::new(
                    &format!("example_keys[{i}]"),
                    &format!("{key:?} is not matched by this dataset's key_patterns"),
                    "correct the example or the patterns",
                ));
            }
        }
    }
    if config.append_dim.trim().is_empty() {
        problems.push(Problem::new(
            "append_dim",
            "is empty",
            "name the dimension files are appended along, e.g. \"time\"",
        ));
    }
    let location = match StoreLocation::parse(&config.store) {
        Ok(location) => {
            problems.extend(checks::check_store_place(&config.store, &location, places));
            Some(location)
        }
        Err(e) => {
            problems.push(Problem::new("store", &e.to_string(), &e.fix()));
            None
        }
    };
    match (family.ok(), location) {
        (Some((family, options)), Some(location)) if problems.is_empty() => Ok(Dataset {
            config,
            file: file.to_path_buf(),
            patterns,
            family,
            options,
            store_path: location.display_path(),
            location,
        }),
        _ => Err(problems),
    }
}

/// A dataset's family and its parsed options.
type FamilyAndOptions = (&'static dyn Collection, Arc<dyn FamilyOptions>);

/// The family `handler` names and its parsed options: the keys beyond the common
/// ones must be that family's, and pass its checks.
fn family_options(config: &DatasetConfig) -> Result<FamilyAndOptions, Vec<Problem>> {
    let Some(family) = crate::collection::family(&config.handler) else {
        let names: Vec<String> = crate::collection::family_names()
            .iter()
            .map(|n| format!("{n:?}"))
            .collect();
        return Err(vec![Problem::new(
            "handler",
            &format!("{:?} is not a collection family", config.handler),
            &format!("write one of {}", names.join(", ")),
        )]);
    };
    let mut problems = Vec::new();
    for key in config.options.keys() {
        if family.option_keys().contains(&key.as_str()) {
            continue;
        }
        problems.push(
            match crate::collection::family_with_option(key, family.name()) {
                Some(other) => Problem::new(
                    key,
                    &format!("only applies to \"handler\": \"{}\"", other.name()),
                    "remove it, or change the handler",
                ),
                None => Problem::new(
                    key,
                    &format!(
                        "is not a key of a \"handler\": \"{}\" dataset",
                        family.name()
                    ),
                    "remove it (docs/config.md lists every key)",
                ),
            },
        );
    }
    let own = config
        .options
        .iter()
        .filter(|(key, _)| family.option_keys().contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let options = family.parse_options(config, own);
    match options {
        Ok(options) if problems.is_empty() => Ok((family, options)),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::profiles::{OtherDims, ProfileOptions, DEFAULT_PROFILE_CHUNK};

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    pub(super) const GSLA: &str = r#"{
      "name": "gsla", "handler": "gridded",
      "key_patterns": ["^IMOS/OceanCurrent/GSLA/.*\\.nc$"],
      "store": "data/zarr/gsla.zarr", "append_dim": "TIME",
      "chunks": {"TIME": 1, "LATITUDE": 351, "LONGITUDE": 641}, "time_step": "1 day"
    }"#;

    #[test]
    fn loads_the_documented_example_and_routes_keys() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "gsla.json", GSLA);
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        let ds = catalog.route("IMOS/OceanCurrent/GSLA/a.nc").unwrap();
        assert_eq!(ds.name(), "gsla");
        let gridded = ds
            .options::<crate::collection::gridded::GriddedOptions>()
            .unwrap();
        assert_eq!(gridded.time_step_seconds, Some(86400.0));
        assert_eq!(ds.chunk_len("LATITUDE", 351), 351);
        assert_eq!(ds.chunk_len("OTHER", 17), 17);
        assert_eq!(
            catalog.route("other/x.nc").unwrap_err(),
            RouteError::NoMatch("other/x.nc".into())
        );
    }

    #[test]
    fn unknown_keys_and_bad_regexes_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "typo.json",
            &GSLA.replace("\"chunks\"", "\"chunkz\""),
        );
        let err = Catalog::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("typo.json") && err.contains("chunkz"), "{err}");

        std::fs::remove_file(dir.path().join("typo.json")).unwrap();
        write(dir.path(), "regex.json", &GSLA.replace("^IMOS", "^(IMOS"));
        let err = Catalog::load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("regex.json") && err.contains("key_patterns[0]"),
            "{err}"
        );
    }

    #[test]
    fn check_reports_every_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ok.json", GSLA);
        write(
            dir.path(),
            "step.json",
            &GSLA.replace("1 day", "daily").replace("\"gsla\"", "\"x\""),
        );
        write(
            dir.path(),
            "fmt.json",
            &GSLA
                .replace("\"time_step\"", "\"zarr_format\": 4, \"time_step\"")
                .replace("\"gsla\"", "\"y\""),
        );
        let (ok, errors) = Catalog::check_dir(dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!(ok.len(), 1);
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text
            .iter()
            .any(|t| t.contains("step.json") && t.contains("time_step")));
        assert!(text
            .iter()
            .any(|t| t.contains("fmt.json") && t.contains("zarr_format")));
    }

    const ARGO: &str = r#"{
      "name": "argo", "handler": "profiles",
      "key_patterns": ["^argo/.*\\.nc$"],
      "store": "data/zarr/argo.zarr", "append_dim": "N_PROF",
      "chunks": {"N_PROF": 500, "N_LEVELS": 1000}
    }"#;

    #[test]
    fn profile_datasets_get_argo_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "argo.json", ARGO);
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        let ds = catalog.route("argo/2902093_prof.nc").unwrap();
        assert_eq!(ds.family.name(), "profiles");
        let options = ds.options::<ProfileOptions>().unwrap();
        assert_eq!(
            options.identity,
            vec!["PLATFORM_NUMBER", "CYCLE_NUMBER", "DIRECTION"]
        );
        assert_eq!(options.level_dim, "N_LEVELS");
        assert_eq!(options.other_dims, OtherDims::Keep);
        assert_eq!(ds.chunk_len("N_PROF", 3), 500);
        let unchunked = ARGO.replace(r#""N_PROF": 500, "#, "");
        write(dir.path(), "argo.json", &unchunked);
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        assert_eq!(
            catalog.datasets[0].chunk_len("N_PROF", 3),
            DEFAULT_PROFILE_CHUNK
        );
    }

    #[test]
    fn keys_of_the_other_handler_family_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "argo.json",
            &ARGO.replace("\"chunks\"", "\"time_step\": \"1 day\", \"chunks\""),
        );
        write(
            dir.path(),
            "gsla.json",
            &GSLA.replace("\"chunks\"", "\"identity\": [\"X\"], \"chunks\""),
        );
        write(
            dir.path(),
            "empty.json",
            &ARGO
                .replace("\"chunks\"", "\"identity\": [], \"chunks\"")
                .replace("\"argo\"", "\"argo2\""),
        );
        write(
            dir.path(),
            "other.json",
            &ARGO
                .replace("\"chunks\"", "\"other_dims\": \"maybe\", \"chunks\"")
                .replace("\"argo\"", "\"argo3\""),
        );
        let (ok, errors) = Catalog::check_dir(dir.path(), &LoadOptions::default()).unwrap();
        assert!(ok.is_empty());
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let has = |file: &str, key: &str| text.iter().any(|t| t.contains(file) && t.contains(key));
        assert!(has("argo.json", "time_step"), "{text:?}");
        assert!(has("gsla.json", "identity"), "{text:?}");
        assert!(has("empty.json", "identity"), "{text:?}");
        assert!(has("other.json", "maybe"), "{text:?}");
    }

    #[test]
    fn s3_stores_are_accepted_and_bad_urls_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "s3.json",
            &GSLA.replace("data/zarr/gsla.zarr", "s3://bkt/stores/gsla.zarr"),
        );
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        assert_eq!(
            catalog.datasets[0].location,
            StoreLocation::S3 {
                bucket: "bkt".into(),
                prefix: "stores/gsla.zarr".into()
            }
        );
        write(
            dir.path(),
            "s3.json",
            &GSLA.replace("data/zarr/gsla.zarr", "gs://b/gsla.zarr"),
        );
        let err = Catalog::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains(": store: ") && err.contains("gs://"), "{err}");
    }

    #[test]
    fn a_fifo_named_like_a_config_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "gsla.json", GSLA);
        let fifo = dir.path().join("x.json");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let path = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(
                Catalog::load_dir(&path)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            );
        });
        // Bounded: the old reader blocked forever in open(2) on the FIFO.
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("loading the config finished");
        let error = result.unwrap_err();
        assert!(
            error.contains("x.json") && error.contains("not a regular file"),
            "{error}"
        );
    }
}
