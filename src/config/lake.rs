//! `[lake]`: where the lake is. The URL (`file://DIR`, `s3://BUCKET/PREFIX` or a bare
//! directory) is expanded and parsed into a [`LakeUrl`]; for S3 the region, endpoint,
//! path style and local cache directory are taken too.

use super::raw::RawLake;
use super::{expand_env, Overrides, Validator};
use crate::lake::LakeUrl;

impl Validator<'_> {
    pub(super) fn lake(&mut self, raw: &RawLake, ov: &Overrides) -> LakeUrl {
        let text = match &ov.lake {
            Some(url) => Some(url.clone()),
            None => match expand_env(&raw.url) {
                Ok(text) => Some(text),
                Err(m) => {
                    self.problem("lake.url", m);
                    None
                }
            },
        };
        let mut lake = match text {
            None => LakeUrl::default(),
            // An empty URL would make the working directory the lake.
            Some(text) if text.trim().is_empty() => {
                self.problem(
                    "lake.url",
                    format!(
                        "{:?} is empty once expanded; name the lake: file://DIR or s3://BUCKET/PREFIX",
                        raw.url
                    ),
                );
                LakeUrl::default()
            }
            Some(text) => LakeUrl::parse(&text).unwrap_or_else(|m| {
                self.problem("lake.url", m);
                LakeUrl::default()
            }),
        };
        if let LakeUrl::S3(loc) = &mut lake {
            loc.region = raw.region.clone();
            loc.force_path_style = raw.force_path_style;
            if let Some(url) = &raw.endpoint_url {
                loc.endpoint_url = Some(self.expand("lake.endpoint_url", url));
            }
            if let Some(dir) = &raw.cache_dir {
                loc.cache_dir = Some(self.expand("lake.cache_dir", dir).into());
            }
        }
        lake
    }
}
