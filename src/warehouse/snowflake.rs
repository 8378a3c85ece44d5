//! Snowflake, the cloud warehouse, through snowflake-connector-rs. A load goes the way
//! Snowflake recommends: the Parquet object stays in the S3 lake; an external stage
//! over the lake prefix (named in the pipeline file, with its storage integration)
//! lets `COPY INTO` fill a transient load table by column name; then, in one
//! transaction, `MERGE` on the table's keys, a `DELETE` of rows the snapshot no longer
//! has, and the ledger row. A crash anywhere before `COMMIT` leaves the target and the
//! ledger as they were, so the next run loads the object again, once.
//!
//! Tables are created from the Parquet schema and evolved additively (new columns);
//! a column whose type conflicts with the data stops the load before anything is
//! copied. cdp's names are lower-case; Snowflake folds unquoted names to upper case,
//! so every table and column is created as the quoted upper-case name (`"PERSON"`,
//! `"RECORD_ID"`), which plain unquoted SQL (`select record_id from person`) finds.
//!
//! Secrets (password, private key, its passphrase) are read from the environment or a
//! key file when the session opens and handed to the connector; they are never in the
//! pipeline file, never in a message, never logged.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use snowflake_connector_rs::{
    AuthConfig, CellValue, Client, ClientConfig, EndpointConfig, IntoStatement, KeyPairConfig,
    QueryConfig, Session, SessionConfig, Statement,
};
use tokio::runtime::Runtime;

use super::{
    quote_ident, AppendBatch, LoadObject, LoadOutcome, QueryResult, Warehouse, WarehouseError,
    LEDGER_TABLE,
};

/// Login attempts before an unreachable host is reported (with backoff between).
const LOGIN_ATTEMPTS: u32 = 3;

/// Where and how to reach Snowflake: the URL and the `[warehouse]` table. Holds the
/// names of secrets' sources, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnowflakeConfig {
    /// Account identifier (`xy12345.eu-west-1`, `myorg-myaccount`).
    pub account: String,
    /// The full host when the URL names one (a PrivateLink host, or an emulator's).
    pub host: Option<String>,
    /// Plain HTTP; allowed only for a loopback host (the test emulator).
    pub http: bool,
    /// User; else SNOWFLAKE_USER.
    pub user: Option<String>,
    pub database: String,
    pub schema: String,
    pub warehouse: Option<String>,
    pub role: Option<String>,
    /// PEM private key file for key-pair (JWT) auth; else SNOWFLAKE_PRIVATE_KEY_PATH.
    pub private_key_path: Option<PathBuf>,
    /// External stage over the lake prefix (created if missing).
    pub stage: String,
    /// Storage integration the stage uses to read the lake bucket.
    pub storage_integration: Option<String>,
    /// The lake's `s3://bucket/prefix`, which the stage points at (from `[lake]`).
    pub lake_url: Option<String>,
    /// Pipeline name, for the query tag.
    pub pipeline: String,
    /// Largest Parquet file one COPY reads; bigger objects are split first.
    pub load_file_bytes: u64,
}

/// Snowflake's advice: load files of about 100-250 MB compressed.
pub const DEFAULT_LOAD_FILE_BYTES: u64 = 200 * 1024 * 1024;

