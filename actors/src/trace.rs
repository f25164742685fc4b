//! The spans of a meeting's trace. Every span about one call (the request
//! that started or ended it, its sessions' opens and re-attaches, its
//! batches' commits, its finalize, its analysis and each model request) is
//! made here or with [`meeting_span!`](crate::meeting_span), and joins the
//! meeting's trace: the `scribe` crate installs a [`Join`] that, when
//! OpenTelemetry export is on, gives the span the meeting's trace (its id
//! is the meeting's id) as its parent. Without it the spans are plain
//! `tracing` spans: with OpenTelemetry off, the log lines inside them carry
//! the meeting and its call path, and nothing else is done.
//!
//! Two targets:
//! - [`CALL`] (`scribe::call`): spans a log line may sit in (the human and
//!   JSON logs show them); a few a call (a request, a session, a finalize).
//! - [`COMMITS`] (`otel::scribe`): one span per call per committed batch,
//!   made only when a subscriber wants it (OpenTelemetry on), so the
//!   writer pays nothing for them otherwise.

use std::sync::OnceLock;

use crate::ids::MeetingId;
use crate::path::{CallPath, Carrier};

/// The target of the spans about a call that logs show too.
pub const CALL: &str = "scribe::call";
/// The target of spans only an OpenTelemetry exporter wants.
pub const COMMITS: &str = "otel::scribe";

/// Puts a span into its meeting's trace (installed once per process).
pub type Join = fn(&tracing::Span, MeetingId);

static JOIN: OnceLock<Join> = OnceLock::new();

/// Installs the function that puts a meeting's spans into its trace; the
/// first one installed stays.
pub fn install(join: Join) {
    let _ = JOIN.set(join);
}

/// Puts `span` into `meeting`'s trace, when a [`Join`] is installed and the
/// span is enabled. Call it before the span is first entered.
pub fn join(span: &tracing::Span, meeting: MeetingId) {
    if span.is_disabled() {
        return;
    }
    if let Some(join) = JOIN.get() {
        join(span, meeting);
    }
}

/// The name of a call path in spans and logs (`call.path`): `stream` for a
/// session scribe owns (started by Stream's webhooks), `webrtc` and `sip`
/// for a call OpenAI carries.
pub fn path_name(path: &CallPath) -> &'static str {
    match path {
        CallPath::Owned { .. } => "stream",
        CallPath::Attached {
            carrier: Carrier::WebRtc,
            ..
        } => "webrtc",
        CallPath::Attached {
            carrier: Carrier::Sip,
            ..
        } => "sip",
    }
}

/// A span about one meeting, in its trace: `meeting_span!(meeting,
/// "name", field = value, ...)`. Its target is [`CALL`]; it carries
/// `meeting.id`.
#[macro_export]
macro_rules! meeting_span {
    ($meeting:expr, $name:literal $(, $($fields:tt)+)?) => {{
        let meeting: $crate::ids::MeetingId = $meeting;
        let span = ::tracing::info_span!(
            target: "scribe::call",
            $name,
            meeting.id = %meeting
            $(, $($fields)+)?
        );
        $crate::trace::join(&span, meeting);
        span
    }};
}
