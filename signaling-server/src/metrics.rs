//! Operational metrics at `GET /metrics` in the Prometheus text format (0.0.4), and the
//! readiness checks of `/readyz`.
//!
//! Each [`crate::Application`] owns one [`Metrics`] (held in `AppState` and handed to the
//! switchboard): `prometheus-client`'s registry is a plain value, not a process-global recorder,
//! so servers started side by side (the tests start many in one process) keep their figures
//! apart.
//!
//! Two kinds of figures:
//! - **recorded** where things happen, cheaply (atomics; a histogram takes one uncontended
//!   mutex for a few instructions, never across an `.await`): the switchboard's decision time,
//!   relay latency of `signal` / `peer_signal`, turn time, call setup time reported by clients;
//!   upload bytes, completions and failures;
//! - **gathered at scrape time** from whoever holds the truth: connections by role, waiting
//!   tickets and longest wait per line and live calls from the switchboard (one
//!   [`crate::switchboard::Switchboard::snapshot`] round trip), print jobs by state and open
//!   terminal alarms from the database (two `GROUP BY` counts), the pool's size.
//!
//! Labels never carry personal data: roles, line ids and line names, states, error codes.
//!
//! Access ([`authorize`]): with `metrics_token` set, `Authorization: Bearer <token>` is
//! required; without it, only a loopback peer that no proxy forwarded may scrape.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI8, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shared::protocol::Role;
use sqlx::Row;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a scrape or a readiness check waits for the switchboard or the database.
pub const CHECK_BOUND: Duration = Duration::from_secs(2);

/// Print job states (`print_jobs.state`), each always reported (0 when none).
pub const PRINT_JOB_STATES: [&str; 8] =
    ["pending", "claimed", "queued", "printing", "completed", "failed", "cancelled", "expired"];
/// Terminal alarm kinds (`terminal_alarms.kind`), each always reported.
pub const ALARM_KINDS: [&str; 3] = ["offline", "printer_fault", "disk_space"];

/// Seconds: the core's decision for one input (no I/O): tens of microseconds.
const DECISION_BUCKETS: [f64; 12] =
    [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1];
/// Seconds: a signaling message from the sender's socket to the peer's queue.
const RELAY_BUCKETS: [f64; 13] =
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Seconds: one switchboard turn, lookups and group commit included.
const TURN_BUCKETS: [f64; 13] =
    [0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Seconds: `session_started` to the first decoded remote video frame, as clients report it.
const SETUP_BUCKETS: [f64; 13] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0];

