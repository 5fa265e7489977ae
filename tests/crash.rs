//! Crash safety: a `zru flush` killed with SIGKILL after its k-th durable write (store
//! key, ledger, acknowledgement), for every k, then restarted, ends with the same
//! store, ledger and queue as an uninterrupted run.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::{copy_tree, dump, sample_key, stderr, store_files, Work};

/// Phase A applied cleanly (days 1-3); phase B queued: day 2 revised, days 4 and 5
/// appended, day 3 removed, day 1 ingested again; batches of two.
fn prepared(work: Work) -> Work {
    work.samples("data/raw/sst", 3, 0);
    let ingest = work.zru(&["ingest", "data/raw/sst/"]);
    assert!(!ingest.status.success(), "a directory is not a file");
    ingest_days(&work, &[], &[1, 2, 3]);

    work.samples("rev1", 5, 1);
    work.samples("rev0", 5, 0);
    for (day, dir) in [(2, "rev1"), (4, "rev0"), (5, "rev0")] {
        let from = work.path().join(dir).join(common::sample_name(day));
        std::fs::copy(from, work.raw(day)).expect("copy sample");
    }
    std::fs::remove_file(work.raw(3)).expect("remove day 3");
    for args in [
        vec![
            "ingest",
            "--no-flush",
            "data/raw/sst/20240102120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc",
        ],
        vec![
            "ingest",
            "--no-flush",
            "data/raw/sst/20240104120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc",
            "data/raw/sst/20240105120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc",
        ],
        vec!["remove", "--no-flush", &sample_key_static(3)],
        vec![
            "ingest",
            "--no-flush",
            "data/raw/sst/20240101120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc",
        ],
    ] {
        let out = work.zru(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    work
}

/// `zru ingest OPTIONS FILE...` of these days' raw files, which must succeed.
fn ingest_days(work: &Work, options: &[&str], days: &[u32]) {
    let files: Vec<String> = days
        .iter()
        .map(|&d| work.raw(d).display().to_string())
        .collect();
    let mut args = vec!["ingest"];
    args.extend(options);
    args.extend(files.iter().map(String::as_str));
    let out = work.zru(&args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

fn sample_key_static(day: u32) -> &'static str {
    Box::leak(sample_key(day).into_boxed_str())
}

const FLUSH: &[&str] = &["flush", "--batch-size", "2"];

/// Ledger entries without what legitimately differs after a replay (the action:
/// `appended` becomes `overwrote` when a crashed batch is applied again).
fn ledger_orders(work: &Path) -> Vec<(String, String)> {
    ledger_orders_at(&work.join("data/zarr/sst.zarr.zru-ledger.json"))
}

/// [`ledger_orders`] of the ledger file at `path`.
fn ledger_orders_at(path: &Path) -> Vec<(String, String)> {
    let ledger: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("ledger")).expect("ledger json");
    ledger["entries"]
        .as_object()
        .expect("entries")
        .iter()
        .map(|(k, v)| (k.clone(), format!("{} {}", v["kind"], v["order"])))
        .collect()
}

fn queue_is_empty(work: &Work) {
    let out = work.zru(&["queue", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("queue json");
    for group in doc["groups"].as_array().expect("groups") {
        assert_eq!(group["ready"], 0, "{doc}");
        assert_eq!(group["in_flight"], 0, "{doc}");
        assert_eq!(group["dead"], 0, "{doc}");
    }
}

/// Names of the dump entries that differ.
fn differing(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .cloned()
        .collect()
}

/// A copy of `base` (a work directory with events queued). Queued local events name
/// the raw root they were made for, and a flush refuses events of another raw root:
/// the copy's queue is pointed at the copy's own raw root, as if its events had been
/// enqueued there.
fn copy_of(base: &Work) -> Work {
    let dir = tempfile::tempdir().expect("tmp");
    copy_tree(base.path(), dir.path());
    let canonical = |p: &Path| {
        std::fs::canonicalize(p)
            .expect("canonical")
            .display()
            .to_string()
    };
    let queue = rusqlite::Connection::open(dir.path().join("data/state/queue.sqlite"))
        .expect("open the copied queue");
    queue
        .execute(
            "UPDATE messages SET body = replace(body, ?1, ?2)",
            [
                format!("\"raw_root\":\"{}", canonical(base.path())),
                format!("\"raw_root\":\"{}", canonical(dir.path())),
            ],
        )
        .expect("relocate the queued events");
    Work { dir }
}

/// A copy of `base` after a `zru flush` killed right after its k-th durable write, or
/// `None` if that flush made fewer writes and finished.
fn flush_killed_at(base: &Work, k: u32) -> Option<Work> {
    let work = copy_of(base);
    let status = work
        .command(FLUSH)
        .env(zru::fault::KILL_AT_ENV, k.to_string())
        .output()
        .expect("run flush");
    if status.status.success() {
        return None;
    }
    assert_eq!(
        status.status.signal(),
        Some(9),
        "k={k}: {}",
        stderr(&status)
    );
    Some(work)
}

#[test]
fn a_flush_killed_after_any_write_and_restarted_matches_a_clean_run() {
    let base = prepared(Work::new(true));
    let clean = copy_of(&base);
    let out = clean.zru(FLUSH);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = dump(&clean.store());
    let expected_files = store_files(&clean.store());
    let expected_ledger = ledger_orders(clean.path());
    let sources = &expected["zru_source_key/values"];
    assert!(
        sources.contains(&sample_key(5)) && sources.contains(r#""""#),
        "{sources}"
    );

    let mut killed = 0;
    for k in 1..500 {
        let Some(work) = flush_killed_at(&base, k) else {
            break;
        };
        killed += 1;
        let restart = work.zru(FLUSH);
        assert!(restart.status.success(), "k={k}: {}", stderr(&restart));
        assert_eq!(
            differing(&dump(&work.store()), &expected),
            Vec::<String>::new(),
            "k={k}"
        );
        assert_eq!(store_files(&work.store()), expected_files, "k={k}");
        assert_eq!(ledger_orders(work.path()), expected_ledger, "k={k}");
        queue_is_empty(&work);
    }
    assert!(killed >= 20, "only {killed} crash points were exercised");
}

/// Days 1-3 applied cleanly; days 4 and 5 queued: one batch that grows the store
/// (three slots to five), in a store of Zarr format `zarr_format`.
fn growing_batch_queued(zarr_format: u8) -> Work {
    let work = Work::with_format(true, zarr_format);
    work.samples("data/raw/sst", 3, 0);
    ingest_days(&work, &[], &[1, 2, 3]);
    work.samples("later", 6, 0);
    for day in [4, 5] {
        let from = work.path().join("later").join(common::sample_name(day));
        std::fs::copy(from, work.raw(day)).expect("copy sample");
    }
    ingest_days(&work, &["--no-flush"], &[4, 5]);
    work
}

/// Days 4 and 5 are withdrawn (deleted from the raw bucket) before they were
/// acknowledged, and day 6 arrives: slots 3 and 4 are gaps, which read as blank.
fn withdraw_then_append_day_6(work: &Work) {
    for day in [4, 5] {
        std::fs::remove_file(work.raw(day)).expect("remove raw file");
    }
    let out = work.zru(&["remove", "--no-flush", &sample_key(4), &sample_key(5)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let from = work.path().join("later").join(common::sample_name(6));
    std::fs::copy(from, work.raw(6)).expect("copy sample");
    ingest_days(work, &["--batch-size", "2"], &[6]);
}

/// A flush killed while it grows the store leaves chunks beyond the committed shape;
/// when the events it was applying are withdrawn and a later batch leaves gaps over
/// those slots, the gaps must read blank (as in a store that never saw the crash),
/// not the dead batch's data. Zarr V3 and V2 key layouts.
#[test]
fn chunks_of_a_killed_growing_batch_never_show_through_later_gaps() {
    for zarr_format in [3, 2] {
        let base = growing_batch_queued(zarr_format);
        let clean = copy_of(&base);
        withdraw_then_append_day_6(&clean);
        let expected = dump(&clean.store());
        let expected_files = store_files(&clean.store());
        assert_eq!(
            expected["zru_source_key/values"],
            format!(
                "Text([{:?}, {:?}, {:?}, \"\", \"\", {:?}])",
                sample_key(1),
                sample_key(2),
                sample_key(3),
                sample_key(6)
            )
        );

        let mut killed = 0;
        for k in 1..200 {
            let Some(work) = flush_killed_at(&base, k) else {
                break;
            };
            killed += 1;
            withdraw_then_append_day_6(&work);
            assert_eq!(
                differing(&dump(&work.store()), &expected),
                Vec::<String>::new(),
                "v{zarr_format} k={k}"
            );
            assert_eq!(
                store_files(&work.store()),
                expected_files,
                "v{zarr_format} k={k}"
            );
            queue_is_empty(&work);
        }
        assert!(killed >= 5, "v{zarr_format}: only {killed} crash points");
    }
}

/// The key of a revision of day 2 stored under a new key (a later file version).
const REVISED_DAY_2: &str = "sst/20240102120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv02.0.nc";

/// Days 1-3 applied cleanly (day 2 from its first key); queued: a revision of day 2
/// under a new key, which overwrites day 2's slot (values and provenance).
fn revision_under_a_new_key_queued() -> Work {
    let work = Work::new(true);
    work.samples("data/raw/sst", 3, 0);
    ingest_days(&work, &[], &[1, 2, 3]);
    work.samples("rev1", 2, 1);
    let from = work.path().join("rev1").join(common::sample_name(2));
    std::fs::copy(from, work.path().join("data/raw").join(REVISED_DAY_2)).expect("copy");
    let out = work.zru(&["ingest", "--no-flush", &format!("data/raw/{REVISED_DAY_2}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    work
}

/// The revision is withdrawn (deleted, its removal queued) and the queue flushed.
fn withdraw_revision(work: &Work) {
    std::fs::remove_file(work.path().join("data/raw").join(REVISED_DAY_2)).expect("remove");
    let out = work.zru(&["remove", "--no-flush", REVISED_DAY_2]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = work.zru(FLUSH);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Tracker issue 12, defect #9: a flush killed between the chunk writes of a batch that
/// overwrites a slot under a new key, then the new key's removal. The store must be
/// what the surviving events make of it: day 2's first file in its slot, named by its
/// provenance, if the killed batch had not committed (its created event is then skipped
/// as gone, its removal finds no slot of its key); a blank slot if it had (the removal
/// blanks it). Never the withdrawn file's values under the first key's provenance.
#[test]
fn an_interrupted_overwrite_is_undone_before_the_new_key_is_withdrawn() {
    let base = revision_under_a_new_key_queued();
    let before = dump(&base.store());
    let before_files = store_files(&base.store());
    let committed = {
        let work = copy_of(&base);
        let out = work.zru(FLUSH);
        assert!(out.status.success(), "{}", stderr(&out));
        let revised = dump(&work.store());
        assert!(
            revised["zru_source_key/values"].contains(REVISED_DAY_2),
            "the revision overwrites day 2's slot: {}",
            revised["zru_source_key/values"]
        );
        assert_ne!(
            revised["sea_surface_temperature/values"],
            before["sea_surface_temperature/values"]
        );
        withdraw_revision(&work);
        dump(&work.store())
    };
    assert!(committed["zru_source_key/values"].contains(r#""""#));

    let (mut undone, mut kept) = (0, 0);
    for k in 1..200 {
        let Some(work) = flush_killed_at(&base, k) else {
            break;
        };
        let intent = work.store().join(".zru/intent.json").exists();
        let untouched = dump(&work.store()) == before;
        withdraw_revision(&work);
        let expected = if intent || untouched {
            undone += 1;
            &before
        } else {
            kept += 1;
            &committed
        };
        assert_eq!(
            differing(&dump(&work.store()), expected),
            Vec::<String>::new(),
            "k={k} (intent left: {intent})"
        );
        if expected == &before {
            assert_eq!(store_files(&work.store()), before_files, "k={k}");
        }
        queue_is_empty(&work);
    }
    assert!(undone >= 3 && kept >= 1, "{undone} undone, {kept} kept");
}

/// What a commit of an Icechunk repository records of each event, as it must be the same
/// after a crash and restart as in a clean run: key, kind, action and order.
#[cfg(feature = "icechunk")]
fn commit_events(history: &[zru::store::icechunk::Commit]) -> Vec<Vec<String>> {
    history
        .iter()
        .map(|c| {
            c.events
                .iter()
                .map(|e| format!("{} {} {} {}", e["key"], e["kind"], e["action"], e["order"]))
                .collect()
        })
        .collect()
}

/// Every event committed (key, kind, order), whatever commit holds it, sorted.
#[cfg(feature = "icechunk")]
fn events_committed(history: &[zru::store::icechunk::Commit]) -> Vec<String> {
    let mut events: Vec<String> = history
        .iter()
        .flat_map(|c| &c.events)
        .map(|e| format!("{} {} {}", e["key"], e["kind"], e["order"]))
        .collect();
    events.sort();
    events
}

/// The same flushes on an Icechunk repository, killed after each durable write (a write
/// to the batch's session, its commit, the ledger, the acknowledgement): the branch is
/// then always at a commit of the clean run, holding exactly that commit's state (a
/// killed batch leaves nothing), the cached ledger names a commit of the branch, and the
/// restart ends with the clean run's events (each committed once), store and ledger (the
/// ledger file naming the tip).
#[cfg(feature = "icechunk")]
#[test]
fn an_icechunk_flush_killed_after_any_write_leaves_whole_batches_and_restarts_cleanly() {
    let base = prepared(Work::icechunk());
    let before = common::icechunk_history(&base.repo()).len();
    let clean = copy_of(&base);
    let out = clean.zru(FLUSH);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = common::icechunk_history(&clean.repo());
    assert!(expected.len() >= before + 2, "{} commits", expected.len());
    let expected_events = commit_events(&expected);
    // The repository's first snapshot (before zru's first commit) holds no group.
    let states: Vec<_> = expected
        .iter()
        .map(|c| match c.parent {
            Some(_) => common::dump_snapshot(&clean.repo(), &c.id),
            None => BTreeMap::new(),
        })
        .collect();
    let ledger_path = |work: &Work| work.path().join("data/zarr/sst.icechunk.zru-ledger.json");
    let expected_ledger = ledger_orders_at(&ledger_path(&clean));
    assert!(!clean.repo().join("zarr.json").exists() && !clean.store().exists());

    let mut killed = 0;
    for k in 1..500 {
        let Some(work) = flush_killed_at(&base, k) else {
            break;
        };
        killed += 1;
        let history = common::icechunk_history(&work.repo());
        let tip = history.len() - 1;
        assert!(tip < expected.len(), "k={k}: {} commits", history.len());
        assert_eq!(
            commit_events(&history),
            expected_events[..history.len()],
            "k={k}"
        );
        assert_eq!(
            differing(
                &common::dump_snapshot(&work.repo(), &history[tip].id),
                &states[tip]
            ),
            Vec::<String>::new(),
            "k={k}"
        );
        let ledger: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ledger_path(&work)).expect("ledger"))
                .expect("ledger json");
        assert!(
            history.iter().any(|c| ledger["snapshot"] == c.id.as_str()),
            "k={k}: the ledger names {} off the branch",
            ledger["snapshot"]
        );

        let restart = work.zru(FLUSH);
        assert!(restart.status.success(), "k={k}: {}", stderr(&restart));
        // The restart may batch the redelivered events differently, but every event is
        // committed once, as in the clean run.
        let history = common::icechunk_history(&work.repo());
        assert_eq!(
            events_committed(&history),
            events_committed(&expected),
            "k={k}"
        );
        assert_eq!(
            differing(
                &common::dump_snapshot(&work.repo(), &history[history.len() - 1].id),
                &states[states.len() - 1]
            ),
            Vec::<String>::new(),
            "k={k}"
        );
        // The ledger beside the repository reflects the tip, even when the restart found
        // only duplicates of the commit the killed run made before saving its ledger.
        let ledger: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ledger_path(&work)).expect("ledger"))
                .expect("ledger json");
        assert_eq!(
            ledger["snapshot"],
            history[history.len() - 1].id.as_str(),
            "k={k}"
        );
        assert_eq!(
            ledger_orders_at(&ledger_path(&work)),
            expected_ledger,
            "k={k}"
        );
        queue_is_empty(&work);
    }
    assert!(killed >= 10, "only {killed} crash points were exercised");
}