impl SnowflakeConfig {
    /// Parses `snowflake://[USER@]ACCOUNT_OR_HOST[:PORT]/DATABASE/SCHEMA?warehouse=WH&role=ROLE`.
    /// A host ending in `.snowflakecomputing.com` (PrivateLink included) or carrying a
    /// port is used as is; otherwise the account's default host is.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("snowflake://").unwrap_or(url);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, host) =
            match authority.rsplit_once('@') {
                Some((user, _)) if user.contains(':') => return Err(
                    "a password never goes in the URL; set SNOWFLAKE_PASSWORD or use a key pair"
                        .into(),
                ),
                Some((user, host)) => (Some(user.to_string()), host),
                None => (None, authority),
            };
        // A `@` past the host, or a port that is not a number, is a password the
        // authority was cut short in (it held a `/` or `?`).
        let port_ok = host
            .rsplit_once(':')
            .is_none_or(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
        if path.contains('@') || query.contains('@') || !port_ok {
            return Err(
                "a password never goes in the URL; set SNOWFLAKE_PASSWORD or use a key pair (a port must be a number)"
                    .into(),
            );
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let (Some(database), Some(schema), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("name the database and schema: snowflake://ACCOUNT/DATABASE/SCHEMA".into());
        };
        if host.is_empty() {
            return Err("name the account or host: snowflake://ACCOUNT/DATABASE/SCHEMA".into());
        }
        let mut conf = Self {
            database: database.into(),
            schema: schema.into(),
            user,
            stage: "cdp_lake".into(),
            load_file_bytes: DEFAULT_LOAD_FILE_BYTES,
            ..Self::default()
        };
        let full_host = host.contains(':')
            || host.ends_with(".snowflakecomputing.com")
            || host.parse::<std::net::IpAddr>().is_ok()
            || host == "localhost";
        if full_host {
            conf.host = Some(host.to_string());
            conf.account = host.split('.').next().unwrap_or(host).to_string();
        } else {
            conf.account = host.to_string();
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "warehouse" => conf.warehouse = Some(v.into()),
                "role" => conf.role = Some(v.into()),
                "account" => conf.account = v.into(),
                "protocol" if v == "http" => conf.http = true,
                "protocol" if v == "https" => conf.http = false,
                "password" | "pwd" | "passwd" | "passphrase" | "private_key" | "token" => {
                    return Err(
                        "a password never goes in the URL; set SNOWFLAKE_PASSWORD or use a key pair"
                            .into(),
                    )
                }
                _ => {
                    return Err(format!(
                        "unknown URL parameter {k:?}; use warehouse, role, account or protocol"
                    ))
                }
            }
        }
        if conf.http && !is_loopback(conf.host.as_deref().unwrap_or("")) {
            return Err("protocol=http is only for an emulator on 127.0.0.1".into());
        }
        Ok(conf)
    }

    /// The host requests go to.
    pub fn host(&self) -> String {
        self.host
            .clone()
            .unwrap_or_else(|| format!("{}.snowflakecomputing.com", self.account))
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for SnowflakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let host = self.host.as_deref().unwrap_or(&self.account);
        write!(f, "snowflake://{host}/{}/{}", self.database, self.schema)
    }
}

/// An open Snowflake session and the runtime that drives it.
pub struct Snowflake {
    rt: Runtime,
    session: Session,
    conf: SnowflakeConfig,
}