type Labels = Vec<(&'static str, String)>;
type StaticLabels = [(&'static str, &'static str); 1];

/// One server's metrics.
pub struct Metrics {
    registry: Registry,
    dispatch_decision: Histogram,
    signal_relay: Histogram,
    switchboard_turn: Histogram,
    call_setup_operator: Histogram,
    call_setup_terminal: Histogram,
    upload_bytes_material: Counter,
    upload_bytes_recording: Counter,
    uploads_completed_material: Counter,
    uploads_completed_recording: Counter,
    upload_failures: Family<StaticLabels, Counter>,
    /// -1: no Redis in this deployment; 0 down; 1 up.
    redis_up: AtomicI8,
    /// -1: no cluster authority (a single node is its own).
    authority_epoch: AtomicI64,
    /// Cluster mode: 1 while this node runs the switchboard, 0 while it only forwards; -1 on a
    /// single node (always its own switchboard).
    authority_here: AtomicI8,
    /// Cluster mode: writes of this node's switchboard refused by the lease's fencing check
    /// (shared with each [`crate::switchboard::lease::Fence`] this node takes).
    pub fenced_writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram(buckets: &[f64]) -> Histogram {
    Histogram::new(buckets.iter().copied())
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let dispatch_decision = histogram(&DECISION_BUCKETS);
        registry.register_with_unit(
            "bangban_dispatch_decision",
            "Time the switchboard's core takes to decide one input (queue, dispatch, relay), without I/O",
            Unit::Seconds,
            dispatch_decision.clone(),
        );
        let signal_relay = histogram(&RELAY_BUCKETS);
        registry.register_with_unit(
            "bangban_signal_relay",
            "Time from reading a signal or peer_signal message off the sender's socket to queueing it for the peer",
            Unit::Seconds,
            signal_relay.clone(),
        );
        let switchboard_turn = histogram(&TURN_BUCKETS);
        registry.register_with_unit(
            "bangban_switchboard_turn",
            "Time of one switchboard turn: lookups, decisions, the group commit and delivery",
            Unit::Seconds,
            switchboard_turn.clone(),
        );
        let call_setup: Family<StaticLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| histogram(&SETUP_BUCKETS));
        registry.register_with_unit(
            "bangban_call_setup",
            "Call setup time reported by clients (call_setup): session_started to the first decoded remote video frame, by reporting side",
            Unit::Seconds,
            call_setup.clone(),
        );
        let upload_bytes: Family<StaticLabels, Counter> = Family::default();
        registry.register_with_unit(
            "bangban_upload",
            "Upload bytes stored durably (acknowledged tus PATCH bodies), by kind (material, recording)",
            Unit::Bytes,
            upload_bytes.clone(),
        );
        let uploads_completed: Family<StaticLabels, Counter> = Family::default();
        registry.register(
            "bangban_uploads_completed",
            "Uploads completed and accepted as materials, by kind",
            uploads_completed.clone(),
        );
        let upload_failures: Family<StaticLabels, Counter> = Family::default();
        registry.register(
            "bangban_upload_failures",
            "Upload requests (tus POST and PATCH) refused or failed, by error code",
            upload_failures.clone(),
        );
        let side = |s: &'static str| [("side", s)];
        let kind = |k: &'static str| [("kind", k)];
        Self {
            call_setup_operator: call_setup.get_or_create_owned(&side("operator")),
            call_setup_terminal: call_setup.get_or_create_owned(&side("terminal")),
            upload_bytes_material: upload_bytes.get_or_create_owned(&kind("material")),
            upload_bytes_recording: upload_bytes.get_or_create_owned(&kind("recording")),
            uploads_completed_material: uploads_completed.get_or_create_owned(&kind("material")),
            uploads_completed_recording: uploads_completed.get_or_create_owned(&kind("recording")),
            registry,
            dispatch_decision,
            signal_relay,
            switchboard_turn,
            upload_failures,
            redis_up: AtomicI8::new(-1),
            authority_epoch: AtomicI64::new(-1),
            authority_here: AtomicI8::new(-1),
            fenced_writes: std::sync::Arc::default(),
        }
    }

    // ---- recording --------------------------------------------------------------------------

    pub fn dispatch_decision(&self, took: Duration) {
        self.dispatch_decision.observe(took.as_secs_f64());
    }

    pub fn signal_relayed(&self, since: Instant) {
        self.signal_relay.observe(since.elapsed().as_secs_f64());
    }

    pub fn switchboard_turn(&self, took: Duration) {
        self.switchboard_turn.observe(took.as_secs_f64());
    }

    /// A client's `call_setup` report (`operator`: from the operator's console, else the
    /// terminal).
    pub fn call_setup(&self, operator: bool, ms: u32) {
        let h = if operator { &self.call_setup_operator } else { &self.call_setup_terminal };
        h.observe(f64::from(ms) / 1000.0);
    }

    /// Bytes of an upload made durable.
    pub fn upload_bytes(&self, recording: bool, bytes: u64) {
        let c = if recording { &self.upload_bytes_recording } else { &self.upload_bytes_material };
        c.inc_by(bytes);
    }

    pub fn upload_completed(&self, recording: bool) {
        let c = if recording { &self.uploads_completed_recording } else { &self.uploads_completed_material };
        c.inc();
    }

    /// An upload request that failed, by its error code (a fixed vocabulary, never user text).
    pub fn upload_failed(&self, code: &'static str) {
        self.upload_failures.get_or_create(&[("code", code)]).inc();
    }

    /// Cluster mode: whether the node reaches Redis (`None`: no Redis configured, the gauge is
    /// not reported).
    pub fn set_redis_up(&self, up: Option<bool>) {
        self.redis_up.store(up.map_or(-1, i8::from), Ordering::Relaxed);
    }

    /// Cluster mode: the epoch of the switchboard authority this node follows (`None`: not
    /// reported, a single node being its own authority).
    pub fn set_authority_epoch(&self, epoch: Option<u64>) {
        let v = epoch.map_or(-1, |e| i64::try_from(e).unwrap_or(i64::MAX));
        self.authority_epoch.store(v, Ordering::Relaxed);
    }

    /// Cluster mode: whether this node runs the switchboard now (it took the lease) or only
    /// forwards to the node that does.
    pub fn set_authority_here(&self, here: bool) {
        self.authority_here.store(i8::from(here), Ordering::Relaxed);
    }

    /// Whether this node's scrape carries the deployment-wide figures (queues, calls, parties
    /// connected, print jobs, alarms): a single node always; in a cluster only the authority,
    /// so that summing a figure over the nodes counts it once.
    pub fn reports_deployment_figures(&self) -> bool {
        self.authority_here.load(Ordering::Relaxed) != 0
    }
}

