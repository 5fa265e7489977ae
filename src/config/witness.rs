//! Witness keys for the overlapping-patterns check: sample strings a key pattern
//! matches, built from the regex's syntax tree, and the pattern's literal prefix.
//!
//! Exact regex intersection is not attempted. Two datasets overlap if a key exists that
//! patterns of both match; the check tries, for every pair of patterns, the samples of
//! each, each one's literal prefix followed by every suffix of the other's samples
//! and a few common endings, and the datasets' `example_keys`. It finds the usual
//! mistakes (one pattern a broadening of the other, a shared directory with different
//! file globs that both match some name) but can miss an overlap that only a key
//! unlike any sample shows; `zru config check --raw-root` also tests the real keys.

use regex_syntax::hir::{Class, Hir, HirKind};

/// At most this many samples per node (keeps the product of a long concatenation small).
const CAP: usize = 48;

/// Endings tried after a literal prefix.
const ENDINGS: [&str; 8] = [
    "",
    "x",
    "x.nc",
    "a/x.nc",
    "2024/01/x.nc",
    "x_L3S_GHRSST_x.nc",
    "x_prof.nc",
    "0",
];

/// Samples and literal prefix of one pattern.
#[derive(Debug, Clone, Default)]
pub struct PatternSamples {
    pub prefix: String,
    pub samples: Vec<String>,
}

impl PatternSamples {
    pub fn of(pattern: &str) -> Self {
        let Ok(hir) = regex_syntax::parse(pattern) else {
            return Self::default();
        };
        Self {
            prefix: literal_prefix(&hir),
            samples: samples(&hir),
        }
    }

    /// Candidate keys for a pair: own samples, the other's samples, and each literal
    /// prefix followed by the other's sample suffixes and the common endings.
    pub fn candidates(&self, other: &Self) -> Vec<String> {
        let mut out: Vec<String> = self.samples.clone();
        out.extend(other.samples.iter().cloned());
        for (prefix, from) in [(&self.prefix, other), (&other.prefix, self)] {
            for ending in ENDINGS {
                out.push(format!("{prefix}{ending}"));
            }
            for sample in &from.samples {
                for (i, _) in sample.char_indices() {
                    out.push(format!("{prefix}{}", &sample[i..]));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The literal text every match starts with (after leading anchors).
fn literal_prefix(hir: &Hir) -> String {
    let mut out = String::new();
    let parts: &[Hir] = match hir.kind() {
        HirKind::Concat(parts) => parts,
        _ => std::slice::from_ref(hir),
    };
    for part in parts {
        match part.kind() {
            HirKind::Look(_) => continue,
            HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
                Ok(text) => out.push_str(text),
                Err(_) => break,
            },
            HirKind::Capture(cap) => {
                let inner = literal_prefix(&cap.sub);
                let whole = matches!(cap.sub.kind(), HirKind::Literal(_));
                out.push_str(&inner);
                if !whole {
                    break;
                }
            }
            _ => break,
        }
    }
    out
}

fn class_chars(class: &Class) -> Vec<char> {
    const PREFERRED: [char; 8] = ['a', 'x', '0', '1', 'A', '_', '-', '.'];
    let mut out = Vec::new();
    match class {
        Class::Unicode(c) => {
            let contains = |ch: char| c.ranges().iter().any(|r| r.start() <= ch && ch <= r.end());
            out.extend(PREFERRED.iter().copied().filter(|&ch| contains(ch)).take(2));
            if let Some(first) = c.ranges().first() {
                out.push(first.start());
            }
        }
        Class::Bytes(c) => {
            let contains = |b: u8| c.ranges().iter().any(|r| r.start() <= b && b <= r.end());
            out.extend(
                PREFERRED
                    .iter()
                    .copied()
                    .filter(|&ch| contains(ch as u8))
                    .take(2),
            );
            if let Some(first) = c.ranges().first().filter(|r| r.start().is_ascii()) {
                out.push(char::from(first.start()));
            }
        }
    }
    out.dedup();
    out.truncate(3);
    out
}

fn capped(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v.truncate(CAP);
    v
}

/// A few strings `hir` matches (anchors and look-arounds are ignored, so a sample may
/// not match: callers test each candidate with the real regexes).
fn samples(hir: &Hir) -> Vec<String> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => vec![String::new()],
        HirKind::Literal(lit) => vec![String::from_utf8_lossy(&lit.0).into_owned()],
        HirKind::Class(class) => class_chars(class).into_iter().map(String::from).collect(),
        HirKind::Capture(cap) => samples(&cap.sub),
        HirKind::Repetition(rep) => {
            let subs = samples(&rep.sub);
            let Some(first) = subs.first() else {
                return vec![String::new()];
            };
            let min = rep.min.min(64) as usize;
            let mut out = vec![first.repeat(min)];
            let more_allowed = rep.max.is_none_or(|max| max > rep.min);
            if more_allowed {
                out.push(first.repeat(min + 1));
                for sub in &subs {
                    out.push(format!("{}{sub}", first.repeat(min)));
                }
            }
            capped(out)
        }
        HirKind::Concat(parts) => {
            let mut acc = vec![String::new()];
            for part in parts {
                let next = samples(part);
                if next.is_empty() {
                    return Vec::new();
                }
                let mut combined = Vec::new();
                for a in &acc {
                    for b in &next {
                        combined.push(format!("{a}{b}"));
                        if combined.len() >= CAP {
                            break;
                        }
                    }
                }
                acc = capped(combined);
            }
            acc
        }
        HirKind::Alternation(alts) => capped(alts.iter().flat_map(samples).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_match_their_pattern_and_prefixes_are_literal() {
        let p = PatternSamples::of(r"^IMOS/OceanCurrent/GSLA/.*\.nc$");
        assert_eq!(p.prefix, "IMOS/OceanCurrent/GSLA/");
        let re = regex::Regex::new(r"^IMOS/OceanCurrent/GSLA/.*\.nc$").unwrap();
        assert!(p.samples.iter().any(|s| re.is_match(s)), "{:?}", p.samples);
        let q = PatternSamples::of(r"^(sst|ssta)/[0-9]{4}/.+_L3S\.nc$");
        let re = regex::Regex::new(r"^(sst|ssta)/[0-9]{4}/.+_L3S\.nc$").unwrap();
        assert!(q.samples.iter().filter(|s| re.is_match(s)).count() >= 2);
    }

    #[test]
    fn candidates_find_a_shared_directory_overlap() {
        let a = PatternSamples::of(r"^data/.*\.nc$");
        let b = PatternSamples::of(r"^data/x.*$");
        let (ra, rb) = (
            regex::Regex::new(r"^data/.*\.nc$").unwrap(),
            regex::Regex::new(r"^data/x.*$").unwrap(),
        );
        assert!(a
            .candidates(&b)
            .iter()
            .any(|k| ra.is_match(k) && rb.is_match(k)));
    }
}
