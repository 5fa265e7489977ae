//! The `zru` command line: ingest, remove, adopt, enqueue, flush, watch, queue, inspect,
//! status, log, rollback, sample, demo, doctor, aws (sweep, replay-failed-notifications),
//! config check.

// The command line is where zru prints: its errors and warnings go to stderr.
#![allow(clippy::print_stderr, clippy::print_stdout)]

#[path = "zru/aws_cli.rs"]
mod aws_cli;
#[path = "zru/demo.rs"]
mod demo;
#[cfg(feature = "icechunk")]
#[path = "zru/history_cli.rs"]
mod history_cli;
#[path = "zru/pipeline_cli.rs"]
mod pipeline_cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use zru::aws::sdk::Clients;
use zru::config::{Catalog, LoadOptions};
use zru::inspect::inspect_at;
use zru::pipeline::ObjectEvent;
use zru::sample::{write_gridded_samples, GriddedSampleOptions};
use zru::store::StoreLocation;
use zru::update::Updater;

use demo::{run_demo, DemoOptions};
use pipeline_cli::{PipelineArgs, QueueCommand};

#[derive(Parser)]
#[command(
    name = "zru",
    version,
    about = "Ordered Zarr region updater: apply NetCDF arrivals, revisions and removals to the region of a Zarr store they cover"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Location {
    /// Directory of per-dataset JSON configuration files.
    #[arg(long, default_value = "config")]
    config: PathBuf,
    /// Root of the raw bucket: object keys are paths relative to it.
    #[arg(long, default_value = "data/raw")]
    raw_root: PathBuf,
    /// Print one JSON object per event instead of a line of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Enqueue "created" events for files under the raw root, in the given order, then flush.
    Ingest {
        #[command(flatten)]
        location: Location,
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Only enqueue; a later `zru flush` applies.
        #[arg(long)]
        no_flush: bool,
        /// Files under the raw root.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Record files as the sources of the slots that already hold their data, without
    /// writing data: for gridded stores written before zru managed them (e.g. by
    /// xarray.to_zarr), so that removals and revisions of those files find their slots
    /// and `zru watch` does not enqueue them again.
    Adopt {
        #[command(flatten)]
        location: Location,
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Files under the raw root.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Enqueue "removed" events (blank the slots whose source is each key), then flush.
    Remove {
        #[command(flatten)]
        location: Location,
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Only enqueue; a later `zru flush` applies.
        #[arg(long)]
        no_flush: bool,
        /// Object keys (paths relative to the raw root).
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Enqueue the events of S3 event notification JSON documents (files, `-` for stdin).
    Enqueue {
        #[command(flatten)]
        location: Location,
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// S3 event notification JSON documents: one per file, or one per line; `-` reads
        /// standard input.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
    },
    /// Drain the queue: per store one lock, batches of coalesced, ordered events.
    Flush {
        #[command(flatten)]
        location: Location,
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Watch a raw directory and enqueue created (complete files) and removed events.
    Watch {
        /// The raw root: object keys are paths relative to it.
        raw_dir: PathBuf,
        /// Directory of per-dataset JSON configuration files.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Print one JSON object per enqueued event instead of a line of text.
        #[arg(long)]
        json: bool,
    },
    /// Per dataset: messages pending, in flight and dead in the local queue, the oldest
    /// pending message's age, and when the store last applied (ledger).
    Status {
        /// Directory of per-dataset JSON configuration files.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// State directory holding the queue (queue.sqlite).
        #[arg(long, default_value = "data/state")]
        state_dir: PathBuf,
        /// One JSON object per dataset instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// Show the queue (ready, in flight, dead letters); `replay` moves dead letters back.
    Queue(QueueCommand),
    /// Describe a store (a path or s3://bucket/prefix): dimensions, arrays, time range,
    /// blank slots, provenance.
    Inspect {
        /// The store: a local directory, or s3://bucket/prefix.
        store: PathBuf,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the commits of an Icechunk dataset's branch, newest first: id, time, events.
    #[cfg(feature = "icechunk")]
    Log(history_cli::LogArgs),
    /// Reset an Icechunk dataset's branch to an earlier commit or tag (and rebuild its
    /// ledger), so the events of the commits taken off can be applied again.
    #[cfg(feature = "icechunk")]
    Rollback(history_cli::RollbackArgs),
    /// Write generated sample files.
    Sample {
        #[command(subcommand)]
        kind: SampleKind,
    },
    /// Run the whole local pipeline on generated and real files, printing what changed.
    Demo {
        #[arg(long, default_value = "config")]
        config: PathBuf,
        #[arg(long, default_value = "data/raw")]
        raw_root: PathBuf,
        /// The demo's own queue and locks (emptied at the start of each run).
        #[arg(long, default_value = "data/state/demo")]
        state_dir: PathBuf,
        /// Directory holding imos/gsla/*.nc and imos/argo/*.nc (the real files, shipped in tests/data).
        #[arg(long, default_value = "tests/data")]
        shared_data: PathBuf,
        #[arg(long, default_value_t = 720)]
        lat: usize,
        #[arg(long, default_value_t = 1440)]
        lon: usize,
    },
    /// Check an AWS deployment: configuration, queue, buckets, EFS, lock directory,
    /// alarm states, queue age and each dataset's lag (CloudWatch).
    /// Settings come from the ZRU_* environment variables (docs/aws.md); flags
    /// override them. One line per check; exit code 1 if any check failed.
    Doctor(DoctorArgs),
    /// Operations on an AWS deployment: `sweep` (queue what the S3 notifications
    /// missed), `replay-failed-notifications`.
    #[command(subcommand)]
    Aws(aws_cli::AwsCommand),
    /// Validate configuration files.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    settings: aws_cli::SettingsArgs,
    /// The lock directory on the EFS mount (ZRU_LOCK_DIR).
    #[arg(long)]
    lock_dir: Option<PathBuf>,
    /// EFS file system id (ZRU_EFS_FILE_SYSTEM_ID).
    #[arg(long)]
    efs_file_system_id: Option<String>,
    /// EFS access point id (ZRU_EFS_ACCESS_POINT_ID).
    #[arg(long)]
    efs_access_point_id: Option<String>,
    /// The start of the stack's alarm names, the stack output AlarmPrefix
    /// (ZRU_ALARM_PREFIX).
    #[arg(long)]
    alarm_prefix: Option<String>,
    /// How far back to read lag and queue age from CloudWatch, 1 to 1440
    /// (ZRU_DOCTOR_WINDOW_MINUTES, default 60).
    #[arg(long)]
    window_minutes: Option<String>,
    /// One JSON object per check.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum SampleKind {
    /// GHRSST L3S-like daily netCDF-4 files (int16 packed SST and friends).
    Gridded {
        out_dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        days: usize,
        #[arg(long, default_value_t = 180)]
        lat: usize,
        #[arg(long, default_value_t = 360)]
        lon: usize,
        /// First day, YYYY-MM-DD.
        #[arg(long, default_value = "2024-01-01")]
        start: chrono::NaiveDate,
        /// 0 for original values, N > 0 for a revised version of the same days.
        #[arg(long, default_value_t = 0)]
        revision: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Check every *.json file of a directory against the schema (docs/config.schema.json)
    /// and the rules between keys and files; name each broken file, key and fix.
    /// Exit code 1 if any file is broken.
    Check {
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// The raw root: no store may be or lie inside it, and every key under it
        /// (if it exists) must belong to one dataset at most.
        #[arg(long, default_value = "data/raw")]
        raw_root: PathBuf,
    },
    /// Print a gridded dataset config (JSON) whose chunks and compressor are FILE's, so
    /// that its variables' compressed chunks are copied into the store as they are
    /// (passthrough). Stderr lists the variables copied and those decoded, with why.
    Suggest {
        /// A NetCDF file of the collection.
        file: PathBuf,
        /// The dataset's name (also its key prefix and store name).
        #[arg(long, default_value = "dataset")]
        name: String,
        /// The dimension files are appended along.
        #[arg(long, default_value = "time")]
        append_dim: String,
        /// The store's Zarr format: 3, or 2 for readers that only read Zarr V2.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
        zarr_format: u8,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZRU_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(QUIET_BY_DEFAULT)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::from(BROKEN_PIPE_EXIT),
        Err(error) => {
            // Keys in messages are escaped, URL credentials hidden.
            eprintln!(
                "zru: error: {}",
                zru::text::safe_line(&format!("{error:#}"))
            );
            ExitCode::from(2)
        }
    }
}

/// The log filter without `ZRU_LOG`: warnings, but not Icechunk's notes on every open
/// of a local repository (not safe for concurrent commits: zru's store lock makes one
/// writer; conditional PUTs without write-id metadata).
const QUIET_BY_DEFAULT: &str = "warn,icechunk_arrow_object_store=error,icechunk_storage=error";

/// What a shell reports for a process killed by SIGPIPE (128 + 13).
const BROKEN_PIPE_EXIT: u8 = 141;

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes one line to stdout; a reader that went away (`zru inspect | head`) ends the
/// process quietly with the shell's SIGPIPE status instead of a panic.
pub(crate) fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let line = zru::text::redact_urls(&line.to_string());
    if let Err(error) = writeln!(stdout, "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(BROKEN_PIPE_EXIT));
        }
        eprintln!("zru: cannot write to stdout: {error}");
    }
}

/// Writes one JSON document to stdout as [`say`] does, its DEL and C1 control
/// characters escaped (they can only be in strings; see [`zru::text::json_for_terminal`]).
pub(crate) fn say_json(json: String) {
    say(zru::text::json_for_terminal(&json));
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Read per source file; checked first so that a bad value fails the command
    // instead of rejecting every event.
    zru::source::Decode::from_env().map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Ingest {
            location,
            pipeline,
            no_flush,
            files,
        } => {
            let updater = updater(&location)?;
            let (events, refused) = pipeline_cli::created_events(&updater, &files);
            pipeline_cli::enqueue_and_flush(
                &updater,
                &pipeline,
                events,
                refused,
                no_flush,
                location.json,
            )
        }
        Command::Adopt {
            location,
            pipeline,
            files,
        } => {
            let updater = updater(&location)?;
            pipeline_cli::run_adopt(&updater, &pipeline, &files, location.json)
        }
        Command::Remove {
            location,
            pipeline,
            no_flush,
            keys,
        } => {
            let updater = updater(&location)?;
            let events = keys
                .into_iter()
                .map(|key| ObjectEvent::local_removed(key).with_raw_root(&updater.raw_root))
                .collect();
            pipeline_cli::enqueue_and_flush(
                &updater,
                &pipeline,
                events,
                Vec::new(),
                no_flush,
                location.json,
            )
        }
        Command::Enqueue {
            location,
            pipeline,
            sources,
        } => {
            let updater = updater(&location)?;
            let events = pipeline_cli::s3_events(&sources)?;
            pipeline_cli::enqueue_and_flush(
                &updater,
                &pipeline,
                events,
                Vec::new(),
                true,
                location.json,
            )
        }
        Command::Flush { location, pipeline } => {
            let updater = updater(&location)?;
            let queue = pipeline.queue()?;
            let failed = pipeline_cli::run_flush(&updater, &pipeline, &queue, location.json)?;
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Watch {
            raw_dir,
            config,
            pipeline,
            json,
        } => {
            let options = LoadOptions {
                raw_root: Some(raw_dir.clone()),
                scan_raw_root: false,
            };
            let updater = Updater::new(Catalog::load_dir_with(&config, &options)?, raw_dir);
            pipeline_cli::run_watch(&updater, &pipeline, json)
        }
        Command::Queue(command) => pipeline_cli::run_queue(command),
        Command::Status {
            config,
            state_dir,
            json,
        } => pipeline_cli::run_status(&config, &state_dir, json),
        Command::Inspect { store, json } => {
            let location = StoreLocation::parse(&store.to_string_lossy())
                .with_context(|| format!("store {}", store.display()))?;
            let summary =
                inspect_at(&location).with_context(|| format!("inspecting {location}"))?;
            if json {
                say_json(serde_json::to_string_pretty(&summary)?);
            } else {
                say(summary.to_string().trim_end());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sample {
            kind:
                SampleKind::Gridded {
                    out_dir,
                    days,
                    lat,
                    lon,
                    start,
                    revision,
                    seed,
                },
        } => {
            let options = GriddedSampleOptions {
                days,
                lat,
                lon,
                start,
                revision,
                seed,
            };
            for path in write_gridded_samples(&out_dir, &options)? {
                say(path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            config,
            raw_root,
            state_dir,
            shared_data,
            lat,
            lon,
        } => {
            let options = DemoOptions {
                config_dir: config,
                raw_root,
                state_dir,
                shared_data,
                lat,
                lon,
            };
            run_demo(&options, &mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(args) => doctor(args),
        #[cfg(feature = "icechunk")]
        Command::Log(args) => history_cli::run_log(args),
        #[cfg(feature = "icechunk")]
        Command::Rollback(args) => history_cli::run_rollback(args),
        Command::Aws(command) => aws_cli::run_aws(command),
        Command::Config {
            action: ConfigAction::Check { config, raw_root },
        } => {
            if !raw_root.is_dir() {
                say(format!(
                    "note\traw root {} is not a directory: its keys are not checked",
                    raw_root.display()
                ));
            }
            let options = LoadOptions {
                raw_root: Some(raw_root),
                scan_raw_root: true,
            };
            let (datasets, errors) = Catalog::check_dir(&config, &options)?;
            for dataset in &datasets {
                say(format!(
                    "ok\t{}\t{}",
                    dataset.file.display(),
                    dataset.name()
                ));
            }
            for error in &errors {
                say(format!("error\t{error}"));
            }
            Ok(if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Config {
            action:
                ConfigAction::Suggest {
                    file,
                    name,
                    append_dim,
                    zarr_format,
                },
        } => {
            let suggestion = zru::config::suggest::suggest(&file, &name, &append_dim, zarr_format)?;
            say(serde_json::to_string_pretty(&suggestion.config)?);
            for var in &suggestion.passed {
                eprintln!("passthrough\t{var}");
            }
            for (var, why) in &suggestion.decoded {
                eprintln!("decoded\t{var}\t{why}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn doctor(args: DoctorArgs) -> Result<ExitCode> {
    let mut settings = args.settings.settings()?;
    let set = |field: &mut Option<String>, value: Option<String>| {
        if value.is_some() {
            *field = value;
        }
    };
    if let Some(lock_dir) = args.lock_dir {
        settings.lock_dir = lock_dir;
    }
    set(&mut settings.efs_file_system_id, args.efs_file_system_id);
    set(&mut settings.efs_access_point_id, args.efs_access_point_id);
    set(&mut settings.alarm_prefix, args.alarm_prefix);
    if args.window_minutes.is_some() {
        settings.doctor_window = zru::aws::settings::doctor_window(args.window_minutes)?;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let checks = runtime.block_on(async {
        let clients = Clients::from_env().await;
        zru::aws::doctor::run(&settings, &clients).await
    });
    for check in &checks {
        if args.json {
            say_json(serde_json::to_string(check)?);
        } else {
            say(check.line());
        }
    }
    Ok(if checks.iter().all(|c| c.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn updater(location: &Location) -> Result<Updater> {
    let options = LoadOptions {
        raw_root: Some(location.raw_root.clone()),
        scan_raw_root: false,
    };
    let catalog = Catalog::load_dir_with(&location.config, &options)?;
    Ok(Updater::new(catalog, location.raw_root.clone()))
}