// ---- scrape ---------------------------------------------------------------------------------

/// What the switchboard holds now, for a scrape (see `Switchboard::snapshot`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwitchboardSnapshot {
    /// Connected parties by role.
    pub connections: Vec<(Role, u32)>,
    /// Every line the switchboard knows: `(id, name, waiting tickets, longest wait ms)`.
    pub lines: Vec<(uuid::Uuid, String, u32, i64)>,
    /// Sessions in a call (active or held).
    pub calls_live: u32,
}

/// Counts from the database for a scrape.
#[derive(Debug, Default)]
struct DbFigures {
    print_jobs: Vec<(String, i64)>,
    alarms_open: Vec<(String, i64)>,
}

async fn db_figures(db: &crate::db::Db) -> Result<DbFigures, sqlx::Error> {
    let count = |rows: Vec<sqlx::any::AnyRow>| -> Result<Vec<(String, i64)>, sqlx::Error> {
        rows.iter().map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?))).collect()
    };
    let print_jobs = sqlx::query("SELECT state, COUNT(*) FROM print_jobs GROUP BY state")
        .fetch_all(&db.pool)
        .await
        .and_then(count)?;
    let alarms_open =
        sqlx::query("SELECT kind, COUNT(*) FROM terminal_alarms WHERE cleared_at IS NULL GROUP BY kind")
            .fetch_all(&db.pool)
            .await
            .and_then(count)?;
    Ok(DbFigures { print_jobs, alarms_open })
}

fn gauge_family(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f: Family<Labels, Gauge> = Family::default();
    registry.register(name, help, f.clone());
    f
}

fn gauge(registry: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    registry.register(name, help, g);
}

fn label(k: &'static str, v: impl Into<String>) -> Labels {
    vec![(k, v.into())]
}

