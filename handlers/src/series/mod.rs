//! Observation series (ship tracks, gliders, moorings per deployment, CTD casts): each
//! file's rows (observations along its time dimension) are appended along the store's
//! observation dimension and found again by the file's **source key**, not by time.
//!
//! A [`SeriesIndex`] maps each key to its rows (ascending) and, when the dataset has an
//! identity (platform + deployment, one per file), each identity to the key holding it.
//! It is held as shards like the profile index ([`Shard::of_key`],
//! [`Shard::of_identity`]): the caller asks [`SeriesIndex::missing`] which shards to
//! fill until nothing is missing, plans with [`SeriesIndex::plan`] and applies the plan.
//! Nothing here reads or writes: persisting the shards is the caller's.
//!
//! Planning a file of `n` rows under key `K` with identity `I`:
//! - the rows it replaces are `K`'s rows, plus, if `I` is held by another key `H` (the
//!   provider republished the deployment under a new file name), `H`'s rows: `H` is
//!   taken over and forgotten;
//! - the file's first rows go to those rows in ascending order; if the file is shorter,
//!   the surplus rows are blanked; if longer, the rest is appended after the store's
//!   last row.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use thiserror::Error;

use crate::identity::{Identity, Shard};
use crate::AppendPlan;

/// Why the index cannot plan or take a shard.
#[derive(Debug, Error, PartialEq)]
pub enum SeriesError {
    /// Planning needs a shard the caller has not filled.
    #[error("series index shard {shard} is needed but was not loaded")]
    ShardNotLoaded {
        /// The shard.
        shard: Shard,
    },
    /// A shard's file holds an entry that belongs to another shard.
    #[error("series index shard {shard} holds {what}, which does not hash to it")]
    WrongShard {
        /// The shard.
        shard: Shard,
        /// The foreign entry (`key ...`, `identity ...`).
        what: String,
    },
    /// A shard's file lists a row the store does not have.
    #[error("key {key} lists row {row}, outside the store's {len} rows")]
    RowOutOfRange {
        /// The key listing the row.
        key: String,
        /// The row.
        row: u64,
        /// Rows of the store.
        len: u64,
    },
}

/// What the index knows of one source key: its rows (ascending) and the identity of
/// its file, if the dataset has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key's rows, ascending.
    pub rows: Vec<u64>,
    /// The identity of the key's file (`None` without an identity, or when it is not
    /// known after a rebuild).
    pub identity: Option<Identity>,
}

/// Rows of a series store by source key, and keys by identity, held as shards.
#[derive(Debug, Clone, Default)]
pub struct SeriesIndex {
    len: u64,
    keys: HashMap<u16, BTreeMap<String, KeyEntry>>,
    identities: HashMap<u16, BTreeMap<Identity, String>>,
    dirty: BTreeSet<Shard>,
}

/// Where a file's rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesPlan {
    /// The file's source key.
    pub key: String,
    /// The file's identity, if the dataset has one.
    pub identity: Option<Identity>,
    /// The store row of each of the file's rows, in the file's order (ascending), and
    /// the row count before and after the file.
    pub rows: AppendPlan,
    /// Rows the key (or the key taken over) held that the file no longer fills.
    pub surplus: Vec<u64>,
    /// The other key whose rows the file takes over by identity.
    pub taken_over: Option<String>,
}

impl std::ops::Deref for SeriesPlan {
    type Target = AppendPlan;

    fn deref(&self) -> &AppendPlan {
        &self.rows
    }
}

impl SeriesIndex {
    /// An index of a store with `len` rows, no shard loaded yet.
    pub fn with_len(len: u64) -> Self {
        Self {
            len,
            ..Self::default()
        }
    }

    /// An index of a store with `len` rows and every shard loaded, empty: to be filled
    /// by [`Self::record`]. Every shard is to be written.
    pub fn complete(len: u64) -> Self {
        let mut index = Self::with_len(len);
        for shard in Shard::all() {
            match shard {
                Shard::Identity(n) => index.identities.insert(n, BTreeMap::new()).is_none(),
                Shard::Key(n) => index.keys.insert(n, BTreeMap::new()).is_none(),
            };
            index.dirty.insert(shard);
        }
        index
    }

    /// Rows of the store (blank ones included).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the store has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a shard is loaded.
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

    /// Fills a key shard. Keys must hash to it and rows lie inside the store.
    pub fn insert_key_shard(
        &mut self,
        number: u16,
        entries: Vec<(String, KeyEntry)>,
    ) -> Result<(), SeriesError> {
        let shard = Shard::Key(number);
        let mut map = BTreeMap::new();
        for (key, mut entry) in entries {
            if Shard::of_key(&key) != shard {
                return Err(SeriesError::WrongShard {
                    shard,
                    what: format!("key {key}"),
                });
            }
            if let Some(&row) = entry.rows.iter().find(|&&r| r >= self.len) {
                return Err(SeriesError::RowOutOfRange {
                    key,
                    row,
                    len: self.len,
                });
            }
            entry.rows.sort_unstable();
            entry.rows.dedup();
            map.insert(key, entry);
        }
        self.keys.insert(number, map);
        Ok(())
    }

