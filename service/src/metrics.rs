//! The Prometheus side of the metrics: one recorder per process (the
//! `metrics` facade is global), installed on first use, and the text that
//! `GET /metrics` serves. Names of what the actors record are in
//! `scribe_actors::metrics`; the ones recorded here are below.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Model requests, by `outcome` (ok, error).
/// Rows the ownership statements wrote, by statement: the upkeep
/// (`heartbeat`, `declare_dead`, `take_over`, `forget`) stays flat however
/// many calls an instance holds; `acquire` counts one per call started.
pub const LEASE_ROWS: &str = "scribe_lease_rows_written_total";
pub const LLM_ATTEMPTS: &str = "scribe_llm_attempts_total";
/// Tokens model requests used, by `model`, `purpose` (notes, analysis)
/// and `kind` (prompt, cached, completion; cached tokens are also counted
/// in prompt, as OpenAI reports them).
pub const LLM_TOKENS: &str = "scribe_llm_tokens_total";
/// Model requests that reported their usage, by `model` and `purpose`.
pub const LLM_REQUESTS: &str = "scribe_llm_requests_total";
/// Stream webhooks answered, by event `type` and `outcome` (the answer's
/// status, or the HTTP status of an error).
pub const WEBHOOKS: &str = "scribe_webhooks_total";
/// Meetings in the database, by `status` (read by the background probe
/// once a second, never by a scrape).
pub const MEETINGS: &str = "scribe_meetings";
/// Database checks made by the background probe (`/readyz` and `/metrics`
/// make none).
pub const PROBE_QUERIES: &str = "scribe_probe_queries_total";
/// Event streams open now.
pub const OPEN_STREAMS: &str = "scribe_event_streams";
/// Requests refused because the server had its limit in flight.
pub const SHED_REQUESTS: &str = "scribe_shed_requests_total";
/// Meetings deleted, `by` the API (`meeting`, `agent`) or the
/// retention sweep (`retention`).
pub const MEETINGS_DELETED: &str = "scribe_meetings_deleted_total";
/// Retention sweeps, by `outcome`: `swept` (this instance held the
/// sweep), `held_elsewhere` (another instance did), `failed`.
pub const RETENTION_SWEEPS: &str = "scribe_retention_sweeps_total";
/// How long a retention sweep that ran took.
pub const RETENTION_SECONDS: &str = "scribe_retention_sweep_seconds";
/// When the last sweep of this instance finished (Unix seconds).
pub const RETENTION_LAST: &str = "scribe_retention_last_sweep_timestamp_seconds";
/// Connections closed at once: their address was at its limit.
pub const REFUSED_CONNECTIONS: &str = "scribe_refused_connections_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder the first time.
/// `None` when another recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
                60.0,
            ];
            let sizes = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(scribe_actors::metrics::COMMIT_LAG.into()),
                    &seconds,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(scribe_actors::metrics::ANALYSIS_SECONDS.into()),
                        &seconds,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(RETENTION_SECONDS.into()), &seconds)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(scribe_actors::metrics::BATCH_LINES.into()),
                        &sizes,
                    )
                })
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            scribe_actors::metrics::describe();
            metrics::describe_counter!(LLM_ATTEMPTS, "Model requests, by outcome");
            metrics::describe_counter!(
                LLM_TOKENS,
                "Tokens model requests used, by model, purpose and kind"
            );
            metrics::describe_counter!(
                LLM_REQUESTS,
                "Model requests that reported their usage, by model and purpose"
            );
            metrics::describe_counter!(WEBHOOKS, "Stream webhooks answered, by type and outcome");
            metrics::describe_counter!(
                LEASE_ROWS,
                "Rows the call-ownership statements wrote, by statement"
            );
            metrics::describe_gauge!(MEETINGS, "Meetings in the database, by status");
            metrics::describe_counter!(PROBE_QUERIES, "Database checks by the background probe");
            metrics::describe_gauge!(OPEN_STREAMS, "Event streams open now");
            metrics::describe_counter!(SHED_REQUESTS, "Requests refused at the in-flight limit");
            metrics::describe_counter!(MEETINGS_DELETED, "Meetings deleted, by what deleted them");
            metrics::describe_counter!(RETENTION_SWEEPS, "Retention sweeps, by outcome");
            metrics::describe_histogram!(RETENTION_SECONDS, "How long a retention sweep took");
            metrics::describe_gauge!(
                RETENTION_LAST,
                "When this instance's last retention sweep finished (Unix seconds)"
            );
            metrics::describe_counter!(
                REFUSED_CONNECTIONS,
                "Connections closed at once: their address was at its limit"
            );
            zero();
            Some(handle)
        })
        .as_ref()
}

/// Starts at zero the series the alerts and the dashboard read (the
/// retention sweep's last time aside: 0 would read as a sweep 56 years
/// late), so that a rate sees the first event after a start.
fn zero() {
    for counter in [SHED_REQUESTS, REFUSED_CONNECTIONS, PROBE_QUERIES] {
        metrics::counter!(counter).absolute(0);
    }
    for outcome in ["ok", "error"] {
        metrics::counter!(LLM_ATTEMPTS, "outcome" => outcome).absolute(0);
    }
    for by in ["meeting", "agent", "retention"] {
        metrics::counter!(MEETINGS_DELETED, "by" => by).absolute(0);
    }
    for outcome in ["swept", "held_elsewhere", "failed"] {
        metrics::counter!(RETENTION_SWEEPS, "outcome" => outcome).absolute(0);
    }
    for statement in [
        "join",
        "acquire",
        "heartbeat",
        "forget",
        "declare_dead",
        "take_over",
        "release",
    ] {
        metrics::counter!(LEASE_ROWS, "statement" => statement).absolute(0);
    }
    metrics::gauge!(OPEN_STREAMS).set(0.0);
}
