//! ClickHouse over its HTTP interface: every statement one POST with the
//! session read-only (`readonly=1`) and `max_execution_time` of the query
//! timeout, rows read from `FORMAT JSONCompact` by the types it announces,
//! error codes read from the body, `system.columns` as the catalog, and the
//! dialect (`` `x` ``, `count()`, `uniqExact`, `countIf`, case-sensitive
//! names).
//!
//! Parameters are written `{p1:Date}`, ClickHouse's own syntax. Servers
//! from 19.15 bind them (`param_p1=…`); older ones (Debian's 18.16) have no
//! parameters, so each is replaced by a typed literal written from the
//! bound [`Value`] (`toDate('2026-11-20')`), never from user text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use futures::FutureExt;
use futures::future::BoxFuture;
use percent_encoding::percent_decode_str;
use tokio::sync::{OnceCell, oneshot};
use tokio::time::Instant;

use super::backend::{Backend, Failure, Rows};
use super::dialect::{Dialect, schema_and_name, schema_value};
use super::error::{Endpoint, Origin, ServerError};
use super::value::decode_error;
use super::{MAX_ACQUIRE_WAIT, Settings, Value, WarehouseError};
use crate::domain::{Identifier, TableRef};

/// The first version whose HTTP interface binds `{name:Type}` parameters.
const PARAMETERS_SINCE: (u32, u32) = (19, 15);

/// ClickHouse's SQL.
pub(super) struct ClickHouseDialect;

impl Dialect for ClickHouseDialect {
    fn quote(&self, ident: &Identifier) -> String {
        format!("`{}`", ident.as_str())
    }

    /// `{p1:Date}`: the parameter's name and its ClickHouse type.
    fn placeholder(&self, index: usize, value: &Value) -> String {
        format!("{{p{index}:{}}}", param_type(value))
    }