/// The whole exposition: the recorded metrics, then the figures gathered now.
pub async fn render(state: &AppState) -> String {
    if let Some(c) = &state.cluster {
        state.metrics.set_redis_up(Some(c.redis_up()));
    }
    let (sb, db) = tokio::join!(
        tokio::time::timeout(CHECK_BOUND, state.switchboard.snapshot()),
        tokio::time::timeout(CHECK_BOUND, db_figures(&state.db)),
    );
    let sb = sb.ok().flatten();
    let db = match db {
        Ok(Ok(f)) => Some(f),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: database counts failed");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: database counts timed out");
            None
        }
    };
    let m = &state.metrics;
    let mut now = Registry::default();
    gauge_family(&mut now, "bangban_build_info", "The server's version as a label (value always 1)")
        .get_or_create(&label("version", env!("CARGO_PKG_VERSION")))
        .set(1);
    let up = i64::from(sb.is_some());
    gauge(
        &mut now,
        "bangban_switchboard_up",
        "Whether the switchboard task answered this scrape in time",
        up,
    );
    let sb = sb.unwrap_or_default();
    // In a cluster the switchboard's figures and the database's counts are the deployment's,
    // whichever node is asked: only the authority reports them (see `reports_deployment_figures`).
    let deployment = m.reports_deployment_figures();
    if deployment {
        let conns = gauge_family(&mut now, "bangban_connections", "Open WebSocket connections by role");
        for role in Role::ALL {
            let n = sb.connections.iter().find(|(r, _)| *r == role).map_or(0, |(_, n)| *n);
            conns.get_or_create(&label("role", role.as_str())).set(i64::from(n));
        }
        let waiting =
            gauge_family(&mut now, "bangban_tickets_waiting", "Tickets waiting in each line's queue");
        let longest: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        now.register_with_unit(
            "bangban_ticket_longest_wait",
            "Age of the longest-waiting ticket in each line's queue (0 when none waits)",
            Unit::Seconds,
            longest.clone(),
        );
        for (id, name, n, wait_ms) in &sb.lines {
            let l = vec![("line_id", id.to_string()), ("line", name.clone())];
            waiting.get_or_create(&l).set(i64::from(*n));
            #[allow(clippy::cast_precision_loss)] // milliseconds of a wait: far below 2^52
            longest.get_or_create(&l).set(*wait_ms as f64 / 1000.0);
        }
        gauge(
            &mut now,
            "bangban_calls_live",
            "Calls in progress (active or on hold)",
            i64::from(sb.calls_live),
        );
    }
    let stats = &state.switchboard.stats;
    let slow: Counter = Counter::default();
    slow.inc_by(stats.slow_consumers.load(Ordering::Relaxed));
    now.register(
        "bangban_ws_slow_consumers",
        "WebSocket connections closed because they did not read their messages fast enough",
        slow,
    );
    let frames: Counter = Counter::default();
    frames.inc_by(stats.delivered.load(Ordering::Relaxed));
    now.register("bangban_ws_frames_queued", "Server messages queued to WebSocket connections", frames);
    gauge(
        &mut now,
        "bangban_database_up",
        "Whether the database answered this scrape in time",
        i64::from(db.is_some()),
    );
    if let Some(db) = db.filter(|_| deployment) {
        let jobs = gauge_family(&mut now, "bangban_print_jobs", "Print jobs by state (all stored jobs)");
        for s in PRINT_JOB_STATES {
            let n = db.print_jobs.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
            jobs.get_or_create(&label("state", s)).set(n);
        }
        let alarms = gauge_family(&mut now, "bangban_terminal_alarms_open", "Terminal alarms open, by kind");
        for k in ALARM_KINDS {
            let n = db.alarms_open.iter().find(|(x, _)| x == k).map_or(0, |(_, n)| *n);
            alarms.get_or_create(&label("kind", k)).set(n);
        }
    }
    let pool = &state.db.pool;
    gauge(&mut now, "bangban_db_pool_connections", "Database pool: connections open", i64::from(pool.size()));
    gauge(
        &mut now,
        "bangban_db_pool_idle_connections",
        "Database pool: connections open and idle",
        i64::try_from(pool.num_idle()).unwrap_or(i64::MAX),
    );
    gauge(
        &mut now,
        "bangban_db_pool_max_connections",
        "Database pool: most connections it opens",
        i64::from(pool.options().get_max_connections()),
    );
    match m.redis_up.load(Ordering::Relaxed) {
        -1 => {}
        v => gauge(
            &mut now,
            "bangban_redis_up",
            "Whether this node reaches Redis (cluster mode)",
            i64::from(v),
        ),
    }
    match m.authority_here.load(Ordering::Relaxed) {
        -1 => {}
        v => gauge(
            &mut now,
            "bangban_switchboard_authority",
            "Whether this node runs the deployment's switchboard now (cluster mode; only it reports the deployment-wide figures)",
            i64::from(v),
        ),
    }
    if let Some(c) = &state.cluster {
        let fenced: Counter = Counter::default();
        fenced.inc_by(m.fenced_writes.load(Ordering::Relaxed));
        now.register(
            "bangban_switchboard_fenced_writes",
            "Writes of this node's switchboard refused because another node had taken the lease (cluster mode)",
            fenced,
        );
        gauge(
            &mut now,
            "bangban_node_connections",
            "Open WebSocket connections on this node (cluster mode; bangban_connections is the deployment's, by role)",
            i64::try_from(c.connections.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        );
    }
    match m.authority_epoch.load(Ordering::Relaxed) {
        -1 => {}
        v => gauge(
            &mut now,
            "bangban_authority_epoch",
            "Epoch of the switchboard authority this node follows (cluster mode)",
            v,
        ),
    }
    let mut out = String::with_capacity(8 * 1024);
    if prometheus_text::encode(&mut out, &m.registry).is_err()
        || prometheus_text::encode(&mut out, &now).is_err()
    {
        tracing::error!("metrics encoding failed");
    }
    out
}

