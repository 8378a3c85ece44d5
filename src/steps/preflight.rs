//! What `cdp validate` checks beyond the pipeline file itself, reading but never
//! writing: that each files source's path matches files and that a CSV file's header
//! carries every column the source maps, and that the secrets the warehouse and AWS
//! need are in the environment. A missing header column or secret is a problem (the
//! run would fail or lose a column); a path that matches nothing yet is only a warning
//! (dated partitions may not have arrived). With `--connect` ([`connect`]) it also
//! tries each service once with a read-only call, as `dbt debug` does: the lake, the
//! warehouse (`SELECT 1`) and each AWS source.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::config::{Connector, Pipeline, SourceConfig};
use crate::lake::LakeUrl;
use crate::sources::compression;
use crate::vocab::FileFormat;
use crate::warehouse::WarehouseUrl;

/// How much of a file is read for its header.
const HEADER_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Ok,
    Warning,
    Problem,
}

/// One thing preflight found, under the key it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub key: String,
    pub message: String,
}

impl Finding {
    fn new(severity: Severity, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Every finding, sources first, then the warehouse.
pub fn preflight(pipeline: &Pipeline) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, source) in pipeline.sources.iter().enumerate() {
        if let Connector::Files(files) = &source.connector {
            out.push(files_source(
                &format!("sources[{i}]"),
                source,
                &files.template.glob_all(),
            ));
        }
    }
    if uses_aws(pipeline) {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        out.push(aws_credentials(|k| std::env::var(k).ok(), home.as_deref()));
    }
    if let WarehouseUrl::Snowflake(conf) = &pipeline.warehouse {
        let missing = conf.missing_secrets();
        out.push(if missing.is_empty() {
            Finding::new(Severity::Ok, "warehouse", "user and credentials are set")
        } else {
            Finding::new(Severity::Problem, "warehouse", missing.join("; "))
        });
    }
    out
}

/// Whether anything the pipeline names lives on AWS: an S3 lake or an AWS source.
fn uses_aws(pipeline: &Pipeline) -> bool {
    matches!(pipeline.lake, LakeUrl::S3(_))
        || pipeline.sources.iter().any(|s| {
            matches!(
                s.connector,
                Connector::Appflow(_) | Connector::Dataexchange(_)
            )
        })
}

/// Where the AWS SDK's default chain would find credentials, from the environment
/// and the profile files alone (no network): a half-set key pair, a profile named in
/// `AWS_PROFILE` that neither file has, or a web-identity token file that is not
/// there is a problem; finding nothing is a warning, since on EC2 the instance
/// metadata service answers (`--connect` asks it). Names variables, never values.
fn aws_credentials(env: impl Fn(&str) -> Option<String>, home: Option<&Path>) -> Finding {
    const KEY: &str = "aws credentials";
    let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
    match (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY")) {
        (true, true) => {
            return Finding::new(
                Severity::Ok,
                KEY,
                "from the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            )
        }
        (true, false) => {
            return Finding::new(
                Severity::Problem,
                KEY,
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            )
        }
        (false, true) => {
            return Finding::new(
                Severity::Problem,
                KEY,
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            )
        }
        (false, false) => {}
    }
    if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        let file = env("AWS_WEB_IDENTITY_TOKEN_FILE").unwrap_or_default();
        return match (Path::new(&file).is_file(), set("AWS_ROLE_ARN")) {
            (true, true) => Finding::new(
                Severity::Ok,
                KEY,
                "web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN)",
            ),
            (false, _) => Finding::new(
                Severity::Problem,
                KEY,
                format!("AWS_WEB_IDENTITY_TOKEN_FILE names {file:?}, which is not a file"),
            ),
            (true, false) => Finding::new(
                Severity::Problem,
                KEY,
                "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not",
            ),
        };
    }
    if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        return Finding::new(
            Severity::Ok,
            KEY,
            "the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_*)",
        );
    }
    // Profile files: the credentials file names a profile `[name]`, the config file
    // `[profile name]` (or `[default]`).
    let file = |var: &str, default: &str| -> Option<PathBuf> {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws").join(default)))
    };
    let sections: Vec<String> = [
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        file("AWS_CONFIG_FILE", "config"),
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .flat_map(|text| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']').map(str::trim))
            .map(|name| {
                name.strip_prefix("profile ")
                    .unwrap_or(name)
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
    })
    .collect();
    let profile = env("AWS_PROFILE").filter(|p| !p.trim().is_empty());
    let wanted = profile.clone().unwrap_or_else(|| "default".into());
    if sections.contains(&wanted) {
        return Finding::new(
            Severity::Ok,
            KEY,
            format!("profile {wanted:?} of the AWS profile files"),
        );
    }
    match profile {
        Some(p) => Finding::new(
            Severity::Problem,
            KEY,
            format!("AWS_PROFILE names {p:?}, which neither AWS profile file (~/.aws/credentials, ~/.aws/config) has"),
        ),
        None => Finding::new(
            Severity::Warning,
            KEY,
            "none in the environment or the profile files; a run will ask the EC2 instance \
             metadata service, which answers only on AWS (`cdp validate --connect` tries it)",
        ),
    }
}

