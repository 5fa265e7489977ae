//! Per-dataset configuration files (`config/*.json`) and the catalog that routes
//! object keys to datasets.
//!
//! One JSON file per dataset. Unknown keys, bad regexes and impossible values are
//! errors that name the file and the key. See `docs/config.md` for every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use thiserror::Error;
use zru_handlers::cf_time::parse_duration_seconds;

use crate::store::StoreLocation;

/// Which handler family a dataset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerKind {
    /// Gridded time series (time/lat/lon): region found on the time axis.
    Gridded,
    /// Profile collections (Argo): rows of the append dimension found by identity.
    Profiles,
}

/// What the profiles handler does with variables on dimensions other than the append
/// and level dimensions (`N_CALIB`, `N_PARAM`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherDims {
    /// Copied with their own dimensions (default).
    #[default]
    Keep,
    /// Not copied.
    Drop,
}

/// Default identity variables of a profile.
pub const DEFAULT_IDENTITY: [&str; 3] = ["PLATFORM_NUMBER", "CYCLE_NUMBER", "DIRECTION"];

/// Default level dimension of profile collections.
pub const DEFAULT_LEVEL_DIM: &str = "N_LEVELS";

/// Default `time_tolerance` (1 ms): far below the spacing of 1 Hz data, far above the
/// rounding of a time converted between units.
pub const DEFAULT_TIME_TOLERANCE_SECONDS: f64 = 1e-3;

/// Default chunk length along the append dimension of profile collections.
pub const DEFAULT_PROFILE_CHUNK: u64 = 1000;

/// Compressor for arrays zru creates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressorConfig {
    /// `zstd` (default), `blosc` (lz4 + shuffle), `gzip` or `none`.
    pub name: String,
    /// Codec level (zstd default 3, gzip default 5, blosc default 5).
    #[serde(default)]
    pub level: Option<i32>,
}

/// One dataset's configuration file, as written by the user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub name: String,
    pub handler: HandlerKind,
    pub key_patterns: Vec<String>,
    /// A path (relative to the working directory), a `file://` or an `s3://` URL.
    pub store: String,
    pub append_dim: String,
    /// Chunk length per dimension for arrays zru creates; unlisted dims are whole.
    #[serde(default)]
    pub chunks: BTreeMap<String, u64>,
    /// Regular spacing of the time axis, e.g. `"1 day"`: every instant has a slot.
    #[serde(default)]
    pub time_step: Option<String>,
    /// Two times closer than this are the same instant (default `"1 millisecond"`).
    #[serde(default)]
    pub time_tolerance: Option<String>,
    /// Zarr format of stores zru creates: 3 (default) or 2. Existing stores keep theirs.
    #[serde(default)]
    pub zarr_format: Option<u8>,
    #[serde(default)]
    pub compressor: Option<CompressorConfig>,
    /// Variables never copied into the store.
    #[serde(default)]
    pub drop_variables: Vec<String>,
    /// If set, only these variables (plus coordinates) are copied.
    #[serde(default)]
    pub keep_variables: Option<Vec<String>>,
    /// Name of the string variable holding each slot's source object key.
    #[serde(default)]
    pub provenance_variable: Option<String>,
    /// Profiles: variables identifying a profile (default [`DEFAULT_IDENTITY`]).
    #[serde(default)]
    pub identity: Option<Vec<String>>,
    /// Profiles: the level dimension (default [`DEFAULT_LEVEL_DIM`]).
    #[serde(default)]
    pub level_dim: Option<String>,
    /// Profiles: keep or drop variables on other dimensions (default keep).
    #[serde(default)]
    pub other_dims: Option<OtherDims>,
}

/// A validated dataset: configuration plus compiled patterns and parsed durations.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub config: DatasetConfig,
    pub file: PathBuf,
    patterns: Vec<Regex>,
    /// Time step in seconds.
    pub time_step_seconds: Option<f64>,
    /// Tolerance in seconds.
    pub time_tolerance_seconds: f64,
    /// Where the store lives.
    pub location: StoreLocation,
    /// The store's local path, or its `s3://bucket/prefix` URL as a path-like name
    /// (for messages and lock names).
    pub store_path: PathBuf,
}

pub const DEFAULT_PROVENANCE_VARIABLE: &str = "zru_source_key";

