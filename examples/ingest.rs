//! Ingest ceiling on PostgreSQL: how many transcript lines a second scribe's
//! batched writer commits when every call hands it lines as fast as it takes
//! them, against PostgreSQL's own `COPY` of the same rows and against the
//! original design (one INSERT per line, numbered by an in-memory counter),
//! all three in the same run, on the same table.
//!
//! ```sh
//! createdb -h 127.0.0.1 -U postgres scribe_ingest
//! cargo run --release --example ingest -- \
//!   --database-url postgres://postgres@127.0.0.1:5432/scribe_ingest
//! ```
//!
//! Each method starts from an empty `transcript_chunks` table and must store
//! every row exactly once; the run fails otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use clap::Parser;
use futures::StreamExt;
use scribe::domain::agent::NewAgent;
use scribe::domain::meeting::NewMeeting;
use scribe::store::{PoolSize, Store};
use scribe_actors::domain::{ChunkStatus, Speaker};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::TranscriptSink;
use scribe_actors::transcript::Line;
use scribe_actors::writer::{ChunkWriter, Handoff, Rejected, WriterConfig};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

#[derive(Debug, Parser)]
#[command(about = "Ingest ceiling of the batched writer against COPY and one INSERT per line")]
struct Args {
    /// An empty PostgreSQL database (its tables are created and emptied).
    #[arg(long)]
    database_url: String,
    /// Calls that produce lines at once.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Lines each call produces.
    #[arg(long, default_value_t = 100)]
    lines_per_call: usize,
    /// Connections for the one-INSERT-per-line baseline (scribe's writer
    /// uses one at a time).
    #[arg(long, default_value_t = 16)]
    baseline_connections: u32,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
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

/// Every row stored exactly once: the count, and no (meeting, sequence) twice.
async fn check_stored(pool: &sqlx::PgPool, expected: usize, method: &str) -> anyhow::Result<()> {
    let (count, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (meeting_id, sequence_number)) FROM transcript_chunks",
    )
    .fetch_one(pool)
    .await?;
    ensure!(
        count == expected as i64 && distinct == expected as i64,
        "{method}: stored {count} rows ({distinct} distinct), expected {expected}"
    );
    Ok(())
}

async fn empty(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE transcript_chunks")
        .execute(pool)
        .await?;
    sqlx::query("UPDATE meetings SET sequence_high_water = 0")
        .execute(pool)
        .await?;
    sqlx::query("VACUUM ANALYZE transcript_chunks")
        .execute(pool)
        .await?;
    Ok(())
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

/// scribe's path: every call hands its lines to the one batched writer as
/// fast as it takes them (a full queue hands them back, and the call tries
/// again), and the run ends when a flush confirms all are committed.
async fn batched(store: Arc<dyn TranscriptSink>, calls: Vec<Vec<Row>>) -> anyhow::Result<Duration> {
    let (writer, task) = ChunkWriter::spawn(store, WriterConfig::default());
    let began = Instant::now();
    let producers: Vec<_> = calls
        .into_iter()
        .map(|rows| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for row in rows {
                    let mut handoff = Handoff {
                        high_water: Some(row.sequence_number),
                        interrupted: Vec::new(),
                        lines: vec![Line {
                            sequence_number: row.sequence_number,
                            speaker: row.speaker,
                            text: row.text,
                            status: ChunkStatus::Completed,
                            item_id: None,
                            timestamp: row.timestamp,
                            start_ms: None,
                            end_ms: None,
                            ready_at: Instant::now(),
                        }],
                    };
                    loop {
                        match writer.try_submit(row.meeting, handoff) {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.database_url.starts_with("postgres"),
        "the ingest ceiling is measured on PostgreSQL: give a postgres:// URL"
    );
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    let store = Store::connect(&args.database_url, PoolSize(8)).await?;
    store.migrate().await?;
    let pool = PgPoolOptions::new()
        .max_connections(args.baseline_connections.max(1))
        .connect(&args.database_url)
        .await?;
    sqlx::query("TRUNCATE meetings, agents CASCADE")
        .execute(&pool)
        .await?;
    let agent = store
        .insert_agent(NewAgent::parse("Coach", "Help.", None)?)
        .await?;
    let mut meetings = Vec::with_capacity(args.calls);
    for n in 0..args.calls {
        let new = NewMeeting::parse("Ingest", &format!("user-{n}"), agent.id, None)?;
        meetings.push(store.insert_meeting(new).await?.id);
    }
    let total = args.calls * args.lines_per_call;
    say(format!(
        "{} calls x {} lines = {total} rows",
        args.calls, args.lines_per_call
    ));

    empty(&pool).await?;
    let copy_took = copy(&pool, &rows(&meetings, args.lines_per_call)).await?;
    check_stored(&pool, total, "COPY").await?;
    say(format!("COPY: {:.2} s", copy_took.as_secs_f64()));

    empty(&pool).await?;
    empty(&pool).await?;
    let store: Arc<dyn TranscriptSink> = Arc::new(store);
    let batched_took = batched(store, rows(&meetings, args.lines_per_call)).await?;
    check_stored(&pool, total, "batched writer").await?;
    say(format!(
        "scribe's batched writer: {:.2} s",
        batched_took.as_secs_f64()
    ));

    empty(&pool).await?;
    let single_took = one_insert_per_line(&pool, &rows(&meetings, args.lines_per_call)).await?;
    check_stored(&pool, total, "one INSERT per line").await?;
    say(format!(
        "one INSERT per line: {:.2} s",
        single_took.as_secs_f64()
    ));
    empty(&pool).await?;

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "{}",
        json!({
            "rows": total,
            "calls": args.calls,
            "copy_lines_per_sec": rate(copy_took),
            "writer_lines_per_sec": rate(batched_took),
            "one_insert_per_line_lines_per_sec": rate(single_took),
            "writer_vs_copy": copy_took.as_secs_f64() / batched_took.as_secs_f64(),
            "writer_vs_one_insert_per_line": single_took.as_secs_f64() / batched_took.as_secs_f64(),
        })
    );
    Ok(())
}