/// Tries each service the pipeline names with one read-only call: the lake (an S3
/// bucket answers; a local directory exists or can be created), the warehouse
/// (`SELECT 1`; a DuckDB file that is not there yet is created by the first load)
/// and each AWS source. Writes nothing.
pub fn connect(pipeline: &Pipeline) -> Vec<Finding> {
    let mut out = vec![
        connect_lake(&pipeline.lake),
        connect_warehouse(&pipeline.warehouse),
    ];
    for (i, config) in pipeline.sources.iter().enumerate() {
        if matches!(config.connector, Connector::Files(_)) {
            continue;
        }
        let key = format!("sources[{i}] ({})", config.name);
        out.push(match crate::sources::build(config).check_connection() {
            Ok(what) => Finding::new(Severity::Ok, key, what),
            Err(e) => Finding::new(Severity::Problem, key, chain(&e)),
        });
    }
    out
}

fn connect_lake(url: &LakeUrl) -> Finding {
    match url {
        LakeUrl::Local(dir) => local_target("lake", dir, "directory", "the first run"),
        LakeUrl::S3(loc) => match crate::lake::Lake::open(url) {
            Ok(_) => Finding::new(
                Severity::Ok,
                "lake",
                format!("bucket {:?} answers", loc.bucket),
            ),
            Err(e) => Finding::new(Severity::Problem, "lake", chain(&e)),
        },
    }
}

fn connect_warehouse(url: &WarehouseUrl) -> Finding {
    const KEY: &str = "warehouse";
    if let WarehouseUrl::Duckdb(path) = url {
        if !path.exists() {
            return local_target(KEY, path, "DuckDB file", "the first load");
        }
    }
    let answered = crate::warehouse::open_for_query(url)
        .map_err(|e| chain(&e))
        .and_then(|mut w| w.query("SELECT 1").map_err(|e| chain(&e)));
    match answered {
        Ok(_) => Finding::new(Severity::Ok, KEY, format!("{url} answers SELECT 1")),
        Err(e) => Finding::new(Severity::Problem, KEY, e),
    }
}

/// A local path that a run creates when missing: fine if it exists, or if its
/// nearest existing ancestor is a directory.
fn local_target(key: &str, path: &Path, what: &str, by: &str) -> Finding {
    if path.exists() {
        return Finding::new(
            Severity::Ok,
            key,
            format!("{what} {} exists", path.display()),
        );
    }
    let mut ancestor = path.parent();
    while let Some(a) = ancestor {
        if a.as_os_str().is_empty() || a.exists() {
            break;
        }
        ancestor = a.parent();
    }
    match ancestor {
        Some(a) if !a.as_os_str().is_empty() && !a.is_dir() => Finding::new(
            Severity::Problem,
            key,
            format!(
                "{} cannot be created: {} is not a directory",
                path.display(),
                a.display()
            ),
        ),
        _ => Finding::new(
            Severity::Ok,
            key,
            format!(
                "{what} {} does not exist yet; {by} creates it",
                path.display()
            ),
        ),
    }
}

/// An error and its causes, as one line.
fn chain(err: &dyn std::error::Error) -> String {
    crate::error_text(err)
}

fn files_source(key: &str, source: &SourceConfig, glob: &str) -> Finding {
    let mut files: Vec<PathBuf> = match glob::glob(glob) {
        Ok(paths) => paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => return Finding::new(Severity::Problem, key, format!("path {glob:?}: {e}")),
    };
    files.sort();
    let Some(first) = files.first() else {
        return Finding::new(
            Severity::Warning,
            format!("{key}.path"),
            format!("no file matches {glob:?} yet"),
        );
    };
    let read = &source.read;
    let is_csv = read
        .format
        .or_else(|| FileFormat::from_path(first))
        .is_some_and(|f| f == FileFormat::Csv);
    if !is_csv || !read.header {
        return Finding::new(Severity::Ok, key, format!("{} file(s) match", files.len()));
    }
    let header = match csv_header(first, read.delimiter) {
        Ok(h) => h,
        Err(e) => {
            return Finding::new(
                Severity::Problem,
                key,
                format!("cannot read the header of {}: {e}", first.display()),
            )
        }
    };
    let missing: Vec<&str> = read
        .columns
        .iter()
        .map(|(s, _)| s.as_str())
        .filter(|c| !header.iter().any(|h| h == c))
        .collect();
    if missing.is_empty() {
        Finding::new(
            Severity::Ok,
            key,
            format!(
                "{} file(s) match; {} has every mapped column",
                files.len(),
                first.display()
            ),
        )
    } else {
        Finding::new(
            Severity::Problem,
            format!("{key}.columns"),
            format!(
                "{} has no column {} (its header: {})",
                first.display(),
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                header.join(", ")
            ),
        )
    }
}