impl Dataset {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn matches(&self, key: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(key))
    }

    pub fn provenance_variable(&self) -> &str {
        self.config
            .provenance_variable
            .as_deref()
            .unwrap_or(DEFAULT_PROVENANCE_VARIABLE)
    }

    pub fn zarr_format(&self) -> u8 {
        self.config.zarr_format.unwrap_or(3)
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
    /// configured one, else along the append dimension 1 (gridded) or
    /// [`DEFAULT_PROFILE_CHUNK`] (profiles), and the whole length elsewhere.
    pub fn chunk_len(&self, dim: &str, len: u64) -> u64 {
        match self.config.chunks.get(dim) {
            Some(&configured) => configured,
            None if dim == self.config.append_dim => match self.config.handler {
                HandlerKind::Gridded => 1,
                HandlerKind::Profiles => DEFAULT_PROFILE_CHUNK,
            },
            None => len.max(1),
        }
    }

    /// Profiles: the identity variables.
    pub fn identity(&self) -> Vec<String> {
        self.config.identity.clone().unwrap_or_else(|| {
            DEFAULT_IDENTITY
                .iter()
                .map(|name| name.to_string())
                .collect()
        })
    }

    /// Profiles: the level dimension.
    pub fn level_dim(&self) -> &str {
        self.config
            .level_dim
            .as_deref()
            .unwrap_or(DEFAULT_LEVEL_DIM)
    }

    /// Profiles: what happens to variables on other dimensions.
    pub fn other_dims(&self) -> OtherDims {
        self.config.other_dims.unwrap_or_default()
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config directory {dir}: {source}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config directory {0} holds no *.json dataset files")]
    Empty(PathBuf),
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Parse { file: PathBuf, reason: String },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{file}: dataset name `{name}` is already used by {other}")]
    DuplicateName {
        file: PathBuf,
        name: String,
        other: PathBuf,
    },
}

/// Every dataset of a configuration directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub datasets: Vec<Dataset>,
}

#[derive(Debug, Error, PartialEq)]
pub enum RouteError {
    #[error("no dataset's key_patterns match key {0:?}")]
    NoMatch(String),
    #[error("key {key:?} matches more than one dataset: {datasets:?}")]
    Ambiguous { key: String, datasets: Vec<String> },
}

impl Catalog {
    /// Loads and validates every `*.json` file of `dir`; the first error wins.
    pub fn load_dir(dir: &Path) -> Result<Self, ConfigError> {
        let (datasets, mut errors) = load_all(dir)?;
        if let Some(error) = errors.drain(..).next() {
            return Err(error);
        }
        Ok(Self { datasets })
    }

    /// Validates a directory and returns every problem found (for `zru config check`).
    pub fn check_dir(dir: &Path) -> Result<(Vec<Dataset>, Vec<ConfigError>), ConfigError> {
        load_all(dir)
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

    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name() == name)
    }
}

fn load_all(dir: &Path) -> Result<(Vec<Dataset>, Vec<ConfigError>), ConfigError> {
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
    let mut datasets: Vec<Dataset> = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_file(&file) {
            Ok(dataset) => {
                if let Some(other) = datasets.iter().find(|d| d.name() == dataset.name()) {
                    errors.push(ConfigError::DuplicateName {
                        file: file.clone(),
                        name: dataset.name().to_string(),
                        other: other.file.clone(),
                    });
                } else {
                    datasets.push(dataset);
                }
            }
            Err(error) => errors.push(error),
        }
    }
    Ok((datasets, errors))
}

/// Loads and validates one dataset file.
pub fn load_file(file: &Path) -> Result<Dataset, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let config: DatasetConfig = serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
        file: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    validate(config, file)
}

