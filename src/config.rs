//! Command line and environment: `scribe [serve]`, `scribe demo`,
//! `scribe migrate`, and the resolved [`Settings`] that `serve` builds the
//! application from. Every flag has an environment fallback; secrets are
//! read into [`SecretString`] so that `Debug` and logs never show them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::analysis::llm::RetryPolicy;
use scribe_actors::domain::VoiceApi;
use scribe_actors::meeting::deps::CallConfig;
use scribe_actors::supervisor::budget::RestartBudget;
use scribe_actors::supervisor::leases::LeaseConfig;
use scribe_actors::writer::WriterConfig;
use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://scribe.db";
pub const DEFAULT_REALTIME_URL: &str = "wss://api.openai.com/v1/realtime?model=gpt-realtime";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_ANALYSIS_MODEL: &str = "gpt-4o";
pub const DEFAULT_REALTIME_MODEL: &str = "gpt-realtime";
pub const DEFAULT_VOICE: &str = "marin";

/// scribe: an actor-based realtime session supervisor for AI voice calls.
///
/// With no subcommand, `scribe` serves (same as `scribe serve`).
#[derive(Debug, Parser)]
#[command(name = "scribe", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service and the call supervisor (the default).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Replace the page-capability key kept in the database (when
    /// SCRIBE_PAGE_SECRET is not set): every meeting page link issued so
    /// far stops working once the instances restart.
    RotatePageSecret(DatabaseArgs),
    /// Run the whole flow offline: a fresh SQLite file, the simulated
    /// realtime peer and LLM, N concurrent calls through the real HTTP
    /// server, webhooks and actors; then a report.
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Concurrent calls.
    #[arg(long, default_value_t = 10)]
    pub calls: usize,
    /// Exchanges per call.
    #[arg(long, default_value_t = 4)]
    pub turns: usize,
    /// Time scale of the simulated conversations: 1 is real time (a turn
    /// every few seconds), 0 as fast as possible.
    #[arg(long, default_value_t = 0.1)]
    pub pace: f64,
    /// The call path to run the calls over: Stream's webhooks with a
    /// session scribe owns, a SIP call OpenAI carries (its signed
    /// `realtime.call.incoming` webhook), a WebRTC call OpenAI carries (the
    /// demo's own WebRTC client as the caller), or each in turn.
    #[arg(long, value_enum, default_value_t = DemoPath::All)]
    pub path: DemoPath,
    /// After the report, keep serving the demo's pages (and its API) until
    /// Ctrl-C, so the printed links open; the demo database is removed
    /// then. On by default when stdout is a terminal; `--serve=false` exits
    /// at once.
    #[arg(
        long,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub serve: Option<bool>,
}

/// `--voice-api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VoiceApiArg {
    Realtime,
    Live,
}

impl From<VoiceApiArg> for VoiceApi {
    fn from(arg: VoiceApiArg) -> Self {
        match arg {
            VoiceApiArg::Realtime => VoiceApi::Realtime,
            VoiceApiArg::Live => VoiceApi::Live,
        }
    }
}

/// Which call path `scribe demo` exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoPath {
    Stream,
    Sip,
    Webrtc,
    All,
}

impl DemoPath {
    /// The paths to run, in order.
    pub fn each(self) -> Vec<DemoPath> {
        match self {
            DemoPath::All => vec![DemoPath::Stream, DemoPath::Sip, DemoPath::Webrtc],
            one => vec![one],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DemoPath::Stream => "stream",
            DemoPath::Sip => "sip",
            DemoPath::Webrtc => "webrtc",
            DemoPath::All => "all",
        }
    }
}

