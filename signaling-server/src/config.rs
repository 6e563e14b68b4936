//! Typed configuration: command-line flags, each with an environment twin, plus an optional
//! TOML file (`--config`). Precedence: flag > environment > file > default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// Command line of the `signaling-server` binary. Every setting is a flag with an environment
/// twin (and, except the few that only make sense per process, a key of the TOML file); a
/// malformed or out-of-range value stops the server at start with an error naming the setting.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "signaling-server", version, about = "帮办 Bangban signaling and API server")]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "BANGBAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database, signing keys and stored materials.
    #[arg(long, env = "BANGBAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`; default: `<data-dir>/bangban.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Seed demo accounts, points, catalog and terminals (idempotent).
    #[arg(long, env = "BANGBAN_DEMO")]
    pub demo: bool,
    #[arg(long, value_enum, env = "BANGBAN_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Optional TOML configuration file.
    #[arg(long, env = "BANGBAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// `iss` of every token this server signs.
    #[arg(long, env = "BANGBAN_ISSUER")]
    pub issuer: Option<String>,
    /// Origins allowed by CORS, comma-separated; none by default.
    #[arg(long, env = "BANGBAN_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Lifetime of access tokens, 60–900 s.
    #[arg(long, env = "BANGBAN_ACCESS_TTL_SECS")]
    pub access_ttl_secs: Option<u64>,
    /// Lifetime of refresh tokens, 300 s – 30 days.
    #[arg(long, env = "BANGBAN_REFRESH_TTL_SECS")]
    pub refresh_ttl_secs: Option<u64>,
    /// Lifetime of device tokens, 60–900 s.
    #[arg(long, env = "BANGBAN_DEVICE_TTL_SECS")]
    pub device_ttl_secs: Option<u64>,
    /// STUN URLs, comma-separated.
    #[arg(long, env = "BANGBAN_STUN_URLS", value_delimiter = ',')]
    pub stun_urls: Option<Vec<String>>,
    /// TURN URLs, comma-separated.
    #[arg(long, env = "BANGBAN_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Option<Vec<String>>,
    /// File holding coturn's `static-auth-secret`.
    #[arg(long, env = "BANGBAN_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<PathBuf>,
    /// Lifetime of TURN credentials, 60 s – 1 day.
    #[arg(long, env = "BANGBAN_TURN_TTL_SECS")]
    pub turn_ttl_secs: Option<u64>,
    /// 32-byte key (raw or base64) protecting personal data.
    #[arg(long, env = "BANGBAN_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Residents' names and ID numbers are erased this many days after their ticket closed
    /// (1–3650).
    #[arg(long, env = "BANGBAN_PII_RETENTION_DAYS")]
    pub pii_retention_days: Option<u64>,
    /// How long an offer rings one operator, 5–300 s.
    #[arg(long, env = "BANGBAN_RING_TIMEOUT_SECS")]
    pub ring_timeout_secs: Option<u64>,
    /// How long a ticket of an acceptance center waits for that center's operators before any
    /// operator of the district may serve it, 0–86400000 ms (0 = no center preference).
    #[arg(long, env = "BANGBAN_OVERFLOW_AFTER_MS")]
    pub overflow_after_ms: Option<u64>,
    /// Cluster mode: `redis://…` of the Redis shared by every node (needs a PostgreSQL
    /// `DATABASE_URL`); none: one node on its own, as by default.
    #[arg(long, env = "BANGBAN_REDIS_URL")]
    pub redis_url: Option<String>,
    /// This node's name in the cluster, 1–64 of `A–Z a–z 0–9 . _ -`; default `<hostname>-<port>`.
    #[arg(long, env = "BANGBAN_NODE_ID")]
    pub node_id: Option<String>,
    /// Where other nodes and operators reach this node (`http://10.0.0.5:8080`); default the
    /// listen address.
    #[arg(long, env = "BANGBAN_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Prefix of every Redis key of this deployment (several may share one Redis), default
    /// `bangban`.
    #[arg(long, env = "BANGBAN_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// How long a dropped party may reconnect and resume, 5–600 s.
    #[arg(long, env = "BANGBAN_RESUME_WINDOW_SECS")]
    pub resume_window_secs: Option<u64>,
    /// Messages queued for one WebSocket before its consumer counts as too slow, 16–65536.
    #[arg(long, env = "BANGBAN_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<u64>,
    /// Open tickets one terminal may hold at once, 1–100000 (1: one resident at a time).
    #[arg(long, env = "BANGBAN_MAX_OPEN_TICKETS_PER_TERMINAL")]
    pub max_open_tickets_per_terminal: Option<u64>,
    /// Largest upload accepted, 1 KiB – 4 GiB.
    #[arg(long, env = "BANGBAN_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Largest call recording accepted from a terminal, 1 MiB – 16 GiB.
    #[arg(long, env = "BANGBAN_MAX_RECORDING_BYTES")]
    pub max_recording_bytes: Option<u64>,
    /// Stored materials are deleted this many days after their session ended (1–36500).
    #[arg(long, env = "BANGBAN_MATERIAL_RETENTION_DAYS")]
    pub material_retention_days: Option<u64>,
    /// Print jobs not taken expire after this, 60 s – 30 days.
    #[arg(long, env = "BANGBAN_PRINT_JOB_EXPIRY_SECS")]
    pub print_job_expiry_secs: Option<u64>,
    /// The built browser console served at `/`.
    #[arg(long, env = "BANGBAN_CONSOLE_DIR")]
    pub console_dir: Option<PathBuf>,
    /// Where uploads in progress are staged (default `<data-dir>/uploads`). In a cluster, a
    /// volume every node mounts lets an upload go on through any node.
    #[arg(long, env = "BANGBAN_UPLOADS_DIR")]
    pub uploads_dir: Option<PathBuf>,
    /// A terminal without contact for longer than this gets an `offline` alarm, 5 s – 1 day.
    #[arg(long, env = "BANGBAN_TERMINAL_OFFLINE_AFTER_SECS")]
    pub terminal_offline_after_secs: Option<u64>,
    /// How often the alarm monitor looks, 1–600 s.
    #[arg(long, env = "BANGBAN_HEALTH_CHECK_INTERVAL_SECS")]
    pub health_check_interval_secs: Option<u64>,
    /// How often the cases worker runs (escalations, call-backs, lists, contact purge), 1–600 s.
    #[arg(long, env = "BANGBAN_CASES_INTERVAL_SECS")]
    pub cases_interval_secs: Option<u64>,
    /// A local GeoJSON file with the district's outline (a Polygon, MultiPolygon, Feature or
    /// FeatureCollection, ≤ 8 MiB) drawn under the console's map of the points; no tiles are
    /// ever fetched.
    #[arg(long, env = "BANGBAN_MAP_OUTLINE")]
    pub map_outline: Option<PathBuf>,
    /// With `--demo`: fill the demo district up to this many points (0–2000, default 0: the
    /// demo's own few), across Jing'an's streets, each with a terminal, some closed by their
    /// hours, some offline, some with an inspection overdue — the console at district scale.
    #[arg(long, env = "BANGBAN_DEMO_POINTS")]
    pub demo_points: Option<u64>,
    /// Proxies (IP addresses, comma-separated) whose `X-Forwarded-For` / `Forwarded` names the
    /// client; none by default.
    #[arg(long, env = "BANGBAN_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
    /// Absolute lifetime of a sign-in's refresh-token family, 300 s – 90 days.
    #[arg(long, env = "BANGBAN_REFRESH_FAMILY_MAX_SECS")]
    pub refresh_family_max_secs: Option<u64>,
    /// S3-compatible endpoint for materials (with `--s3-bucket`).
    #[arg(long, env = "BANGBAN_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "BANGBAN_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    #[arg(long, env = "BANGBAN_S3_REGION")]
    pub s3_region: Option<String>,
    #[arg(long, env = "BANGBAN_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "BANGBAN_S3_SECRET_KEY_FILE")]
    pub s3_secret_key_file: Option<PathBuf>,
    /// Without a subcommand the server runs; `backup` / `restore` take the same settings
    /// (flags before the subcommand, environment or `--config`).
    #[command(subcommand)]
    pub command: Option<crate::backup::Command>,
    /// Bearer token Prometheus sends to scrape `/metrics` (32–256 characters of `A–Z a–z 0–9 - .
    /// _ ~ + / =`, e.g. `openssl rand -hex 32`; prefer the environment over the flag). Without
    /// one, only this host may scrape, and not through a proxy.
    #[arg(long, env = "BANGBAN_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// A number within its range, or an error naming the setting.
