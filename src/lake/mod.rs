//! The lake: where every step reads its input and writes its output, addressed by
//! '/'-separated keys under one root. Writes are atomic (a temporary object, then a
//! rename), and a step publishes by writing its manifest or state record last, so a
//! reader never sees half a run.
//!
//! [`Lake`] is the handle every step holds; behind it one [`LakeStore`] per back end
//! answers the same operations, chosen from the pipeline's [`LakeUrl`] by
//! [`LakeUrl::build`]: a local directory ([`local`]), or S3 ([`s3`]). Both write
//! through a local directory: the lake itself, or for S3 a staging directory (the
//! cache) whose objects are uploaded when committed. Readers that need a file path
//! (Parquet, DuckDB) get one through [`Lake::local_path`], which on S3 downloads the
//! object into the cache when it is missing or differs in size. Small JSON objects
//! (state, manifests, the lease) are always read from the store itself. One contract
//! suite ([`contract`]) runs against both back ends.
//!
//! Keys are spelled in one place, [`layout`]: `raw/<source>/<run>/…` with
//! `_manifest.json`, `clean/<entity>/<run>/`, `quarantine/<entity>/<run>/`,
//! `reports/<run>/`, `identity/<run>/`, and `_state/` for run records, cursors and
//! the lease.

#[doc(hidden)]
pub mod contract;
pub mod layout;
pub mod local;
pub mod manifest;
pub mod s3;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
    pub(crate) fn cache_root(&self) -> PathBuf {
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

impl LakeUrl {
    /// The store behind this URL: the closed set of back ends, picked here.
    pub fn build(&self) -> Result<Arc<dyn LakeStore>, LakeError> {
        Ok(match self {
            Self::Local(root) => Arc::new(local::LocalStore::open(root)?),
            Self::S3(loc) => Arc::new(s3::S3Lake::new(loc, s3::S3Store::connect(loc)?)?),
        })
    }
}

/// What a lake back end does. Every write goes through a local file first: the
/// [`Lake`] stages it under [`LakeStore::root`], renames it to its key's path there,
/// then [`LakeStore::publish`]es it.
pub trait LakeStore: fmt::Debug + Send + Sync {
    /// The local directory behind keys: the lake itself, or the staging cache.
    fn root(&self) -> &Path;

    /// Whether the lake is that local directory itself (nothing remote behind it).
    fn is_local(&self) -> bool;

    /// Makes the complete file staged at `staged` (`root/key`) the object `key`.
    fn publish(&self, key: &str, staged: &Path) -> Result<(), LakeError>;

    /// The object's bytes, or None when there is none.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError>;

    fn exists(&self, key: &str) -> Result<bool, LakeError>;

    /// Every key starting with `prefix` (a string prefix, not only a folder), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError>;

    /// Removes an object; removing a missing one is not an error.
    fn delete(&self, key: &str) -> Result<(), LakeError>;

    /// Creates an object only if none exists, atomically and whole (a reader sees no
    /// object or all of `bytes`); false when one was already there.
    fn create_new(&self, key: &str, bytes: &[u8]) -> Result<bool, LakeError>;

    /// The path of an up-to-date local copy of `key` (missing when the object is).
    fn fetch(&self, key: &str) -> Result<PathBuf, LakeError>;

    /// See [`Lake::copy_within`]; None where the back end has no such copy.
    fn copy_within(
        &self,
        _bucket: &str,
        _src: &str,
        _key: &str,
        _local: &Path,
    ) -> Result<Option<(u64, String)>, LakeError> {
        Ok(None)
    }
}

/// A lake: the handle every step holds, over one [`LakeStore`].
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn LakeStore>,
}

impl Lake {
    pub fn open(url: &LakeUrl) -> Result<Self, LakeError> {
        Ok(Self {
            store: url.build()?,
        })
    }

    /// An S3 lake over an already connected store (tests tune its part size).
    pub fn with_store(loc: &S3Location, store: s3::S3Store) -> Result<Self, LakeError> {
        Ok(Self {
            store: Arc::new(s3::S3Lake::new(loc, store)?),
        })
    }

