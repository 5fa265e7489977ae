//! Which of a batch's messages are applied: per key, the newest event wins (the
//! others are superseded or duplicates), and only if it is newer than the ledger's
//! entry for the key (else stale or duplicate).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::event::now_us;
use super::ledger::Ledger;
use super::queue::Message;
use super::report::SkipReason;

/// A batch split into what to apply and what to acknowledge without applying.
#[derive(Debug, Default)]
pub struct Plan {
    /// One message per key, in arrival order.
    pub apply: Vec<Message>,
    pub skip: Vec<(Message, SkipReason)>,
}

/// Coalesces a batch per key and checks each winner against the ledger.
pub fn plan_batch(ledger: &Ledger, messages: Vec<Message>) -> Plan {
    let mut keys: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Vec<Message>> = HashMap::new();
    for message in messages {
        let key = message.event.key.clone();
        by_key
            .entry(key.clone())
            .or_insert_with(|| {
                keys.push(key);
                Vec::new()
            })
            .push(message);
    }
    let mut plan = Plan::default();
    let now = now_us();
    for key in keys {
        let Some(group) = by_key.remove(&key) else {
            continue;
        };
        let (winner, losers) = newest(group);
        for loser in losers {
            let reason = match loser
                .event
                .order(loser.id)
                .compare(&winner.event.order(winner.id))
            {
                Ordering::Equal => SkipReason::Duplicate,
                _ => SkipReason::Superseded,
            };
            plan.skip.push((loser, reason));
        }
        // A ledger entry stamped in the future without a sequencer (recorded before such
        // event times were refused) is not trusted: the new event is applied.
        let against_ledger = ledger
            .get(&key)
            .filter(|entry| !entry.order.is_untrusted_future(now))
            .map(|entry| winner.event.order(winner.id).compare(&entry.order));
        match against_ledger {
            Some(Ordering::Less) => plan.skip.push((winner, SkipReason::Stale)),
            Some(Ordering::Equal) => plan.skip.push((winner, SkipReason::Duplicate)),
            _ => plan.apply.push(winner),
        }
    }
    plan.apply.sort_by_key(|m| m.id);
    plan
}

/// The newest message of one key (the first of equals) and the others.
fn newest(mut messages: Vec<Message>) -> (Message, Vec<Message>) {
    let mut best = 0;
    for i in 1..messages.len() {
        let candidate = messages[i].event.order(messages[i].id);
        if candidate.compare(&messages[best].event.order(messages[best].id)) == Ordering::Greater {
            best = i;
        }
    }
    let winner = messages.swap_remove(best);
    (winner, messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::event::{EventOrder, ObjectEvent};
    use crate::pipeline::ledger::LedgerEntry;
    use crate::pipeline::queue::Receipt;
    use crate::update::EventKind;

    fn message(id: i64, key: &str, kind: EventKind, sequencer: &str) -> Message {
        let mut event = ObjectEvent::local_removed(key.into());
        event.kind = kind;
        event.sequencer = Some(sequencer.into());
        Message {
            id,
            group: "sst".into(),
            receipt: Receipt { id, token: 1 },
            receive_count: 1,
            event,
        }
    }

    fn ledger_with(key: &str, sequencer: &str) -> (tempfile::TempDir, Ledger) {
        ledger_at(key, Some(sequencer), 0)
    }

    fn ledger_at(key: &str, sequencer: Option<&str>, time: i64) -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::load(&dir.path().join("s.zarr")).unwrap();
        ledger.record(
            key,
            LedgerEntry {
                kind: EventKind::Created,
                order: EventOrder {
                    sequencer: sequencer.map(String::from),
                    event_time_us: time,
                    arrival: 0,
                },
                etag: None,
                version_id: None,
                action: "appended".into(),
                region: None,
            },
        );
        (dir, ledger)
    }

    fn ids(messages: &[Message]) -> Vec<i64> {
        messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn the_newest_event_of_a_key_wins_whatever_the_arrival_order() {
        let (_dir, ledger) = ledger_with("other", "1");
        let plan = plan_batch(
            &ledger,
            vec![
                message(1, "a", EventKind::Removed, "07"),
                message(2, "a", EventKind::Created, "05"),
                message(3, "b", EventKind::Created, "100"),
                message(4, "b", EventKind::Created, "FF"),
                message(5, "a", EventKind::Removed, "070"),
            ],
        );
        assert_eq!(ids(&plan.apply), [1, 4]);
        let skipped: Vec<(i64, SkipReason)> = plan.skip.iter().map(|(m, r)| (m.id, *r)).collect();
        assert!(skipped.contains(&(2, SkipReason::Superseded)));
        assert!(skipped.contains(&(5, SkipReason::Duplicate)));
        assert!(skipped.contains(&(3, SkipReason::Superseded)));
    }

    #[test]
    fn events_not_newer_than_the_ledger_are_skipped() {
        let (_dir, ledger) = ledger_with("a", "10");
        let plan = plan_batch(
            &ledger,
            vec![
                message(1, "a", EventKind::Created, "0F"),
                message(2, "b", EventKind::Created, "01"),
            ],
        );
        assert_eq!(ids(&plan.apply), [2]);
        assert_eq!(plan.skip[0].1, SkipReason::Stale);
        let (_dir, ledger) = ledger_with("a", "10");
        let plan = plan_batch(&ledger, vec![message(1, "a", EventKind::Created, "10")]);
        assert!(plan.apply.is_empty());
        assert_eq!(plan.skip[0].1, SkipReason::Duplicate);
        let plan = plan_batch(&ledger, vec![message(1, "a", EventKind::Removed, "11")]);
        assert_eq!(ids(&plan.apply), [1]);
    }

    #[test]
    fn a_ledger_entry_from_the_future_does_not_make_later_events_stale() {
        let mut removal = message(1, "a", EventKind::Removed, "");
        removal.event.sequencer = None;
        // 9999-12-31, recorded before such times were refused.
        let (_dir, ledger) = ledger_at("a", None, 253_402_214_400_000_000);
        let plan = plan_batch(&ledger, vec![removal.clone()]);
        assert_eq!(ids(&plan.apply), [1]);
        // A believable later time in the ledger still makes the removal stale.
        let (_dir, ledger) = ledger_at("a", None, now_us() + 60_000_000);
        let plan = plan_batch(&ledger, vec![removal]);
        assert!(plan.apply.is_empty());
        assert_eq!(plan.skip[0].1, SkipReason::Stale);
    }
}
