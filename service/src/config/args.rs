//! The command line: `scribe [serve]`, `scribe demo`, `scribe migrate`,
//! `scribe rotate-page-secret`, with an environment fallback for every flag.

use crate::telemetry::LogFormat;
use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use scribe_actors::domain::VoiceApi;
use secrecy::SecretString;

use super::{
    DEFAULT_ANALYSIS_MODEL, DEFAULT_DATABASE_URL, DEFAULT_OPENAI_BASE_URL, DEFAULT_REALTIME_URL,
    DEFAULT_TRANSCRIPTION_MODEL, DEFAULT_VOICE,
};

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

    /// Base URL of OpenAI's API (`/v1` included): post-call analysis, and
    /// the calls scribe creates, accepts and attaches to (their REST calls,
    /// sidebands and GPT-Live sessions).
    #[arg(long, env = "OPENAI_BASE_URL", default_value = DEFAULT_OPENAI_BASE_URL)]
    pub openai_base_url: String,

    /// The OpenAI voice API scribe opens, creates and accepts calls with:
    /// `realtime` (OpenAI Realtime) or `live` (GPT-Live).
    #[arg(long, env = "SCRIBE_VOICE_API", value_enum, default_value_t = VoiceApiArg::Realtime)]
    pub voice_api: VoiceApiArg,

    /// The voice model of the calls scribe creates and accepts (an owned
    /// Realtime session's model is the one in `--realtime-url`).
    /// Default: `gpt-realtime-2.1` for Realtime, `gpt-live-1.1` for GPT-Live.
    #[arg(long, env = "SCRIBE_REALTIME_MODEL")]
    pub realtime_model: Option<String>,

    /// The model that transcribes the caller in Realtime sessions
    /// (GPT-Live transcribes both sides itself).
    #[arg(long, env = "SCRIBE_TRANSCRIPTION_MODEL", default_value = DEFAULT_TRANSCRIPTION_MODEL)]
    pub transcription_model: String,

    /// The voice the agent speaks with.
    #[arg(long, env = "SCRIBE_VOICE", default_value = DEFAULT_VOICE)]
    pub voice: String,

    /// Endpoint secret of OpenAI's webhooks (`whsec_...`): verifies
    /// `POST /api/openai/webhook` (incoming SIP calls); without it that
    /// endpoint answers 503.
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
    /// characters: a shorter one stops startup with an error naming it).
    /// When unset, a random token is generated at startup and printed once.
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

    /// Transcript lines per database batch, at most (on PostgreSQL a full
    /// batch is written as two transactions at once).
    #[arg(long, env = "SCRIBE_BATCH_MAX_LINES", default_value_t = 2000)]
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

    /// Attempts per analysis (LLM request plus validation of its answer),
    /// with backoff and jitter between them, `Retry-After` honoured, 60 s
    /// per attempt.
    #[arg(long, env = "SCRIBE_ANALYSIS_ATTEMPTS", default_value_t = 3)]
    pub analysis_attempts: u32,

    /// Running notes during a call: updated after this many new lines
    /// (0: not by count). With `--notes-every-secs` 0 too, notes are off.
    #[arg(long, env = "SCRIBE_NOTES_EVERY_LINES", default_value_t = 0)]
    pub notes_every_lines: usize,

    /// Running notes during a call: updated this many seconds after the
    /// last update when there are new lines (0: not by time). Both 0 (the
    /// default): notes off.
    #[arg(long, env = "SCRIBE_NOTES_EVERY_SECS", default_value_t = 0)]
    pub notes_every_secs: u64,

    /// Days a finished meeting is kept after its call ended; older ones
    /// are deleted (transcript, log, notes, results) by a background sweep
    /// every 10 minutes. 1 to 36,500. Unset: kept until deleted over the
    /// API.
    #[arg(long, env = "SCRIBE_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,

    /// Connections open at once, at most; past it new connections wait in
    /// the accept queue.
    #[arg(long, env = "SCRIBE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Requests handled at once, at most (the probes aside); past it 503
    /// with `Retry-After: 1`. An open event stream does not count.
    #[arg(long, env = "SCRIBE_MAX_REQUESTS", default_value_t = 512)]
    pub max_requests: usize,

    /// Event streams open at once on this instance, at most; past it 503
    /// with `Retry-After: 5`.
    #[arg(long, env = "SCRIBE_MAX_STREAMS", default_value_t = 5_000)]
    pub max_streams: usize,

    /// Event streams open at once on one meeting, at most; past it 503
    /// with `Retry-After: 5`.
    #[arg(long, env = "SCRIBE_MAX_STREAMS_PER_MEETING", default_value_t = 20)]
    pub max_streams_per_meeting: usize,

    /// Connections open at once from one client address, at most; past it
    /// a new connection from that address is closed at once. Loopback and
    /// private addresses (where a load balancer speaks from) are not
    /// capped unless `SCRIBE_CAP_PRIVATE_ADDRESSES` is set.
    #[arg(
        long,
        env = "SCRIBE_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    pub max_connections_per_address: usize,

    /// Event streams open at once from one client address, at most (the
    /// same addresses as for connections); past it 503 with
    /// `Retry-After: 5`.
    #[arg(long, env = "SCRIBE_MAX_STREAMS_PER_ADDRESS", default_value_t = 64)]
    pub max_streams_per_address: usize,

    /// Cap loopback and private addresses too (scribe reached directly on
    /// a private network, with no load balancer in front).
    #[arg(long, env = "SCRIBE_CAP_PRIVATE_ADDRESSES", value_parser = clap::builder::BoolishValueParser::new())]
    pub cap_private_addresses: bool,

    /// Seconds an answer may wait to be written (its client reads nothing)
    /// before the connection is closed.
    #[arg(long, env = "SCRIBE_WRITE_STALL_SECS", default_value_t = 30)]
    pub write_stall_secs: u64,

    /// Seconds an event stream stays open at most; the client reconnects
    /// with `Last-Event-ID` and misses nothing.
    #[arg(long, env = "SCRIBE_STREAM_LIFETIME_SECS", default_value_t = 1800)]
    pub stream_lifetime_secs: u64,

    /// Meetings the API token may create per minute on this instance; past
    /// it 429 with `Retry-After`.
    #[arg(long, env = "SCRIBE_MEETINGS_PER_MINUTE", default_value_t = 600)]
    pub meetings_per_minute: u32,

    /// Agents the API token may create per minute on this instance; past
    /// it 429 with `Retry-After`.
    #[arg(long, env = "SCRIBE_AGENTS_PER_MINUTE", default_value_t = 600)]
    pub agents_per_minute: u32,

    /// This instance's name in call leases, when several instances share a
    /// database. Defaults to `<hostname>:<port>`, so a restarted instance
    /// takes its own calls back at once.
    #[arg(long, env = "SCRIBE_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// How long this instance's heartbeat lasts unrenewed, in ms: a dead
    /// instance's calls are taken over this long after its last heartbeat
    /// (and within a second more: every instance looks each second).
    /// Shorter takes over sooner; longer forgives a slower database or a
    /// paused process before its live calls are taken from it.
    #[arg(long, env = "SCRIBE_LEASE_MS", default_value_t = 30_000)]
    pub lease_ms: u64,

    /// How often this instance renews its heartbeat (one row, however
    /// many calls it holds; and reads ends recorded for its calls, should
    /// a notification have been missed), in ms; at most a third of the
    /// lease, so two renewals can fail before it lapses. Shorter costs one
    /// database round trip more per interval.
    #[arg(long, env = "SCRIBE_LEASE_RENEW_MS", default_value_t = 10_000)]
    pub lease_renew_ms: u64,

    /// How log lines on stderr are written: `text` (human-readable) or
    /// `json` (one object a line; a line about a call carries `meeting_id`,
    /// `trace_id` and its `call_path`). `RUST_LOG` filters either.
    /// Traces are exported over OTLP when OpenTelemetry's
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see the book's "Traces and
    /// logs").
    #[arg(long, env = "SCRIBE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
