//! The per-store lock: an exclusive lock on a file in a lock directory (on AWS, an
//! EFS mount), waited for with a timeout. Whoever holds it is the only writer of the
//! store, its ledger and the receiver of its message group.
//!
//! Uses the standard library's `File::try_lock` (flock(2) on Unix): the lock goes
//! away with the process, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LockError {
    #[error("lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "timed out after {waited:.1?} waiting for the lock {path} of store {store} (held by {holder}); another `zru flush` is writing this store"
    )]
    Timeout {
        path: PathBuf,
        store: PathBuf,
        waited: Duration,
        holder: String,
    },
}

/// Held while the value lives.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    pub path: PathBuf,
}

const POLL: Duration = Duration::from_millis(25);

/// The lock file of `store` in `lock_dir`: the store path with separators replaced.
pub fn lock_path(lock_dir: &Path, store: &Path) -> PathBuf {
    // A URL (`s3://bucket/prefix`) names the same store from every working directory.
    let absolute = if store.to_string_lossy().contains("://") {
        store.to_path_buf()
    } else {
        std::path::absolute(store).unwrap_or_else(|_| store.to_path_buf())
    };
    let name: String = absolute
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    lock_dir.join(format!("{}.lock", name.trim_start_matches('_')))
}

impl StoreLock {
    /// Waits up to `timeout` for the lock of `store`.
    pub fn acquire(lock_dir: &Path, store: &Path, timeout: Duration) -> Result<Self, LockError> {
        let path = lock_path(lock_dir, store);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(lock_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(POLL.min(timeout.saturating_sub(start.elapsed())))
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Timeout {
                        holder: holder(&path),
                        path,
                        store: store.to_path_buf(),
                        waited: start.elapsed(),
                    })
                }
                Err(TryLockError::Error(source)) => return Err(io(source)),
            }
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "pid {}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file, path })
    }
}

fn holder(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "an unknown process".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_times_out_with_a_clear_error_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("data/zarr/sst.zarr");
        let first = StoreLock::acquire(dir.path(), &store, Duration::ZERO).unwrap();
        let error = StoreLock::acquire(dir.path(), &store, Duration::from_millis(50))
            .unwrap_err()
            .to_string();
        assert!(error.contains("timed out"), "{error}");
        assert!(error.contains("sst.zarr"), "{error}");
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        drop(first);
        assert!(StoreLock::acquire(dir.path(), &store, Duration::ZERO).is_ok());
    }

    #[test]
    fn lock_files_are_named_after_the_store() {
        let name = lock_path(Path::new("/locks"), Path::new("/a/b c/sst.zarr"));
        assert_eq!(name, PathBuf::from("/locks/a_b_c_sst.zarr.lock"));
        let s3 = lock_path(Path::new("/locks"), Path::new("s3://b/stores/sst.zarr"));
        assert_eq!(s3, PathBuf::from("/locks/s3___b_stores_sst.zarr.lock"));
    }
}