impl Cli {
    /// The command to run, `serve` when none was given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database to use: `sqlite://path.db` (created when missing) or
    /// `postgres://user@host/db`. Defaults to `scribe.db` in the working
    /// directory.
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, hide_default_value = false)]
    pub database_url: SecretString,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on (port 0 picks a free port).
    #[arg(long, env = "SCRIBE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// WebSocket URL of the realtime service each call's agent connects to.
    #[arg(long, env = "SCRIBE_REALTIME_URL", default_value = DEFAULT_REALTIME_URL)]
    pub realtime_url: String,

    /// OpenAI API key, used for the realtime socket and for analysis.
    /// Prefer the environment variable: flags show up in process listings.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<SecretString>,

    /// Base URL of the OpenAI-compatible API used for post-call analysis
    /// (`/v1` included).
    #[arg(long, env = "OPENAI_BASE_URL", default_value = DEFAULT_OPENAI_BASE_URL)]
    pub openai_base_url: String,

    /// The OpenAI voice API scribe opens, creates and accepts calls with:
    /// `realtime` (OpenAI Realtime) or `live` (GPT-Live).
    #[arg(long, env = "SCRIBE_VOICE_API", value_enum, default_value_t = VoiceApiArg::Realtime)]
    pub voice_api: VoiceApiArg,

    /// The voice model of the calls scribe opens, creates and accepts.
    /// Default: `gpt-realtime` for Realtime, `gpt-live-1.1` for GPT-Live.
    #[arg(long, env = "SCRIBE_REALTIME_MODEL")]
    pub realtime_model: Option<String>,

    /// The voice the agent speaks with.
    #[arg(long, env = "SCRIBE_VOICE", default_value = DEFAULT_VOICE)]
    pub voice: String,

    /// Endpoint secret of OpenAI's webhooks (`whsec_...`): verifies
    /// `POST /api/openai/webhook` (incoming SIP calls).
    #[arg(long, env = "OPENAI_WEBHOOK_SECRET", hide_env_values = true)]
    pub openai_webhook_secret: Option<SecretString>,

    /// Chat-completions model that writes summaries and blueprint progress.
    #[arg(long, env = "SCRIBE_ANALYSIS_MODEL", default_value = DEFAULT_ANALYSIS_MODEL)]
    pub analysis_model: String,

    /// Stream API key (sent by Stream as `X-Api-Key`, used for the agent
    /// endpoint).
    #[arg(long, env = "STREAM_API_KEY", hide_env_values = true)]
    pub stream_api_key: Option<SecretString>,

    /// Stream API secret: verifies webhook signatures and signs agent JWTs.
    #[arg(long, env = "STREAM_API_SECRET", hide_env_values = true)]
    pub stream_api_secret: Option<SecretString>,

    /// Bearer token required for API writes and listings (at least 32
    /// characters). When unset, a random token is generated at startup and
    /// printed once.
    #[arg(long, env = "SCRIBE_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretString>,

    /// Bearer token for `/admin`. When unset, the admin endpoints answer 401.
    /// At least 32 characters.
    #[arg(long, env = "SCRIBE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,

    /// Key of the meeting pages' capabilities (at least 32 characters).
    /// When unset, a random key is generated once and kept in the database,
    /// so every instance agrees. Changing it revokes every capability.
    #[arg(long, env = "SCRIBE_PAGE_SECRET", hide_env_values = true)]
    pub page_secret: Option<SecretString>,

    /// Use the built-in simulated realtime peer and analyzer instead of
    /// OpenAI: the whole flow runs offline.
    #[arg(long, env = "SCRIBE_SIMULATE", value_parser = clap::builder::BoolishValueParser::new())]
    pub simulate: bool,

    /// Tell the realtime endpoint which meeting each session is for
    /// (`x-scribe-meeting-id`): only for scribe's own simulated peer (load
    /// tests, chaos drills). Never set it against a real provider.
    #[arg(long, env = "SCRIBE_SIMULATED_PEER", hide = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub simulated_peer: bool,

    /// Enable the admin endpoint that kills actors abruptly (chaos drills).
    /// Never set this in production.
    #[arg(long, env = "SCRIBE_CHAOS", value_parser = clap::builder::BoolishValueParser::new())]
    pub chaos: bool,

    /// At call end, how long to wait for user transcriptions still
    /// outstanding before marking them `transcription_failed`.
    #[arg(long, env = "SCRIBE_FINALIZE_GRACE_MS", default_value_t = 3000)]
    pub finalize_grace_ms: u64,

    /// Transcript lines per database batch, at most.
    #[arg(long, env = "SCRIBE_BATCH_MAX_LINES", default_value_t = 500)]
    pub batch_max_lines: usize,

    /// How long a transcript batch may wait for more lines before it is
    /// written.
    #[arg(long, env = "SCRIBE_BATCH_MAX_DELAY_MS", default_value_t = 20)]
    pub batch_max_delay_ms: u64,

    /// Analyses running at once, at most; the rest wait their turn.
    #[arg(long, env = "SCRIBE_ANALYSIS_CONCURRENCY", default_value_t = 8)]
    pub analysis_concurrency: usize,

    /// Database connections this instance opens at most. Plan PostgreSQL's
    /// `max_connections` for every instance's pool.
    #[arg(long, env = "SCRIBE_DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: u32,

    /// Attempts per analysis (LLM request plus validation of its answer).
    #[arg(long, env = "SCRIBE_ANALYSIS_ATTEMPTS", default_value_t = 3)]
    pub analysis_attempts: u32,

    /// Connections open at once, at most; past it new connections wait in
    /// the accept queue.
    #[arg(long, env = "SCRIBE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Requests handled at once, at most (the probes aside); past it 503
    /// with `Retry-After`. An open event stream does not count.
    #[arg(long, env = "SCRIBE_MAX_REQUESTS", default_value_t = 512)]
    pub max_requests: usize,

    /// Event streams open at once on this instance, at most; past it 503
    /// with `Retry-After`.
    #[arg(long, env = "SCRIBE_MAX_STREAMS", default_value_t = 5_000)]
    pub max_streams: usize,

    /// Event streams open at once on one meeting, at most.
    #[arg(long, env = "SCRIBE_MAX_STREAMS_PER_MEETING", default_value_t = 20)]
    pub max_streams_per_meeting: usize,

    /// This instance's name in call leases, when several instances share a
    /// database. Defaults to `<hostname>:<port>`, so a restarted instance
    /// takes its own calls back at once.
    #[arg(long, env = "SCRIBE_INSTANCE_ID")]
    pub instance_id: Option<String>,
}

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
    pub http: HttpSettings,
}

