//! [`Settings`]: the `serve` arguments resolved into what the application
//! is built from.

use std::net::SocketAddr;
use std::time::Duration;

use scribe_actors::domain::VoiceApi;
use scribe_actors::meeting::deps::CallConfig;
use scribe_actors::notes::NotesConfig;
use scribe_actors::supervisor::budget::RestartBudget;
use scribe_actors::supervisor::leases::LeaseConfig;
use scribe_actors::writer::WriterConfig;
use secrecy::{ExposeSecret, SecretString};

use super::args::ServeArgs;
use super::secrets::{WeakSecret, generate_token, strong};

/// Settings that cannot start the service.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    WeakSecret(#[from] WeakSecret),
    #[error(
        "SCRIBE_LEASE_RENEW_MS ({renew_ms} ms) must be above 0 and at most a third of \
         SCRIBE_LEASE_MS ({lease_ms} ms): a lease renewed less often lapses under a live call"
    )]
    LeaseTiming { lease_ms: u64, renew_ms: u64 },
}
use super::{DEFAULT_ANALYSIS_MODEL, DEFAULT_OPENAI_BASE_URL, DEFAULT_REALTIME_URL, DEFAULT_VOICE};
use crate::analysis::llm::RetryPolicy;

/// Everything `serve` needs, resolved: the API token is always present.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: SecretString,
    pub database_pool_size: u32,
    pub realtime_url: String,
    pub openai_api_key: Option<SecretString>,
    pub openai_base_url: String,
    pub openai_webhook_secret: Option<SecretString>,
    pub voice_api: VoiceApi,
    /// `None`: the voice API's default model.
    pub realtime_model: Option<String>,
    pub voice: String,
    pub analysis_model: String,
    pub stream_api_key: Option<SecretString>,
    pub stream_api_secret: Option<SecretString>,
    pub api_token: SecretString,
    pub admin_token: Option<SecretString>,
    /// `None`: the key generated once and kept in the database.
    pub page_secret: Option<SecretString>,
    pub simulate: bool,
    /// The realtime endpoint is scribe's simulated peer: it may be told
    /// which meeting a session is for.
    pub simulated_peer: bool,
    pub chaos: bool,
    pub call: CallConfig,
    pub writer: WriterConfig,
    pub restart_budget: RestartBudget,
    pub lease: LeaseConfig,
    pub analysis_concurrency: usize,
    pub analysis_policy: RetryPolicy,
    /// Running notes during calls (off by default).
    pub notes: NotesConfig,
    /// How long finished meetings are kept (`None`: until deleted).
    pub retention: Option<crate::retention::Retention>,
    pub http: HttpSettings,
}

/// What the HTTP server bounds (the header and body deadlines, 10 s each,
/// are fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub cap_private_addresses: bool,
    pub write_stall: Duration,
    pub max_requests: usize,
    pub max_streams: usize,
    pub max_streams_per_meeting: usize,
    pub max_streams_per_address: usize,
    pub stream_lifetime: Duration,
    pub meetings_per_minute: u32,
    pub agents_per_minute: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_address: 256,
            cap_private_addresses: false,
            write_stall: Duration::from_secs(30),
            max_requests: 512,
            max_streams: 5_000,
            max_streams_per_meeting: 20,
            max_streams_per_address: 64,
            stream_lifetime: Duration::from_secs(1800),
            meetings_per_minute: 600,
            agents_per_minute: 600,
        }
    }
}

/// Where the API token came from: given, or generated for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Configured,
    Generated,
}

impl Settings {
    /// The voice model of the calls: the configured one, else the voice
    /// API's default.
    pub fn model(&self) -> &str {
        self.realtime_model
            .as_deref()
            .unwrap_or_else(|| self.voice_api.default_model())
    }