    fn always_true(&self) -> &'static str {
        "1"
    }

    fn count_rows(&self) -> String {
        "count()".to_owned()
    }

    /// An aggregate over no rows is the type's default in ClickHouse
    /// (`0000-00-00 00:00:00` for a `DateTime`), never NULL: no counted value
    /// gives NULL.
    fn max(&self, column: &Identifier) -> String {
        let c = self.quote(column);
        format!("if(count({c}) = 0, NULL, max({c}))")
    }

    fn aggregate(&self, func: &str, column: &Identifier) -> String {
        let c = self.quote(column);
        format!("if(count({c}) = 0, NULL, {func}({c}))")
    }

    fn count_distinct(&self, column: &Identifier) -> String {
        format!("uniqExact({})", self.quote(column))
    }

    fn keyed_rows(&self, columns: &[Identifier]) -> String {
        format!("countIf({})", self.not_null(columns))
    }

    fn counts_distinct_tuples(&self) -> bool {
        true
    }

    /// `uniqExact` over several arguments skips a row where any is NULL.
    fn distinct_keys(&self, columns: &[Identifier]) -> String {
        format!("uniqExact({})", self.column_list(columns))
    }

    /// Identifiers are case-sensitive.
    fn same_column(&self, catalog_name: &str, name: &str) -> bool {
        catalog_name == name
    }

    /// The default schema is the URL's database, `currentDatabase()`.
    fn catalog_query(&self, table: &TableRef) -> (&'static str, Vec<Value>) {
        let (schema, name) = schema_and_name(table);
        (
            "SELECT name, type FROM system.columns \
             WHERE database = coalesce({p1:Nullable(String)}, currentDatabase()) \
             AND table = {p2:String}",
            vec![schema, name],
        )
    }

    /// A ClickHouse primary key orders and indexes rows without making
    /// them unique, so no column is reported in one; the partition key
    /// from `is_in_partition_key`. `system.columns` lists each table's
    /// columns in declaration order.
    /// The columns from `system.columns` and, in the same statement, each
    /// table's active parts from `system.parts`: `sum(rows)`,
    /// `max(modification_time)` and how many parts (which moves on every
    /// insert and merge); a `MergeTree` table without active parts holds 0
    /// rows. Other engines (`Distributed`, `View`, `Memory`) have no figures.
    fn discover_query(&self, schema: &Identifier) -> (String, Vec<Value>) {
        (
            "SELECT table, name, type, CAST(NULL AS Nullable(UInt64)) AS estimate, \
             CAST(NULL AS Nullable(UInt64)) AS changed, CAST(NULL AS Nullable(UInt64)) AS counter \
             FROM system.columns WHERE database = {p1:String} \
             UNION ALL \
             SELECT table, '', '', toNullable(sum(rows)), \
             toNullable(toUInt64(toUnixTimestamp(max(modification_time)))), toNullable(count()) \
             FROM system.parts WHERE active AND database = {p2:String} GROUP BY table \
             UNION ALL \
             SELECT name, '', '', toNullable(toUInt64(0)), CAST(NULL AS Nullable(UInt64)), \
             toNullable(toUInt64(0)) \
             FROM system.tables WHERE database = {p3:String} AND engine LIKE '%MergeTree'"
                .to_owned(),
            vec![
                Value::Text(schema.as_str().to_owned()),
                Value::Text(schema.as_str().to_owned()),
                Value::Text(schema.as_str().to_owned()),
            ],
        )
    }

    fn schema_catalog_query(&self, schema: Option<&Identifier>) -> (String, Vec<Value>) {
        (
            "SELECT database, table, name, type, toInt64(0), toInt64(is_in_partition_key) \
             FROM system.columns \
             WHERE database = coalesce({p1:Nullable(String)}, currentDatabase()) \
             ORDER BY table"
                .to_owned(),
            vec![schema_value(schema)],
        )
    }

    /// Sampled, each aggregate is a scalar subquery of its own (ClickHouse
    /// 18 reads no `w.*` after a join).
    fn sampled_profile(
        &self,
        relation: &str,
        whole: &[String],
        sampled: &str,
        counted: &[String],
    ) -> String {
        let scalar = |expr: &String, from: &str| format!("(SELECT {expr} FROM {from})");
        let list: Vec<String> = whole
            .iter()
            .map(|e| scalar(e, relation))
            .chain(counted.iter().map(|e| scalar(e, sampled)))
            .collect();
        format!("SELECT {}", super::dialect::aliased(&list, "p"))
    }

    /// ClickHouse spells types in CamelCase, case-sensitively; `Nullable`
    /// and `LowCardinality` wrap a type without changing what it holds.
    fn own_type(&self, spelling: &str) -> Option<String> {
        let unwrapped = ["Nullable(", "LowCardinality("]
            .iter()
            .find_map(|w| spelling.strip_prefix(w)?.strip_suffix(')'));
        if let Some(inner) = unwrapped {
            return Some(super::types::normalise(inner.trim()));
        }
        let (base, args) = match spelling.split_once('(') {
            Some((base, rest)) => (base, rest.strip_suffix(')')),
            None => (spelling, None),
        };
        let name = match base {
            "Int8" | "UInt8" | "Int16" => "smallint",
            "UInt16" | "Int32" => "integer",
            "UInt32" | "Int64" | "UInt64" => "bigint",
            "Float32" => "real",
            "Float64" => "double",
            "Decimal" | "Decimal32" | "Decimal64" | "Decimal128" | "Decimal256" => "numeric",
            "Bool" => "boolean",
            "String" | "FixedString" => "text",
            "Date" | "Date32" => "date",
            // A time zone argument makes it a point in time as the others
            // mean it; without one it reads in the server's zone.
            "DateTime" => match args {
                Some(_) => "timestamptz",
                None => "timestamp",
            },
            "DateTime64" => match args.is_some_and(|a| a.contains(',')) {
                true => "timestamptz",
                false => "timestamp",
            },
            "JSON" | "Object" => "json",
            _ => return None,
        };
        Some(name.to_owned())
    }
}

/// The ClickHouse type of a parameter.
fn param_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "Nullable(String)",
        Value::Int(_) => "Int64",
        Value::Float(_) => "Float64",
        Value::Text(_) => "String",
        Value::Date(_) => "Date",
        Value::Timestamp(_) => "DateTime",
        Value::TimestampTz(_) => "DateTime('UTC')",
    }
}

