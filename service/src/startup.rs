//! Building and running the service: [`Application::build`] connects and
//! migrates the database and binds the listener; [`Application::run_until_stopped`]
//! serves until the shutdown future resolves, then lets requests in flight
//! finish and closes the pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use scribe_actors::domain::{Transport, VoiceApi};
use scribe_actors::meeting::deps::CallConfig;
use scribe_actors::supervisor::handle::Calls;
use scribe_actors::tree::{ActorTree, Patience, TreeConfig, TreePorts};
use scribe_actors::writer::WriterConfig;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::analysis::analyzer::LlmAnalyzer;
use crate::analysis::llm::LlmClient;
use crate::config::Settings;
use crate::http::health::Probe;
use crate::http::serve::{ServeLimits, Stopping, serve};
use crate::http::streams::{StreamBounds, StreamLimits};
use crate::http::{AppState, router};
use crate::openai::rest::{CallsApi, SessionConfig};
use crate::realtime::RealtimeEndpoint;
use crate::service::CallService;
use crate::store::{Backend, PoolSize, Store, redact_url};

/// Transactions a full writer batch is split into on PostgreSQL
/// (`examples/ingest` measures one against two).
pub const WRITER_LANES: usize = 2;

pub struct Application {
    listener: TcpListener,
    serve_limits: ServeLimits,
    stop_streams: tokio::sync::watch::Sender<bool>,
    probe_task: JoinHandle<()>,
    /// The retention sweep, when `SCRIBE_RETENTION_DAYS` is set.
    retention_task: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
    state: AppState,
    tree: ActorTree,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Metrics are recorded from the first moment, scraped or not.
        if crate::metrics::handle().is_none() {
            tracing::warn!("another metrics recorder is installed: /metrics stays empty");
        }
        let url = settings.database_url.expose_secret();
        let store = Store::connect(url, PoolSize(settings.database_pool_size))
            .await
            .with_context(|| format!("opening database {}", redact_url(url)))?
            .starting_calls_on(settings.voice_api);
        store
            .migrate()
            .await
            .with_context(|| format!("migrating database {}", redact_url(url)))?;
        // The meeting pages' capabilities: keyed by their own secret, never
        // by the API token (a page's capability is public).
        let page_key: SecretString = match settings.page_secret.clone() {
            Some(secret) => secret,
            None => store
                .page_secret()
                .await
                .context("reading the page key from the database")?
                .into(),
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;

        // The endpoints come from the settings: the caller points them at
        // the simulators (`--simulate`, demo, tests) or at OpenAI.
        let analyzer = LlmAnalyzer::new(LlmClient::new(
            &settings.openai_base_url,
            settings.openai_api_key.as_ref(),
            &settings.analysis_model,
            settings.analysis_policy.clone(),
        ));
        let writer_config = WriterConfig {
            lanes: match store.backend() {
                Backend::Postgres => WRITER_LANES,
                Backend::Sqlite => 1,
            },
            ..settings.writer
        };
        let connector = RealtimeEndpoint::new(
            &settings.realtime_url,
            settings.openai_api_key.clone(),
            settings.stream_api_key.clone(),
            settings.stream_api_secret.clone(),
        )
        .correlated(settings.simulated_peer)
        .attaching_at(&settings.openai_base_url);
        // Stream's agent endpoint speaks Realtime only: GPT-Live sessions
        // are OpenAI's.
        let owned_transport = match settings.voice_api {
            VoiceApi::Live => Transport::OpenAi,
            VoiceApi::Realtime => connector.provider().transport(),
        };
        let openai_webhook_key = settings
            .openai_webhook_secret
            .as_ref()
            .map(|s| crate::openai::webhook::secret_key(s.expose_secret()))
            .transpose()
            .context("reading OPENAI_WEBHOOK_SECRET")?
            .map(Arc::new);
        let calls_api = settings
            .openai_api_key
            .clone()
            .map(|key| CallsApi::new(&settings.openai_base_url, key));
        let session = Arc::new(SessionConfig {
            model: settings.model().to_owned(),
            instructions: String::new(),
            voice: settings.voice.clone(),
            transcription: settings.call.transcription_model.clone(),
        });
        crate::openai::models::warn_of_retirements(&settings);
        // `/readyz` and `/metrics` read what this task finds, once a second.
        let probe = Arc::new(Probe::default());
        probe.check(&store).await;
        let probe_task = tokio::spawn(probe.clone().run(store.clone()));
        let (stop_streams, stopping) = Stopping::new();
        let shared = Arc::new(store.clone());
        let tree = ActorTree::start(
            TreePorts {
                sink: shared.clone(),
                calls: shared.clone(),
                leases: shared.clone(),
                analyses: shared.clone(),
                analyzer: Arc::new(analyzer),
                notes: Some(shared),
                connector: Arc::new(connector),
                control: calls_api
                    .clone()
                    .map(|api| Arc::new(api) as Arc<dyn scribe_actors::ports::CallControl>),
            },
            TreeConfig {
                call: CallConfig {
                    live_model: settings.model().to_owned(),
                    ..settings.call.clone()
                },
                writer: writer_config,
                budget: settings.restart_budget,
                lease: settings.lease.clone(),
                analysis_permits: settings.analysis_concurrency,
                notes: settings.notes,
            },
        )
        .await
        .context("starting the call supervisor")?;
        let calls = tree.calls.clone();

        // Calls that were live when the last process stopped are adopted
        // now, and analyses that had not finished resume at once.
        let recovered = tree
            .recover("adopted at startup: the call was active when the previous process stopped")
            .await;
        let page_base: Arc<str> = format!("http://{local_addr}").into();
        let page_key = Arc::new(page_key);
        tracing::info!(%local_addr, database = %redact_url(url), backend = ?store.backend(), adopted = recovered.adopted, resumed_analyses = recovered.analyses, "scribe ready");
        let service = CallService::new(
            store.clone(),
            calls.clone(),
            calls_api.clone(),
            page_base,
            page_key.clone(),
        );
        let retention_task = settings.retention.map(|retention| {
            tracing::info!(
                keep_days = retention.keep.as_secs() / 86_400,
                "retention on"
            );
            crate::retention::spawn(
                store.clone(),
                service.clone(),
                settings.lease.owner.clone(),
                retention,
            )
        });
        Ok(Self {
            retention_task,
            listener,
            serve_limits: ServeLimits {
                max_connections: settings.http.max_connections,
                max_connections_per_address: settings.http.max_connections_per_address,
                cap_private_addresses: settings.http.cap_private_addresses,
                write_stall: settings.http.write_stall,
                ..ServeLimits::default()
            },
            stop_streams,
            probe_task,
            local_addr,
            state: AppState {
                service,
                store,
                calls,
                api_token: Arc::new(settings.api_token),
                page_key,
                admin_token: settings.admin_token.map(Arc::new),
                stream_api_secret: settings.stream_api_secret.map(Arc::new),
                chaos: settings.chaos,
                owned_transport,
                calls_api,
                openai_webhook_key,
                session,
                creating: Arc::default(),
                limits: Arc::new(crate::http::limits::MeetingLimits::with_creation(
                    settings.http.meetings_per_minute,
                    settings.http.agents_per_minute,
                )),
                streams: StreamLimits::new(StreamBounds {
                    total: settings.http.max_streams,
                    per_meeting: settings.http.max_streams_per_meeting,
                    per_address: settings.http.max_streams_per_address,
                    cap_private: settings.http.cap_private_addresses,
                    lifetime: settings.http.stream_lifetime,
                }),
                probe: probe.clone(),
                stopping,
                max_requests: settings.http.max_requests,
            },
            tree,
        })
    }

    pub fn calls(&self) -> &Calls {
        &self.state.calls
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// What `/readyz` and `/metrics` serve from.
    pub fn probe(&self) -> &Arc<Probe> {
        &self.state.probe
    }

    /// Serves until `shutdown` resolves: then stops accepting, waits for the
    /// requests in flight, and closes the database pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let service = self.state.service.clone();
        let served = serve(
            self.listener,
            router(self.state),
            self.serve_limits,
            self.stop_streams,
            shutdown,
        )
        .await
        .context("serving HTTP");
        self.probe_task.abort();
        if let Some(task) = &self.retention_task {
            task.abort();
        }
        tracing::info!("http server stopped; finishing call ends, then stopping calls");
        service.settle(std::time::Duration::from_secs(10)).await;
        // Live calls stay `active` in the database: the next start adopts
        // them; another instance may take them over at once.
        self.tree.shutdown(Patience::default()).await;
        store.close().await;
        served
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received; shutting down"),
        () = terminate => tracing::info!("sigterm received; shutting down"),
    }
}
