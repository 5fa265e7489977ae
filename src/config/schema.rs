//! The JSON Schema of a dataset file (`docs/config.schema.json`, embedded): every key,
//! its type, enum, range and pattern. `zru config check` and every catalog load run it
//! before serde, so a wrong type or an out-of-range value is reported with its key and
//! the schema's description of that key as the fix.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::Validator;
use serde_json::Value;

use super::Problem;

/// The schema's text, as published in `docs/config.schema.json`.
pub const SCHEMA_TEXT: &str = include_str!("../../docs/config.schema.json");

/// The parsed schema.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The schema is part of the binary and checked by the unit tests.
        serde_json::from_str(SCHEMA_TEXT).unwrap_or(Value::Bool(true))
    })
}

fn validator() -> Option<&'static Validator> {
    static VALIDATOR: OnceLock<Option<Validator>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(schema())
                .ok()
        })
        .as_ref()
}

/// Every way `document` breaks the schema, as (key, what is wrong, fix).
pub fn validate(document: &Value) -> Vec<Problem> {
    let Some(validator) = validator() else {
        return vec![Problem::new(
            "$schema",
            "the embedded configuration schema does not compile",
            "report this as a bug in zru",
        )];
    };
    let mut problems: Vec<Problem> = Vec::new();
    for error in validator.iter_errors(document) {
        let segments: Vec<Segment> = error
            .instance_path()
            .segments()
            .map(|s| match s {
                LocationSegment::Property(p) => Segment::Key(p.to_string()),
                LocationSegment::Index(i) => Segment::Index(i),
            })
            .collect();
        let problem = match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let parent = key_name(&segments);
                let known = known_keys(&segments);
                let mut out = Vec::new();
                for name in unexpected {
                    let key = if parent.is_empty() {
                        name.clone()
                    } else {
                        format!("{parent}.{name}")
                    };
                    out.push(Problem::new(
                        &key,
                        "unknown key",
                        &format!("remove it or correct its spelling (known keys: {known})"),
                    ));
                }
                problems.extend(out);
                continue;
            }
            ValidationErrorKind::Required { property } => {
                let parent = key_name(&segments);
                let name = property.as_str().unwrap_or("?").to_string();
                let key = if parent.is_empty() {
                    name
                } else {
                    format!("{parent}.{name}")
                };
                let mut path = segments.clone();
                path.push(Segment::Key(key.rsplit('.').next().unwrap_or("").into()));
                Problem::new(&key, "missing (required)", &fix_for(&path))
            }
            ValidationErrorKind::FalseSchema => Problem::new(
                &key_name(&segments),
                "is not allowed here",
                &format!("remove it; {}", fix_for(&segments)),
            ),
            _ => {
                let key = key_name(&segments);
                Problem::new(
                    if key.is_empty() { "(file)" } else { &key },
                    &error.to_string(),
                    &fix_for(&segments),
                )
            }
        };
        problems.push(problem);
    }
    problems.dedup_by(|a, b| a.key == b.key && a.reason == b.reason);
    problems
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// `chunks.TIME`, `key_patterns[0]`, `compressor.level`.
fn key_name(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The schema node describing the value at `segments` (following `properties`,
/// `additionalProperties` and `items`).
fn node_at(segments: &[Segment]) -> Option<&'static Value> {
    let mut node = schema();
    for segment in segments {
        node = match segment {
            Segment::Key(k) => node
                .get("properties")
                .and_then(|p| p.get(k))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?,
            Segment::Index(_) => node.get("items")?,
        };
    }
    Some(node)
}

fn fix_for(segments: &[Segment]) -> String {
    match node_at(segments).and_then(|n| n.get("description")?.as_str()) {
        Some(description) => format!("expected: {description}"),
        None => "see docs/config.md".into(),
    }
}

fn known_keys(segments: &[Segment]) -> String {
    node_at(segments)
        .and_then(|n| n.get("properties")?.as_object())
        .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// The property names the schema lists at the top level and under `compressor`.
pub fn property_names(path: &[&str]) -> Vec<String> {
    let segments: Vec<Segment> = path.iter().map(|k| Segment::Key(k.to_string())).collect();
    node_at(&segments)
        .and_then(|n| n.get("properties")?.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}
