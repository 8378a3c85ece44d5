//! The S3 side of the lake: objects under `s3://bucket/prefix`, reached with
//! aws-sdk-s3 through the default credential chain (environment, profile, SSO, web
//! identity, instance role). An optional endpoint URL and path-style addressing serve
//! S3-compatible stores and the emulator. The rest of cdp is synchronous, so this
//! store owns a small current-thread tokio runtime and blocks on each request.
//!
//! Every request retries with exponential backoff on throttling, timeouts and 5xx
//! (the SDK's standard retry mode, bounded attempts). Uploads carry a CRC32 checksum
//! (per part for multipart) that S3 verifies on receipt, and the object's SHA-256 as
//! metadata (`x-amz-meta-sha256`), which every download is checked against; a
//! single-part download also checks the CRC32 S3 returns. (A multipart object's
//! checksum is a checksum of part checksums, so the SHA-256 is what checks it whole.)
//! Objects larger than one part go up as a multipart upload, aborted if a part fails.
//!
//! [`S3Store`] speaks to the bucket; [`S3Lake`] is the lake back end over it, which
//! stages every object in a local directory (the cache) and keeps that cache from
//! outliving the lake's objects.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, MetadataDirective,
};
use aws_sdk_s3::Client;
use tokio::runtime::Runtime;

use sha2::{Digest, Sha256};

use super::{hex, sha256_file, temp_sibling, LakeError, LakeStore, S3Location};

/// Attempts per request (the first try and its retries).
pub const MAX_ATTEMPTS: u32 = 4;
/// Part size of a multipart upload; smaller objects go up in one request.
pub const PART_SIZE: u64 = 16 << 20;
/// The largest object one CopyObject request copies (5 GiB).
pub const MAX_COPY: u64 = 5 << 30;

/// What a HEAD request tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Uploaded in parts (its ETag ends in `-<parts>`).
    pub multipart: bool,
    /// The SHA-256 recorded at upload, when cdp uploaded it.
    pub sha256: Option<String>,
}

/// A bucket and key prefix, with the client and runtime that reach it.
#[derive(Debug)]
pub struct S3Store {
    rt: Runtime,
    client: Client,
    bucket: String,
    prefix: String,
    /// Where requests go, for messages (`127.0.0.1:9000`, `s3.eu-west-1 (AWS)`).
    host: String,
    part_size: u64,
}

