//! A meeting seen live: its Server-Sent Events stream and its page.
//!
//! `GET /api/meetings/{id}/events` streams, from a cursor:
//! - `line`: a committed transcript line (`id` = cursor after it);
//! - `stage`: an analysis stage (`transcript_collected`,
//!   `llm_attempt_started`, `answer_received`, `results_saved`,
//!   `next_meeting_created`, `failed`, ...);
//! - `ended`: the call ended (with the lines kept as `lost`, if any);
//! - `problem`: the call's realtime session cannot work as configured, or
//!   its provider refused it (`{error, at}`, scribe's own words);
//! - `notes`, without an id: the call's running notes as they stand, when
//!   the stream opens and whenever they change (`{text, through_line,
//!   version, at}`);
//! - `analysis_delta`: summary text as the model writes it (`{attempt,
//!   offset, text, at}`; offset 0 starts it again);
//! - `line_status`: a line already sent is `interrupted` now (the user cut
//!   the reply off: `{sequence_number, status, audio_end_ms, at}`);
//! - `status`: every status change, logged in the transaction that made
//!   it (with an id, `{status, from, at}`); and, without an id, the
//!   meeting's whole current state (results, error, estimate) when the
//!   stream opens and after any change;
//! - `end`: the meeting reached `completed` or `failed`; the stream closes.
//!
//! `Last-Event-ID` (or `?last_event_id=`) resumes after what was received,
//! with nothing lost or repeated. The stream wakes on every commit for the
//! meeting in this process, and reads the database at least every few
//! seconds for commits made by another instance.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures::Stream;
use scribe_actors::domain::MeetingStatus;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::auth::{Holder, MeetingAccess, meeting_token};
use super::extract::QueryParams;
use super::serve::ClientAddress;
use super::{ApiError, AppState};
use crate::domain::meeting::Meeting;
use crate::store::{FeedCursor, FeedRead};
use entries::entry_event;

/// How often a stream reads the database when nothing woke it.
mod entries;

const POLL: Duration = Duration::from_secs(3);
/// Keep-alive comments, so proxies keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How soon a reader reconnects when a stream ends at its lifetime.
const RECONNECT: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Where to resume, as the `Last-Event-ID` header (which wins when both
    /// are given): the id of the last event received.
    #[param(pattern = r"^[0-9]{1,18}-[0-9]{1,18}$", nullable = false)]
    last_event_id: Option<String>,
    /// The meeting's page key (as in its page link), when the request
    /// carries neither it in `X-Meeting-Token` nor the API token.
    #[param(nullable = false)]
    #[expect(dead_code, reason = "read by the MeetingAccess extractor")]
    key: Option<String>,
}

/// The page's query: the key of its link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The meeting's page key, from its page link.
    #[param(nullable = false)]
    #[expect(dead_code, reason = "read by the MeetingAccess extractor")]
    key: Option<String>,
}

/// One server-sent event of a meeting's stream (the wire format, for the
/// OpenAPI document).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the stream's wire format; never built")]
pub struct MeetingEvent {
    event: StreamEventName,
    /// JSON; for `end`, the final status as text.
    data: String,
    /// Where to resume after this event (lines and log entries).
    #[schema(pattern = r"^[0-9]{1,18}-[0-9]{1,18}$")]
    id: Option<String>,
}

/// What a stream event is: a transcript `line`, the meeting's `status`, an
/// analysis `stage`, the call `ended` (with any lost lines), a `hole` where
/// lines may be missing, a `problem` with the realtime session (scribe's
/// words), a `line_status` change (a reply cut off), the call's running
/// `notes`, the summary as the model writes it (`analysis_delta`), and
/// `end` when the meeting is `completed` or `failed`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "describes the stream's wire format; never built")]
enum StreamEventName {
    Line,
    Status,
    Stage,
    Ended,
    Hole,
    Problem,
    LineStatus,
    Notes,
    AnalysisDelta,
    End,
}

