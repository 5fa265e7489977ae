//! The profiles family's options: `identity`, `level_dim`, `other_dims`.

use std::sync::Arc;

use serde::Deserialize;

use crate::collection::FamilyOptions;
use crate::config::{DatasetConfig, Problem};

/// Default identity variables of a profile.
pub const DEFAULT_IDENTITY: [&str; 3] = ["PLATFORM_NUMBER", "CYCLE_NUMBER", "DIRECTION"];

/// Default level dimension of profile collections.
pub const DEFAULT_LEVEL_DIM: &str = "N_LEVELS";

/// Default chunk length along the append dimension of profile collections.
pub const DEFAULT_PROFILE_CHUNK: u64 = 1000;

/// The keys of a profiles dataset file beyond the common ones.
pub const OPTION_KEYS: &[&str] = &["identity", "level_dim", "other_dims"];

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

/// The profiles options as written in a dataset file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    /// Variables identifying a profile (default [`DEFAULT_IDENTITY`]).
    #[serde(default)]
    identity: Option<Vec<String>>,
    /// The level dimension (default [`DEFAULT_LEVEL_DIM`]).
    #[serde(default)]
    level_dim: Option<String>,
    /// Keep or drop variables on other dimensions (default keep).
    #[serde(default)]
    other_dims: Option<OtherDims>,
}

/// A profiles dataset's parsed options, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileOptions {
    /// The identity variables.
    pub identity: Vec<String>,
    /// The level dimension.
    pub level_dim: String,
    /// What happens to variables on other dimensions.
    pub other_dims: OtherDims,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            identity: DEFAULT_IDENTITY.iter().map(|n| n.to_string()).collect(),
            level_dim: DEFAULT_LEVEL_DIM.to_string(),
            other_dims: OtherDims::default(),
        }
    }
}

impl FamilyOptions for ProfileOptions {
    fn data_names(&self) -> Vec<(&'static str, String)> {
        let mut names = vec![("level_dim", self.level_dim.clone())];
        names.extend(self.identity.iter().map(|n| ("identity", n.clone())));
        names
    }
}

/// Parses and checks the profiles options of a dataset file.
pub(super) fn parse(
    config: &DatasetConfig,
    options: serde_json::Map<String, serde_json::Value>,
) -> Result<Arc<dyn FamilyOptions>, Vec<Problem>> {
    let written: Written = crate::collection::parse_written(options)?;
    let mut problems = Vec::new();
    if let Some(identity) = &written.identity {
        if identity.is_empty() || identity.iter().any(|n| n.trim().is_empty()) {
            problems.push(Problem::new(
                "identity",
                "needs at least one variable name",
                "list the variables identifying a profile, e.g. [\"PLATFORM_NUMBER\", \"CYCLE_NUMBER\", \"DIRECTION\"]",
            ));
        }
    }
    if written.level_dim.as_deref() == Some(config.append_dim.as_str()) {
        problems.push(Problem::new(
            "level_dim",
            "is the same dimension as append_dim",
            "name the level dimension (e.g. \"N_LEVELS\")",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let defaults = ProfileOptions::default();
    Ok(Arc::new(ProfileOptions {
        identity: written.identity.unwrap_or(defaults.identity),
        level_dim: written.level_dim.unwrap_or(defaults.level_dim),
        other_dims: written.other_dims.unwrap_or_default(),
    }))
}
