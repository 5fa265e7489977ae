//! The pipeline commands of the `zru` CLI: ingest, remove, enqueue, flush, watch, queue.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zru::pipeline::enqueue::enqueue;
use zru::pipeline::queue::Queue;
use zru::pipeline::raw_file::check_raw_file;
use zru::pipeline::report::summary;
use zru::pipeline::s3_event::parse_notification;
use zru::pipeline::watch::watch;
use zru::pipeline::{
    FlushOptions, Flusher, ObjectEvent, QueueOptions, Report, ReportAction, SqliteQueue,
};
use zru::text::{printable, safe_line};
use zru::update::{EventKind, Updater};

/// Where the queue and the locks live, and how the flush receives.
#[derive(Args, Clone)]
pub struct PipelineArgs {
    /// State directory: the durable queue (queue.sqlite) and, by default, the locks of
    /// S3 stores.
    #[arg(long, default_value = "data/state")]
    state_dir: PathBuf,
    /// Directory of the lock files of S3 stores [default: STATE_DIR/locks]. A local
    /// store's lock file is beside the store (`STORE.zru-lock`), whatever this says.
    #[arg(long)]
    lock_dir: Option<PathBuf>,
    /// Seconds to wait for a store's lock before giving up with an error.
    #[arg(long, default_value_t = 60.0)]
    lock_timeout: f64,
    /// Messages per batch; each batch is one store transaction.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Receives after which a rejected event goes to the dead letters.
    #[arg(long, default_value_t = 3)]
    max_receives: u32,
    /// Seconds a received message stays invisible to other consumers.
    #[arg(long, default_value_t = 600.0)]
    visibility_timeout: f64,
    /// Seconds during which a repeated deduplication id is dropped (0: never).
    #[arg(long, default_value_t = 300.0)]
    dedup_window: f64,
}

fn seconds(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("--{what} {value}"))
}

impl PipelineArgs {
    pub fn queue(&self) -> Result<SqliteQueue> {
        let options = QueueOptions {
            max_receives: self.max_receives.max(1),
            dedup_window: seconds(self.dedup_window, "dedup-window")?,
        };
        Ok(SqliteQueue::open(&queue_path(&self.state_dir), options)?)
    }

    fn flush_options(&self) -> Result<FlushOptions> {
        Ok(FlushOptions {
            batch_size: self.batch_size.max(1),
            visibility: seconds(self.visibility_timeout, "visibility-timeout")?,
            lock_dir: self
                .lock_dir
                .clone()
                .unwrap_or_else(|| self.state_dir.join("locks")),
            lock_timeout: seconds(self.lock_timeout, "lock-timeout")?,
        })
    }
}

fn queue_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("queue.sqlite")
}

/// `zru queue` and its subcommands.
#[derive(Args)]
pub struct QueueCommand {
    #[arg(long, default_value = "data/state", global = true)]
    state_dir: PathBuf,
    /// JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: Option<QueueAction>,
}

#[derive(Subcommand)]
enum QueueAction {
    /// Move dead letters (these message ids, or all) back to their groups.
    Replay { ids: Vec<i64> },
}

