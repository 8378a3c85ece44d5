//! The lake: where every step reads its input and writes its output, addressed by
//! '/'-separated keys under one root. Writes are atomic (a temporary object, then a
//! rename), and a step publishes by writing its manifest or state record last, so a
//! reader never sees half a run.
//!
//! Two back ends answer to the same methods: a local directory, and S3 ([`s3`]). The
//! S3 lake keeps a local staging directory (the cache): objects are written there
//! first and uploaded when committed, and readers that need a file path (Parquet,
//! DuckDB) get one through [`Lake::local_path`], which downloads the object into the
//! cache when it is missing or differs in size. Small JSON objects (state, manifests,
//! the lease) are always read from S3 itself, never from the cache.
//!
//! Layout (see [`layout`]): `raw/<source>/<run>/…` with `_manifest.json` (and, for a
//! Data Exchange source on S3, its export jobs' staging `raw/<source>/_exports/`),
//! `clean/<entity>/<run>/`, `quarantine/<entity>/<run>/`, `reports/<run>/`,
//! `identity/<run>/`, and `_state/` for run records, cursors and the lease.

pub mod manifest;
pub mod s3;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Where the lake lives, as written in the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeUrl {
    /// `file://lake` (relative to the working directory) or `file:///abs/path`.
    Local(PathBuf),
    /// `s3://bucket/prefix`, with the `[lake]` options that reach it.
    S3(S3Location),
}

/// An S3 lake: bucket, key prefix and how to reach them (`[lake]` in the file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix without leading or trailing '/'; empty for the bucket's root.
    pub prefix: String,
    /// Region; without it the default chain decides (AWS_REGION, profile), then us-east-1.
    pub region: Option<String>,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); AWS_ENDPOINT_URL_S3 also works.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`host/bucket/key`), which most S3-compatible stores need.
    pub force_path_style: bool,
    /// Local staging directory; by default `<temp dir>/cdp-lake/<bucket>/<prefix>`.
    pub cache_dir: Option<PathBuf>,
}

impl S3Location {
    fn cache_root(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir()
                .join("cdp-lake")
                .join(&self.bucket)
                .join(&self.prefix)
        })
    }
}

impl Default for LakeUrl {
    fn default() -> Self {
        Self::Local(PathBuf::from("lake"))
    }
}

impl LakeUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// needs a directory, e.g. file://lake".into());
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "{url}: s3:// needs a bucket, e.g. s3://acme-cdp/lake"
                ));
            }
            return Ok(Self::S3(S3Location {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                ..S3Location::default()
            }));
        }
        if url.contains("://") {
            return Err(format!(
                "{url}: unknown lake scheme; use file://DIR or s3://BUCKET/PREFIX"
            ));
        }
        // A bare path is a local directory.
        Ok(Self::Local(PathBuf::from(url)))
    }
}

impl fmt::Display for LakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "file://{}", p.display()),
            Self::S3(loc) if loc.prefix.is_empty() => write!(f, "s3://{}", loc.bucket),
            Self::S3(loc) => write!(f, "s3://{}/{}", loc.bucket, loc.prefix),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake object {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: io::Error,
    },
    /// A request to a remote lake failed (after the SDK's bounded retries).
    #[error("lake {op} {object} (host {host}): {message}")]
    Remote {
        op: &'static str,
        object: String,
        host: String,
        message: String,
        transient: bool,
    },
    #[error("lake object {key} is not valid JSON: {source}")]
    Json {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl LakeError {
    /// True when trying again later may succeed (timeouts, unreachable hosts).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Remote {
                transient: true,
                ..
            }
        )
    }

    fn io(key: &str) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            key: key.to_string(),
            source,
        }
    }
}

/// A lake: a local directory, or an S3 prefix staged through a local directory.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The lake itself (local) or its staging cache (S3).
    root: PathBuf,
    remote: Option<Arc<s3::S3Store>>,
}

impl Lake {
    pub fn open(url: &LakeUrl) -> Result<Self, LakeError> {
        match url {
            LakeUrl::Local(root) => {
                fs::create_dir_all(root).map_err(LakeError::io(""))?;
                Ok(Self {
                    root: root.clone(),
                    remote: None,
                })
            }
            LakeUrl::S3(loc) => Self::with_store(loc, s3::S3Store::connect(loc)?),
        }
    }

    /// An S3 lake over an already connected store (tests tune its part size).
    pub fn with_store(loc: &S3Location, store: s3::S3Store) -> Result<Self, LakeError> {
        let root = loc.cache_root();
        fs::create_dir_all(&root).map_err(LakeError::io(""))?;
        Ok(Self {
            root,
            remote: Some(Arc::new(store)),
        })
    }

