//! Profile collections (Argo floats): rows of the append dimension are profiles, found
//! by identity (`PLATFORM_NUMBER`, `CYCLE_NUMBER`, `DIRECTION` by default), not by time.
//!
//! An [`IdentityIndex`] maps every profile of a store to its row (O(1) per look-up) and
//! every source key to the rows it wrote. It is built once from the store's identity and
//! provenance columns and kept current as files are applied. [`plan_rows`] turns a file's
//! identities into rows: known profiles are overwritten in place, new ones are appended
//! in the file's order, and rows the key wrote before but the file no longer holds are
//! to be blanked.

use std::collections::{HashMap, HashSet};
use std::fmt;

use thiserror::Error;

/// The identity of one profile: its identity variables' values as text, whitespace
/// trimmed (`"2902093 "` and `"2902093"` are the same platform).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity(Vec<String>);

impl Identity {
    /// Builds an identity from its parts (trimmed).
    pub fn new<S: AsRef<str>>(parts: &[S]) -> Self {
        Self(
            parts
                .iter()
                .map(|p| p.as_ref().trim().to_string())
                .collect(),
        )
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// Text of a numeric identity part: integers without a decimal point.
pub fn number_text(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 9.0e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum ProfileError {
    #[error("profile {identity} appears twice in the file (positions {first} and {second})")]
    DuplicateIdentity {
        identity: String,
        first: usize,
        second: usize,
    },
    #[error("row {row} is outside the store's {len} rows")]
    RowOutOfRange { row: u64, len: u64 },
}

/// One row of the store as the index knows it: blank rows have neither.
#[derive(Debug, Clone, Default, PartialEq)]
struct Row {
    identity: Option<Identity>,
    key: Option<String>,
}

/// Profiles of a store by identity, and rows by source key.
#[derive(Debug, Clone, Default)]
pub struct IdentityIndex {
    rows: Vec<Row>,
    by_identity: HashMap<Identity, u64>,
    /// Rows each key wrote; may hold rows since taken over by another key (checked
    /// against `rows` when read).
    by_key: HashMap<String, Vec<u64>>,
}

impl IdentityIndex {
    /// An index of a store with `len` rows, all blank until [`Self::record`]ed.
    pub fn with_len(len: u64) -> Self {
        Self {
            rows: vec![Row::default(); len as usize],
            ..Self::default()
        }
    }

    /// Number of rows of the store (blank ones included).
    pub fn len(&self) -> u64 {
        self.rows.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of rows holding a profile.
    pub fn profiles(&self) -> usize {
        self.by_identity.len()
    }

    /// The row of a profile.
    pub fn row(&self, identity: &Identity) -> Option<u64> {
        self.by_identity.get(identity).copied()
    }

    /// Records that `row` holds `identity`, written from `key`. When a store holds one
    /// identity in two rows (a store written by another tool), the first row wins.
    pub fn record(&mut self, row: u64, identity: Identity, key: &str) -> Result<(), ProfileError> {
        let len = self.len();
        let slot = self
            .rows
            .get_mut(row as usize)
            .ok_or(ProfileError::RowOutOfRange { row, len })?;
        if let Some(old) = slot.identity.take() {
            if self.by_identity.get(&old) == Some(&row) {
                self.by_identity.remove(&old);
            }
        }
        self.by_identity.entry(identity.clone()).or_insert(row);
        slot.identity = Some(identity);
        if slot.key.as_deref() != Some(key) {
            slot.key = Some(key.to_string());
            self.by_key.entry(key.to_string()).or_default().push(row);
        }
        Ok(())
    }

    /// Rows whose provenance is `key`, ascending.
    pub fn rows_of(&self, key: &str) -> Vec<u64> {
        let mut rows: Vec<u64> = self
            .by_key
            .get(key)
            .map(|rows| {
                rows.iter()
                    .copied()
                    .filter(|&r| self.rows[r as usize].key.as_deref() == Some(key))
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// Marks rows blank: their profiles and provenance are forgotten.
    pub fn blank(&mut self, rows: &[u64]) {
        for &row in rows {
            let Some(slot) = self.rows.get_mut(row as usize) else {
                continue;
            };
            if let Some(identity) = slot.identity.take() {
                if self.by_identity.get(&identity) == Some(&row) {
                    self.by_identity.remove(&identity);
                }
            }
            if let Some(key) = slot.key.take() {
                if let Some(list) = self.by_key.get_mut(&key) {
                    list.retain(|&r| r != row);
                    if list.is_empty() {
                        self.by_key.remove(&key);
                    }
                }
            }
        }
    }

    /// Applies a plan made by [`plan_rows`] for `key`: stale rows become blank, the
    /// file's profiles take their rows.
    pub fn apply(
        &mut self,
        plan: &RowPlan,
        identities: Vec<Identity>,
        key: &str,
    ) -> Result<(), ProfileError> {
        self.blank(&plan.stale);
        if plan.new_len > self.len() {
            self.rows.resize(plan.new_len as usize, Row::default());
        }
        for (&row, identity) in plan.rows.iter().zip(identities) {
            self.record(row, identity, key)?;
        }
        Ok(())
    }
}

/// Where a file's profiles go.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPlan {
    /// The store row of each profile of the file, in file order.
    pub rows: Vec<u64>,
    /// Rows before the file.
    pub old_len: u64,
    /// Rows after the file (`old_len` plus the profiles appended).
    pub new_len: u64,
    /// Rows the key wrote before that the file no longer holds: to be blanked.
    pub stale: Vec<u64>,
}

impl RowPlan {
    /// Number of profiles already in the store (overwritten in place).
    pub fn overwritten(&self) -> usize {
        self.rows.iter().filter(|&&r| r < self.old_len).count()
    }

    /// Number of profiles appended.
    pub fn appended(&self) -> u64 {
        self.new_len - self.old_len
    }
}

/// Plans the rows of a file's profiles (`key` is the file's object key): O(1) per
/// profile. A file that repeats an identity is an error.
pub fn plan_rows(
    index: &IdentityIndex,
    identities: &[Identity],
    key: &str,
) -> Result<RowPlan, ProfileError> {
    let mut seen: HashMap<&Identity, usize> = HashMap::with_capacity(identities.len());
    let old_len = index.len();
    let mut next = old_len;
    let mut rows = Vec::with_capacity(identities.len());
    for (position, identity) in identities.iter().enumerate() {
        if let Some(&first) = seen.get(identity) {
            return Err(ProfileError::DuplicateIdentity {
                identity: identity.to_string(),
                first,
                second: position,
            });
        }
        seen.insert(identity, position);
        let row = index.row(identity).unwrap_or_else(|| {
            next += 1;
            next - 1
        });
        rows.push(row);
    }
    let kept: HashSet<u64> = rows.iter().copied().collect();
    let stale = index
        .rows_of(key)
        .into_iter()
        .filter(|r| !kept.contains(r))
        .collect();
    Ok(RowPlan {
        rows,
        old_len,
        new_len: next,
        stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(platform: &str, cycle: u32) -> Identity {
        Identity::new(&[platform.to_string(), cycle.to_string(), "A".to_string()])
    }

    fn index_of(profiles: &[(&str, u32, &str)]) -> IdentityIndex {
        let mut index = IdentityIndex::with_len(profiles.len() as u64);
        for (row, (platform, cycle, key)) in profiles.iter().enumerate() {
            index.record(row as u64, id(platform, *cycle), key).unwrap();
        }
        index
    }

    #[test]
    fn known_profiles_are_overwritten_and_new_ones_appended_in_file_order() {
        let index = index_of(&[("2902093", 1, "a.nc"), ("2902093", 2, "a.nc")]);
        let file = [id("2902093 ", 3), id("2902093", 2), id("5900001", 1)];
        let plan = plan_rows(&index, &file, "b.nc").unwrap();
        assert_eq!(plan.rows, vec![2, 1, 3]);
        assert_eq!((plan.old_len, plan.new_len), (2, 4));
        assert_eq!((plan.overwritten(), plan.appended()), (1, 2));
        assert!(plan.stale.is_empty());
    }

    #[test]
    fn a_repeated_identity_is_rejected_with_both_positions() {
        let file = [id("1", 1), id("1", 2), id("1", 1)];
        let err = plan_rows(&IdentityIndex::default(), &file, "k").unwrap_err();
        assert_eq!(
            err,
            ProfileError::DuplicateIdentity {
                identity: "1/1/A".into(),
                first: 0,
                second: 2
            }
        );
    }

    #[test]
    fn a_revision_that_drops_a_profile_marks_its_row_stale() {
        let index = index_of(&[("1", 1, "p.nc"), ("1", 2, "p.nc"), ("1", 3, "q.nc")]);
        let plan = plan_rows(&index, &[id("1", 2), id("1", 4)], "p.nc").unwrap();
        assert_eq!(plan.rows, vec![1, 3]);
        assert_eq!(plan.stale, vec![0]);
    }

    #[test]
    fn applying_and_blanking_keep_the_index_current() {
        let mut index = index_of(&[("1", 1, "p.nc")]);
        let file = vec![id("1", 1), id("1", 2)];
        let plan = plan_rows(&index, &file, "q.nc").unwrap();
        index.apply(&plan, file, "q.nc").unwrap();
        assert_eq!(index.len(), 2);
        assert!(index.rows_of("p.nc").is_empty(), "q.nc took row 0 over");
        assert_eq!(index.rows_of("q.nc"), vec![0, 1]);
        index.blank(&index.rows_of("q.nc"));
        assert_eq!(index.profiles(), 0);
        assert_eq!(index.row(&id("1", 2)), None);
        // A blanked profile that comes back is appended: blank rows are not reused.
        let plan = plan_rows(&index, &[id("1", 2)], "r.nc").unwrap();
        assert_eq!(plan.rows, vec![2]);
    }

    #[test]
    fn numbers_are_identity_text_without_decimals() {
        assert_eq!(number_text(12.0), "12");
        assert_eq!(number_text(1.5), "1.5");
        assert_eq!(
            Identity::new(&["2902093 ", " 7", "A"]).to_string(),
            "2902093/7/A"
        );
    }

    #[test]
    fn recording_outside_the_rows_is_an_error() {
        let mut index = IdentityIndex::with_len(1);
        assert_eq!(
            index.record(5, id("1", 1), "k"),
            Err(ProfileError::RowOutOfRange { row: 5, len: 1 })
        );
    }
}
