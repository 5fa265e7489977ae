//! Before-images of the keys a batch overwrites or erases, kept under the store's
//! sidecar directory (`.zru/undo/KEY`) from just before the batch first writes a key
//! until its commit, so that the recovery pass can put back every key a dead batch
//! changed (see [`super::recovery`]). Images lie flat in that one directory, their names
//! the keys with `%` and `/` percent-encoded: no directory tree to create per batch and
//! remove after it (on a local store that was most of the cost).
//!
//! On a local store every write is a temporary file renamed over its key, so the file
//! a key names is never modified in place: a hard link to it is a before-image that
//! costs no copy, and a key that does not exist is found by the same system call
//! (`ENOENT`). On a filesystem without hard links, and on S3, the bytes are copied (GET
//! then PUT). Nothing is written or linked outside the store root: the paths of the key
//! and of its image are checked for symbolic links on the way, as every write is.

use std::io::ErrorKind;
use std::path::Path;

use rayon::prelude::*;
use zarrs::storage::{StorageError, StoreKey, StorePrefix};

use super::atomic_fs::{inside, read_regular_nofollow, replace_file, temp_beside};
use super::staged::{Storage, SIDECAR_DIR};

/// The directory (key prefix) of before-images.
pub const UNDO_DIR: &str = ".zru/undo";

/// The key of `key`'s before-image.
pub fn image_key(key: &str) -> Result<StoreKey, StorageError> {
    let name = key.replace('%', "%25").replace('/', "%2F");
    StoreKey::new(format!("{UNDO_DIR}/{name}"))
        .map_err(|e| StorageError::Other(format!("no before-image key for {key}: {e}")))
}

/// Where before-images are kept: `root` for a local store (hard links), else copies
/// through `storage`.
#[derive(Clone, Copy)]
pub struct Images<'a> {
    pub storage: &'a Storage,
    pub root: Option<&'a Path>,
}

/// Keys sorted by whether they existed before the batch.
#[derive(Debug, Default)]
pub struct Kept {
    /// Keys that existed: their before-images are kept.
    pub saved: Vec<String>,
    /// Keys that did not exist.
    pub created: Vec<String>,
}

impl Images<'_> {
    /// Keeps the before-image of each of `keys` that exists (in parallel); sorts them.
    pub fn keep(&self, keys: &[StoreKey]) -> Result<Kept, StorageError> {
        let existed: Vec<(String, bool)> = keys
            .par_iter()
            .map(|key| Ok((key.as_str().to_string(), self.keep_one(key)?)))
            .collect::<Result<_, StorageError>>()?;
        let mut kept = Kept::default();
        for (key, existed) in existed {
            if existed {
                kept.saved.push(key);
            } else {
                kept.created.push(key);
            }
        }
        Ok(kept)
    }

    /// Keeps `key`'s before-image if it exists; true if it did.
    fn keep_one(&self, key: &StoreKey) -> Result<bool, StorageError> {
        let image = image_key(key.as_str())?;
        let Some(root) = self.root else {
            return Ok(match self.storage.get(key)? {
                Some(bytes) => {
                    self.storage.set(&image, bytes)?;
                    true
                }
                None => false,
            });
        };
        let image = inside(root, image.as_str())?;
        let source = root.join(key.as_str());
        // At most: create the image's directory, replace a stale image, link.
        for _ in 0..3 {
            match std::fs::hard_link(&source, &image) {
                Ok(()) => {
                    if let Err(e) = inside(root, key.as_str()) {
                        let _ = std::fs::remove_file(&image);
                        return Err(e);
                    }
                    crate::fault::point();
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    match std::fs::symlink_metadata(&source) {
                        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                        Err(e) => return Err(e.into()),
                        Ok(_) => {
                            if let Some(dir) = image.parent() {
                                std::fs::create_dir_all(dir)?;
                            }
                        }
                    }
                }
                // An image left by a batch killed before its intent record named it.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => std::fs::remove_file(&image)?,
                // No hard links on this filesystem: a copy.
                Err(_) => {
                    inside(root, key.as_str())?;
                    return Ok(match read_regular_nofollow(&source)? {
                        Some(bytes) => {
                            replace_file(&image, &bytes)?;
                            crate::fault::point();
                            true
                        }
                        None => false,
                    });
                }
            }
        }
        Err(StorageError::Other(format!(
            "cannot keep the before-image of {key} at {}",
            image.display()
        )))
    }

    /// Puts `key`'s before-image back over it (atomically); false if there is none (an
    /// interrupted recovery put it back, then began erasing the images).
    pub fn restore(&self, key: &str) -> Result<bool, StorageError> {
        let image = image_key(key)?;
        let target = StoreKey::new(key)
            .map_err(|e| StorageError::Other(format!("bad key {key} to restore: {e}")))?;
        let Some(root) = self.root else {
            return Ok(match self.storage.get(&image)? {
                Some(bytes) => {
                    self.storage.set(&target, bytes)?;
                    true
                }
                None => false,
            });
        };
        let image = inside(root, image.as_str())?;
        let target = inside(root, key)?;
        match std::fs::symlink_metadata(&image) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A link to the image beside the key, renamed over it: the key is the old file
        // again (a link at the key's path is replaced, its target untouched).
        let temp = temp_beside(&target);
        let restored = match std::fs::hard_link(&image, &temp) {
            Ok(()) => std::fs::rename(&temp, &target),
            Err(_) => match read_regular_nofollow(&image)? {
                Some(bytes) => replace_file(&target, &bytes),
                None => return Ok(false),
            },
        };
        if let Err(e) = restored {
            let _ = std::fs::remove_file(&temp);
            return Err(e.into());
        }
        Ok(true)
    }

    /// Erases every before-image (also those of a batch killed before its record named
    /// them). On S3 it lists the images' prefix: call it only where images may be.
    pub fn drop_all(&self) -> Result<(), StorageError> {
        let Some(root) = self.root else {
            return self
                .storage
                .erase_prefix(&StorePrefix::new(format!("{UNDO_DIR}/"))?);
        };
        let dir = inside(root, UNDO_DIR)?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }?;
        // The sidecar directory is not left behind empty (readers listing the group
        // would warn about it).
        let _ = std::fs::remove_dir(root.join(SIDECAR_DIR));
        Ok(())
    }

    /// True if a local store has before-images (a stat); always false on S3, where
    /// finding them would take a listing.
    pub fn any_local(&self) -> bool {
        self.root
            .is_some_and(|root| std::fs::symlink_metadata(root.join(UNDO_DIR)).is_ok())
    }
}