/// `value` as a typed literal: what a `{pN:Type}` parameter becomes on a
/// server without parameters.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Int(i) => format!("toInt64({i})"),
        Value::Float(f) if f.is_nan() => "nan".to_owned(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.to_owned(),
        Value::Float(f) => format!("toFloat64({f:?})"),
        Value::Text(s) => quote_string(s),
        Value::Date(d) => format!("toDate('{}')", d.format("%Y-%m-%d")),
        Value::Timestamp(t) => format!("toDateTime('{}')", t.format("%Y-%m-%d %H:%M:%S")),
        Value::TimestampTz(t) => {
            format!("toDateTime('{}', 'UTC')", t.format("%Y-%m-%d %H:%M:%S"))
        }
    }
}

/// `'…'` with backslashes and quotes escaped, as ClickHouse reads strings.
fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `value` as an HTTP parameter's text (the type's text format, escaped
/// as in tab-separated values).
fn param_text(value: &Value) -> String {
    match value {
        Value::Null => "\\N".to_owned(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(s) => s
            .replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n"),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        Value::TimestampTz(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
    }
}

/// Whether `value` is one of the ClickHouse type `ty`: its own type, or
/// NULL or its own type inside `Nullable(…)`.
fn fits(value: &Value, ty: &str) -> bool {
    match ty
        .strip_prefix("Nullable(")
        .and_then(|t| t.strip_suffix(')'))
    {
        Some(inner) => value.is_null() || param_type(value) == inner,
        None => param_type(value) == ty,
    }
}

/// `sql` with each `{pN:Type}` outside quotes and comments replaced by the
/// typed literal of `params[N-1]`, when the type is the one the dialect
/// gave that value. Anything else is left for the server to refuse.
pub(super) fn inline_params(sql: &str, params: &[Value]) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            b'{' => {
                let parsed = sql[i + 1..].find('}').and_then(|close| {
                    let inner = &sql[i + 1..i + 1 + close];
                    let (name, ty) = inner.split_once(':')?;
                    let index: usize = name.strip_prefix('p')?.parse().ok()?;
                    let value = params.get(index.checked_sub(1)?)?;
                    fits(value, ty).then(|| (close, literal(value)))
                });
                match parsed {
                    Some((close, literal)) => {
                        out.push_str(&sql[copied..i]);
                        out.push_str(&literal);
                        i += close + 2;
                        copied = i;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    out
}

/// Where and as whom statements are sent.
#[derive(Debug, Clone)]
struct Target {
    /// `http(s)://host:port/`.
    base: url::Url,
    user: String,
    password: Option<String>,
    database: Option<String>,
}

/// Reads `clickhouse://user:password@host:8123/database` (`clickhouses://`
/// for HTTPS, default ports 8123 and 8443).
fn target(url: &str) -> Result<Target, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let (scheme, default_port) = match parsed.scheme() {
        "clickhouse" => ("http", 8123),
        "clickhouses" => ("https", 8443),
        other => return Err(format!("unsupported scheme `{other}`")),
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL names no host")?;
    if parsed.query().is_some() {
        return Err("a ClickHouse URL takes no query parameters".to_owned());
    }
    let port = parsed.port().unwrap_or(default_port);
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let database = parsed.path().trim_matches('/');
    if database.contains('/') {
        return Err(format!("`{database}` is not a database name"));
    }
    let base = url::Url::parse(&format!("{scheme}://{host}:{port}/"))
        .map_err(|e| format!("not a URL: {e}"))?;
    Ok(Target {
        base,
        user: match parsed.username() {
            "" => "default".to_owned(),
            user => decode(user),
        },
        password: parsed.password().map(decode),
        database: (!database.is_empty()).then(|| decode(database)),
    })
}

/// A ClickHouse server reached over HTTP.
pub(super) struct ClickHouse {
    client: reqwest::Client,
    target: Target,
    origin: Origin,
    max_connections: u32,
    /// Whether the server binds `{name:Type}` parameters, asked once.
    binds_parameters: OnceCell<bool>,
    /// Statements go without settings: the user's profile is read-only.
    settings_locked: AtomicBool,
}

/// Whether the server refused to change a setting because the user's
/// profile is read-only (`Cannot override setting (…) in readonly mode`,
/// `Cannot modify '…' setting in readonly mode`).
fn settings_refused(error: &WarehouseError) -> bool {
    matches!(error, WarehouseError::Query { message }
        if message.ends_with("(code 164)") && message.contains("setting"))
}

impl std::fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouse")
            .field("base", &self.target.base.as_str())
            .field("warehouse", &self.origin.warehouse)
            .finish_non_exhaustive()
    }
}

/// The HTTP client for `settings`: connections kept alive up to
/// `max_connections` per host, a connection attempt bounded like a pool's
/// wait for one.
pub(super) fn connect(settings: &Settings, _tz: Tz) -> Result<Box<dyn Backend>, String> {
    let target = target(&settings.url)?;
    let client = reqwest::Client::builder()
        .connect_timeout(settings.query_timeout.min(MAX_ACQUIRE_WAIT))
        .pool_max_idle_per_host(settings.max_connections.max(1) as usize)
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let endpoint = Endpoint::Server {
        host: target.base.host_str().unwrap_or_default().to_owned(),
        port: target.base.port_or_known_default().unwrap_or_default(),
        user: target.user.clone(),
        database: target.database.clone(),
    };
    Ok(Box::new(ClickHouse {
        client,
        target,
        origin: Origin {
            warehouse: settings.name.clone(),
            url: settings.shown_url.clone(),
            endpoint,
            timeout: settings.query_timeout,
        },
        max_connections: settings.max_connections.max(1),
        binds_parameters: OnceCell::new(),
        settings_locked: AtomicBool::new(false),
    }))
}

impl ClickHouse {
    /// One POST of `sql` in a read-only session, at most until `deadline`.
    ///
    /// A user whose profile is read-only already may change no setting,
    /// `max_execution_time` included: the server says so (code 164), and
    /// from then on statements go without it, under the client's timeout
    /// alone.
    async fn post(
        &self,
        sql: &str,
        params: &[(String, String)],
        deadline: Instant,
    ) -> Result<Response, Failure> {
        let locked = self.settings_locked.load(Ordering::Relaxed);
        match self.post_once(sql, params, deadline, !locked).await {
            Err(Failure::Failed(e)) if !locked && settings_refused(&e) => {
                self.settings_locked.store(true, Ordering::Relaxed);
                tracing::warn!(
                    warehouse = %self.origin.warehouse,
                    "the ClickHouse user's profile is read-only and refuses max_execution_time; \
                     statements are bounded by the client's query_timeout only"
                );
                self.post_once(sql, params, deadline, false).await
            }
            other => other,
        }
    }

    async fn post_once(
        &self,
        sql: &str,
        params: &[(String, String)],
        deadline: Instant,
        with_settings: bool,
    ) -> Result<Response, Failure> {
        let mut url = self.target.base.clone();
        {
            let mut query = url.query_pairs_mut();
            if with_settings {
                query.append_pair("readonly", "1");
                // Whole seconds on every version; never 0, which is no limit.
                let secs = self.origin.timeout.as_secs_f64().ceil().max(1.0) as u64;
                query.append_pair("max_execution_time", &secs.to_string());
            }
            query.append_pair("default_format", "JSONCompact");
            if let Some(db) = &self.target.database {
                query.append_pair("database", db);
            }
            for (name, value) in params {
                query.append_pair(name, value);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let request = self
            .client
            .post(url)
            .basic_auth(&self.target.user, self.target.password.as_deref())
            .timeout(left.max(Duration::from_millis(1)))
            .body(sql.to_owned());
        let response = request.send().await.map_err(|e| self.failure(e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| self.failure(e))?;
        if status.is_success() && !body.starts_with("Code: ") {
            return Ok(Response { body });
        }
        Err(Failure::Failed(self.server_error(&body, status)))
    }

    /// Whether the server binds parameters: asked once, from its version.
    async fn binds_parameters(&self, deadline: Instant) -> Result<bool, Failure> {
        self.binds_parameters
            .get_or_try_init(|| async {
                let response = self.post("SELECT version()", &[], deadline).await?;
                let rows = decode(&response.body).map_err(Failure::Failed)?;
                let version = match rows.first().and_then(|r| r.as_ref().ok()) {
                    Some(row) => row.first().map(|v| v.to_string()).unwrap_or_default(),
                    None => String::new(),
                };
                let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
                Ok((major, minor) >= PARAMETERS_SINCE)
            })
            .await
            .copied()
    }

    fn failure(&self, e: reqwest::Error) -> Failure {
        // The URL holds nothing secret, but the settings make it noise.
        let e = e.without_url();
        if e.is_timeout() && !e.is_connect() {
            return Failure::TimedOut {
                waited: Duration::ZERO,
            };
        }
        Failure::Failed(self.transport_error(e))
    }

    /// A request that failed below HTTP: refused, unknown host, reset, TLS.
    fn transport_error(&self, e: reqwest::Error) -> WarehouseError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return self.origin.io_error(io);
            }
            source = err.source();
        }
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            let _ = write!(text, ": {c}");
            cause = c.source();
        }
        if text.contains("dns error") || text.contains("failed to lookup address") {
            let io = std::io::Error::other(format!("failed to lookup address: {text}"));
            return self.origin.io_error(&io);
        }
        WarehouseError::Unavailable {
            warehouse: self.origin.warehouse.clone(),
            reason: if e.is_connect() {
                format!(
                    "no connection within {}: {text}",
                    super::error::format_timeout(self.origin.timeout.min(MAX_ACQUIRE_WAIT))
                )
            } else {
                text
            },
        }
    }

    /// An error the server answered with.
    fn server_error(&self, body: &str, status: reqwest::StatusCode) -> WarehouseError {
        let (code, message) = parse_exception(body);
        let server = match code {
            Some(code) => classify(code, &message, self.target.database.as_deref()),
            None if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN =>
            {
                ServerError::Authentication
            }
            None if status.is_server_error() => ServerError::Unavailable,
            None => ServerError::Other,
        };
        let message = match (code, message.is_empty()) {
            (_, true) => format!("HTTP {status}"),
            (Some(code), false) => format!("{message} (code {code})"),
            (None, false) => message,
        };
        self.origin.server_error(server, message)
    }
}