/// `GET /api/meetings/{id}/events`.
#[utoipa::path(
    get,
    path = "/api/meetings/{id}/events",
    tag = "meetings",
    operation_id = "meeting_events",
    security(("api_token" = []), ("meeting_token" = []), ("meeting_key" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The meeting's id."),
        EventsQuery,
        ("last-event-id" = Option<String>, Header, nullable = false, pattern = r"^[0-9]{1,18}-[0-9]{1,18}$",
            description = "The id of the last event received: the stream resumes after it."),
    ),
    responses(
        (status = 200, description = "Server-sent events: `status`, `line`, `event` and `results`, each with an id to resume from; \
                                      the stream ends once the meeting is `completed` or `failed`, the server stops, or the stream \
                                      is 30 minutes old (then reconnect with `Last-Event-ID`: nothing is missed).",
            body = MeetingEvent, content_type = "text/event-stream"),
        (status = 400, description = "The id is not a UUID, or the resume id is malformed.", body = super::error::ErrorBody),
        (status = 401, description = "A bearer token that is not the API token.", body = super::error::ErrorBody),
        (status = 404, description = "No such meeting, or neither the API token nor this meeting's page key.", body = super::error::ErrorBody),
        (status = 410, description = "The meeting was deleted.", body = super::error::ErrorBody),
        (status = 503, description = "Too many event streams: on this meeting (20), from this client (64) or in all (5,000).", body = super::error::ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait."))),
    ),
)]
pub async fn events(
    access: MeetingAccess,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<EventsQuery>,
    client: Option<Extension<ClientAddress>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = access.meeting.id;
    // Either may carry the cursor (the header wins); each must be one.
    let read = |text: &str| {
        text.parse::<FeedCursor>()
            .map_err(|e| ApiError::BadRequest(format!("bad Last-Event-ID {text:?}: {e}")))
    };
    let from_query = query.last_event_id.as_deref().map(read).transpose()?;
    let from_header = headers
        .get("last-event-id")
        .map(|v| read(v.to_str().unwrap_or_default()))
        .transpose()?;
    let cursor = from_header.or(from_query).unwrap_or_default();
    // A place among the open streams, held until the stream ends.
    let slot = state.streams.open(id, client.map(|c| c.0.0))?;
    // Subscribe before the first read: a commit between the two still wakes us.
    let changes = state.store.changes().subscribe(id);
    let first = state
        .store
        .feed(id, cursor)
        .await?
        .ok_or_else(ApiError::meeting_not_found)?;
    let (tx, rx) = mpsc::channel(64);
    let mut stopping = state.stopping.clone();
    let lifetime = state.streams.lifetime();
    let last_words = tx.clone();
    // The task that feeds the stream lives as long as the stream: the
    // answer holds its handle, and dropping the answer stops it.
    let producer = Producer(tokio::spawn(async move {
        tokio::select! {
            () = follow(&state, access.holder, cursor, first, changes, tx) => {}
            // The server stops: the stream ends (the reader reconnects
            // elsewhere with its Last-Event-ID).
            () = stopping.wait() => {}
            // Old enough: the reader reconnects soon, from where it was.
            () = tokio::time::sleep(lifetime) => {
                let _ = last_words.try_send(Event::default().retry(RECONNECT).comment("reconnect"));
            }
        }
        drop(slot);
    }));
    let stream = futures::stream::unfold((rx, producer), |(mut rx, producer)| async move {
        rx.recv().await.map(|event| (Ok(event), (rx, producer)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The task feeding one event stream, stopped when the stream is dropped.
struct Producer(tokio::task::JoinHandle<()>);

impl Drop for Producer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn terminal(status: MeetingStatus) -> bool {
    matches!(status, MeetingStatus::Completed | MeetingStatus::Failed)
}

/// Feeds one stream until its reader leaves or the meeting is done (or,
/// in [`events`], the server stops).
async fn follow(
    state: &AppState,
    holder: Holder,
    mut cursor: FeedCursor,
    first: FeedRead,
    mut changes: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Event>,
) {
    let store = &state.store;
    let id = first.meeting.id;
    // A stream opened with a page link ends when the link is revoked.
    let generation = first.meeting.page_generation;
    let mut read = Some(first);
    let mut shown: Option<MeetingStatus> = None;
    let mut notes_shown = 0;
    loop {
        if let Some(FeedRead {
            meeting,
            lines,
            events,
            notes,
        }) = read.take()
        {
            if meeting.deleted_at.is_some() {
                tracing::info!(meeting = %id, "event stream ended: the meeting was deleted");
                let _ = tx.send(Event::default().event("deleted").data("{}")).await;
                return;
            }
            if holder == Holder::Page && meeting.page_generation != generation {
                tracing::info!(meeting = %id, "event stream ended: its page link was revoked");
                return;
            }
            // Lines in number order and log entries in id order, merged by
            // time, so that a reader of a finished meeting sees the story in
            // the order it happened (either order resumes exactly).
            let mut lines = lines.into_iter().peekable();
            let mut entries = events.into_iter().peekable();
            loop {
                let line_first = match (lines.peek(), entries.peek()) {
                    (None, None) => break,
                    (Some(line), Some(entry)) => line.timestamp <= entry.created_at,
                    (line, _) => line.is_some(),
                };
                let event = if line_first {
                    let Some(line) = lines.next() else { break };
                    cursor.line = line.sequence_number;
                    Event::default()
                        .event("line")
                        .id(cursor.to_string())
                        .json_data(&line)
                } else {
                    let Some(entry) = entries.next() else { break };
                    cursor.event = entry.id;
                    let Some((name, data)) = entry_event(entry) else {
                        continue;
                    };
                    Event::default()
                        .event(name)
                        .id(cursor.to_string())
                        .json_data(&data)
                };
                if !send(&tx, event).await {
                    return;
                }
            }
            // The notes are a state: shown when they change.
            if let Some(notes) = notes.filter(|n| n.version > notes_shown) {
                notes_shown = notes.version;
                let data = json!({
                    "text": notes.text,
                    "through_line": notes.through_line,
                    "version": notes.version,
                    "at": notes.updated_at,
                });
                if !send(&tx, Event::default().event("notes").json_data(&data)).await {
                    return;
                }
            }
            if shown != Some(meeting.status) {
                shown = Some(meeting.status);
                let data = status_data(state, &meeting).await;
                if !send(&tx, Event::default().event("status").json_data(&data)).await {
                    return;
                }
            }
            if terminal(meeting.status) {
                let _ = send(
                    &tx,
                    Ok(Event::default()
                        .event("end")
                        .data(meeting.status.to_string())),
                )
                .await;
                return;
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(POLL).await;
                }
            }
            () = tokio::time::sleep(POLL) => {}
            () = tx.closed() => return,
        }
        match store.feed(id, cursor).await {
            Ok(Some(next)) => read = Some(next),
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(meeting = %id, %error, "event stream read failed; trying again")
            }
        }
    }
}

async fn send(tx: &mpsc::Sender<Event>, event: Result<Event, axum::Error>) -> bool {
    match event {
        Ok(event) => tx.send(event).await.is_ok(),
        Err(error) => {
            tracing::error!(%error, "event not serialisable");
            true
        }
    }
}

/// A `status` event: the row's state, the results once completed, and how
/// long analyses have taken here (for the page's estimate). The next
/// meeting is shown as its page link (relative, with its key): the stream
/// is open to this meeting's key holders only, who follow the user's
/// sessions.
async fn status_data(state: &AppState, meeting: &Meeting) -> Value {
    let store = &state.store;
    let estimate = match meeting.status {
        MeetingStatus::Active | MeetingStatus::Processing => {
            store.analysis_estimate().await.ok().flatten()
        }
        _ => None,
    };
    let done = meeting.status == MeetingStatus::Completed;
    let next_meeting_page = match meeting.next_meeting_id {
        Some(next) if done => store
            .meeting(next)
            .await
            .ok()
            .flatten()
            .map(|next| super::auth::page_link("", &state.page_key, &next)),
        _ => None,
    };
    json!({
        "status": meeting.status,
        "error": meeting.error,
        "ended_at": meeting.ended_at,
        "processing_started_at": meeting.processing_started_at,
        "completed_at": meeting.completed_at,
        "next_meeting_page": next_meeting_page,
        "summary": if done { meeting.summary.clone() } else { None },
        "progress": if done { meeting.progress.clone() } else { None },
        "estimate_ms": estimate.map(|(ms, _)| ms),
        "estimate_samples": estimate.map_or(0, |(_, n)| n),
        "now": chrono::Utc::now(),
    })
}

const PAGE: &str = include_str!("page/meeting.html");
const SCRIPT: &str = include_str!("page/meeting.js");
const STYLE: &str = include_str!("page/meeting.css");

/// The meeting page's `Content-Security-Policy`: its script and style come
/// from this server only (no inline script or style), it talks to this
/// server only (the API, the event stream; the call's media goes over
/// WebRTC, which `connect-src` does not govern), plays the call's audio
/// from its media stream, and no other site may frame it.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; media-src 'self' blob: mediastream:; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Fills `{{KEY}}` placeholders in one pass over `template`: a value is
/// copied as it is and never read again, so a value that looks like a
/// placeholder (a meeting named `{{TOKEN}}`) stays text. Unknown
/// placeholders are left as they are.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| {
            values
                .iter()
                .find(|(key, _)| *key == &after[..end])
                .map(|(_, value)| (end, *value))
        });
        match value {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A page that says what went wrong, with the page's own headers (its
/// policy, never cached).
fn not_found_page(message: &str, status: StatusCode) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>scribe</title></head><body><main><h1>{}</h1></main></body></html>",
        escape(message)
    );
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(body),
    )
        .into_response()
}

