//! FIFO semantics of a Lambda SQS batch with `ReportBatchItemFailures`: once a
//! message of a group fails, every later message of that group in the batch must be
//! reported failed too, or Lambda would delete them and the group's order would be
//! lost when the failed one comes back. The updater leaves out of that report the
//! later messages it has already committed (or skipped, or dead-lettered): the ledger
//! keeps each key's order, so a redelivery would only be skipped as a duplicate.
//!
//! The message group is the dataset's store ([`store_group`]): SQS delivers a
//! group's messages in order and none while one is in flight, to whichever consumer
//! (the event source mapping or the scheduled drain), so a store has one writer at a
//! time even when several invocations run; the store lock on EFS is the second line.

use std::collections::HashSet;

use super::sqs::dedup_id;
use crate::config::{Catalog, Dataset};

/// The FIFO message group of a dataset's events: its store's URL (or path), made a
/// valid group id (printable ASCII, at most 128 characters; longer ones are digested,
/// as deduplication ids are).
pub fn store_group(dataset: &Dataset) -> String {
    dedup_id(&dataset.location.to_string())
}

/// The dataset (by name) whose events a group holds: the dataset whose store the group
/// names, else a dataset of that name (messages queued before groups were stores),
/// else the group itself (no such dataset: the flush rejects its messages).
pub fn dataset_for_group(catalog: &Catalog, group: &str) -> String {
    catalog
        .datasets
        .iter()
        .find(|d| store_group(d) == group)
        .or_else(|| catalog.dataset(group))
        .map_or_else(|| group.to_string(), |d| d.name().to_string())
}

/// The ids to report as batch item failures, in batch order. `batch` is the batch in
/// delivery order as (message id, group); `failed` the ids that failed.
pub fn batch_item_failures(batch: &[(String, String)], failed: &HashSet<String>) -> Vec<String> {
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut report = Vec::new();
    for (id, group) in batch {
        if blocked.contains(group.as_str()) || failed.contains(id) {
            blocked.insert(group);
            report.push(id.clone());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_stores_and_map_back_to_their_dataset() {
        let dir = tempfile::tempdir().unwrap();
        for (name, pattern, store) in [
            ("sst", "^sst/", "s3://stores/sst.zarr"),
            ("argo", "^argo/", "s3://stores/argo.zarr"),
        ] {
            std::fs::write(
                dir.path().join(format!("{name}.json")),
                serde_json::json!({"name": name, "handler": "gridded",
                    "key_patterns": [pattern], "store": store, "append_dim": "time"})
                .to_string(),
            )
            .unwrap();
        }
        let catalog = Catalog::load_dir(dir.path()).unwrap();
        let sst = catalog.dataset("sst").unwrap();
        assert_eq!(store_group(sst), "s3://stores/sst.zarr");
        assert_eq!(dataset_for_group(&catalog, "s3://stores/sst.zarr"), "sst");
        assert_eq!(dataset_for_group(&catalog, "s3://stores/argo.zarr"), "argo");
        // Messages queued by an older watcher (group = dataset name).
        assert_eq!(dataset_for_group(&catalog, "argo"), "argo");
        assert_eq!(
            dataset_for_group(&catalog, "s3://stores/gone.zarr"),
            "s3://stores/gone.zarr"
        );
    }

    fn batch(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(i, g)| (i.to_string(), g.to_string()))
            .collect()
    }

    #[test]
    fn later_messages_of_a_failed_group_are_reported_others_are_not() {
        let b = batch(&[
            ("1", "sst"),
            ("2", "argo"),
            ("3", "sst"),
            ("4", "sst"),
            ("5", "argo"),
        ]);
        let failed: HashSet<String> = ["3".to_string()].into();
        assert_eq!(batch_item_failures(&b, &failed), vec!["3", "4"]);
        let failed: HashSet<String> = ["2".to_string(), "4".to_string()].into();
        assert_eq!(batch_item_failures(&b, &failed), vec!["2", "4", "5"]);
        assert!(batch_item_failures(&b, &HashSet::new()).is_empty());
    }
}
