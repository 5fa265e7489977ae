//! The per-store lock: an exclusive lock on a file that belongs to the store, waited
//! for with a timeout. Whoever holds it is the only writer of the store, its ledger and
//! the receiver of its message group, and the only one that may run its recovery.
//!
//! A local store's lock file sits beside the store, under its resolved location (the
//! store directory with symbolic links resolved, plus [`LOCK_SUFFIX`]:
//! `data/zarr/sst.zarr` has `/abs/data/zarr/sst.zarr.zru-lock`), so every writer of
//! the store takes the same lock whatever its `--state-dir`, `--lock-dir` or working
//! directory. A store on S3 has its lock file in the lock directory (on AWS an EFS
//! mount), named after the store's canonical URL (`s3://bucket/prefix`, no trailing
//! slash).
//!
//! Uses the standard library's `File::try_lock` (flock(2) on Unix): the lock goes
//! away with the process, however it ends. The lock file is opened without following
//! a symbolic link (`O_NOFOLLOW`) and must be a regular file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::store::StoreLocation;

/// Why a store's lock could not be taken.
#[derive(Debug, Error)]
pub enum LockError {
    /// Creating, opening or locking the lock file failed.
    #[error("lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Something other than a regular file (a directory, a FIFO, a symbolic link) is
    /// where the lock file goes.
    #[error("lock {path}: {reason}; remove it (zru creates the lock file itself)")]
    NotAFile {
        /// The lock file.
        path: PathBuf,
        /// What is there instead.
        reason: String,
    },
    /// Another process held the lock for the whole timeout.
    #[error(
        "timed out after {waited:.1?} waiting for the lock {path} of store {store} (held by {holder}); another `zru flush` is writing this store"
    )]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// The store it locks.
        store: String,
        /// How long zru waited.
        waited: Duration,
        /// Who holds it, as the holder wrote it into the lock file (`pid N`).
        holder: String,
    },
}

/// Held while the value lives.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

const POLL: Duration = Duration::from_millis(25);

/// The suffix of a local store's lock file after the store's name.
pub const LOCK_SUFFIX: &str = ".zru-lock";

/// A local store's directory with symbolic links resolved: the directory itself if it
/// exists, else its parent (created if missing) and its name.
pub(crate) fn resolved_store_dir(store: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(store)?;
    if let Ok(resolved) = std::fs::canonicalize(&absolute) {
        return Ok(resolved);
    }
    let name = absolute.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: a store path needs a directory name", store.display()),
        )
    })?;
    let parent = absolute
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)?;
    Ok(std::fs::canonicalize(parent)?.join(name))
}

/// The lock file of `store`: beside a local store's resolved directory, or in
/// `lock_dir` for a store on S3 (named after its canonical URL).
pub(crate) fn lock_path(lock_dir: &Path, store: &StoreLocation) -> std::io::Result<PathBuf> {
    match store {
        StoreLocation::Local(path) => {
            let resolved = resolved_store_dir(path)?;
            let mut name = resolved
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| "store".into());
            name.push(LOCK_SUFFIX);
            Ok(resolved.with_file_name(name))
        }
        StoreLocation::S3 { .. } => {
            let name: String = store
                .to_string()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            Ok(lock_dir.join(format!("{}.lock", name.trim_start_matches('_'))))
        }
    }
}

/// Opens (creating) a lock or state file for reading and writing without following a
/// symbolic link at its path, without blocking on a FIFO, and refuses anything but a
/// regular file.
fn open_lock_file(path: &Path) -> Result<File, LockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                LockError::NotAFile {
                    path: path.to_path_buf(),
                    reason: "is a symbolic link, which zru does not follow".into(),
                }
            } else {
                LockError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    let kind = file
        .metadata()
        .map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .file_type();
    if !kind.is_file() {
        return Err(LockError::NotAFile {
            path: path.to_path_buf(),
            reason: "is not a regular file".into(),
        });
    }
    Ok(file)
}

impl StoreLock {
    /// Waits up to `timeout` for the lock of `store` (see `lock_path`).
    pub fn acquire(
        lock_dir: &Path,
        store: &StoreLocation,
        timeout: Duration,
    ) -> Result<Self, LockError> {
        let path = lock_path(lock_dir, store).map_err(|source| LockError::Io {
            path: store.display_path(),
            source,
        })?;
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = open_lock_file(&path)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(POLL.min(timeout.saturating_sub(start.elapsed())))
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Timeout {
                        holder: holder(&mut file),
                        path,
                        store: crate::text::redact_urls(&store.to_string()),
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

/// What the holder wrote in the lock file (read through the already opened file).
fn holder(file: &mut File) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(256).read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "an unknown process".into()
    } else {
        crate::text::printable(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(path: &Path) -> StoreLocation {
        StoreLocation::Local(path.to_path_buf())
    }

    #[test]
    fn a_second_holder_times_out_with_a_clear_error_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(&dir.path().join("data/zarr/sst.zarr"));
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
    fn a_local_store_has_one_lock_whatever_the_lock_dir_or_the_path_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("data/zarr/sst.zarr");
        std::fs::create_dir_all(&store).unwrap();
        std::os::unix::fs::symlink(dir.path().join("data"), dir.path().join("alias")).unwrap();
        let expected = std::fs::canonicalize(dir.path())
            .unwrap()
            .join("data/zarr/sst.zarr.zru-lock");
        let first = StoreLock::acquire(&dir.path().join("state-a"), &local(&store), Duration::ZERO)
            .unwrap();
        assert_eq!(first.path, expected);
        for (lock_dir, path) in [
            ("state-b", store.clone()),
            ("state-c", dir.path().join("alias/zarr/sst.zarr")),
            ("state-d", dir.path().join("data/zarr/../zarr/sst.zarr")),
        ] {
            let other = StoreLock::acquire(
                &dir.path().join(lock_dir),
                &local(&path),
                Duration::from_millis(30),
            );
            assert!(
                matches!(other, Err(LockError::Timeout { .. })),
                "{path:?}: {other:?}"
            );
        }
        // The lock of a store that does not exist yet sits beside where it will be.
        let new = dir.path().join("new/zarr/x.zarr");
        assert_eq!(
            lock_path(Path::new("/unused"), &local(&new)).unwrap(),
            std::fs::canonicalize(dir.path())
                .unwrap()
                .join("new/zarr/x.zarr.zru-lock")
        );
    }

    #[test]
    fn s3_lock_files_are_named_after_the_canonical_url() {
        let s3 = StoreLocation::parse("s3://bkt/stores/sst.zarr/").unwrap();
        assert_eq!(
            lock_path(Path::new("/locks"), &s3).unwrap(),
            PathBuf::from("/locks/s3___bkt_stores_sst.zarr.lock")
        );
    }

    #[test]
    fn a_symlink_or_a_fifo_at_the_lock_path_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(&dir.path().join("sst.zarr"));
        let path = lock_path(dir.path(), &store).unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let error = StoreLock::acquire(dir.path(), &store, Duration::ZERO).unwrap_err();
        assert!(matches!(error, LockError::NotAFile { .. }), "{error}");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

        std::fs::remove_file(&path).unwrap();
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let error = StoreLock::acquire(dir.path(), &store, Duration::ZERO).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