/// Largest district outline file.
pub const MAX_OUTLINE_BYTES: u64 = 8 * 1024 * 1024;

/// Reads and checks a district outline: a GeoJSON Polygon, MultiPolygon, Feature or
/// FeatureCollection of at most [`MAX_OUTLINE_BYTES`].
pub fn read_outline(path: &std::path::Path) -> Result<serde_json::Value, ConfigError> {
    let bad = |why: String| ConfigError::Invalid(format!("map_outline {}: {why}", path.display()));
    let len = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?.len();
    if len > MAX_OUTLINE_BYTES {
        return Err(bad(format!("larger than {MAX_OUTLINE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    match v.get("type").and_then(|t| t.as_str()) {
        Some("Polygon" | "MultiPolygon" | "Feature" | "FeatureCollection") => Ok(v),
        _ => Err(bad("not a GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection".into())),
    }
}

fn ranged(name: &str, v: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64, ConfigError> {
    if range.contains(&v) {
        Ok(v)
    } else {
        let flag = name.replace('_', "-");
        let env = format!("BANGBAN_{}", name.to_uppercase());
        Err(ConfigError::Invalid(format!(
            "{name} (--{flag}, {env}) must be between {} and {}, got {v}",
            range.start(),
            range.end()
        )))
    }
}

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Values read from the optional TOML file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    log_format: Option<LogFormat>,
    issuer: Option<String>,
    cors_origins: Option<Vec<String>>,
    access_ttl_secs: Option<u64>,
    refresh_ttl_secs: Option<u64>,
    device_ttl_secs: Option<u64>,
    pii_retention_days: Option<u64>,
    outbound_queue: Option<u64>,
    max_open_tickets_per_terminal: Option<u64>,
    stun_urls: Option<Vec<String>>,
    turn_urls: Option<Vec<String>>,
    turn_secret_file: Option<PathBuf>,
    turn_ttl_secs: Option<u64>,
    master_key_file: Option<PathBuf>,
    ring_timeout_secs: Option<u64>,
    overflow_after_ms: Option<u64>,
    redis_url: Option<String>,
    node_id: Option<String>,
    advertise_url: Option<String>,
    redis_prefix: Option<String>,
    resume_window_secs: Option<u64>,
    max_upload_bytes: Option<u64>,
    max_recording_bytes: Option<u64>,
    material_retention_days: Option<u64>,
    print_job_expiry_secs: Option<u64>,
    s3: Option<S3Config>,
    console_dir: Option<PathBuf>,
    uploads_dir: Option<PathBuf>,
    terminal_offline_after_secs: Option<u64>,
    health_check_interval_secs: Option<u64>,
    cases_interval_secs: Option<u64>,
    map_outline: Option<PathBuf>,
    demo_points: Option<u64>,
    trusted_proxies: Option<Vec<std::net::IpAddr>>,
    refresh_family_max_secs: Option<u64>,
    metrics_token: Option<String>,
}

/// Materials store and remote printing.
#[derive(Debug, Clone)]
pub struct MaterialsConfig {
    /// Largest upload accepted (`BANGBAN_MAX_UPLOAD_BYTES`, default 50 MiB).
    pub max_upload_bytes: u64,
    /// Largest call recording accepted (`BANGBAN_MAX_RECORDING_BYTES`, default 1 GiB: about
    /// four hours at the terminal's rates).
    pub max_recording_bytes: u64,
    /// Stored content is deleted this many days after its session ended
    /// (`BANGBAN_MATERIAL_RETENTION_DAYS`, default 180).
    pub retention_days: u64,
    /// Print jobs not taken by the terminal expire after this (`BANGBAN_PRINT_JOB_EXPIRY_SECS`,
    /// default 24 h); unfinished uploads expire after the same time.
    pub print_job_expiry_ms: i64,
    /// An S3-compatible bucket instead of `<data-dir>/materials`.
    pub s3: Option<S3Config>,
}

/// `BANGBAN_S3_ENDPOINT`, `BANGBAN_S3_BUCKET`, `BANGBAN_S3_REGION`, `BANGBAN_S3_ACCESS_KEY_ID`,
/// `BANGBAN_S3_SECRET_KEY_FILE`. Objects are encrypted before they leave the server either way.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key_id: String,
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    /// Read from `secret_key_file`; never from the TOML file itself.
    #[serde(skip)]
    pub secret_access_key: String,
}

fn default_region() -> String {
    "us-east-1".into()
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The server's resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub demo: bool,
    pub log_format: LogFormat,
    /// `iss` of every token this server signs.
    pub issuer: String,
    /// Origins allowed by CORS; empty means no cross-origin access at all.
    pub cors_origins: Vec<String>,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub device_ttl_secs: u64,
    /// STUN/TURN servers for calls (the deployment's own coturn; none by default).
    pub ice: crate::ice::IceConfig,
    /// 32-byte key (raw or base64) protecting personal data; default `<data-dir>/master.key`.
    pub master_key_file: PathBuf,
    /// How long an offer rings an operator before it goes to the next one.
    pub ring_timeout_ms: i64,
    /// How long a center's ticket waits for its own center's operators (0 = no preference).
    pub overflow_after_ms: i64,
    /// How long a dropped party may reconnect and resume.
    pub resume_window_ms: i64,
    /// Messages queued for one WebSocket before the consumer counts as too slow.
    pub outbound_queue: usize,
    /// Open tickets one terminal may hold at once (`BANGBAN_MAX_OPEN_TICKETS_PER_TERMINAL`,
    /// default 1: a kiosk serves one resident at a time; the load benchmark raises it).
    pub max_open_tickets_per_terminal: usize,
    /// Residents' names and ID numbers are erased this many days after their ticket closed.
    pub pii_retention_days: u32,
    pub materials: MaterialsConfig,
    /// The built browser console served at `/` (`console_dir` / `BANGBAN_CONSOLE_DIR`).
    pub console_dir: PathBuf,
    /// Uploads in progress (`uploads_dir` / `BANGBAN_UPLOADS_DIR`); `None`: `<data-dir>/uploads`.
    pub uploads_dir: Option<PathBuf>,
    /// An active terminal without contact for longer than this gets an `offline` alarm
    /// (`terminal_offline_after_secs` / `BANGBAN_TERMINAL_OFFLINE_AFTER_SECS`, default 120 s).
    pub terminal_offline_after_ms: i64,
    /// How often the alarm monitor looks (`health_check_interval_secs` /
    /// `BANGBAN_HEALTH_CHECK_INTERVAL_SECS`, default 15 s).
    pub health_check_interval_ms: u64,
    /// How often the cases worker runs (`cases_interval_secs` / `BANGBAN_CASES_INTERVAL_SECS`,
    /// default 60 s): escalations (提级), call-back tasks, the two lists, contact purge.
    pub cases_interval_ms: u64,
    /// The district outline for the console's map (`map_outline` / `BANGBAN_MAP_OUTLINE`),
    /// checked at start, served at `/api/v1/map/outline`.
    pub map_outline: Option<PathBuf>,
    /// With `demo`: points the demo district is filled up to (`demo_points` /
    /// `BANGBAN_DEMO_POINTS`, default 0).
    pub demo_points: u32,
    /// Peers whose `X-Forwarded-For` / `Forwarded` is believed (`trusted_proxies` /
    /// `BANGBAN_TRUSTED_PROXIES`, comma-separated addresses; default none).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Absolute lifetime of a sign-in's refresh-token family (`refresh_family_max_secs` /
    /// `BANGBAN_REFRESH_FAMILY_MAX_SECS`, default 24 h).
    pub refresh_family_max_secs: u64,
    /// Cluster mode (`redis_url` given): several nodes on one PostgreSQL and one Redis.
    pub cluster: Option<ClusterConfig>,
    /// Token `/metrics` requires (`metrics_token` / `BANGBAN_METRICS_TOKEN`); `None`: loopback
    /// peers only.
    pub metrics_token: Option<MetricsToken>,
}

/// How this node joins a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub redis_url: String,
    /// This node's name, unique in the cluster.
    pub node_id: String,
    /// Where others reach this node.
    pub advertise_url: String,
    /// Prefix of every Redis key of this deployment.
    pub prefix: String,
}

/// `true` for 1–64 characters of `A–Z a–z 0–9 . _ -`.
fn plain_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The `/metrics` scrape token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// Shortest and longest token accepted.
    pub const LEN: std::ops::RangeInclusive<usize> = 32..=256;

    /// A token of [`Self::LEN`] characters from RFC 6750's `b64token` alphabet.
    pub fn new(token: &str) -> Result<Self, ConfigError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
        if !Self::LEN.contains(&token.len()) || !token.chars().all(ok_char) {
            return Err(ConfigError::Invalid(format!(
                "metrics_token (--metrics-token, BANGBAN_METRICS_TOKEN) must be {} to {} characters of \
                 A-Z a-z 0-9 - . _ ~ + / = (got {} characters{})",
                Self::LEN.start(),
                Self::LEN.end(),
                token.chars().count(),
                if token.chars().all(ok_char) { "" } else { ", some not allowed" }
            )));
        }
        Ok(Self(token.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Defaults for a data directory, as the tests and the demo use them.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: default_database_url(&data_dir),
            master_key_file: data_dir.join("master.key"),
            data_dir,
            demo: false,
            log_format: LogFormat::Pretty,
            issuer: "bangban".into(),
            cors_origins: Vec::new(),
            access_ttl_secs: 600,
            refresh_ttl_secs: 12 * 3600,
            device_ttl_secs: 600,
            ice: crate::ice::IceConfig { turn_ttl_secs: 3600, ..Default::default() },
            ring_timeout_ms: 20_000,
            overflow_after_ms: 120_000,
            resume_window_ms: 60_000,
            outbound_queue: 256,
            max_open_tickets_per_terminal: 1,
            pii_retention_days: 180,
            materials: MaterialsConfig {
                max_upload_bytes: 50 * 1024 * 1024,
                max_recording_bytes: 1024 * 1024 * 1024,
                retention_days: 180,
                print_job_expiry_ms: 24 * 3600 * 1000,
                s3: None,
            },
            console_dir: default_console_dir(),
            uploads_dir: None,
            terminal_offline_after_ms: 120_000,
            health_check_interval_ms: 15_000,
            cases_interval_ms: 60_000,
            map_outline: None,
            demo_points: 0,
            trusted_proxies: Vec::new(),
            refresh_family_max_secs: 24 * 3600,
            cluster: None,
            metrics_token: None,
        }
    }

    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|source| ConfigError::Parse { path: path.clone(), source })?
            }
            None => FileConfig::default(),
        };
        let data_dir = cli.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./data"));
        let mut cfg = Self::for_data_dir(data_dir);
        if let Some(listen) = cli.listen.or(file.listen) {
            cfg.listen = listen;
        }
        if let Some(url) = cli.database_url.or(file.database_url) {
            cfg.database_url = url;
        }
        cfg.demo = cli.demo;
        if let Some(f) = cli.log_format.or(file.log_format) {
            cfg.log_format = f;
        }
        if let Some(iss) = cli.issuer.or(file.issuer) {
            cfg.issuer = iss;
        }
        if let Some(origins) = cli.cors_origins.or(file.cors_origins) {
            cfg.cors_origins =
                origins.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        }
        if let Some(v) = cli.access_ttl_secs.or(file.access_ttl_secs) {
            cfg.access_ttl_secs = ranged("access_ttl_secs", v, 60..=900)?;
        }
        if let Some(v) = cli.refresh_ttl_secs.or(file.refresh_ttl_secs) {
            cfg.refresh_ttl_secs = ranged("refresh_ttl_secs", v, 300..=30 * 86_400)?;
        }
        if let Some(v) = cli.device_ttl_secs.or(file.device_ttl_secs) {
            cfg.device_ttl_secs = ranged("device_ttl_secs", v, 60..=900)?;
        }
        if let Some(p) = cli.trusted_proxies.or(file.trusted_proxies) {
            cfg.trusted_proxies = p;
        }
        if let Some(v) = cli.refresh_family_max_secs.or(file.refresh_family_max_secs) {
            cfg.refresh_family_max_secs = ranged("refresh_family_max_secs", v, 300..=90 * 86_400)?;
        }
        let list = |v: Vec<String>| -> Vec<String> {
            v.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
        };
        if let Some(v) = cli.stun_urls.or(file.stun_urls) {
            cfg.ice.stun_urls = list(v);
        }
        if let Some(v) = cli.turn_urls.or(file.turn_urls) {
            cfg.ice.turn_urls = list(v);
        }
        if let Some(path) = cli.turn_secret_file.or(file.turn_secret_file) {
            let secret = std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            cfg.ice.turn_secret = Some(secret.trim().to_owned());
        }
        if let Some(v) = cli.turn_ttl_secs.or(file.turn_ttl_secs) {
            cfg.ice.turn_ttl_secs = ranged("turn_ttl_secs", v, 60..=86_400)?;
        }
        if let Some(p) = cli.master_key_file.or(file.master_key_file) {
            cfg.master_key_file = p;
        }
        if let Some(v) = cli.pii_retention_days.or(file.pii_retention_days) {
            cfg.pii_retention_days = u32::try_from(ranged("pii_retention_days", v, 1..=3650)?).unwrap_or(180);
        }
        if let Some(v) = cli.ring_timeout_secs.or(file.ring_timeout_secs) {
            cfg.ring_timeout_ms = millis(ranged("ring_timeout_secs", v, 5..=300)?);
        }
        if let Some(v) = cli.overflow_after_ms.or(file.overflow_after_ms) {
            cfg.overflow_after_ms =
                i64::try_from(ranged("overflow_after_ms", v, 0..=86_400_000)?).unwrap_or(0);
        }
        if let Some(v) = cli.resume_window_secs.or(file.resume_window_secs) {
            cfg.resume_window_ms = millis(ranged("resume_window_secs", v, 5..=600)?);
        }
        if let Some(v) = cli.outbound_queue.or(file.outbound_queue) {
            cfg.outbound_queue = usize::try_from(ranged("outbound_queue", v, 16..=65_536)?).unwrap_or(256);
        }
        if let Some(v) = cli.max_open_tickets_per_terminal.or(file.max_open_tickets_per_terminal) {
            cfg.max_open_tickets_per_terminal =
                usize::try_from(ranged("max_open_tickets_per_terminal", v, 1..=100_000)?).unwrap_or(1);
        }
        if let Some(v) = cli.max_upload_bytes.or(file.max_upload_bytes) {
            cfg.materials.max_upload_bytes = ranged("max_upload_bytes", v, 1024..=4 * 1024 * 1024 * 1024)?;
        }
        if let Some(v) = cli.max_recording_bytes.or(file.max_recording_bytes) {
            cfg.materials.max_recording_bytes =
                ranged("max_recording_bytes", v, 1024 * 1024..=16 * 1024 * 1024 * 1024)?;
        }
        if let Some(v) = cli.material_retention_days.or(file.material_retention_days) {
            cfg.materials.retention_days = ranged("material_retention_days", v, 1..=36_500)?;
        }
        if let Some(v) = cli.print_job_expiry_secs.or(file.print_job_expiry_secs) {
            cfg.materials.print_job_expiry_ms = millis(ranged("print_job_expiry_secs", v, 60..=30 * 86_400)?);
        }
        let mut s3 = file.s3;
        let nonempty = |v: Option<String>| v.filter(|v| !v.is_empty());
        if let (Some(endpoint), Some(bucket)) = (nonempty(cli.s3_endpoint), nonempty(cli.s3_bucket)) {
            s3 = Some(S3Config {
                endpoint,
                bucket,
                region: nonempty(cli.s3_region).unwrap_or_else(default_region),
                access_key_id: cli.s3_access_key_id.unwrap_or_default(),
                secret_key_file: cli.s3_secret_key_file,
                secret_access_key: String::new(),
            });
        }
        if let Some(s3) = s3.as_mut()
            && let Some(path) = s3.secret_key_file.clone()
        {
            let secret =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path, source })?;
            s3.secret_access_key = secret.trim().to_owned();
        }
        cfg.materials.s3 = s3;
        if let Some(dir) = cli.console_dir.or(file.console_dir) {
            cfg.console_dir = dir;
        }
        if let Some(dir) = cli.uploads_dir.or(file.uploads_dir) {
            cfg.uploads_dir = Some(dir);
        }
        if let Some(v) = cli.terminal_offline_after_secs.or(file.terminal_offline_after_secs) {
            cfg.terminal_offline_after_ms = millis(ranged("terminal_offline_after_secs", v, 5..=86_400)?);
        }
        if let Some(v) = cli.health_check_interval_secs.or(file.health_check_interval_secs) {
            cfg.health_check_interval_ms = ranged("health_check_interval_secs", v, 1..=600)? * 1000;
        }
        if let Some(v) = cli.cases_interval_secs.or(file.cases_interval_secs) {
            cfg.cases_interval_ms = ranged("cases_interval_secs", v, 1..=600)? * 1000;
        }
        if let Some(v) = cli.demo_points.or(file.demo_points) {
            cfg.demo_points = u32::try_from(ranged("demo_points", v, 0..=2000)?).unwrap_or(0);
        }
        if let Some(path) = cli.map_outline.or(file.map_outline) {
            read_outline(&path)?;
            cfg.map_outline = Some(path);
        }
        if let Some(url) = nonempty(cli.redis_url.or(file.redis_url)) {
            if url.len() > 1024 || !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::Invalid(
                    "redis_url (BANGBAN_REDIS_URL) must start with redis:// or rediss:// (at most 1024 characters)"
                        .into(),
                ));
            }
            let node_id = match nonempty(cli.node_id.or(file.node_id)) {
                Some(id) => id,
                None => {
                    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                    let host: String = host
                        .trim()
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .take(40)
                        .collect();
                    format!("{}-{}", if host.is_empty() { "node" } else { &host }, cfg.listen.port())
                }
            };
            if !plain_name(&node_id) {
                return Err(ConfigError::Invalid(
                    "node_id (BANGBAN_NODE_ID) must be 1–64 characters of A–Z a–z 0–9 . _ -".into(),
                ));
            }
            let prefix = nonempty(cli.redis_prefix.or(file.redis_prefix)).unwrap_or_else(|| "bangban".into());
            if !plain_name(&prefix) {
                return Err(ConfigError::Invalid(
                    "redis_prefix (BANGBAN_REDIS_PREFIX) must be 1–64 characters of A–Z a–z 0–9 . _ -".into(),
                ));
            }
            let advertise_url = nonempty(cli.advertise_url.or(file.advertise_url))
                .unwrap_or_else(|| format!("http://{}", cfg.listen));
            if advertise_url.len() > 256
                || !(advertise_url.starts_with("http://") || advertise_url.starts_with("https://"))
            {
                return Err(ConfigError::Invalid(
                    "advertise_url (BANGBAN_ADVERTISE_URL) must be an http:// or https:// URL (at most 256 characters)"
                        .into(),
                ));
            }
            cfg.cluster = Some(ClusterConfig { redis_url: url, node_id, advertise_url, prefix });
        }
        if let Some(t) = cli.metrics_token.or(file.metrics_token) {
            cfg.metrics_token = Some(MetricsToken::new(&t)?);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(60..=900).contains(&self.access_ttl_secs) || !(60..=900).contains(&self.device_ttl_secs) {
            return Err(ConfigError::Invalid(
                "access_ttl_secs and device_ttl_secs must be between 60 and 900 (≤ 15 min)".into(),
            ));
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres")) {
            return Err(ConfigError::Invalid("database_url must start with sqlite: or postgres://".into()));
        }
        if self.cluster.is_some() && self.database_url.starts_with("sqlite:") {
            return Err(ConfigError::Invalid(
                "集群模式需要 PostgreSQL: redis_url (BANGBAN_REDIS_URL) needs a postgres:// database_url (DATABASE_URL) shared by every node"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// `agent-console/dist` when it exists under the working directory (a source checkout),
/// else `../share/bangban/console` next to the executable (an installed layout).
pub fn default_console_dir() -> PathBuf {
    let local = PathBuf::from("agent-console/dist");
    if local.is_dir() {
        return local;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|bin| bin.join("../share/bangban/console")))
        .unwrap_or(local)
}

pub fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("bangban.db").display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["signaling-server", "--data-dir", "/tmp/bangban-config-test"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::from_cli(cli).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_is_a_flag_and_values_arrive_typed() {
        let c = parse(&[
            "--ring-timeout-secs",
            "30",
            "--resume-window-secs",
            "90",
            "--outbound-queue",
            "512",
            "--max-open-tickets-per-terminal",
            "3",
            "--access-ttl-secs",
            "300",
            "--stun-urls",
            "stun:a:3478,stun:b:3478",
            "--cors-origins",
            "https://a.example",
        ])
        .expect("valid");
        assert_eq!((c.ring_timeout_ms, c.resume_window_ms), (30_000, 90_000));
        assert_eq!((c.outbound_queue, c.max_open_tickets_per_terminal, c.access_ttl_secs), (512, 3, 300));
        assert_eq!(c.ice.stun_urls, vec!["stun:a:3478", "stun:b:3478"]);
        assert_eq!(c.cors_origins, vec!["https://a.example"]);
    }

    #[test]
    fn malformed_or_out_of_range_values_are_startup_errors_naming_the_setting() {
        let e = parse(&["--ring-timeout-secs", "twenty"]).expect_err("not a number");
        assert!(e.contains("--ring-timeout-secs"), "{e}");
        let e = parse(&["--ring-timeout-secs", "1"]).expect_err("too short");
        assert!(e.contains("ring_timeout_secs") && e.contains("BANGBAN_RING_TIMEOUT_SECS"), "{e}");
        let e = parse(&["--overflow-after-ms", "86400001"]).expect_err("over a day");
        assert!(e.contains("overflow_after_ms") && e.contains("BANGBAN_OVERFLOW_AFTER_MS"), "{e}");
        assert_eq!(parse(&["--overflow-after-ms", "0"]).map(|c| c.overflow_after_ms), Ok(0), "no preference");
        assert_eq!(parse(&[]).map(|c| c.overflow_after_ms), Ok(120_000), "two minutes by default");
        let e = parse(&["--max-open-tickets-per-terminal", "0"]).expect_err("zero");
        assert!(e.contains("max_open_tickets_per_terminal"), "{e}");
        let e = parse(&["--access-ttl-secs", "86400"]).expect_err("too long");
        assert!(e.contains("access_ttl_secs"), "{e}");
        let e = parse(&["--listen", "not-an-address"]).expect_err("address");
        assert!(e.contains("--listen"), "{e}");
    }

    #[test]
    fn the_metrics_token_is_checked_and_never_printed() {
        let token = "0123456789abcdef0123456789abcdef";
        let c = parse(&["--metrics-token", token]).expect("valid");
        assert_eq!(c.metrics_token.as_ref().map(MetricsToken::expose), Some(token));
        assert!(!format!("{c:?}").contains(token), "Debug hides the token");
        assert_eq!(parse(&[]).map(|c| c.metrics_token), Ok(None));
        let long = "a".repeat(257);
        for bad in ["short", "0123456789abcdef 0123456789abcdef", "0123456789abcdef0123456789abcdé", &long] {
            let e = parse(&["--metrics-token", bad]).expect_err(bad);
            assert!(e.contains("metrics_token") && e.contains("BANGBAN_METRICS_TOKEN"), "{e}");
            assert!(!e.contains(bad), "the value is not echoed: {e}");
        }
    }

    #[test]
    fn the_file_is_checked_like_the_flags() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "resume_window_secs = 100000\n").expect("write");
        let e = parse(&["--config", path.to_str().expect("path")]).expect_err("out of range");
        assert!(e.contains("resume_window_secs"), "{e}");
        std::fs::write(&path, "public_url = \"https://x\"\n").expect("write");
        let e = parse(&["--config", path.to_str().expect("path")]).expect_err("gone");
        assert!(e.contains("public_url"), "an unknown key is an error: {e}");
    }

    #[test]
    fn cluster_mode_needs_postgres_and_plain_names() {
        let pg = "postgres://db/bangban";
        let e = parse(&["--redis-url", "redis://127.0.0.1:6379"]).expect_err("sqlite");
        assert!(e.contains("PostgreSQL") && e.contains("BANGBAN_REDIS_URL"), "{e}");
        let e = parse(&["--redis-url", "http://x", "--database-url", pg]).expect_err("scheme");
        assert!(e.contains("redis://"), "{e}");
        let long = format!("redis://{}", "a".repeat(2000));
        assert!(parse(&["--redis-url", &long, "--database-url", pg]).is_err(), "length bound");
        for bad in ["", "a b", "../x", "节点", &"n".repeat(65)] {
            let r = parse(&["--redis-url", "redis://r", "--database-url", pg, "--node-id", bad]);
            if bad.is_empty() {
                assert!(r.is_ok(), "empty means the default");
            } else {
                assert!(r.expect_err(bad).contains("node_id"), "{bad}");
            }
        }
        let e = parse(&["--redis-url", "redis://r", "--database-url", pg, "--redis-prefix", "a:b"])
            .expect_err("prefix");
        assert!(e.contains("redis_prefix"), "{e}");
        let c = parse(&["--redis-url", "redis://r", "--database-url", pg, "--node-id", "n1"]).expect("ok");
        let cluster = c.cluster.expect("cluster mode");
        assert_eq!((cluster.node_id.as_str(), cluster.prefix.as_str()), ("n1", "bangban"));
        assert_eq!(cluster.advertise_url, "http://127.0.0.1:8080");
        assert_eq!(parse(&[]).map(|c| c.cluster), Ok(None), "single node by default");
    }
}
