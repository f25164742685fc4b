//! Benchmarks of the hot paths: parsing and dispatching realtime frames
//! (audio deltas must be skipped cheaply), placing lines in conversation
//! order, and the batched writer committing to SQLite at several batch
//! sizes.
//!
//! ```sh
//! cargo bench --bench hot_paths
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use scribe::store::{PoolSize, Store};
use scribe_actors::domain::{ChunkStatus, Speaker};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::{TranscriptSink, WriteBatch};
use scribe_actors::transcript::{Conversation, Line};
use scribe_actors::voice::event::parse;
use scribe_actors::voice::gpt_live::parse_live;
use serde_json::json;

/// One GA turn as the service sends it: the user's item, the agent's reply
/// word by word with two 1,000-character audio deltas a word, the
/// transcription arriving after the reply.
fn turn_frames(n: usize, words: usize) -> Vec<String> {
    let (user, agent, previous) = (
        format!("item_u{n}"),
        format!("item_a{n}"),
        format!("item_a{}", n.saturating_sub(1)),
    );
    let audio = "A".repeat(1000);
    let mut frames = vec![
        json!({"type":"input_audio_buffer.committed","event_id":"e1","item_id":user,"previous_item_id":previous}),
        json!({"type":"conversation.item.added","event_id":"e2","previous_item_id":previous,"item":{"id":user,"type":"message","role":"user","status":"completed","content":[{"type":"input_audio","transcript":null}]}}),
        json!({"type":"response.created","event_id":"e3","response":{"id":format!("resp{n}"),"status":"in_progress","output":[]}}),
        json!({"type":"conversation.item.added","event_id":"e4","previous_item_id":user,"item":{"id":agent,"type":"message","role":"assistant","status":"in_progress","content":[]}}),
    ];
    for w in 0..words {
        for _ in 0..2 {
            frames.push(json!({"type":"response.output_audio.delta","event_id":"e5","response_id":format!("resp{n}"),"item_id":agent,"output_index":0,"content_index":0,"delta":audio}));
        }
        frames.push(json!({"type":"response.output_audio_transcript.delta","event_id":"e6","response_id":format!("resp{n}"),"item_id":agent,"output_index":0,"content_index":0,"delta":format!("word{w} ")}));
    }
    frames.push(json!({"type":"response.output_audio_transcript.done","event_id":"e7","response_id":format!("resp{n}"),"item_id":agent,"output_index":0,"content_index":0,"transcript":"the reply"}));
    frames.push(json!({"type":"response.done","event_id":"e8","response":{"id":format!("resp{n}"),"status":"completed","output":[]}}));
    frames.push(json!({"type":"conversation.item.input_audio_transcription.completed","event_id":"e9","item_id":user,"content_index":0,"transcript":"what the user said"}));
    frames.into_iter().map(|f| f.to_string()).collect()
}

fn frames(c: &mut Criterion) {
    let turn = turn_frames(1, 12);
    let audio = turn
        .iter()
        .find(|f| f.contains("output_audio.delta"))
        .cloned()
        .unwrap_or_default();
    let delta = turn
        .iter()
        .find(|f| f.contains("transcript.delta"))
        .cloned()
        .unwrap_or_default();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("audio delta (skipped)", |b| b.iter(|| parse(&audio)));
    group.bench_function("transcript delta", |b| b.iter(|| parse(&delta)));
    group.finish();

    let mut group = c.benchmark_group("parse and place");
    group.throughput(Throughput::Elements(turn.len() as u64));
    group.bench_function("one turn, 12 words", |b| {
        b.iter(|| {
            let mut conversation = Conversation::new(1);
            for frame in &turn {
                if let Ok(event) = parse(frame) {
                    conversation.apply(&event, Utc::now());
                }
            }
            conversation.take_ready()
        });
    });
    group.finish();
}

