//! The local back end: the lake is a directory, each key a file under it. A write is
//! staged under a temporary name beside its key and renamed into place (by
//! [`super::Lake`]); a create-if-absent writes the whole content under a temporary
//! name and hard-links it to the key, which fails when the key exists, so the object
//! appears complete or not at all.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{temp_pid, temp_sibling, LakeError, LakeStore};

#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<Self, LakeError> {
        fs::create_dir_all(root).map_err(LakeError::io(""))?;
        Ok(Self { root: root.into() })
    }
}

impl LakeStore for LocalStore {
    fn root(&self) -> &Path {
        &self.root
    }

    fn is_local(&self) -> bool {
        true
    }

    fn publish(&self, _key: &str, _staged: &Path) -> Result<(), LakeError> {
        // The staged file is the object.
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        match fs::read(self.root.join(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LakeError::io(key)(e)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool, LakeError> {
        self.root.join(key).try_exists().map_err(LakeError::io(key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        // Start at the deepest folder the prefix names, not at the root.
        let start = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let mut keys = Vec::new();
        let mut stack = vec![self.root.join(start)];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LakeError::io(prefix)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(LakeError::io(prefix))?;
                let path = entry.path();
                if entry.file_type().map_err(LakeError::io(prefix))?.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let key = rel.to_string_lossy().replace('\\', "/");
                let is_temp = key.rsplit('/').next().and_then(temp_pid).is_some();
                if key.starts_with(prefix) && !is_temp {
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<(), LakeError> {
        match fs::remove_file(self.root.join(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(LakeError::io(key)(e)),
            _ => Ok(()),
        }
    }

    fn create_new(&self, key: &str, bytes: &[u8]) -> Result<bool, LakeError> {
        let path = self.root.join(key);
        let tmp = temp_sibling(&path);
        let result = (|| {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut file = fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            // link(2) never replaces: exactly one of several racers creates the key,
            // and the content it links is already whole.
            match fs::hard_link(&tmp, &path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                // A file system without hard links (FAT, some network shares): an
                // exclusive create still lets one racer win, though a reader may see
                // the content before it is whole.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
                    ) =>
                {
                    match fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                    {
                        Ok(mut f) => f.write_all(bytes).and_then(|_| f.sync_all()).map(|_| true),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        })();
        let _ = fs::remove_file(&tmp);
        result.map_err(LakeError::io(key))
    }

    fn fetch(&self, key: &str) -> Result<PathBuf, LakeError> {
        Ok(self.root.join(key))
    }
}
