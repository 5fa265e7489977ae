//! `zru demo`: the whole local pipeline on generated GHRSST-like files and the real
//! IMOS GSLA files — append, gap, fill, revise, remove, reject — printing what changed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;

use zru::config::{Catalog, Dataset};
use zru::inspect::inspect;
use zru::pipeline::enqueue::enqueue;
use zru::pipeline::ledger::Ledger;
use zru::pipeline::{FlushOptions, Flusher, ObjectEvent, Queue, QueueOptions, Report, SqliteQueue};
use zru::sample::{write_gridded_sample_file, write_gridded_samples, GriddedSampleOptions};
use zru::update::{EventKind, Updater};
use zru::values::Values;

/// Where the demo reads its configuration and writes its data.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub config_dir: PathBuf,
    pub raw_root: PathBuf,
    /// The demo's own queue and locks (emptied at the start of each run).
    pub state_dir: PathBuf,
    /// `tests/data` with the real IMOS files (shipped in the repository).
    pub shared_data: PathBuf,
    pub lat: usize,
    pub lon: usize,
}

const SST_DATASET: &str = "sst";
const GSLA_DATASET: &str = "gsla";
const ARGO_DATASET: &str = "argo";
/// The SST dataset kept in an Icechunk repository (config/sst_versioned.json).
const VERSIONED_DATASET: &str = "sst_versioned";
const SST_PREFIX: &str = "sst";
const VERSIONED_PREFIX: &str = "sst-versioned";
const GSLA_PREFIX: &str = "IMOS/OceanCurrent/GSLA";
const ARGO_PREFIX: &str = "argo";
/// The bad file's revision: its SST is off by at least `0.05 * BAD_REVISION` K.
const BAD_REVISION: u32 = 40;
/// Profiles of the revised Argo file whose temperatures the demo changes.
const REVISED_PROFILES: usize = 5;
/// Receives of a bad file before it lands in the dead letters (as `zru flush`).
const MAX_RECEIVES: u32 = 3;

/// The local pipeline: what the watcher does (an event per changed object, sent to the
/// durable queue) and what the updater does (drain the queue under the store's lock,
/// ledger, one transaction per batch, dead letters).
struct Demo<'a> {
    updater: Updater,
    queue: SqliteQueue,
    flush: FlushOptions,
    out: &'a mut dyn Write,
    dead_lettered: usize,
}

impl Demo<'_> {
    fn step(&mut self, title: &str) -> Result<()> {
        writeln!(self.out, "\n== {title}")?;
        Ok(())
    }

    /// The watcher's event for a key of the raw bucket as it is now.
    fn event(&self, key: &str, kind: EventKind) -> Result<ObjectEvent> {
        Ok(match kind {
            EventKind::Created => {
                let path = self.updater.raw_root.join(key);
                ObjectEvent::local_created(key.to_string(), &path)
                    .with_context(|| format!("reading {}", path.display()))?
            }
            EventKind::Removed => ObjectEvent::local_removed(key.to_string()),
        }
        .with_raw_root(&self.updater.raw_root))
    }

    /// Sends events to the queue; prints those not enqueued (duplicates, refusals).
    fn send(&mut self, events: Vec<ObjectEvent>) -> Result<()> {
        let count = events.len();
        let reports = enqueue(&self.updater.catalog, &self.queue, events)?;
        let queued = reports.iter().filter(|r| r.message_id.is_some()).count();
        writeln!(self.out, "  watcher: {queued} of {count} events queued")?;
        for report in reports.iter().filter(|r| r.message_id.is_none()) {
            writeln!(self.out, "  {}", report.line())?;
        }
        Ok(())
    }

    /// Drains the queue like `zru flush`; prints each event's fate.
    fn flush(&mut self) -> Result<Vec<Report>> {
        let flusher = Flusher {
            updater: &self.updater,
            queue: &self.queue,
            options: self.flush.clone(),
            current: None,
        };
        let reports = flusher.flush(&mut |_| {})?;
        for report in &reports {
            let dead = if report.dead_lettered {
                " -> dead letters"
            } else {
                ""
            };
            writeln!(self.out, "  {}{dead}", report.line())?;
        }
        self.dead_lettered += reports.iter().filter(|r| r.dead_lettered).count();
        Ok(reports)
    }

    /// Events for `keys` (in this order) through the queue, then one flush.
    fn apply(&mut self, keys: &[&str], kind: EventKind) -> Result<Vec<Report>> {
        let events = keys
            .iter()
            .map(|key| self.event(key, kind))
            .collect::<Result<Vec<_>>>()?;
        self.send(events)?;
        self.flush()
    }

    fn show_store(&mut self, dataset: &str) -> Result<()> {
        self.show_store_lines(dataset, usize::MAX)
    }

    /// The first lines of `zru inspect` (store, dimensions, time range, blank slots).
    fn show_store_brief(&mut self, dataset: &str) -> Result<()> {
        self.show_store_lines(dataset, 4)
    }

    fn show_store_lines(&mut self, dataset: &str, max: usize) -> Result<()> {
        let path = self.store_path(dataset)?;
        let summary = inspect(&path)?;
        let text = summary.to_string();
        for line in text.lines().take_while(|l| *l != "arrays").take(max) {
            writeln!(self.out, "  | {line}")?;
        }
        Ok(())
    }

    fn store_path(&self, dataset: &str) -> Result<PathBuf> {
        Ok(self.dataset(dataset)?.store_path.clone())
    }

    fn dataset(&self, name: &str) -> Result<&Dataset> {
        self.updater
            .catalog
            .dataset(name)
            .with_context(|| format!("the config directory has no dataset named {name:?}"))
    }
}

