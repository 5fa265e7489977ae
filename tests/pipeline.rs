//! The pipeline end to end through the `zru` binary: dead letters and replay, two
//! concurrent flushers, the lock timeout, appends sorted within a batch, the watcher,
//! S3 notifications, and keys that would escape the raw root.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::Duration;

use zru::pipeline::lock::StoreLock;

use common::{lines_with_action, sample_key, sample_name, stderr, stdout, Work};

fn raw_arg(work: &Work, day: u32) -> String {
    work.raw(day).display().to_string()
}

#[test]
fn a_corrupt_file_is_dead_lettered_with_its_reason_and_replays_once_fixed() {
    let work = Work::new(true);
    work.samples("good", 2, 0);
    let good = std::fs::read(work.path().join("good").join(sample_name(1))).expect("sample");
    std::fs::write(work.raw(1), &good[..good.len() / 2]).expect("truncated copy");
    let out = work.zru(&["ingest", "--max-receives", "2", &raw_arg(&work, 1)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let dead = lines_with_action(&out, "rejected");
    assert_eq!(dead.len(), 1, "{}", stdout(&out));
    let reason = dead[0].split('\t').nth(3).unwrap_or_default();
    let (error, note) = reason.split_once(" [").expect("dead-letter note");
    assert!(error.contains(&sample_name(1)), "{reason}");
    // A corrupt file is a permanent error: dead-lettered on its first receive, not
    // retried until --max-receives is used up.
    assert!(
        note.contains("dead letter (permanent error, not retried)"),
        "{reason}"
    );

    let queue = work.zru(&["queue", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&queue.stdout).expect("json");
    let letters = doc["dead_letters"].as_array().expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["receive_count"], 1);
    assert_eq!(letters[0]["event"]["key"], sample_key(1));
    assert_eq!(letters[0]["last_error"], error);

    std::fs::copy(work.path().join("good").join(sample_name(1)), work.raw(1)).expect("fix");
    let replay = work.zru(&["queue", "replay"]);
    assert!(
        stdout(&replay).contains("replayed 1 dead letter"),
        "{}",
        stdout(&replay)
    );
    let flush = work.zru(&["flush"]);
    assert!(flush.status.success(), "{}", stderr(&flush));
    assert_eq!(
        lines_with_action(&flush, "appended").len(),
        1,
        "{}",
        stdout(&flush)
    );
    let queue = work.zru(&["queue", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&queue.stdout).expect("json");
    assert_eq!(doc["dead_letters"].as_array().map(Vec::len), Some(0));
}

#[test]
fn two_concurrent_flushers_apply_each_event_once() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 12, 0);
    let mut args = vec!["ingest".to_string(), "--no-flush".to_string()];
    args.extend((1..=12).map(|d| raw_arg(&work, d)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(work.zru(&args).status.success());
    let flush = ["flush", "--batch-size", "1"];
    let spawn = || {
        work.command(&flush)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn flush")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (
        a.wait_with_output().expect("flush a"),
        b.wait_with_output().expect("flush b"),
    );
    assert!(
        a.status.success() && b.status.success(),
        "{}{}",
        stderr(&a),
        stderr(&b)
    );
    let mut applied: Vec<String> = lines_with_action(&a, "appended");
    applied.extend(lines_with_action(&b, "appended"));
    let mut keys: Vec<&str> = applied
        .iter()
        .filter_map(|l| l.split('\t').next())
        .collect();
    keys.sort();
    let expected: Vec<String> = (1..=12).map(sample_key).collect();
    assert_eq!(
        keys,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let sources = &common::dump(&work.store())["zru_source_key/values"];
    for key in &expected {
        assert_eq!(sources.matches(key.as_str()).count(), 1, "{key}: {sources}");
    }
}

#[test]
fn a_held_lock_makes_flush_wait_then_fail_with_a_clear_error() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 1, 0);
    assert!(work
        .zru(&["ingest", "--no-flush", &raw_arg(&work, 1)])
        .status
        .success());
    let store = zru::store::StoreLocation::Local(work.store());
    let held = StoreLock::acquire(
        &work.path().join("data/state/locks"),
        &store,
        Duration::ZERO,
    )
    .expect("hold the lock");
    let out = work.zru(&["flush", "--lock-timeout", "0.3"]);
    assert_eq!(out.status.code(), Some(2));
    let error = stderr(&out);
    assert!(
        error.contains("timed out") && error.contains("sst.zarr"),
        "{error}"
    );
    drop(held);
    let out = work.zru(&["flush"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines_with_action(&out, "appended").len(), 1);
}

/// Issue 12 (#4): the lock belongs to the store, not to the caller's state directory:
/// a writer with another `--state-dir` (and so another queue and lock directory) waits
/// for the holder and recovers nothing under it.
#[test]
fn writers_with_different_state_dirs_exclude_each_other_on_one_store() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 2, 0);
    for (state, day) in [("state-a", 1), ("state-b", 2)] {
        let out = work.zru(&[
            "ingest",
            "--no-flush",
            "--state-dir",
            state,
            &raw_arg(&work, day),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // The holder: a writer whose state directory is state-a.
    let store = zru::store::StoreLocation::Local(work.store());
    let held = StoreLock::acquire(&work.path().join("state-a/locks"), &store, Duration::ZERO)
        .expect("hold the lock");
    let out = work.zru(&["flush", "--state-dir", "state-b", "--lock-timeout", "0.3"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(!work.store().join("zarr.json").exists());
    drop(held);
    for state in ["state-a", "state-b"] {
        let out = work.zru(&["flush", "--state-dir", state]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            lines_with_action(&out, "appended").len(),
            1,
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn appends_in_one_batch_are_sorted_by_time_without_a_time_step() {
    let work = Work::new(false);
    work.samples("data/raw/sst", 3, 0);
    let out = work.zru(&[
        "ingest",
        &raw_arg(&work, 3),
        &raw_arg(&work, 1),
        &raw_arg(&work, 2),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let lines = lines_with_action(&out, "appended");
    assert_eq!(lines.len(), 3, "{}", stdout(&out));
    for (day, slot) in [(1, 0), (2, 1), (3, 2)] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&sample_key(day)))
            .expect("line");
        assert!(
            line.ends_with(&format!("time[{slot}:{}]", slot + 1)),
            "{line}"
        );
    }
}

#[test]
fn stale_and_duplicate_s3_events_are_skipped_and_visible() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 1, 0);
    let record = |name: &str, sequencer: &str| {
        format!(
            r#"{{"eventTime":"2024-05-01T12:00:00Z","eventName":"{name}","s3":{{"bucket":{{"name":"raw"}},"object":{{"key":"{}","sequencer":"{sequencer}"}}}}}}"#,
            sample_key(1).replace('-', "%2D")
        )
    };
    let doc = format!(
        r#"{{"Records":[{},{}]}}"#,
        record("ObjectCreated:Put", "0100"),
        record("ObjectCreated:Put", "0100")
    );
    std::fs::write(work.path().join("events.json"), doc).expect("events");
    let out = work.zru(&["enqueue", "events.json"]);
    assert_eq!(
        lines_with_action(&out, "enqueued").len(),
        1,
        "{}",
        stdout(&out)
    );
    assert_eq!(lines_with_action(&out, "skipped(duplicate)").len(), 1);
    assert!(work.zru(&["flush"]).status.success());

    let older = format!(
        r#"{{"Records":[{}]}}"#,
        record("ObjectRemoved:Delete", "00FF")
    );
    std::fs::write(work.path().join("older.json"), older).expect("events");
    assert!(work.zru(&["enqueue", "older.json"]).status.success());
    let out = work.zru(&["flush"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        lines_with_action(&out, "skipped(stale)").len(),
        1,
        "{}",
        stdout(&out)
    );

    let again = format!(r#"{{"Records":[{}]}}"#, record("ObjectCreated:Put", "0100"));
    std::fs::write(work.path().join("again.json"), again).expect("events");
    let out = work.zru(&["enqueue", "--dedup-window", "0", "again.json"]);
    assert!(out.status.success());
    let out = work.zru(&["flush"]);
    assert_eq!(
        lines_with_action(&out, "skipped(duplicate)").len(),
        1,
        "{}",
        stdout(&out)
    );
}

#[test]
fn keys_escaping_the_raw_root_are_refused_before_the_queue() {
    let work = Work::new(true);
    for key in ["../sst/x.nc", "/etc/sst/x.nc", "sst/../../x.nc"] {
        let out = work.zru(&["remove", key]);
        assert_eq!(out.status.code(), Some(1), "{key}");
        let rejected = lines_with_action(&out, "rejected");
        assert_eq!(rejected.len(), 1, "{key}: {}", stdout(&out));
        assert!(rejected[0].contains("escape") || rejected[0].contains("absolute"));
    }
    let outside = work.path().join("elsewhere.nc");
    std::fs::write(&outside, b"x").expect("file");
    let out = work.zru(&["ingest", &outside.display().to_string()]);
    assert!(
        stdout(&out).contains("is not under the raw root"),
        "{}",
        stdout(&out)
    );
    let queue = work.zru(&["queue", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&queue.stdout).expect("json");
    assert_eq!(doc["groups"].as_array().map(Vec::len), Some(0), "{doc}");
}

/// Runs `zru flush --json`, which must succeed; its reports, one per event.
fn flush_reports(work: &Work) -> Vec<serde_json::Value> {
    let out = work.zru(&["flush", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

struct Watcher {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Watcher {
    fn start(work: &Work) -> Self {
        Self::start_at(work, "data/raw")
    }

    fn start_at(work: &Work, raw_dir: &str) -> Self {
        let mut child = work
            .command(&["watch", raw_dir])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn watch");
        let stdout = child.stdout.take().expect("stdout");
        // The watcher says it is watching on stderr once its watch is in place.
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        err.read_line(&mut first).expect("watch banner");
        assert!(first.contains("watching"), "{first}");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    fn next(&mut self) -> String {
        self.lines
            .next()
            .and_then(Result::ok)
            .expect("a line from the watcher")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_watcher_enqueues_complete_files_only_and_removals() {
    let work = Work::new(true);
    work.samples("staging", 3, 0);
    let mut watcher = Watcher::start(&work);
    let staged = |day| std::fs::read(work.path().join("staging").join(sample_name(day)));

    // A slow copy: half written, still open.
    let bytes = staged(1).expect("sample");
    let mut partial = File::create(work.raw(1)).expect("create");
    partial
        .write_all(&bytes[..bytes.len() / 2])
        .expect("write half");
    partial.flush().expect("flush");
    // Write-then-rename of another file: a temporary name no dataset matches.
    let temp = work.path().join("data/raw/sst/.incoming.tmp");
    std::fs::write(&temp, staged(2).expect("sample")).expect("temp");
    std::fs::rename(&temp, work.raw(2)).expect("rename");
    // Events are handled in order: once day 2 is enqueued, the half-written day 1
    // has been seen and not enqueued.
    let line = watcher.next();
    assert!(
        line.starts_with(&sample_key(2)) && line.contains("enqueued"),
        "{line}"
    );

    partial
        .write_all(&bytes[bytes.len() / 2..])
        .expect("write rest");
    drop(partial);
    let line = watcher.next();
    assert!(
        line.starts_with(&sample_key(1)) && line.contains("enqueued"),
        "{line}"
    );

    std::fs::remove_file(work.raw(2)).expect("remove");
    let line = watcher.next();
    assert!(
        line.starts_with(&sample_key(2)) && line.contains("enqueued"),
        "{line}"
    );

    let reports = flush_reports(&work);
    let action = |day: u32, event: &str| {
        reports
            .iter()
            .filter(|r| r["key"] == sample_key(day) && r["event"] == event)
            .map(|r| r["action"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(action(1, "created"), ["appended"]);
    assert_eq!(action(2, "removed"), ["unchanged"], "{reports:?}");
    assert_eq!(action(2, "created"), ["skipped(superseded)"], "{reports:?}");
}

#[test]
fn a_watcher_starting_late_enqueues_what_changed_while_none_ran() {
    let work = Work::new(true);
    work.samples("staging", 4, 0);
    work.samples("revised", 4, 1);
    let copy = |dir: &str, day: u32| {
        std::fs::copy(work.path().join(dir).join(sample_name(day)), work.raw(day))
            .expect("copy into the raw directory");
    };
    for day in [1, 2, 4] {
        copy("staging", day);
    }
    let out = work.zru(&[
        "ingest",
        &raw_arg(&work, 1),
        &raw_arg(&work, 2),
        &raw_arg(&work, 4),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));

    // While no watcher runs: day 3 arrives, day 2 is revised, day 1 is deleted.
    copy("staging", 3);
    std::thread::sleep(std::time::Duration::from_millis(20));
    copy("revised", 2);
    std::fs::remove_file(work.raw(1)).expect("remove day 1");

    let mut watcher = Watcher::start(&work);
    let lines: Vec<String> = (0..3).map(|_| watcher.next()).collect();
    for (line, day) in lines.iter().zip([2, 3, 1]) {
        assert!(
            line.starts_with(&sample_key(day)) && line.contains("enqueued"),
            "{lines:?}"
        );
    }
    let reports = flush_reports(&work);
    let actions: Vec<(String, String)> = reports
        .iter()
        .map(|r| (r["key"].to_string(), r["action"].to_string()))
        .collect();
    // Day 4 did not change: it is not enqueued again.
    assert_eq!(reports.len(), 3, "{actions:?}");
    let action = |day: u32| {
        reports
            .iter()
            .find(|r| r["key"] == sample_key(day))
            .and_then(|r| r["action"].as_str())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(action(1), "blanked", "{actions:?}");
    assert_eq!(action(2), "overwrote", "{actions:?}");
    assert_eq!(action(3), "overwrote", "{actions:?}");
}

/// Runs `zru` with `args`, failing the test instead of hanging if it does not finish
/// within a generous bound (the defects below used to block forever).
fn zru_bounded(work: &Work, args: &[&str]) -> std::process::Output {
    let mut child = work
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zru");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zru {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Every file under `dir` with its bytes.
fn files_with_bytes(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    common::store_files(dir)
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).expect("read");
            (name, bytes)
        })
        .collect()
}

fn mkfifo(path: &std::path::Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// An S3 notification of one record for `key` (percent-encoded here).
fn s3_doc(name: &str, key: &str, time: &str) -> String {
    let key = key.replace('%', "%25").replace('-', "%2D");
    format!(
        r#"{{"Records":[{{"eventTime":"{time}","eventName":"{name}","s3":{{"bucket":{{"name":"raw"}},"object":{{"key":"{key}"}}}}}}]}}"#
    )
}

fn queue_json(work: &Work) -> serde_json::Value {
    let out = work.zru(&["queue", "--json"]);
    serde_json::from_slice(&out.stdout).expect("queue json")
}

/// Issue 12 (#5): a symbolic link planted at the lock path is refused; its target is
/// neither truncated nor written.
#[test]
fn a_symlink_planted_at_the_lock_path_is_refused_and_its_target_untouched() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 1, 0);
    std::fs::create_dir_all(work.path().join("data/zarr")).expect("dir");
    let victim = work.path().join("victim.txt");
    std::fs::write(&victim, b"precious").expect("victim");
    std::os::unix::fs::symlink(&victim, work.path().join("data/zarr/sst.zarr.zru-lock"))
        .expect("plant");
    let out = work.zru(&["ingest", &raw_arg(&work, 1)]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
}

/// Issue 12 (#6): a directory inside the store replaced by a link to elsewhere: the
/// removal refuses to delete through it, and nothing outside the store is touched.
#[test]
fn a_removal_never_deletes_through_a_symlinked_directory_of_the_store() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 1, 0);
    assert!(work.zru(&["ingest", &raw_arg(&work, 1)]).status.success());
    // The data array's chunk directory moves out and is linked back.
    let chunks = work.store().join("sea_surface_temperature/c");
    let outside = work.path().join("outside");
    std::fs::rename(&chunks, &outside).expect("move");
    std::os::unix::fs::symlink(&outside, &chunks).expect("link");
    let before = files_with_bytes(&outside);
    assert!(!before.is_empty());
    let out = work.zru(&["remove", &sample_key(1)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rejected = lines_with_action(&out, "rejected");
    assert!(rejected[0].contains("symbolic link"), "{rejected:?}");
    assert_eq!(files_with_bytes(&outside), before);
}

/// Issue 12 (#7): the root metadata lost while arrays remain: the next ingest is an
/// error naming the problem, never a new store over the old chunks.
#[test]
fn a_store_without_root_metadata_but_with_arrays_is_an_error_not_a_new_store() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 2, 0);
    assert!(work.zru(&["ingest", &raw_arg(&work, 1)]).status.success());
    std::fs::remove_file(work.store().join("zarr.json")).expect("lose the root");
    let time_meta = std::fs::read(work.store().join("time/zarr.json")).expect("time");
    let chunks = files_with_bytes(&work.store().join("sea_surface_temperature"));
    let out = work.zru(&["ingest", &raw_arg(&work, 2)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rejected = lines_with_action(&out, "rejected");
    assert!(
        rejected[0].contains("incomplete") && rejected[0].contains("no root group metadata"),
        "{rejected:?}"
    );
    // The store error is transient (a repair makes a retry succeed): the ingest's event
    // waits its backoff and may be retried by this flush too; the removal is rejected.
    let out = work.zru(&["remove", &sample_key(1)]);
    let rejected = lines_with_action(&out, "rejected");
    assert!(
        rejected
            .iter()
            .any(|line| line.starts_with(&format!("{}\t", sample_key(1)))),
        "{}",
        stdout(&out)
    );
    assert!(
        lines_with_action(&out, "blanked").is_empty(),
        "{}",
        stdout(&out)
    );
    assert!(!work.store().join("zarr.json").exists());
    assert_eq!(
        std::fs::read(work.store().join("time/zarr.json")).expect("time"),
        time_meta
    );
    assert_eq!(
        files_with_bytes(&work.store().join("sea_surface_temperature")),
        chunks
    );
}

/// Issue 12 (#8): an event time in the far future is refused (at enqueue, and by the
/// flush if it reached the queue another way); the key's later events still apply.
#[test]
fn events_from_the_future_are_refused_and_do_not_make_later_events_stale() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 1, 0);
    let future = s3_doc("ObjectCreated:Put", &sample_key(1), "9999-12-31T00:00:00Z");
    std::fs::write(work.path().join("future.json"), future).expect("doc");
    let out = work.zru(&["enqueue", "future.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rejected = lines_with_action(&out, "rejected");
    assert!(
        rejected[0].contains("ahead of this host's clock"),
        "{rejected:?}"
    );

    // The same event put into the queue directly (as an older zru or another sender
    // could): the flush rejects it into the dead letters, not into the ledger.
    let queue = zru::pipeline::SqliteQueue::open(
        &work.path().join("data/state/queue.sqlite"),
        zru::pipeline::QueueOptions::default(),
    )
    .expect("queue");
    let mut event = zru::pipeline::ObjectEvent::local_removed(sample_key(1));
    event.kind = zru::update::EventKind::Created;
    event.bucket = "raw".into();
    event.event_time_us = 253_402_214_400_000_000;
    zru::pipeline::Queue::send(
        &queue,
        &[zru::pipeline::queue::NewMessage {
            group: "sst".into(),
            dedup_id: event.dedup_id(),
            event,
        }],
    )
    .expect("send");
    let out = work.zru(&["flush", "--max-receives", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ahead of this host's clock"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        queue_json(&work)["dead_letters"].as_array().map(Vec::len),
        Some(1)
    );
    // A creation and a removal now: both applied.
    let out = work.zru(&["ingest", &raw_arg(&work, 1)]);
    assert_eq!(
        lines_with_action(&out, "appended").len(),
        1,
        "{}",
        stdout(&out)
    );
    let out = work.zru(&["remove", &sample_key(1)]);
    assert_eq!(
        lines_with_action(&out, "blanked").len(),
        1,
        "{}",
        stdout(&out)
    );
}

/// Issue 12 (#10): a FIFO named like a data file does not hang the flush (which holds
/// the store's lock): it is refused with a reason, and `zru ingest` refuses it at once.
#[test]
fn a_fifo_named_like_a_data_file_is_refused_without_hanging() {
    let work = Work::new(true);
    mkfifo(&work.raw(1));
    let out = zru_bounded(&work, &["ingest", &raw_arg(&work, 1)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("a FIFO"), "{}", stdout(&out));
    let doc = s3_doc("ObjectCreated:Put", &sample_key(1), "2024-05-01T12:00:00Z");
    std::fs::write(work.path().join("fifo.json"), doc).expect("doc");
    assert!(work.zru(&["enqueue", "fifo.json"]).status.success());
    let out = zru_bounded(&work, &["flush", "--max-receives", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rejected = lines_with_action(&out, "rejected");
    assert!(
        rejected[0].contains("not a regular file (a FIFO)"),
        "{rejected:?}"
    );
}

/// Issue 12 (#11): non-canonical keys, control bytes in keys, links out of the raw root
/// and an empty notification document.
#[test]
fn keys_are_canonical_printed_escaped_and_links_out_of_the_raw_root_refused() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 1, 0);
    for key in ["sst//x.nc", "sst/x.nc/", "sst/./x.nc"] {
        let out = work.zru(&["remove", key]);
        assert_eq!(out.status.code(), Some(1), "{key}");
        let rejected = lines_with_action(&out, "rejected");
        assert!(rejected[0].contains("not canonical"), "{key}: {rejected:?}");
    }
    let doc = s3_doc("ObjectRemoved:Delete", "sst//x.nc", "2024-05-01T12:00:00Z");
    std::fs::write(work.path().join("slashes.json"), doc).expect("doc");
    let out = work.zru(&["enqueue", "slashes.json"]);
    assert_eq!(
        lines_with_action(&out, "rejected").len(),
        1,
        "{}",
        stdout(&out)
    );

    // Control bytes in a key: ESC sequences (title, clear screen), BEL, NUL, DEL, C1.
    let doc = r#"{"Records":[{"eventTime":"2024-05-01T12:00:00Z","eventName":"ObjectRemoved:Delete",
        "s3":{"bucket":{"name":"raw"},"object":{"key":"sst/%1B]0;owned%07%1B[2J%00%7F%C2%9B.nc"}}}]}"#;
    std::fs::write(work.path().join("control.json"), doc).expect("doc");
    for args in [&["enqueue", "control.json"][..], &["flush"], &["queue"]] {
        let out = work.zru(args);
        let text = stdout(&out) + &stderr(&out);
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() && c != '\t' && c != '\n'),
            "{args:?}: {text:?}"
        );
        if args[0] != "queue" {
            assert!(
                text.contains("sst/\\x1b]0;owned\\x07\\x1b[2J\\x00\\x7f\\u{009b}.nc"),
                "{args:?}: {text:?}"
            );
        }
    }
    // As a command-line argument too (NUL cannot be one).
    let out = work.zru(&["remove", "sst/\u{1b}[31mred.nc"]);
    assert!(
        stdout(&out).contains("sst/\\x1b[31mred.nc"),
        "{}",
        stdout(&out)
    );

    let secret = work.path().join("secret.nc");
    std::fs::copy(work.raw(1), &secret).expect("copy");
    let link = work.path().join("data/raw/sst/link.nc");
    std::os::unix::fs::symlink(&secret, &link).expect("link");
    let out = work.zru(&["ingest", &link.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("outside the raw root"),
        "{}",
        stdout(&out)
    );
    assert!(!work.store().join("zarr.json").exists());

    std::fs::write(work.path().join("empty.json"), "\n  \n").expect("doc");
    let out = work.zru(&["enqueue", "empty.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
}

/// Issue 12 (#14): credentials in a URL never reach the output.
#[test]
fn passwords_in_urls_are_redacted_in_messages() {
    let work = Work::new(true);
    let config = work.path().join("config/sst.json");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("data/zarr/sst.zarr", "s3://admin:hunter2@bucket/sst.zarr"),
    )
    .expect("config");
    let out = work.zru(&["flush"]);
    assert_eq!(out.status.code(), Some(2));
    let error = stderr(&out);
    assert!(
        error.contains("admin:***@bucket") && !error.contains("hunter2"),
        "{error}"
    );
}

/// Issue 12 (#1): `zru watch raw` then `zru flush` with the default raw root: the
/// events are refused as made for another raw root (not acknowledged as gone), and a
/// flush with the watcher's raw root applies them after a replay.
#[test]
fn a_flush_reading_another_raw_root_refuses_the_watchers_events() {
    let work = Work::new(true);
    work.samples("raw/sst", 1, 0);
    let mut watcher = Watcher::start_at(&work, "raw");
    let line = watcher.next();
    assert!(
        line.starts_with(&sample_key(1)) && line.contains("enqueued"),
        "{line}"
    );
    drop(watcher);
    let out = work.zru(&["flush", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap_or("")).expect("json");
    assert_eq!(report["action"], "rejected", "{report}");
    assert_eq!(report["dead_lettered"], true, "{report}");
    let reason = report["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("the event is for the raw root") && reason.contains("data/raw"),
        "{reason}"
    );
    assert!(!stdout(&out).contains("skipped(gone)"));
    assert!(work.zru(&["queue", "replay"]).status.success());
    let out = work.zru(&["flush", "--raw-root", "raw"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        lines_with_action(&out, "appended").len(),
        1,
        "{}",
        stdout(&out)
    );
}

/// Runs `zru ingest` of `days` (their raw files) with `env` set.
fn ingest_with_env(work: &Work, env: &[(&str, &str)], days: &[u32]) -> std::process::Output {
    let files: Vec<String> = days.iter().map(|&d| raw_arg(work, d)).collect();
    let mut args = vec!["ingest"];
    args.extend(files.iter().map(String::as_str));
    let mut command = work.command(&args);
    command.envs(env.iter().copied());
    command.output().expect("running zru")
}

#[test]
fn a_read_only_store_rejects_the_batch_transiently_and_writes_nothing() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 2, 0);
    let out = ingest_with_env(&work, &[], &[1]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = common::dump(&work.store());
    let out = ingest_with_env(&work, &[(zru::fault::READ_ONLY_ENV, "1")], &[2]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rejected = lines_with_action(&out, "rejected");
    assert_eq!(rejected.len(), 1, "{}", stdout(&out));
    assert!(
        rejected[0].contains("Read-only file system"),
        "{rejected:?}"
    );
    assert_eq!(common::dump(&work.store()), before);
    // Transient: still queued (not a dead letter), applied once the store is writable.
    let queue = queue_json(&work);
    assert_eq!(queue["dead_letters"].as_array().map(Vec::len), Some(0));
    std::thread::sleep(Duration::from_millis(1_100));
    let flush = work.zru(&["flush"]);
    assert!(flush.status.success(), "{}", stdout(&flush));
    assert_eq!(
        lines_with_action(&flush, "appended").len(),
        1,
        "{}",
        stdout(&flush)
    );
}

#[test]
fn a_disk_that_fills_half_way_through_a_batch_leaves_a_store_a_retry_completes() {
    let reference = Work::new(true);
    reference.samples("data/raw/sst", 3, 0);
    let out = ingest_with_env(&reference, &[], &[1, 2, 3]);
    assert!(out.status.success(), "{}", stderr(&out));

    let work = Work::new(true);
    work.samples("data/raw/sst", 3, 0);
    let out = ingest_with_env(&work, &[], &[1]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The third store write of the batch (after the intent record and a chunk) and
    // every later one fail as on a full disk.
    let out = ingest_with_env(&work, &[(zru::fault::IO_ERROR_AFTER_ENV, "3")], &[2, 3]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rejected = lines_with_action(&out, "rejected");
    assert_eq!(rejected.len(), 2, "{}", stdout(&out));
    assert!(
        rejected
            .iter()
            .all(|l| l.contains("No space left on device")),
        "{rejected:?}"
    );
    std::thread::sleep(Duration::from_millis(1_100));
    let flush = work.zru(&["flush"]);
    assert!(flush.status.success(), "{}", stdout(&flush));
    assert_eq!(
        common::dump(&work.store()),
        common::dump(&reference.store())
    );
}

#[test]
fn a_file_that_aborts_the_process_is_dead_lettered_alone_and_its_batch_lands() {
    let work = Work::new(true);
    work.samples("data/raw/sst", 4, 0);
    let poison = sample_key(2);
    let abort = [(zru::fault::ABORT_ON_KEY_ENV, poison.as_str())];
    // The batch of days 1-4 stops the process at day 2.
    let out = ingest_with_env(&work, &abort, &[1, 2, 3, 4]);
    assert!(out.status.code().is_none(), "{}", stdout(&out));
    // Its events are retried one at a time: day 1 lands, day 2 stops the process again
    // (what an aborted process printed is lost: the store says what landed).
    let mut flush = work.command(&["flush"]);
    flush.envs(abort);
    let out = flush.output().expect("running zru");
    assert!(out.status.code().is_none(), "{}", stdout(&out));
    assert_eq!(store_sources(&work), vec![sample_key(1)]);
    // Day 2 stopped it alone: dead-lettered with that reason; days 3 and 4 land.
    let out = flush.output().expect("running zru");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        lines_with_action(&out, "appended").len(),
        2,
        "{}",
        stdout(&out)
    );
    let queue = queue_json(&work);
    let letters = queue["dead_letters"].as_array().expect("dead letters");
    assert_eq!(letters.len(), 1, "{queue}");
    assert_eq!(letters[0]["event"]["key"], poison.as_str());
    let reason = letters[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("stopped") && reason.contains("alone"),
        "{reason}"
    );
    let landed: Vec<String> = [1, 3, 4].into_iter().map(sample_key).collect();
    assert_eq!(store_sources(&work), landed);
}

/// The source keys of the store's slots, in slot order (blank slots left out).
fn store_sources(work: &Work) -> Vec<String> {
    let store = zru::store::ZarrStore::open(&work.store()).expect("open store");
    let len = store.arrays["zru_source_key"].shape().expect("shape")[0];
    match store.read("zru_source_key", &[0], &[len]) {
        Ok(zru::values::Values::Text(keys)) => keys.into_iter().filter(|k| !k.is_empty()).collect(),
        other => panic!("provenance column: {other:?}"),
    }
}