    /// The local file behind a key, for readers that want a path (Parquet, DuckDB).
    /// On S3 the object is downloaded into the staging cache first, unless the cache
    /// already holds a copy of the same size; if that fails the error is logged and
    /// the (missing) path returned, so the reader's open fails naming it.
    pub fn local_path(&self, key: &str) -> PathBuf {
        match self.fetch(key) {
            Ok(path) => path,
            Err(err) => {
                tracing::error!(key, error = %err, "lake: cannot stage object");
                self.root.join(key)
            }
        }
    }

    /// Like [`Lake::local_path`], with the error: the path of a local copy of `key`.
    pub fn fetch(&self, key: &str) -> Result<PathBuf, LakeError> {
        let path = self.root.join(key);
        let Some(remote) = &self.remote else {
            return Ok(path);
        };
        match remote.head(key)? {
            None => {
                // The cache never outlives the lake: a deleted object goes here too.
                let _ = fs::remove_file(&path);
            }
            Some(info) => {
                let cached = fs::metadata(&path).map(|m| m.len()).ok();
                if cached != Some(info.size) {
                    remote.download(key, &info, &path)?;
                }
            }
        }
        Ok(path)
    }

    /// Every key under `prefix` (`raw/crm/`), in no particular order.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        if let Some(remote) = &self.remote {
            return remote.list(prefix);
        }
        let mut keys = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LakeError::io(prefix)(e)),
            };
            for entry in entries {
                let path = entry.map_err(LakeError::io(prefix))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if key.starts_with(prefix) && !key.contains(".tmp-") {
                        keys.push(key);
                    }
                }
            }
        }
        Ok(keys)
    }

    /// Writes an object atomically through a writer: readers see the old object or
    /// the complete new one, never a part.
    pub fn write_with<T>(
        &self,
        key: &str,
        write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
    ) -> Result<T, LakeError> {
        let path = self.root.join(key);
        let tmp = temp_sibling(&path);
        let result = (|| {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut out = BufWriter::new(File::create(&tmp)?);
            let value = write(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            Ok(value)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let value = result.map_err(LakeError::io(key))?;
        self.upload(key, &path)?;
        Ok(value)
    }

    /// On S3, uploads the staged copy of `key`; a failed upload drops the copy too.
    fn upload(&self, key: &str, path: &Path) -> Result<(), LakeError> {
        if let Some(remote) = &self.remote {
            if let Err(e) = remote.put_file(key, path) {
                let _ = fs::remove_file(path);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Starts an object written over time (a Parquet file batch by batch): nothing is
    /// visible under `key` until [`AtomicFile::commit`]; dropping it uncommitted
    /// leaves no trace.
    pub fn create(&self, key: &str) -> Result<AtomicFile, LakeError> {
        let path = self.root.join(key);
        let tmp = temp_sibling(&path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(LakeError::io(key))?;
        }
        let file = File::create(&tmp).map_err(LakeError::io(key))?;
        Ok(AtomicFile {
            key: key.to_string(),
            path,
            tmp,
            file: Some(file),
            lake: self.clone(),
        })
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<(), LakeError> {
        self.write_with(key, |w| w.write_all(bytes))
    }

    pub fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| LakeError::Json {
            key: key.to_string(),
            source,
        })?;
        self.put(key, &bytes)
    }

    /// Copies a local file into the lake and returns its size and SHA-256.
    pub fn put_file(&self, key: &str, src: &Path) -> Result<(u64, String), LakeError> {
        self.write_with(key, |w| copy_hashing(&mut File::open(src)?, w))
    }

    /// On an S3 lake in `bucket`, copies the object `src` (a full key there) to `key`
    /// inside S3 rather than uploading `local`, its content already downloaded, which
    /// becomes the staged copy; returns its size and SHA-256. `None`, doing nothing,
    /// for another bucket, a local lake, or an object too large for one copy.
    pub fn copy_within(
        &self,
        bucket: &str,
        src: &str,
        key: &str,
        local: &Path,
    ) -> Result<Option<(u64, String)>, LakeError> {
        let Some(remote) = self.remote.as_ref().filter(|r| r.bucket() == bucket) else {
            return Ok(None);
        };
        let (size, sha256) = sha256_file(local).map_err(LakeError::io(key))?;
        if size > s3::MAX_COPY {
            return Ok(None);
        }
        remote.copy_within(src, key, &sha256)?;
        // The staged copy only spares a later download; without it a reader fetches.
        let path = self.root.join(key);
        let tmp = temp_sibling(&path);
        let staged = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|_| fs::copy(local, &tmp))
            .and_then(|_| fs::rename(&tmp, &path));
        if staged.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(Some((size, sha256)))
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        if let Some(remote) = &self.remote {
            return remote.get(key);
        }
        match fs::read(self.root.join(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LakeError::io(key)(e)),
        }
    }

    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LakeError> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| LakeError::Json {
                        key: key.to_string(),
                        source,
                    })
            }
        }
    }

    /// Whether an object is there. On S3 a failed request is logged and reads as
    /// absent; the read or write that follows then reports it.
    pub fn exists(&self, key: &str) -> bool {
        match &self.remote {
            None => self.root.join(key).exists(),
            Some(remote) => remote
                .head(key)
                .unwrap_or_else(|err| {
                    tracing::error!(key, error = %err, "lake: cannot check object");
                    None
                })
                .is_some(),
        }
    }

    /// Creates an object only if none exists; false when it was already there.
    pub fn create_new(&self, key: &str, bytes: &[u8]) -> Result<bool, LakeError> {
        if let Some(remote) = &self.remote {
            return remote.put_if_absent(key, bytes);
        }
        let path = self.root.join(key);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(LakeError::io(key))?;
        }
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(bytes).map_err(LakeError::io(key))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(LakeError::io(key)(e)),
        }
    }

    pub fn delete(&self, key: &str) -> Result<(), LakeError> {
        if let Some(remote) = &self.remote {
            remote.delete(key)?;
        }
        match fs::remove_file(self.root.join(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(LakeError::io(key)(e)),
            _ => Ok(()),
        }
    }
}