impl S3Store {
    /// Builds the client and checks the bucket answers, so a wrong endpoint or
    /// credentials fail here, before any step starts.
    pub fn connect(loc: &S3Location) -> Result<Self, LakeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| LakeError::Io {
                key: String::new(),
                source,
            })?;
        let client = rt.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(MAX_ATTEMPTS)
                        .with_initial_backoff(Duration::from_millis(200)),
                )
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .operation_attempt_timeout(Duration::from_secs(300))
                        .build(),
                );
            if let Some(region) = &loc.region {
                loader = loader.region(aws_config::Region::new(region.clone()));
            }
            let shared = loader.load().await;
            let mut conf = aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(loc.force_path_style)
                // Validate a response's checksum when asked (ChecksumMode::Enabled),
                // which `download` does for every object but a multipart one.
                .response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                );
            if shared.region().is_none() {
                // S3 needs a region to sign; us-east-1 is the one every endpoint accepts.
                conf = conf.region(aws_config::Region::from_static("us-east-1"));
            }
            if let Some(url) = &loc.endpoint_url {
                conf = conf.endpoint_url(url);
            }
            Client::from_conf(conf.build())
        });
        let host = describe_host(&client, loc);
        let store = Self {
            rt,
            client,
            bucket: loc.bucket.clone(),
            prefix: loc.prefix.clone(),
            host,
            part_size: PART_SIZE,
        };
        store.check_bucket()?;
        Ok(store)
    }

    /// Sets the multipart part size (S3's minimum is 5 MiB); for tests and tuning.
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes.max(5 << 20);
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn err<E, R>(&self, op: &'static str, key: &str, e: SdkError<E, R>) -> LakeError
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let transient = matches!(
            e,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        );
        let message = match &e {
            SdkError::ServiceError(se) => {
                let inner = se.err();
                match (inner.code(), inner.message()) {
                    (Some(code), Some(msg)) => format!("{code}: {msg}"),
                    (Some(code), None) => code.to_string(),
                    _ => DisplayErrorContext(&e).to_string(),
                }
            }
            _ => DisplayErrorContext(&e).to_string(),
        };
        LakeError::Remote {
            op,
            object: format!("s3://{}/{}", self.bucket, self.full_key(key)),
            host: self.host.clone(),
            message,
            transient,
        }
    }

    fn check_bucket(&self) -> Result<(), LakeError> {
        self.rt
            .block_on(self.client.head_bucket().bucket(&self.bucket).send())
            .map(|_| ())
            .map_err(|e| self.err("open bucket", "", e))
    }

    /// Uploads a local file under `key`, in parts when it is larger than one part.
    pub fn put_file(&self, key: &str, path: &Path) -> Result<(), LakeError> {
        let (size, sha256) = sha256_file(path).map_err(|source| LakeError::Io {
            key: key.into(),
            source,
        })?;
        if size > self.part_size {
            return self.put_multipart(key, path, size, &sha256);
        }
        let full = self.full_key(key);
        self.rt
            .block_on(async {
                let body = ByteStream::from_path(path)
                    .await
                    .map_err(|e| LakeError::Io {
                        key: key.into(),
                        source: std::io::Error::other(e),
                    })?;
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .metadata("sha256", &sha256)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| self.err("put", key, e))
            })
            .map(|_| ())
    }

    fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        sha256: &str,
    ) -> Result<(), LakeError> {
        let full = self.full_key(key);
        self.rt.block_on(async {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .metadata("sha256", sha256)
                .send()
                .await
                .map_err(|e| self.err("start multipart upload", key, e))?;
            let upload_id = created.upload_id().unwrap_or_default().to_string();
            let parts = self.upload_parts(key, &full, &upload_id, path, size).await;
            let result = match parts {
                Ok(parts) => self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| self.err("complete multipart upload", key, e)),
                Err(e) => Err(e),
            };
            if result.is_err() {
                // Parts of a failed upload would be billed until a lifecycle rule ran.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .send()
                    .await;
            }
            result
        })
    }

    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
    ) -> Result<Vec<CompletedPart>, LakeError> {
        let mut parts = Vec::new();
        let mut offset = 0;
        let mut number = 1;
        while offset < size {
            let len = self.part_size.min(size - offset);
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| LakeError::Io {
                    key: key.into(),
                    source: std::io::Error::other(e),
                })?;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(body)
                .send()
                .await
                .map_err(|e| self.err("upload part", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                    .build(),
            );
            offset += len;
            number += 1;
        }
        Ok(parts)
    }

    /// The bucket the lake lives in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Copies the object `src` of the lake's bucket (a full key, not under the
    /// prefix) to `key` inside S3 (CopyObject, up to [`MAX_COPY`]), recording `sha256`
    /// as an upload does, so downloads check it the same way.
    pub fn copy_within(&self, src: &str, key: &str, sha256: &str) -> Result<(), LakeError> {
        let source = format!("{}/{}", self.bucket, encode_key(src));
        self.rt
            .block_on(
                self.client
                    .copy_object()
                    .bucket(&self.bucket)
                    .key(self.full_key(key))
                    .copy_source(source)
                    .metadata_directive(MetadataDirective::Replace)
                    .metadata("sha256", sha256)
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| self.err("copy", key, e))
    }

    /// Writes `bytes` under `key` only if no object is there (a conditional put with
    /// `If-None-Match: *`); false when one was.
    pub fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool, LakeError> {
        let result = self.rt.block_on(
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .if_none_match("*")
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(bytes.to_vec()))
                .send(),
        );
        match result {
            Ok(_) => Ok(true),
            Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(false),
            Err(e) => Err(self.err("create", key, e)),
        }
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        self.rt.block_on(async {
            let out = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if status(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(self.err("get", key, e)),
            };
            let bytes = out.body.collect().await.map_err(|e| LakeError::Io {
                key: key.into(),
                source: std::io::Error::other(e),
            })?;
            Ok(Some(bytes.to_vec()))
        })
    }

    /// Downloads `key`, as `info` (from [`S3Store::head`]) describes it, to `dest`
    /// (atomically), checking its checksums; false when there is no such object.
    pub fn download(&self, key: &str, info: &ObjectInfo, dest: &Path) -> Result<bool, LakeError> {
        let io_err = |source| LakeError::Io {
            key: key.into(),
            source,
        };
        let tmp = temp_sibling(dest);
        let result = self.rt.block_on(async {
            let out = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .set_checksum_mode((!info.multipart).then_some(ChecksumMode::Enabled))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if status(&e) == Some(404) => return Ok(false),
                Err(e) => return Err(self.err("get", key, e)),
            };
            let mut hasher = Sha256::new();
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
            let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err)?);
            let mut body = out.body;
            while let Some(chunk) = body.next().await {
                // A checksum mismatch surfaces here, as a body error.
                let chunk = chunk.map_err(|e| io_err(std::io::Error::other(e)))?;
                hasher.update(&chunk);
                file.write_all(&chunk).map_err(io_err)?;
            }
            file.flush().map_err(io_err)?;
            let got = hex(&hasher.finalize());
            if info.sha256.as_ref().is_some_and(|want| *want != got) {
                return Err(LakeError::Remote {
                    op: "verify",
                    object: format!("s3://{}/{}", self.bucket, self.full_key(key)),
                    host: self.host.clone(),
                    message: format!(
                        "SHA-256 {got} differs from the {} recorded at upload",
                        info.sha256.as_deref().unwrap_or("")
                    ),
                    transient: true,
                });
            }
            std::fs::rename(&tmp, dest).map_err(io_err)?;
            Ok(true)
        });
        if !matches!(result, Ok(true)) {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// What is known of the object under `key`, or None when there is none.
    pub fn head(&self, key: &str) -> Result<Option<ObjectInfo>, LakeError> {
        let result = self.rt.block_on(
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .send(),
        );
        match result {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                multipart: out.e_tag().is_some_and(|t| t.contains('-')),
                sha256: out.metadata().and_then(|m| m.get("sha256")).cloned(),
            })),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.err("head", key, e)),
        }
    }

    pub fn delete(&self, key: &str) -> Result<(), LakeError> {
        self.rt
            .block_on(
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.full_key(key))
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| self.err("delete", key, e))
    }

    /// Keys (relative to the lake) of every object under `prefix`, page by page.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        let full = self.full_key(prefix);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        self.rt.block_on(async {
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .into_paginator()
                .send();
            let mut keys = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.err("list", prefix, e))?;
                for obj in page.contents() {
                    if let Some(k) = obj.key().and_then(|k| k.strip_prefix(&strip)) {
                        keys.push(k.to_string());
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
    }
}