// ---- access ---------------------------------------------------------------------------------

/// Checks `metrics_token` (shared by [`scrape`] and tests): with a token configured, the one
/// `Authorization` header must be `Bearer <token>` (scheme case-insensitive); without one, the
/// peer must be loopback and the request not forwarded by a proxy.
pub fn authorize(token: Option<&str>, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = token else {
        let forwarded =
            ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| headers.contains_key(*h));
        if peer.ip().to_canonical().is_loopback() && !forwarded {
            return Ok(());
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "监控数据仅限本机采集；远程采集须配置监控令牌 --metrics-token (metrics are served to this host only; \
             set --metrics-token to scrape from elsewhere)",
        ));
    };
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(metrics_unauthorized("须提供监控令牌 (metrics token required: Authorization: Bearer …)"));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t);
    match given {
        Some(t) if same_secret(t.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(metrics_unauthorized("监控令牌无效 (invalid metrics token)")),
    }
}

fn metrics_unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
}

/// Compares digests, so the time taken says nothing about how much of the token matched.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// `GET /metrics`: Prometheus text format 0.0.4. Kept out of the OpenAPI document on purpose,
/// like `/ws` and the protocol schema: it is an operations endpoint for Prometheus, not part of
/// the API, and answers text.
pub async fn scrape(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorize(state.config.metrics_token.as_ref().map(|t| t.expose()), peer, &headers) {
        let mut resp = e.into_response();
        if resp.status() == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return resp;
    }
    let body = render(&state).await;
    ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], body).into_response()
}

// ---- readiness ------------------------------------------------------------------------------

