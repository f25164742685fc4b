//! `SCRIBE_LOG_FORMAT=json`: one JSON object a line, for log collectors.
//!
//! ```json
//! {"timestamp":"2026-12-06T04:00:00.123456Z","level":"INFO","target":"scribe::http::webhook",
//!  "message":"call ended","meeting_id":"…","call_path":"stream","trace_id":"…",
//!  "fields":{"why":"call.session_ended"},"spans":["request","stream.webhook"]}
//! ```
//!
//! A line about a call (its event, or a span it sits in, names the
//! meeting as `meeting`, `meeting_id` or `meeting.id`) carries
//! `meeting_id`, `trace_id` (the meeting's trace: its id without dashes)
//! and `call_path` (`stream`, `webrtc`, `sip`) and `voice_api` (`realtime`,
//! `live`): named by a span it sits in, or remembered from the lines of
//! the call's actor or request ([`PATHS`]).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{LazyLock, Mutex, PoisonError};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use scribe_actors::ids::MeetingId;

/// The event formatter of the JSON logs.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut call = Call::default();
        call.take(&mut fields.0);
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            // Innermost first: the nearest span that names something wins.
            for span in scope {
                spans.push(Value::from(span.name()));
                let extensions = span.extensions();
                if let Some(stored) = extensions.get::<FormattedFields<JsonFields>>()
                    && let Ok(Value::Object(mut span_fields)) =
                        serde_json::from_str::<Value>(stored.as_str())
                {
                    call.take(&mut span_fields);
                }
            }
        }
        spans.reverse();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        if let Some(message) = fields.0.remove("message") {
            line.insert("message".into(), message);
        }
        if let Some(meeting) = call.meeting {
            call = PATHS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .complete(meeting, call);
        }
        if let Some(meeting) = call.meeting {
            line.insert("meeting_id".into(), meeting.to_string().into());
            line.insert(
                "trace_id".into(),
                super::trace_id(meeting).to_string().into(),
            );
        }
        if let Some(path) = call.path {
            line.insert("call_path".into(), path);
        }
        if let Some(api) = call.api {
            line.insert("voice_api".into(), api);
        }
        if !fields.0.is_empty() {
            line.insert("fields".into(), Value::Object(fields.0));
        }
        if !spans.is_empty() {
            line.insert("spans".into(), Value::Array(spans));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// The call paths (and voice APIs) of the meetings lines were written
/// about lately, learnt from the spans that name them: a line that names
/// only its meeting (the supervisor's, an analysis's) gets its call's path
/// from the lines its call's actor wrote. Bounded: the oldest meeting is
/// forgotten first.
static PATHS: LazyLock<Mutex<Paths>> = LazyLock::new(Mutex::default);

/// Meetings remembered at most (about 100 bytes each).
const REMEMBERED: usize = 65_536;

/// A meeting's call path and voice API, as far as lines have named them.
type Named = (Option<Value>, Option<Value>);

#[derive(Default)]
struct Paths {
    known: HashMap<MeetingId, Named>,
    order: VecDeque<MeetingId>,
}

impl Paths {
    /// Remembers what `call` says of its path and voice API, and fills in
    /// what it does not say from what was remembered.
    fn complete(&mut self, meeting: MeetingId, mut call: Call) -> Call {
        let known = &mut self.known;
        if call.path.is_none() && call.api.is_none() && !known.contains_key(&meeting) {
            return call;
        }
        let entry = known.entry(meeting).or_insert_with(|| {
            self.order.push_back(meeting);
            (None, None)
        });
        for (said, kept) in [
            (&mut call.path, &mut entry.0),
            (&mut call.api, &mut entry.1),
        ] {
            match said {
                Some(value) => *kept = Some(value.clone()),
                None => *said = kept.clone(),
            }
        }
        if self.order.len() > REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            known.remove(&oldest);
        }
        call
    }
}

/// What a line says about its call.
#[derive(Default)]
struct Call {
    meeting: Option<MeetingId>,
    path: Option<Value>,
    api: Option<Value>,
}

impl Call {
    /// Takes the call's fields out of `fields` where not known yet.
    fn take(&mut self, fields: &mut Map<String, Value>) {
        for key in ["meeting", "meeting_id", "meeting.id"] {
            if let Some(value) = fields.remove(key)
                && self.meeting.is_none()
            {
                self.meeting = value.as_str().and_then(|s| s.parse().ok());
            }
        }
        if let Some(path) = fields.remove("call.path") {
            self.path.get_or_insert(path);
        }
        if let Some(api) = fields.remove("voice.api") {
            self.api.get_or_insert(api);
        }
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}
