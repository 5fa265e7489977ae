//! One test per configuration rule of `docs/config.md`: each writes a file that breaks
//! the rule and asserts the error names the file and the key.

use std::path::Path;

use super::*;

// The documented GSLA example, shared with the loader's tests.
use super::tests::GSLA;

const ARGO: &str = r#"{
  "name": "argo", "handler": "profiles",
  "key_patterns": ["^argo/.*\\.nc$"],
  "store": "data/zarr/argo.zarr", "append_dim": "N_PROF",
  "chunks": {"N_PROF": 500, "N_LEVELS": 1000}
}"#;

/// A config directory holding `files`.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// `base` with each key set to its JSON value (added if absent).
fn set(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(base).unwrap();
    for (key, value) in pairs {
        doc[*key] = serde_json::from_str(value).unwrap();
    }
    doc.to_string()
}

/// The GSLA example with `key` set to the JSON `value` (added if absent).
fn gsla_with(key: &str, value: &str) -> String {
    set(GSLA, &[(key, value)])
}

fn argo_with(key: &str, value: &str) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(ARGO).unwrap();
    doc[key] = serde_json::from_str(value).unwrap();
    doc.to_string()
}

fn check(dir: &Path, raw_root: Option<&Path>) -> Vec<String> {
    let options = LoadOptions {
        raw_root: raw_root.map(Path::to_path_buf),
        scan_raw_root: true,
    };
    let (_, errors) = Catalog::check_dir(dir, &options).unwrap();
    errors.iter().map(|e| e.to_string()).collect()
}

/// Asserts one error names `file` and `key` (as `file: key:`) and mentions `needle`,
/// and that the plain catalog load refuses the directory too.
#[track_caller]
fn assert_rejected(files: &[(&str, &str)], file: &str, key: &str, needle: &str) {
    let dir = dir_with(files);
    let errors = check(dir.path(), None);
    let prefix = format!("{}: {key}: ", dir.path().join(file).display());
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&prefix) && e.contains(needle) && e.contains("; ")),
        "no error starting {prefix:?} mentioning {needle:?}: {errors:#?}"
    );
    assert!(Catalog::load_dir(dir.path()).is_err());
}

#[track_caller]
fn assert_accepted(files: &[(&str, &str)]) {
    let dir = dir_with(files);
    let errors = check(dir.path(), None);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_shipped_example_configs_pass_schema_and_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let doc: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(schema::validate(&doc), vec![], "{}", path.display());
            count += 1;
        }
    }
    assert!(count >= 3);
    let catalog = Catalog::load_dir(&dir).unwrap();
    assert_eq!(catalog.datasets.len(), count);
}

// ---- time_step and time_tolerance ------------------------------------------------