/// Which readiness checks failed, for `/readyz` (empty: ready). The switchboard is the
/// authority for live calls on a node; in cluster mode the Redis and authority checks join it.
pub async fn readiness(state: &AppState) -> Vec<&'static str> {
    let (db, sb) = tokio::join!(
        tokio::time::timeout(CHECK_BOUND, state.db.ping()),
        tokio::time::timeout(CHECK_BOUND, state.switchboard.snapshot()),
    );
    let mut failed = Vec::new();
    if !matches!(db, Ok(true)) {
        failed.push("数据库不可用 (database unreachable)");
    }
    if !matches!(sb, Ok(Some(_))) {
        failed.push("调度服务无响应 (switchboard not answering)");
    }
    if let Some(c) = &state.cluster {
        let up = tokio::time::timeout(CHECK_BOUND, c.ping()).await.unwrap_or(false);
        state.metrics.set_redis_up(Some(up));
    }
    if state.metrics.redis_up.load(Ordering::Relaxed) == 0 {
        failed.push("Redis 不可用 (Redis unreachable)");
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_bytes(v).expect("value"),
            );
        }
        h
    }

    const TOKEN: &str = "s3cret-metrics-token-0123456789abcdef";

    #[test]
    fn without_a_token_only_unforwarded_loopback_peers_may_scrape() {
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let local6: SocketAddr = "[::1]:5000".parse().expect("addr");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().expect("addr");
        let remote: SocketAddr = "203.0.113.9:5000".parse().expect("addr");
        for peer in [local, local6, mapped] {
            assert!(authorize(None, peer, &HeaderMap::new()).is_ok(), "{peer}");
        }
        let e = authorize(None, remote, &HeaderMap::new()).expect_err("remote");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.starts_with("监控数据仅限本机采集"), "{}", e.message);
        // A proxy on the same host relays the internet: refused.
        for h in ["forwarded", "x-forwarded-for", "x-real-ip"] {
            let e = authorize(None, local, &headers(&[(h, b"203.0.113.9")])).expect_err(h);
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{h}");
        }
        // A bearer token is no way in when none is configured.
        let h = headers(&[("authorization", format!("Bearer {TOKEN}").as_bytes())]);
        assert!(authorize(None, remote, &h).is_err());
    }

    #[test]
    fn with_a_token_only_the_exact_bearer_token_passes() {
        let remote: SocketAddr = "203.0.113.9:5000".parse().expect("addr");
        let ok = format!("Bearer {TOKEN}");
        assert!(authorize(Some(TOKEN), remote, &headers(&[("authorization", ok.as_bytes())])).is_ok());
        let lower = format!("bearer {TOKEN}");
        assert!(authorize(Some(TOKEN), remote, &headers(&[("authorization", lower.as_bytes())])).is_ok());
        let long = "A".repeat(8 * 1024);
        let hostile: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"Bearer".to_vec(),
            b"Bearer ".to_vec(),
            format!("Basic {TOKEN}").into_bytes(),
            format!("Bearer  {TOKEN}").into_bytes(),
            format!("Bearer {TOKEN} ").into_bytes(),
            format!("Bearer {TOKEN}x").into_bytes(),
            format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]).into_bytes(),
            format!("Bearer {}", TOKEN.to_uppercase()).into_bytes(),
            format!("Bearer\t{TOKEN}").into_bytes(),
            format!("Bearer {long}").into_bytes(),
            b"Bearer \xff\xfe\x80".to_vec(),
            TOKEN.as_bytes().to_vec(),
        ];
        for v in &hostile {
            let e = authorize(Some(TOKEN), remote, &headers(&[("authorization", v)])).expect_err("refused");
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{:?}", String::from_utf8_lossy(v));
            assert_eq!(e.message, "监控令牌无效 (invalid metrics token)");
        }
        let e = authorize(Some(TOKEN), remote, &HeaderMap::new()).expect_err("missing");
        assert!(e.message.starts_with("须提供监控令牌"), "{}", e.message);
        // Two Authorization headers, one of them right: refused, not guessed.
        let two = headers(&[("authorization", ok.as_bytes()), ("authorization", b"Bearer x")]);
        assert_eq!(authorize(Some(TOKEN), remote, &two).map_err(|e| e.status), Err(StatusCode::UNAUTHORIZED));
        // Loopback needs the token too once one is set.
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert!(authorize(Some(TOKEN), local, &HeaderMap::new()).is_err());
    }

    #[test]
    fn each_metrics_value_is_its_own() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.upload_bytes(false, 10);
        a.upload_failed("checksum_mismatch");
        let text = |m: &Metrics| {
            let mut s = String::new();
            prometheus_text::encode(&mut s, &m.registry).expect("encodes");
            s
        };
        let (ta, tb) = (text(&a), text(&b));
        assert!(ta.contains("bangban_upload_bytes_total{kind=\"material\"} 10\n"), "{ta}");
        assert!(ta.contains("bangban_upload_failures_total{code=\"checksum_mismatch\"} 1\n"), "{ta}");
        assert!(tb.contains("bangban_upload_bytes_total{kind=\"material\"} 0\n"), "{tb}");
        assert!(!tb.contains("checksum_mismatch"), "{tb}");
    }
}