impl Snowflake {
    /// Logs in (retrying an unreachable host a few times) with the query tag
    /// `cdp:<pipeline>:<run id>`.
    pub fn open(conf: &SnowflakeConfig, run_id: &str) -> Result<Self, WarehouseError> {
        let setup = |message: String| WarehouseError::Setup {
            url: conf.to_string(),
            message,
        };
        let user = conf
            .user
            .clone()
            .or_else(|| env("SNOWFLAKE_USER"))
            .ok_or_else(|| setup("no user: set [warehouse] user or SNOWFLAKE_USER".into()))?;
        let auth = auth_from_env(conf).map_err(setup)?;
        let tag = format!("cdp:{}:{run_id}", conf.pipeline);
        let mut session = SessionConfig::new()
            .with_database(&conf.database)
            .with_schema(&conf.schema)
            .with_session_parameter("QUERY_TAG", serde_json::Value::String(tag));
        if let Some(wh) = &conf.warehouse {
            session = session.with_warehouse(wh);
        }
        if let Some(role) = &conf.role {
            session = session.with_role(role);
        }
        let mut client_conf = ClientConfig::new(user, &conf.account, auth)
            .with_session(session)
            .with_query(QueryConfig::new().with_query_response_timeout(Duration::from_secs(3600)));
        if conf.host.is_some() {
            let scheme = if conf.http { "http" } else { "https" };
            let base = url::Url::parse(&format!("{scheme}://{}", conf.host()))
                .map_err(|e| setup(format!("bad host: {e}")))?;
            client_conf = client_conf.with_endpoint(EndpointConfig::custom_base_url(base));
        }
        let client = Client::new(client_conf).map_err(|e| setup(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup(e.to_string()))?;
        let mut attempt = 1;
        let session = loop {
            match rt.block_on(client.create_session()) {
                Ok(s) => break s,
                Err(e) if attempt < LOGIN_ATTEMPTS && is_transient(&e) => {
                    tracing::warn!(host = %conf.host(), attempt, "snowflake: login failed, retrying");
                    std::thread::sleep(Duration::from_millis(500 << attempt));
                    attempt += 1;
                }
                Err(e) => {
                    let step = if is_transient(&e) {
                        format!("login (after {attempt} attempts)")
                    } else {
                        "login".into()
                    };
                    return Err(sf_err(conf, step, &e));
                }
            }
        };
        Ok(Self {
            rt,
            session,
            conf: conf.clone(),
        })
    }

    /// Runs one statement and returns its rows as text cells.
    fn run(&self, step: &str, stmt: impl IntoStatement) -> Result<Rows, WarehouseError> {
        tracing::debug!(step, "snowflake");
        let result = self.rt.block_on(async {
            let cursor = self.session.query(stmt).await?;
            cursor.collect_table().await
        });
        let table = result.map_err(|e| sf_err(&self.conf, step.into(), &e))?;
        let columns = table
            .schema()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let mut rows = Vec::new();
        for row in table
            .dynamic_rows()
            .map_err(|e| sf_err(&self.conf, step.into(), &e))?
        {
            let row = row.map_err(|e| sf_err(&self.conf, step.into(), &e))?;
            rows.push(row.values().iter().map(to_json).collect());
        }
        Ok(Rows { columns, rows })
    }

    fn exec(&self, step: &str, sql: String) -> Result<Rows, WarehouseError> {
        self.run(step, Statement::new(sql))
    }

    fn ensure_ledger(&self) -> Result<(), WarehouseError> {
        self.exec("create ledger", ledger_ddl()).map(|_| ())
    }

    fn ensure_stage(&self) -> Result<(), WarehouseError> {
        let url = self
            .conf
            .lake_url
            .as_deref()
            .ok_or_else(|| WarehouseError::Setup {
                url: self.conf.to_string(),
                message: "Snowflake loads from the lake through a stage, so the lake must be s3://"
                    .into(),
            })?;
        let sql = create_stage_sql(
            &self.conf.stage,
            url,
            self.conf.storage_integration.as_deref(),
        )
        .map_err(|message| WarehouseError::Setup {
            url: self.conf.to_string(),
            message,
        })?;
        self.exec("create stage", sql).map(|_| ())
    }

    /// The target's columns and types, or None when there is no such table.
    fn table_columns(&self, table: &str) -> Result<Option<Vec<(String, String)>>, WarehouseError> {
        let stmt = Statement::new(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        )
        .bind(self.conf.schema.to_uppercase())
        .bind(table.to_uppercase());
        let rows = self.run("read table columns", stmt)?;
        if rows.rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            rows.rows
                .iter()
                .map(|r| (text(&r[0]), text(&r[1])))
                .collect(),
        ))
    }

    fn current_object(&self, table: &str) -> Result<Option<(String, u64)>, WarehouseError> {
        let stmt = Statement::new(format!(
            "SELECT sha256, row_count FROM {} WHERE table_name = ? ORDER BY loaded_at DESC LIMIT 1",
            sf_ident(LEDGER_TABLE)
        ))
        .bind(table.to_string());
        let rows = self.run("read ledger", stmt)?;
        Ok(rows.rows.first().map(|r| {
            let n = r[1].as_u64().or_else(|| text(&r[1]).parse().ok());
            (text(&r[0]), n.unwrap_or(0))
        }))
    }

    fn count(&self, step: &str, table: &str) -> Result<u64, WarehouseError> {
        let rows = self.exec(step, format!("SELECT count(*) FROM {}", sf_ident(table)))?;
        let v = rows.rows.first().and_then(|r| r.first()).cloned();
        Ok(v.and_then(|v| v.as_u64().or_else(|| text(&v).parse().ok()))
            .unwrap_or(0))
    }

    /// Creates the target or adds the snapshot's new columns; refuses conflicting types.
    fn evolve(&self, table: &str, columns: &[(String, String)]) -> Result<(), WarehouseError> {
        let Some(existing) = self.table_columns(table)? else {
            return self
                .exec("create table", create_table_sql(table, columns, false))
                .map(|_| ());
        };
        let mut conflicts = Vec::new();
        let mut added = Vec::new();
        for (name, ty) in columns {
            match existing.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                None => added.push((name.clone(), ty.clone())),
                Some((_, have)) if !compatible(have, ty) => {
                    conflicts.push(format!("{name} (table has {have}, data has {ty})"))
                }
                Some(_) => {}
            }
        }
        if !conflicts.is_empty() {
            return Err(WarehouseError::SchemaConflict {
                table: table.into(),
                columns: conflicts.join(", "),
            });
        }
        for (name, ty) in added {
            self.exec("add column", add_column_sql(table, &name, &ty))?;
        }
        Ok(())
    }
}

