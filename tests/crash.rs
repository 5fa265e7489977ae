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
fn prepared() -> Work {
    let work = Work::new(true);
    work.samples("data/raw/sst", 3, 0);
    let ingest = work.zru(&["ingest", "data/raw/sst/"]);
    assert!(!ingest.status.success(), "a directory is not a file");
    let days: Vec<String> = (1..=3).map(|d| work.raw(d).display().to_string()).collect();
    let mut args = vec!["ingest"];
    args.extend(days.iter().map(String::as_str));
    let out = work.zru(&args);
    assert!(out.status.success(), "{}", stderr(&out));

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

fn sample_key_static(day: u32) -> &'static str {
    Box::leak(sample_key(day).into_boxed_str())
}

const FLUSH: &[&str] = &["flush", "--batch-size", "2"];

/// Ledger entries without what legitimately differs after a replay (the action:
/// `appended` becomes `overwrote` when a crashed batch is applied again).
fn ledger_orders(work: &Path) -> Vec<(String, String)> {
    let path = work.join("data/zarr/sst.zarr.zru-ledger.json");
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

#[test]
fn a_flush_killed_after_any_write_and_restarted_matches_a_clean_run() {
    let base = prepared();
    let clean = tempfile::tempdir().expect("tmp");
    copy_tree(base.path(), clean.path());
    let clean = Work { dir: clean };
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
        let dir = tempfile::tempdir().expect("tmp");
        copy_tree(base.path(), dir.path());
        let work = Work { dir };
        let status = work
            .command(FLUSH)
            .env(zru::fault::KILL_AT_ENV, k.to_string())
            .output()
            .expect("run flush");
        if status.status.success() {
            break;
        }
        assert_eq!(
            status.status.signal(),
            Some(9),
            "k={k}: {}",
            stderr(&status)
        );
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
