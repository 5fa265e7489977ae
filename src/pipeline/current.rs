//! What the raw bucket holds under a key now, checked before a removal is applied.
//!
//! In a versioned bucket, `ObjectRemoved:Delete` is also sent when a noncurrent version
//! is deleted, or when a delete marker is deleted (an undelete): the key still has a
//! current version, and blanking its region would lose a file that exists. The updater
//! asks the bucket (HEAD without a version id) before the flush and hands the answers
//! over as [`CurrentObjects`]; the flush then decides per removal with
//! [`removal_check`]: blank (the key has no current version), skip (the key's current
//! version is the one the store already holds: a noncurrent version was deleted), or
//! apply the current version as a creation (an undelete, or the current version was
//! deleted and an older one is current again).
//!
//! Local removals (`zru remove`, the watcher) are not checked: a local removal is
//! either a file that was deleted (if it comes back, its creation is queued after the
//! removal) or an explicit command to withdraw the key.

use std::collections::HashMap;

use super::ledger::LedgerEntry;
use crate::update::EventKind;

/// A key's current object, as a HEAD without version id returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentObject {
    pub version_id: Option<String>,
    /// Without the quotes HEAD puts around it (as event records have it).
    pub etag: Option<String>,
}

impl CurrentObject {
    pub fn new(version_id: Option<String>, etag: Option<String>) -> Self {
        Self {
            version_id: version_id.filter(|v| !v.is_empty() && v != "null"),
            etag: etag.map(|e| e.trim_matches('"').to_string()),
        }
    }

    /// How a report names it.
    pub fn describe(&self) -> String {
        match (&self.version_id, &self.etag) {
            (Some(version), _) => format!("version {version}"),
            (None, Some(etag)) => format!("etag {etag}"),
            (None, None) => "an object".into(),
        }
    }

    /// True if the ledger's entry is an applied creation of this very object: same
    /// version id when both have one, else same etag.
    fn is_recorded_in(&self, entry: &LedgerEntry) -> bool {
        if entry.kind != EventKind::Created {
            return false;
        }
        match (&self.version_id, &entry.version_id) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => match (&self.etag, &entry.etag) {
                (Some(ours), Some(theirs)) => ours == theirs.trim_matches('"'),
                _ => false,
            },
        }
    }
}

/// The keys checked before a batch: `None` for a key with no current version (absent,
/// or a delete marker is current), `Some` for one that still exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentObjects {
    checked: HashMap<String, Option<CurrentObject>>,
}

impl CurrentObjects {
    pub fn record(&mut self, key: &str, current: Option<CurrentObject>) {
        self.checked.insert(key.to_string(), current);
    }

    /// What the check of `key` found; `None` if the key was not checked.
    pub fn get(&self, key: &str) -> Option<&Option<CurrentObject>> {
        self.checked.get(key)
    }
}

/// What to do with a removal event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovalCheck {
    /// The key has no current version (or was not checked): blank its region.
    Blank,
    /// The key's current version is the one the ledger says the store holds (a
    /// noncurrent version was deleted): nothing to do.
    StillExists(CurrentObject),
    /// The key has a current version the store does not hold (an undelete, or the
    /// current version was deleted and an older one is current again): apply it.
    Restore(CurrentObject),
}

/// Decides a removal of `key` from what the bucket holds (`current`, `None` when
/// nothing was checked: local mode) and the ledger's entry for the key.
pub fn removal_check(
    current: Option<&CurrentObjects>,
    key: &str,
    entry: Option<&LedgerEntry>,
) -> RemovalCheck {
    let Some(Some(object)) = current.and_then(|c| c.get(key)) else {
        return RemovalCheck::Blank;
    };
    if entry.is_some_and(|e| object.is_recorded_in(e)) {
        RemovalCheck::StillExists(object.clone())
    } else {
        RemovalCheck::Restore(object.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::event::EventOrder;

    fn entry(kind: EventKind, version: Option<&str>, etag: Option<&str>) -> LedgerEntry {
        LedgerEntry {
            kind,
            order: EventOrder {
                sequencer: Some("01".into()),
                event_time_us: 0,
                arrival: 0,
            },
            etag: etag.map(String::from),
            version_id: version.map(String::from),
            action: "appended".into(),
            region: None,
        }
    }

    fn checked(key: &str, current: Option<CurrentObject>) -> CurrentObjects {
        let mut objects = CurrentObjects::default();
        objects.record(key, current);
        objects
    }

    #[test]
    fn a_key_without_current_version_or_unchecked_is_blanked() {
        let applied = entry(EventKind::Created, Some("v2"), None);
        assert_eq!(
            removal_check(None, "a", Some(&applied)),
            RemovalCheck::Blank
        );
        let gone = checked("a", None);
        assert_eq!(
            removal_check(Some(&gone), "a", Some(&applied)),
            RemovalCheck::Blank
        );
        let other_key = checked("b", Some(CurrentObject::new(Some("v2".into()), None)));
        assert_eq!(
            removal_check(Some(&other_key), "a", Some(&applied)),
            RemovalCheck::Blank
        );
    }

    #[test]
    fn a_deleted_noncurrent_version_leaves_the_store_alone() {
        let v2 = CurrentObject::new(Some("v2".into()), Some("\"e2\"".into()));
        let current = checked("a", Some(v2.clone()));
        let applied = entry(EventKind::Created, Some("v2"), Some("e2"));
        assert_eq!(
            removal_check(Some(&current), "a", Some(&applied)),
            RemovalCheck::StillExists(v2)
        );
    }

    #[test]
    fn an_undelete_or_an_older_version_made_current_is_restored() {
        let v1 = CurrentObject::new(Some("v1".into()), Some("\"e1\"".into()));
        let current = checked("a", Some(v1.clone()));
        // Undelete: the ledger holds the removal (the delete marker).
        let removed = entry(EventKind::Removed, Some("dm"), None);
        assert_eq!(
            removal_check(Some(&current), "a", Some(&removed)),
            RemovalCheck::Restore(v1.clone())
        );
        // The current version v2 was deleted by version id: v1 is current again.
        let applied_v2 = entry(EventKind::Created, Some("v2"), Some("e2"));
        assert_eq!(
            removal_check(Some(&current), "a", Some(&applied_v2)),
            RemovalCheck::Restore(v1.clone())
        );
        // Nothing applied yet for the key.
        assert_eq!(
            removal_check(Some(&current), "a", None),
            RemovalCheck::Restore(v1)
        );
    }

    #[test]
    fn without_version_ids_etags_compare_without_quotes() {
        let object = CurrentObject::new(Some("null".into()), Some("\"e1\"".into()));
        assert_eq!(object.version_id, None);
        let current = checked("a", Some(object.clone()));
        let applied = entry(EventKind::Created, None, Some("e1"));
        assert_eq!(
            removal_check(Some(&current), "a", Some(&applied)),
            RemovalCheck::StillExists(object.clone())
        );
        let revised = entry(EventKind::Created, None, Some("e0"));
        assert_eq!(
            removal_check(Some(&current), "a", Some(&revised)),
            RemovalCheck::Restore(object)
        );
    }
}