/// What a statement returned.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<serde_json::Value>>,
}

impl Warehouse for Snowflake {
    fn dialect(&self) -> super::Dialect {
        super::Dialect::Snowflake
    }

    fn execute(&mut self, sql: &str) -> Result<(), WarehouseError> {
        self.exec("execute", sql.to_string()).map(|_| ())
    }

    fn execute_in_transaction(&mut self, statements: &[String]) -> Result<(), WarehouseError> {
        self.exec("begin", "BEGIN TRANSACTION".into())?;
        let done = (|| {
            for sql in statements {
                self.exec("statement in transaction", sql.clone())?;
            }
            self.exec("commit", "COMMIT".into())
        })();
        if let Err(e) = done {
            let _ = self.exec("rollback", "ROLLBACK".into());
            return Err(e);
        }
        Ok(())
    }
    fn load_file_bytes(&self) -> Option<u64> {
        Some(self.conf.load_file_bytes)
    }

    /// The batch is copied from the lake through the stage into a transient load
    /// table (COPY is not undone by a rollback, so it never touches the target), then
    /// inserted with its stamp in one transaction with `then`.
    fn append_batch(
        &mut self,
        table: &str,
        batch: &AppendBatch<'_>,
        prepare: bool,
        then: &[String],
    ) -> Result<(), WarehouseError> {
        let columns = parquet_columns(batch.path).map_err(|e| WarehouseError::Load {
            table: table.into(),
            key: batch.key.into(),
            source: e.into(),
        })?;
        if prepare {
            self.ensure_stage()?;
            let mut with_stamp = columns.clone();
            with_stamp.push((batch.loaded_at_column.to_string(), "TIMESTAMP_NTZ".into()));
            self.evolve(table, &with_stamp)?;
        }
        let load = load_table(table);
        self.exec("create load table", create_table_sql(&load, &columns, true))?;
        self.exec(
            "copy",
            copy_sql(&load, &self.conf.stage, &[batch.key.to_string()]),
        )?;
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        let mut statements = vec![append_sql(
            table,
            &load,
            &names,
            batch.loaded_at_column,
            &super::Dialect::Snowflake.literal(&crate::config::Value::Timestamp(batch.loaded_at)),
        )];
        statements.extend_from_slice(then);
        self.execute_in_transaction(&statements)?;
        let _ = self.exec(
            "drop load table",
            format!("DROP TABLE IF EXISTS {}", sf_ident(&load)),
        );
        Ok(())
    }

