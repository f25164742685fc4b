//! What the actors count and time, through the `metrics` facade. The
//! `scribe` crate installs the Prometheus recorder and serves `/metrics`;
//! without a recorder (unit tests, benchmarks) every call is a no-op.
//!
//! Hot paths take their handle once (a counter per socket reader) rather
//! than looking the name up on every frame.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Text frames read from realtime sockets (audio deltas included).
pub const FRAMES: &str = "scribe_realtime_frames_total";
/// Transcript lines committed to the database.
pub const LINES_COMMITTED: &str = "scribe_lines_committed_total";
/// From a line's final event read off the socket to its commit.
pub const COMMIT_LAG: &str = "scribe_commit_lag_seconds";
/// Lines per committed batch.
pub const BATCH_LINES: &str = "scribe_write_batch_lines";
/// Batches the database did not take at the first try.
pub const WRITE_RETRIES: &str = "scribe_write_retries_total";
pub const FENCED_WRITES: &str = "scribe_fenced_writes_total";
/// Actors started again after dying, by `kind` (meeting, analysis, supervisor).
pub const ACTOR_RESTARTS: &str = "scribe_actor_restarts_total";
/// Live actors, by `kind`.
pub const LIVE_ACTORS: &str = "scribe_live_actors";
/// Realtime sessions reopened after a socket ended.
pub const RECONNECTS: &str = "scribe_realtime_reconnects_total";
/// From an analysis actor's start to its outcome, by `outcome`.
pub const ANALYSIS_SECONDS: &str = "scribe_analysis_duration_seconds";
/// Analyses finished, by `outcome` (completed, failed).
pub const ANALYSES: &str = "scribe_analyses_total";
/// Running-notes updates, by `outcome` (saved, failed).
pub const NOTES_UPDATES: &str = "scribe_notes_updates_total";

/// Transcript lines final on the socket and not committed yet.
pub const TRANSCRIPT_BACKLOG: &str = "scribe_transcript_backlog_lines";
/// Calls this instance stopped holding: another instance holds them now.
pub const LEASES_LOST: &str = "scribe_leases_lost_total";
/// Calls this instance took over from an instance that is not live any
/// more (declared dead, stopped with calls live, or its own previous run).
pub const TAKEOVERS: &str = "scribe_takeovers_total";
/// Voice sessions the provider refused (the connection or the session's
/// setup), by `voice_api` (realtime, live).
pub const SESSIONS_REFUSED: &str = "scribe_sessions_refused_total";
/// Analyses waiting for a permit (`SCRIBE_ANALYSIS_CONCURRENCY` run at once).
pub const ANALYSIS_QUEUE: &str = "scribe_analysis_queue";

/// Registers the help text of every metric above, and starts at zero the
/// series an alert or a dashboard reads, so that they exist on `/metrics`
/// before their first event (a rate over a series that does not exist yet
/// is no rate at all).
pub fn describe() {
    describe_gauge!(
        TRANSCRIPT_BACKLOG,
        "Transcript lines final on the socket and not committed yet"
    );
    describe_counter!(
        LEASES_LOST,
        "Calls this instance stopped holding: another instance holds them now"
    );
    describe_counter!(
        TAKEOVERS,
        "Calls this instance took over from an instance not live any more"
    );
    describe_counter!(
        SESSIONS_REFUSED,
        "Voice sessions the provider refused, by voice API"
    );
    describe_gauge!(ANALYSIS_QUEUE, "Analyses waiting for a permit");
    for counter in [
        LINES_COMMITTED,
        WRITE_RETRIES,
        FENCED_WRITES,
        RECONNECTS,
        LEASES_LOST,
        TAKEOVERS,
        FRAMES,
    ] {
        metrics::counter!(counter).absolute(0);
    }
    for api in ["realtime", "live"] {
        metrics::counter!(SESSIONS_REFUSED, "voice_api" => api).absolute(0);
    }
    for outcome in ["completed", "failed"] {
        metrics::counter!(ANALYSES, "outcome" => outcome).absolute(0);
    }
    for outcome in ["saved", "failed"] {
        metrics::counter!(NOTES_UPDATES, "outcome" => outcome).absolute(0);
    }
    for kind in ["meeting", "analysis", "supervisor"] {
        metrics::counter!(ACTOR_RESTARTS, "kind" => kind).absolute(0);
    }
    for kind in ["meeting", "analysis"] {
        metrics::gauge!(LIVE_ACTORS, "kind" => kind).set(0.0);
    }
    metrics::gauge!(TRANSCRIPT_BACKLOG).set(0.0);
    metrics::gauge!(ANALYSIS_QUEUE).set(0.0);
    describe_counter!(FRAMES, "Text frames read from realtime sockets");
    describe_counter!(LINES_COMMITTED, "Transcript lines committed");
    describe_histogram!(
        COMMIT_LAG,
        Unit::Seconds,
        "A line's final event read from the socket to its commit"
    );
    describe_histogram!(BATCH_LINES, "Lines per committed batch");
    describe_counter!(WRITE_RETRIES, "Batches retried after a failed write");
    describe_counter!(
        FENCED_WRITES,
        "Calls whose writes the store refused because another instance holds them now"
    );
    describe_counter!(ACTOR_RESTARTS, "Actors started again after dying, by kind");
    describe_gauge!(LIVE_ACTORS, "Live actors, by kind");
    describe_counter!(
        RECONNECTS,
        "Realtime sessions reopened after a socket ended"
    );
    describe_histogram!(
        ANALYSIS_SECONDS,
        Unit::Seconds,
        "Analysis actor start to outcome, by outcome"
    );
    describe_counter!(ANALYSES, "Analyses finished, by outcome");
    describe_counter!(NOTES_UPDATES, "Running-notes updates, by outcome");
}

pub fn restarted(kind: &'static str) {
    metrics::counter!(ACTOR_RESTARTS, "kind" => kind).increment(1);
}