/// The S3 back end of a lake: a bucket and prefix, staged through a local cache.
#[derive(Debug)]
pub struct S3Lake {
    remote: S3Store,
    cache: PathBuf,
}

impl S3Lake {
    pub fn new(loc: &S3Location, remote: S3Store) -> Result<Self, LakeError> {
        let cache = loc.cache_root();
        fs::create_dir_all(&cache).map_err(LakeError::io(""))?;
        Ok(Self { remote, cache })
    }
}

impl LakeStore for S3Lake {
    fn root(&self) -> &Path {
        &self.cache
    }

    fn is_local(&self) -> bool {
        false
    }

    /// Uploads the staged copy; a failed upload drops the copy too.
    fn publish(&self, key: &str, staged: &Path) -> Result<(), LakeError> {
        if let Err(e) = self.remote.put_file(key, staged) {
            let _ = fs::remove_file(staged);
            return Err(e);
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        self.remote.get(key)
    }

    fn exists(&self, key: &str) -> Result<bool, LakeError> {
        Ok(self.remote.head(key)?.is_some())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        self.remote.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<(), LakeError> {
        self.remote.delete(key)?;
        match fs::remove_file(self.cache.join(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LakeError::io(key)(e)),
            _ => Ok(()),
        }
    }

    fn create_new(&self, key: &str, bytes: &[u8]) -> Result<bool, LakeError> {
        self.remote.put_if_absent(key, bytes)
    }

    /// Downloads the object into the cache unless a copy of the same size is there.
    fn fetch(&self, key: &str) -> Result<PathBuf, LakeError> {
        let path = self.cache.join(key);
        match self.remote.head(key)? {
            None => {
                // The cache never outlives the lake: a deleted object goes here too.
                let _ = fs::remove_file(&path);
            }
            Some(info) => {
                let cached = fs::metadata(&path).map(|m| m.len()).ok();
                if cached != Some(info.size) {
                    self.remote.download(key, &info, &path)?;
                }
            }
        }
        Ok(path)
    }

    fn copy_within(
        &self,
        bucket: &str,
        src: &str,
        key: &str,
        local: &Path,
    ) -> Result<Option<(u64, String)>, LakeError> {
        if self.remote.bucket() != bucket {
            return Ok(None);
        }
        let (size, sha256) = sha256_file(local).map_err(LakeError::io(key))?;
        if size > MAX_COPY {
            return Ok(None);
        }
        self.remote.copy_within(src, key, &sha256)?;
        // The staged copy only spares a later download; without it a reader fetches.
        let path = self.cache.join(key);
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
}

/// A key as CopyObject's source names it: percent-encoded, with '/' kept.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn status<E, R>(e: &SdkError<E, R>) -> Option<u16>
where
    R: HasStatus,
{
    match e {
        SdkError::ServiceError(se) => Some(se.raw().status_code()),
        _ => None,
    }
}

/// The status code of a raw HTTP response (one trait so [`status`] stays generic).
trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// A short name for where requests go: the endpoint's host and port, or AWS's region.
fn describe_host(client: &Client, loc: &S3Location) -> String {
    let from_env = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    if let Some(url) = loc.endpoint_url.as_deref().or(from_env.as_deref()) {
        let rest = url.split("://").nth(1).unwrap_or(url);
        return rest.split('/').next().unwrap_or(rest).to_string();
    }
    let region = client
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    format!("s3.{region} (AWS)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_percent_encoded_but_keep_their_slashes() {
        assert_eq!(encode_key("a/b-c_d.e~f/0.csv"), "a/b-c_d.e~f/0.csv");
        assert_eq!(encode_key("x/a b+c%.csv"), "x/a%20b%2Bc%25.csv");
        assert_eq!(encode_key("é"), "%C3%A9");
    }
}
