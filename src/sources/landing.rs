//! One landing for every connector: a run's files are copied into
//! `raw/<source>/<run>/` as they come, then [`Landing::finish`] writes the manifest
//! and, last, the source's cursor. A crash before the cursor leaves it where it was,
//! so the next run lands the same data again under its own run id and the cleaner
//! reads only manifests the cursor lists; a landing dropped unfinished (a later file
//! failed) deletes the files it copied.

use crate::lake::manifest::{Manifest, ManifestFile, Skipped};
use crate::lake::{layout, Lake, LakeError};
use crate::state::{self, Position, SourceCursor};

pub struct Landing<'a> {
    lake: &'a Lake,
    source_name: &'a str,
    run_id: &'a str,
    files: Vec<ManifestFile>,
    skipped: Vec<Skipped>,
}

impl<'a> Landing<'a> {
    pub fn new(lake: &'a Lake, source_name: &'a str, run_id: &'a str) -> Self {
        Self {
            lake,
            source_name,
            run_id,
            files: Vec::new(),
            skipped: Vec::new(),
        }
    }

    pub fn lake(&self) -> &'a Lake {
        self.lake
    }

    pub fn source_name(&self) -> &'a str {
        self.source_name
    }

    /// The lake key the next file named `name` lands under.
    pub fn next_key(&self, name: &str) -> String {
        layout::raw_file(self.source_name, self.run_id, self.files.len(), name)
    }

    /// Records a file copied in under [`Landing::next_key`].
    pub fn push(&mut self, file: ManifestFile) {
        self.files.push(file);
    }

    /// Records what the source found but could not take, for the manifest.
    pub fn skip(&mut self, skipped: Vec<Skipped>) {
        self.skipped.extend(skipped);
    }

    /// Writes the manifest (when anything landed), then the cursor: the files landed
    /// and, per object the source reads (a flow, a data set), the `positions` taken.
    /// Nothing landed and no position: nothing is written and `None` returned.
    pub fn finish(
        mut self,
        mut cursor: SourceCursor,
        positions: Vec<(String, Position)>,
    ) -> Result<Option<Manifest>, LakeError> {
        let files = std::mem::take(&mut self.files);
        let manifest = if files.is_empty() {
            None
        } else {
            let manifest = Manifest {
                source: self.source_name.into(),
                run_id: self.run_id.into(),
                created_at: state::now_rfc3339(),
                files,
                skipped: std::mem::take(&mut self.skipped),
            };
            let key = layout::raw_manifest(self.source_name, self.run_id);
            self.lake.put_json(&key, &manifest)?;
            for f in &manifest.files {
                cursor.landed.insert(f.origin.clone(), f.sha256.clone());
            }
            cursor.manifests.push(key);
            Some(manifest)
        };
        for (key, position) in positions.iter().cloned() {
            let taken = cursor.taken.entry(key.clone()).or_default();
            taken.insert(position.id.clone());
            // An earlier interval run later does not move the newest back.
            let newest = cursor.positions.entry(key).or_default();
            if position.at >= newest.at {
                *newest = position;
            }
        }
        if manifest.is_some() || !positions.is_empty() {
            state::write_cursor(self.lake, self.source_name, &cursor)?;
        }
        Ok(manifest)
    }
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        for f in &self.files {
            if let Err(e) = self.lake.delete(&f.key) {
                tracing::warn!(key = %f.key, error = %e, "cannot delete an unfinished landing");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LakeUrl;
    use crate::vocab::FileFormat;

    fn file(landing: &mut Landing, name: &str) -> String {
        let key = landing.next_key(name);
        let (bytes, sha256) = landing
            .lake()
            .put(&key, b"a\n1\n")
            .map(|_| (4, "x".into()))
            .expect("put");
        landing.push(ManifestFile {
            key: key.clone(),
            origin: name.into(),
            format: FileFormat::Csv,
            rows: 1,
            bytes,
            sha256,
        });
        key
    }

    #[test]
    fn a_landing_dropped_unfinished_deletes_its_files_and_writes_no_cursor() {
        let dir = tempfile::tempdir().expect("dir");
        let lake = Lake::open(&LakeUrl::Local(dir.path().to_path_buf())).expect("lake");
        let key = {
            let mut landing = Landing::new(&lake, "src", "r1");
            file(&mut landing, "a.csv")
        };
        assert!(!lake.exists(&key), "an unfinished landing left its file");
        assert!(!lake.exists(&layout::source_cursor("src")));

        let mut landing = Landing::new(&lake, "src", "r2");
        let key = file(&mut landing, "a.csv");
        landing.skip(vec![Skipped {
            path: "bad".into(),
            reason: "why".into(),
        }]);
        let manifest = landing
            .finish(SourceCursor::default(), Vec::new())
            .expect("finish")
            .expect("a manifest");
        assert!(lake.exists(&key), "a finished landing keeps its files");
        assert_eq!(manifest.skipped.len(), 1);
        let cursor = state::read_cursor(&lake, "src").expect("cursor");
        assert_eq!(cursor.manifests, [layout::raw_manifest("src", "r2")]);
        assert_eq!(cursor.landed.get("a.csv").map(String::as_str), Some("x"));
    }
}
