//! The queue conformance suite: the contract of `zru::pipeline::Queue` (SQS FIFO
//! semantics) that the flusher relies on, written once and run against every queue
//! implementation, in the style of `object_store::integration`. Each function takes a
//! [`Backend`] (a way to open a fresh, empty queue, and what the backend can do) and
//! panics, naming the backend, where the contract is broken.
//!
//! Where a backend cannot do something the contract asks (SQS cannot tell a sender its
//! message was a duplicate), [`Caps`] says so and the assertion checks what the backend
//! can do instead; the differences are listed in `docs/testing.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use zru::pipeline::queue::{Failed, Message, NewMessage, Queue, Receipt, Retry, Sent};
use zru::pipeline::ObjectEvent;
use zru::update::EventKind;

/// What a backend can do beyond the common contract.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// `send` reports a dropped duplicate as `Sent::Duplicate` (SQS accepts it silently).
    pub reports_duplicates: bool,
    /// A deduplication id stays a duplicate after its message was deleted, within the
    /// window (SQS: yes; moto only deduplicates against messages still in the queue).
    pub dedup_outlives_delete: bool,
    /// `ack` and `fail` with a receipt of an earlier receive do nothing (SQS may act on
    /// an old receipt handle; moto always does).
    pub refuses_stale_receipts: bool,
    /// Several messages of a group in flight come back in order after their visibility
    /// timeout (SQS: yes; moto: not when more than one was in flight).
    pub redelivers_in_order: bool,
    /// `recover` makes in-flight messages visible at once (SQS: their visibility timeout
    /// does it; `recover` is a no-op there).
    pub recovers_in_flight: bool,
    /// `groups` and `stats` list the queue's groups (an SQS queue has no such listing).
    pub lists_groups: bool,
    /// `receive` returns at most this many messages, whatever `max` (SQS: 10).
    pub max_receive_batch: usize,
}

/// A queue implementation under test.
pub struct Backend<'a> {
    pub name: &'static str,
    /// A fresh, empty queue whose messages go to its dead letters after this many
    /// receives.
    pub open: &'a dyn Fn(u32) -> Box<dyn Queue>,
    pub caps: Caps,
}

/// Long enough that nothing becomes visible again during a test.
pub const LONG: Duration = Duration::from_secs(120);
/// A visibility timeout that runs out during a test: whole seconds (SQS counts them),
/// long enough that two calls in a row on a loaded machine fall inside it.
pub const SHORT: Duration = Duration::from_secs(2);
/// How long a test waits for a message to come back (it returns as soon as it does).
pub const WAIT: Duration = Duration::from_secs(10);

/// A message of `group` for object `key` (a removal: no file needed).
pub fn message(group: &str, key: &str, dedup: &str) -> NewMessage {
    NewMessage {
        group: group.into(),
        dedup_id: dedup.into(),
        event: ObjectEvent::local_removed(key.into()),
    }
}

fn keys(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.event.key.as_str()).collect()
}

fn receipts(messages: &[Message]) -> Vec<Receipt> {
    messages.iter().map(|m| m.receipt).collect()
}

/// Receives `group` until `want` messages came or `timeout` passed (waiting out a
/// visibility timeout or a backoff).
fn receive_within(
    queue: &dyn Queue,
    group: &str,
    max: usize,
    visibility: Duration,
    timeout: Duration,
) -> Vec<Message> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = queue.receive(group, max, visibility).unwrap();
        if !got.is_empty() || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

