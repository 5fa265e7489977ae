//! The store backend conformance suite: what zru relies on from the place a store
//! lives (`StoreLocation`: a directory, or `s3://bucket/prefix` through object_store),
//! written once and run against each backend. Each function takes a [`Backend`] (a way
//! to name a fresh, empty location) and panics, naming the backend, where the contract
//! is broken:
//!
//! - keys: read, write, overwrite (whole values), erase (also of a missing key),
//!   listings (all, by prefix, one level), erase by prefix; the sidecar directory
//!   `.zru/` does not outlive its last key;
//! - siblings (ledger, attempt record): beside the store, not in it; read, replaced whole;
//!   on S3 a conditional write (`If-Match` on the ETag read, `If-None-Match: *` to
//!   create) refuses a stale writer and keeps the newer writer's bytes;
//! - the root group's metadata (`zarr.json`; `.zattrs`, `.zgroup`, `.zmetadata`) on S3
//!   is written only if it is what the committing batch read when it opened the store;
//! - a store created by a transaction opens again with the same arrays, attributes and
//!   values (Zarr 3 and 2), with no intent record or before-image left;
//! - a batch interrupted after writing chunks (its intent record and before-images in
//!   place) is undone by the recovery pass: every key of the store as before the batch,
//!   byte for byte; a store created by an interrupted batch is erased;
//! - keys with any character a Zarr key may hold (netCDF variable names become array
//!   names) are stored under that very name (the object name on S3, the file path
//!   locally: what zarr-python and xarray look up), listed as written and read back; an
//!   array so named opens again, with its values and its before-images recovered; a name
//!   the backend cannot hold is refused before anything is written.

use std::collections::BTreeMap;

use serde_json::{json, Map};
use zarrs::storage::{
    Bytes, ListableStorageTraits, ReadableStorageTraits, StoreKey, StorePrefix,
    WritableStorageTraits,
};
use zru::store::location::Sibling;
use zru::store::{
    ArrayDoc, Compressor, NewArray, StoreError, StoreLocation, Transaction, ZarrFormat, ZarrStore,
    INTENT_KEY,
};
use zru::values::{ElementType, Values};

/// A store backend under test.
pub struct Backend<'a> {
    pub name: &'static str,
    /// A fresh, empty location, distinct for each `name`.
    pub location: &'a dyn Fn(&str) -> StoreLocation,
    /// The names the backend holds a location's keys under, relative to the location,
    /// sorted: object names under the prefix (S3, listed with another client), file
    /// paths under the directory (local).
    pub object_names: &'a dyn Fn(&StoreLocation) -> Vec<String>,
    /// Array names with an ASCII control character cannot be stored (S3: object_store
    /// cannot put one in an object name); they are refused before anything is written.
    pub refuses_control_characters: bool,
}

