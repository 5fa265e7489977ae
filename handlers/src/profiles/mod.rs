//! Profile collections (Argo floats): rows of the append dimension are profiles, found
//! by identity (`PLATFORM_NUMBER`, `CYCLE_NUMBER`, `DIRECTION` by default), not by time.
//!
//! An [`IdentityIndex`] maps profiles to their rows (O(1) per look-up) and source keys
//! to the rows they wrote. It is split into [`SHARDS`](crate::identity::SHARDS) identity shards and as many key
//! shards, by a stable hash ([`Shard::of_identity`], [`Shard::of_key`]), so that a file
//! needs only the few shards its identities and key fall in: the caller asks
//! [`IdentityIndex::missing`] which shards to fill ([`IdentityIndex::insert_identity_shard`],
//! [`IdentityIndex::insert_key_shard`]), then plans with [`plan_rows`] and applies the
//! plan. [`IdentityIndex::complete`] starts an index of every shard (built from the
//! store's columns). Nothing here reads or writes: persisting the shards is the caller's.
//!
//! [`plan_rows`] turns a file's identities into rows: known profiles are overwritten in
//! place, new ones are appended in the file's order, and rows the key wrote before but
//! the file no longer holds are to be blanked.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use thiserror::Error;

#[cfg(test)]
use crate::identity::SHARDS;
use crate::identity::{Identity, Shard};
use crate::AppendPlan;

/// Why a file's profiles cannot be placed, or the identity index is inconsistent.
#[derive(Debug, Error, PartialEq)]
pub enum ProfileError {
    /// The file holds one identity twice (the file is rejected).
    #[error("profile {identity} appears twice in the file (positions {first} and {second})")]
    DuplicateIdentity {
        /// The repeated identity, as text.
        identity: String,
        /// Position of its first profile in the file.
        first: usize,
        /// Position of its second profile.
        second: usize,
    },
    /// The index names a row beyond the store's length (a damaged index: rebuilt).
    #[error("row {row} is outside the store's {len} rows")]
    RowOutOfRange {
        /// The row the index named.
        row: u64,
        /// The store's rows.
        len: u64,
    },
    /// Planning needed a shard the caller did not load (a bug in the caller).
    #[error("identity index shard {shard} is needed but was not loaded")]
    ShardNotLoaded {
        /// The missing shard.
        shard: Shard,
    },
    /// A shard file holds an entry of another shard (a damaged index: rebuilt).
    #[error("identity index shard {shard} holds {what}, which does not hash to it")]
    WrongShard {
        /// The shard read.
        shard: Shard,
        /// The entry that does not belong in it.
        what: String,
    },
}

/// Where a profile is: its row and the key that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The row along the append dimension.
    pub row: u64,
    /// The object key whose file wrote it.
    pub key: String,
}

/// The rows one key wrote, ascending.
pub type KeyRows = Vec<u64>;

/// Rows, each with the identity the store holds there (rows to blank).
pub type RowIdentities = Vec<(u64, Identity)>;

/// Profiles of a store by identity, and rows by source key, held as shards.
///
/// Every row holding a profile is listed under its key. A profile's row is the first
/// row recorded with its identity (a store written by another tool may repeat one);
/// rows repeating it are listed under their key only. Blank rows are in neither. Key
/// shards hold rows only (a key of 100,000 contiguous rows is one range in its file), so
/// blanking a key's rows needs their identities from the caller: the store's identity
/// columns at those rows ([`stale_rows`] says which).
#[derive(Debug, Clone, Default)]
pub struct IdentityIndex {
    len: u64,
    identities: HashMap<u16, HashMap<Identity, Holder>>,
    keys: HashMap<u16, BTreeMap<String, KeyRows>>,
    dirty: BTreeSet<Shard>,
}

impl IdentityIndex {
    /// An index of a store with `len` rows, no shard loaded yet.
    pub fn with_len(len: u64) -> Self {
        Self {
            len,
            ..Self::default()
        }
    }

