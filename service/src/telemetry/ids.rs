//! A meeting's trace: its id is the meeting's UUID (both are 128 bits),
//! and its root span's id is the UUID's last 64 bits. Any instance can
//! name both from the meeting id alone, so spans made by different
//! instances, restarts and actors of one call land in one trace, and a log
//! line that names the meeting names its trace.

use std::cell::Cell;
use std::sync::OnceLock;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};
use scribe_actors::ids::MeetingId;

/// The trace id of a meeting's trace.
pub fn trace_id(meeting: MeetingId) -> TraceId {
    TraceId::from_bytes(*meeting.as_uuid().as_bytes())
}

/// The span id of a meeting's root span (never the invalid all-zero id).
pub fn root_span_id(meeting: MeetingId) -> SpanId {
    let uuid = meeting.as_uuid();
    let bytes = uuid.as_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    if low == [0; 8] {
        low[7] = 1;
    }
    SpanId::from_bytes(low)
}

/// The context a meeting's spans are made in: its root span, sampled.
pub fn meeting_context(meeting: MeetingId) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        trace_id(meeting),
        root_span_id(meeting),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

thread_local! {
    /// The ids the next span made on this thread takes (a meeting's root).
    static NEXT: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Random ids, except for a meeting's root span, whose ids are set just
/// before it is built on the same thread ([`export_root`]).
#[derive(Debug)]
pub struct MeetingIds;

impl IdGenerator for MeetingIds {
    fn new_trace_id(&self) -> TraceId {
        match NEXT.with(Cell::get) {
            Some((trace, _)) => trace,
            None => RandomIdGenerator::default().new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        match NEXT.with(Cell::get) {
            Some((_, span)) => span,
            None => RandomIdGenerator::default().new_span_id(),
        }
    }
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Keeps the provider the root spans are made with.
pub fn install(provider: SdkTracerProvider) {
    let _ = PROVIDER.set(provider);
}

/// Exports a meeting's root span over the times given; nothing when
/// traces are not exported.
pub fn export_root(
    meeting: MeetingId,
    created_at: chrono::DateTime<chrono::Utc>,
    ended_at: chrono::DateTime<chrono::Utc>,
    mut attributes: Vec<KeyValue>,
) {
    let Some(provider) = PROVIDER.get() else {
        return;
    };
    let tracer = provider.tracer("scribe");
    attributes.push(KeyValue::new("meeting.id", meeting.to_string()));
    let builder = tracer
        .span_builder("meeting")
        .with_start_time(std::time::SystemTime::from(created_at))
        .with_attributes(attributes);
    NEXT.with(|next| next.set(Some((trace_id(meeting), root_span_id(meeting)))));
    let mut span = tracer.build_with_context(builder, &Context::new());
    NEXT.with(|next| next.set(None));
    opentelemetry::trace::Span::end_with_timestamp(
        &mut span,
        std::time::SystemTime::from(ended_at.max(created_at)),
    );
}