type Case = (&'static str, fn(&Backend));

/// Every function of the suite, in turn.
pub fn run_all(backend: &Backend) {
    let suite: [Case; 12] = [
        ("send_receive_ack", send_receive_ack),
        ("batches_keep_send_order", batches_keep_send_order),
        ("groups_are_independent", groups_are_independent),
        (
            "a_group_is_blocked_while_a_message_is_in_flight",
            a_group_is_blocked_while_a_message_is_in_flight,
        ),
        (
            "visibility_timeout_redelivers_with_receive_counts",
            visibility_timeout_redelivers_with_receive_counts,
        ),
        (
            "a_transient_failure_comes_back_after_its_backoff",
            a_transient_failure_comes_back_after_its_backoff,
        ),
        (
            "a_permanent_failure_is_dead_lettered_at_once",
            a_permanent_failure_is_dead_lettered_at_once,
        ),
        (
            "failures_dead_letter_after_max_receives_and_replay_brings_them_back",
            failures_dead_letter_after_max_receives_and_replay_brings_them_back,
        ),
        (
            "a_dead_consumers_messages_dead_letter_after_max_receives",
            a_dead_consumers_messages_dead_letter_after_max_receives,
        ),
        ("duplicates_are_dropped", duplicates_are_dropped),
        ("stale_receipts", stale_receipts),
        ("recover_and_listings", recover_and_listings),
    ];
    super::run_cases("queue", backend.name, backend, &suite);
}

/// Sent messages come back once, in order, with receive count 1 and their event
/// (created events with their etag, size and sequencer); acknowledged ones are gone.
pub fn send_receive_ack(b: &Backend) {
    let q = (b.open)(3);
    let mut created = message("sst", "b", "2");
    created.event.kind = EventKind::Created;
    created.event.etag = Some("e1".into());
    created.event.size = Some(42);
    created.event.sequencer = Some("00A1".into());
    let messages = [message("sst", "a", "1"), created, message("sst", "c", "3")];
    let sent = q.send(&messages).unwrap();
    assert!(
        sent.iter().all(|s| matches!(s, Sent::Enqueued(_))),
        "{}: {sent:?}",
        b.name
    );
    let got = q.receive("sst", 10, LONG).unwrap();
    assert_eq!(keys(&got), ["a", "b", "c"], "{}", b.name);
    for (got, sent) in got.iter().zip(&messages) {
        assert_eq!(got.event, sent.event, "{}", b.name);
        assert_eq!(got.group, "sst", "{}", b.name);
        assert_eq!(got.receive_count, 1, "{}", b.name);
    }
    let ids: BTreeSet<i64> = got.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3, "{}: message ids are distinct", b.name);
    assert_eq!(q.ack(&receipts(&got)).unwrap(), 3, "{}", b.name);
    assert!(
        q.receive("sst", 10, SHORT).unwrap().is_empty(),
        "{}",
        b.name
    );
}

/// More messages than one SQS batch (10): sent in one call, received in batches of at
/// most `max` (and the backend's limit), every one once, in send order.
pub fn batches_keep_send_order(b: &Backend) {
    let q = (b.open)(3);
    let all: Vec<NewMessage> = (0..25)
        .map(|i| message("sst", &format!("k{i:02}"), &format!("d{i}")))
        .collect();
    let sent = q.send(&all).unwrap();
    assert_eq!(sent.len(), 25, "{}", b.name);
    let first = q.receive("sst", 3, LONG).unwrap();
    assert_eq!(keys(&first), ["k00", "k01", "k02"], "{}", b.name);
    q.ack(&receipts(&first)).unwrap();
    let mut order: Vec<String> = keys(&first).iter().map(|k| k.to_string()).collect();
    loop {
        let got = q.receive("sst", 100, LONG).unwrap();
        if got.is_empty() {
            break;
        }
        assert!(
            got.len() <= b.caps.max_receive_batch,
            "{}: {} messages in one receive",
            b.name,
            got.len()
        );
        order.extend(keys(&got).iter().map(|k| k.to_string()));
        assert_eq!(q.ack(&receipts(&got)).unwrap(), got.len() as u64);
    }
    let expected: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    assert_eq!(order, expected, "{}", b.name);
}

/// A group's messages in flight do not hold back another group's.
pub fn groups_are_independent(b: &Backend) {
    let q = (b.open)(3);
    q.send(&[
        message("sst", "a1", "1"),
        message("argo", "b1", "2"),
        message("sst", "a2", "3"),
        message("argo", "b2", "4"),
    ])
    .unwrap();
    let sst = q.receive("sst", 10, LONG).unwrap();
    assert_eq!(keys(&sst), ["a1", "a2"], "{}", b.name);
    let argo = q.receive("argo", 1, LONG).unwrap();
    assert_eq!(keys(&argo), ["b1"], "{}", b.name);
    q.ack(&receipts(&argo)).unwrap();
    let argo = q.receive("argo", 10, LONG).unwrap();
    assert_eq!(keys(&argo), ["b2"], "{}", b.name);
    assert!(q.receive("sst", 10, LONG).unwrap().is_empty(), "{}", b.name);
}