    /// Whether the lake is a local directory (not staged for a remote store).
    pub fn is_local(&self) -> bool {
        self.store.is_local()
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
                self.store.root().join(key)
            }
        }
    }

    /// Like [`Lake::local_path`], with the error: the path of a local copy of `key`.
    pub fn fetch(&self, key: &str) -> Result<PathBuf, LakeError> {
        self.store.fetch(key)
    }

    /// Every key starting with `prefix` (`raw/crm/`), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        self.store.list(prefix)
    }

    /// Writes an object atomically through a writer: readers see the old object or
    /// the complete new one, never a part.
    pub fn write_with<T>(
        &self,
        key: &str,
        write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
    ) -> Result<T, LakeError> {
        let path = self.store.root().join(key);
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
        self.store.publish(key, &path)?;
        Ok(value)
    }

    /// Starts an object written over time (a Parquet file batch by batch): nothing is
    /// visible under `key` until [`AtomicFile::commit`]; dropping it uncommitted
    /// leaves no trace.
    pub fn create(&self, key: &str) -> Result<AtomicFile, LakeError> {
        let path = self.store.root().join(key);
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
        self.put(key, &to_json(key, value)?)
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
        self.store.copy_within(bucket, src, key, local)
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        self.store.get(key)
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
        self.store.exists(key).unwrap_or_else(|err| {
            tracing::error!(key, error = %err, "lake: cannot check object");
            false
        })
    }

    /// Creates an object only if none exists, atomically and whole; false when it
    /// was already there.
    pub fn create_new(&self, key: &str, bytes: &[u8]) -> Result<bool, LakeError> {
        self.store.create_new(key, bytes)
    }

    /// [`Lake::create_new`] of a value as JSON.
    pub fn create_new_json<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, LakeError> {
        self.create_new(key, &to_json(key, value)?)
    }

    /// Removes an object; removing a missing one is not an error.
    pub fn delete(&self, key: &str) -> Result<(), LakeError> {
        self.store.delete(key)
    }

    /// Removes the temporary files (`*.tmp-<pid>-<n>`) that processes which no longer
    /// exist left under the lake's local directory (the lake itself, or the S3
    /// staging cache) when they were killed mid-write; returns their paths. Only runs
    /// under the lease call this, so no live writer is disturbed.
    pub fn remove_dead_temps(&self) -> Result<Vec<PathBuf>, LakeError> {
        let mut removed = Vec::new();
        let mut stack = vec![self.store.root().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LakeError::io("")(e)),
            };
            for entry in entries {
                let entry = entry.map_err(LakeError::io(""))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(LakeError::io(""))?;
                if kind.is_dir() {
                    stack.push(path);
                    continue;
                }
                let pid = entry.file_name().to_str().and_then(temp_pid);
                if pid.is_some_and(|pid| !pid_alive(pid)) {
                    match fs::remove_file(&path) {
                        Ok(()) => removed.push(path),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(LakeError::io("")(e)),
                    }
                }
            }
        }
        removed.sort();
        Ok(removed)
    }
}

fn to_json<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, LakeError> {
    serde_json::to_vec_pretty(value).map_err(|source| LakeError::Json {
        key: key.to_string(),
        source,
    })
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

    /// The temporary file's path, for a writer that opens it by name (DuckDB's
    /// COPY); [`AtomicFile::commit`] publishes whatever it holds then.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
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
        self.lake.store.publish(&self.key, &self.path)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After a commit the temporary name is gone and this does nothing.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// A temporary name beside `path`, unique to this process and call:
/// `<name>.tmp-<pid>-<n>`. Listings hide such names, and [`Lake::remove_dead_temps`]
/// clears those of processes that died.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// The process id in a temporary name made by [`temp_sibling`] (or by earlier
/// versions, `<name>.tmp-<pid>`); None for any other name.
pub(crate) fn temp_pid(name: &str) -> Option<u32> {
    let (_, tail) = name.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-').unwrap_or((tail, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process with this id exists on this host (assumed so where there is
/// no `/proc` to ask).
pub(crate) fn pid_alive(pid: u32) -> bool {
    pid == std::process::id()
        || !Path::new("/proc/self").exists()
        || Path::new(&format!("/proc/{pid}")).exists()
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

    fn local() -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&LakeUrl::Local(dir.path().into())).expect("open");
        (dir, lake)
    }

    #[test]
    fn the_local_lake_keeps_the_lake_contract() {
        let (_dir, lake) = local();
        assert!(lake.is_local());
        contract::run(&lake);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file_on_disk() {
        let (dir, lake) = local();
        lake.put("a/b.txt", b"one").expect("put");
        let failed: Result<(), _> = lake.write_with("a/b.txt", |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("crash"))
        });
        assert!(failed.is_err());
        let names: Vec<_> = fs::read_dir(dir.path().join("a")).expect("dir").collect();
        assert_eq!(names.len(), 1, "temp file left behind");
    }

    #[test]
    fn temporary_names_carry_the_writers_pid() {
        let tmp = temp_sibling(Path::new("/l/raw/a.csv"));
        let name = tmp.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(temp_pid(name), Some(std::process::id()));
        assert_eq!(temp_pid("a.csv.tmp-123"), Some(123), "older form");
        assert_eq!(temp_pid("a.csv.tmp-123-4"), Some(123));
        assert_eq!(temp_pid("a.tmp-x.csv"), None);
        assert_eq!(temp_pid("a.csv"), None);
        assert_ne!(temp_sibling(Path::new("a")), temp_sibling(Path::new("a")));
    }

    #[test]
    fn temporary_files_of_dead_processes_are_removed_and_live_ones_kept() {
        let (dir, lake) = local();
        // A pid above any kernel's pid_max belongs to no process.
        let dead = dir.path().join("raw/crm/r1/000-a.csv.tmp-4294967294-0");
        let dead_old_form = dir.path().join("clean/p/r1/data.parquet.tmp-4294967293");
        let ours = temp_sibling(&dir.path().join("clean/p/r2/data.parquet"));
        let object = dir.path().join("raw/crm/r1/001-b.csv");
        for path in [&dead, &dead_old_form, &ours, &object] {
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, b"x").expect("write");
        }
        let removed = lake.remove_dead_temps().expect("sweep");
        let mut want = vec![dead_old_form.clone(), dead.clone()];
        want.sort();
        assert_eq!(removed, want);
        assert!(!dead.exists() && !dead_old_form.exists());
        assert!(ours.exists(), "a live writer's temp was removed");
        assert!(object.exists(), "an object was removed");
        assert_eq!(lake.list("").expect("list"), ["raw/crm/r1/001-b.csv"]);
    }
}