/// What the HTTP server bounds (the header and body deadlines, 10 s each,
/// are fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub max_connections: usize,
    pub max_requests: usize,
    pub max_streams: usize,
    pub max_streams_per_meeting: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_requests: 512,
            max_streams: 5_000,
            max_streams_per_meeting: 20,
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
    pub fn from_args(args: ServeArgs) -> Result<(Self, TokenSource), WeakSecret> {
        let non_empty = |s: Option<SecretString>| s.filter(|s| !s.expose_secret().is_empty());
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
                ..CallConfig::default()
            },
            writer: WriterConfig {
                max_batch_lines: args.batch_max_lines.max(1),
                max_delay: Duration::from_millis(args.batch_max_delay_ms),
                ..WriterConfig::default()
            },
            restart_budget: RestartBudget::default(),
            lease: LeaseConfig::new(
                args.instance_id
                    .unwrap_or_else(|| default_instance_id(args.listen)),
            ),
            analysis_concurrency: args.analysis_concurrency.max(1),
            analysis_policy: RetryPolicy {
                attempts: args.analysis_attempts.max(1),
                ..RetryPolicy::default()
            },
            http: HttpSettings {
                max_connections: args.max_connections.max(1),
                max_requests: args.max_requests.max(1),
                max_streams: args.max_streams.max(1),
                max_streams_per_meeting: args.max_streams_per_meeting.max(1),
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
            http: HttpSettings::default(),
        }
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

/// The shortest API token, admin token or page secret `serve` accepts: a
/// short token can be guessed, and the API token unlocks every listing.
pub const MIN_SECRET_CHARS: usize = 32;

