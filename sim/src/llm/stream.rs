//! A streamed answer: `chat.completion.chunk` events at the model's pace.

use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

use super::pace::{Chunks, pieces};
use super::{InFlight, Pace, Shared};

/// How often a stream sends what the model wrote since the last chunk.
const TICK: Duration = Duration::from_millis(25);

/// What the simulated model says to one request.
pub struct Answer {
    pub content: Option<String>,
    pub refusal: Option<String>,
    pub finish: &'static str,
    /// The connection drops after the content, before the finish.
    pub severed: bool,
    /// Extra silence before the first token (a stall).
    pub delay: Duration,
}

/// One step of the stream: wait this long, then send these events (an
/// `Err` drops the connection).
type Step = (Duration, Vec<Result<Event, std::io::Error>>);

fn event(value: &Value) -> Result<Event, std::io::Error> {
    Ok(Event::default().data(value.to_string()))
}

/// The streamed answer: the role after the model has read the prompt, the
/// text as it is written, the finish, the usage when asked, `[DONE]`.
pub fn respond(
    shared: Arc<Shared>,
    in_flight: InFlight,
    chunks: Chunks,
    answer: Answer,
    reading: Duration,
    usage: Value,
) -> Response {
    let per_piece = match shared.pace {
        Pace::Fixed(_) => Duration::ZERO,
        Pace::Model(model) => model.writing(1),
    };
    let mut steps: Vec<Step> = vec![(reading + answer.delay, vec![event(&chunks.role())])];
    let (text, refusal) = match (&answer.content, &answer.refusal) {
        (_, Some(refusal)) => (refusal.as_str(), true),
        (Some(content), None) => (content.as_str(), false),
        (None, None) => ("", false),
    };
    // Pieces grouped by tick: each step sends what was written in it.
    let mut batch = String::new();
    let mut waited = Duration::ZERO;
    for piece in pieces(text) {
        batch.push_str(&piece);
        waited += per_piece;
        if waited >= TICK {
            let chunk = if refusal {
                chunks.refusal(&batch)
            } else {
                chunks.content(&batch)
            };
            steps.push((waited, vec![event(&chunk)]));
            batch.clear();
            waited = Duration::ZERO;
        }
    }
    if !batch.is_empty() {
        let chunk = if refusal {
            chunks.refusal(&batch)
        } else {
            chunks.content(&batch)
        };
        steps.push((waited, vec![event(&chunk)]));
    }
    if answer.severed {
        // After what was written has gone out: the connection drops.
        steps.push((
            Duration::from_millis(50),
            vec![Err(std::io::Error::other("simulated connection loss"))],
        ));
    } else {
        let mut last = vec![event(&chunks.finish(answer.finish))];
        if chunks.include_usage {
            last.push(event(&chunks.usage(usage)));
        }
        last.push(Ok(Event::default().data("[DONE]")));
        steps.push((Duration::ZERO, last));
    }
    let stream = futures::stream::iter(steps)
        .then(|(wait, events)| async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            futures::stream::iter(events)
        })
        .flatten()
        // Counted in flight until the stream ends or is dropped.
        .map(move |item| {
            let _held = &in_flight;
            item
        });
    Sse::new(stream).into_response()
}