    /// An index of a store with `len` rows and every shard loaded, empty: to be filled
    /// by [`Self::record`]ing every row of the store. Every shard is to be written.
    pub fn complete(len: u64) -> Self {
        let mut index = Self::with_len(len);
        for shard in Shard::all() {
            match shard {
                Shard::Identity(n) => index.identities.insert(n, HashMap::new()).is_none(),
                Shard::Key(n) => index.keys.insert(n, BTreeMap::new()).is_none(),
            };
            index.dirty.insert(shard);
        }
        index
    }

    /// Number of rows of the store (blank ones included).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the store has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `shard` is loaded (an index built [`Self::complete`] has every shard).
    pub fn is_loaded(&self, shard: Shard) -> bool {
        match shard {
            Shard::Identity(n) => self.identities.contains_key(&n),
            Shard::Key(n) => self.keys.contains_key(&n),
        }
    }

    /// Number of shards loaded.
    pub fn loaded_shards(&self) -> usize {
        self.identities.len() + self.keys.len()
    }

    /// Fills an identity shard (profile, row, key). Entries must hash to the shard.
    pub fn insert_identity_shard(
        &mut self,
        number: u16,
        entries: Vec<(Identity, u64, String)>,
    ) -> Result<(), ProfileError> {
        let shard = Shard::Identity(number);
        let mut map = HashMap::with_capacity(entries.len());
        for (identity, row, key) in entries {
            if Shard::of_identity(&identity) != shard {
                return Err(ProfileError::WrongShard {
                    shard,
                    what: format!("profile {identity}"),
                });
            }
            map.insert(identity, Holder { row, key });
        }
        self.identities.insert(number, map);
        Ok(())
    }

    /// Fills a key shard (key, its rows). Keys must hash to it.
    pub fn insert_key_shard(
        &mut self,
        number: u16,
        entries: Vec<(String, KeyRows)>,
    ) -> Result<(), ProfileError> {
        let shard = Shard::Key(number);
        let mut map = BTreeMap::new();
        for (key, mut rows) in entries {
            if Shard::of_key(&key) != shard {
                return Err(ProfileError::WrongShard {
                    shard,
                    what: format!("key {key}"),
                });
            }
            rows.sort_unstable();
            rows.dedup();
            map.insert(key, rows);
        }
        self.keys.insert(number, map);
        Ok(())
    }

    /// An identity shard's entries, ordered by row (`None` if not loaded).
    pub fn identity_entries(&self, number: u16) -> Option<Vec<(Identity, u64, String)>> {
        let map = self.identities.get(&number)?;
        let mut entries: Vec<_> = map
            .iter()
            .map(|(id, h)| (id.clone(), h.row, h.key.clone()))
            .collect();
        entries.sort_by_key(|(_, row, _)| *row);
        Some(entries)
    }

    /// A key shard's entries, ordered by key (`None` if not loaded).
    pub fn key_entries(&self, number: u16) -> Option<Vec<(String, KeyRows)>> {
        let map = self.keys.get(&number)?;
        Some(map.iter().map(|(k, r)| (k.clone(), r.clone())).collect())
    }

    /// Shards changed since the last call (to be persisted), and forgets them.
    pub fn take_dirty(&mut self) -> Vec<Shard> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// Shards not yet loaded that a file with these identities and key needs to be
    /// planned and applied: the shards of its identities and of its key, then (once
    /// those are loaded) the key shards of the keys that wrote its known profiles. Ask
    /// again after filling them until nothing is missing (two rounds at most). A removal
    /// passes no identities. Blanking rows also needs [`Self::missing_identities`] of
    /// the profiles they hold.
    pub fn missing(&self, identities: &[Identity], key: &str) -> Vec<Shard> {
        let mut needed: BTreeSet<Shard> = identities.iter().map(Shard::of_identity).collect();
        needed.insert(Shard::of_key(key));
        for identity in identities {
            if let Some(holder) = self.holder_if_loaded(identity) {
                needed.insert(Shard::of_key(&holder.key));
            }
        }
        needed.retain(|&shard| !self.is_loaded(shard));
        needed.into_iter().collect()
    }