/// Runs the demo, writing a narrative to `out`. Fails unless exactly one event (the
/// truncated upload) went to the dead letters and was then replayed.
pub fn run_demo(options: &DemoOptions, out: &mut dyn Write) -> Result<()> {
    let catalog = Catalog::load_dir(&options.config_dir)
        .with_context(|| format!("loading {}", options.config_dir.display()))?;
    reset_state(&options.state_dir)?;
    let queue = SqliteQueue::open(
        &options.state_dir.join("queue.sqlite"),
        QueueOptions {
            max_receives: MAX_RECEIVES,
            ..QueueOptions::default()
        },
    )?;
    let mut demo = Demo {
        updater: Updater::new(catalog, options.raw_root.clone()),
        queue,
        flush: FlushOptions {
            batch_size: 256,
            visibility: std::time::Duration::from_secs(600),
            lock_dir: options.state_dir.join("locks"),
            lock_timeout: std::time::Duration::from_secs(60),
        },
        out,
        dead_lettered: 0,
    };
    reset(&demo, options)?;
    writeln!(
        demo.out,
        "zru demo: config {}, raw bucket {}, queue {}",
        options.config_dir.display(),
        options.raw_root.display(),
        demo.queue.path().display()
    )?;
    gridded_sst(&mut demo, options)?;
    real_gsla(&mut demo, options)?;
    real_argo(&mut demo, options)?;
    versioned_sst(&mut demo, options)?;
    let left = demo.queue.dead_letters()?.len();
    if demo.dead_lettered != 1 || left != 0 {
        bail!(
            "expected exactly one dead letter (the truncated file), replayed; saw {} dead-lettered, {left} left",
            demo.dead_lettered
        );
    }
    writeln!(
        demo.out,
        "\ndemo finished: open the stores with xarray.open_zarr(...); the queue: zru queue --state-dir {}",
        options.state_dir.display()
    )?;
    Ok(())
}

/// Empties the demo's queue and locks.
fn reset_state(state_dir: &Path) -> Result<()> {
    if state_dir.exists() {
        std::fs::remove_dir_all(state_dir)
            .with_context(|| format!("removing {}", state_dir.display()))?;
    }
    std::fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))
}

