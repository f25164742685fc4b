//! The NotesKeeper on in-memory ports, in paused time: updates by count
//! and by time, each reading only the lines after the notes; nothing once
//! the call is over; a failing model changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::call_log::Notes;
use crate::domain::{EventKind, MeetingStatus};
use crate::fakes::store::MemoryStore;
use crate::fakes::user_line;
use crate::ports::{AnalysisError, AnalysisInput, AnalysisResult, LogFn, NotesInput};
use crate::writer::{Handoff, WriterConfig};

/// Notes naming the lines each update read; fails while `failing`.
#[derive(Default)]
struct Taker {
    read: std::sync::Mutex<Vec<(Option<i64>, Vec<i64>)>>,
    calls: AtomicUsize,
    failing: AtomicBool,
}

#[async_trait]
impl Analyzer for Taker {
    async fn analyze(
        &self,
        _input: &AnalysisInput,
        _log: &LogFn<'_>,
    ) -> Result<AnalysisResult, AnalysisError> {
        unreachable!("the keeper never analyses")
    }

    async fn take_notes(
        &self,
        input: &NotesInput,
        log: &LogFn<'_>,
    ) -> Result<String, AnalysisError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(AnalysisError::Model {
                attempts: 1,
                last_error: "down".into(),
                detail: "down".into(),
            });
        }
        log(CallEvent::ModelUsage(crate::call_log::Usage {
            purpose: crate::call_log::purpose::NOTES.into(),
            prompt_tokens: 10,
            ..Default::default()
        }));
        let read: Vec<i64> = input.lines.iter().map(|(n, _, _)| *n).collect();
        self.read
            .lock()
            .expect("lock")
            .push((input.notes.as_ref().map(|n| n.through_line), read.clone()));
        Ok(format!("notes to {}", read.last().copied().unwrap_or(0)))
    }
}

struct Rig {
    store: Arc<MemoryStore>,
    taker: Arc<Taker>,
    writer: ChunkWriter,
    meeting: MeetingId,
    _tasks: (JoinHandle<()>, JoinHandle<()>),
}

fn rig(config: NotesConfig) -> Rig {
    let store = MemoryStore::new();
    let meeting = store.add_meeting(MeetingStatus::Active);
    let taker = Arc::new(Taker::default());
    let (tx, rx) = mpsc::channel(NEWS_CAPACITY);
    let (writer, writer_task) = ChunkWriter::spawn_told(
        store.clone(),
        WriterConfig {
            max_delay: Duration::from_millis(5),
            ..WriterConfig::default()
        },
        Some(tx),
    );
    let deps = NotesDeps {
        store: store.clone(),
        analyzer: taker.clone(),
        writer: writer.clone(),
    };
    let keeper = spawn(deps, config, rx);
    Rig {
        store,
        taker,
        writer,
        meeting,
        _tasks: (writer_task, keeper),
    }
}

impl Rig {
    fn say(&self, from: i64, n: i64) {
        let lines = (from..from + n)
            .map(|n| user_line(n, format!("line {n}")))
            .collect();
        self.writer
            .try_submit(
                self.meeting,
                Handoff {
                    lines,
                    ..Handoff::default()
                },
            )
            .unwrap_or_else(|_| panic!("queued"));
    }

    async fn notes_through(&self, line: i64) -> Notes {
        let meeting = self.meeting;
        self.store
            .wait_for("the notes", |m| {
                m.meeting(meeting)
                    .notes
                    .clone()
                    .filter(|n| n.through_line >= line)
            })
            .await
    }
}

const BY_COUNT: NotesConfig = NotesConfig {
    every_lines: 4,
    every: Duration::ZERO,
    max_at_once: 2,
    max_lines: 100,
};

