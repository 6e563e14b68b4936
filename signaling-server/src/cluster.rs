//! Cluster mode (#12): several nodes of the same binary on one PostgreSQL (the source of truth)
//! and one Redis (the shared fast state and the bus). Turned on by `redis_url`; without it the
//! node runs on its own exactly as before and nothing here is used.
//!
//! What Redis carries, every key under the deployment's `prefix`:
//! - the node registry: each node writes its report ([`shared::api::ClusterNode`]) every
//!   [`REPORT_EVERY`] with a time-to-live of [`REPORT_TTL`], so a node that stops leaves the
//!   list by itself ([`Cluster::report`], [`Cluster::nodes`]);
//! - the throttles of guessable secrets, shared so that guessing across nodes is counted once
//!   ([`Cluster::throttle_attempt`]: the same rules as [`crate::auth::throttle::Throttle`], run
//!   atomically in Redis as one script);
//! - notices on the `events` channel: a changed signing key ring reloads at once on every node
//!   (otherwise within [`crate::auth::keys::REFRESH_INTERVAL`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use shared::api::ClusterNode;

use crate::auth::throttle::{Limit, Refused};
use crate::config::ClusterConfig;

/// How often a node reports itself.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
/// A node whose report is older than this has left the cluster.
pub const REPORT_TTL: Duration = Duration::from_secs(6);
/// Longest wait for one Redis command before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for Redis at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis unreachable or refused the command: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected data in Redis: {0}")]
    Data(String),
}

/// A notice on the cluster's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A signing key was made or retired: reload the ring.
    KeysChanged,
}

impl Notice {
    fn as_str(self) -> &'static str {
        match self {
            Notice::KeysChanged => "keys_changed",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        (s == "keys_changed").then_some(Notice::KeysChanged)
    }
}

/// Cheap-to-clone handle to this node's place in the cluster.
#[derive(Clone)]
pub struct Cluster {
    cfg: ClusterConfig,
    client: redis::Client,
    conn: ConnectionManager,
    started_at: i64,
    /// Open WebSocket connections on this node.
    pub connections: Arc<AtomicU64>,
    /// Set when the node drains for a restart.
    pub draining: Arc<AtomicBool>,
    /// Whether the last command reached Redis (for `/readyz` and metrics).
    redis_up: Arc<AtomicBool>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node_id", &self.cfg.node_id).finish_non_exhaustive()
    }
}

async fn timed<T>(fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T, ClusterError> {
    within(COMMAND_TIMEOUT, fut).await
}

async fn within<T>(
    bound: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(bound, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ClusterError::Timeout(bound)),
    }
}