    fn load_snapshot(
        &mut self,
        table: &str,
        object: &LoadObject,
    ) -> Result<LoadOutcome, WarehouseError> {
        self.ensure_ledger()?;
        if let Some((sha, rows)) = self.current_object(table)? {
            if sha == object.sha256 && self.table_columns(table)?.is_some() {
                return Ok(LoadOutcome::AlreadyCurrent { rows });
            }
        }
        let columns = parquet_columns(&object.path).map_err(|e| WarehouseError::Load {
            table: table.into(),
            key: object.key.clone(),
            source: e.into(),
        })?;
        // The stage first: a lake it cannot read fails the load before the table changes.
        self.ensure_stage()?;
        self.evolve(table, &columns)?;
        let load = load_table(table);
        self.exec("create load table", create_table_sql(&load, &columns, true))?;
        self.exec("copy", copy_sql(&load, &self.conf.stage, &object.files))?;
        let rows = self.count("count loaded rows", &load)?;
        if !object.keys.is_empty() {
            let dups = self.count_duplicates(&load, &object.keys)?;
            if dups > 0 {
                return Err(WarehouseError::DuplicateKeys {
                    table: table.into(),
                    object: object.key.clone(),
                    keys: object.keys.join(", "),
                    count: dups,
                });
            }
        }
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        self.exec("begin", "BEGIN TRANSACTION".into())?;
        let merged = (|| {
            if object.keys.is_empty() {
                self.exec("replace rows", format!("DELETE FROM {}", sf_ident(table)))?;
                self.exec("insert rows", insert_all_sql(table, &load, &names))?;
            } else {
                self.exec("merge", merge_sql(table, &load, &object.keys, &names))?;
                self.exec(
                    "delete missing rows",
                    delete_missing_sql(table, &load, &object.keys),
                )?;
            }
            let stmt = Statement::new(ledger_insert_sql())
                .bind(table.to_string())
                .bind(object.key.clone())
                .bind(object.sha256.clone())
                .bind(rows as i64)
                .bind(object.run_id.clone());
            self.run("record in ledger", stmt)?;
            self.exec("commit", "COMMIT".into())
        })();
        if let Err(e) = merged {
            let _ = self.exec("rollback", "ROLLBACK".into());
            return Err(e);
        }
        let _ = self.exec(
            "drop load table",
            format!("DROP TABLE IF EXISTS {}", sf_ident(&load)),
        );
        Ok(LoadOutcome::Loaded { rows })
    }

    fn query(&mut self, sql: &str) -> Result<QueryResult, WarehouseError> {
        let rows = self.exec("query", sql.to_string())?;
        Ok(QueryResult {
            columns: rows.columns,
            rows: rows.rows,
        })
    }
}

