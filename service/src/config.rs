//! Command line and environment (`args`), and the resolved [`Settings`]
//! that `serve` builds the application from (`settings`). Every flag has an
//! environment fallback; secrets are read into `SecretString` so that
//! `Debug` and logs never show them, and must be strong (`secrets`).

mod args;
mod secrets;
mod settings;
#[cfg(test)]
mod tests;

pub use args::{Cli, Command, DatabaseArgs, DemoArgs, DemoPath, ServeArgs, VoiceApiArg};
pub use secrets::{MIN_SECRET_CHARS, WeakSecret, generate_token};
pub use settings::{HttpSettings, Settings, SettingsError, TokenSource, notes_config};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://scribe.db";
// The default models are ones OpenAI's generated types (`openai` 3.57)
// list without an announced shutdown; `crate::openai::models` has the
// announced ones and warns at startup when one is configured.
pub const DEFAULT_REALTIME_URL: &str = "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_ANALYSIS_MODEL: &str = "gpt-6-luna";
pub const DEFAULT_REALTIME_MODEL: &str = "gpt-realtime-2.1";
pub const DEFAULT_TRANSCRIPTION_MODEL: &str =
    scribe_actors::voice::realtime::DEFAULT_TRANSCRIPTION_MODEL;
pub const DEFAULT_VOICE: &str = "marin";
