//! The `files` source: local files matched by a glob, copied into the lake as they
//! are; or, with a path `s3://BUCKET/KEY-GLOB`, the S3 objects whose keys match (listed
//! under the glob's literal prefix, downloaded, then landed the same way). With date parts in the path, a run for a data interval takes the partitions
//! that start in it (see [`super::template`]). A file is landed again only when its content changes (path + SHA-256 in the
//! cursor), so re-running ingest on the same files lands nothing.
//!
//! The glob is matched by walking from its literal folder (`in/` for `in/**/*.csv`).
//! Links to files are followed, and each file lands once however many paths reach
//! it (by its canonical path); links to folders are not followed, since they lead
//! back into the folder searched (a loop, or files found anyway) or out of it. What
//! cannot be read (a folder, a name that is not UTF-8) is skipped with a warning and
//! listed in the manifest's `skipped`; a source with nothing readable left fails.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

use polars::prelude::{ParquetReader, SerReader};

use super::aws::{Aws, Subject};
use super::landing::Landing;
use super::{compression, Source, SourceError};
use crate::config::{FilesConnector, ReadOptions, WindowMode};
use crate::lake::manifest::{Manifest, ManifestFile, Skipped};
use crate::lake::{sha256_file, Lake};
use crate::state;
use crate::state::interval::Interval;
use crate::vocab::FileFormat;

pub struct FilesSource<'a> {
    name: &'a str,
    read: &'a ReadOptions,
    files: &'a FilesConnector,
}

impl<'a> FilesSource<'a> {
    pub fn new(name: &'a str, read: &'a ReadOptions, files: &'a FilesConnector) -> Self {
        Self { name, read, files }
    }