impl Snowflake {
    fn count_duplicates(&self, load: &str, keys: &[String]) -> Result<u64, WarehouseError> {
        let cols = keys
            .iter()
            .map(|k| sf_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = self.exec(
            "check keys",
            format!(
                "SELECT count(*) FROM (SELECT {cols} FROM {} GROUP BY {cols} HAVING count(*) > 1)",
                sf_ident(load)
            ),
        )?;
        let v = rows.rows.first().and_then(|r| r.first()).cloned();
        Ok(v.and_then(|v| v.as_u64().or_else(|| text(&v).parse().ok()))
            .unwrap_or(0))
    }
}

impl SnowflakeConfig {
    /// What a login would lack, from the file and the environment, without logging
    /// in: a user, and a password or a readable private key. Names variables only,
    /// never values.
    pub fn missing_secrets(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self.user.is_none() && env("SNOWFLAKE_USER").is_none() {
            missing.push("no user: set [warehouse] user or SNOWFLAKE_USER".to_string());
        }
        let key_path = self
            .private_key_path
            .clone()
            .or_else(|| env("SNOWFLAKE_PRIVATE_KEY_PATH").map(PathBuf::from));
        match key_path {
            Some(path) if std::fs::File::open(&path).is_err() => missing.push(format!(
                "the private key file {} cannot be read",
                path.display()
            )),
            Some(_) => {}
            None if env("SNOWFLAKE_PRIVATE_KEY").is_some() || env("SNOWFLAKE_PASSWORD").is_some() => {}
            None => missing.push(
                "no credentials: set SNOWFLAKE_PASSWORD, or SNOWFLAKE_PRIVATE_KEY_PATH (or [warehouse] private_key_path) for key-pair auth".to_string(),
            ),
        }
        missing
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Key pair when a key is configured (file or SNOWFLAKE_PRIVATE_KEY), else password.
fn auth_from_env(conf: &SnowflakeConfig) -> Result<AuthConfig, String> {
    let key_path = conf
        .private_key_path
        .clone()
        .or_else(|| env("SNOWFLAKE_PRIVATE_KEY_PATH").map(PathBuf::from));
    let pem = match key_path {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the private key file {}: {e}", path.display()))?,
        ),
        None => env("SNOWFLAKE_PRIVATE_KEY"),
    };
    if let Some(pem) = pem {
        let key = match env("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE") {
            Some(pass) => KeyPairConfig::from_encrypted_pem(pem, pass.into_bytes()),
            None => KeyPairConfig::from_pem(pem),
        };
        return Ok(AuthConfig::key_pair(key));
    }
    match env("SNOWFLAKE_PASSWORD") {
        Some(pw) => Ok(AuthConfig::password(pw)),
        None => Err("no credentials: set SNOWFLAKE_PASSWORD, or SNOWFLAKE_PRIVATE_KEY_PATH (or [warehouse] private_key_path) for key-pair auth".into()),
    }
}

fn is_transient(e: &snowflake_connector_rs::Error) -> bool {
    use snowflake_connector_rs::ErrorKind as K;
    matches!(e.kind(), K::Network | K::Timeout)
}

/// The connector's message, which names the failure but carries no credentials.
fn sf_err(
    conf: &SnowflakeConfig,
    step: String,
    e: &snowflake_connector_rs::Error,
) -> WarehouseError {
    WarehouseError::Snowflake {
        url: conf.to_string(),
        host: conf.host(),
        step,
        message: e.to_string(),
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn to_json(v: &CellValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        CellValue::Null => J::Null,
        CellValue::Boolean(b) => J::Bool(*b),
        CellValue::Integer(i) => {
            i64::try_from(*i).map_or_else(|_| J::String(i.to_string()), J::from)
        }
        CellValue::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        CellValue::Decimal(d) => J::String(d.raw().to_string()),
        CellValue::String(s) => J::String(s.clone()),
        CellValue::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
        CellValue::Time(t) => J::String(t.to_string()),
        CellValue::TimestampNtz(t) => J::String(t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
        CellValue::TimestampLtz(t) => {
            J::String(t.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        }
        CellValue::TimestampTz(t) => J::String(t.to_rfc3339()),
        CellValue::Json(j) => j.clone(),
        other => J::String(format!("{other:?}")),
    }
}

/// Column names and Snowflake types of a local Parquet file, read by DuckDB.
pub fn parquet_columns(path: &std::path::Path) -> Result<Vec<(String, String)>, ::duckdb::Error> {
    let conn = ::duckdb::Connection::open_in_memory()?;
    let sql = format!(
        "DESCRIBE SELECT * FROM read_parquet({})",
        quote_literal(&path.to_string_lossy())
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.map(|r| r.map(|(name, ty)| (name, snowflake_type(&ty))))
        .collect()
}

/// The Snowflake type for a DuckDB type name.
pub fn snowflake_type(duck: &str) -> String {
    let t = duck.to_uppercase();
    match t.as_str() {
        "VARCHAR" | "UUID" => "VARCHAR".into(),
        "BOOLEAN" => "BOOLEAN".into(),
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "HUGEINT" | "UTINYINT" | "USMALLINT"
        | "UINTEGER" | "UBIGINT" => "NUMBER(38,0)".into(),
        "FLOAT" | "DOUBLE" => "FLOAT".into(),
        "DATE" => "DATE".into(),
        "TIME" => "TIME".into(),
        _ if t.starts_with("TIMESTAMP") => "TIMESTAMP_NTZ".into(),
        _ if t.starts_with("DECIMAL") => t.replacen("DECIMAL", "NUMBER", 1),
        _ => "VARIANT".into(),
    }
}

/// Type family, for the additive-evolution check.
fn family(ty: &str) -> &'static str {
    let t = ty.to_uppercase();
    match t.split('(').next().unwrap_or("") {
        "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "CHARACTER" => "text",
        "NUMBER" | "DECIMAL" | "NUMERIC" | "INT" | "INTEGER" | "BIGINT" | "SMALLINT"
        | "TINYINT" | "BYTEINT" => "number",
        "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "REAL" => "float",
        "BOOLEAN" => "boolean",
        "DATE" => "date",
        "TIME" => "time",
        s if s.starts_with("TIMESTAMP") || s == "DATETIME" => "timestamp",
        _ => "variant",
    }
}

/// Whether data of type `new` loads into a column of type `have` without loss.
fn compatible(have: &str, new: &str) -> bool {
    let (h, n) = (family(have), family(new));
    h == n || h == "variant" || (h == "float" && n == "number")
}

/// cdp's names as Snowflake identifiers: upper case, quoted.
pub fn sf_ident(name: &str) -> String {
    quote_ident(&name.to_uppercase())
}

/// A SQL string literal: `it's` -> `'it''s'`, backslashes doubled (Snowflake reads
/// escapes in string literals).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A name the pipeline file gives for an existing Snowflake object (stage,
/// integration), used unquoted so Snowflake's own case rules apply; anything but a
/// plain identifier is refused.
fn plain_ident(name: &str) -> Result<&str, String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "{name:?} is not a plain identifier (letters, digits, '_', '$')"
        ))
    }
}

fn load_table(table: &str) -> String {
    format!("_cdp_load_{table}")
}

pub fn ledger_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (table_name VARCHAR NOT NULL, object_key VARCHAR NOT NULL, \
         sha256 VARCHAR NOT NULL, row_count NUMBER(38,0) NOT NULL, run_id VARCHAR NOT NULL, \
         loaded_at TIMESTAMP_NTZ NOT NULL DEFAULT CURRENT_TIMESTAMP())",
        sf_ident(LEDGER_TABLE)
    )
}