/// A successful answer.
struct Response {
    body: String,
}

/// The code and the message of `Code: 60, e.displayText() = DB::Exception:
/// Table x doesn't exist., e.what() = …` (18.x) or `Code: 60. DB::Exception:
/// Table x does not exist. (UNKNOWN_TABLE) (version …)` (later).
fn parse_exception(body: &str) -> (Option<u32>, String) {
    let body = body.trim();
    let Some(at) = body.rfind("Code: ") else {
        return (None, body.to_owned());
    };
    let rest = &body[at + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let code = digits.parse().ok();
    let mut message = match rest.find("DB::Exception: ") {
        Some(i) => &rest[i + 15..],
        None => rest[digits.len()..].trim_start_matches([',', '.', ' ']),
    };
    for end in [", e.what() = ", " (version "] {
        if let Some(i) = message.find(end) {
            message = &message[..i];
        }
    }
    (code, message.trim().to_owned())
}

/// Reads ClickHouse's error codes; `database` is the URL's.
fn classify(code: u32, message: &str, database: Option<&str>) -> ServerError {
    match code {
        // UNKNOWN_TABLE: `Table db.x doesn't exist.`
        60 => ServerError::TableMissing(name_after(message, "Table ")),
        // UNKNOWN_DATABASE: the URL's, or the one a statement names.
        81 => {
            let name = name_after(message, "Database ");
            if database.is_none_or(|db| db == name) {
                ServerError::DatabaseMissing
            } else {
                ServerError::TableMissing(name)
            }
        }
        // UNKNOWN_IDENTIFIER (`Unknown identifier: x`, `Missing columns:
        // 'x' while processing …`), NO_SUCH_COLUMN_IN_TABLE
        47 | 16 => ServerError::ColumnMissing(match message.split_once('\'') {
            Some((_, rest)) => rest.split('\'').next().unwrap_or(rest).to_owned(),
            None => message
                .rsplit(": ")
                .next()
                .unwrap_or(message)
                .trim()
                .to_owned(),
        }),
        // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, IP_ADDRESS_NOT_ALLOWED,
        // AUTHENTICATION_FAILED
        192..=195 | 516 => ServerError::Authentication,
        // TIMEOUT_EXCEEDED: max_execution_time
        159 => ServerError::Timeout,
        // TOO_MANY_SIMULTANEOUS_QUERIES, ABORTED, shutting down
        202 | 236 | 394 => ServerError::Unavailable,
        _ => ServerError::Other,
    }
}

/// The word after `prefix` in `message`, without a final `.`.
fn name_after(message: &str, prefix: &str) -> String {
    let rest = message.split_once(prefix).map_or(message, |(_, rest)| rest);
    let name = rest.split_whitespace().next().unwrap_or(rest);
    name.trim_end_matches('.').trim_matches('`').to_owned()
}

impl Backend for ClickHouse {
    fn fetch_all<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [Value],
        deadline: Instant,
        connected: oneshot::Sender<()>,
    ) -> BoxFuture<'a, Result<Rows, Failure>> {
        async move {
            // HTTP takes a connection per request: the statement starts now.
            let _ = connected.send(());
            let (sql, bound) = match params.is_empty() {
                true => (sql.to_owned(), Vec::new()),
                false if self.binds_parameters(deadline).await? => (
                    sql.to_owned(),
                    params
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("param_p{}", i + 1), param_text(v)))
                        .collect(),
                ),
                false => (inline_params(sql, params), Vec::new()),
            };
            let response = self.post(&sql, &bound, deadline).await?;
            decode(&response.body).map_err(Failure::Failed)
        }
        .boxed()
    }

    fn connect_once(&self) -> BoxFuture<'_, Result<(), WarehouseError>> {
        async move {
            let deadline = Instant::now() + self.origin.timeout.min(MAX_ACQUIRE_WAIT);
            match self.post("SELECT 1", &[], deadline).await {
                Ok(_) => Ok(()),
                Err(Failure::Failed(e)) => Err(e),
                Err(_) => Err(WarehouseError::Unavailable {
                    warehouse: self.origin.warehouse.clone(),
                    reason: "no answer to SELECT 1 in time".to_owned(),
                }),
            }
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        futures::future::ready(()).boxed()
    }

    fn max_connections(&self) -> u32 {
        self.max_connections
    }
}