#[test]
fn tolerance_of_half_the_step_or_more_is_rejected() {
    let tight = gsla_with("time_step", r#""2 milliseconds""#);
    // The default tolerance (1 ms) is half of a 2 ms step: rejected, and says so.
    assert_rejected(
        &[("gsla.json", &tight)],
        "gsla.json",
        "time_tolerance",
        "default",
    );
    let mut doc: serde_json::Value = serde_json::from_str(&tight).unwrap();
    doc["time_tolerance"] = "1.5 milliseconds".into();
    assert_rejected(
        &[("gsla.json", &doc.to_string())],
        "gsla.json",
        "time_tolerance",
        "half of time_step",
    );
    doc["time_tolerance"] = "999 microseconds".into();
    assert_accepted(&[("gsla.json", &doc.to_string())]);
    doc["time_tolerance"] = "0 seconds".into();
    assert_accepted(&[("gsla.json", &doc.to_string())]);
}

#[test]
fn negative_zero_nan_and_tiny_steps_are_rejected() {
    for (step, needle) in [
        ("-1 day", "negative"),
        ("0 days", "zero"),
        ("NaN days", "NaN"),
        ("1e-6 seconds", "below 1 millisecond"),
        ("1e400 days", "infinite"),
        ("1e300 weeks", "36500 days"),
        ("1000000 days", "36500 days"),
        ("1 fortnight", "not a unit"),
    ] {
        assert_rejected(
            &[("gsla.json", &gsla_with("time_step", &format!("{step:?}")))],
            "gsla.json",
            "time_step",
            needle,
        );
    }
    assert_rejected(
        &[("gsla.json", &gsla_with("time_step", r#""daily""#))],
        "gsla.json",
        "time_step",
        "does not match",
    );
}

#[test]
fn tolerance_must_be_at_least_zero_and_below_a_day() {
    for (tolerance, needle) in [("-1 second", "negative"), ("1 day", "below 1 day")] {
        let mut doc: serde_json::Value = serde_json::from_str(GSLA).unwrap();
        doc.as_object_mut().unwrap().remove("time_step");
        doc["time_tolerance"] = tolerance.into();
        assert_rejected(
            &[("gsla.json", &doc.to_string())],
            "gsla.json",
            "time_tolerance",
            needle,
        );
    }
}

// ---- chunks ------------------------------------------------------------------------

#[test]
fn zero_and_absurd_chunk_lengths_are_rejected() {
    assert_rejected(
        &[("gsla.json", &gsla_with("chunks", r#"{"TIME": 0}"#))],
        "gsla.json",
        "chunks.TIME",
        "minimum",
    );
    assert_rejected(
        &[(
            "gsla.json",
            &gsla_with("chunks", r#"{"TIME": 1000000000000}"#),
        )],
        "gsla.json",
        "chunks.TIME",
        "maximum",
    );
    assert_rejected(
        &[("gsla.json", &gsla_with("chunks", r#"{"TIME": 1.5}"#))],
        "gsla.json",
        "chunks.TIME",
        "integer",
    );
}

#[test]
fn chunks_of_more_than_2_pow_28_elements_are_rejected() {
    assert_rejected(
        &[(
            "gsla.json",
            &gsla_with(
                "chunks",
                r#"{"TIME": 16, "LATITUDE": 8192, "LONGITUDE": 4096}"#,
            ),
        )],
        "gsla.json",
        "chunks",
        "2^28",
    );
    assert_accepted(&[(
        "gsla.json",
        &gsla_with(
            "chunks",
            r#"{"TIME": 8, "LATITUDE": 8192, "LONGITUDE": 4096}"#,
        ),
    )]);
}

// ---- provenance_variable -------------------------------------------------------------

#[test]
fn empty_slashed_and_hidden_provenance_names_are_rejected() {
    for name in ["", "a/b", ".zru", " "] {
        assert_rejected(
            &[(
                "gsla.json",
                &gsla_with("provenance_variable", &format!("{name:?}")),
            )],
            "gsla.json",
            "provenance_variable",
            "",
        );
    }
    assert_rejected(
        &[(
            "gsla.json",
            &gsla_with("provenance_variable", r#""zarr.json""#),
        )],
        "gsla.json",
        "provenance_variable",
        "metadata",
    );
}

#[test]
fn provenance_names_the_data_can_have_are_rejected() {
    let gridded = [
        (gsla_with("provenance_variable", r#""TIME""#), "append_dim"),
        (gsla_with("provenance_variable", r#""LATITUDE""#), "chunks"),
        (
            set(
                GSLA,
                &[
                    ("keep_variables", r#"["GSLA", "src"]"#),
                    ("provenance_variable", r#""src""#),
                ],
            ),
            "keep_variables",
        ),
        (
            set(
                GSLA,
                &[
                    ("drop_variables", r#"["src"]"#),
                    ("provenance_variable", r#""src""#),
                ],
            ),
            "drop_variables",
        ),
    ];
    for (text, clash) in &gridded {
        assert_rejected(
            &[("gsla.json", text)],
            "gsla.json",
            "provenance_variable",
            clash,
        );
    }
    // Profiles: the identity variables and level dimension, defaults included.
    for (text, clash) in [
        (
            argo_with("provenance_variable", r#""CYCLE_NUMBER""#),
            "identity",
        ),
        (
            argo_with("provenance_variable", r#""N_LEVELS""#),
            "level_dim",
        ),
    ] {
        assert_rejected(
            &[("argo.json", &text)],
            "argo.json",
            "provenance_variable",
            clash,
        );
    }
    assert_accepted(&[(
        "gsla.json",
        &gsla_with("provenance_variable", r#""source_key""#),
    )]);
}

// ---- key patterns ----------------------------------------------------------------------

#[test]
fn overlapping_key_patterns_of_two_datasets_are_rejected() {
    let broad = GSLA
        .replace("\"gsla\"", "\"all\"")
        .replace("^IMOS/OceanCurrent/GSLA/.*", "^IMOS/.*")
        .replace("data/zarr/gsla.zarr", "data/zarr/all.zarr");
    assert_rejected(
        &[("a.json", GSLA), ("b.json", &broad)],
        "b.json",
        "key_patterns",
        "a.json",
    );
    // Same directory, different file forms that some names satisfy both of.
    let x = GSLA
        .replace("\"gsla\"", "\"x\"")
        .replace(
            "^IMOS/OceanCurrent/GSLA/.*\\\\.nc$",
            "^IMOS/OceanCurrent/GSLA/x.*$",
        )
        .replace("data/zarr/gsla.zarr", "data/zarr/x.zarr");
    assert_rejected(
        &[("a.json", GSLA), ("b.json", &x)],
        "b.json",
        "key_patterns",
        "IMOS/OceanCurrent/GSLA/x",
    );
    // Disjoint directories pass.
    let other = GSLA
        .replace("\"gsla\"", "\"other\"")
        .replace("GSLA/", "OTHER/")
        .replace("data/zarr/gsla.zarr", "data/zarr/other.zarr");
    assert_accepted(&[("a.json", GSLA), ("b.json", &other)]);
}

#[test]
fn example_keys_must_match_and_reveal_overlaps() {
    assert_rejected(
        &[(
            "gsla.json",
            &gsla_with("example_keys", r#"["IMOS/other/x.nc"]"#),
        )],
        "gsla.json",
        "example_keys[0]",
        "not matched",
    );
    // An overlap the witnesses miss (a case-insensitive pattern whose samples are all
    // upper case), shown by an example key.
    let dir = dir_with(&[("a.json", GSLA), ("b.json", &upper())]);
    assert!(
        check(dir.path(), None).is_empty(),
        "the witnesses found it after all"
    );
    let with_example = set(
        &upper(),
        &[("example_keys", r#"["IMOS/OceanCurrent/GSLA/2024/a.nc"]"#)],
    );
    assert_rejected(
        &[("a.json", GSLA), ("b.json", &with_example)],
        "b.json",
        "key_patterns",
        "2024/a.nc",
    );
}

/// A dataset whose pattern overlaps GSLA's only on keys unlike its samples.
fn upper() -> String {
    GSLA.replace("\"gsla\"", "\"upper\"")
        .replace(
            "^IMOS/OceanCurrent/GSLA/.*\\\\.nc$",
            "(?i)^imos/oceancurrent/gsla/[0-9]{4}/[^/]+\\\\.NC$",
        )
        .replace("data/zarr/gsla.zarr", "data/zarr/upper.zarr")
}

#[test]
fn raw_keys_matched_by_two_datasets_are_reported() {
    // Patterns whose overlap the witnesses miss, but a real key under the raw root
    // matches both.
    let dir = dir_with(&[("a.json", GSLA), ("b.json", &upper())]);
    let raw = tempfile::tempdir().unwrap();
    let key = "IMOS/OceanCurrent/GSLA/2024/a.nc";
    std::fs::create_dir_all(raw.path().join("IMOS/OceanCurrent/GSLA/2024")).unwrap();
    std::fs::write(raw.path().join(key), b"").unwrap();
    let errors = check(dir.path(), Some(raw.path()));
    let file = dir.path().join("b.json");
    assert!(
        errors.iter().any(
            |e| e.starts_with(&format!("{}: key_patterns: ", file.display())) && e.contains(key)
        ),
        "{errors:#?}"
    );
}

#[test]
fn routing_still_refuses_a_key_two_datasets_match() {
    // Built without the catalog checks, as a catalog of older files would be.
    let dir = dir_with(&[
        ("a.json", GSLA),
        ("b.json", &GSLA.replace("\"gsla\"", "\"gsla2\"")),
    ]);
    let catalog = Catalog {
        datasets: vec![
            load_file(&dir.path().join("a.json")).unwrap(),
            load_file(&dir.path().join("b.json")).unwrap(),
        ],
    };
    assert!(matches!(
        catalog.route("IMOS/OceanCurrent/GSLA/a.nc"),
        Err(RouteError::Ambiguous { .. })
    ));
}

// ---- stores ------------------------------------------------------------------------------

fn gsla_named(name: &str, store: &str) -> String {
    GSLA.replace("\"gsla\"", &format!("{name:?}"))
        .replace("GSLA/", &format!("{name}/"))
        .replace("data/zarr/gsla.zarr", store)
}

#[test]
fn two_datasets_on_one_store_are_rejected_through_aliases() {
    let cwd = std::env::current_dir().unwrap();
    let absolute = cwd.join("data/zarr/a.zarr").display().to_string();
    for alias in [
        "data/zarr/a.zarr",
        "data/zarr/../zarr/a.zarr",
        "./data/zarr/a.zarr",
        "data/zarr/a.zarr/",
        absolute.as_str(),
        &format!("file://{absolute}"),
        "data/zarr/a.zarr/inner.zarr",
    ] {
        assert_rejected(
            &[
                ("a.json", &gsla_named("a", "data/zarr/a.zarr")),
                ("b.json", &gsla_named("b", alias)),
            ],
            "b.json",
            "store",
            "a.json",
        );
    }
    for (first, second) in [
        ("s3://bkt/zarr/a.zarr", "s3://bkt/zarr/a.zarr/"),
        ("s3://bkt/zarr/a.zarr", "s3://bkt/zarr/a.zarr/sub"),
        ("s3://bkt", "s3://bkt/zarr/b.zarr"),
    ] {
        assert_rejected(
            &[
                ("a.json", &gsla_named("a", first)),
                ("b.json", &gsla_named("b", second)),
            ],
            "b.json",
            "store",
            "a.json",
        );
    }
    assert_accepted(&[
        ("a.json", &gsla_named("a", "s3://bkt/zarr/a.zarr")),
        ("b.json", &gsla_named("b", "s3://bkt/zarr/a.zarr2")),
        ("c.json", &gsla_named("c", "s3://other/zarr/a.zarr")),
        ("d.json", &gsla_named("d", "data/zarr/a.zarr")),
    ]);
}

#[test]
fn a_store_through_a_symlinked_parent_is_the_same_store() {
    let base = tempfile::tempdir().unwrap();
    let real = base.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_rejected(
        &[
            (
                "a.json",
                &gsla_named("a", &real.join("s.zarr").display().to_string()),
            ),
            (
                "b.json",
                &gsla_named("b", &link.join("s.zarr").display().to_string()),
            ),
        ],
        "b.json",
        "store",
        "a.json",
    );
}

#[test]
fn stores_in_forbidden_places_are_rejected() {
    for (store, needle) in [
        (".", "working directory"),
        ("/", "working directory"),
        ("..", "'..'"),
        ("../elsewhere/x.zarr", "'..'"),
        ("data/../../x.zarr", "'..'"),
        (" data/x.zarr", "spaces"),
    ] {
        assert_rejected(
            &[("gsla.json", &gsla_named("gsla", store))],
            "gsla.json",
            "store",
            needle,
        );
    }
    // The configuration directory itself, or a parent of it (a store inside it is
    // allowed: only its *.json files are read).
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.as_path();
    for store in [dir.display().to_string(), base.path().display().to_string()] {
        std::fs::write(dir.join("gsla.json"), gsla_named("gsla", &store)).unwrap();
        let errors = check(dir, None);
        let prefix = format!("{}: store: ", dir.join("gsla.json").display());
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&prefix) && e.contains("configuration directory")),
            "{errors:#?}"
        );
    }
    let inside = dir.join("x.zarr").display().to_string();
    std::fs::write(dir.join("gsla.json"), gsla_named("gsla", &inside)).unwrap();
    assert_eq!(check(dir, None), Vec::<String>::new());
    // An absolute path elsewhere is allowed.
    let elsewhere = tempfile::tempdir().unwrap();
    assert_accepted(&[(
        "gsla.json",
        &gsla_named(
            "gsla",
            &elsewhere.path().join("x.zarr").display().to_string(),
        ),
    )]);
}

#[test]
fn a_store_that_is_or_lies_in_the_raw_root_is_rejected() {
    let raw = tempfile::tempdir().unwrap();
    for store in [
        raw.path().display().to_string(),
        raw.path().join("zarr/x.zarr").display().to_string(),
    ] {
        let dir = dir_with(&[("gsla.json", &gsla_named("gsla", &store))]);
        let errors = check(dir.path(), Some(raw.path()));
        let prefix = format!("{}: store: ", dir.path().join("gsla.json").display());
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&prefix) && e.contains("raw root")),
            "{errors:#?}"
        );
        let options = LoadOptions {
            raw_root: Some(raw.path().to_path_buf()),
            scan_raw_root: false,
        };
        assert!(Catalog::load_dir_with(dir.path(), &options).is_err());
    }
}

#[test]
fn url_lookalikes_are_rejected_not_made_local_directories() {
    for store in [
        "s3:/bucket/x",
        "s3//bucket",
        "S3://bucket/x",
        "s3://",
        "s3:///x",
        "file:/x",
        "file://",
        "gs://bucket/x",
        "http://host/x",
    ] {
        assert_rejected(
            &[("gsla.json", &gsla_named("gsla", store))],
            "gsla.json",
            "store",
            "",
        );
    }
}

// ---- compressor ----------------------------------------------------------------------------

#[test]
fn compressor_levels_out_of_range_and_unknown_names_are_rejected() {
    for (compressor, key) in [
        (r#"{"name": "zstd", "level": 23}"#, "compressor.level"),
        (r#"{"name": "zstd", "level": -131073}"#, "compressor.level"),
        (r#"{"name": "gzip", "level": 10}"#, "compressor.level"),
        (r#"{"name": "gzip", "level": -1}"#, "compressor.level"),
        (r#"{"name": "blosc", "level": 10}"#, "compressor.level"),
        (r#"{"name": "none", "level": 1}"#, "compressor.level"),
        (r#"{"name": "zstd", "level": 1e12}"#, "compressor.level"),
        (r#"{"name": "lz4"}"#, "compressor.name"),
        (r#"{"name": "zstd", "lvl": 3}"#, "compressor.lvl"),
        (r#"{"level": 3}"#, "compressor.name"),
        (r#"{"name": "zlib", "level": 10}"#, "compressor.level"),
        (r#"{"name": "gzip", "shuffle": true}"#, "compressor.shuffle"),
        (r#"{"name": "zlib", "shuffle": 1}"#, "compressor.shuffle"),
    ] {
        assert_rejected(
            &[("gsla.json", &gsla_with("compressor", compressor))],
            "gsla.json",
            key,
            "",
        );
    }
    for compressor in [
        r#"{"name": "zstd", "level": 22}"#,
        r#"{"name": "zstd", "level": -5}"#,
        r#"{"name": "gzip", "level": 0}"#,
        r#"{"name": "blosc", "level": 9}"#,
        r#"{"name": "none"}"#,
        r#"{"name": "zlib", "level": 4, "shuffle": true}"#,
        r#"{"name": "zlib"}"#,
    ] {
        assert_accepted(&[("gsla.json", &gsla_with("compressor", compressor))]);
    }
}

// ---- file level ------------------------------------------------------------------------------

#[test]
fn a_utf8_bom_is_accepted() {
    let with_bom = format!("\u{feff}{GSLA}");
    assert_accepted(&[("gsla.json", &with_bom)]);
    let dir = dir_with(&[("gsla.json", &with_bom)]);
    assert_eq!(
        Catalog::load_dir(dir.path()).unwrap().datasets[0].name(),
        "gsla"
    );
}

#[test]
fn duplicate_names_across_files_are_rejected() {
    let second = gsla_named("other", "data/zarr/other.zarr").replace("\"other\"", "\"gsla\"");
    assert_rejected(
        &[("a.json", GSLA), ("b.json", &second)],
        "b.json",
        "name",
        "a.json",
    );
}

#[test]
fn the_name_need_not_be_the_file_stem_and_other_files_are_ignored() {
    assert_accepted(&[
        ("whatever.json", GSLA),
        ("notes.txt", "not json"),
        ("gsla.json.bak", "{"),
    ]);
}

#[test]
fn wrong_types_and_unknown_keys_name_the_key() {
    assert_rejected(
        &[("gsla.json", &gsla_with("zarr_format", "4"))],
        "gsla.json",
        "zarr_format",
        "",
    );
    assert_rejected(
        &[("gsla.json", &gsla_with("key_patterns", "\"^x\""))],
        "gsla.json",
        "key_patterns",
        "array",
    );
    assert_rejected(
        &[("gsla.json", &gsla_with("key_patterns", "[\"\"]"))],
        "gsla.json",
        "key_patterns[0]",
        "",
    );
    assert_rejected(
        &[("gsla.json", &gsla_with("time_step", "86400"))],
        "gsla.json",
        "time_step",
        "string",
    );
    assert_rejected(
        &[("gsla.json", &GSLA.replace("\"chunks\"", "\"chunkz\""))],
        "gsla.json",
        "chunkz",
        "unknown key",
    );
    let mut doc: serde_json::Value = serde_json::from_str(GSLA).unwrap();
    doc.as_object_mut().unwrap().remove("store");
    assert_rejected(
        &[("gsla.json", &doc.to_string())],
        "gsla.json",
        "store",
        "missing",
    );
}

// ---- schema and serde agree ------------------------------------------------------------------

/// A configuration setting every common key serde knows and the gridded and profiles
/// families' keys (together, so it is not a valid dataset, only a list of keys).
const EVERY_KEY: &str = r#"{
  "$schema": "../docs/config.schema.json",
  "name": "n", "handler": "profiles", "key_patterns": ["^n/"],
  "example_keys": ["n/x.nc"], "store": "s.zarr", "append_dim": "N_PROF",
  "chunks": {"N_PROF": 10}, "time_step": "1 day", "time_tolerance": "1 second",
  "zarr_format": 2, "compressor": {"name": "zlib", "level": 5, "shuffle": true},
  "drop_variables": ["a"], "keep_variables": ["b"], "provenance_variable": "src",
  "identity": ["PLATFORM_NUMBER"], "level_dim": "N_LEVELS", "other_dims": "drop",
  "format": "icechunk", "branch": "b", "tag_batches": true
}"#;

/// The field names serde expects, from its "unknown field" message.
fn serde_fields<T: serde::de::DeserializeOwned + std::fmt::Debug>(base: &str) -> Vec<String> {
    let mut doc: serde_json::Value = serde_json::from_str(base).unwrap();
    doc["zz_not_a_key"] = 1.into();
    fields_of_message(&serde_json::from_value::<T>(doc).unwrap_err().to_string())
}

/// The field names of serde's "unknown field" message.
fn fields_of_message(message: &str) -> Vec<String> {
    // "unknown field `x`, expected one of `a`, `b`" or "..., expected `a` or `b`".
    let expected = message
        .split_once(", expected")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let mut fields: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    fields.sort();
    fields
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn schema_and_serde_know_the_same_keys() {
    let doc: serde_json::Value = serde_json::from_str(EVERY_KEY).unwrap();
    let keys = sorted(doc.as_object().unwrap().keys().cloned().collect());
    // serde types every common key and leaves exactly the families' keys as options;
    // each family's options struct lists exactly the keys it claims.
    let config = serde_json::from_value::<DatasetConfig>(doc.clone()).unwrap();
    let mut option_keys = Vec::new();
    for name in crate::collection::family_names() {
        let family = crate::collection::family(name).unwrap();
        let mut claimed: Vec<String> = family.option_keys().iter().map(|k| k.to_string()).collect();
        claimed.sort();
        let mut unknown = serde_json::Map::new();
        unknown.insert("zz_not_a_key".into(), 1.into());
        let problems = family.parse_options(&config, unknown).unwrap_err();
        assert_eq!(fields_of_message(&problems[0].reason), claimed, "{name}");
        option_keys.extend(claimed);
    }
    // EVERY_KEY sets some of the families' keys (a family's own tests check its
    // nested options against the schema).
    let set: Vec<String> = config.options.keys().cloned().collect();
    assert!(set.iter().all(|k| option_keys.contains(k)), "{set:?}");
    // The schema lists the common keys plus every family's keys, and accepts each value.
    let mut listed: Vec<String> = keys.into_iter().filter(|k| !set.contains(k)).collect();
    listed.extend(option_keys);
    assert_eq!(sorted(schema::property_names(&[])), sorted(listed));
    assert_eq!(schema::validate(&doc), vec![]);
    // Same for the compressor object.
    let compressor = doc["compressor"].to_string();
    let compressor_keys = sorted(
        doc["compressor"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect(),
    );
    assert_eq!(
        serde_fields::<CompressorConfig>(&compressor),
        compressor_keys
    );
    assert_eq!(
        sorted(schema::property_names(&["compressor"])),
        compressor_keys
    );
}

#[test]
fn the_schema_enums_match_serde_enums() {
    let doc: serde_json::Value = serde_json::from_str(schema::SCHEMA_TEXT).unwrap();
    let enum_of = |key: &str| -> Vec<String> {
        doc["properties"][key]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect()
    };
    // The schema's handlers are the registered families.
    let registered: Vec<String> = crate::collection::family_names()
        .iter()
        .map(|n| format!("{n:?}"))
        .collect();
    assert_eq!(enum_of("handler"), registered);
    for other in enum_of("other_dims") {
        serde_json::from_str::<crate::collection::profiles::OtherDims>(&other).unwrap();
    }
    let names: Vec<String> = doc["properties"]["compressor"]["properties"]["name"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["zstd", "blosc", "gzip", "zlib", "none"]);
}