pub fn ledger_insert_sql() -> String {
    format!(
        "INSERT INTO {} (table_name, object_key, sha256, row_count, run_id) VALUES (?, ?, ?, ?, ?)",
        sf_ident(LEDGER_TABLE)
    )
}

pub fn create_table_sql(table: &str, columns: &[(String, String)], transient: bool) -> String {
    let cols = columns
        .iter()
        .map(|(n, t)| format!("{} {t}", sf_ident(n)))
        .collect::<Vec<_>>()
        .join(", ");
    if transient {
        format!(
            "CREATE OR REPLACE TRANSIENT TABLE {} ({cols})",
            sf_ident(table)
        )
    } else {
        format!("CREATE TABLE IF NOT EXISTS {} ({cols})", sf_ident(table))
    }
}

pub fn add_column_sql(table: &str, column: &str, ty: &str) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {ty}",
        sf_ident(table),
        sf_ident(column)
    )
}

pub fn create_stage_sql(
    stage: &str,
    lake_url: &str,
    integration: Option<&str>,
) -> Result<String, String> {
    let mut sql = format!(
        "CREATE STAGE IF NOT EXISTS {} URL = {}",
        plain_ident(stage)?,
        quote_literal(&format!("{}/", lake_url.trim_end_matches('/')))
    );
    if let Some(integ) = integration {
        sql.push_str(&format!(" STORAGE_INTEGRATION = {}", plain_ident(integ)?));
    }
    sql.push_str(" FILE_FORMAT = (TYPE = PARQUET)");
    Ok(sql)
}

pub fn copy_sql(load: &str, stage: &str, files: &[String]) -> String {
    let files: Vec<String> = files.iter().map(|f| quote_literal(f)).collect();
    format!(
        "COPY INTO {} FROM @{stage} FILES = ({}) FILE_FORMAT = (TYPE = PARQUET) \
         MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE",
        sf_ident(load),
        files.join(", ")
    )
}

