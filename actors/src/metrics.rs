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

/// Registers the help text of every metric above.
pub fn describe() {
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
