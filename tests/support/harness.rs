//! Test harness: a fresh database per test on each backend, and `spawn_app`
//! (the real `Application` on port 0) with typed request helpers. Shared by
//! the integration and chaos suites.
#![allow(dead_code)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::time::Duration;

use futures::FutureExt;
use reqwest::{Response, StatusCode};
use scribe::config::Settings;
use scribe::startup::Application;
use scribe::store::{PoolSize, Store};
use scribe_sim::llm::SimLlm;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const POSTGRES_ENV: &str = "SCRIBE_TEST_POSTGRES_URL";
pub const API_TOKEN: &str = "test-api-token-0123456789abcdef0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL too when `SCRIBE_TEST_POSTGRES_URL` is set.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    if std::env::var_os(POSTGRES_ENV).is_some() {
        all.push(Backend::Postgres);
    }
    all
}

/// A database that exists for one test: a file in a temporary folder, or a
/// PostgreSQL database created on the server named by `SCRIBE_TEST_POSTGRES_URL`.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(PgConnectOptions, String)>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("scribe.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var(POSTGRES_ENV).expect("postgres url");
                let admin = PgConnectOptions::from_str(&admin_url).expect("valid postgres url");
                let name = format!("scribe_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = admin.connect().await.expect("postgres answers");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.expect("close admin connection");
                let mut url = url::Url::parse(&admin_url).expect("postgres url parses");
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    _dir: None,
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    /// A migrated store on the database at `url`.
    pub async fn store_at(url: &str) -> Store {
        let store = Store::connect(url, PoolSize(4)).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    pub async fn destroy(self) {
        if let Some((admin, name)) = &self.postgres {
            let mut conn = admin.connect().await.expect("postgres answers");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .expect("drop test database");
            conn.close().await.expect("close admin connection");
        }
    }
}

/// Runs `test` once per backend, each time on a fresh database that is
/// removed afterwards, also when the test panics.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Backend, String) -> Fut,
    Fut: Future<Output = ()>,
{
    init_test_log();
    for backend in backends() {
        let db = TestDb::create(backend).await;
        let outcome = AssertUnwindSafe(test(backend, db.url.clone()))
            .catch_unwind()
            .await;
        db.destroy().await;
        if let Err(panic) = outcome {
            eprintln!("test failed on {backend:?}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// Tracing output only when `TEST_LOG` is set.
pub fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        // Tests export no traces: the guard has nothing to flush.
        std::mem::forget(scribe::telemetry::init());
    }
}

/// The real application, serving on a free port until stopped.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub calls: scribe_actors::supervisor::handle::Calls,
    /// The simulated LLM the app's analyses talk to.
    pub llm: SimLlm,
    /// What `/readyz` and `/metrics` serve from (its database checks).
    pub probe: std::sync::Arc<scribe::http::health::Probe>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app(database_url: &str) -> TestApp {
    spawn_app_with(database_url, |_| {}).await
}

pub const STREAM_SECRET: &str = "test-stream-secret";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// Settings for live calls against `realtime_url`: webhook secret, admin
/// token and chaos on, short grace and reconnect delays.
pub fn live_settings(settings: &mut Settings, realtime_url: &str) {
    settings.realtime_url = realtime_url.to_owned();
    settings.simulated_peer = true;
    settings.stream_api_secret = Some(STREAM_SECRET.into());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    settings.chaos = true;
    settings.call.finalize_grace = Duration::from_millis(1500);
    settings.call.reconnect_min = Duration::from_millis(10);
    settings.call.reconnect_max = Duration::from_millis(200);
}

/// The real application with a simulated LLM of its own for analyses
/// (`configure` may point elsewhere).
pub async fn spawn_app_with(database_url: &str, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::for_database(database_url, API_TOKEN);
    let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::ZERO)
        .await
        .expect("sim llm starts");
    settings.openai_base_url = llm.base_url();
    settings.analysis_policy.min_delay = Duration::from_millis(10);
    settings.analysis_policy.max_delay = Duration::from_millis(100);
    configure(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let address = format!("http://{}", app.local_addr());
    let store = app.store().clone();
    let calls = app.calls().clone();
    let probe = app.probe().clone();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
        store,
        calls,
        llm,
        probe,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_authed(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    /// The meeting's page link as the API gives it (path and query: the
    /// id and its key).
    pub async fn page_url(&self, meeting: &str) -> String {
        let record = expect_json(
            self.get_authed(&format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        let url = record["page_url"].as_str().expect("a page link");
        url.strip_prefix(&self.address)
            .expect("the link is on this server")
            .to_owned()
    }

    /// The key of the meeting's page link.
    pub async fn page_key(&self, meeting: &str) -> String {
        let url = self.page_url(meeting).await;
        url.split_once("?key=")
            .map(|(_, key)| key.to_owned())
            .expect("the link carries its key")
    }

    /// The meeting's page, opened by its link.
    pub async fn page(&self, meeting: &str) -> Response {
        let url = self.page_url(meeting).await;
        self.get(&url).await
    }

    /// The live meeting actor of `meeting`, as `/admin/actors` shows it.
    pub async fn actor(&self, meeting: &str) -> Option<Value> {
        admin_actor(&self.client, &self.address, meeting).await
    }

    /// A POST with the admin token (the chaos endpoints).
    pub async fn admin_post(&self, path: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(API_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates an agent and returns its JSON; panics unless the answer is 201.
    pub async fn create_agent(&self, body: Value) -> Value {
        let response = self.post_json("/api/agents", &body).await;
        expect_json(response, StatusCode::CREATED).await
    }

    pub async fn create_meeting(&self, agent_id: &str, user_id: &str) -> Value {
        let body = json!({ "name": "Intro call", "agent_id": agent_id, "user_id": user_id });
        let response = self.post_json("/api/meetings", &body).await;
        expect_json(response, StatusCode::CREATED).await
    }

    /// Stops accepting, waits for the server task, and returns its result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let server = self.server.take().expect("server handle");
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("server stops within 30 s")
            .expect("server task did not panic")
    }
}

/// The live meeting actor of `meeting` at the scribe serving `address`, as
/// `/admin/actors` shows it.
pub async fn admin_actor(client: &reqwest::Client, address: &str, meeting: &str) -> Option<Value> {
    let response = client
        .get(format!("{address}/admin/actors"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request sent");
    let list = expect_json(response, StatusCode::OK).await;
    list["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .find(|a| a["meeting_id"] == meeting && a["kind"] == "meeting")
        .cloned()
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts an error answer: its status and that `error` contains `needle`.
pub async fn expect_error(response: Response, status: StatusCode, needle: &str) -> String {
    let body = expect_json(response, status).await;
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` in {body}"));
    assert!(
        message.contains(needle),
        "error `{message}` does not mention `{needle}`"
    );
    message.to_owned()
}
