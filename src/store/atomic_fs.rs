//! A filesystem store whose writes are atomic: each value goes to a unique temporary
//! file beside its destination and is renamed over it, so a process killed mid-write
//! leaves either the old value or the new one, never half a chunk.
//!
//! It never writes or deletes outside the store's directory: a key whose path below the
//! store root passes through a symbolic link (a directory planted as a link to elsewhere)
//! is refused for writes and erasures, temporary files are created exclusively
//! (`O_CREAT | O_EXCL`, which never follows a link) and a link at a key's own path is
//! replaced by the rename, never written through. [`create_new_nofollow`] and
//! [`open_regular_nofollow`] do the same for zru's state files (ledger, lock).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix, WritableStorageTraits,
};

use super::staged::SIDECAR_DIR;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// [`FilesystemStore`] with write-to-temporary-then-rename semantics for `set`.
#[derive(Debug)]
pub struct AtomicFilesystemStore {
    inner: FilesystemStore,
    base: PathBuf,
}

/// Creates `path` for writing, exclusively (an existing file or a symbolic link at
/// `path` is an error: nothing is ever written through a link).
pub fn create_new_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens `path` for reading if it exists (`None` if not), without following a symbolic
/// link at `path` and without blocking on a FIFO; anything but a regular file is an
/// error saying what it is.
pub fn open_regular_nofollow(path: &Path) -> std::io::Result<Option<File>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::other(
                "is a symbolic link, which zru does not follow",
            ))
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("is not a regular file"));
    }
    Ok(Some(file))
}

/// Creates the temporary file `temp` exclusively; one left by a dead process that had
/// this process's id is removed first (a link there is removed, not followed).
fn create_temp(temp: &Path) -> std::io::Result<File> {
    match create_new_nofollow(temp) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(temp)?;
            create_new_nofollow(temp)
        }
        result => result,
    }
}

