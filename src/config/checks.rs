//! Hand-written checks: the rules the schema cannot express (values read as durations,
//! one key against another, one file against another, paths against the file system).
//! Every rule is documented in `docs/config.md`.

use std::path::{Component, Path, PathBuf};

use super::witness::PatternSamples;
use super::{Dataset, DatasetConfig, Problem};
use crate::store::StoreLocation;

/// Largest chunk length of one dimension (2^31).
pub const MAX_CHUNK_LEN: u64 = 1 << 31;
/// Largest product of the configured chunk lengths (2^28 elements: 2 GiB of float64).
pub const MAX_CHUNK_ELEMENTS: u128 = 1 << 28;

/// Rules on one file's common keys that the schema cannot express; `data_names` are
/// the names the family's options give the data (with the key naming each).
pub(super) fn check_keys(
    config: &DatasetConfig,
    data_names: &[(&'static str, String)],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if config.name.trim().is_empty() || config.name.contains(['/', '\\']) {
        problems.push(Problem::new(
            "name",
            "must be a non-empty name without slashes",
            "write a short name such as \"sst\"",
        ));
    }
    let product = config
        .chunks
        .values()
        .fold(1u128, |acc, &len| acc.saturating_mul(u128::from(len)));
    if let Some((dim, len)) = config
        .chunks
        .iter()
        .find(|(_, &len)| len == 0 || len > MAX_CHUNK_LEN)
    {
        problems.push(Problem::new(
            &format!("chunks.{dim}"),
            &format!("{len} is not between 1 and 2^31"),
            "write a chunk length from 1 to 2147483648",
        ));
    } else if product > MAX_CHUNK_ELEMENTS {
        problems.push(Problem::new(
            "chunks",
            &format!(
                "the chunk lengths multiply to {product} elements, more than 2^28 (268435456, 2 GiB of float64 per chunk)"
            ),
            "use smaller chunk lengths (e.g. 1 along the time axis and a few hundred to a few thousand elsewhere)",
        ));
    }
    problems.extend(check_format(config));
    if config.keep_variables.is_some() && !config.drop_variables.is_empty() {
        problems.push(Problem::new(
            "keep_variables",
            "is set together with drop_variables",
            "use keep_variables or drop_variables, not both",
        ));
    }
    if let Some(compressor) = &config.compressor {
        let range = match compressor.name.as_str() {
            "zstd" => Some(-131_072..=22),
            "gzip" | "blosc" | "zlib" => Some(0..=9),
            "none" => None,
            other => {
                problems.push(Problem::new(
                    "compressor.name",
                    &format!("{other:?} is not a compressor"),
                    "write one of \"zstd\", \"blosc\", \"gzip\", \"zlib\", \"none\"",
                ));
                None
            }
        };
        match (compressor.level, range) {
            (Some(level), Some(range)) if !range.contains(&level) => problems.push(Problem::new(
                "compressor.level",
                &format!("{level} is out of range for {}", compressor.name),
                &format!(
                    "write a level from {} to {} (or omit it for the default)",
                    range.start(),
                    range.end()
                ),
            )),
            (Some(_), None) if compressor.name == "none" => problems.push(Problem::new(
                "compressor.level",
                "has no meaning without a compressor",
                "remove the level, or name a compressor",
            )),
            _ => {}
        }
        if compressor.shuffle.is_some() && compressor.name != "zlib" {
            problems.push(Problem::new(
                "compressor.shuffle",
                &format!("is for zlib only, not {}", compressor.name),
                "remove shuffle, or use {\"name\": \"zlib\", \"shuffle\": true}",
            ));
        }
    }
    problems.extend(check_provenance(config, data_names));
    problems
}

/// The provenance variable's name: a plain array name no data variable can have.
/// Icechunk repositories hold Zarr V3 only; `branch` and `tag_batches` need one.
fn check_format(config: &DatasetConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let icechunk = config.format == super::StoreFormat::Icechunk;
    if icechunk && config.zarr_format == Some(2) {
        problems.push(Problem::new(
            "zarr_format",
            "is 2, but an Icechunk repository holds Zarr 3 only",
            "remove zarr_format (or write 3), or use \"format\": \"zarr\"",
        ));
    }
    if !icechunk && (config.branch.is_some() || config.tag_batches) {
        problems.push(Problem::new(
            if config.branch.is_some() {
                "branch"
            } else {
                "tag_batches"
            },
            "applies to Icechunk repositories only",
            "add \"format\": \"icechunk\" or remove the key",
        ));
    }
    problems
}

fn check_provenance(config: &DatasetConfig, data_names: &[(&'static str, String)]) -> Vec<Problem> {
    let name = config
        .provenance_variable
        .as_deref()
        .unwrap_or(super::DEFAULT_PROVENANCE_VARIABLE);
    const FIX: &str = "choose a name no file variable has, such as \"zru_source_key\" (the default: omit the key)";
    let bad = |reason: String| vec![Problem::new("provenance_variable", &reason, FIX)];
    if name.trim().is_empty() {
        return bad("is empty".into());
    }
    if name.trim() != name {
        return bad(format!("{name:?} has leading or trailing spaces"));
    }
    if name.contains('/') || name.contains('\\') {
        return bad(format!("{name:?} contains a slash (it names one array)"));
    }
    if name.starts_with('.') {
        return bad(format!(
            "{name:?} starts with '.' (hidden and reserved names)"
        ));
    }
    if name == "zarr.json" {
        return bad(format!(
            "{name:?} is the name of the store's metadata document"
        ));
    }
    let mut taken: Vec<(&str, String)> = vec![("append_dim", config.append_dim.clone())];
    taken.extend(data_names.iter().cloned());
    taken.extend(
        config
            .keep_variables
            .iter()
            .flatten()
            .map(|n| ("keep_variables", n.clone())),
    );
    taken.extend(
        config
            .drop_variables
            .iter()
            .map(|n| ("drop_variables", n.clone())),
    );
    taken.extend(config.chunks.keys().map(|n| ("chunks", n.clone())));
    if let Some((key, _)) = taken.iter().find(|(_, n)| n == name) {
        return bad(format!(
            "{name:?} is also named in {key}: the provenance array would replace a variable of the data"
        ));
    }
    Vec::new()
}

/// Where stores may not be: resolved working directory, configuration directory and
/// raw root.
#[derive(Debug, Clone)]
pub(super) struct Places {
    pub cwd: PathBuf,
    pub config_dir: PathBuf,
    pub raw_root: Option<PathBuf>,
}

impl Places {
    pub fn new(config_dir: &Path, raw_root: Option<&Path>) -> Self {
        let cwd = std::env::current_dir()
            .and_then(|d| d.canonicalize())
            .unwrap_or_else(|_| PathBuf::from("."));
        Self {
            config_dir: resolve(config_dir, &cwd),
            raw_root: raw_root.map(|r| resolve(r, &cwd)),
            cwd,
        }
    }
}

/// An absolute path for `path`: its longest existing ancestor canonicalised (symlinks,
/// `..`), the rest appended with `.` and `..` applied lexically.
pub fn resolve(path: &Path, cwd: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let components: Vec<Component> = absolute.components().collect();
    for i in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..i].iter().collect();
        if let Ok(mut out) = prefix.canonicalize() {
            for component in &components[i..] {
                match component {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(name) => out.push(name),
                    _ => {}
                }
            }
            return out;
        }
    }
    absolute
}

/// Whether a relative path climbs above its starting directory with `..`.
fn escapes(path: &Path) -> bool {
    let mut depth = 0i64;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

fn nested(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// A local store's placement: not the working directory or one of its ancestors, not
/// the configuration directory or one of its ancestors, not nested with the raw root,
/// no `..` escape.
pub(super) fn check_store_place(
    text: &str,
    location: &StoreLocation,
    places: &Places,
) -> Vec<Problem> {
    let Some(path) = location.local_path() else {
        return Vec::new();
    };
    const FIX: &str = "use a directory of its own for the store, such as \"data/zarr/<name>.zarr\"";
    let bad = |reason: String| vec![Problem::new("store", &reason, FIX)];
    if text.trim() != text {
        return bad(format!("{text:?} has leading or trailing spaces"));
    }
    if path.is_relative() && escapes(path) {
        return bad(format!(
            "{text:?} climbs out of the working directory with '..' (write an absolute path to place a store elsewhere)"
        ));
    }
    let resolved = resolve(path, &places.cwd);
    if places.cwd.starts_with(&resolved) {
        return bad(format!(
            "{text:?} is {} , the working directory or one of its parents: zru would write arrays all over it",
            resolved.display()
        ));
    }
    // A store inside the configuration directory is allowed (only its *.json files are
    // read); the directory itself or a parent of it would mix arrays with dataset files.
    if places.config_dir.starts_with(&resolved) {
        return bad(format!(
            "{text:?} ({}) is the configuration directory {} or holds it",
            resolved.display(),
            places.config_dir.display()
        ));
    }
    if let Some(raw) = &places.raw_root {
        if nested(&resolved, raw) {
            return bad(format!(
                "{text:?} ({}) is, holds or lies inside the raw root {}: the watcher would see the store's files as raw objects",
                resolved.display(),
                raw.display()
            ));
        }
    }
    Vec::new()
}

/// Two locations that are the same store or nest one in the other.
fn same_store(a: &StoreLocation, b: &StoreLocation, cwd: &Path) -> bool {
    match (a, b) {
        (StoreLocation::Local(a), StoreLocation::Local(b)) => {
            nested(&resolve(a, cwd), &resolve(b, cwd))
        }
        (
            StoreLocation::S3 {
                bucket: ba,
                prefix: pa,
            },
            StoreLocation::S3 {
                bucket: bb,
                prefix: pb,
            },
        ) => {
            let inside = |x: &str, y: &str| {
                x.is_empty() || y.is_empty() || x == y || y.starts_with(&format!("{x}/"))
            };
            ba == bb && (inside(pa, pb) || inside(pb, pa))
        }
        _ => false,
    }
}

/// Rules between files: unique names, disjoint key patterns, one store per dataset.
/// Each problem is reported against the later file of the pair.
pub(super) fn cross_checks(datasets: &[Dataset], cwd: &Path) -> Vec<(PathBuf, Problem)> {
    let mut out = Vec::new();
    let samples: Vec<Vec<PatternSamples>> = datasets
        .iter()
        .map(|d| {
            d.config
                .key_patterns
                .iter()
                .map(|p| PatternSamples::of(p))
                .collect()
        })
        .collect();
    for (j, later) in datasets.iter().enumerate() {
        for (i, earlier) in datasets[..j].iter().enumerate() {
            let other = format!("dataset {:?} ({})", earlier.name(), earlier.file.display());
            if earlier.name() == later.name() {
                out.push((
                    later.file.clone(),
                    Problem::new(
                        "name",
                        &format!("{:?} is already the name of {other}", later.name()),
                        "give each dataset a unique name",
                    ),
                ));
            }
            if let Some(key) = shared_key(earlier, later, &samples[i], &samples[j]) {
                out.push((
                    later.file.clone(),
                    Problem::new(
                        "key_patterns",
                        &format!("overlap with the key_patterns of {other}: both match {key:?}"),
                        "make the patterns disjoint (anchor them with ^ and $, and give each dataset its own directory or file name form)",
                    ),
                ));
            }
            if same_store(&earlier.location, &later.location, cwd) {
                out.push((
                    later.file.clone(),
                    Problem::new(
                        "store",
                        &format!(
                            "{:?} is the store of {other} ({:?}), or nested with it",
                            later.config.store, earlier.config.store
                        ),
                        "give each dataset its own store directory or prefix",
                    ),
                ));
            }
        }
    }
    out
}

/// A key both datasets match, if the witnesses find one.
fn shared_key(
    a: &Dataset,
    b: &Dataset,
    sa: &[PatternSamples],
    sb: &[PatternSamples],
) -> Option<String> {
    let examples = a.config.example_keys.iter().chain(&b.config.example_keys);
    if let Some(key) = examples.into_iter().find(|k| a.matches(k) && b.matches(k)) {
        return Some(key.clone());
    }
    for pa in sa {
        for pb in sb {
            if let Some(key) = pa
                .candidates(pb)
                .into_iter()
                .find(|k| a.matches(k) && b.matches(k))
            {
                return Some(key);
            }
        }
    }
    None
}

/// Every regular file under `root` (not following symlinked directories), as an
/// object key (`/`-separated path relative to the root).
pub fn raw_keys(root: &Path) -> std::io::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() || kind.is_symlink() {
                if let Ok(relative) = path.strip_prefix(root) {
                    let key: Vec<String> = relative
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    keys.push(key.join("/"));
                }
            }
        }
    }
    keys.sort();
    Ok(keys)
}