impl Cluster {
    /// Connects to Redis (refusing to start when it does not answer).
    /// `sockets` counts this node's open WebSocket connections.
    pub async fn connect(
        cfg: ClusterConfig,
        sockets: Arc<AtomicU64>,
        now: i64,
    ) -> Result<Self, ClusterError> {
        let client = redis::Client::open(cfg.redis_url.as_str())?;
        let manager_cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2);
        let conn =
            within(CONNECT_TIMEOUT, ConnectionManager::new_with_config(client.clone(), manager_cfg)).await?;
        let cluster = Self {
            cfg,
            client,
            conn,
            started_at: now,
            connections: sockets,
            draining: Arc::default(),
            redis_up: Arc::new(AtomicBool::new(true)),
        };
        let mut c = cluster.conn.clone();
        let _: String = cluster.track(timed(redis::cmd("PING").query_async(&mut c)).await)?;
        Ok(cluster)
    }

    pub fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    /// A key under this deployment's prefix.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.cfg.prefix)
    }

    /// The shared connection (commands that answer at once; never a blocking read).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A connection of its own, for a blocking read (`XREAD BLOCK`): its answers may take up to
    /// `block` (the default response timeout would cut every blocking read short).
    pub(crate) async fn dedicated(
        &self,
        block: Duration,
    ) -> Result<redis::aio::MultiplexedConnection, ClusterError> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + COMMAND_TIMEOUT));
        timed(self.client.get_multiplexed_async_connection_with_config(&cfg)).await
    }

    fn track<T>(&self, r: Result<T, ClusterError>) -> Result<T, ClusterError> {
        self.redis_up.store(r.is_ok(), Ordering::Relaxed);
        r
    }

    /// Whether Redis answered the last command.
    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    /// Asks Redis now (for `/readyz`).
    pub async fn ping(&self) -> bool {
        let mut c = self.conn.clone();
        self.track(timed(redis::cmd("PING").query_async::<String>(&mut c)).await).is_ok()
    }

    /// This node's report as of `now`.
    pub fn this_node(&self, now: i64) -> ClusterNode {
        ClusterNode {
            id: self.cfg.node_id.clone(),
            url: self.cfg.advertise_url.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: self.started_at,
            reported_at: now,
            connections: self.connections.load(Ordering::Relaxed),
            load: load_average(),
            draining: self.draining.load(Ordering::Relaxed),
        }
    }

    /// Writes this node's report, valid for [`REPORT_TTL`].
    pub async fn report(&self, now: i64) -> Result<(), ClusterError> {
        let node = self.this_node(now);
        let json = serde_json::to_string(&node).map_err(|e| ClusterError::Data(e.to_string()))?;
        let mut c = self.conn.clone();
        let ttl = u64::try_from(REPORT_TTL.as_millis()).unwrap_or(6000);
        let r = timed(
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(self.key(&format!("node:{}", node.id)))
                .arg(json)
                .arg("PX")
                .arg(ttl)
                .ignore()
                .sadd(self.key("nodes"), &node.id)
                .ignore()
                .query_async::<()>(&mut c),
        )
        .await;
        self.track(r)
    }

    /// Removes this node's report at once (a clean stop).
    pub async fn leave(&self) -> Result<(), ClusterError> {
        let mut c = self.conn.clone();
        let id = self.cfg.node_id.clone();
        let r = timed(
            redis::pipe()
                .atomic()
                .del(self.key(&format!("node:{id}")))
                .ignore()
                .srem(self.key("nodes"), &id)
                .ignore()
                .query_async::<()>(&mut c),
        )
        .await;
        self.track(r)
    }

    /// Every node that reported within [`REPORT_TTL`], by id.
    pub async fn nodes(&self) -> Result<Vec<ClusterNode>, ClusterError> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = self.track(timed(c.smembers(self.key("nodes"))).await)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(&format!("node:{id}"))).collect();
        let reports: Vec<Option<String>> =
            self.track(timed(redis::cmd("MGET").arg(&keys).query_async(&mut c)).await)?;
        let mut nodes = Vec::new();
        let mut gone = Vec::new();
        for (id, report) in ids.into_iter().zip(reports) {
            match report.and_then(|r| serde_json::from_str::<ClusterNode>(&r).ok()) {
                Some(n) => nodes.push(n),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let _: Result<(), _> = timed(c.srem(self.key("nodes"), gone)).await;
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Tells every node (this one included).
    pub async fn publish(&self, notice: Notice) -> Result<(), ClusterError> {
        let mut c = self.conn.clone();
        let r = timed(c.publish::<_, _, ()>(self.key("events"), notice.as_str())).await;
        self.track(r)
    }

    /// Notices from every node, for as long as the returned stream is read. Reconnects are
    /// the caller's (the subscription ends when the connection drops).
    pub async fn subscribe(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Notice> + Send + use<>, ClusterError> {
        use futures_util::StreamExt;
        let mut pubsub = timed(self.client.get_async_pubsub()).await?;
        timed(pubsub.subscribe(self.key("events"))).await?;
        Ok(pubsub
            .into_on_message()
            .filter_map(|m| async move { m.get_payload::<String>().ok().as_deref().and_then(Notice::parse) }))
    }

    /// [`crate::auth::throttle::Throttle::attempt`] on the cluster's shared throttle.
    pub async fn throttle_attempt(
        &self,
        keys: &[(String, Limit)],
        now: i64,
    ) -> Result<Result<(), Refused>, ClusterError> {
        let mut inv = ATTEMPT.prepare_invoke();
        inv.arg(now);
        for (key, limit) in keys {
            inv.key(self.key(&format!("throttle:{}", key.to_lowercase())));
            inv.arg(limit.free).arg(limit.base_ms).arg(limit.max_ms).arg(limit.window_ms);
        }
        let mut c = self.conn.clone();
        let (wait, first): (i64, i64) = self.track(timed(inv.invoke_async(&mut c)).await)?;
        if wait > 0 {
            let secs = u64::try_from((wait + 999) / 1000).unwrap_or(1);
            return Ok(Err(Refused { retry_after_secs: secs, first: first == 1 }));
        }
        Ok(Ok(()))
    }

    /// [`crate::auth::throttle::Throttle::success`] on the cluster's shared throttle.
    pub async fn throttle_success(
        &self,
        keys: &[(String, Limit)],
        clear: &[&str],
    ) -> Result<(), ClusterError> {
        let mut inv = SUCCESS.prepare_invoke();
        for (key, limit) in keys {
            let key = key.to_lowercase();
            let cleared = clear.iter().any(|c| c.to_lowercase() == key);
            inv.key(self.key(&format!("throttle:{key}")));
            inv.arg(i64::from(cleared)).arg(limit.free).arg(limit.base_ms).arg(limit.max_ms);
        }
        let mut c = self.conn.clone();
        self.track(timed(inv.invoke_async::<()>(&mut c)).await)
    }
}

/// How long a lock in Redis lives unless released (a node that died releases it this way).
const LOCK_TTL: Duration = Duration::from_secs(120);

/// A lock held in Redis, released when dropped (only if still ours).
pub struct SharedLock {
    cluster: Cluster,
    key: String,
    token: String,
}

impl Drop for SharedLock {
    fn drop(&mut self) {
        let (cluster, key, token) =
            (self.cluster.clone(), std::mem::take(&mut self.key), std::mem::take(&mut self.token));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut c = cluster.conn.clone();
                let mut inv = UNLOCK.prepare_invoke();
                inv.key(key).arg(token);
                if let Err(e) = timed(inv.invoke_async::<i64>(&mut c)).await {
                    tracing::warn!(error = %e, "cluster: a lock was not released (it expires)");
                }
            });
        }
    }
}