    /// The files to consider: every partition, or those of `window`, each once, and
    /// what had to be skipped. An empty window is not an error (a quiet day); an
    /// empty source without one is, and so is one where all it found was unreadable.
    fn matching_files(&self, window: Option<&Interval>) -> Result<Found, SourceError> {
        let template = &self.files.template;
        let window = window.filter(|_| self.files.window == Some(WindowMode::Path));
        let globs = match window {
            Some(w) => template.globs_in(w),
            None => vec![template.glob_all()],
        };
        let mut found = Found::default();
        for pattern in &globs {
            found.walk(pattern).map_err(|e| SourceError::BadPattern {
                source_name: self.name.into(),
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
        }
        for s in &found.skipped {
            tracing::warn!(source = %self.name, path = %s.path, reason = %s.reason, "skipped");
        }
        let files = &found.files;
        if files.is_empty() && !found.skipped.is_empty() {
            return Err(SourceError::NothingReadable {
                source_name: self.name.into(),
                pattern: self.files.pattern.clone(),
                skipped: found.skipped,
            });
        }
        if let (true, Some(w)) = (files.is_empty(), window) {
            // A yearly file and a daily run: most days own no partition at all.
            if globs.is_empty() {
                tracing::info!(source = %self.name, window = %w, "no partition starts in the window");
            } else {
                tracing::warn!(source = %self.name, window = %w, partitions = globs.len(), "no files in the window's partitions");
            }
        } else if files.is_empty() {
            let pattern = &self.files.pattern;
            return Err(SourceError::NoFiles {
                source_name: self.name.into(),
                pattern: pattern.clone(),
            });
        }
        Ok(found)
    }

    fn format_of(&self, path: &Path) -> Result<FileFormat, SourceError> {
        self.read
            .format
            .or_else(|| FileFormat::from_path(path))
            .ok_or_else(|| SourceError::UnknownFormat {
                source_name: self.name.into(),
                path: path.into(),
            })
    }

    fn read_err(&self, path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
        let path = path.to_path_buf();
        move |source| SourceError::Read {
            source_name: self.name.into(),
            path,
            source,
        }
    }

    /// Data rows in a file, counted the way the cleaner will read it.
    fn count_rows(&self, path: &Path, format: FileFormat) -> Result<u64, SourceError> {
        match format {
            // Counted by the cleaner's own bounded readers: a long line costs no memory.
            FileFormat::Csv => {
                let input = BufReader::new(compression::open(path).map_err(self.read_err(path))?);
                crate::clean::read::count_csv_rows(input, self.read.delimiter, self.read.header)
                    .map_err(self.read_err(path))
            }
            FileFormat::Jsonl => {
                let input = BufReader::new(compression::open(path).map_err(self.read_err(path))?);
                crate::clean::read::count_jsonl_rows(input).map_err(self.read_err(path))
            }
            FileFormat::Parquet => {
                let file = File::open(path).map_err(self.read_err(path))?;
                ParquetReader::new(file)
                    .num_rows()
                    .map(|n| n as u64)
                    .map_err(|e| SourceError::Parquet {
                        source_name: self.name.into(),
                        path: path.into(),
                        message: e.to_string(),
                    })
            }
        }
    }
}

impl Source for FilesSource<'_> {
    fn name(&self) -> &str {
        self.name
    }

    fn check_window(&self, window: &Interval) -> Result<(), SourceError> {
        match self.files.window {
            Some(_) => Ok(()),
            None => Err(super::WindowRefusal {
                source_name: self.name.into(),
                reason: format!(
                    "({}) has no date parts ({}) in the path; add them to the path, or set window = \"snapshot\" on an undated source to land whatever is new in every interval",
                    self.files.pattern,
                    super::template::PARTS.join(", ")
                ),
            }
            .into_error(window)),
        }
    }

    fn land(
        &self,
        lake: &Lake,
        run_id: &str,
        window: Option<&Interval>,
    ) -> Result<Option<Manifest>, SourceError> {
        let cursor = state::read_cursor(lake, self.name)?;
        let mut landing = Landing::new(lake, self.name, run_id);
        if let Some(access) = &self.files.s3 {
            let aws = Aws::connect(self.name, access)?;
            let subject = Subject {
                source_name: self.name.into(),
                object: format!("path {:?}", self.files.pattern),
                service: "s3",
                not_found: "check the bucket in path".into(),
            };
            for (bucket, key) in self.matching_objects(&aws, &subject, window)? {
                let mut tmp =
                    tempfile::NamedTempFile::new().map_err(self.read_err(Path::new(&key)))?;
                aws.download(&subject, &bucket, &key, tmp.as_file_mut())?;
                let origin = format!("s3://{bucket}/{key}");
                let name = key.rsplit('/').next().unwrap_or(&key);
                let format = self.format_of(Path::new(name))?;
                self.land_file(&mut landing, &cursor, tmp.path(), origin, name, format)?;
            }
            return Ok(landing.finish(cursor, Vec::new())?);
        }
        let found = self.matching_files(window)?;
        landing.skip(found.skipped);
        for path in found.files {
            let origin = path.display().to_string();
            let format = self.format_of(&path)?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            self.land_file(&mut landing, &cursor, &path, origin, &name, format)?;
        }
        Ok(landing.finish(cursor, Vec::new())?)
    }
}

impl FilesSource<'_> {
    /// Lands one file found at `path` (read from `origin`) unless the cursor holds it
    /// with the same content.
    fn land_file(
        &self,
        landing: &mut Landing,
        cursor: &state::SourceCursor,
        path: &Path,
        origin: String,
        name: &str,
        format: FileFormat,
    ) -> Result<(), SourceError> {
        let lake = landing.lake();
        let (_, sha256) = sha256_file(path).map_err(self.read_err(path))?;
        if cursor.landed.get(&origin) == Some(&sha256) {
            return Ok(());
        }
        // A damaged file (say, a truncated gzip) still lands: the cleaner refuses
        // it with its reason and reads the other files.
        let rows = match self.count_rows(path, format) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(file = %origin, error = %e, "cannot count the rows; landed for the cleaner to refuse");
                0
            }
        };
        let key = landing.next_key(name);
        let (bytes, copied_sha) = lake.put_file(&key, path)?;
        if copied_sha != sha256 {
            // The file changed while we copied it; land it next run.
            tracing::warn!(file = %origin, "file changed during copy; skipped");
            lake.delete(&key)?;
            return Ok(());
        }
        landing.push(ManifestFile {
            key,
            origin,
            format,
            rows,
            bytes,
            sha256,
        });
        Ok(())
    }

    /// The objects an `s3://` path matches (those of `window`'s partitions, when
    /// given), as (bucket, key) in key order, each once.
    fn matching_objects(
        &self,
        aws: &Aws,
        subject: &Subject,
        window: Option<&Interval>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        let window = window.filter(|_| self.files.window == Some(WindowMode::Path));
        let globs = match window {
            Some(w) => self.files.template.globs_in(w),
            None => vec![self.files.template.glob_all()],
        };
        let mut found: Vec<(String, String)> = Vec::new();
        for glob in &globs {
            let (bucket, key_glob) = s3_glob(glob).ok_or_else(|| SourceError::BadPattern {
                source_name: self.name.into(),
                pattern: glob.clone(),
                message: "expected s3://BUCKET/KEY-GLOB".into(),
            })?;
            let matcher = Pattern::new(key_glob).map_err(|e| SourceError::BadPattern {
                source_name: self.name.into(),
                pattern: glob.clone(),
                message: e.to_string(),
            })?;
            let prefix = &key_glob[..key_glob.find(['*', '?', '[']).unwrap_or(key_glob.len())];
            for key in aws.list(subject, bucket, prefix)? {
                if matcher.matches_with(&key, MATCH) && !found.iter().any(|(_, k)| *k == key) {
                    found.push((bucket.to_string(), key));
                }
            }
        }
        if found.is_empty() && window.is_none() {
            return Err(SourceError::NoFiles {
                source_name: self.name.into(),
                pattern: self.files.pattern.clone(),
            });
        }
        found.sort();
        Ok(found)
    }
}

