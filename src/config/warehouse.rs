//! `[warehouse]`: where tables go. The URL (`duckdb://FILE` or `snowflake://...`) is
//! expanded and parsed into a [`WarehouseUrl`]; for Snowflake the user, key file,
//! stage and load file size are taken too. A password is refused in the parse phase:
//! it comes from SNOWFLAKE_PASSWORD.

use super::raw::RawWarehouse;
use super::{Overrides, Validator};
use crate::lake::LakeUrl;
use crate::warehouse::WarehouseUrl;

/// The largest `load_file_mb`: 100 GiB. Snowflake suggests 100-250 MiB.
const MAX_LOAD_FILE_MB: f64 = 100.0 * 1024.0;

impl Validator<'_> {
    pub(super) fn warehouse(
        &mut self,
        raw: &RawWarehouse,
        ov: &Overrides,
        pipeline: &str,
        lake: &LakeUrl,
    ) -> WarehouseUrl {
        let text = match &ov.warehouse {
            Some(url) => url.clone(),
            None => self.expand("warehouse.url", &raw.url),
        };
        let mut warehouse = WarehouseUrl::parse(&text).unwrap_or_else(|m| {
            self.problem("warehouse.url", m);
            WarehouseUrl::default()
        });
        if let WarehouseUrl::Snowflake(sf) = &mut warehouse {
            sf.pipeline = pipeline.to_string();
            if let Some(user) = &raw.user {
                sf.user = Some(self.expand("warehouse.user", user));
            }
            if let Some(key) = &raw.private_key_path {
                let path = self.expand("warehouse.private_key_path", key);
                sf.private_key_path = Some(path.into());
            }
            if let Some(stage) = &raw.stage {
                sf.stage = stage.clone();
            }
            sf.storage_integration = raw.storage_integration.clone();
            match raw.load_file_mb {
                Some(mb) if mb.is_finite() && mb > 0.0 && mb <= MAX_LOAD_FILE_MB => {
                    sf.load_file_bytes = (mb * 1024.0 * 1024.0).ceil() as u64;
                }
                Some(mb) => self.problem(
                    "warehouse.load_file_mb",
                    format!(
                        "{mb}: must be a positive size in MiB, at most {MAX_LOAD_FILE_MB} (Snowflake suggests 100-250)"
                    ),
                ),
                None => {}
            }
            if let LakeUrl::S3(_) = lake {
                sf.lake_url = Some(lake.to_string());
            }
        }
        warehouse
    }
}