/// The first record of a CSV file (decompressed, BOM removed), read as the cleaner
/// reads it and no further than [`HEADER_BYTES`].
fn csv_header(path: &Path, delimiter: u8) -> std::io::Result<Vec<String>> {
    let input = BufReader::new(compression::open(path)?.take(HEADER_BYTES));
    Ok(crate::clean::read::first_record(input, delimiter)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(vars: &[(&str, &str)], home: Option<&Path>) -> Finding {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        aws_credentials(
            |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            home,
        )
    }

    #[test]
    fn aws_credentials_are_found_where_the_default_chain_looks_and_never_printed() {
        let secret = "wJalrXUtnFEMI/K7MDENG";
        let both = creds(
            &[
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", secret),
            ],
            None,
        );
        assert_eq!(both.severity, Severity::Ok);
        let half = creds(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")], None);
        assert_eq!(half.severity, Severity::Problem);
        assert!(
            half.message.contains("AWS_SECRET_ACCESS_KEY is set")
                || half.message.contains("AWS_SECRET_ACCESS_KEY is not")
        );
        let other_half = creds(&[("AWS_SECRET_ACCESS_KEY", secret)], None);
        assert_eq!(other_half.severity, Severity::Problem);
        for f in [&both, &half, &other_half] {
            assert!(
                !f.message.contains(secret) && !f.message.contains("AKIAEXAMPLE"),
                "{f:?}"
            );
        }

        let home = tempfile::tempdir().expect("dir");
        assert_eq!(creds(&[], Some(home.path())).severity, Severity::Warning);
        std::fs::create_dir(home.path().join(".aws")).expect("dir");
        std::fs::write(
            home.path().join(".aws/config"),
            "[profile analytics]\nregion = eu-west-1\n",
        )
        .expect("write");
        assert_eq!(creds(&[], Some(home.path())).severity, Severity::Warning);
        let named = creds(&[("AWS_PROFILE", "analytics")], Some(home.path()));
        assert_eq!(named.severity, Severity::Ok, "{named:?}");
        let typo = creds(&[("AWS_PROFILE", "analytcs")], Some(home.path()));
        assert_eq!(typo.severity, Severity::Problem, "{typo:?}");
        std::fs::write(home.path().join(".aws/credentials"), "[default]\n").expect("write");
        assert_eq!(creds(&[], Some(home.path())).severity, Severity::Ok);

        let token = home.path().join("token");
        let web = creds(
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().expect("utf8")),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ],
            None,
        );
        assert_eq!(
            web.severity,
            Severity::Problem,
            "a missing token file: {web:?}"
        );
        std::fs::write(&token, "t").expect("write");
        let web = creds(
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().expect("utf8")),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ],
            None,
        );
        assert_eq!(web.severity, Severity::Ok);
    }

    #[test]
    fn a_local_target_is_fine_when_it_can_be_created() {
        let dir = tempfile::tempdir().expect("dir");
        let f = local_target(
            "lake",
            &dir.path().join("a/b/lake"),
            "directory",
            "the first run",
        );
        assert_eq!(f.severity, Severity::Ok);
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").expect("write");
        let f = local_target("lake", &file.join("lake"), "directory", "the first run");
        assert_eq!(f.severity, Severity::Problem, "{f:?}");
    }

    #[test]
    fn a_header_is_read_whatever_its_compression_and_bom() {
        let dir = tempfile::tempdir().expect("dir");
        let plain = dir.path().join("a.csv");
        std::fs::write(&plain, "\u{feff}Id;Name\n1;Ann\n").expect("write");
        assert_eq!(csv_header(&plain, b';').expect("header"), ["Id", "Name"]);
        let gz = dir.path().join("a.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, b"Id,\"E-mail\"\n1,a@x\n").expect("gzip");
        std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
        assert_eq!(csv_header(&gz, b',').expect("header"), ["Id", "E-mail"]);
    }
}
