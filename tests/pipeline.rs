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
    assert!(note.contains("dead letter after 2 receives"), "{reason}");

    let queue = work.zru(&["queue", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&queue.stdout).expect("json");
    let letters = doc["dead_letters"].as_array().expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["receive_count"], 2);
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
        let mut child = work
            .command(&["watch", "data/raw"])
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