/// `zru status`: per dataset, what waits in the queue and what the store applied.
pub fn run_status(
    config: &std::path::Path,
    state_dir: &std::path::Path,
    json: bool,
) -> Result<ExitCode> {
    let catalog = zru::config::Catalog::load_dir(config)?;
    let queue = SqliteQueue::open(&queue_path(state_dir), QueueOptions::default())?;
    let figures = zru::pipeline::status::status(&catalog, &queue, zru::pipeline::event::now_us())?;
    if json {
        for dataset in &figures {
            super::say_json(serde_json::to_string(dataset)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    super::say(zru::pipeline::status::DatasetStatus::HEADER);
    for dataset in &figures {
        super::say(dataset.line());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints reports, one line or JSON object each; true if any failed.
pub fn print_reports(reports: &[Report], json: bool) -> bool {
    for report in reports {
        if json {
            super::say_json(serde_json::to_string(&report.redacted()).unwrap_or_default());
        } else {
            super::say(report.line());
        }
    }
    reports.iter().any(Report::failed)
}

fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Enqueues events, then (unless `no_flush`) drains the queue; prints every report.
pub fn enqueue_and_flush(
    updater: &Updater,
    pipeline: &PipelineArgs,
    events: Vec<ObjectEvent>,
    mut refused: Vec<Report>,
    no_flush: bool,
    json: bool,
) -> Result<ExitCode> {
    let queue = pipeline.queue()?;
    let reports = enqueue(&updater.catalog, &queue, events)?;
    if no_flush {
        refused.extend(reports);
        return Ok(exit_code(print_reports(&refused, json)));
    }
    refused.extend(
        reports
            .into_iter()
            .filter(|r| r.action != ReportAction::Enqueued),
    );
    let failed = print_reports(&refused, json);
    Ok(exit_code(
        run_flush(updater, pipeline, &queue, json)? || failed,
    ))
}

/// `zru adopt`: records files as the sources of the slots already holding their data.
pub fn run_adopt(
    updater: &Updater,
    pipeline: &PipelineArgs,
    files: &[PathBuf],
    json: bool,
) -> Result<ExitCode> {
    let (events, mut reports) = created_events(updater, files);
    reports.extend(zru::pipeline::adopt::adopt(
        updater,
        events,
        &pipeline.flush_options()?,
    )?);
    Ok(exit_code(print_reports(&reports, json)))
}

/// Drains the queue with a progress bar on a terminal and a summary on stderr.
pub fn run_flush(
    updater: &Updater,
    pipeline: &PipelineArgs,
    queue: &SqliteQueue,
    json: bool,
) -> Result<bool> {
    let waiting: u64 = queue.stats()?.iter().map(|g| g.ready + g.in_flight).sum();
    let bar = progress_bar(waiting);
    let flusher = Flusher {
        updater,
        queue,
        options: pipeline.flush_options()?,
        current: None,
    };
    let reports = flusher.flush(&mut |batch| {
        bar.inc(batch.len() as u64);
        if bar.position() > bar.length().unwrap_or(0) {
            bar.set_length(bar.position());
        }
    });
    bar.finish_and_clear();
    let reports = reports?;
    let failed = print_reports(&reports, json);
    eprintln!("zru flush: {}; {}", summary(&reports), queue_line(queue)?);
    Ok(failed)
}

fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn queue_line(queue: &SqliteQueue) -> Result<String> {
    let stats = queue.stats()?;
    let (ready, in_flight, dead) = stats.iter().fold((0, 0, 0), |(r, f, d), g| {
        (r + g.ready, f + g.in_flight, d + g.dead)
    });
    Ok(format!(
        "queue: {ready} ready, {in_flight} in flight, {dead} dead letters"
    ))
}

/// Created events for files under the raw root; files that cannot be events are refused.
pub fn created_events(updater: &Updater, files: &[PathBuf]) -> (Vec<ObjectEvent>, Vec<Report>) {
    let mut events = Vec::new();
    let mut refused = Vec::new();
    for file in files {
        let event = updater
            .key_for_path(file)
            .map_err(|e| e.to_string())
            .and_then(|key| {
                // Links out of the raw root and FIFOs, sockets, devices are refused,
                // as the watcher's catch-up does.
                check_raw_file(&updater.raw_root, file).map_err(|e| format!("{key}: {e}"))?;
                ObjectEvent::local_created(key.clone(), file)
                    .map(|e| e.with_raw_root(&updater.raw_root))
                    .map_err(|e| format!("{key}: cannot read {}: {e}", file.display()))
            });
        match event {
            Ok(event) => events.push(event),
            Err(reason) => refused.push(
                Report::new(
                    &file.display().to_string(),
                    EventKind::Created,
                    None,
                    ReportAction::Rejected,
                )
                .with_reason(reason),
            ),
        }
    }
    (events, refused)
}

/// Events of S3 notification documents: files (`-` for stdin), each one JSON
/// document or one per line.
pub fn s3_events(sources: &[PathBuf]) -> Result<Vec<ObjectEvent>> {
    let mut events = Vec::new();
    for source in sources {
        let text = if source.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        } else {
            std::fs::read_to_string(source)
                .with_context(|| format!("reading {}", source.display()))?
        };
        if text.trim().is_empty() {
            anyhow::bail!(
                "{}: empty: no S3 event notification to enqueue",
                if source.as_os_str() == "-" {
                    "stdin".to_string()
                } else {
                    source.display().to_string()
                }
            );
        }
        let documents: Vec<&str> = match parse_notification(&text) {
            Ok(parsed) => {
                events.extend(parsed);
                continue;
            }
            Err(_) => text.lines().filter(|l| !l.trim().is_empty()).collect(),
        };
        for (i, line) in documents.into_iter().enumerate() {
            events.extend(parse_notification(line).with_context(|| {
                format!("{} line {}: S3 event notification", source.display(), i + 1)
            })?);
        }
    }
    Ok(events)
}

/// `zru watch`: runs until interrupted.
pub fn run_watch(updater: &Updater, pipeline: &PipelineArgs, json: bool) -> Result<ExitCode> {
    let queue = pipeline.queue()?;
    let ready = || {
        eprintln!(
            "zru watch: watching {} (queue {})",
            updater.raw_root.display(),
            queue.path().display()
        )
    };
    watch(updater, &queue, &mut { ready }, &mut |report| {
        print_reports(std::slice::from_ref(report), json);
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `zru queue` (depth, in flight, dead letters) and `zru queue replay`.
pub fn run_queue(command: QueueCommand) -> Result<ExitCode> {
    let queue = SqliteQueue::open(&queue_path(&command.state_dir), QueueOptions::default())?;
    if let Some(QueueAction::Replay { ids }) = command.action {
        let moved = queue.replay(&ids)?;
        super::say(format!(
            "replayed {moved} dead letter{}",
            if moved == 1 { "" } else { "s" }
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let groups = queue.stats()?;
    let dead = queue.dead_letters()?;
    if command.json {
        let doc = serde_json::json!({"groups": groups, "dead_letters": dead});
        super::say_json(serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    super::say("group\tready\tin_flight\tdead");
    for g in &groups {
        super::say(format!(
            "{}\t{}\t{}\t{}",
            g.group, g.ready, g.in_flight, g.dead
        ));
    }
    if !dead.is_empty() {
        super::say("\ndead letters (zru queue replay [ID...] moves them back):");
        super::say("id\tgroup\tkey\tevent\treceives\tlast error");
        for d in &dead {
            let kind = match d.event.kind {
                EventKind::Created => "created",
                EventKind::Removed => "removed",
            };
            super::say(format!(
                "{}\t{}\t{}\t{kind}\t{}\t{}",
                d.id,
                printable(&d.group),
                printable(&d.event.key),
                d.receive_count,
                safe_line(d.last_error.as_deref().unwrap_or(""))
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