    /// Fills an identity shard (identity → key). Identities must hash to it.
    pub fn insert_identity_shard(
        &mut self,
        number: u16,
        entries: Vec<(Identity, String)>,
    ) -> Result<(), SeriesError> {
        let shard = Shard::Identity(number);
        let mut map = BTreeMap::new();
        for (identity, key) in entries {
            if Shard::of_identity(&identity) != shard {
                return Err(SeriesError::WrongShard {
                    shard,
                    what: format!("identity {identity}"),
                });
            }
            map.insert(identity, key);
        }
        self.identities.insert(number, map);
        Ok(())
    }

    /// A key shard's entries, ordered by key (`None` if not loaded).
    pub fn key_entries(&self, number: u16) -> Option<Vec<(String, KeyEntry)>> {
        let map = self.keys.get(&number)?;
        Some(map.iter().map(|(k, e)| (k.clone(), e.clone())).collect())
    }

    /// An identity shard's entries, ordered by identity (`None` if not loaded).
    pub fn identity_entries(&self, number: u16) -> Option<Vec<(Identity, String)>> {
        let map = self.identities.get(&number)?;
        Some(map.iter().map(|(i, k)| (i.clone(), k.clone())).collect())
    }

    /// Shards changed since the last call (to be persisted), and forgets them.
    pub fn take_dirty(&mut self) -> Vec<Shard> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// Shards not yet loaded that a file of this key and identity (none for a removal,
    /// or without an identity) needs: its key's and identity's shards, then (once those
    /// are loaded) the shard of the key holding its identity and of the identity its key
    /// held before. Ask again after filling them until nothing is missing.
    pub fn missing(&self, key: &str, identity: Option<&Identity>) -> Vec<Shard> {
        let mut needed = BTreeSet::from([Shard::of_key(key)]);
        if let Some(identity) = identity {
            needed.insert(Shard::of_identity(identity));
            if let Ok(Some(holder)) = self.holder(identity) {
                needed.insert(Shard::of_key(holder));
            }
        }
        if let Ok(Some(entry)) = self.entry(key) {
            if let Some(old) = &entry.identity {
                needed.insert(Shard::of_identity(old));
            }
        }
        needed.into_iter().filter(|s| !self.is_loaded(*s)).collect()
    }

    fn key_shard(&self, key: &str) -> Result<&BTreeMap<String, KeyEntry>, SeriesError> {
        let Shard::Key(n) = Shard::of_key(key) else {
            unreachable!("a key's shard is a key shard")
        };
        self.keys.get(&n).ok_or(SeriesError::ShardNotLoaded {
            shard: Shard::Key(n),
        })
    }

    /// What the index knows of a key (`None`: it holds no rows).
    pub fn entry(&self, key: &str) -> Result<Option<&KeyEntry>, SeriesError> {
        Ok(self.key_shard(key)?.get(key))
    }

    /// The key holding an identity.
    pub fn holder(&self, identity: &Identity) -> Result<Option<&str>, SeriesError> {
        let shard = Shard::of_identity(identity);
        let Shard::Identity(n) = shard else {
            unreachable!("an identity's shard is an identity shard")
        };
        let map = self
            .identities
            .get(&n)
            .ok_or(SeriesError::ShardNotLoaded { shard })?;
        Ok(map.get(identity).map(String::as_str))
    }

    /// The rows of a key, ascending.
    pub fn rows_of(&self, key: &str) -> Result<Vec<u64>, SeriesError> {
        Ok(self.entry(key)?.map(|e| e.rows.clone()).unwrap_or_default())
    }

    /// Records a key's rows and identity (building the index from the store): the
    /// identity is held by the key recorded last.
    pub fn record(&mut self, key: &str, entry: KeyEntry) -> Result<(), SeriesError> {
        if let Some(identity) = &entry.identity {
            self.set_holder(identity, Some(key))?;
        }
        self.set_entry(key, Some(entry))
    }

    fn set_entry(&mut self, key: &str, entry: Option<KeyEntry>) -> Result<(), SeriesError> {
        let shard = Shard::of_key(key);
        let Shard::Key(n) = shard else {
            unreachable!("a key's shard is a key shard")
        };
        let map = self
            .keys
            .get_mut(&n)
            .ok_or(SeriesError::ShardNotLoaded { shard })?;
        match entry {
            Some(entry) if !entry.rows.is_empty() => map.insert(key.to_string(), entry),
            _ => map.remove(key),
        };
        self.dirty.insert(shard);
        Ok(())
    }