/// One second of a GPT-Live sideband as the service sends it (`type`
/// first): the caller's audio (`session.input_audio.append`, 24 kHz PCM16
/// in 20 ms chunks: 50 frames of 1,280 base64 characters, 64 KB/s), the
/// agent's audio at the same rate, and five transcript fragments a side.
fn sideband_second() -> Vec<String> {
    let chunk = "A".repeat(1_280);
    let mut frames = Vec::new();
    for n in 0..50u64 {
        frames.push(format!(
            r#"{{"type":"session.input_audio.append","audio":"{chunk}"}}"#
        ));
        frames.push(format!(
            r#"{{"type":"session.output_audio.delta","event_id":"event_{n}","delta":"{chunk}"}}"#
        ));
        if n % 10 == 0 {
            for side in ["input", "output"] {
                frames.push(format!(
                    r#"{{"type":"session.{side}_transcript.delta","event_id":"event_{n}{side}","delta":" word","start_ms":{},"end_ms":{}}}"#,
                    n * 20,
                    n * 20 + 200
                ));
            }
        }
    }
    frames
}

fn live_sideband(c: &mut Criterion) {
    let second = sideband_second();
    let append = second[0].clone();
    let mut group = c.benchmark_group("parse (GPT-Live sideband)");
    group.throughput(Throughput::Elements(1));
    group.bench_function("caller audio (session.input_audio.append)", |b| {
        b.iter(|| parse_live(&append))
    });
    group.throughput(Throughput::Elements(second.len() as u64));
    group.bench_function("one second: caller and agent audio, fragments", |b| {
        b.iter(|| second.iter().filter_map(|f| parse_live(f).ok()).count())
    });
    group.finish();
}

fn ordering(c: &mut Criterion) {
    // Twenty turns already parsed: the cost of slots and ordering alone.
    let events: Vec<_> = (1..=20)
        .flat_map(|n| turn_frames(n, 12))
        .filter(|f| !f.contains("output_audio.delta"))
        .filter_map(|f| parse(&f).ok())
        .collect();
    let mut group = c.benchmark_group("ordering");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("20 turns", |b| {
        b.iter(|| {
            let mut conversation = Conversation::new(1);
            for event in &events {
                conversation.apply(event, Utc::now());
            }
            conversation.take_ready()
        });
    });
    group.finish();
}

fn writer(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("folder");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = runtime.block_on(async {
        let store = Store::connect(&url, PoolSize(4)).await.expect("store");
        store.migrate().await.expect("migrated");
        store
    });
    let meetings: Vec<MeetingId> = runtime.block_on(async {
        let agent = store
            .insert_agent(
                scribe::domain::agent::NewAgent::parse("Coach", "Help.", None).expect("valid"),
            )
            .await
            .expect("agent");
        let mut ids = Vec::new();
        for n in 0..50 {
            let new = scribe::domain::meeting::NewMeeting::parse(
                "Bench",
                &format!("user-{n}"),
                agent.id,
                None,
            )
            .expect("valid");
            ids.push(store.insert_meeting(new).await.expect("meeting").id);
        }
        ids
    });
    let store: Arc<dyn TranscriptSink> = Arc::new(store);
    let mut next = 1i64;
    let mut group = c.benchmark_group("writer (SQLite)");
    group.measurement_time(Duration::from_secs(5));
    for size in [1usize, 50, 500] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| {
                let lines = (0..size)
                    .map(|i| {
                        let meeting = meetings[i % meetings.len()];
                        let line = Line {
                            sequence_number: next + (i / meetings.len()) as i64,
                            speaker: Speaker::User,
                            text: "a line of about the usual length, said by someone".into(),
                            status: ChunkStatus::Completed,
                            item_id: None,
                            timestamp: Utc::now(),
                            start_ms: None,
                            end_ms: None,
                            ready_at: std::time::Instant::now(),
                        };
                        (meeting, line)
                    })
                    .collect();
                next += (size / meetings.len()) as i64 + 1;
                let batch = WriteBatch {
                    lines,
                    ..WriteBatch::default()
                };
                runtime.block_on(store.write(&batch)).expect("written");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, frames, live_sideband, ordering, writer);
criterion_main!(benches);