pub fn merge_sql(table: &str, load: &str, keys: &[String], columns: &[String]) -> String {
    let on = keys
        .iter()
        .map(|k| format!("t.{c} = s.{c}", c = sf_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let set = columns
        .iter()
        .filter(|c| !keys.contains(c))
        .map(|c| format!("{c} = s.{c}", c = sf_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let names = columns
        .iter()
        .map(|c| sf_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let values = columns
        .iter()
        .map(|c| format!("s.{}", sf_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let update = if set.is_empty() {
        String::new()
    } else {
        format!(" WHEN MATCHED THEN UPDATE SET {set}")
    };
    format!(
        "MERGE INTO {} t USING {} s ON {on}{update} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})",
        sf_ident(table),
        sf_ident(load)
    )
}

pub fn delete_missing_sql(table: &str, load: &str, keys: &[String]) -> String {
    let on = keys
        .iter()
        .map(|k| format!("s.{c} = t.{c}", c = sf_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "DELETE FROM {} t WHERE NOT EXISTS (SELECT 1 FROM {} s WHERE {on})",
        sf_ident(table),
        sf_ident(load)
    )
}

/// The load table's rows into `table`, by column name, each stamped `stamp` in
/// `stamp_column`.
pub fn append_sql(
    table: &str,
    load: &str,
    columns: &[String],
    stamp_column: &str,
    stamp: &str,
) -> String {
    let names = columns
        .iter()
        .map(|c| sf_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({names}, {}) SELECT {names}, {stamp} FROM {}",
        sf_ident(table),
        sf_ident(stamp_column),
        sf_ident(load)
    )
}

pub fn insert_all_sql(table: &str, load: &str, columns: &[String]) -> String {
    let names = columns
        .iter()
        .map(|c| sf_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({names}) SELECT {names} FROM {}",
        sf_ident(table),
        sf_ident(load)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_account_or_a_full_host() {
        let c = SnowflakeConfig::parse(
            "snowflake://xy12345.eu-west-1/DB/PUBLIC?warehouse=WH&role=LOADER",
        )
        .expect("account");
        assert_eq!(c.account, "xy12345.eu-west-1");
        assert_eq!(c.host(), "xy12345.eu-west-1.snowflakecomputing.com");
        assert_eq!(
            (c.warehouse.as_deref(), c.role.as_deref()),
            (Some("WH"), Some("LOADER"))
        );
        let p = SnowflakeConfig::parse(
            "snowflake://loader@xy12345.eu-west-1.privatelink.snowflakecomputing.com/DB/S",
        )
        .expect("privatelink");
        assert_eq!(
            p.host(),
            "xy12345.eu-west-1.privatelink.snowflakecomputing.com"
        );
        assert_eq!(p.account, "xy12345");
        assert_eq!(p.user.as_deref(), Some("loader"));
        let e = SnowflakeConfig::parse("snowflake://127.0.0.1:8080/DB/S?protocol=http")
            .expect("emulator");
        assert!(e.http);
        assert!(SnowflakeConfig::parse(
            "snowflake://acct.snowflakecomputing.com/DB/S?protocol=http"
        )
        .is_err());
        assert!(SnowflakeConfig::parse("snowflake://acct/DB").is_err());
        let err = SnowflakeConfig::parse("snowflake://u:hunter2@acct/DB/S").expect_err("password");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn identifiers_are_quoted_and_literals_escaped() {
        assert_eq!(sf_ident("order"), "\"ORDER\"");
        assert_eq!(sf_ident("a\"b"), "\"A\"\"B\"");
        assert_eq!(quote_literal("it's\\"), "'it''s\\\\'");
        assert!(create_stage_sql("st; DROP", "s3://b/p", None).is_err());
    }

    #[test]
    fn evolution_allows_widening_only() {
        assert!(compatible("NUMBER", "NUMBER(38,0)"));
        assert!(compatible("FLOAT", "NUMBER(38,0)"));
        assert!(compatible("TEXT", "VARCHAR"));
        assert!(!compatible("NUMBER", "VARCHAR"));
        assert!(!compatible("DATE", "TIMESTAMP_NTZ"));
    }

    #[test]
    fn load_sql_snapshots() {
        let cols = vec![
            ("record_id".to_string(), "VARCHAR".to_string()),
            ("source".to_string(), "VARCHAR".to_string()),
            ("age".to_string(), "NUMBER(38,0)".to_string()),
        ];
        let names: Vec<String> = cols.iter().map(|(n, _)| n.clone()).collect();
        let keys = vec!["source".to_string(), "record_id".to_string()];
        let sql = [
            ledger_ddl(),
            create_table_sql("person", &cols, false),
            add_column_sql("person", "age", "NUMBER(38,0)"),
            create_stage_sql("cdp_lake", "s3://acme/lake", Some("cdp_s3")).expect("stage"),
            create_table_sql("_cdp_load_person", &cols, true),
            copy_sql(
                "_cdp_load_person",
                "cdp_lake",
                &[
                    "load/person/0123abcd/part-00000.parquet".into(),
                    "load/person/0123abcd/part-00001.parquet".into(),
                ],
            ),
            merge_sql("person", "_cdp_load_person", &keys, &names),
            delete_missing_sql("person", "_cdp_load_person", &keys),
            ledger_insert_sql(),
        ]
        .join(";\n");
        insta::assert_snapshot!(sql);
    }
}