    fn set_holder(&mut self, identity: &Identity, key: Option<&str>) -> Result<(), SeriesError> {
        let shard = Shard::of_identity(identity);
        let Shard::Identity(n) = shard else {
            unreachable!("an identity's shard is an identity shard")
        };
        let map = self
            .identities
            .get_mut(&n)
            .ok_or(SeriesError::ShardNotLoaded { shard })?;
        match key {
            Some(key) => map.insert(identity.clone(), key.to_string()),
            None => map.remove(identity),
        };
        self.dirty.insert(shard);
        Ok(())
    }

    /// Plans a file of `count` rows under `key` with `identity`.
    pub fn plan(
        &self,
        key: &str,
        identity: Option<&Identity>,
        count: u64,
    ) -> Result<SeriesPlan, SeriesError> {
        let mut existing = self.rows_of(key)?;
        let taken_over = match identity {
            Some(identity) => self.holder(identity)?.filter(|h| *h != key),
            None => None,
        };
        if let Some(holder) = taken_over {
            existing.extend(self.rows_of(holder)?);
            existing.sort_unstable();
            existing.dedup();
        }
        let reused = (count as usize).min(existing.len());
        let appended = count - reused as u64;
        let mut rows = existing[..reused].to_vec();
        rows.extend(self.len..self.len + appended);
        Ok(SeriesPlan {
            key: key.to_string(),
            identity: identity.cloned(),
            rows: AppendPlan {
                indices: rows,
                old_len: self.len,
                new_len: self.len + appended,
            },
            surplus: existing[reused..].to_vec(),
            taken_over: taken_over.map(str::to_string),
        })
    }

    /// Applies a plan: the key holds the plan's rows and identity; a key taken over
    /// and the identity the key held before are forgotten.
    pub fn apply(&mut self, plan: &SeriesPlan) -> Result<(), SeriesError> {
        if let Some(holder) = &plan.taken_over {
            self.set_entry(holder, None)?;
        }
        let before = self.entry(&plan.key)?.and_then(|e| e.identity.clone());
        if let Some(old) = before.filter(|old| Some(old) != plan.identity.as_ref()) {
            if self.holder(&old)? == Some(plan.key.as_str()) {
                self.set_holder(&old, None)?;
            }
        }
        self.len = plan.new_len;
        if let Some(identity) = &plan.identity {
            let holder = (!plan.indices.is_empty()).then_some(plan.key.as_str());
            self.set_holder(identity, holder)?;
        }
        self.set_entry(
            &plan.key,
            Some(KeyEntry {
                rows: plan.indices.clone(),
                identity: plan.identity.clone(),
            }),
        )
    }