/// The body of `FORMAT JSONCompact`.
#[derive(serde::Deserialize)]
struct Compact {
    meta: Vec<Meta>,
    data: Vec<Vec<serde_json::Value>>,
}

#[derive(serde::Deserialize)]
struct Meta {
    #[serde(rename = "type")]
    data_type: String,
}

/// Every row of a `JSONCompact` body, each cell read by its column's type.
fn decode(body: &str) -> Result<Rows, WarehouseError> {
    let compact: Compact = serde_json::from_str(body).map_err(|e| WarehouseError::Query {
        message: format!("cannot read the server's answer: {e}"),
    })?;
    Ok(compact
        .data
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .map(|(i, cell)| {
                    let ty = compact.meta.get(i).map_or("", |m| m.data_type.as_str());
                    decode_cell(i, ty, cell)
                })
                .collect()
        })
        .collect())
}

/// `Nullable(T)` and `LowCardinality(T)` as `T`.
fn unwrap_type(mut ty: &str) -> &str {
    loop {
        let inner = ["Nullable(", "LowCardinality("]
            .iter()
            .find_map(|w| ty.strip_prefix(w)?.strip_suffix(')'));
        match inner {
            Some(inner) => ty = inner,
            None => return ty,
        }
    }
}

/// One cell by its ClickHouse type.
fn decode_cell(index: usize, ty: &str, cell: serde_json::Value) -> Result<Value, WarehouseError> {
    use serde_json::Value as J;
    let base = unwrap_type(ty);
    let err = |reason: String| decode_error(index, ty, reason);
    let text = |cell: &J| match cell {
        J::String(s) => s.clone(),
        other => other.to_string(),
    };
    if cell.is_null() {
        return Ok(Value::Null);
    }
    let name = base.split('(').next().unwrap_or(base);
    Ok(match name {
        "Int8" | "Int16" | "Int32" | "Int64" | "UInt8" | "UInt16" | "UInt32" | "UInt64"
        | "Bool" => {
            let t = text(&cell);
            match t.as_str() {
                "true" => Value::Int(1),
                "false" => Value::Int(0),
                _ => match t.parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::Float(
                        t.parse::<f64>()
                            .map_err(|e| err(format!("`{t}` is not a number: {e}")))?,
                    ),
                },
            }
        }
        "Float32" | "Float64" | "Decimal" | "Decimal32" | "Decimal64" | "Decimal128"
        | "Decimal256" | "Int128" | "UInt128" | "Int256" | "UInt256" => {
            let t = text(&cell);
            match t.as_str() {
                "nan" | "-nan" => Value::Float(f64::NAN),
                "inf" | "+inf" => Value::Float(f64::INFINITY),
                "-inf" => Value::Float(f64::NEG_INFINITY),
                _ => Value::Float(
                    t.parse::<f64>()
                        .map_err(|e| err(format!("`{t}` is not a number: {e}")))?,
                ),
            }
        }
        "Date" | "Date32" => {
            let t = text(&cell);
            if t.starts_with("0000-00-00") {
                Value::Null
            } else {
                Value::Date(
                    NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                        .map_err(|e| err(format!("`{t}`: {e}")))?,
                )
            }
        }
        "DateTime" | "DateTime64" => {
            let t = text(&cell);
            if t.starts_with("0000-00-00") {
                return Ok(Value::Null);
            }
            let naive = NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f")
                .map_err(|e| err(format!("`{t}`: {e}")))?;
            match time_zone(base) {
                None => Value::Timestamp(naive),
                Some(zone) => {
                    let tz: Tz = zone
                        .parse()
                        .map_err(|e| err(format!("time zone `{zone}`: {e}")))?;
                    let local = tz
                        .from_local_datetime(&naive)
                        .earliest()
                        .ok_or_else(|| err(format!("`{t}` does not exist in {zone}")))?;
                    Value::TimestampTz(local.with_timezone(&chrono::Utc))
                }
            }
        }
        _ => Value::Text(text(&cell)),
    })
}