    /// Identity shards not yet loaded of these profiles.
    pub fn missing_identities<'a>(
        &self,
        identities: impl IntoIterator<Item = &'a Identity>,
    ) -> Vec<Shard> {
        let needed: BTreeSet<Shard> = identities.into_iter().map(Shard::of_identity).collect();
        needed
            .into_iter()
            .filter(|&shard| !self.is_loaded(shard))
            .collect()
    }

    fn holder_if_loaded(&self, identity: &Identity) -> Option<&Holder> {
        let Shard::Identity(n) = Shard::of_identity(identity) else {
            return None;
        };
        self.identities.get(&n)?.get(identity)
    }

    fn key_rows_if_loaded(&self, key: &str) -> Option<&KeyRows> {
        let Shard::Key(n) = Shard::of_key(key) else {
            return None;
        };
        self.keys.get(&n)?.get(key)
    }

    fn identity_shard(
        &mut self,
        identity: &Identity,
    ) -> Result<&mut HashMap<Identity, Holder>, ProfileError> {
        let shard = Shard::of_identity(identity);
        let Shard::Identity(n) = shard else {
            return Err(ProfileError::ShardNotLoaded { shard });
        };
        self.dirty.insert(shard);
        self.identities
            .get_mut(&n)
            .ok_or(ProfileError::ShardNotLoaded { shard })
    }

    fn key_shard(&mut self, key: &str) -> Result<&mut BTreeMap<String, KeyRows>, ProfileError> {
        let shard = Shard::of_key(key);
        let Shard::Key(n) = shard else {
            return Err(ProfileError::ShardNotLoaded { shard });
        };
        self.dirty.insert(shard);
        self.keys
            .get_mut(&n)
            .ok_or(ProfileError::ShardNotLoaded { shard })
    }

    /// The row of a profile.
    pub fn row(&self, identity: &Identity) -> Result<Option<u64>, ProfileError> {
        let shard = Shard::of_identity(identity);
        let Shard::Identity(n) = shard else {
            return Err(ProfileError::ShardNotLoaded { shard });
        };
        let map = self
            .identities
            .get(&n)
            .ok_or(ProfileError::ShardNotLoaded { shard })?;
        Ok(map.get(identity).map(|h| h.row))
    }

    /// Rows whose provenance is `key`, ascending.
    pub fn rows_of(&self, key: &str) -> Result<Vec<u64>, ProfileError> {
        let shard = Shard::of_key(key);
        if !self.is_loaded(shard) {
            return Err(ProfileError::ShardNotLoaded { shard });
        }
        Ok(self.key_rows_if_loaded(key).cloned().unwrap_or_default())
    }

    /// Records that `row` holds `identity`, written from `key`. `row` is either new to
    /// the index (appended, or read from the store) or the row of `identity`. When a
    /// store holds one identity in two rows (a store written by another tool), the first
    /// row recorded is the profile's row.
    pub fn record(&mut self, row: u64, identity: Identity, key: &str) -> Result<(), ProfileError> {
        if row >= self.len {
            return Err(ProfileError::RowOutOfRange { row, len: self.len });
        }
        for shard in [Shard::of_identity(&identity), Shard::of_key(key)] {
            if !self.is_loaded(shard) {
                return Err(ProfileError::ShardNotLoaded { shard });
            }
        }
        match self.holder_if_loaded(&identity).cloned() {
            Some(holder) if holder.row != row || holder.key == key => {}
            previous => {
                if let Some(holder) = previous {
                    self.unlist(&holder.key, row)?;
                }
                let holder = Holder {
                    row,
                    key: key.to_string(),
                };
                self.identity_shard(&identity)?
                    .insert(identity.clone(), holder);
            }
        }
        let listed = self
            .key_rows_if_loaded(key)
            .is_some_and(|rows| rows.binary_search(&row).is_ok());
        if !listed {
            let rows = self.key_shard(key)?.entry(key.to_string()).or_default();
            let at = rows.partition_point(|&r| r < row);
            rows.insert(at, row);
        }
        Ok(())
    }

    /// Removes `row` from the rows listed under `key`.
    fn unlist(&mut self, key: &str, row: u64) -> Result<bool, ProfileError> {
        let shard = self.key_shard(key)?;
        let Some(rows) = shard.get_mut(key) else {
            return Ok(false);
        };
        let removed = rows.binary_search(&row).map(|at| rows.remove(at)).is_ok();
        if rows.is_empty() {
            shard.remove(key);
        }
        Ok(removed)
    }

    /// Marks rows of `key` blank, each given with the identity it holds in the store:
    /// their profiles and provenance are forgotten. Rows not listed under `key` are
    /// ignored; an identity whose profile is in another row keeps it.
    pub fn blank(&mut self, key: &str, rows: &[(u64, Identity)]) -> Result<(), ProfileError> {
        for (row, identity) in rows {
            if !self.unlist(key, *row)? {
                continue;
            }
            if self
                .holder_if_loaded(identity)
                .is_some_and(|h| h.row == *row)
            {
                self.identity_shard(identity)?.remove(identity);
            } else if !self.is_loaded(Shard::of_identity(identity)) {
                return Err(ProfileError::ShardNotLoaded {
                    shard: Shard::of_identity(identity),
                });
            }
        }
        Ok(())
    }

    /// Applies a plan made by [`plan_rows`] for `key`: stale rows (`plan.stale`, given
    /// with the identities they hold) become blank, the file's profiles take their rows.
    pub fn apply(
        &mut self,
        plan: &RowPlan,
        identities: Vec<Identity>,
        key: &str,
        stale: &[(u64, Identity)],
    ) -> Result<(), ProfileError> {
        self.blank(key, stale)?;
        self.len = self.len.max(plan.new_len);
        for (&row, identity) in plan.indices.iter().zip(identities) {
            self.record(row, identity, key)?;
        }
        Ok(())
    }
}