    /// Forgets a removed key and its identity; returns the rows it held (to blank).
    pub fn remove(&mut self, key: &str) -> Result<Vec<u64>, SeriesError> {
        let Some(entry) = self.entry(key)?.cloned() else {
            return Ok(Vec::new());
        };
        if let Some(identity) = &entry.identity {
            if self.holder(identity)? == Some(key) {
                self.set_holder(identity, None)?;
            }
        }
        self.set_entry(key, None)?;
        Ok(entry.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SHARDS;

    fn id(text: &str) -> Identity {
        Identity::new(&[text])
    }

    /// An index holding `soop/a.nc` (rows 0..5, identity A) and `soop/b.nc` (5..8).
    fn index() -> SeriesIndex {
        let mut index = SeriesIndex::complete(0);
        for (key, ident, count) in [("soop/a.nc", "A", 5), ("soop/b.nc", "B", 3)] {
            let plan = index.plan(key, Some(&id(ident)), count).unwrap();
            index.apply(&plan).unwrap();
        }
        index
    }

    #[test]
    fn new_keys_append_in_arrival_order() {
        let index = index();
        assert_eq!(index.len(), 8);
        assert_eq!(index.rows_of("soop/a.nc").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(index.rows_of("soop/b.nc").unwrap(), vec![5, 6, 7]);
        assert_eq!(index.holder(&id("B")).unwrap(), Some("soop/b.nc"));
    }

    #[test]
    fn a_longer_revision_reuses_its_rows_then_appends() {
        let mut index = index();
        let plan = index.plan("soop/a.nc", Some(&id("A")), 7).unwrap();
        assert_eq!(plan.indices, vec![0, 1, 2, 3, 4, 8, 9]);
        assert_eq!((plan.overwritten(), plan.appended()), (5, 2));
        assert!(plan.surplus.is_empty() && plan.taken_over.is_none());
        index.apply(&plan).unwrap();
        let again = index.plan("soop/a.nc", Some(&id("A")), 7).unwrap();
        assert_eq!(again.indices, plan.indices, "a replay plans the same rows");
        assert_eq!(again.appended(), 0);
    }

    #[test]
    fn a_shorter_revision_blanks_the_surplus() {
        let mut index = index();
        let plan = index.plan("soop/a.nc", Some(&id("A")), 2).unwrap();
        assert_eq!(plan.indices, vec![0, 1]);
        assert_eq!(plan.surplus, vec![2, 3, 4]);
        assert_eq!(plan.new_len, 8);
        index.apply(&plan).unwrap();
        assert_eq!(index.rows_of("soop/a.nc").unwrap(), vec![0, 1]);
    }

    #[test]
    fn an_identity_held_by_another_key_is_taken_over() {
        let mut index = index();
        let plan = index.plan("soop/a-new.nc", Some(&id("A")), 6).unwrap();
        assert_eq!(plan.taken_over.as_deref(), Some("soop/a.nc"));
        assert_eq!(plan.indices, vec![0, 1, 2, 3, 4, 8]);
        index.apply(&plan).unwrap();
        assert_eq!(index.rows_of("soop/a.nc").unwrap(), Vec::<u64>::new());
        assert_eq!(index.holder(&id("A")).unwrap(), Some("soop/a-new.nc"));
        assert_eq!(index.remove("soop/a.nc").unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn a_key_whose_identity_changes_releases_the_old_one() {
        let mut index = index();
        let plan = index.plan("soop/b.nc", Some(&id("C")), 3).unwrap();
        assert_eq!(plan.indices, vec![5, 6, 7]);
        index.apply(&plan).unwrap();
        assert_eq!(index.holder(&id("B")).unwrap(), None);
        assert_eq!(index.holder(&id("C")).unwrap(), Some("soop/b.nc"));
    }

    #[test]
    fn without_identity_the_key_alone_finds_the_rows() {
        let mut index = SeriesIndex::complete(0);
        let plan = index.plan("glider/x.nc", None, 4).unwrap();
        index.apply(&plan).unwrap();
        let other = index.plan("glider/y.nc", None, 4).unwrap();
        assert_eq!(
            other.indices,
            vec![4, 5, 6, 7],
            "another key never reuses rows"
        );
    }

    #[test]
    fn removal_returns_the_rows_and_forgets_key_and_identity() {
        let mut index = index();
        assert_eq!(index.remove("soop/b.nc").unwrap(), vec![5, 6, 7]);
        assert_eq!(index.holder(&id("B")).unwrap(), None);
        assert_eq!(index.remove("soop/b.nc").unwrap(), Vec::<u64>::new());
        assert_eq!(index.len(), 8, "blanked rows stay");
        let plan = index.plan("soop/b.nc", Some(&id("B")), 1).unwrap();
        assert_eq!(plan.indices, vec![8], "a re-ingested removed key appends");
    }

    #[test]
    fn shards_are_asked_for_in_rounds() {
        let full = index();
        let mut index = SeriesIndex::with_len(8);
        let fill = |index: &mut SeriesIndex, shard: Shard| match shard {
            Shard::Key(n) => index
                .insert_key_shard(n, full.key_entries(n).unwrap())
                .unwrap(),
            Shard::Identity(n) => index
                .insert_identity_shard(n, full.identity_entries(n).unwrap())
                .unwrap(),
        };
        let first = index.missing("soop/a-new.nc", Some(&id("A")));
        assert_eq!(first.len(), 2);
        for shard in first {
            fill(&mut index, shard);
        }
        let second = index.missing("soop/a-new.nc", Some(&id("A")));
        assert_eq!(second, vec![Shard::of_key("soop/a.nc")]);
        fill(&mut index, second[0]);
        assert!(index.missing("soop/a-new.nc", Some(&id("A"))).is_empty());
        let plan = index.plan("soop/a-new.nc", Some(&id("A")), 5).unwrap();
        assert_eq!(plan.indices, vec![0, 1, 2, 3, 4]);
        assert!(matches!(
            SeriesIndex::with_len(8).plan("k", None, 1),
            Err(SeriesError::ShardNotLoaded { .. })
        ));
    }

    #[test]
    fn shards_reject_foreign_entries_and_rows_outside_the_store() {
        let mut index = SeriesIndex::with_len(3);
        let Shard::Key(n) = Shard::of_key("a") else {
            unreachable!()
        };
        let entry = KeyEntry {
            rows: vec![3],
            identity: None,
        };
        assert!(matches!(
            index.insert_key_shard(n, vec![("a".into(), entry.clone())]),
            Err(SeriesError::RowOutOfRange { .. })
        ));
        let other = (0..SHARDS).find(|&m| m != n).unwrap();
        assert!(matches!(
            index.insert_key_shard(other, vec![("a".into(), entry)]),
            Err(SeriesError::WrongShard { .. })
        ));
    }
}