fn validate(config: DatasetConfig, file: &Path) -> Result<Dataset, ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        file: file.to_path_buf(),
        key: key.to_string(),
        reason,
    };
    if config.name.trim().is_empty() || config.name.contains(['/', '\\']) {
        return Err(invalid(
            "name",
            "must be a non-empty name without slashes".into(),
        ));
    }
    if config.key_patterns.is_empty() {
        return Err(invalid("key_patterns", "needs at least one regex".into()));
    }
    let patterns = config
        .key_patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Regex::new(p).map_err(|e| invalid(&format!("key_patterns[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if config.append_dim.trim().is_empty() {
        return Err(invalid("append_dim", "must name a dimension".into()));
    }
    if let Some((dim, _)) = config.chunks.iter().find(|(_, &len)| len == 0) {
        return Err(invalid(
            &format!("chunks.{dim}"),
            "chunk length must be > 0".into(),
        ));
    }
    let duration = |key: &str, text: &Option<String>| -> Result<Option<f64>, ConfigError> {
        text.as_deref()
            .map(|t| {
                parse_duration_seconds(t).ok_or_else(|| {
                    invalid(
                        key,
                        format!("{t:?} is not a duration like \"1 day\" or \"6 hours\""),
                    )
                })
            })
            .transpose()
    };
    let time_step_seconds = duration("time_step", &config.time_step)?;
    let time_tolerance_seconds = duration("time_tolerance", &config.time_tolerance)?
        .unwrap_or(DEFAULT_TIME_TOLERANCE_SECONDS);
    if let Some(format) = config.zarr_format {
        if format != 2 && format != 3 {
            return Err(invalid("zarr_format", format!("{format} is not 2 or 3")));
        }
    }
    if let Some(compressor) = &config.compressor {
        if !matches!(compressor.name.as_str(), "zstd" | "blosc" | "gzip" | "none") {
            return Err(invalid(
                "compressor.name",
                format!(
                    "{:?} is not one of zstd, blosc, gzip, none",
                    compressor.name
                ),
            ));
        }
    }
    if config.keep_variables.is_some() && !config.drop_variables.is_empty() {
        return Err(invalid(
            "keep_variables",
            "use keep_variables or drop_variables, not both".into(),
        ));
    }
    check_handler_keys(&config).map_err(|(key, reason)| invalid(key, reason))?;
    let location =
        StoreLocation::parse(&config.store).map_err(|e| invalid("store", e.to_string()))?;
    Ok(Dataset {
        config,
        file: file.to_path_buf(),
        patterns,
        time_step_seconds,
        time_tolerance_seconds,
        store_path: location.display_path(),
        location,
    })
}

/// Keys that belong to one handler family are errors in the other's files.
fn check_handler_keys(config: &DatasetConfig) -> Result<(), (&'static str, String)> {
    let only = |family: &str| format!("only applies to \"handler\": \"{family}\"");
    match config.handler {
        HandlerKind::Gridded => {
            let profile_keys = [
                ("identity", config.identity.is_some()),
                ("level_dim", config.level_dim.is_some()),
                ("other_dims", config.other_dims.is_some()),
            ];
            if let Some((key, _)) = profile_keys.iter().find(|(_, set)| *set) {
                return Err((key, only("profiles")));
            }
        }
        HandlerKind::Profiles => {
            if config.time_step.is_some() {
                return Err(("time_step", only("gridded")));
            }
            if config.time_tolerance.is_some() {
                return Err(("time_tolerance", only("gridded")));
            }
            if let Some(identity) = &config.identity {
                if identity.is_empty() || identity.iter().any(|n| n.trim().is_empty()) {
                    return Err(("identity", "needs at least one variable name".into()));
                }
            }
            if config.level_dim.as_deref() == Some(config.append_dim.as_str()) {
                return Err(("level_dim", "must differ from append_dim".into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const GSLA: &str = r#"{
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
        assert_eq!(ds.time_step_seconds, Some(86400.0));
        assert_eq!(ds.chunk_len("LATITUDE", 351), 351);
        assert_eq!(ds.chunk_len("OTHER", 17), 17);
        assert_eq!(
            catalog.route("other/x.nc").unwrap_err(),
            RouteError::NoMatch("other/x.nc".into())
        );
    }

    #[test]
    fn two_matching_datasets_are_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", GSLA);
        write(dir.path(), "b.json", &GSLA.replace("\"gsla\"", "\"gsla2\""));
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        assert!(matches!(
            catalog.route("IMOS/OceanCurrent/GSLA/a.nc"),
            Err(RouteError::Ambiguous { .. })
        ));
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
        let (ok, errors) = Catalog::check_dir(dir.path()).unwrap();
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
        assert_eq!(ds.config.handler, HandlerKind::Profiles);
        assert_eq!(
            ds.identity(),
            vec!["PLATFORM_NUMBER", "CYCLE_NUMBER", "DIRECTION"]
        );
        assert_eq!(ds.level_dim(), "N_LEVELS");
        assert_eq!(ds.other_dims(), OtherDims::Keep);
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
        let (ok, errors) = Catalog::check_dir(dir.path()).unwrap();
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
            &GSLA.replace("data/zarr/gsla.zarr", "s3://b/stores/gsla.zarr"),
        );
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        assert_eq!(
            catalog.datasets[0].location,
            StoreLocation::S3 {
                bucket: "b".into(),
                prefix: "stores/gsla.zarr".into()
            }
        );
        write(
            dir.path(),
            "s3.json",
            &GSLA.replace("data/zarr/gsla.zarr", "gs://b/gsla.zarr"),
        );
        let err = Catalog::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("`store`") && err.contains("gs://"), "{err}");
    }
}
