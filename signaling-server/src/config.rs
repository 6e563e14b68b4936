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

/// Command line of the `signaling-server` binary.
#[derive(Debug, Clone, Parser)]
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
    public_url: Option<String>,
    stun_urls: Option<Vec<String>>,
    turn_urls: Option<Vec<String>>,
    turn_secret_file: Option<PathBuf>,
    turn_ttl_secs: Option<u64>,
    master_key_file: Option<PathBuf>,
    ring_timeout_secs: Option<u64>,
    resume_window_secs: Option<u64>,
    max_upload_bytes: Option<u64>,
    material_retention_days: Option<u64>,
    print_job_expiry_secs: Option<u64>,
    s3: Option<S3Config>,
    console_dir: Option<PathBuf>,
    terminal_offline_after_secs: Option<u64>,
    health_check_interval_secs: Option<u64>,
    trusted_proxies: Option<Vec<std::net::IpAddr>>,
    refresh_family_max_secs: Option<u64>,
}

/// Materials store and remote printing.
#[derive(Debug, Clone)]
pub struct MaterialsConfig {
    /// Largest upload accepted (`BANGBAN_MAX_UPLOAD_BYTES`, default 50 MiB).
    pub max_upload_bytes: u64,
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
    /// How long a dropped party may reconnect and resume.
    pub resume_window_ms: i64,
    /// Messages queued for one WebSocket before the consumer counts as too slow.
    pub outbound_queue: usize,
    /// Residents' names and ID numbers are erased this many days after their ticket closed.
    pub pii_retention_days: u32,
    pub materials: MaterialsConfig,
    /// The built browser console served at `/` (`console_dir` / `BANGBAN_CONSOLE_DIR`).
    pub console_dir: PathBuf,
    /// An active terminal without contact for longer than this gets an `offline` alarm
    /// (`terminal_offline_after_secs` / `BANGBAN_TERMINAL_OFFLINE_AFTER_SECS`, default 120 s).
    pub terminal_offline_after_ms: i64,
    /// How often the alarm monitor looks (`health_check_interval_secs` /
    /// `BANGBAN_HEALTH_CHECK_INTERVAL_SECS`, default 15 s).
    pub health_check_interval_ms: u64,
    /// Peers whose `X-Forwarded-For` / `Forwarded` is believed (`trusted_proxies` /
    /// `BANGBAN_TRUSTED_PROXIES`, comma-separated addresses; default none).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Absolute lifetime of a sign-in's refresh-token family (`refresh_family_max_secs` /
    /// `BANGBAN_REFRESH_FAMILY_MAX_SECS`, default 24 h).
    pub refresh_family_max_secs: u64,
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
            resume_window_ms: 60_000,
            outbound_queue: 256,
            pii_retention_days: 180,
            materials: MaterialsConfig {
                max_upload_bytes: 50 * 1024 * 1024,
                retention_days: 180,
                print_job_expiry_ms: 24 * 3600 * 1000,
                s3: None,
            },
            console_dir: default_console_dir(),
            terminal_offline_after_ms: 120_000,
            health_check_interval_ms: 15_000,
            trusted_proxies: Vec::new(),
            refresh_family_max_secs: 24 * 3600,
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
        if let Some(iss) = std::env::var("BANGBAN_ISSUER").ok().or(file.issuer) {
            cfg.issuer = iss;
        }
        if let Some(origins) = std::env::var("BANGBAN_CORS_ORIGINS")
            .ok()
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .or(file.cors_origins)
        {
            cfg.cors_origins = origins;
        }
        if let Some(v) = file.access_ttl_secs {
            cfg.access_ttl_secs = v;
        }
        if let Some(v) = file.refresh_ttl_secs {
            cfg.refresh_ttl_secs = v;
        }
        if let Some(v) = file.device_ttl_secs {
            cfg.device_ttl_secs = v;
        }
        let proxies = std::env::var("BANGBAN_TRUSTED_PROXIES").ok().map(|v| {
            v.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse())
                .collect::<Result<Vec<_>, _>>()
        });
        match proxies {
            Some(Ok(p)) => cfg.trusted_proxies = p,
            Some(Err(_)) => {
                return Err(ConfigError::Invalid("BANGBAN_TRUSTED_PROXIES: not an IP address list".into()));
            }
            None => cfg.trusted_proxies = file.trusted_proxies.unwrap_or_default(),
        }
        let family = std::env::var("BANGBAN_REFRESH_FAMILY_MAX_SECS").ok().and_then(|v| v.parse().ok());
        if let Some(v) = family.or(file.refresh_family_max_secs) {
            cfg.refresh_family_max_secs = v;
        }
        let _ = file.public_url;
        let list = |v: String| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        if let Some(v) = std::env::var("BANGBAN_STUN_URLS").ok().map(list).or(file.stun_urls) {
            cfg.ice.stun_urls = v;
        }
        if let Some(v) = std::env::var("BANGBAN_TURN_URLS").ok().map(list).or(file.turn_urls) {
            cfg.ice.turn_urls = v;
        }
        if let Some(path) =
            std::env::var_os("BANGBAN_TURN_SECRET_FILE").map(PathBuf::from).or(file.turn_secret_file)
        {
            let secret = std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            cfg.ice.turn_secret = Some(secret.trim().to_owned());
        }
        let secs = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(v) = secs("BANGBAN_TURN_TTL_SECS").or(file.turn_ttl_secs) {
            cfg.ice.turn_ttl_secs = v;
        }
        if let Some(p) =
            std::env::var_os("BANGBAN_MASTER_KEY_FILE").map(PathBuf::from).or(file.master_key_file)
        {
            cfg.master_key_file = p;
        }
        if let Some(v) = secs("BANGBAN_PII_RETENTION_DAYS") {
            cfg.pii_retention_days = u32::try_from(v.clamp(1, 3650)).unwrap_or(180);
        }
        if let Some(v) = secs("BANGBAN_RING_TIMEOUT_SECS").or(file.ring_timeout_secs) {
            cfg.ring_timeout_ms = i64::try_from(v.clamp(5, 300)).unwrap_or(20) * 1000;
        }
        if let Some(v) = secs("BANGBAN_RESUME_WINDOW_SECS").or(file.resume_window_secs) {
            cfg.resume_window_ms = i64::try_from(v.clamp(5, 600)).unwrap_or(60) * 1000;
        }
        if let Some(v) = secs("BANGBAN_MAX_UPLOAD_BYTES").or(file.max_upload_bytes) {
            cfg.materials.max_upload_bytes = v.clamp(1024, 4 * 1024 * 1024 * 1024);
        }
        if let Some(v) = secs("BANGBAN_MATERIAL_RETENTION_DAYS").or(file.material_retention_days) {
            cfg.materials.retention_days = v.clamp(1, 36_500);
        }
        if let Some(v) = secs("BANGBAN_PRINT_JOB_EXPIRY_SECS").or(file.print_job_expiry_secs) {
            cfg.materials.print_job_expiry_ms =
                i64::try_from(v.clamp(60, 30 * 86_400)).unwrap_or(86_400) * 1000;
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut s3 = file.s3;
        if let (Some(endpoint), Some(bucket)) = (env("BANGBAN_S3_ENDPOINT"), env("BANGBAN_S3_BUCKET")) {
            s3 = Some(S3Config {
                endpoint,
                bucket,
                region: env("BANGBAN_S3_REGION").unwrap_or_else(default_region),
                access_key_id: env("BANGBAN_S3_ACCESS_KEY_ID").unwrap_or_default(),
                secret_key_file: env("BANGBAN_S3_SECRET_KEY_FILE").map(PathBuf::from),
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
        if let Some(dir) = std::env::var_os("BANGBAN_CONSOLE_DIR").map(PathBuf::from).or(file.console_dir) {
            cfg.console_dir = dir;
        }
        if let Some(v) = secs("BANGBAN_TERMINAL_OFFLINE_AFTER_SECS").or(file.terminal_offline_after_secs) {
            cfg.terminal_offline_after_ms = i64::try_from(v.clamp(5, 86_400)).unwrap_or(120) * 1000;
        }
        if let Some(v) = secs("BANGBAN_HEALTH_CHECK_INTERVAL_SECS").or(file.health_check_interval_secs) {
            cfg.health_check_interval_ms = v.clamp(1, 600) * 1000;
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