/// Reads all of the regular file `path` (a symbolic link is followed). It is opened
/// without blocking, so a FIFO, a socket or a device is refused at once with an error
/// saying so instead of hanging the reader.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, socket, device or directory): refused",
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads all of `path` (see [`open_regular_nofollow`]).
pub fn read_regular_nofollow(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let Some(mut file) = open_regular_nofollow(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Makes every write of the filesystem holding `dir` durable (`syncfs(2)`): one call
/// per batch instead of an `fsync` per chunk file. A directory that does not exist is
/// skipped.
pub fn sync_filesystem(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = match File::open(dir) {
        Ok(handle) => handle,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // SAFETY: syncfs(2) on a descriptor we own, valid for the duration of the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces `path` atomically with `bytes`: an exclusive temporary file beside it
/// (a stale one of this process removed first), fsync, rename. A symbolic link at
/// `path` is replaced, its target untouched.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let temp = temp_beside(path);
    let written = create_temp(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    renamed
}

impl AtomicFilesystemStore {
    pub fn new(base: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(base)?;
        let inner = FilesystemStore::new(base).map_err(|e| StorageError::Other(e.to_string()))?;
        Ok(Self {
            inner,
            base: base.to_path_buf(),
        })
    }

    fn inside(&self, key: &str) -> Result<PathBuf, StorageError> {
        inside(&self.base, key)
    }

    fn temp_path(destination: &Path) -> PathBuf {
        temp_beside(destination)
    }
}

/// A unique temporary path beside `destination` (its name plus `.zru-tmp-PID-N`).
pub fn temp_beside(destination: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = destination
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".zru-tmp-{}-{n}", std::process::id()));
    destination.with_file_name(name)
}

/// The path of `key` below the store root `base`, refused if a directory on the way
/// from the root to it is a symbolic link (a write or erasure would land outside the
/// store). A link at the key's own path is allowed: writes replace it.
pub fn inside(base: &Path, key: &str) -> Result<PathBuf, StorageError> {
    let parts: Vec<&str> = key.split('/').filter(|p| !p.is_empty()).collect();
    let mut path = base.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() && !last => {
                return Err(StorageError::Other(format!(
                    "{}: {} is a symbolic link: zru never writes or deletes through a \
                     link inside a store (it could lead outside the store)",
                    base.display(),
                    path.display()
                )))
            }
            Ok(_) => {}
            // Below a missing directory nothing exists yet: it is created as a
            // real directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                path.extend(&parts[i + 1..]);
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(path)
}

/// Removes `dir` and the directories below it that hold no file (best effort: an error,
/// such as a file appearing, leaves a directory where it is). True if `dir` is gone.
pub fn remove_empty_dirs(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        empty &= is_dir && remove_empty_dirs(&entry.path());
    }
    empty && std::fs::remove_dir(dir).is_ok()
}

impl ReadableStorageTraits for AtomicFilesystemStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.inner.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

impl WritableStorageTraits for AtomicFilesystemStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        use std::io::Write;
        self.inside(key.as_str())?;
        let destination = self.inner.key_to_fspath(key);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let temp = Self::temp_path(&destination);
        let written = create_temp(&temp).and_then(|mut file| file.write_all(&value));
        let renamed = written.and_then(|()| std::fs::rename(&temp, &destination));
        if let Err(e) = renamed {
            let _ = std::fs::remove_file(&temp);
            return Err(e.into());
        }
        Ok(())
    }

    fn set_partial_many(
        &self,
        _key: &StoreKey,
        _offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        Err(StorageError::Other(
            "partial writes are not atomic and are not used by zru".into(),
        ))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.inside(key.as_str())?;
        self.inner.erase(key)?;
        // zru's sidecar directory (`.zru/`, its intent record erased after every batch)
        // is not left behind empty: readers that list the group would warn about it.
        if key.as_str().starts_with(&format!("{SIDECAR_DIR}/")) {
            let sidecar = self.inner.key_to_fspath(&StoreKey::new(SIDECAR_DIR)?);
            remove_empty_dirs(&sidecar);
        }
        Ok(())
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        // The prefix's own directory must not be a link either: checked as the parent
        // of a key below it.
        self.inside(&format!("{}x", prefix.as_str()))?;
        self.inner.erase_prefix(prefix)
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

impl ListableStorageTraits for AtomicFilesystemStore {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.inner.list()
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.inner.list_prefix(prefix)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        self.inner.list_dir(prefix)
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.inner.size_prefix(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> StoreKey {
        StoreKey::new(s).unwrap()
    }

    #[test]
    fn sync_filesystem_syncs_a_directory_skips_a_missing_one_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        sync_filesystem(dir.path()).unwrap();
        sync_filesystem(&dir.path().join("not-yet")).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let error = sync_filesystem(&file.join("below-a-file")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn symlinked_directories_inside_a_store_are_never_written_or_erased_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("c")).unwrap();
        std::fs::write(outside.join("c/0"), b"not the store's").unwrap();
        let base = dir.path().join("s.zarr");
        std::fs::create_dir_all(base.join("ok")).unwrap();
        std::os::unix::fs::symlink(&outside, base.join("v")).unwrap();
        let store = AtomicFilesystemStore::new(&base).unwrap();

        let error = store
            .set(&key("v/c/1"), Bytes::from_static(b"x"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("symbolic link"), "{error}");
        assert!(store.erase(&key("v/c/0")).is_err());
        assert!(store
            .erase_prefix(&StorePrefix::new("v/").unwrap())
            .is_err());
        assert!(store
            .erase_prefix(&StorePrefix::new("v/c/").unwrap())
            .is_err());
        assert_eq!(
            std::fs::read(outside.join("c/0")).unwrap(),
            b"not the store's"
        );
        assert!(!outside.join("c/1").exists());
        // A link at a key's own path is replaced by the write, its target untouched.
        std::os::unix::fs::symlink(outside.join("c/0"), base.join("ok/k")).unwrap();
        store.set(&key("ok/k"), Bytes::from_static(b"new")).unwrap();
        assert_eq!(std::fs::read(base.join("ok/k")).unwrap(), b"new");
        assert_eq!(
            std::fs::read(outside.join("c/0")).unwrap(),
            b"not the store's"
        );
        // Real directories work as before.
        store.set(&key("ok/c/0"), Bytes::from_static(b"y")).unwrap();
        store.erase(&key("ok/c/0")).unwrap();
        assert!(!base.join("ok/c/0").exists());
    }

    #[test]
    fn state_files_are_replaced_not_written_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let error = read_regular_nofollow(&path).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        replace_file(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(read_regular_nofollow(&path).unwrap().unwrap(), b"new");
        assert!(create_new_nofollow(&path).is_err());
    }
}
