//! Ingest ceiling: how many transcript lines a second scribe's batched
//! writer commits when every call hands it lines as fast as it takes them,
//! against the database's own best bulk load of the same rows and against
//! the original design (one INSERT per line, numbered by an in-memory
//! counter), all in the same run, on the same table.
//!
//! On PostgreSQL the best is `COPY`, and the writer runs once for each way
//! it can send lines ([`PgLines`]) with one and with two batches in flight.
//! On SQLite the best is one transaction of prepared single-row INSERTs.
//!
//! ```sh
//! createdb -h 127.0.0.1 -U postgres scribe_ingest
//! cargo run --release --example ingest -- \
//!   --database-url postgres://postgres@127.0.0.1:5432/scribe_ingest
//! cargo run --release --example ingest -- --database-url sqlite:///tmp/ingest.db
//! ```
//!
//! Each method starts from an empty `transcript_chunks` table and must store
//! every row exactly once, with each meeting's top number right; every
//! writer run then writes a tenth of its lines again, which must change
//! nothing. The run fails otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use clap::Parser;
use futures::StreamExt;
use scribe::domain::agent::NewAgent;
use scribe::domain::meeting::NewMeeting;
use scribe::store::{Backend, PgLines, PoolSize, Store};
use scribe_actors::domain::{ChunkStatus, Speaker};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::TranscriptSink;
use scribe_actors::transcript::Line;
use scribe_actors::writer::{ChunkWriter, Handoff, Rejected, WriterConfig};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;