/// A configured secret too short to be safe.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{name} is {len} characters long; it must be at least {MIN_SECRET_CHARS} \
     (for example: `openssl rand -hex 32`)"
)]
pub struct WeakSecret {
    pub name: &'static str,
    pub len: usize,
}

fn strong(name: &'static str, secret: SecretString) -> Result<SecretString, WeakSecret> {
    let len = secret.expose_secret().trim().chars().count();
    if len < MIN_SECRET_CHARS {
        Err(WeakSecret { name, len })
    } else {
        Ok(secret)
    }
}

/// A fresh random API token: 32 bytes, hex encoded.
pub fn generate_token() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::try_parse_from(["scribe"]).expect("parses");
        let Command::Serve(args) = cli.into_command() else {
            panic!("expected serve");
        };
        assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(args.analysis_model, "gpt-4o");
    }

    #[test]
    fn flags_work_with_and_without_the_subcommand() {
        for argv in [
            vec!["scribe", "--listen", "0.0.0.0:9000", "--simulate"],
            vec!["scribe", "serve", "--listen", "0.0.0.0:9000", "--simulate"],
        ] {
            let Command::Serve(args) = Cli::try_parse_from(argv).expect("parses").into_command()
            else {
                panic!("expected serve");
            };
            assert_eq!(args.listen.port(), 9000);
            assert!(args.simulate);
        }
        let cli = Cli::try_parse_from(["scribe", "migrate", "--database-url", "sqlite://x.db"])
            .expect("parses");
        assert!(matches!(cli.into_command(), Command::Migrate(_)));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let cli = Cli::try_parse_from([
            "scribe",
            "--openai-api-key",
            "sk-marker-openai",
            "--stream-api-secret",
            "marker-stream-secret",
            "--api-token",
            "marker-api-token-0123456789abcdef0123",
            "--admin-token",
            "marker-admin-token-0123456789abcdef012",
            "--page-secret",
            "marker-page-secret-0123456789abcdef012",
            "--openai-webhook-secret",
            "whsec_marker-webhook",
            "--database-url",
            "postgres://u:marker-db-password@h/db",
        ])
        .expect("parses");
        let (settings, source) = Settings::from_args(cli.serve).expect("strong secrets");
        assert_eq!(source, TokenSource::Configured);
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("marker"),
            "secret leaked into Debug: {debug}"
        );
    }

    #[test]
    fn generates_a_distinct_token_when_none_is_set() {
        let cli = Cli::try_parse_from(["scribe", "--api-token", ""]).expect("parses");
        let (settings, source) = Settings::from_args(cli.serve).expect("no secret set");
        assert_eq!(source, TokenSource::Generated);
        assert_eq!(settings.api_token.expose_secret().len(), 64);
        assert_ne!(
            generate_token().expose_secret(),
            settings.api_token.expose_secret()
        );
    }

    #[test]
    fn short_tokens_and_page_secrets_are_refused_with_their_name() {
        let strong = "0123456789abcdef0123456789abcdef";
        for (flag, name) in [
            ("--api-token", "SCRIBE_API_TOKEN"),
            ("--admin-token", "SCRIBE_ADMIN_TOKEN"),
            ("--page-secret", "SCRIBE_PAGE_SECRET"),
        ] {
            let settings = |value: &str| {
                let mut argv = vec!["scribe", flag, value];
                if flag != "--api-token" {
                    argv.extend(["--api-token", strong]);
                }
                Settings::from_args(Cli::try_parse_from(argv).expect("parses").serve)
            };
            let error = settings("dev-token").expect_err("a 9-character secret");
            assert_eq!(error, WeakSecret { name, len: 9 });
            assert!(error.to_string().contains("at least 32"), "{error}");
            assert_eq!(settings(&strong[1..]).expect_err("31 characters").len, 31);
            assert!(settings(strong).is_ok(), "32 characters pass");
        }
    }
}