/// Nothing of a group is received while an earlier message of it is in flight, also
/// when later ones are waiting; its acknowledgement releases the next.
pub fn a_group_is_blocked_while_a_message_is_in_flight(b: &Backend) {
    let q = (b.open)(3);
    q.send(&[message("sst", "a", "1"), message("sst", "b", "2")])
        .unwrap();
    let first = q.receive("sst", 1, LONG).unwrap();
    assert_eq!(keys(&first), ["a"], "{}", b.name);
    assert!(
        q.receive("sst", 10, LONG).unwrap().is_empty(),
        "{}: b received while a is in flight",
        b.name
    );
    assert_eq!(q.ack(&receipts(&first)).unwrap(), 1, "{}", b.name);
    assert_eq!(
        keys(&q.receive("sst", 10, LONG).unwrap()),
        ["b"],
        "{}",
        b.name
    );
}

/// A message neither acknowledged nor failed comes back after its visibility timeout,
/// the same message with its receive count up by one; the group stays in order.
pub fn visibility_timeout_redelivers_with_receive_counts(b: &Backend) {
    let q = (b.open)(5);
    q.send(&[
        message("sst", "a", "1"),
        message("sst", "b", "2"),
        message("sst", "c", "3"),
    ])
    .unwrap();
    // One in flight: it comes back first, before the messages after it.
    let first = q.receive("sst", 1, SHORT).unwrap();
    assert_eq!(keys(&first), ["a"], "{}", b.name);
    assert!(q.receive("sst", 1, SHORT).unwrap().is_empty(), "{}", b.name);
    let again = receive_within(q.as_ref(), "sst", 1, SHORT, WAIT);
    assert_eq!(keys(&again), ["a"], "{}", b.name);
    assert_eq!(again[0].id, first[0].id, "{}: the same message", b.name);
    assert_eq!(again[0].receive_count, 2, "{}", b.name);
    assert_ne!(again[0].receipt, first[0].receipt, "{}", b.name);
    // Several in flight: all come back, counts up by one.
    let all = receive_within(q.as_ref(), "sst", 10, SHORT, WAIT);
    assert_eq!(keys(&all), ["a", "b", "c"], "{}", b.name);
    assert_eq!(
        all.iter().map(|m| m.receive_count).collect::<Vec<_>>(),
        [3, 1, 1],
        "{}",
        b.name
    );
    // Several in flight: in order in one receive. moto gives back only some of them
    // (the last first, the others starved until it is acknowledged or dead-lettered);
    // whatever it gives back has its receive count up by one.
    let back = receive_within(q.as_ref(), "sst", 10, LONG, WAIT);
    let before: BTreeMap<&str, u32> = [("a", 3), ("b", 1), ("c", 1)].into();
    assert!(!back.is_empty(), "{}", b.name);
    for m in &back {
        assert_eq!(
            m.receive_count,
            before[m.event.key.as_str()] + 1,
            "{}: {}",
            b.name,
            m.event.key
        );
    }
    if b.caps.redelivers_in_order {
        assert_eq!(keys(&back), ["a", "b", "c"], "{}", b.name);
        assert_eq!(q.ack(&receipts(&back)).unwrap(), 3, "{}", b.name);
    }
}

/// `fail` with `Retry::After(d)`: the message is hidden for `d`, then received again
/// (receive count 2), still ahead of its group.
pub fn a_transient_failure_comes_back_after_its_backoff(b: &Backend) {
    let q = (b.open)(5);
    q.send(&[message("sst", "a", "1"), message("sst", "b", "2")])
        .unwrap();
    let got = q.receive("sst", 1, LONG).unwrap();
    let failed_at = Instant::now();
    let delay = Duration::from_secs(2);
    assert_eq!(
        q.fail(got[0].receipt, "disk full", Retry::After(delay))
            .unwrap(),
        Failed::Retry,
        "{}",
        b.name
    );
    assert!(
        q.receive("sst", 10, LONG).unwrap().is_empty(),
        "{}: received during its backoff (or b overtook it)",
        b.name
    );
    let again = receive_within(q.as_ref(), "sst", 1, LONG, WAIT);
    assert!(
        failed_at.elapsed() >= delay - Duration::from_millis(100),
        "{}: back after {:?}, before its backoff of {delay:?}",
        b.name,
        failed_at.elapsed()
    );
    assert_eq!(keys(&again), ["a"], "{}", b.name);
    assert_eq!(again[0].receive_count, 2, "{}", b.name);
    assert_eq!(
        q.fail(again[0].receipt, "ok now", Retry::After(Duration::ZERO))
            .unwrap(),
        Failed::Retry,
        "{}",
        b.name
    );
    let third = receive_within(q.as_ref(), "sst", 1, LONG, WAIT);
    assert_eq!(keys(&third), ["a"], "{}: a zero backoff", b.name);
    assert_eq!(third[0].receive_count, 3, "{}", b.name);
}