#[tokio::test(start_paused = true)]
async fn notes_follow_every_n_lines_reading_only_the_lines_after_them() {
    let rig = rig(BY_COUNT);
    rig.say(1, 3);
    rig.writer.flush().await.expect("written");
    // Three lines: not yet.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.taker.calls.load(Ordering::SeqCst), 0);
    rig.say(4, 2);
    let first = rig.notes_through(5).await;
    assert_eq!((first.version, first.text.as_str()), (1, "notes to 5"));
    rig.say(6, 4);
    let second = rig.notes_through(9).await;
    assert_eq!((second.version, second.text.as_str()), (2, "notes to 9"));
    let read = rig.taker.read.lock().expect("lock").clone();
    assert_eq!(
        read,
        vec![(None, vec![1, 2, 3, 4, 5]), (Some(5), vec![6, 7, 8, 9])]
    );
    // Each update is logged with its notes, and its tokens.
    rig.writer.flush().await.expect("written");
    let logged = rig.store.read(|m| {
        let meeting = m.meeting(rig.meeting);
        (
            meeting.logged(EventKind::NotesUpdated).len(),
            meeting.logged(EventKind::ModelUsage).len(),
        )
    });
    assert_eq!(logged, (2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_line_stored_late_holds_the_notes_back_and_is_never_passed_over() {
    let rig = rig(NotesConfig {
        every_lines: 2,
        ..BY_COUNT
    });
    // Line 3 (a user's words still being transcribed) comes after 4.
    rig.say(1, 2);
    rig.say(4, 1);
    let first = rig.notes_through(2).await;
    assert_eq!(first.through_line, 2, "the notes stop before line 3");
    rig.writer.flush().await.expect("written");
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.say(3, 1);
    rig.say(5, 1);
    let second = rig.notes_through(5).await;
    assert_eq!(second.version, 2);
    let read = rig.taker.read.lock().expect("lock").clone();
    assert_eq!(read, vec![(None, vec![1, 2]), (Some(2), vec![3, 4, 5])]);
}

#[tokio::test(start_paused = true)]
async fn notes_come_by_time_when_lines_are_few() {
    let rig = rig(NotesConfig {
        every_lines: 0,
        every: Duration::from_secs(30),
        ..BY_COUNT
    });
    rig.say(1, 1);
    rig.writer.flush().await.expect("written");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(rig.taker.calls.load(Ordering::SeqCst), 0, "not before 30 s");
    let notes = rig.notes_through(1).await;
    assert_eq!(notes.text, "notes to 1");
    // Nothing new: no update, however long.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(rig.taker.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_model_leaves_the_notes_and_the_call_alone_then_catches_up() {
    let rig = rig(BY_COUNT);
    rig.taker.failing.store(true, Ordering::SeqCst);
    rig.say(1, 4);
    rig.store
        .wait_for("a failed try", |_| {
            (rig.taker.calls.load(Ordering::SeqCst) >= 1).then_some(())
        })
        .await;
    // The lines are stored; no notes.
    rig.say(5, 4);
    rig.writer.flush().await.expect("written");
    let (lines, notes) = rig.store.read(|m| {
        (
            m.meeting(rig.meeting).lines.len(),
            m.meeting(rig.meeting).notes.clone(),
        )
    });
    assert_eq!((lines, notes), (8, None));
    rig.taker.failing.store(false, Ordering::SeqCst);
    // The next try (after the pause) covers everything since the start.
    let notes = rig.notes_through(8).await;
    assert_eq!(notes.version, 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_no_longer_active_gets_no_notes() {
    let rig = rig(BY_COUNT);
    rig.say(1, 2);
    rig.writer.flush().await.expect("written");
    rig.store.update(|m| {
        m.meetings
            .get_mut(&rig.meeting)
            .map(|f| f.status = MeetingStatus::Processing)
    });
    rig.say(3, 4);
    rig.writer.flush().await.expect("written");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rig.taker.calls.load(Ordering::SeqCst), 0);
    assert!(rig.store.read(|m| m.meeting(rig.meeting).notes.is_none()));
}