/// Splits `s3://BUCKET/KEY-GLOB` into the bucket and the key's glob.
pub fn s3_glob(path: &str) -> Option<(&str, &str)> {
    let (bucket, key) = path.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty()).then_some((bucket, key))
}

/// Whether the object `bucket`/`key` is one an `s3://` files path would land.
pub fn matches_object(files: &FilesConnector, bucket: &str, key: &str) -> bool {
    let Some((b, glob)) =
        s3_glob(&files.template.glob_all()).map(|(b, g)| (b.to_string(), g.to_string()))
    else {
        return false;
    };
    b == bucket && Pattern::new(&glob).is_ok_and(|p| p.matches_with(key, MATCH))
}

/// What a source's globs found: files in order, each once, and what was skipped.
#[derive(Debug, Default)]
struct Found {
    files: Vec<PathBuf>,
    skipped: Vec<Skipped>,
    /// Canonical paths of the files found so far.
    seen: HashSet<PathBuf>,
}

/// How `glob::glob` matches: a wildcard stays within one path component.
const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Found {
    /// Adds the files `pattern` matches, walking from its literal folder, in sorted
    /// order within each folder.
    fn walk(&mut self, pattern: &str) -> Result<(), glob::PatternError> {
        let matcher = Pattern::new(pattern)?;
        let parts: Vec<&str> = pattern.split('/').collect();
        let Some(first_wild) = parts.iter().position(|p| p.contains(['*', '?', '['])) else {
            // No wildcard: the pattern names one file.
            self.add_file(PathBuf::from(pattern));
            return Ok(());
        };
        let base = match parts[..first_wild].join("/") {
            b if b.is_empty() && pattern.starts_with('/') => "/".to_string(),
            b => b,
        };
        let base = PathBuf::from(base);
        // Folder levels the pattern can reach below its base.
        let levels = if pattern.contains("**") {
            usize::MAX
        } else {
            parts.len() - first_wild - 1
        };
        let Ok(base_real) = fs::canonicalize(if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &base
        }) else {
            return Ok(());
        };
        let mut matched = Vec::new();
        let mut stack = vec![(base.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let read = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &dir
            };
            let mut entries: Vec<fs::DirEntry> = match fs::read_dir(read) {
                Ok(entries) => entries.filter_map(Result::ok).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.skip(&dir, format!("cannot read the folder: {e}"));
                    continue;
                }
            };
            entries.sort_by_key(|e| e.file_name());
            let mut subdirs = Vec::new();
            for entry in entries {
                let path = dir.join(entry.file_name());
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                // A link counts as what it points to; a broken one as nothing.
                let Ok(target) = fs::metadata(&path) else {
                    continue;
                };
                if path.to_str().is_none() {
                    // Matched as the name shows (U+FFFD for the bytes that are not
                    // UTF-8), so only what the pattern would take is reported.
                    let shown = path.to_string_lossy();
                    let wanted = if target.is_dir() {
                        depth < levels
                    } else {
                        matcher.matches_with(&shown, MATCH)
                    };
                    if wanted {
                        self.skip(&path, "the name is not valid UTF-8".into());
                    }
                    continue;
                }
                if target.is_file() {
                    if matcher.matches_path_with(&path, MATCH) {
                        matched.push(path);
                    }
                } else if target.is_dir() && depth < levels {
                    if !kind.is_symlink() {
                        subdirs.push((path, depth + 1));
                    } else if fs::canonicalize(&path).is_ok_and(|t| t.starts_with(&base_real)) {
                        tracing::debug!(link = %path.display(), "folder link back into the folder searched; not followed");
                    } else {
                        self.skip(
                            &path,
                            format!(
                                "a link to a folder outside {}; not followed",
                                base_real.display()
                            ),
                        );
                    }
                }
            }
            stack.extend(subdirs);
        }
        // In path order, as glob lists them; the first path to a file keeps it.
        matched.sort();
        for path in matched {
            self.add_file(path);
        }
        Ok(())
    }

    /// Adds a file unless it was found already (under this or another path).
    fn add_file(&mut self, path: PathBuf) {
        let Ok(real) = fs::canonicalize(&path) else {
            return;
        };
        if real.is_file() && self.seen.insert(real) {
            self.files.push(path);
        }
    }

    fn skip(&mut self, path: &Path, reason: String) {
        self.skipped.push(Skipped {
            path: path.to_string_lossy().into_owned(),
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn found(root: &Path, pattern: &str) -> Found {
        let mut found = Found::default();
        found
            .walk(&format!("{}/{pattern}", root.display()))
            .expect("pattern");
        found
    }

    /// The files connector of a one-source pipeline whose source has `keys`.
    fn connector(keys: &str) -> Result<FilesConnector, String> {
        let text = format!(
            "[pipeline]\nname = \"t\"\n[lake]\nurl = \"file://lake\"\n[warehouse]\nurl = \"duckdb://w.duckdb\"\n\
             [[sources]]\nname = \"crm\"\nkind = \"files\"\nentity = \"person\"\n{keys}\n\
             columns = {{ Id = \"record_id\" }}\n[entities.person]\nkey = \"record_id\"\n"
        );
        let p = crate::config::Pipeline::from_str(
            &text,
            Path::new("p.toml"),
            &crate::config::Overrides::default(),
        )
        .map_err(|e| e.to_string())?;
        match &p.sources[0].connector {
            crate::config::Connector::Files(f) => Ok(f.clone()),
            other => panic!("not files: {other:?}"),
        }
    }

    #[test]
    fn an_s3_path_matches_the_objects_of_its_bucket_and_glob() {
        let f = connector(
            "path = \"s3://landing/crm/{yyyy}/*.csv\"\naws_region = \"eu-west-1\"\ns3_endpoint_url = \"http://127.0.0.1:9000\"",
        )
        .expect("valid");
        let access = f.s3.as_ref().expect("s3");
        assert_eq!(access.region.as_deref(), Some("eu-west-1"));
        assert!(matches_object(&f, "landing", "crm/2024/May export.csv"));
        assert!(!matches_object(&f, "landing", "crm/2024/sub/a.csv"));
        assert!(!matches_object(&f, "landing", "shop/2024/a.csv"));
        assert!(!matches_object(&f, "other", "crm/2024/a.csv"));
        let local = connector("path = \"in/*.csv\"").expect("valid");
        assert!(local.s3.is_none());
        assert!(!matches_object(&local, "landing", "in/a.csv"));
        let err =
            connector("path = \"in/*.csv\"\naws_region = \"eu-west-1\"").expect_err("invalid");
        assert!(
            err.contains(
                "sources[0].aws_region: applies only to a files source whose path is s3://"
            ),
            "{err}"
        );
    }

    fn names(root: &Path, found: &Found) -> Vec<String> {
        found
            .files
            .iter()
            .map(|p| {
                p.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_walk_matches_as_glob_does_and_never_loops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for f in ["in/a.csv", "in/b.txt", "in/sub/c.csv", "in/sub/deep/d.csv"] {
            let path = root.join(f);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, "x").expect("write");
        }
        symlink(".", root.join("in/loop")).expect("link");
        symlink("..", root.join("in/sub/up")).expect("link");
        symlink("../a.csv", root.join("in/sub/same.csv")).expect("link");
        symlink("missing.csv", root.join("in/broken.csv")).expect("link");
        // A wildcard stays in its component; `**` spans zero or more folders.
        assert_eq!(names(root, &found(root, "in/*.csv")), ["in/a.csv"]);
        // A link to a file is followed (here the only path to in/a.csv that matches).
        assert_eq!(
            names(root, &found(root, "in/*/*.csv")),
            ["in/sub/c.csv", "in/sub/same.csv"]
        );
        let all = found(root, "in/**/*.csv");
        assert_eq!(
            names(root, &all),
            ["in/a.csv", "in/sub/c.csv", "in/sub/deep/d.csv"]
        );
        assert!(all.skipped.is_empty(), "{:?}", all.skipped);
        // No wildcard: the one file, or nothing.
        assert_eq!(names(root, &found(root, "in/a.csv")), ["in/a.csv"]);
        assert!(found(root, "in/none.csv").files.is_empty());
        assert!(found(root, "nowhere/*.csv").files.is_empty());
    }
}