/// `fail` with `Retry::Never` dead-letters at once with its reason; the group goes on
/// with its next message.
pub fn a_permanent_failure_is_dead_lettered_at_once(b: &Backend) {
    let q = (b.open)(5);
    q.send(&[message("sst", "bad", "1"), message("sst", "next", "2")])
        .unwrap();
    let bad = q.receive("sst", 1, LONG).unwrap();
    assert_eq!(
        q.fail(bad[0].receipt, "corrupt file", Retry::Never)
            .unwrap(),
        Failed::DeadLettered,
        "{}",
        b.name
    );
    let next = q.receive("sst", 10, LONG).unwrap();
    assert_eq!(keys(&next), ["next"], "{}", b.name);
    let dead = q.dead_letters().unwrap();
    assert_eq!(dead.len(), 1, "{}: {dead:?}", b.name);
    assert_eq!(dead[0].event.key, "bad", "{}", b.name);
    assert_eq!(dead[0].group, "sst", "{}", b.name);
    assert_eq!(dead[0].receive_count, 1, "{}", b.name);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("corrupt file"),
        "{}",
        b.name
    );
}

/// A transient failure on the last allowed receive is dead-lettered with the error;
/// `replay` puts it back at receive count 1.
pub fn failures_dead_letter_after_max_receives_and_replay_brings_them_back(b: &Backend) {
    let q = (b.open)(2);
    q.send(&[message("sst", "bad", "1")]).unwrap();
    let first = q.receive("sst", 1, LONG).unwrap();
    assert_eq!(
        q.fail(first[0].receipt, "io", Retry::After(Duration::ZERO))
            .unwrap(),
        Failed::Retry,
        "{}",
        b.name
    );
    let second = receive_within(q.as_ref(), "sst", 1, LONG, WAIT);
    assert_eq!(second[0].receive_count, 2, "{}", b.name);
    assert_eq!(
        q.fail(second[0].receipt, "still io", Retry::After(Duration::ZERO))
            .unwrap(),
        Failed::DeadLettered,
        "{}",
        b.name
    );
    assert!(q.receive("sst", 1, LONG).unwrap().is_empty(), "{}", b.name);
    let dead = q.dead_letters().unwrap();
    assert_eq!(dead.len(), 1, "{}: {dead:?}", b.name);
    assert_eq!(dead[0].receive_count, 2, "{}", b.name);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("still io"),
        "{}",
        b.name
    );
    assert_eq!(q.replay(&[]).unwrap(), 1, "{}", b.name);
    assert!(q.dead_letters().unwrap().is_empty(), "{}", b.name);
    let back = receive_within(q.as_ref(), "sst", 1, LONG, WAIT);
    assert_eq!(keys(&back), ["bad"], "{}", b.name);
    assert_eq!(back[0].receive_count, 1, "{}", b.name);
    assert_eq!(q.ack(&receipts(&back)).unwrap(), 1, "{}", b.name);
}

/// Received the maximum number of times and never acknowledged (its consumer died each
/// time): dead-lettered instead of received again, and the group goes on.
pub fn a_dead_consumers_messages_dead_letter_after_max_receives(b: &Backend) {
    let q = (b.open)(2);
    q.send(&[message("sst", "a", "1"), message("sst", "b", "2")])
        .unwrap();
    let first = q.receive("sst", 1, SHORT).unwrap();
    assert_eq!(keys(&first), ["a"], "{}", b.name);
    let second = receive_within(q.as_ref(), "sst", 1, SHORT, WAIT);
    assert_eq!(keys(&second), ["a"], "{}", b.name);
    assert_eq!(second[0].receive_count, 2, "{}", b.name);
    let next = receive_within(q.as_ref(), "sst", 1, LONG, WAIT);
    assert_eq!(keys(&next), ["b"], "{}: a dead-lettered, b next", b.name);
    let dead = q.dead_letters().unwrap();
    assert_eq!(keys_of_dead(&dead), ["a"], "{}", b.name);
    assert_eq!(dead[0].receive_count, 2, "{}", b.name);
}

fn keys_of_dead(dead: &[zru::pipeline::queue::DeadLetter]) -> Vec<&str> {
    dead.iter().map(|d| d.event.key.as_str()).collect()
}

