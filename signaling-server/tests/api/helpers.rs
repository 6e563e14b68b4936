//! Spawns the real server on port 0 with demo data, on SQLite (default) or, when
//! `BANGBAN_TEST_DB=postgres`, on PostgreSQL in a schema of its own per test.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signaling_server::Application;
use signaling_server::config::Config;
use signaling_server::state::AppState;

/// Every log line the servers in this test binary write, at debug level, so tests can check
/// what never appears in logs (ID numbers, names, tokens).
static CAPTURED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, fmt};
    // Shown with a failing test's output: RUST_LOG (default warn).
    let shown = fmt::layer()
        .with_test_writer()
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()));
    let captured = fmt::layer().with_ansi(false).with_writer(|| Capture).with_filter(EnvFilter::new("debug"));
    let _ = tracing_subscriber::registry().with(shown).with(captured).try_init();
}

/// All captured server logs so far.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    /// `(point code, enrollment code)` of the demo terminals.
    pub enrollment: Vec<(String, String)>,
    pub data_dir: tempfile::TempDir,
    /// The configuration it was started with (same data dir and database on `restart`).
    pub config: Config,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn pg_base_url() -> String {
    std::env::var("BANGBAN_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn on_postgres() -> bool {
    std::env::var("BANGBAN_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// A fresh PostgreSQL schema for one test (whatever `BANGBAN_TEST_DB` says: cluster mode
/// needs PostgreSQL).
pub async fn fresh_pg_url() -> String {
    use sqlx::Executor;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_base_url())
        .await
        .expect("PostgreSQL at BANGBAN_TEST_PG_URL must be reachable");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.expect("create schema");
    format!("{}?options=-c%20search_path%3D{schema}", pg_base_url())
}

/// A database URL for one test: a fresh SQLite file, or a fresh PostgreSQL schema.
pub async fn test_database_url(data_dir: &std::path::Path) -> String {
    if on_postgres() {
        fresh_pg_url().await
    } else {
        signaling_server::config::default_database_url(data_dir)
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        init_logs();
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_data_dir(data_dir.path());
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.database_url = test_database_url(data_dir.path()).await;
        config.demo = true;
        tweak(&mut config);
        Self::start(config, data_dir).await
    }

    /// Starts a server with exactly this configuration (e.g. on a restored data dir), owning
    /// `data_dir` (deleted when the app is dropped).
    pub async fn start(config: Config, data_dir: tempfile::TempDir) -> Self {
        let app = Application::build(config.clone()).await.expect("server starts");
        let addr = app.local_addr();
        let state = app.state().clone();
        let enrollment = app.demo_enrollment.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            client: reqwest::Client::new(),
            state,
            enrollment,
            data_dir,
            config,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request; returns status and JSON body (Null when empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn login_full(&self, username: &str) -> Value {
        let (status, body) = self
            .post("/api/v1/auth/login", None, json!({ "username": username, "password": "bangban-demo" }))
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body
    }

    /// Logs in a demo account and returns its access token.
    pub async fn login(&self, username: &str) -> String {
        self.login_full(username).await["access_token"].as_str().expect("access token").to_owned()
    }

    /// Enrolls the demo terminal of the first point; returns (credential, device token).
    pub async fn enroll_terminal(&self, index: usize) -> (String, String) {
        let code = &self.enrollment[index].1;
        let (status, body) = self.post("/api/v1/terminals/enroll", None, json!({ "code": code })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let credential = body["credential"].as_str().expect("credential").to_owned();
        let (status, body) =
            self.post("/api/v1/terminals/token", None, json!({ "credential": credential })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (credential, body["access_token"].as_str().expect("token").to_owned())
    }

    /// Audit entries with this action, newest first.
    pub async fn audit(&self, action: &str) -> Vec<Value> {
        let admin = self.login("admin").await;
        let (status, body) =
            self.get(&format!("/api/v1/audit?action={action}&limit=500"), Some(&admin)).await;
        assert_eq!(status, StatusCode::OK);
        body["entries"].as_array().cloned().unwrap_or_default()
    }

    /// First point's ID.
    pub async fn first_point(&self, token: &str) -> Value {
        let (_, points) = self.get("/api/v1/points", Some(token)).await;
        points[0].clone()
    }

    /// Stops the server gracefully and starts a new one on the same data dir and database
    /// (on a new port), as after a crash-free restart.
    pub async fn restart(mut self) -> Self {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task").expect("server ran");
        }
        let config = self.config.clone();
        let data_dir = tempfile::TempDir::new().expect("placeholder");
        let data_dir = std::mem::replace(&mut self.data_dir, data_dir);
        Self::start(config, data_dir).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task").expect("server ran");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
