//! The raw directory's files as zru reads them: where a local event's object lives
//! (its raw root, canonical), and which files may be read at all.
//!
//! A file is read only if it is a regular file whose resolved path is inside the raw
//! root: a symbolic link to elsewhere is refused (the watcher's start-up catch-up does
//! not even list links), and so is a FIFO, a socket or a device (opening one could
//! block the flush, which holds the store's lock, forever).

use std::path::{Path, PathBuf};

/// `root` with symbolic links resolved (absolute if it does not exist): the name a
/// local event records for its raw root, compared by the flush with its own.
pub(crate) fn canonical_root(root: &Path) -> PathBuf {
    std::fs::canonicalize(root)
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_path_buf())
}

/// Why `key` is not a canonical object key, if it is not: an empty path component
/// (`sst//x.nc`, a trailing or leading `/`) or a `.` component would name the same file
/// as another key (`sst/x.nc`) and so give one file two ledger entries and two sets of
/// slots. `None` for a canonical key (`..` and absolute keys are refused by
/// [`crate::update::check_key`]).
pub(crate) fn non_canonical_key(key: &str) -> Option<String> {
    if key.split('/').any(|part| part.is_empty() || part == ".") {
        return Some(format!(
            "key {:?} is not canonical: empty or '.' path components ('//', a leading or \
             trailing '/') would name the same file as another key",
            crate::text::printable(key)
        ));
    }
    None
}

/// Ok if `path` may be read as a raw object under `raw_root`; else why not. A path that
/// does not exist is Ok here (the caller reports a missing object its own way).
pub fn check_raw_file(raw_root: &Path, path: &Path) -> Result<(), String> {
    let resolved = match std::fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let root = canonical_root(raw_root);
    if !resolved.starts_with(&root) {
        return Err(format!(
            "{} resolves to {}, outside the raw root {}: zru does not follow symbolic links \
             out of the raw root",
            path.display(),
            resolved.display(),
            root.display()
        ));
    }
    let kind = std::fs::metadata(&resolved)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .file_type();
    if !kind.is_file() {
        return Err(format!(
            "{} is not a regular file ({}): refused",
            path.display(),
            describe(&kind)
        ));
    }
    Ok(())
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_keys_are_taken() {
        assert_eq!(non_canonical_key("sst/x.nc"), None);
        assert_eq!(non_canonical_key("sst/dir one/x y.nc"), None);
        for key in [
            "sst//x.nc",
            "sst/x.nc/",
            "/sst/x.nc",
            "sst/./x.nc",
            "",
            "./x.nc",
        ] {
            let error = non_canonical_key(key).unwrap_or_default();
            assert!(error.contains("not canonical"), "{key:?}: {error}");
        }
    }

    #[test]
    fn links_out_of_the_root_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("raw");
        std::fs::create_dir_all(root.join("sst")).unwrap();
        std::fs::write(root.join("sst/a.nc"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.nc"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.nc"), root.join("sst/out.nc")).unwrap();
        std::os::unix::fs::symlink(root.join("sst/a.nc"), root.join("sst/in.nc")).unwrap();
        let fifo = root.join("sst/fifo.nc");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

        assert_eq!(check_raw_file(&root, &root.join("sst/a.nc")), Ok(()));
        assert_eq!(check_raw_file(&root, &root.join("sst/in.nc")), Ok(()));
        assert_eq!(check_raw_file(&root, &root.join("sst/none.nc")), Ok(()));
        let out = check_raw_file(&root, &root.join("sst/out.nc")).unwrap_err();
        assert!(out.contains("outside the raw root"), "{out}");
        let fifo = check_raw_file(&root, &fifo).unwrap_err();
        assert!(fifo.contains("a FIFO"), "{fifo}");
        let dir_error = check_raw_file(&root, &root.join("sst")).unwrap_err();
        assert!(dir_error.contains("a directory"), "{dir_error}");
    }
}