/// Removes what an earlier demo run left: the demo's stores and raw prefixes.
fn reset(demo: &Demo<'_>, options: &DemoOptions) -> Result<()> {
    for dataset in [SST_DATASET, GSLA_DATASET, ARGO_DATASET, VERSIONED_DATASET] {
        let store = demo.store_path(dataset)?;
        if store.exists() {
            std::fs::remove_dir_all(&store)
                .with_context(|| format!("removing {}", store.display()))?;
        }
        let ledger = Ledger::path_for_store(&store);
        if ledger.exists() {
            std::fs::remove_file(&ledger)
                .with_context(|| format!("removing {}", ledger.display()))?;
        }
    }
    for prefix in [SST_PREFIX, GSLA_PREFIX, ARGO_PREFIX, VERSIONED_PREFIX] {
        let dir = options.raw_root.join(prefix);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(())
}

fn sample_key(day: NaiveDate) -> String {
    format!("{SST_PREFIX}/{}", zru::sample::gridded_sample_name(day))
}

/// Writes `days` GHRSST-like daily files from `start` (revision 0) into the raw
/// bucket under `prefix`; returns their options and directory.
fn generated_days(
    options: &DemoOptions,
    prefix: &str,
    start: NaiveDate,
    days: usize,
    seed: u64,
) -> Result<(GriddedSampleOptions, PathBuf)> {
    let sample = GriddedSampleOptions {
        days,
        lat: options.lat,
        lon: options.lon,
        start,
        revision: 0,
        seed,
    };
    let raw_dir = options.raw_root.join(prefix);
    write_gridded_samples(&raw_dir, &sample)?;
    Ok((sample, raw_dir))
}

fn gridded_sst(demo: &mut Demo<'_>, options: &DemoOptions) -> Result<()> {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).context("demo start date")?;
    let (sample, raw_dir) = generated_days(options, SST_PREFIX, start, 5, 1)?;
    let day = |i: u64| start + chrono::Days::new(i);

    let key = |i: u64| sample_key(day(i));

    demo.step("GHRSST-like SST (generated): days 5, 1, 3 and 2 arrive out of order; one batch applies them by time and leaves a blank slot for day 4")?;
    demo.apply(&[&key(4), &key(0), &key(2), &key(1)], EventKind::Created)?;
    demo.show_store(SST_DATASET)?;

    demo.step("day 4 arrives late and fills its blank slot")?;
    demo.apply(&[&key(3)], EventKind::Created)?;

    demo.step("day 2 is revised (same key, new values): its slot is overwritten")?;
    let store = demo.store_path(SST_DATASET)?;
    let before = read_slot_kelvin(&zru::store::ZarrStore::open(&store)?, 1)?;
    let revised = GriddedSampleOptions {
        revision: 1,
        ..sample.clone()
    };
    write_gridded_sample_file(
        &raw_dir.join(zru::sample::gridded_sample_name(day(1))),
        day(1),
        &revised,
    )?;
    demo.apply(&[&key(1)], EventKind::Created)?;
    let after = read_slot_kelvin(&zru::store::ZarrStore::open(&store)?, 1)?;
    let (changed, mean) = mean_change(&before, &after);
    writeln!(
        demo.out,
        "  sea_surface_temperature at slot 1: {changed} pixels changed, mean change {mean:+.3} K"
    )?;

    demo.step("day 3 is deleted from the raw bucket: its slot is blanked, its time stays")?;
    std::fs::remove_file(raw_dir.join(zru::sample::gridded_sample_name(day(2))))?;
    demo.apply(&[&key(2)], EventKind::Removed)?;
    demo.show_store(SST_DATASET)?;
    Ok(())
}

/// Decoded SST (kelvin, NaN where missing) of one slot.
fn read_slot_kelvin(zarr: &zru::store::ZarrStore, slot: u64) -> Result<Vec<f64>> {
    let doc = zarr
        .array("sea_surface_temperature")
        .context("store has no sea_surface_temperature")?;
    let enc = doc.cf_encoding();
    let shape = doc.shape()?;
    let raw = zarr.read(
        "sea_surface_temperature",
        &[slot, 0, 0],
        &[1, shape[1], shape[2]],
    )?;
    let Values::I16(raw) = raw else {
        bail!("sea_surface_temperature is not int16 in the store");
    };
    Ok(raw
        .into_iter()
        .map(|r| {
            if Some(f64::from(r)) == enc.fill_value {
                f64::NAN
            } else {
                f64::from(r) * enc.scale_factor + enc.add_offset
            }
        })
        .collect())
}

fn mean_change(before: &[f64], after: &[f64]) -> (usize, f64) {
    let diffs: Vec<f64> = before
        .iter()
        .zip(after)
        .filter(|(a, b)| a.is_finite() && b.is_finite() && a != b)
        .map(|(a, b)| b - a)
        .collect();
    let mean = if diffs.is_empty() {
        0.0
    } else {
        diffs.iter().sum::<f64>() / diffs.len() as f64
    };
    (diffs.len(), mean)
}

/// The same GHRSST-like days into an Icechunk repository: one batch is one commit; a
/// bad file is committed, then rolled back; the branch's history is printed.
#[cfg(feature = "icechunk")]
fn versioned_sst(demo: &mut Demo<'_>, options: &DemoOptions) -> Result<()> {
    use zru::pipeline::history::{log, log_line, rollback};

    let start = NaiveDate::from_ymd_opt(2024, 2, 1).context("demo start date")?;
    let (sample, raw_dir) = generated_days(options, VERSIONED_PREFIX, start, 2, 2)?;
    let day = |i: u64| start + chrono::Days::new(i);
    let name = |i: u64| zru::sample::gridded_sample_name(day(i));
    let key = |i: u64| format!("{VERSIONED_PREFIX}/{}", name(i));
    let dataset = demo.dataset(VERSIONED_DATASET)?.clone();

    demo.step("SST in an Icechunk repository (\"format\": \"icechunk\"): days 1 and 2 in one batch, committed as one snapshot that readers see whole")?;
    demo.apply(&[&key(0), &key(1)], EventKind::Created)?;
    let good = log(&dataset, None)?
        .first()
        .map(|c| c.id.clone())
        .context("the repository has no commit after the first batch")?;
    let before = versioned_slot_kelvin(&dataset, 1)?;

    demo.step("a bad file: day 2 is re-uploaded with a broken calibration and committed")?;
    let bad = GriddedSampleOptions {
        revision: BAD_REVISION,
        ..sample.clone()
    };
    write_gridded_sample_file(&raw_dir.join(name(1)), day(1), &bad)?;
    demo.apply(&[&key(1)], EventKind::Created)?;
    let (changed, mean) = mean_change(&before, &versioned_slot_kelvin(&dataset, 1)?);
    writeln!(
        demo.out,
        "  sea_surface_temperature at slot 1: {changed} pixels changed, mean change {mean:+.3} K"
    )?;

    demo.step(&format!("zru rollback {VERSIONED_DATASET} --to {good}: the branch (and the ledger) go back to the first batch's commit"))?;
    let done = rollback(
        &dataset,
        &good,
        &demo.flush.lock_dir,
        demo.flush.lock_timeout,
    )?;
    writeln!(demo.out, "  rolled back {} -> {}", done.from, done.to)?;
    for commit in &done.undone {
        writeln!(demo.out, "  undone {}", log_line(commit))?;
    }
    let (changed, _) = mean_change(&before, &versioned_slot_kelvin(&dataset, 1)?);
    writeln!(
        demo.out,
        "  sea_surface_temperature at slot 1: {changed} pixels differ from the first batch"
    )?;
    write_gridded_sample_file(&raw_dir.join(name(1)), day(1), &sample)?;

    demo.step(&format!(
        "zru log {VERSIONED_DATASET}: the branch's commits, newest first"
    ))?;
    for commit in log(&dataset, None)? {
        writeln!(demo.out, "  {}", log_line(&commit))?;
    }
    Ok(())
}

#[cfg(not(feature = "icechunk"))]
fn versioned_sst(demo: &mut Demo<'_>, _: &DemoOptions) -> Result<()> {
    demo.step("SST in an Icechunk repository: skipped, zru was built without the icechunk feature")
}

/// Decoded SST of one slot at the tip of an Icechunk dataset's branch.
#[cfg(feature = "icechunk")]
fn versioned_slot_kelvin(dataset: &Dataset, slot: u64) -> Result<Vec<f64>> {
    use zru::store::{icechunk::Repo, Backend, ZarrStore};
    let Backend::Icechunk { branch, .. } = dataset.backend() else {
        bail!("dataset {} is not an Icechunk dataset", dataset.name());
    };
    let repo = Repo::open(&dataset.location, &branch)?;
    let store = ZarrStore::open_snapshot(&dataset.location, &repo, &repo.tip()?)?;
    read_slot_kelvin(&store, slot)
}

/// Copies files into the raw bucket under `prefix`; returns their keys.
fn upload(files: &[PathBuf], options: &DemoOptions, prefix: &str) -> Result<Vec<String>> {
    let raw_dir = options.raw_root.join(prefix);
    std::fs::create_dir_all(&raw_dir)?;
    let mut keys = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .context("file name")?
            .to_string_lossy()
            .into_owned();
        std::fs::copy(file, raw_dir.join(&name))?;
        keys.push(format!("{prefix}/{name}"));
    }
    Ok(keys)
}

