//! Shared application state: a cheap-to-clone handle around `Arc`.

use std::ops::Deref;
use std::sync::Arc;

use crate::audit::Audit;
use crate::auth::throttle::Throttles;
use crate::auth::tokens::TokenService;
use crate::config::Config;
use crate::db::Db;

pub struct Inner {
    pub config: Config,
    pub db: Db,
    pub tokens: TokenService,
    pub throttle: Throttles,
    pub audit: Audit,
    pub pii: crate::pii::Pii,
    pub switchboard: crate::switchboard::Switchboard,
    /// Cluster mode: this node's candidacy for running the switchboard.
    pub authority: Option<crate::switchboard::remote::Authority>,
    pub materials: crate::materials::Store,
    /// Unix ms when this node started.
    pub started_at: i64,
    /// Open WebSocket connections on this node.
    pub sockets: Arc<std::sync::atomic::AtomicU64>,
    /// This node's place in the cluster (cluster mode only).
    pub cluster: Option<crate::cluster::Cluster>,
    /// This server's metrics (`/metrics`), shared with the switchboard.
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Appends an audit entry; a failure is logged (the action itself already happened).
    pub async fn audit(&self, rec: crate::audit::AuditRecord) {
        if let Err(e) = self.audit.append(&self.db, rec).await {
            tracing::error!(error = %e, "audit append failed");
        }
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