impl Cluster {
    /// Takes the deployment-wide lock `name`, waiting up to `wait` for another holder;
    /// `Ok(None)` when it was still held then.
    pub async fn lock(&self, name: &str, wait: Duration) -> Result<Option<SharedLock>, ClusterError> {
        let key = self.key(&format!("lock:{name}"));
        let token = uuid::Uuid::new_v4().simple().to_string();
        let ttl = u64::try_from(LOCK_TTL.as_millis()).unwrap_or(120_000);
        let end = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            let mut c = self.conn.clone();
            let got: Option<String> = self.track(
                timed(
                    redis::cmd("SET").arg(&key).arg(&token).arg("NX").arg("PX").arg(ttl).query_async(&mut c),
                )
                .await,
            )?;
            if got.is_some() {
                return Ok(Some(SharedLock { cluster: self.clone(), key, token }));
            }
            if tokio::time::Instant::now() + pause > end {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

/// Deletes a lock only if it still holds our token. KEYS: the lock; ARGV: the token.
static UNLOCK: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// The throttle's check-and-record (see `auth/throttle.rs`) as one atomic script. KEYS: the
/// throttle keys; ARGV: now, then per key free, base_ms, max_ms, window_ms. Returns
/// `{wait_ms, first}`: `wait_ms > 0` refused. Each key is a hash (failures, last_at, next_at,
/// refused) that expires once its window and delay have passed.
static ATTEMPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local now = tonumber(ARGV[1])
local function num(key, field)
  return tonumber(redis.call('HGET', key, field) or '0') or 0
end
local wait = 0
for i = 1, #KEYS do
  local w = num(KEYS[i], 'next_at') - now
  if w > wait then wait = w end
end
if wait > 0 then
  local first = 1
  for i = 1, #KEYS do
    if num(KEYS[i], 'next_at') > now then
      if redis.call('HINCRBY', KEYS[i], 'refused', 1) ~= 1 then first = 0 end
    end
  end
  return {wait, first}
end
for i = 1, #KEYS do
  local o = 1 + (i - 1) * 4
  local free, base, max, window = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])
  local failures, next_at = num(KEYS[i], 'failures'), num(KEYS[i], 'next_at')
  if now - num(KEYS[i], 'last_at') > window then failures = 0; next_at = 0 end
  failures = failures + 1
  if failures >= free then
    local d = math.min(failures - free, 30)
    local delay = math.min(base * (2 ^ d), max)
    if delay > 0 then next_at = now + delay end
  end
  redis.call('HSET', KEYS[i], 'failures', failures, 'last_at', string.format('%d', now),
    'next_at', string.format('%d', next_at), 'refused', 0)
  redis.call('PEXPIRE', KEYS[i], string.format('%d', math.max(window, next_at - now) + 1000))
end
return {0, 0}
",
    )
});

/// The throttle's success (see `auth/throttle.rs`). KEYS: the throttle keys; ARGV per key:
/// cleared (1: forget the key), free, base_ms, max_ms.
static SUCCESS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
for i = 1, #KEYS do
  local o = (i - 1) * 4
  if ARGV[o + 1] == '1' then
    redis.call('DEL', KEYS[i])
  elseif redis.call('EXISTS', KEYS[i]) == 1 then
    local free = tonumber(ARGV[o + 2])
    local failures = math.max((tonumber(redis.call('HGET', KEYS[i], 'failures') or '0') or 0) - 1, 0)
    redis.call('HSET', KEYS[i], 'failures', failures)
    if failures < free then redis.call('HSET', KEYS[i], 'next_at', 0) end
  end
end
return 0
",
    )
});

/// The machine's one-minute load average (0 where it cannot be read).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Reports this node every [`REPORT_EVERY`] until aborted.
pub async fn report_task(cluster: Cluster) {
    let mut every = tokio::time::interval(REPORT_EVERY);
    let mut was_up = true;
    loop {
        every.tick().await;
        let r = cluster.report(crate::db::now_ms()).await;
        match (&r, was_up) {
            (Err(e), true) => tracing::error!(error = %e, "cluster: node report failed (Redis)"),
            (Ok(()), false) => tracing::info!("cluster: Redis reachable again"),
            _ => {}
        }
        was_up = r.is_ok();
    }
}

/// Acts on notices from other nodes until aborted; resubscribes after a lost connection.
pub async fn notice_task(state: crate::state::AppState, cluster: Cluster) {
    use futures_util::StreamExt;
    loop {
        match cluster.subscribe().await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                // Something may have changed while we were not listening.
                let _ = state.tokens.keys.refresh().await;
                while let Some(notice) = stream.next().await {
                    match notice {
                        Notice::KeysChanged => {
                            if let Err(e) = state.tokens.keys.refresh().await {
                                tracing::error!(error = %e, "signing keys not reloaded");
                            }
                        }
                    }
                }
                tracing::warn!("cluster: notice subscription ended, resubscribing");
            }
            Err(e) => tracing::error!(error = %e, "cluster: cannot subscribe to notices"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
