//! FIFO semantics of a Lambda SQS batch with `ReportBatchItemFailures`: once a
//! message of a group fails, every later message of that group in the batch must be
//! reported failed too, or Lambda would delete them and the group's order would be
//! lost when the failed one comes back.

use std::collections::HashSet;

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
