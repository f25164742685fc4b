//! The end of a call, written once. Whoever ends a call (its actor at
//! `call.session_ended`, the supervisor when no actor is live or when the
//! restart budget is spent, the process at shutdown) does the same steps:
//! end the realtime session so that open lines become lines, hand every
//! line to the writer (waiting for room), wait until the writer committed
//! them, and only then record the verdict in the store.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::Instrument;

use super::deps::CallDeps;
use super::shared::SharedCall;
use crate::ids::MeetingId;
use crate::ports::{Finalized, error_chain};
use crate::writer::ChunkWriter;

/// Ends the realtime session of every call given and hands every line they
/// hold to the writer, offering refused lines again every `retry` until the
/// writer took them all or `deadline` passed (never, without one). Returns
/// how many lines the writer did not take.
pub async fn drain(
    calls: &[Arc<SharedCall>],
    writer: &ChunkWriter,
    retry: Duration,
    deadline: Option<Instant>,
) -> usize {
    for call in calls {
        call.end_session(writer);
    }
    loop {
        let left: usize = calls
            .iter()
            .filter(|c| c.flush_backlog(writer))
            .map(|c| c.unflushed())
            .sum();
        if left == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
            return left;
        }
        tokio::time::sleep(retry).await;
    }
}

/// What the store is told once a call's lines are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The call ended: fill gaps as `lost`, move to `processing`.
    Finalize { ended_at: DateTime<Utc> },
    /// The call cannot go on (its actor kept dying): `failed`.
    Fail { error: String },
}

/// Ends a call: drains its conversation (when this process holds it),
/// waits for the writer to commit, then records the verdict. Finalizing is
/// retried until the store answers; a failure is recorded once. Returns
/// what finalizing did.
pub async fn end_call(
    deps: &CallDeps,
    meeting: MeetingId,
    call: Option<Arc<SharedCall>>,
    verdict: Verdict,
) -> Option<Finalized> {
    let mut handed_out = None;
    if let Some(call) = call {
        drain(
            std::slice::from_ref(&call),
            &deps.writer,
            deps.config.backlog_retry,
            None,
        )
        .await;
        handed_out = Some(call.next_sequence() - 1);
    }
    // Lines and the event log first, then the verdict.
    let _ = deps.writer.flush().await;
    match verdict {
        Verdict::Finalize { ended_at } => Some(finalize(deps, meeting, ended_at, handed_out).await),
        Verdict::Fail { error } => {
            if let Err(e) = deps.store.fail(meeting, &error).await {
                tracing::error!(%meeting, error = %error_chain(&e), "could not mark the meeting failed");
            }
            None
        }
    }
}

/// Finalizes the meeting in the store, retrying until the store answers.
async fn finalize(
    deps: &CallDeps,
    meeting: MeetingId,
    ended_at: DateTime<Utc>,
    handed_out: Option<i64>,
) -> Finalized {
    let span = crate::meeting_span!(
        meeting,
        "call.finalize",
        lines = tracing::field::Empty,
        lost = tracing::field::Empty
    );
    let done = finalize_retrying(deps, meeting, ended_at, handed_out)
        .instrument(span.clone())
        .await;
    span.record("lines", done.lines);
    span.record("lost", done.lost.len());
    done
}

async fn finalize_retrying(
    deps: &CallDeps,
    meeting: MeetingId,
    ended_at: DateTime<Utc>,
    handed_out: Option<i64>,
) -> Finalized {
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match deps.store.finalize(meeting, ended_at, handed_out).await {
            Ok(done) => return done,
            Err(error) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(%meeting, error = %error_chain(&error), "finalize failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
