//! The series family's options: the `series` key, `{"file_dim", "identity"}`.

use std::sync::Arc;

use serde::Deserialize;

use crate::collection::FamilyOptions;
use crate::config::{DatasetConfig, Problem};

/// Default chunk length along the observation dimension of series collections.
pub const DEFAULT_SERIES_CHUNK: u64 = 10_000;

/// The keys of a series dataset file beyond the common ones.
pub const OPTION_KEYS: &[&str] = &["series"];

/// The keys of a series dataset file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    /// The family's options (defaults if absent).
    #[serde(default)]
    series: Option<SeriesOptions>,
}

/// Options of an observation series dataset (`"handler": "series"`), the `series` key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesOptions {
    /// The files' observation dimension (default: `append_dim`).
    #[serde(default)]
    pub file_dim: Option<String>,
    /// What identifies a file's series (platform + deployment): scalar variables by
    /// name, global attributes as `"@name"`. Empty: the key alone identifies the rows.
    #[serde(default)]
    pub identity: Vec<String>,
}

impl FamilyOptions for SeriesOptions {
    fn data_names(&self) -> Vec<(&'static str, String)> {
        let file_dim = self.file_dim.iter().map(|d| ("series.file_dim", d.clone()));
        let identity = self
            .identity
            .iter()
            .filter(|n| !n.starts_with('@'))
            .map(|n| ("series.identity", n.clone()));
        file_dim.chain(identity).collect()
    }
}

/// Parses and checks the series options of a dataset file.
pub(super) fn parse(
    _config: &DatasetConfig,
    options: serde_json::Map<String, serde_json::Value>,
) -> Result<Arc<dyn FamilyOptions>, Vec<Problem>> {
    let written: Written = crate::collection::parse_written(options)?;
    let options = written.series.unwrap_or_default();
    let mut problems = Vec::new();
    if options
        .file_dim
        .as_deref()
        .is_some_and(|d| d.trim().is_empty())
    {
        problems.push(Problem::new(
            "series.file_dim",
            "is empty",
            "name the files' observation dimension (e.g. \"TIME\"), or omit it to use append_dim",
        ));
    }
    let blank = |part: &String| part.trim().is_empty() || part.trim() == "@";
    if options.identity.iter().any(blank) {
        problems.push(Problem::new(
            "series.identity",
            "has an empty name",
            "list scalar variables by name and global attributes as \"@name\", e.g. [\"@deployment_code\"]",
        ));
    }
    if problems.is_empty() {
        Ok(Arc::new(options))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    //! `zru config check` on series files (the rules of [`parse`], the schema's
    //! `series` object, keys of other families).

    use crate::config::{schema, Catalog, LoadOptions};

    const SOOP: &str = r#"{
      "name": "soop", "handler": "series",
      "key_patterns": ["^soop/.*\\.nc$"],
      "store": "data/zarr/soop.zarr", "append_dim": "OBSERVATION",
      "series": {"file_dim": "TIME", "identity": ["@deployment_code", "PLATFORM"]}
    }"#;

    const GSLA: &str = r#"{
      "name": "gsla", "handler": "gridded",
      "key_patterns": ["^IMOS/OceanCurrent/GSLA/.*\\.nc$"],
      "store": "data/zarr/gsla.zarr", "append_dim": "TIME", "time_step": "1 day"
    }"#;

    const ARGO: &str = r#"{
      "name": "argo", "handler": "profiles",
      "key_patterns": ["^argo/.*\\.nc$"],
      "store": "data/zarr/argo.zarr", "append_dim": "N_PROF"
    }"#;

    /// `base` with each key set to its JSON value (added if absent).
    fn set(base: &str, pairs: &[(&str, &str)]) -> String {
        let mut doc: serde_json::Value = serde_json::from_str(base).unwrap();
        for (key, value) in pairs {
            doc[*key] = serde_json::from_str(value).unwrap();
        }
        doc.to_string()
    }

    /// The errors of `zru config check` on a directory holding `text` as `file`.
    fn check(file: &str, text: &str) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), text).unwrap();
        let options = LoadOptions {
            raw_root: None,
            scan_raw_root: false,
        };
        let (_, errors) = Catalog::check_dir(dir.path(), &options).unwrap();
        let errors = errors.iter().map(|e| e.to_string()).collect();
        (dir, errors)
    }

    /// Asserts one error names `file` and `key` (as `file: key:`) and mentions `needle`.
    #[track_caller]
    fn assert_rejected(file: &str, text: &str, key: &str, needle: &str) {
        let (dir, errors) = check(file, text);
        let prefix = format!("{}: {key}: ", dir.path().join(file).display());
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&prefix) && e.contains(needle)),
            "no error starting {prefix:?} mentioning {needle:?}: {errors:#?}"
        );
        assert!(Catalog::load_dir(dir.path()).is_err());
    }

    #[test]
    fn series_keys_belong_to_series_files_and_name_their_parts() {
        assert_eq!(check("soop.json", SOOP).1, Vec::<String>::new());
        let series = r#"{"file_dim": "TIME"}"#;
        assert_rejected(
            "gsla.json",
            &set(GSLA, &[("series", series)]),
            "series",
            "series",
        );
        assert_rejected(
            "argo.json",
            &set(ARGO, &[("series", series)]),
            "series",
            "series",
        );
        for (key, value, family) in [
            ("time_step", r#""1 day""#, "gridded"),
            ("identity", r#"["PLATFORM"]"#, "profiles"),
            ("level_dim", r#""N_LEVELS""#, "profiles"),
        ] {
            let file = set(SOOP, &[(key, value)]);
            assert_rejected("soop.json", &file, key, family);
        }
        let blank = set(
            SOOP,
            &[("series", r#"{"identity": ["@deployment_code", "@"]}"#)],
        );
        assert_rejected("soop.json", &blank, "series.identity[1]", "");
        let unknown = set(SOOP, &[("series", r#"{"file_dimension": "TIME"}"#)]);
        assert_rejected(
            "soop.json",
            &unknown,
            "series.file_dimension",
            "unknown key",
        );
        let clash = set(SOOP, &[("provenance_variable", r#""PLATFORM""#)]);
        assert_rejected(
            "soop.json",
            &clash,
            "provenance_variable",
            "series.identity",
        );
    }

    #[test]
    fn the_rules_hold_without_the_schema() {
        let parse = |series: serde_json::Value| {
            let config: crate::config::DatasetConfig = serde_json::from_str(SOOP).unwrap();
            let mut options = serde_json::Map::new();
            options.insert("series".into(), series);
            super::parse(&config, options)
        };
        let problems = |series| parse(series).unwrap_err();
        let keys =
            |series| -> Vec<String> { problems(series).iter().map(|p| p.key.clone()).collect() };
        assert_eq!(
            keys(serde_json::json!({"file_dim": " "})),
            ["series.file_dim"]
        );
        assert_eq!(
            keys(serde_json::json!({"identity": ["@"]})),
            ["series.identity"]
        );
        assert!(parse(serde_json::json!({"identity": ["@deployment_code"]})).is_ok());
        assert!(parse(serde_json::json!({"file_dimension": "TIME"})).is_err());
    }

    #[test]
    fn the_schema_and_serde_know_the_same_series_keys() {
        let mut listed = schema::property_names(&["series"]);
        listed.sort();
        assert_eq!(listed, ["file_dim", "identity"]);
        let doc = serde_json::json!({"file_dim": "TIME", "identity": [], "zz": 1});
        let message = serde_json::from_value::<super::SeriesOptions>(doc)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`file_dim`") && message.contains("`identity`"),
            "{message}"
        );
    }
}
