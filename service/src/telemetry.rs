//! Tracing setup: human-readable lines on stderr, filtered by `RUST_LOG`
//! (default: `info` for scribe, `warn` for its dependencies).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str = "warn,scribe=info,scribe_actors=info,tower_http=info";

/// Installs the global subscriber. Calling it twice is harmless (the second
/// call keeps the first subscriber), which lets tests call it freely.
pub fn init() {
    init_with_default(DEFAULT_FILTER);
}

/// Like [`init`], with another filter when `RUST_LOG` is not set.
pub fn init_with_default(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
