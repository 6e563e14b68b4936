//! `GET /api/v1/admin/cluster`: the nodes of this deployment, as they report themselves.

use axum::Json;
use axum::extract::State;
use shared::api::{ClusterView, ErrorBody};
use shared::protocol::Role;

use crate::auth::Principal;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The server nodes of this deployment (admin): id, address, connections, load, draining.
/// One node in single-node mode; in cluster mode every node that reported within 6 s.
#[utoipa::path(get, path = "/api/v1/admin/cluster", tag = "health",
    responses((status = 200, body = ClusterView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn view(State(state): State<AppState>, p: Principal) -> ApiResult<Json<ClusterView>> {
    p.require(&[Role::Admin])?;
    let Some(cluster) = &state.cluster else {
        let node = shared::api::ClusterNode {
            id: "single".into(),
            url: format!("http://{}", state.config.listen),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: state.started_at,
            reported_at: now_ms(),
            connections: state.sockets.load(std::sync::atomic::Ordering::Relaxed),
            load: crate::cluster::load_average(),
            draining: false,
        };
        return Ok(Json(ClusterView {
            mode: "single".into(),
            this_node: node.id.clone(),
            nodes: vec![node],
        }));
    };
    let nodes = cluster.nodes().await.map_err(|e| {
        tracing::error!(error = %e, "cluster view");
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "redis_unavailable",
            "集群状态暂不可用 (Redis unreachable)",
        )
    })?;
    Ok(Json(ClusterView { mode: "cluster".into(), this_node: cluster.node_id().into(), nodes }))
}