/// An object being written; see [`Lake::create`].
#[derive(Debug)]
pub struct AtomicFile {
    key: String,
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    lake: Lake,
}

impl AtomicFile {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The file to write to (taken once, by the writer that fills it).
    pub fn take_file(&mut self) -> Option<File> {
        self.file.take()
    }

    /// Makes the object visible under its key, durably (on S3: uploads it).
    pub fn commit(self) -> Result<(), LakeError> {
        let result = File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .and_then(|_| fs::rename(&self.tmp, &self.path));
        result.map_err(LakeError::io(&self.key))?;
        self.lake.upload(&self.key, &self.path)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After a commit the temporary name is gone and this does nothing.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// A temporary name beside `path`, unique to this process.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 and size of a local file, read in blocks.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    copy_hashing(&mut File::open(path)?, &mut io::sink())
}

/// Copies `input` to `out`, returning the byte count and the SHA-256 of what passed.
fn copy_hashing(input: &mut impl Read, out: &mut impl Write) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

/// Where each step's objects live. One place, so every step agrees.
pub mod layout {
    pub fn raw_run(source: &str, run: &str) -> String {
        format!("raw/{source}/{run}")
    }
    /// Where a dataexchange source's export jobs write on an S3 lake without
    /// `export_to`; staged there until landed in a run's folder.
    pub fn exports(source: &str) -> String {
        format!("raw/{source}/_exports")
    }
    pub fn clean(entity: &str, run: &str) -> String {
        format!("clean/{entity}/{run}/data.parquet")
    }
    pub fn quarantine(entity: &str, run: &str) -> String {
        format!("quarantine/{entity}/{run}/rows.parquet")
    }
    pub fn quality_report(run: &str) -> String {
        format!("reports/{run}/quality.json")
    }
    pub fn quality_html(run: &str) -> String {
        format!("reports/{run}/quality.html")
    }
    pub fn identity_graph(run: &str) -> String {
        format!("identity/{run}/graph.parquet")
    }
    pub fn identity_decisions(run: &str) -> String {
        format!("identity/{run}/decisions.parquet")
    }
    pub fn identity_model(run: &str) -> String {
        format!("identity/{run}/model.json")
    }
    pub fn profiles(run: &str) -> String {
        format!("identity/{run}/profiles.parquet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_local_dirs_and_refuse_unknown_schemes() {
        assert_eq!(
            LakeUrl::parse("file://lake"),
            Ok(LakeUrl::Local("lake".into()))
        );
        assert_eq!(
            LakeUrl::parse("/tmp/x"),
            Ok(LakeUrl::Local("/tmp/x".into()))
        );
        assert!(LakeUrl::parse("gs://b").is_err());
    }

    #[test]
    fn atomic_write_leaves_no_temp_and_failed_write_keeps_old_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&LakeUrl::Local(dir.path().into())).expect("open");
        lake.put("a/b.txt", b"one").expect("put");
        let failed: Result<(), _> = lake.write_with("a/b.txt", |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("crash"))
        });
        assert!(failed.is_err());
        assert_eq!(lake.get("a/b.txt").expect("get"), Some(b"one".to_vec()));
        let names: Vec<_> = fs::read_dir(dir.path().join("a")).expect("dir").collect();
        assert_eq!(names.len(), 1, "temp file left behind");
    }

    #[test]
    fn create_new_refuses_an_existing_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&LakeUrl::Local(dir.path().into())).expect("open");
        assert!(lake.create_new("_state/lock", b"x").expect("first"));
        assert!(!lake.create_new("_state/lock", b"y").expect("second"));
    }
}
