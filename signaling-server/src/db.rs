//! Database handle: one code base for SQLite (embedded default, WAL) and PostgreSQL through
//! sqlx's `Any` driver. Queries use `$1` placeholders, which both backends accept; the schema
//! in `migrations/` sticks to types both understand (TEXT, BIGINT, DOUBLE PRECISION); flags
//! are BIGINT 0/1 ([`flag`], [`get_flag`]).

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the database directory: {0}")]
    Dir(#[from] std::io::Error),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Cheap to clone: the pool is reference-counted.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Version of the newest migration this build knows (the schema level of its databases).
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// How often the server's SQLite write-ahead log is copied back into the database file.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl Db {
    /// Connects and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Self::open(url, false).await
    }

    /// Connects for the server: like [`Db::connect`], but on SQLite no commit runs a
    /// checkpoint itself (`wal_autocheckpoint=0`); a background task checkpoints every
    /// [`CHECKPOINT_INTERVAL`] instead (`PRAGMA wal_checkpoint(PASSIVE)`, which waits for no
    /// reader or writer). With SQLite's default the commit that fills the log to 1,000 pages
    /// copies them and fsyncs twice before it returns: every hundred or so of the switchboard's
    /// commits, an `accept` waited milliseconds for it. Durability is the same (WAL with
    /// `synchronous=NORMAL`: a commit is in the log before it returns, safe against a crash
    /// of the process; the log is fsynced at checkpoints, so a power loss may lose the last
    /// commits since one).
    pub async fn connect_server(url: &str) -> Result<Self, DbError> {
        let db = Self::open(url, true).await?;
        if db.backend == Backend::Sqlite {
            let pool = db.pool.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(CHECKPOINT_INTERVAL);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    if pool.is_closed() {
                        break;
                    }
                    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                        if pool.is_closed() {
                            break;
                        }
                        tracing::warn!(error = %e, "SQLite checkpoint failed");
                    }
                }
            });
        }
        Ok(db)
    }

    async fn open(url: &str, background_checkpoint: bool) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
            && let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                             PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000;",
                        )
                        .await?;
                        if background_checkpoint {
                            conn.execute("PRAGMA wal_autocheckpoint=0;").await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, backend })
    }

    /// Readiness: the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// The file of a `sqlite:` URL (`None` for PostgreSQL or an in-memory database).
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Flags are stored as BIGINT 0/1: sqlx's `Any` driver cannot map SQLite's BOOLEAN.
pub fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Reads a BIGINT 0/1 flag column.
pub fn get_flag(row: &sqlx::any::AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// Current time in unix milliseconds: the unit of every `*_at` column.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A fresh time-ordered ID as stored in the database.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Parses an ID column; a malformed one is a database integrity problem.
pub fn parse_id(s: &str) -> Result<uuid::Uuid, sqlx::Error> {
    uuid::Uuid::parse_str(s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
