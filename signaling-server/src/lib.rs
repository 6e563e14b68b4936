//! 帮办 Bangban signaling server: REST API, authentication, persistence, WebSocket signaling,
//! queue and dispatch for the remote virtual window (远程虚拟窗口).
//!
//! Module map:
//! - [`config`]: typed configuration from flags, environment and an optional TOML file.
//! - [`db`]: the sqlx `Any` pool (SQLite default, PostgreSQL in production) and migrations.
//! - [`auth`]: signing keys, JWTs, refresh tokens, passwords, throttling, the `Principal`.
//! - [`audit`]: the append-only, hash-chained audit log.
//! - [`backup`]: `signaling-server backup` / `restore` of everything a deployment keeps.
//! - [`cases`]: work orders (工单) and their follow-ups.
//! - [`calendar`]: China-time dates, the working-day calendar (holidays, 调休) and deadlines.
//! - [`cluster`]: cluster mode (PostgreSQL + Redis): node registry, shared throttles, notices.
//! - [`api`]: the HTTP surface, one module per resource, and the OpenAPI document.
//! - [`dispatch`]: the queue and dispatch state machine (sans-IO, explicit `now`).
//! - [`switchboard`]: the task that owns live tickets and calls, persists them and delivers
//!   server messages; [`ws`]: the `/ws` endpoint feeding it.
//! - [`ice`]: STUN/TURN servers and per-session coturn credentials.
//! - [`pii`]: encryption and keyed hashing of residents' personal data.
//! - [`materials`]: the encrypted materials store, tus uploads and remote printing.
//! - [`metrics`]: `/metrics` (Prometheus text) and the readiness checks of `/readyz`.
//! - [`terminal_health`]: terminals' offline and printer-fault alarms and their monitor task.
//! - [`demo`]: demo data for `--demo`.
//! - [`error`]: the one `IntoResponse` error type.
//! - [`state`]: the cheap-to-clone application state.
//!
//! The binary is a thin `main`: [`Application::build`] binds the listener and prepares the
//! state; [`Application::run_until`] serves until the shutdown future completes. Tests bind
//! port 0 and drive the same code.

