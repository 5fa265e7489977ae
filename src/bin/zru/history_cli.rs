//! `zru log` and `zru rollback`: history of Icechunk datasets (docs/icechunk.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use zru::config::{Catalog, Dataset};
use zru::pipeline::history::{log, log_line, rollback};

use crate::{say, say_json};

/// `zru log`.
#[derive(Args)]
pub struct LogArgs {
    /// Directory of per-dataset JSON configuration files.
    #[arg(long, default_value = "config")]
    config: PathBuf,
    /// The dataset (its `name`).
    dataset: String,
    /// Only the commits with an event of this object key.
    #[arg(long)]
    key: Option<String>,
    /// One JSON object per commit instead of a line of text.
    #[arg(long)]
    json: bool,
}

/// `zru rollback`.
#[derive(Args)]
pub struct RollbackArgs {
    /// Directory of per-dataset JSON configuration files.
    #[arg(long, default_value = "config")]
    config: PathBuf,
    /// The dataset (its `name`).
    dataset: String,
    /// The commit (snapshot id, see `zru log`) or tag the branch goes back to.
    #[arg(long)]
    to: String,
    /// Directory of the lock files of S3 stores (a local store's lock is beside it).
    #[arg(long, default_value = "data/state/locks")]
    lock_dir: PathBuf,
    /// Seconds to wait for the store's lock.
    #[arg(long, default_value_t = 60.0)]
    lock_timeout: f64,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

fn dataset(config: &Path, name: &str) -> Result<Dataset> {
    let catalog = Catalog::load_dir(config)?;
    catalog
        .dataset(name)
        .cloned()
        .ok_or_else(|| anyhow!("no dataset named {name:?} in {}", config.display()))
}

/// Prints the branch's commits, newest first.
pub fn run_log(args: LogArgs) -> Result<ExitCode> {
    let dataset = dataset(&args.config, &args.dataset)?;
    let commits = log(&dataset, args.key.as_deref())
        .with_context(|| format!("history of dataset {}", args.dataset))?;
    for commit in &commits {
        if args.json {
            say_json(serde_json::to_string(commit)?);
        } else {
            say(log_line(commit));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resets the branch and prints the commits taken off it.
pub fn run_rollback(args: RollbackArgs) -> Result<ExitCode> {
    let dataset = dataset(&args.config, &args.dataset)?;
    let timeout = Duration::try_from_secs_f64(args.lock_timeout)
        .with_context(|| format!("--lock-timeout {}", args.lock_timeout))?;
    let done = rollback(&dataset, &args.to, &args.lock_dir, timeout)
        .with_context(|| format!("rolling back dataset {}", args.dataset))?;
    if args.json {
        say_json(serde_json::to_string_pretty(&done)?);
        return Ok(ExitCode::SUCCESS);
    }
    say(format!("rolled back\t{} -> {}", done.from, done.to));
    for commit in &done.undone {
        say(format!("undone\t{}", log_line(commit)));
    }
    Ok(ExitCode::SUCCESS)
}