/// The `*.nc` files of a directory of real data, sorted; `None` (and a note) if absent.
fn real_files(demo: &mut Demo<'_>, dir: &Path, what: &str) -> Result<Option<Vec<PathBuf>>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "nc"))
            .collect(),
        Err(_) => {
            demo.step(&format!("{what}: {} not found, skipped", dir.display()))?;
            return Ok(None);
        }
    };
    files.sort();
    Ok(Some(files))
}

fn real_gsla(demo: &mut Demo<'_>, options: &DemoOptions) -> Result<()> {
    let source_dir = options.shared_data.join("imos/gsla");
    let Some(files) = real_files(demo, &source_dir, "real IMOS GSLA files")? else {
        return Ok(());
    };
    let Some((last, first_files)) = files.split_last() else {
        return Ok(());
    };
    demo.step(
        "real IMOS GSLA files (netCDF3 2011, netCDF-4 2024, 4 then 6 variables, 12-year gap)",
    )?;
    let keys = upload(first_files, options, GSLA_PREFIX)?;
    let events = keys
        .iter()
        .map(|key| demo.event(key, EventKind::Created))
        .collect::<Result<Vec<_>>>()?;
    demo.send(events.clone())?;
    demo.flush()?;
    demo.show_store(GSLA_DATASET)?;

    demo.step("S3 delivers the first file's notification again: the queue drops the copy")?;
    demo.send(events.into_iter().take(1).collect())?;
    demo.flush()?;

    demo.step(&format!(
        "the last file arrives truncated (upload cut at half): rejected with its reason, a permanent error, so dead-lettered at once (transient errors are retried with backoff, up to {MAX_RECEIVES} receives); the store is untouched"
    ))?;
    let Some(last_key) = upload(std::slice::from_ref(last), options, GSLA_PREFIX)?.pop() else {
        bail!("no key for {}", last.display());
    };
    let bytes = std::fs::read(last)?;
    let path = options.raw_root.join(&last_key);
    std::fs::write(&path, &bytes[..bytes.len() / 2])?;
    demo.apply(&[&last_key], EventKind::Created)?;
    for letter in demo.queue.dead_letters()? {
        writeln!(
            demo.out,
            "  dead letter {}: {} (received {}): {}",
            letter.id,
            letter.event.key,
            match letter.receive_count {
                1 => "once".to_string(),
                n => format!("{n} times"),
            },
            letter.last_error.as_deref().unwrap_or("no reason recorded")
        )?;
    }

    demo.step("the complete file is uploaded; `zru queue replay` puts the dead letter back and the flush applies it")?;
    std::fs::write(&path, &bytes)?;
    let replayed = demo.queue.replay(&[])?;
    writeln!(demo.out, "  replayed {replayed} dead letter(s)")?;
    demo.flush()?;
    demo.show_store_brief(GSLA_DATASET)?;
    Ok(())
}