    /// Resolves `serve` arguments; generates an API token when none was set.
    /// Refuses a configured token or page secret shorter than
    /// [`MIN_SECRET_CHARS`].
    pub fn from_args(args: ServeArgs) -> Result<(Self, TokenSource), SettingsError> {
        if args.lease_renew_ms == 0 || args.lease_renew_ms.saturating_mul(3) > args.lease_ms {
            return Err(SettingsError::LeaseTiming {
                lease_ms: args.lease_ms,
                renew_ms: args.lease_renew_ms,
            });
        }
        // Every secret is trimmed where it is read (a trailing newline from
        // a file or `$(cat ...)` is not part of it), so the length check and
        // every comparison see the same value; a blank one is unset.
        let non_empty = |s: Option<SecretString>| {
            s.map(|s| SecretString::from(s.expose_secret().trim()))
                .filter(|s| !s.expose_secret().is_empty())
        };
        let (api_token, source) = match non_empty(args.api_token) {
            Some(token) => (strong("SCRIBE_API_TOKEN", token)?, TokenSource::Configured),
            None => (generate_token(), TokenSource::Generated),
        };
        let admin_token = non_empty(args.admin_token)
            .map(|t| strong("SCRIBE_ADMIN_TOKEN", t))
            .transpose()?;
        let page_secret = non_empty(args.page_secret)
            .map(|t| strong("SCRIBE_PAGE_SECRET", t))
            .transpose()?;
        let settings = Self {
            listen: args.listen,
            database_url: args.database.database_url,
            database_pool_size: args.database_pool_size.max(1),
            realtime_url: args.realtime_url,
            openai_api_key: non_empty(args.openai_api_key),
            openai_base_url: args.openai_base_url,
            openai_webhook_secret: non_empty(args.openai_webhook_secret),
            voice_api: args.voice_api.into(),
            realtime_model: args.realtime_model.filter(|m| !m.trim().is_empty()),
            voice: args.voice.clone(),
            analysis_model: args.analysis_model,
            stream_api_key: non_empty(args.stream_api_key),
            stream_api_secret: non_empty(args.stream_api_secret),
            api_token,
            admin_token,
            page_secret,
            simulate: args.simulate,
            simulated_peer: args.simulated_peer,
            chaos: args.chaos,
            call: CallConfig {
                finalize_grace: Duration::from_millis(args.finalize_grace_ms),
                voice: args.voice,
                transcription_model: args.transcription_model,
                ..CallConfig::default()
            },
            writer: WriterConfig {
                max_batch_lines: args.batch_max_lines.max(1),
                max_delay: Duration::from_millis(args.batch_max_delay_ms),
                ..WriterConfig::default()
            },
            restart_budget: RestartBudget::default(),
            lease: LeaseConfig {
                ttl: Duration::from_millis(args.lease_ms),
                renew_every: Duration::from_millis(args.lease_renew_ms),
                ..LeaseConfig::new(
                    args.instance_id
                        .unwrap_or_else(|| default_instance_id(args.listen)),
                )
            },
            analysis_concurrency: args.analysis_concurrency.max(1),
            analysis_policy: RetryPolicy {
                attempts: args.analysis_attempts.max(1),
                ..RetryPolicy::default()
            },
            notes: notes_config(args.notes_every_lines, args.notes_every_secs),
            retention: args.retention_days.map(crate::retention::Retention::days),
            http: HttpSettings {
                max_connections: args.max_connections.max(1),
                max_connections_per_address: args.max_connections_per_address.max(1),
                cap_private_addresses: args.cap_private_addresses,
                write_stall: Duration::from_secs(args.write_stall_secs.max(1)),
                max_requests: args.max_requests.max(1),
                max_streams: args.max_streams.max(1),
                max_streams_per_meeting: args.max_streams_per_meeting.max(1),
                max_streams_per_address: args.max_streams_per_address.max(1),
                stream_lifetime: Duration::from_secs(args.stream_lifetime_secs.max(1)),
                meetings_per_minute: args.meetings_per_minute.max(1),
                agents_per_minute: args.agents_per_minute.max(1),
            },
        };
        Ok((settings, source))
    }

    /// Settings for tests and embedding: every optional part off, the given
    /// database and API token, listening on a free loopback port. Reads no
    /// environment variables.
    pub fn for_database(database_url: &str, api_token: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            database_pool_size: 16,
            realtime_url: DEFAULT_REALTIME_URL.into(),
            openai_api_key: None,
            openai_base_url: DEFAULT_OPENAI_BASE_URL.into(),
            openai_webhook_secret: None,
            voice_api: VoiceApi::Realtime,
            realtime_model: None,
            voice: DEFAULT_VOICE.into(),
            analysis_model: DEFAULT_ANALYSIS_MODEL.into(),
            stream_api_key: None,
            stream_api_secret: None,
            api_token: api_token.into(),
            admin_token: None,
            page_secret: None,
            simulate: false,
            simulated_peer: false,
            chaos: false,
            call: CallConfig::default(),
            writer: WriterConfig::default(),
            restart_budget: RestartBudget::default(),
            lease: LeaseConfig::new(format!("test-{}", uuid::Uuid::new_v4())),
            analysis_concurrency: 8,
            analysis_policy: RetryPolicy::default(),
            notes: NotesConfig::OFF,
            retention: None,
            http: HttpSettings::default(),
        }
    }
}

/// Notes updated after `lines` new lines or `secs` seconds (either 0:
/// not that way; both: off), 16 updates at once, 400 lines each at most.
pub fn notes_config(lines: usize, secs: u64) -> NotesConfig {
    NotesConfig {
        every_lines: lines,
        every: Duration::from_secs(secs),
        max_at_once: 16,
        max_lines: 400,
    }
}

/// `<hostname>:<port>`, or a random name when the port is chosen by the OS.
fn default_instance_id(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    match (host, listen.port()) {
        (Some(host), port) if port != 0 => format!("{host}:{port}"),
        _ => format!("scribe-{}", uuid::Uuid::new_v4()),
    }
}