/// A deduplication id sent again within the window is dropped, in the same `send` and
/// in a later one, while the message is waiting, in flight and (where the backend
/// keeps it) acknowledged; other ids are not.
pub fn duplicates_are_dropped(b: &Backend) {
    let q = (b.open)(3);
    let sent = q
        .send(&[
            message("sst", "a", "x"),
            message("sst", "b", "y"),
            message("sst", "a-again", "x"),
        ])
        .unwrap();
    if b.caps.reports_duplicates {
        assert!(matches!(sent[..2], [Sent::Enqueued(_), Sent::Enqueued(_)]));
        assert_eq!(sent[2], Sent::Duplicate, "{}", b.name);
    }
    let later = q.send(&[message("sst", "a-later", "x")]).unwrap();
    if b.caps.reports_duplicates {
        assert_eq!(later, [Sent::Duplicate], "{}", b.name);
    }
    let got = q.receive("sst", 10, LONG).unwrap();
    assert_eq!(keys(&got), ["a", "b"], "{}", b.name);
    q.send(&[message("sst", "b-in-flight", "y")]).unwrap();
    q.ack(&receipts(&got)).unwrap();
    q.send(&[message("sst", "a-acked", "x"), message("sst", "c", "z")])
        .unwrap();
    let after = q.receive("sst", 10, LONG).unwrap();
    if b.caps.dedup_outlives_delete {
        assert_eq!(keys(&after), ["c"], "{}", b.name);
    } else {
        assert_eq!(keys(&after), ["a-acked", "c"], "{}", b.name);
    }
}

/// Receipts of an earlier receive: refused by `ack` and `fail` where the backend can
/// tell; the current receipt always works.
pub fn stale_receipts(b: &Backend) {
    let q = (b.open)(5);
    q.send(&[message("sst", "a", "1")]).unwrap();
    let old = q.receive("sst", 1, SHORT).unwrap();
    let new = receive_within(q.as_ref(), "sst", 1, LONG, WAIT);
    assert_eq!(new[0].receive_count, 2, "{}", b.name);
    if b.caps.refuses_stale_receipts {
        assert_eq!(
            q.fail(old[0].receipt, "old", Retry::After(Duration::ZERO))
                .unwrap(),
            Failed::Stale,
            "{}",
            b.name
        );
        assert_eq!(q.ack(&receipts(&old)).unwrap(), 0, "{}", b.name);
    }
    assert_eq!(q.ack(&receipts(&new)).unwrap(), 1, "{}", b.name);
    assert!(q.receive("sst", 1, SHORT).unwrap().is_empty(), "{}", b.name);
}

/// `recover` (the holder of the group's store lock takes over a dead consumer's
/// messages) and the listings `groups`, `stats`, where the backend has them.
pub fn recover_and_listings(b: &Backend) {
    let q = (b.open)(3);
    q.send(&[
        message("sst", "a", "1"),
        message("sst", "b", "2"),
        message("argo", "c", "3"),
    ])
    .unwrap();
    let lost = q.receive("sst", 1, LONG).unwrap();
    if b.caps.lists_groups {
        assert_eq!(q.groups().unwrap(), ["argo", "sst"], "{}", b.name);
        let stats = q.stats().unwrap();
        let sst = stats.iter().find(|s| s.group == "sst").unwrap();
        assert_eq!(
            (sst.ready, sst.in_flight, sst.dead),
            (1, 1, 0),
            "{}",
            b.name
        );
    }
    if b.caps.recovers_in_flight {
        assert_eq!(q.recover("sst").unwrap(), 1, "{}", b.name);
        let again = q.receive("sst", 10, LONG).unwrap();
        assert_eq!(keys(&again), ["a", "b"], "{}", b.name);
        assert_eq!(again[0].id, lost[0].id, "{}", b.name);
        assert_eq!(again[0].receive_count, 2, "{}", b.name);
        q.ack(&receipts(&again)).unwrap();
    } else {
        assert_eq!(q.recover("sst").unwrap(), 0, "{}", b.name);
        assert!(q.receive("sst", 10, LONG).unwrap().is_empty(), "{}", b.name);
    }
    assert_eq!(
        keys(&q.receive("argo", 10, LONG).unwrap()),
        ["c"],
        "{}",
        b.name
    );
    if b.caps.lists_groups && b.caps.recovers_in_flight {
        assert_eq!(q.groups().unwrap(), ["argo"], "{}", b.name);
    }
}