#[derive(Debug, Parser)]
#[command(about = "Ingest ceiling of the batched writer against the database's own bulk load")]
struct Args {
    /// An empty PostgreSQL database or SQLite file (its tables are created
    /// and emptied).
    #[arg(long)]
    database_url: String,
    /// Calls that produce lines at once.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Lines each call produces.
    #[arg(long, default_value_t = 100)]
    lines_per_call: usize,
    /// Connections for the one-INSERT-per-line baseline (scribe's writer
    /// uses one per batch in flight). PostgreSQL only.
    #[arg(long, default_value_t = 16)]
    baseline_connections: u32,
    /// The writer's largest batch (its default unless given).
    #[arg(long)]
    batch_lines: Option<usize>,
    /// Runs of every method; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// One row as every method stores it.
struct Row {
    meeting: MeetingId,
    sequence_number: i64,
    speaker: Speaker,
    text: String,
    timestamp: DateTime<Utc>,
}

fn rows(meetings: &[MeetingId], per_call: usize) -> Vec<Vec<Row>> {
    let at = Utc::now();
    meetings
        .iter()
        .map(|&meeting| {
            (1..=per_call as i64)
                .map(|n| Row {
                    meeting,
                    sequence_number: n,
                    speaker: if n % 2 == 1 {
                        Speaker::User
                    } else {
                        Speaker::Agent
                    },
                    text: format!("line {n} of the call, about as long as a spoken sentence is"),
                    timestamp: at,
                })
                .collect()
        })
        .collect()
}

/// The example's own connections, beside the store's.
enum Raw {
    Pg(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Runs the same statement text on either backend.
macro_rules! on_raw {
    ($raw:expr, |$p:ident| $body:expr) => {
        match $raw {
            Raw::Pg($p) => $body,
            Raw::Sqlite($p) => $body,
        }
    };
}

impl Raw {
    /// Every row stored exactly once (the count, and no (meeting, sequence)
    /// twice), and every meeting's top number (the larger of its mark and
    /// its highest line, as scribe reads it) at its last line.
    async fn check(&self, calls: usize, per_call: usize, method: &str) -> anyhow::Result<()> {
        let expected = (calls * per_call) as i64;
        let (count, distinct): (i64, i64) = on_raw!(self, |p| sqlx::query_as(
            "SELECT (SELECT count(*) FROM transcript_chunks), \
             (SELECT count(*) FROM (SELECT DISTINCT meeting_id, sequence_number \
             FROM transcript_chunks) AS d)",
        )
        .fetch_one(p)
        .await?);
        ensure!(
            count == expected && distinct == expected,
            "{method}: stored {count} rows ({distinct} distinct), expected {expected}"
        );
        let (wrong,): (i64,) = on_raw!(self, |p| sqlx::query_as(
            "SELECT count(*) FROM meetings m WHERE (SELECT CASE WHEN m.sequence_high_water > \
             COALESCE(max(c.sequence_number), 0) THEN m.sequence_high_water \
             ELSE COALESCE(max(c.sequence_number), 0) END \
             FROM transcript_chunks c WHERE c.meeting_id = m.id) <> $1",
        )
        .bind(per_call as i64)
        .fetch_one(p)
        .await?);
        ensure!(
            wrong == 0,
            "{method}: {wrong} meetings' top number is not {per_call}"
        );
        Ok(())
    }

    async fn empty(&self) -> anyhow::Result<()> {
        on_raw!(self, |p| {
            sqlx::query("DELETE FROM transcript_chunks")
                .execute(p)
                .await?;
            sqlx::query("UPDATE meetings SET sequence_high_water = 0")
                .execute(p)
                .await?;
        });
        if let Raw::Pg(p) = self {
            sqlx::query("VACUUM ANALYZE transcript_chunks")
                .execute(p)
                .await?;
            sqlx::query("VACUUM ANALYZE meetings").execute(p).await?;
        }
        Ok(())
    }
}

/// PostgreSQL's own bulk load: one `COPY ... FROM STDIN` in text format.
async fn copy(pool: &sqlx::PgPool, calls: &[Vec<Row>]) -> anyhow::Result<Duration> {
    let created = Utc::now().to_rfc3339();
    let mut data = String::new();
    for row in calls.iter().flatten() {
        use std::fmt::Write;
        writeln!(
            data,
            "{}\t{}\t{}\t{}\tcompleted\t\\N\t{}\t{created}",
            row.meeting,
            row.sequence_number,
            row.speaker.as_str(),
            row.text,
            row.timestamp.to_rfc3339()
        )?;
    }
    let mut conn = pool.acquire().await?;
    let began = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "COPY transcript_chunks (meeting_id, sequence_number, speaker_type, text, status, \
             item_id, timestamp, created_at) FROM STDIN",
        )
        .await?;
    for chunk in data.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    copy.finish().await?;
    Ok(began.elapsed())
}

/// SQLite's own best: every row in one transaction, one prepared INSERT
/// (sqlx keeps it prepared) run per row.
async fn one_transaction(pool: &sqlx::SqlitePool, calls: &[Vec<Row>]) -> anyhow::Result<Duration> {
    let created = Utc::now();
    let began = Instant::now();
    let mut tx = pool.begin().await?;
    for row in calls.iter().flatten() {
        sqlx::query(
            "INSERT INTO transcript_chunks (meeting_id, sequence_number, speaker_type, text, \
             status, item_id, timestamp, created_at) VALUES ($1, $2, $3, $4, 'completed', NULL, $5, $6)",
        )
        .bind(row.meeting.as_uuid())
        .bind(row.sequence_number)
        .bind(row.speaker.as_str())
        .bind(&row.text)
        .bind(row.timestamp)
        .bind(created)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(began.elapsed())
}

fn line(row: Row) -> Line {
    Line {
        sequence_number: row.sequence_number,
        speaker: row.speaker,
        text: row.text,
        status: ChunkStatus::Completed,
        item_id: None,
        timestamp: row.timestamp,
        start_ms: None,
        end_ms: None,
        ready_at: Instant::now(),
    }
}

/// scribe's path: every call hands its lines to the one batched writer as
/// fast as it takes them (a full queue hands them back, and the call tries
/// again), each line with its number as the call's top number, as a call
/// does once a turn is final; the run ends when a flush confirms all are
/// committed.
async fn batched(
    store: Arc<dyn TranscriptSink>,
    config: WriterConfig,
    calls: Vec<Vec<Row>>,
) -> anyhow::Result<Duration> {
    let (writer, task) = ChunkWriter::spawn(store, config);
    let began = Instant::now();
    let producers: Vec<_> = calls
        .into_iter()
        .map(|rows| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for row in rows {
                    let meeting = row.meeting;
                    let mut handoff = Handoff {
                        high_water: Some(row.sequence_number),
                        interrupted: Vec::new(),
                        lines: vec![line(row)],
                        // The meetings were never taken: their lease epoch is 0.
                        lease: 0,
                    };
                    loop {
                        match writer.try_submit(meeting, handoff) {
                            Ok(()) => break,
                            Err(Rejected(back)) => {
                                handoff = back;
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await?;
    }
    writer.flush().await.context("writer stopped")?;
    let took = began.elapsed();
    drop(writer);
    task.await?;
    Ok(took)
}

/// The original design: one INSERT per line in its own transaction, the
/// sequence number taken from a counter in this process's memory.
async fn one_insert_per_line(pool: &sqlx::PgPool, calls: &[Vec<Row>]) -> anyhow::Result<Duration> {
    let counters: Arc<Mutex<HashMap<MeetingId, i64>>> = Arc::default();
    let began = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(calls.iter())
        .map(|rows| {
            let counters = counters.clone();
            async move {
                for row in rows {
                    let sequence_number = {
                        let mut counters = counters.lock().expect("counter lock");
                        let next = counters.entry(row.meeting).or_insert(0);
                        *next += 1;
                        *next
                    };
                    sqlx::query(
                        "INSERT INTO transcript_chunks (meeting_id, sequence_number, \
                         speaker_type, text, status, item_id, timestamp, created_at) \
                         VALUES ($1, $2, $3, $4, 'completed', NULL, $5, now())",
                    )
                    .bind(row.meeting.as_uuid())
                    .bind(sequence_number)
                    .bind(row.speaker.as_str())
                    .bind(&row.text)
                    .bind(row.timestamp)
                    .execute(pool)
                    .await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(calls.len())
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(began.elapsed())
}

/// One way of running scribe's writer.
struct Variant {
    key: &'static str,
    about: &'static str,
    lines: PgLines,
    lanes: usize,
}

const PG_VARIANTS: [Variant; 5] = [
    Variant {
        key: "arrays_one_at_a_time",
        about: "array parameters, one batch at a time",
        lines: PgLines::Arrays,
        lanes: 1,
    },
    Variant {
        key: "arrays_two_in_flight",
        about: "array parameters, two batches in flight (scribe's default)",
        lines: PgLines::Arrays,
        lanes: scribe::startup::WRITER_LANES,
    },
    Variant {
        key: "copy_text_staging",
        about: "text COPY into a staging table, then INSERT ... SELECT",
        lines: PgLines::CopyText,
        lanes: 1,
    },
    Variant {
        key: "copy_binary_staging",
        about: "binary COPY into a staging table, then INSERT ... SELECT",
        lines: PgLines::CopyBinary,
        lanes: 1,
    },
    Variant {
        key: "copy_binary_two_in_flight",
        about: "binary COPY into a staging table, two batches in flight",
        lines: PgLines::CopyBinary,
        lanes: 2,
    },
];

const SQLITE_VARIANTS: [Variant; 1] = [Variant {
    key: "rows",
    about: "multi-row INSERTs (scribe's path on SQLite)",
    lines: PgLines::Arrays,
    lanes: 1,
}];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    let store = Store::connect(&args.database_url, PoolSize(8)).await?;
    store.migrate().await?;
    let raw = match store.backend() {
        Backend::Postgres => Raw::Pg(
            PgPoolOptions::new()
                .max_connections(args.baseline_connections.max(1))
                .connect(&args.database_url)
                .await?,
        ),
        Backend::Sqlite => Raw::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&args.database_url)
                .await?,
        ),
    };
    on_raw!(&raw, |p| {
        sqlx::query("DELETE FROM meetings").execute(p).await?;
        sqlx::query("DELETE FROM agents").execute(p).await?;
    });
    let agent = store
        .insert_agent(NewAgent::parse("Coach", "Help.", None)?)
        .await?;
    let mut meetings = Vec::with_capacity(args.calls);
    for n in 0..args.calls {
        let new = NewMeeting::parse("Ingest", &format!("user-{n}"), agent.id, None)?;
        meetings.push(store.insert_meeting(new).await?.id);
    }
    let (calls, per_call) = (args.calls, args.lines_per_call);
    let total = calls * per_call;
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    say(format!(
        "{calls} calls x {per_call} lines = {total} rows, {} runs",
        args.runs
    ));
    let variants: &[Variant] = match &raw {
        Raw::Pg(_) => &PG_VARIANTS,
        Raw::Sqlite(_) => &SQLITE_VARIANTS,
    };
    let best_key = match &raw {
        Raw::Pg(_) => "copy",
        Raw::Sqlite(_) => "one_transaction",
    };
    // Each run measures every method in turn, so that whatever else the
    // machine does weighs on all of them alike; the median run is reported.
    let mut best_runs = Vec::new();
    let mut writer_runs: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for run in 1..=args.runs {
        raw.empty().await?;
        let took = match &raw {
            Raw::Pg(p) => copy(p, &rows(&meetings, per_call)).await?,
            Raw::Sqlite(p) => one_transaction(p, &rows(&meetings, per_call)).await?,
        };
        raw.check(calls, per_call, best_key).await?;
        say(format!("run {run}: {best_key} {:.0} lines/s", rate(took)));
        best_runs.push(took);
        for (variant, runs) in variants.iter().zip(&mut writer_runs) {
            raw.empty().await?;
            let sink: Arc<dyn TranscriptSink> =
                Arc::new(store.clone().writing_lines_by(variant.lines));
            let config = WriterConfig {
                lanes: variant.lanes,
                max_batch_lines: args
                    .batch_lines
                    .unwrap_or(WriterConfig::default().max_batch_lines),
                ..WriterConfig::default()
            };
            let took = batched(sink.clone(), config, rows(&meetings, per_call)).await?;
            raw.check(calls, per_call, variant.key).await?;
            // The first tenth of every call's lines again (a retried
            // batch): nothing may change.
            let again = rows(&meetings, per_call)
                .into_iter()
                .map(|mut call| {
                    call.truncate(per_call.div_ceil(10));
                    call
                })
                .collect();
            batched(sink, config, again).await?;
            raw.check(calls, per_call, &format!("{} written again", variant.key))
                .await?;
            say(format!(
                "run {run}: writer, {}: {:.0} lines/s",
                variant.about,
                rate(took)
            ));
            runs.push(took);
        }
    }
    let best_took = median(best_runs);
    say(format!("median: {best_key} {:.0} lines/s", rate(best_took)));
    let mut writers = serde_json::Map::new();
    for (variant, runs) in variants.iter().zip(writer_runs) {
        let took = median(runs);
        let ratio = best_took.as_secs_f64() / took.as_secs_f64();
        say(format!(
            "median: writer, {}: {:.0} lines/s, {ratio:.2} of {best_key}",
            variant.about,
            rate(took)
        ));
        writers.insert(
            variant.key.to_owned(),
            json!({ "lines_per_sec": rate(took), "vs_best": ratio }),
        );
    }

    let mut report = json!({
        "backend": match &raw { Raw::Pg(_) => "postgres", Raw::Sqlite(_) => "sqlite" },
        "rows": total,
        "calls": calls,
        "runs": args.runs,
        "best": best_key,
        "best_lines_per_sec": rate(best_took),
        "writer": Value::Object(writers),
    });
    if let Raw::Pg(p) = &raw {
        // Once: it is an order of magnitude slower than the rest.
        raw.empty().await?;
        let single_took = one_insert_per_line(p, &rows(&meetings, per_call)).await?;
        raw.check(calls, per_call, "one INSERT per line").await?;
        say(format!(
            "one INSERT per line (one run): {:.0} lines/s",
            rate(single_took)
        ));
        report["one_insert_per_line_lines_per_sec"] = json!(rate(single_took));
    }
    raw.empty().await?;
    println!("{report}");
    Ok(())
}