/// `GET /meetings/{id}`: the meeting's page.
#[utoipa::path(
    get,
    path = "/meetings/{id}",
    tag = "pages",
    operation_id = "meeting_page",
    security(("meeting_key" = []), ("meeting_token" = []), ("api_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id."), PageQuery),
    responses(
        (status = 200, description = "The page: status, live transcript, results; its buttons carry the meeting's key.",
            body = String, content_type = "text/html"),
        (status = 400, description = "The id is not a UUID.", body = String, content_type = "text/html"),
        (status = 401, description = "A bearer token that is not the API token.", body = String, content_type = "text/html"),
        (status = 404, description = "No such meeting, or the link's key is not this meeting's current one.", body = String, content_type = "text/html"),
        (status = 410, description = "The meeting was deleted.", body = String, content_type = "text/html"),
        (status = 503, description = "The database is unavailable.", body = String, content_type = "text/html"),
    ),
)]
pub async fn page(
    State(state): State<AppState>,
    access: Result<MeetingAccess, ApiError>,
) -> Response {
    match access {
        Ok(MeetingAccess { meeting, .. }) => {
            let name = escape(&meeting.name);
            let token = meeting_token(&state.page_key, meeting.id, meeting.page_generation);
            let id = meeting.id.to_string();
            let body = fill(
                PAGE,
                &[("NAME", &name), ("MEETING_ID", &id), ("TOKEN", &token)],
            );
            (
                [
                    (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                Html(body),
            )
                .into_response()
        }
        Err(error) => match error.status() {
            StatusCode::BAD_REQUEST => {
                not_found_page("That is not a meeting id.", StatusCode::BAD_REQUEST)
            }
            StatusCode::NOT_FOUND => not_found_page(
                "Meeting not found, or this link no longer opens it.",
                StatusCode::NOT_FOUND,
            ),
            StatusCode::UNAUTHORIZED => not_found_page(
                "That bearer token is not accepted.",
                StatusCode::UNAUTHORIZED,
            ),
            StatusCode::GONE => not_found_page(
                "This meeting was deleted: its transcript, notes and results are gone.",
                StatusCode::GONE,
            ),
            _ => {
                tracing::error!(%error, "meeting page: database read failed");
                not_found_page(
                    "The database is unavailable; try again shortly.",
                    StatusCode::SERVICE_UNAVAILABLE,
                )
            }
        },
    }
}

/// `GET /assets/meeting.js`.
#[utoipa::path(
    get,
    path = "/assets/meeting.js",
    tag = "pages",
    operation_id = "page_script",
    responses((status = 200, description = "The page's script.", body = String, content_type = "text/javascript")),
)]
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// `GET /assets/meeting.css`.
#[utoipa::path(
    get,
    path = "/assets/meeting.css",
    tag = "pages",
    operation_id = "page_style",
    responses((status = 200, description = "The page's style.", body = String, content_type = "text/css")),
)]
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_never_read_as_a_placeholder() {
        let page = fill(
            "<t>{{NAME}}</t><b data-m=\"{{MEETING_ID}}\" data-t=\"{{TOKEN}}\">{{NAME}}{{OTHER}}",
            &[
                ("NAME", "{{TOKEN}} and {{MEETING_ID}"),
                ("MEETING_ID", "m-1"),
                ("TOKEN", "secret-capability"),
            ],
        );
        assert_eq!(
            page,
            "<t>{{TOKEN}} and {{MEETING_ID}</t><b data-m=\"m-1\" data-t=\"secret-capability\">\
             {{TOKEN}} and {{MEETING_ID}{{OTHER}}"
        );
        assert_eq!(page.matches("secret-capability").count(), 1);
        assert_eq!(fill("{{", &[]), "{{");
        assert_eq!(fill("a{{B", &[("B", "x")]), "a{{B");
    }

    #[test]
    fn the_page_template_has_no_inline_script_or_style() {
        assert!(!PAGE.contains("<script>"));
        let handler = PAGE.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert_eq!(handler, None, "no inline event handler attributes");
        assert!(!PAGE.contains("style="));
        assert!(PAGE.contains("<script src=\"/assets/meeting.js\">"));
    }
}