/// Where a file's profiles go: an [`AppendPlan`] (read through `Deref`: the row of
/// each profile, the row count before and after) and the rows to blank.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPlan {
    /// The store row of each profile of the file, in file order, and the row count
    /// before and after the file.
    pub rows: AppendPlan,
    /// Rows the key wrote before that the file no longer holds: to be blanked.
    pub stale: Vec<u64>,
}

impl std::ops::Deref for RowPlan {
    type Target = AppendPlan;

    fn deref(&self) -> &AppendPlan {
        &self.rows
    }
}

/// Rows `key` wrote that a file of it holding `identities` no longer holds (all of them
/// for a removal, which passes none): the rows to blank, ascending.
pub fn stale_rows(
    index: &IdentityIndex,
    identities: &[Identity],
    key: &str,
) -> Result<Vec<u64>, ProfileError> {
    let mut kept = HashSet::with_capacity(identities.len());
    for identity in identities {
        if let Some(row) = index.row(identity)? {
            kept.insert(row);
        }
    }
    Ok(index
        .rows_of(key)?
        .into_iter()
        .filter(|r| !kept.contains(r))
        .collect())
}

/// Plans the rows of a file's profiles (`key` is the file's object key): O(1) per
/// profile. A file that repeats an identity is an error. The shards the file needs
/// ([`IdentityIndex::missing`]) must be loaded.
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
        let row = match index.row(identity)? {
            Some(row) => row,
            None => {
                next += 1;
                next - 1
            }
        };
        rows.push(row);
    }
    let stale = stale_rows(index, identities, key)?;
    Ok(RowPlan {
        rows: AppendPlan {
            indices: rows,
            old_len,
            new_len: next,
        },
        stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(platform: &str, cycle: u32) -> Identity {
        Identity::new(&[platform.to_string(), cycle.to_string(), "A".to_string()])
    }

    /// A complete index (every shard loaded) of rows written in order.
    fn index_of(profiles: &[(&str, u32, &str)]) -> IdentityIndex {
        let mut index = IdentityIndex::complete(profiles.len() as u64);
        for (row, (platform, cycle, key)) in profiles.iter().enumerate() {
            index.record(row as u64, id(platform, *cycle), key).unwrap();
        }
        index
    }

    /// A copy of `index` with only the shards a file needs, loaded as a store would.
    /// `column` is the store's identity column: what the rows to blank hold.
    fn partial_copy(
        index: &IdentityIndex,
        identities: &[Identity],
        key: &str,
        column: &[Identity],
    ) -> (IdentityIndex, Vec<(u64, Identity)>) {
        let mut partial = IdentityIndex::with_len(index.len());
        let mut stale = Vec::new();
        for round in 0..4 {
            let mut missing = partial.missing(identities, key);
            if round == 2 {
                stale = stale_rows(&partial, identities, key)
                    .unwrap()
                    .into_iter()
                    .map(|r| (r, column[r as usize].clone()))
                    .collect();
            }
            missing.extend(partial.missing_identities(stale.iter().map(|(_, id)| id)));
            for shard in missing {
                match shard {
                    Shard::Identity(n) => partial
                        .insert_identity_shard(n, index.identity_entries(n).unwrap())
                        .unwrap(),
                    Shard::Key(n) => partial
                        .insert_key_shard(n, index.key_entries(n).unwrap())
                        .unwrap(),
                }
            }
        }
        assert!(partial.missing(identities, key).is_empty());
        (partial, stale)
    }

    #[test]
    fn known_profiles_are_overwritten_and_new_ones_appended_in_file_order() {
        let index = index_of(&[("2902093", 1, "a.nc"), ("2902093", 2, "a.nc")]);
        let file = [id("2902093 ", 3), id("2902093", 2), id("5900001", 1)];
        let plan = plan_rows(&index, &file, "b.nc").unwrap();
        assert_eq!(plan.indices, vec![2, 1, 3]);
        assert_eq!((plan.old_len, plan.new_len), (2, 4));
        assert_eq!((plan.overwritten(), plan.appended()), (1, 2));
        assert!(plan.stale.is_empty());
    }

    #[test]
    fn a_repeated_identity_is_rejected_with_both_positions() {
        let file = [id("1", 1), id("1", 2), id("1", 1)];
        let err = plan_rows(&IdentityIndex::complete(0), &file, "k").unwrap_err();
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
        assert_eq!(plan.indices, vec![1, 3]);
        assert_eq!(plan.stale, vec![0]);
    }

    #[test]
    fn applying_and_blanking_keep_the_index_current() {
        let mut index = index_of(&[("1", 1, "p.nc")]);
        let file = vec![id("1", 1), id("1", 2)];
        let plan = plan_rows(&index, &file, "q.nc").unwrap();
        index.apply(&plan, file, "q.nc", &[]).unwrap();
        assert_eq!(index.len(), 2);
        assert!(
            index.rows_of("p.nc").unwrap().is_empty(),
            "q.nc took row 0 over"
        );
        assert_eq!(index.rows_of("q.nc").unwrap(), vec![0, 1]);
        index
            .blank("q.nc", &[(0, id("1", 1)), (1, id("1", 2))])
            .unwrap();
        assert_eq!(index.row(&id("1", 1)).unwrap(), None);
        assert_eq!(index.row(&id("1", 2)).unwrap(), None);
        assert!(index.rows_of("q.nc").unwrap().is_empty());
        // A blanked profile that comes back is appended: blank rows are not reused.
        let plan = plan_rows(&index, &[id("1", 2)], "r.nc").unwrap();
        assert_eq!(plan.indices, vec![2]);
    }

    #[test]
    fn a_store_repeating_an_identity_keeps_the_first_row_and_lists_both() {
        let index = index_of(&[("1", 1, "p.nc"), ("1", 1, "q.nc")]);
        assert_eq!(index.row(&id("1", 1)).unwrap(), Some(0));
        assert_eq!(index.rows_of("q.nc").unwrap(), vec![1]);
        let mut index = index;
        index.blank("p.nc", &[(0, id("1", 1))]).unwrap();
        assert_eq!(index.row(&id("1", 1)).unwrap(), None, "as before sharding");
        assert_eq!(index.rows_of("q.nc").unwrap(), vec![1]);
    }

    #[test]
    fn recording_outside_the_rows_is_an_error() {
        let mut index = IdentityIndex::complete(1);
        assert_eq!(
            index.record(5, id("1", 1), "k"),
            Err(ProfileError::RowOutOfRange { row: 5, len: 1 })
        );
    }

    #[test]
    fn a_file_needs_few_shards_and_plans_as_with_the_whole_index() {
        let mut rows: Vec<(String, u32, String)> = Vec::new();
        for float in 0..50u32 {
            for cycle in 1..=20 {
                let platform = (5_900_000 + float).to_string();
                rows.push((
                    platform.clone(),
                    cycle,
                    format!("argo/R{platform}_{cycle:03}.nc"),
                ));
            }
        }
        let borrowed: Vec<(&str, u32, &str)> = rows
            .iter()
            .map(|(p, c, k)| (p.as_str(), *c, k.as_str()))
            .collect();
        let mut whole = index_of(&borrowed);
        whole.take_dirty();
        let mut column: Vec<Identity> = rows.iter().map(|(p, c, _)| id(p, *c)).collect();
        // A delayed-mode file taking over one profile, and a revised _prof.nc.
        let cases: Vec<(Vec<Identity>, &str)> = vec![
            (vec![id("5900003", 7)], "argo/D5900003_007.nc"),
            (vec![id("5900003", 8)], "argo/R5900003_008.nc"),
            (
                vec![id("5900004", 1), id("5900004", 2), id("5999999", 1)],
                "argo/R5900004_001.nc",
            ),
            (vec![id("5900004", 2)], "argo/R5900004_001.nc"),
            (vec![], "argo/R5900005_003.nc"),
        ];
        for (file, key) in cases {
            let (mut partial, stale) = partial_copy(&whole, &file, key, &column);
            let loaded = Shard::all().filter(|&s| partial.is_loaded(s)).count();
            assert!(loaded <= 3 * file.len() + 2, "{key}: {loaded} shards");
            let plan = plan_rows(&partial, &file, key).unwrap();
            assert_eq!(plan, plan_rows(&whole, &file, key).unwrap(), "{key}");
            assert_eq!(
                plan.stale,
                stale.iter().map(|(r, _)| *r).collect::<Vec<_>>()
            );
            for (&row, identity) in plan.indices.iter().zip(&file) {
                if row as usize == column.len() {
                    column.push(identity.clone());
                }
            }
            partial.apply(&plan, file.clone(), key, &stale).unwrap();
            whole.apply(&plan, file, key, &stale).unwrap();
            for shard in partial.take_dirty() {
                let (a, b) = match shard {
                    Shard::Identity(n) => (
                        format!("{:?}", partial.identity_entries(n)),
                        format!("{:?}", whole.identity_entries(n)),
                    ),
                    Shard::Key(n) => (
                        format!("{:?}", partial.key_entries(n)),
                        format!("{:?}", whole.key_entries(n)),
                    ),
                };
                assert_eq!(a, b, "{key}: {shard}");
            }
        }
        assert_eq!(
            whole.rows_of("argo/R5900003_007.nc").unwrap(),
            Vec::<u64>::new()
        );
        assert_eq!(whole.rows_of("argo/D5900003_007.nc").unwrap(), vec![66]);
        assert_eq!(whole.rows_of("argo/R5900004_001.nc").unwrap(), vec![81]);
        assert_eq!(whole.row(&id("5999999", 1)).unwrap(), None, "blanked");
        assert_eq!(whole.row(&id("5900004", 1)).unwrap(), None, "blanked");
        assert!(whole.rows_of("argo/R5900005_003.nc").unwrap().is_empty());
    }

    #[test]
    fn planning_without_the_needed_shards_is_an_error() {
        let index = IdentityIndex::with_len(3);
        let err = plan_rows(&index, &[id("1", 1)], "k").unwrap_err();
        assert!(matches!(err, ProfileError::ShardNotLoaded { .. }), "{err}");
    }

    #[test]
    fn a_shard_holding_foreign_entries_is_rejected() {
        let mut index = IdentityIndex::with_len(1);
        let identity = id("1", 1);
        let Shard::Identity(right) = Shard::of_identity(&identity) else {
            unreachable!()
        };
        let wrong = (right + 1) % SHARDS;
        let err = index
            .insert_identity_shard(wrong, vec![(identity, 0, "k".into())])
            .unwrap_err();
        assert!(matches!(err, ProfileError::WrongShard { .. }), "{err}");
    }
}