type Case = (&'static str, fn(&Backend));

/// Every function of the suite, in turn.
pub fn run_all(backend: &Backend) {
    let suite: [Case; 10] = [
        (
            "keys_with_any_character_round_trip",
            keys_with_any_character_round_trip,
        ),
        (
            "arrays_with_any_name_open_again",
            arrays_with_any_name_open_again,
        ),
        (
            "names_the_backend_cannot_hold_are_refused",
            names_the_backend_cannot_hold_are_refused,
        ),
        (
            "keys_write_read_overwrite_erase_list",
            keys_write_read_overwrite_erase_list,
        ),
        (
            "siblings_sit_beside_the_store",
            siblings_sit_beside_the_store,
        ),
        (
            "a_stale_sibling_write_is_fenced",
            a_stale_sibling_write_is_fenced,
        ),
        (
            "a_stale_root_metadata_write_is_fenced",
            a_stale_root_metadata_write_is_fenced,
        ),
        (
            "a_created_store_opens_again_with_the_same_arrays",
            a_created_store_opens_again_with_the_same_arrays,
        ),
        (
            "an_interrupted_batch_is_undone_by_recovery",
            an_interrupted_batch_is_undone_by_recovery,
        ),
        (
            "a_store_created_by_an_interrupted_batch_is_erased",
            a_store_created_by_an_interrupted_batch_is_erased,
        ),
    ];
    super::run_cases("store", backend.name, backend, &suite);
}

fn key(s: &str) -> StoreKey {
    StoreKey::new(s).unwrap()
}

fn names(keys: &[StoreKey]) -> Vec<&str> {
    keys.iter().map(|k| k.as_str()).collect()
}

/// What [`snapshot`] holds for a listed key that does not read.
pub const UNREADABLE: &[u8] = b"<listed, but no value under that key>";

/// Every key of the store and its bytes.
pub fn snapshot(location: &StoreLocation) -> BTreeMap<String, Vec<u8>> {
    let storage = location.storage().unwrap();
    storage
        .list()
        .unwrap()
        .into_iter()
        .map(|k| {
            // A listed key that does not read is kept as such (see
            // `keys_with_any_character_round_trip`).
            let bytes = storage.get(&k).unwrap().map(|b| b.to_vec());
            let bytes = bytes.unwrap_or_else(|| UNREADABLE.to_vec());
            (k.as_str().to_string(), bytes)
        })
        .collect()
}

pub fn keys_write_read_overwrite_erase_list(b: &Backend) {
    let location = (b.location)("keys");
    let s = location.storage().unwrap();
    assert_eq!(s.get(&key("a/c/0")).unwrap(), None, "{}", b.name);
    assert_eq!(s.size_key(&key("a/c/0")).unwrap(), None, "{}", b.name);
    assert!(s.list().unwrap().is_empty(), "{}", b.name);
    for (k, v) in [
        ("zarr.json", "{}"),
        ("a/zarr.json", "{\"a\": 1}"),
        ("a/c/0", "zero"),
        ("a/c/1", "one"),
        ("b/c/0", "bee"),
    ] {
        s.set(&key(k), Bytes::from(v.as_bytes().to_vec())).unwrap();
    }
    assert_eq!(
        s.get(&key("a/c/1")).unwrap().as_deref(),
        Some(&b"one"[..]),
        "{}",
        b.name
    );
    assert_eq!(s.size_key(&key("b/c/0")).unwrap(), Some(3), "{}", b.name);
    // An overwrite replaces the whole value (a shorter one leaves no tail).
    s.set(&key("a/c/0"), Bytes::from_static(b"0")).unwrap();
    assert_eq!(
        s.get(&key("a/c/0")).unwrap().as_deref(),
        Some(&b"0"[..]),
        "{}",
        b.name
    );
    assert_eq!(
        names(&s.list().unwrap()),
        ["a/c/0", "a/c/1", "a/zarr.json", "b/c/0", "zarr.json"],
        "{}",
        b.name
    );
    let prefix = |p: &str| StorePrefix::new(p).unwrap();
    assert_eq!(
        names(&s.list_prefix(&prefix("a/")).unwrap()),
        ["a/c/0", "a/c/1", "a/zarr.json"],
        "{}",
        b.name
    );
    let root = s.list_dir(&StorePrefix::root()).unwrap();
    assert_eq!(names(root.keys()), ["zarr.json"], "{}", b.name);
    // In no particular order (a directory's order, locally).
    let mut dirs: Vec<&str> = root.prefixes().iter().map(|p| p.as_str()).collect();
    dirs.sort();
    assert_eq!(dirs, ["a/", "b/"], "{}", b.name);
    s.erase(&key("a/c/1")).unwrap();
    assert_eq!(s.get(&key("a/c/1")).unwrap(), None, "{}", b.name);
    // Recovery erases keys a dead batch may not have written: no error.
    s.erase(&key("a/c/1")).unwrap();
    s.erase(&key("never/written")).unwrap();
    s.erase_prefix(&prefix("a/")).unwrap();
    assert_eq!(
        names(&s.list().unwrap()),
        ["b/c/0", "zarr.json"],
        "{}",
        b.name
    );
    // The sidecar directory holds the intent record during a batch only; erasing its
    // last key leaves no `.zru/` for readers that list the group to trip on.
    s.set(&key(INTENT_KEY), Bytes::from_static(b"{}")).unwrap();
    assert!(
        s.list_dir(&StorePrefix::root())
            .unwrap()
            .prefixes()
            .iter()
            .any(|p| p.as_str() == ".zru/"),
        "{}",
        b.name
    );
    s.erase(&key(INTENT_KEY)).unwrap();
    let root = s.list_dir(&StorePrefix::root()).unwrap();
    let dirs: Vec<&str> = root.prefixes().iter().map(|p| p.as_str()).collect();
    assert_eq!(dirs, ["b/"], "{}", b.name);
}

pub fn siblings_sit_beside_the_store(b: &Backend) {
    let location = (b.location)("siblings");
    let storage = location.storage().unwrap();
    storage
        .set(&key("zarr.json"), Bytes::from_static(b"{}"))
        .unwrap();
    let ledger = location.sibling(".zru-ledger.json");
    let attempt = location.sibling(".zru-attempt.json");
    assert_ne!(ledger, attempt, "{}", b.name);
    assert_eq!(ledger.read().unwrap(), None, "{}", b.name);
    ledger.write(b"{\"version\": 1, \"long\": true}").unwrap();
    ledger.write(b"{\"version\": 2}").unwrap();
    assert_eq!(
        ledger.read().unwrap().as_deref(),
        Some(&b"{\"version\": 2}"[..]),
        "{}: replaced whole",
        b.name
    );
    assert_eq!(attempt.read().unwrap(), None, "{}", b.name);
    // Beside the store: not one of its keys.
    assert_eq!(names(&storage.list().unwrap()), ["zarr.json"], "{}", b.name);
    let named = ledger.to_string();
    assert!(
        named.ends_with(".zru-ledger.json") && named.starts_with(&location.to_string()),
        "{}: {named} is not beside {location}",
        b.name
    );
    let shown = match &ledger {
        Sibling::Local(path) => path.display().to_string(),
        Sibling::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
    };
    assert_eq!(shown, named, "{}", b.name);
}

/// S3: a writer that read a sibling (or its absence) cannot overwrite what another
/// writer saved since (S3 conditional writes: `If-None-Match: *`, `If-Match`); the
/// writer holding the newest fence goes on. Local: no fence (the store lock is the
/// guard), the write goes through.
pub fn a_stale_sibling_write_is_fenced(b: &Backend) {
    use zru::store::fenced::FencedError;
    let location = (b.location)("fenced");
    let ledger = location.sibling(".zru-ledger.json");
    let (bytes, absent) = ledger.read_fenced().unwrap();
    assert_eq!(bytes, None, "{}", b.name);
    let Some(absent) = absent else {
        assert!(matches!(ledger, Sibling::Local(_)), "{}: no fence", b.name);
        assert_eq!(ledger.write_fenced(b"one", None).unwrap(), None);
        assert_eq!(ledger.read().unwrap().as_deref(), Some(&b"one"[..]));
        return;
    };
    // Two writers saw no ledger: the first creates it, the second may not.
    let first = ledger.write_fenced(b"one", Some(&absent)).unwrap();
    let error = ledger.write_fenced(b"stale", Some(&absent)).unwrap_err();
    assert!(
        matches!(error, FencedError::Conflict { .. }),
        "{}: {error}",
        b.name
    );
    assert!(error.to_string().contains(".zru-ledger.json"), "{error}");
    // Two writers read version one: the first replaces it, the second may not.
    let (bytes, read) = ledger.read_fenced().unwrap();
    assert_eq!(bytes.as_deref(), Some(&b"one"[..]), "{}", b.name);
    assert_eq!(read, first, "{}: the fence is the ETag read back", b.name);
    let second = ledger.write_fenced(b"two", read.as_ref()).unwrap();
    let error = ledger.write_fenced(b"stale", read.as_ref()).unwrap_err();
    assert!(
        matches!(error, FencedError::Conflict { .. }),
        "{}: {error}",
        b.name
    );
    assert_eq!(
        ledger.read().unwrap().as_deref(),
        Some(&b"two"[..]),
        "{}",
        b.name
    );
    ledger.write_fenced(b"three", second.as_ref()).unwrap();
    assert_eq!(
        ledger.read().unwrap().as_deref(),
        Some(&b"three"[..]),
        "{}",
        b.name
    );
}

/// Grows `store` to `len` slots (writing the new ones) with the root attribute `title`,
/// in one transaction.
fn commit_growth(
    store: &ZarrStore,
    format: ZarrFormat,
    from: u64,
    len: u64,
    title: &str,
) -> Result<(), StoreError> {
    let mut tx = store.begin();
    grow_and_write(&mut tx, format, from, len);
    tx.root_attrs.insert("title".into(), json!(title));
    tx.commit().map(|_| ())
}

/// S3: a batch that opened the store before another writer committed writes nothing
/// of its own, and never the root group's metadata that writer saved
/// (`If-None-Match: *` when it found no store, `If-Match` on the ETag it read
/// otherwise): its commit fails with `StoreError::Fenced` naming the object, and the
/// store stays as the newer writer left it. Opened again, the store takes the stale
/// writer's commit. Local: no fence (the store lock is the guard), every commit goes
/// through.
pub fn a_stale_root_metadata_write_is_fenced(b: &Backend) {
    for format in [ZarrFormat::V3, ZarrFormat::V2] {
        let location = (b.location)(&format!("root-fenced-v{}", format.number()));
        let what = format!("{} Zarr {}", b.name, format.number());
        let consolidated = match format {
            ZarrFormat::V3 => "zarr.json",
            ZarrFormat::V2 => ".zmetadata",
        };
        // Two writers find no store: the first creates it, the second may not.
        let first = ZarrStore::open_or_new_at(&location, format).unwrap();
        let second = ZarrStore::open_or_new_at(&location, format).unwrap();
        commit_growth(&first, format, 0, 2, "first").unwrap();
        let created = snapshot(&location);
        let result = commit_growth(&second, format, 0, 2, "second");
        if !matches!(location, StoreLocation::S3 { .. }) {
            result.unwrap();
            commit_growth(&ZarrStore::open_at(&location).unwrap(), format, 2, 3, "x").unwrap();
            continue;
        }
        assert_refused(&what, result, consolidated);
        assert_eq!(
            snapshot(&location),
            created,
            "{what}: the stale writer wrote"
        );
        // Two writers open the store; the newer grows it and changes its title, the
        // stale one grows it less and keeps the title.
        let newer = ZarrStore::open_at(&location).unwrap();
        let stale = ZarrStore::open_at(&location).unwrap();
        commit_growth(&newer, format, 2, 4, "newer").unwrap();
        let grown = snapshot(&location);
        assert_refused(
            &what,
            commit_growth(&stale, format, 2, 3, "first"),
            consolidated,
        );
        assert_eq!(snapshot(&location), grown, "{what}: the stale writer wrote");
        assert!(
            ZarrStore::recover_at(&location).unwrap().is_none(),
            "{what}"
        );
        // Opened again, the writer commits on the newer state.
        let again = ZarrStore::open_at(&location).unwrap();
        commit_growth(&again, format, 4, 5, "again").unwrap();
        let reopened = ZarrStore::open_at(&location).unwrap();
        assert_eq!(reopened.arrays, as_map(docs(format, 5)), "{what}");
        assert_eq!(reopened.root_attrs.get("title"), Some(&json!("again")));
        assert_eq!(
            reopened.read("v", &[0, 0], &[5, 3]).unwrap(),
            values(0, 5, 3),
            "{what}"
        );
        if format == ZarrFormat::V2 {
            a_changed_zattrs_is_not_overwritten(&what, &location);
        }
    }
}

/// Zarr 2: another writer replaced `.zattrs` alone (the batch's check before writing
/// looks at `.zmetadata` only): the batch's conditional write of `.zattrs` is refused
/// and the other writer's bytes stay.
fn a_changed_zattrs_is_not_overwritten(what: &str, location: &StoreLocation) {
    let stale = ZarrStore::open_at(location).unwrap();
    let theirs = Bytes::from_static(br#"{"title": "theirs"}"#);
    let storage = location.storage().unwrap();
    storage.set(&key(".zattrs"), theirs.clone()).unwrap();
    let result = commit_growth(&stale, ZarrFormat::V2, 5, 6, "stale");
    assert_refused(what, result, ".zattrs");
    assert_eq!(
        storage.get(&key(".zattrs")).unwrap(),
        Some(theirs),
        "{what}"
    );
}

fn assert_refused(what: &str, result: Result<(), StoreError>, object: &str) {
    use zru::store::fenced::FencedError;
    let error = result.expect_err(&format!("{what}: the stale commit went through"));
    assert!(
        matches!(
            error,
            StoreError::Fenced {
                source: FencedError::Conflict { .. },
                ..
            }
        ),
        "{what}: {error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("/{object}:")) && message.contains("another writer"),
        "{what}: {message}"
    );
}

fn as_map(docs: Vec<ArrayDoc>) -> BTreeMap<String, ArrayDoc> {
    docs.into_iter().map(|d| (d.name.clone(), d)).collect()
}

/// `v` (`time` x `x`, chunks 2 x 2) and `time`, `len` slots long.
fn docs(format: ZarrFormat, len: u64) -> Vec<ArrayDoc> {
    let new = |name: &str, dims: &[&str], shape: Vec<u64>| {
        let mut attributes = Map::new();
        attributes.insert("units".into(), json!(format!("{name} units")));
        ArrayDoc::create(
            format,
            NewArray {
                name: name.into(),
                dims: dims.iter().map(|d| d.to_string()).collect(),
                chunks: vec![2; shape.len()],
                shape,
                element: ElementType::F64,
                fill_value: None,
                attributes,
                compressor: Compressor::None,
            },
        )
    };
    vec![
        new("v", &["time", "x"], vec![len, 3]),
        new("time", &["time"], vec![len]),
    ]
}

fn values(start: u64, len: u64, width: u64) -> Values {
    Values::F64(
        (0..len * width)
            .map(|i| (start * width + i) as f64 + 0.5)
            .collect(),
    )
}

/// Sets `v` and `time` to `len` slots and writes slots `from..len` of both.
fn grow_and_write(tx: &mut Transaction<'_>, format: ZarrFormat, from: u64, len: u64) {
    for doc in docs(format, len) {
        tx.put_array(doc);
    }
    let n = len - from;
    tx.write("v", &[from, 0], &[n, 3], values(from, n, 3))
        .unwrap();
    tx.write("time", &[from], &[n], values(from, n, 1)).unwrap();
}

/// A committed store of `len` slots, every one written.
fn committed_store(location: &StoreLocation, format: ZarrFormat, len: u64) -> ZarrStore {
    let store = ZarrStore::open_or_new_at(location, format).unwrap();
    assert!(!store.exists);
    let mut tx = store.begin();
    grow_and_write(&mut tx, format, 0, len);
    tx.root_attrs.insert("title".into(), json!("conformance"));
    tx.commit().unwrap();
    ZarrStore::open_at(location).unwrap()
}

pub fn a_created_store_opens_again_with_the_same_arrays(b: &Backend) {
    for format in [ZarrFormat::V3, ZarrFormat::V2] {
        let location = (b.location)(&format!("created-v{}", format.number()));
        let what = format!("{} Zarr {}", b.name, format.number());
        assert!(!ZarrStore::exists_at(&location).unwrap(), "{what}");
        let store = committed_store(&location, format, 4);
        assert!(ZarrStore::exists_at(&location).unwrap(), "{what}");
        assert!(store.exists, "{what}");
        assert_eq!(store.format, format, "{what}");
        let expected: BTreeMap<String, ArrayDoc> = docs(format, 4)
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect();
        assert_eq!(store.arrays, expected, "{what}");
        assert_eq!(store.root_attrs.get("title"), Some(&json!("conformance")));
        assert_eq!(
            store.read("v", &[0, 0], &[4, 3]).unwrap(),
            values(0, 4, 3),
            "{what}"
        );
        assert_eq!(
            store.read("time", &[1], &[3]).unwrap(),
            values(1, 3, 1),
            "{what}"
        );
        // Committed: no intent record or before-image is left, nothing to recover.
        let left: Vec<String> = snapshot(&location)
            .into_keys()
            .filter(|k| k.starts_with(".zru"))
            .collect();
        assert!(left.is_empty(), "{what}: {left:?}");
        assert!(
            ZarrStore::recover_at(&location).unwrap().is_none(),
            "{what}"
        );
    }
}

pub fn an_interrupted_batch_is_undone_by_recovery(b: &Backend) {
    for format in [ZarrFormat::V3, ZarrFormat::V2] {
        let location = (b.location)(&format!("interrupted-v{}", format.number()));
        let what = format!("{} Zarr {}", b.name, format.number());
        let store = committed_store(&location, format, 4);
        let before = snapshot(&location);
        {
            // A batch that overwrites slot 1 (inside the committed store: a
            // before-image) and grows the store to 7 slots, stops after writing its
            // chunks: its metadata commit never happens.
            let mut tx = store.begin();
            grow_and_write(&mut tx, format, 4, 7);
            tx.write("v", &[1, 0], &[1, 3], Values::F64(vec![-1.0; 3]))
                .unwrap();
            tx.root_attrs.insert("title".into(), json!("never"));
            tx.flush_chunks().unwrap();
        }
        let during = snapshot(&location);
        assert!(
            during.contains_key(INTENT_KEY),
            "{what}: {:?}",
            during.keys()
        );
        assert!(
            during.keys().any(|k| k.starts_with(".zru/undo/")),
            "{what}: no before-image: {:?}",
            during.keys()
        );
        assert!(
            before.iter().any(|(k, v)| during.get(k) != Some(v)),
            "{what}: the batch changed no committed key"
        );
        let recovered = ZarrStore::recover_at(&location).unwrap().expect(&what);
        assert!(recovered.keys_restored >= 1, "{what}: {recovered:?}");
        assert!(recovered.chunks_erased >= 1, "{what}: {recovered:?}");
        let after = snapshot(&location);
        let changed: Vec<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        assert!(
            changed.is_empty(),
            "{what}: keys not as before: {changed:?}"
        );
        assert!(
            ZarrStore::recover_at(&location).unwrap().is_none(),
            "{what}"
        );
        let reopened = ZarrStore::open_at(&location).unwrap();
        assert_eq!(
            reopened.read("v", &[0, 0], &[4, 3]).unwrap(),
            values(0, 4, 3),
            "{what}"
        );
    }
}

pub fn a_store_created_by_an_interrupted_batch_is_erased(b: &Backend) {
    let location = (b.location)("created-interrupted");
    let store = ZarrStore::open_or_new_at(&location, ZarrFormat::V3).unwrap();
    {
        let mut tx = store.begin();
        grow_and_write(&mut tx, ZarrFormat::V3, 0, 4);
        tx.flush_chunks().unwrap();
    }
    assert!(snapshot(&location).contains_key(INTENT_KEY), "{}", b.name);
    ZarrStore::recover_at(&location).unwrap().expect(b.name);
    assert_eq!(snapshot(&location), BTreeMap::new(), "{}", b.name);
    assert!(!ZarrStore::exists_at(&location).unwrap(), "{}", b.name);
}

/// Characters a key may hold that object_store's `Path::from` percent-encodes in S3
/// object names (zarrs_object_store's mapping, which zru no longer uses), some that are
/// special in URLs or in request signing, and non-ASCII ones.
const RESERVED: &str = "%~[]#|^{}<>`\\\"*? +=&'\u{e9}\u{3c0}";

/// A key with any character a Zarr key may hold (netCDF variable names become array
/// names, and before-images have `%` in their names) is stored under that very name,
/// listed under it and reads back.
pub fn keys_with_any_character_round_trip(b: &Backend) {
    let location = (b.location)("any-character");
    let s = location.storage().unwrap();
    let name = format!("a{RESERVED}/c/0");
    s.set(&key(&name), Bytes::from_static(b"x")).unwrap();
    assert_eq!(
        s.get(&key(&name)).unwrap().as_deref(),
        Some(&b"x"[..]),
        "{}",
        b.name
    );
    assert_eq!(s.size_key(&key(&name)).unwrap(), Some(1), "{}", b.name);
    assert_eq!(names(&s.list().unwrap()), [name.as_str()], "{}", b.name);
    let dir = format!("a{RESERVED}/");
    assert_eq!(
        names(
            &s.list_prefix(&StorePrefix::new(dir.as_str()).unwrap())
                .unwrap()
        ),
        [name.as_str()],
        "{}",
        b.name
    );
    let root = s.list_dir(&StorePrefix::root()).unwrap();
    let prefixes: Vec<&str> = root.prefixes().iter().map(|p| p.as_str()).collect();
    assert_eq!(prefixes, [dir.as_str()], "{}", b.name);
    // Stored under that very name: what other readers look up.
    assert_eq!((b.object_names)(&location), [name.as_str()], "{}", b.name);
    s.erase(&key(&name)).unwrap();
    assert!(s.list().unwrap().is_empty(), "{}", b.name);
    assert!((b.object_names)(&location).is_empty(), "{}", b.name);
}

/// A store whose array name holds such characters opens again with that array and its
/// values, its objects are named by the raw keys, and an interrupted batch over it is
/// undone from its before-image.
pub fn arrays_with_any_name_open_again(b: &Backend) {
    let location = (b.location)("any-name");
    let store = ZarrStore::open_or_new_at(&location, ZarrFormat::V3).unwrap();
    let name = "sst~anomaly[K]";
    let named = |len: u64| {
        let mut doc = docs(ZarrFormat::V3, len).remove(1);
        doc.name = name.into();
        doc
    };
    assert_eq!(store.unstorable_array_name(name), None, "{}", b.name);
    let mut tx = store.begin();
    tx.put_array(named(2));
    tx.write(name, &[0], &[2], values(0, 2, 1)).unwrap();
    tx.commit().unwrap();
    let reopened = ZarrStore::open_at(&location).unwrap();
    let found: Vec<&String> = reopened.arrays.keys().collect();
    assert_eq!(found, [name], "{}", b.name);
    assert_eq!(
        reopened.read(name, &[0], &[2]).unwrap(),
        values(0, 2, 1),
        "{}",
        b.name
    );
    let chunk = format!("{name}/c/0");
    assert_eq!(
        (b.object_names)(&location),
        [
            chunk.clone(),
            format!("{name}/zarr.json"),
            "zarr.json".into()
        ],
        "{}: object names",
        b.name
    );

    // A batch that overwrites the chunk and grows the array, stopped after writing its
    // chunks: the before-image of the chunk is kept under its (escaped) name and put
    // back by the recovery pass.
    let before = snapshot(&location);
    {
        let mut tx = reopened.begin();
        tx.put_array(named(4));
        tx.write(name, &[0], &[4], Values::F64(vec![-1.0; 4]))
            .unwrap();
        tx.flush_chunks().unwrap();
    }
    let image = format!(
        ".zru/undo/{}",
        chunk.replace('%', "%25").replace('/', "%2F")
    );
    let during = snapshot(&location);
    assert!(
        during.contains_key(&image),
        "{}: no before-image {image}: {:?}",
        b.name,
        during.keys()
    );
    assert_eq!(during.get(&image), before.get(&chunk), "{}", b.name);
    assert!(
        (b.object_names)(&location).contains(&image),
        "{}: {image} not stored under its name",
        b.name
    );
    let recovered = ZarrStore::recover_at(&location).unwrap().expect(b.name);
    assert!(recovered.keys_restored >= 1, "{}: {recovered:?}", b.name);
    assert_eq!(
        snapshot(&location),
        before,
        "{}: keys not as before",
        b.name
    );
    let again = ZarrStore::open_at(&location).unwrap();
    assert_eq!(
        again.read(name, &[0], &[2]).unwrap(),
        values(0, 2, 1),
        "{}",
        b.name
    );
}

/// A name the backend cannot hold (S3: an ASCII control character) is refused before
/// anything is written, with a reason naming the store; a backend that can hold it
/// stores it under that name.
pub fn names_the_backend_cannot_hold_are_refused(b: &Backend) {
    let location = (b.location)("control-character");
    let store = ZarrStore::open_or_new_at(&location, ZarrFormat::V3).unwrap();
    let name = "sst\u{1}anomaly";
    let meta = format!("{name}/zarr.json");
    let s = location.storage().unwrap();
    if b.refuses_control_characters {
        let reason = store
            .unstorable_array_name(name)
            .unwrap_or_else(|| panic!("{}: {name:?} not refused", b.name));
        assert!(
            reason.contains(&location.to_string()) && reason.contains("U+0001"),
            "{}: {reason}",
            b.name
        );
        // The storage itself never writes it under another name.
        assert!(
            s.set(&key(&meta), Bytes::from_static(b"{}")).is_err(),
            "{}",
            b.name
        );
        assert!(s.list().unwrap().is_empty(), "{}", b.name);
        assert!((b.object_names)(&location).is_empty(), "{}", b.name);
    } else {
        assert_eq!(store.unstorable_array_name(name), None, "{}", b.name);
        s.set(&key(&meta), Bytes::from_static(b"{}")).unwrap();
        assert_eq!(names(&s.list().unwrap()), [meta.as_str()], "{}", b.name);
        assert_eq!((b.object_names)(&location), [meta], "{}", b.name);
    }
}