pub mod api;
pub mod appointments;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod calendar;
pub mod cases;
pub mod cluster;
pub mod config;
pub mod db;
pub mod demo;
pub mod dispatch;
pub mod error;
pub mod ice;
pub mod inspections;
pub mod materials;
pub mod metrics;
pub mod pii;
pub mod state;
pub mod switchboard;
pub mod terminal_health;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::auth::keys::KeyRing;
use crate::auth::throttle::Throttles;
use crate::auth::tokens::TokenService;
use crate::config::Config;
use crate::db::Db;
use crate::state::{AppState, Inner};

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Keys(#[from] auth::keys::KeyError),
    #[error("cannot create data directory {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("demo data: {0}")]
    Demo(String),
    #[error(transparent)]
    Pii(#[from] pii::PiiError),
    #[error(transparent)]
    Materials(#[from] materials::StoreError),
    #[error("cluster mode: {0}")]
    Cluster(#[from] cluster::ClusterError),
}

/// A built server: bound listener and ready state.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// `(point code, enrollment code)` of the demo terminals, when `--demo` was given.
    pub demo_enrollment: Vec<(String, String)>,
}

impl Application {
    /// Binds `config.listen` (port 0 picks a free port) and prepares the state.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(config.listen).await.map_err(|e| StartError::Bind(config.listen, e))?;
        Self::with_listener(config, listener).await
    }

    /// Prepares the state for an already bound listener.
    pub async fn with_listener(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        let fresh = !config.data_dir.exists();
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
        #[cfg(unix)]
        if fresh {
            // The database and keys hold residents' (encrypted) data: owner only.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
        }
        // Cluster mode: Redis first, so that a node without it stops at once with a clear error.
        let sockets = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started_at = db::now_ms();
        let cluster = match config.cluster.clone() {
            Some(c) => {
                let node = c.node_id.clone();
                let cluster = cluster::Cluster::connect(c, sockets.clone(), started_at).await?;
                tracing::info!(node, "cluster mode: joined");
                Some(cluster)
            }
            None => None,
        };
        let db = Db::connect_server(&config.database_url).await?;
        // Retired keys stay as long as the longest token they may have signed.
        let keep_ms =
            i64::try_from(config.access_ttl_secs.max(config.device_ttl_secs) + 120).unwrap_or(1020) * 1000;
        let pii = pii::Pii::load_or_create(&config.master_key_file)?;
        let keys =
            KeyRing::load_or_create(&db, &pii, &config.data_dir.join("keys"), keep_ms, db::now_ms()).await?;
        let tokens = TokenService { keys, issuer: config.issuer.clone() };
        let demo_enrollment = if config.demo {
            let codes = demo::seed(&db, &config.data_dir).await.map_err(|e| StartError::Demo(e.message))?;
            if config.demo_points > 0 {
                let added = demo::fill_district(&db, config.demo_points)
                    .await
                    .map_err(|e| StartError::Demo(e.message))?;
                tracing::info!(added, total = config.demo_points, "demo district filled");
            }
            codes
        } else {
            Vec::new()
        };
        let metrics = std::sync::Arc::new(metrics::Metrics::new());
        let settings = switchboard::Settings {
            ring_timeout_ms: config.ring_timeout_ms,
            overflow_after_ms: config.overflow_after_ms,
            resume_window_ms: config.resume_window_ms,
            ice: config.ice.clone(),
            tokens: tokens.clone(),
            max_open_tickets_per_terminal: config.max_open_tickets_per_terminal,
            metrics: metrics.clone(),
            fence: None,
        };
        // Cluster mode: one switchboard for the deployment, on the node holding the lease.
        let (switchboard, authority) = match &cluster {
            Some(c) => {
                let (sb, authority) = switchboard::remote::start(
                    c.clone(),
                    db.clone(),
                    pii.clone(),
                    settings,
                    config.outbound_queue,
                )
                .await;
                (sb, Some(authority))
            }
            None => (switchboard::Switchboard::start(db.clone(), pii.clone(), settings).await, None),
        };
        let materials = materials::Store::open(&config)?.with_cluster(cluster.clone());
        let state = AppState::new(Inner {
            materials,
            pii,
            switchboard,
            authority,
            config,
            db,
            tokens,
            throttle: Throttles::new(cluster.clone()),
            started_at,
            sockets,
            cluster,
            audit: audit::Audit::new(),
            metrics,
        });
        // Retention: archive and purge what is due, drop abandoned uploads, expire print jobs.
        match materials::purge(&state, None).await {
            Ok(r) if r != shared::api::PurgeReport::default() => tracing::info!(?r, "materials purge"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e.message, "materials purge failed"),
        }
        Ok(Self { listener, state, demo_enrollment })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let app = api::router(self.state.clone());
        let retention = tokio::spawn(retention_task(self.state.clone()));
        let health = tokio::spawn(terminal_health::monitor_task(self.state.clone()));
        let cases = tokio::spawn(cases::orders::worker(self.state.clone()));
        let outbox = tokio::spawn(cases::outbox::worker(self.state.clone()));
        let checkpoints = tokio::spawn(checkpoint_task(self.state.clone()));
        // Only other nodes change the key ring behind this one's back: single-node mode has
        // nothing to reload.
        let cluster_tasks = self.state.cluster.clone().map(|c| {
            (
                tokio::spawn(cluster::report_task(c.clone())),
                tokio::spawn(cluster::notice_task(self.state.clone(), c)),
                tokio::spawn(key_refresh_task(self.state.clone())),
            )
        });
        let sb = self.state.switchboard.clone();
        let draining = self.state.cluster.clone();
        let authority = self.state.authority.clone();
        // Signaling frames are small and latency-sensitive: no Nagle delay.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Tell the cluster first: this node takes no new connections.
                if let Some(c) = draining {
                    c.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                    let _ = c.report(db::now_ms()).await;
                }
                // Tell every WebSocket client, so that it reconnects elsewhere or later.
                sb.send(switchboard::Event::Shutdown).await;
                // If this node runs the cluster's switchboard, hand it over at once.
                if let Some(a) = authority {
                    a.stop().await;
                }
            })
            .await?;
        retention.abort();
        health.abort();
        cases.abort();
        outbox.abort();
        checkpoints.abort();
        if let Some((report, notices, keys)) = cluster_tasks {
            report.abort();
            notices.abort();
            keys.abort();
        }
        if let Some(c) = &self.state.cluster
            && let Err(e) = c.leave().await
        {
            tracing::warn!(error = %e, "cluster: could not leave the node list");
        }
        // The last word of this run: anchor the chain's head.
        let _ = audit::checkpoint(&self.state.db, &self.state.tokens.keys, &self.state.config.data_dir, None)
            .await;
        self.state.db.pool.close().await;
        Ok(())
    }
}

/// How often the audit chain's head is signed and written outside the database.
pub const AUDIT_CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Anchors the audit chain's head every [`AUDIT_CHECKPOINT_INTERVAL`] (when it moved).
async fn checkpoint_task(state: AppState) {
    let mut every = tokio::time::interval(AUDIT_CHECKPOINT_INTERVAL);
    let mut last = None;
    loop {
        every.tick().await;
        match audit::checkpoint(&state.db, &state.tokens.keys, &state.config.data_dir, last).await {
            Ok(seq) => last = seq,
            Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
        }
    }
}

/// Cluster mode: reloads the signing keys every [`auth::keys::REFRESH_INTERVAL`], so that a
/// rotation or a retirement made on another node reaches this one even if its notice is lost.
async fn key_refresh_task(state: AppState) {
    let mut every = tokio::time::interval(auth::keys::REFRESH_INTERVAL);
    loop {
        every.tick().await;
        match state.tokens.keys.refresh().await {
            Ok(true) => tracing::info!("signing keys changed elsewhere: reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "signing keys not reloaded"),
        }
    }
}

/// Erases residents' personal data past its retention period, at start and then daily.
async fn retention_task(state: AppState) {
    let mut every_day = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
    loop {
        every_day.tick().await;
        let days = state.config.pii_retention_days;
        match api::tickets::purge_personal_data(&state.db, days).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(tickets = n, days, "erased residents' personal data past retention");
                let rec = audit::AuditRecord::new("resident.purge", "ticket")
                    .detail(serde_json::json!({ "tickets": n, "retention_days": days }));
                state.audit(rec).await;
            }
            Err(e) => tracing::error!(error = %e, "personal data purge failed"),
        }
    }
}