fn real_argo(demo: &mut Demo<'_>, options: &DemoOptions) -> Result<()> {
    let source_dir = options.shared_data.join("imos/argo");
    let Some(files) = real_files(demo, &source_dir, "real Argo files")? else {
        return Ok(());
    };
    demo.step("real Argo files: a float (234 profiles x 144 levels) and a CTD tag (865 x 17) into one store")?;
    let keys = upload(&files, options, ARGO_PREFIX)?;
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    demo.apply(&key_refs, EventKind::Created)?;

    let Some(float_key) = keys.iter().find(|k| k.contains("2902093")).cloned() else {
        return Ok(());
    };
    demo.step(&format!(
        "the float's file is revised (TEMP +0.5 in its first {REVISED_PROFILES} profiles): its rows are overwritten in place"
    ))?;
    let path = options.raw_root.join(&float_key);
    let changed = revise_temperatures(&path, REVISED_PROFILES, 0.5)?;
    demo.apply(&[&float_key], EventKind::Created)?;
    writeln!(demo.out, "  {changed} TEMP values changed in the file")?;

    if let Some(other) = keys.iter().find(|k| **k != float_key) {
        demo.step("the CTD tag's file is deleted: its rows are blanked")?;
        std::fs::remove_file(options.raw_root.join(other))?;
        demo.apply(&[other], EventKind::Removed)?;
    }
    demo.show_store_brief(ARGO_DATASET)?;
    Ok(())
}

/// Adds `delta` to the valid TEMP values of the first `profiles` profiles of a file
/// (in place); returns how many values changed.
fn revise_temperatures(path: &Path, profiles: usize, delta: f32) -> Result<usize> {
    let mut file = netcdf::append(path).with_context(|| format!("opening {}", path.display()))?;
    let mut temp = file
        .variable_mut("TEMP")
        .with_context(|| format!("{} has no TEMP", path.display()))?;
    let fill: f32 = temp.fill_value()?.unwrap_or(99999.0);
    let levels = temp.dimensions().get(1).map_or(0, |d| d.len());
    let mut values: Vec<f32> = temp.get_values((0..profiles, 0..levels))?;
    let mut changed = 0;
    for v in values.iter_mut().filter(|v| **v != fill) {
        *v += delta;
        changed += 1;
    }
    temp.put_values(&values, (0..profiles, 0..levels))?;
    Ok(changed)
}