/// The time zone argument of `DateTime('Europe/Paris')` or
/// `DateTime64(3, 'UTC')`.
fn time_zone(ty: &str) -> Option<&str> {
    let (_, rest) = ty.split_once('\'')?;
    rest.split('\'').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::types::normalise;

    #[test]
    fn types_normalise_through_their_wrappers() {
        for (spelling, name) in [
            ("Nullable(Int64)", "bigint"),
            ("LowCardinality(Nullable(String))", "text"),
            ("Int8", "smallint"),
            ("UInt8", "smallint"),
            ("Int32", "integer"),
            ("UInt64", "bigint"),
            ("Float32", "real"),
            ("Nullable(Float64)", "double"),
            ("Decimal(12, 2)", "numeric"),
            ("Nullable(Decimal(38, 2))", "numeric"),
            ("FixedString(3)", "text"),
            ("Date", "date"),
            ("DateTime", "timestamp"),
            ("DateTime('UTC')", "timestamptz"),
            ("Nullable(DateTime('Europe/Paris'))", "timestamptz"),
            ("DateTime64(3)", "timestamp"),
            ("DateTime64(6, 'UTC')", "timestamptz"),
        ] {
            assert_eq!(normalise(spelling), name, "{spelling}");
        }
        // PostgreSQL's lowercase names keep their meaning.
        assert_eq!(normalise("int8"), "bigint");
        assert_eq!(normalise("UUID"), "uuid");
    }

    #[test]
    fn parameters_become_typed_literals_written_from_values() {
        let d = ClickHouseDialect;
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let params = vec![
            Value::Date(day),
            Value::TimestampTz("2026-11-19T23:00:00Z".parse().unwrap()),
            Value::Text("it's \\ here".into()),
            Value::Null,
        ];
        let sql = format!(
            "SELECT '{{p1:Date}}', `{{p1:Date}}` -- {{p1:Date}}\n FROM t WHERE a >= {} AND b < {} AND c = {} AND d = coalesce({}, 'x') AND e = {{p9:Date}}",
            d.placeholder(1, &params[0]),
            d.placeholder(2, &params[1]),
            d.placeholder(3, &params[2]),
            d.placeholder(4, &params[3]),
        );
        assert_eq!(
            inline_params(&sql, &params),
            "SELECT '{p1:Date}', `{p1:Date}` -- {p1:Date}\n FROM t WHERE a >= toDate('2026-11-20') \
             AND b < toDateTime('2026-11-19 23:00:00', 'UTC') AND c = 'it\\'s \\\\ here' \
             AND d = coalesce(NULL, 'x') AND e = {p9:Date}"
        );
        // A placeholder whose type is not its value's stays for the server to refuse.
        assert_eq!(inline_params("{p1:String}", &params), "{p1:String}");
        assert_eq!(param_text(&params[2]), "it's \\\\ here");
    }

    #[test]
    fn urls_name_the_http_endpoint() {
        let t = target("clickhouse://reader:p%40ss@db.example:9123/analytics").unwrap();
        assert_eq!(t.base.as_str(), "http://db.example:9123/");
        assert_eq!(t.user, "reader");
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.database.as_deref(), Some("analytics"));
        let t = target("clickhouses://db.example").unwrap();
        assert_eq!(t.base.as_str(), "https://db.example:8443/");
        assert_eq!(t.user, "default");
        assert_eq!(t.database, None);
        assert!(target("clickhouse://db/x?secure=1").is_err());
    }

    #[test]
    fn server_errors_are_read_from_either_format() {
        let old = "Code: 60, e.displayText() = DB::Exception: Table default.nope doesn't exist., e.what() = DB::Exception\n";
        let (code, message) = parse_exception(old);
        assert_eq!(code, Some(60));
        assert_eq!(message, "Table default.nope doesn't exist.");
        assert_eq!(
            classify(60, &message, Some("default")),
            ServerError::TableMissing("default.nope".into())
        );
        let new = "Code: 47. DB::Exception: Missing columns: 'nope' while processing query: 'SELECT nope FROM t', required columns: 'nope'. (UNKNOWN_IDENTIFIER) (version 23.8.1.1)";
        let (code, message) = parse_exception(new);
        assert_eq!(code, Some(47));
        assert_eq!(
            classify(47, &message, None),
            ServerError::ColumnMissing("nope".into())
        );
        assert_eq!(
            classify(47, "Unknown identifier: nope", None),
            ServerError::ColumnMissing("nope".into())
        );
        assert_eq!(
            classify(81, "Database analytics doesn't exist", Some("analytics")),
            ServerError::DatabaseMissing
        );
        assert_eq!(
            classify(81, "Database other doesn't exist", Some("analytics")),
            ServerError::TableMissing("other".into())
        );
        assert_eq!(
            classify(193, "Wrong password for user reader", None),
            ServerError::Authentication
        );
    }

    #[test]
    fn cells_decode_by_their_announced_type() {
        let body = r#"{"meta":[{"name":"a","type":"UInt64"},{"name":"b","type":"Nullable(Decimal(38, 2))"},
            {"name":"c","type":"Nullable(DateTime('Europe/Paris'))"},{"name":"d","type":"DateTime"},
            {"name":"e","type":"Date"},{"name":"f","type":"String"},{"name":"g","type":"Nullable(Int32)"}],
            "data":[["18446744073709551615", 19.50, "2026-11-20 14:00:00", "0000-00-00 00:00:00", "2026-11-20", "A", null]],
            "rows":1}"#;
        let rows = decode(body).unwrap();
        let row = rows[0].as_ref().unwrap();
        assert_eq!(row[0], Value::Float(18446744073709551615.0));
        assert_eq!(row[1], Value::Float(19.5));
        assert_eq!(
            row[2],
            Value::TimestampTz("2026-11-20T13:00:00Z".parse().unwrap())
        );
        assert_eq!(row[3], Value::Null);
        assert_eq!(
            row[4],
            Value::Date(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())
        );
        assert_eq!(row[5], Value::Text("A".into()));
        assert_eq!(row[6], Value::Null);
    }
}
