//! The batched chunk writer: one task for the whole process, shared by every
//! call, so that a thousand calls each producing a line every few seconds
//! become a few multi-row statements per second instead of a thousand
//! single-row ones.
//!
//! Producers hand over lines with [`ChunkWriter::try_submit`], which never
//! waits: when the bounded queue is full the lines are handed back and stay
//! with their call until the next attempt (backpressure without blocking a
//! socket reader). A batch closes at `max_batch_lines` lines or after
//! `max_delay`, whichever comes first, and is retried with capped backoff
//! until the store takes it: lines given to the writer are never dropped.
//! Event-log entries travel the same way, so they are committed in order
//! with the lines, and a [`ChunkWriter::flush`] covers both.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::call_log::CallEvent;
use crate::domain::Line;
use crate::ids::MeetingId;
use crate::ports::{LoggedEvent, PortError, TranscriptSink, WriteBatch, error_chain};

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Close a batch at this many lines.
    pub max_batch_lines: usize,
    /// Close a batch this long after its first line arrived.
    pub max_delay: Duration,
    /// Submissions queued at most (each carries one call's ready lines).
    pub queue_capacity: usize,
    /// Transactions a full batch (one closed at `max_batch_lines`, so the
    /// writer is behind) is split into and committed at once, each on its
    /// own connection, a meeting always in the same one (so its lines,
    /// marks and events keep their order). A batch closed by its delay is
    /// written whole. 1 always writes whole batches (SQLite has one writer
    /// at a time anyway).
    pub lanes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch_lines: 2000,
            max_delay: Duration::from_millis(20),
            queue_capacity: 4096,
            lanes: 1,
        }
    }
}

/// What one call hands the writer at a time.
#[derive(Debug, Default, PartialEq)]
pub struct Handoff {
    pub lines: Vec<Line>,
    /// The call's highest number handed out, when it grew.
    pub high_water: Option<i64>,
    /// Lines handed over before that are `interrupted` now.
    pub interrupted: Vec<i64>,
}

impl Handoff {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.high_water.is_none() && self.interrupted.is_empty()
    }
}

enum Submission {
    Lines {
        meeting: MeetingId,
        handoff: Handoff,
    },
    Event(LoggedEvent),
    /// The meeting's `error` while it is active (`None` clears it).
    Error {
        meeting: MeetingId,
        error: Option<String>,
    },
    Barrier(oneshot::Sender<()>),
}

/// Handed back when the queue is full or the writer has stopped.
#[derive(Debug)]
pub struct Rejected(pub Handoff);

/// Event-log entries that may wait for room in a full queue at once.
pub const MAX_WAITING_EVENTS: usize = 10_000;

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct ChunkWriter {
    tx: mpsc::Sender<Submission>,
    waiting_events: Arc<AtomicUsize>,
}

#[derive(Debug, thiserror::Error)]
#[error("the chunk writer has stopped")]
pub struct WriterStopped;

impl ChunkWriter {
    pub fn spawn(store: Arc<dyn TranscriptSink>, config: WriterConfig) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let task = tokio::spawn(run(store, config, rx));
        let writer = Self {
            tx,
            waiting_events: Arc::new(AtomicUsize::new(0)),
        };
        (writer, task)
    }

    /// Queues a call's lines (and its counter high-water, and lines that
    /// became `interrupted`) without waiting; hands them back when the
    /// queue is full.
    pub fn try_submit(&self, meeting: MeetingId, handoff: Handoff) -> Result<(), Rejected> {
        if handoff.is_empty() {
            return Ok(());
        }
        self.tx
            .try_send(Submission::Lines { meeting, handoff })
            .map_err(|e| match e.into_inner() {
                Submission::Lines { handoff, .. } => Rejected(handoff),
                _ => Rejected(Handoff::default()),
            })
    }

    /// Queues an event-log entry without blocking the caller. When the
    /// queue is full (the database is stalled) the entry waits for room in a
    /// task of its own; at most [`MAX_WAITING_EVENTS`] wait at once, and
    /// entries past that are dropped with a warning: memory stays bounded,
    /// and transcript lines never take this path.
    pub fn log(&self, meeting: MeetingId, event: CallEvent) {
        let kind = event.kind();
        let event = Submission::Event(LoggedEvent {
            meeting,
            kind,
            detail: event.detail(),
            at: chrono::Utc::now(),
        });
        self.send_soon(meeting, kind.as_str(), event);
    }

    /// Sets (or, with `None`, clears) the error an active meeting shows,
    /// in order with its event log, without blocking the caller.
    pub fn set_error(&self, meeting: MeetingId, error: Option<String>) {
        self.send_soon(
            meeting,
            "meeting error",
            Submission::Error { meeting, error },
        );
    }

    /// Queues at once, or in a task of its own when the queue is full (at
    /// most [`MAX_WAITING_EVENTS`] waiting; past that it is dropped with a
    /// warning).
    fn send_soon(&self, meeting: MeetingId, what: &'static str, submission: Submission) {
        if let Err(mpsc::error::TrySendError::Full(submission)) = self.tx.try_send(submission) {
            if self.waiting_events.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_EVENTS {
                self.waiting_events.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(%meeting, what, "writer queue full: event-log entry dropped");
                return;
            }
            let (tx, waiting) = (self.tx.clone(), self.waiting_events.clone());
            tokio::spawn(async move {
                let _ = tx.send(submission).await;
                waiting.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    /// Resolves once everything submitted before it is committed.
    pub async fn flush(&self) -> Result<(), WriterStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Submission::Barrier(tx))
            .await
            .map_err(|_| WriterStopped)?;
        rx.await.map_err(|_| WriterStopped)
    }
}

async fn run(
    store: Arc<dyn TranscriptSink>,
    config: WriterConfig,
    mut rx: mpsc::Receiver<Submission>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = WriteBatch::default();
        let mut marks = Marks::default();
        let mut barriers = Vec::new();
        let mut take = |s: Submission, batch: &mut WriteBatch| match s {
            Submission::Lines { meeting, handoff } => {
                marks.note(meeting, &handoff);
                batch
                    .lines
                    .extend(handoff.lines.into_iter().map(|l| (meeting, l)));
                batch
                    .interrupted
                    .extend(handoff.interrupted.into_iter().map(|n| (meeting, n)));
                false
            }
            Submission::Event(event) => {
                batch.events.push(event);
                false
            }
            Submission::Error { meeting, error } => {
                batch.errors.push((meeting, error));
                false
            }
            Submission::Barrier(done) => {
                barriers.push(done);
                true
            }
        };
        let mut urgent = take(first, &mut batch);
        let deadline = tokio::time::Instant::now() + config.max_delay;
        // A barrier closes the batch at once: someone waits on it (a call
        // being finalized), so what is queued goes now, not after the delay.
        while batch.lines.len() < config.max_batch_lines && !urgent {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => urgent = take(s, &mut batch),
                Ok(None) | Err(_) => break,
            }
        }
        // Whatever is already queued joins it, without waiting.
        while batch.lines.len() < config.max_batch_lines {
            match rx.try_recv() {
                Ok(s) => {
                    take(s, &mut batch);
                }
                Err(_) => break,
            }
        }
        batch.high_water = marks.uncovered();
        if config.lanes > 1 && batch.lines.len() >= config.max_batch_lines {
            let parts = batch.split(config.lanes);
            futures::future::join_all(parts.iter().map(|part| commit(store.as_ref(), part))).await;
        } else {
            commit(store.as_ref(), &batch).await;
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

/// The counter marks a batch must store. Every reader takes a meeting's
/// top number as the larger of its stored mark and its highest stored
/// line, so a mark that a line of the same batch reaches is already
/// stored by that line; only a number handed out ahead of its line (a
/// turn still being spoken, lines shed under backpressure) needs the
/// `meetings` row updated. In a steady stream of finished lines that is
/// one UPDATE per batch saved for every meeting in it.
#[derive(Default)]
struct Marks {
    /// Per meeting: the highest line in the batch, the highest mark.
    top: HashMap<MeetingId, (i64, i64)>,
}

impl Marks {
    fn note(&mut self, meeting: MeetingId, handoff: &Handoff) {
        let line = handoff.lines.iter().map(|l| l.sequence_number).max();
        if line.is_none() && handoff.high_water.is_none() {
            return;
        }
        let entry = self.top.entry(meeting).or_insert((0, 0));
        entry.0 = entry.0.max(line.unwrap_or(0));
        entry.1 = entry.1.max(handoff.high_water.unwrap_or(0));
    }

    fn uncovered(self) -> Vec<(MeetingId, i64)> {
        self.top
            .into_iter()
            .filter(|(_, (line, mark))| mark > line)
            .map(|(meeting, (_, mark))| (meeting, mark))
            .collect()
    }
}

fn record_commit(batch: &WriteBatch) {
    if batch.lines.is_empty() {
        return;
    }
    let lag = metrics::histogram!(crate::metrics::COMMIT_LAG);
    for (_, line) in &batch.lines {
        lag.record(line.ready_at.elapsed().as_secs_f64());
    }
    metrics::counter!(crate::metrics::LINES_COMMITTED).increment(batch.lines.len() as u64);
    metrics::histogram!(crate::metrics::BATCH_LINES).record(batch.lines.len() as f64);
}

/// How long one write may take before it is abandoned and tried again
/// (a stalled connection can otherwise hang for as long as TCP lets it).
/// Writes are idempotent, so a write that did land is harmless to repeat.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes the batch, retrying with capped exponential backoff until it lands.
async fn commit(store: &dyn TranscriptSink, batch: &WriteBatch) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1u32;
    loop {
        let outcome = tokio::time::timeout(WRITE_TIMEOUT, store.write(batch))
            .await
            .unwrap_or(Err(PortError::Timeout(WRITE_TIMEOUT)));
        match outcome {
            Ok(()) => {
                record_commit(batch);
                return;
            }
            Err(error) => {
                metrics::counter!(crate::metrics::WRITE_RETRIES).increment(1);
                tracing::warn!(error = %error_chain(&error), attempt, lines = batch.lines.len(), events = batch.events.len(), "batch not committed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::domain::MeetingStatus;
    use crate::fakes::store::MemoryStore;
    use crate::fakes::user_line;

    fn lines(from: i64, n: i64) -> Vec<Line> {
        (from..from + n)
            .map(|n| user_line(n, format!("line {n}")))
            .collect()
    }

    fn handoff(lines: Vec<Line>, high_water: Option<i64>) -> Handoff {
        Handoff {
            lines,
            high_water,
            interrupted: Vec::new(),
        }
    }

    fn config(max_batch_lines: usize, max_delay_ms: u64, queue_capacity: usize) -> WriterConfig {
        WriterConfig {
            max_batch_lines,
            max_delay: Duration::from_millis(max_delay_ms),
            queue_capacity,
            lanes: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_closes_at_its_line_limit_without_waiting_for_the_delay() {
        let store = MemoryStore::new();
        let meetings: Vec<_> = (0..3)
            .map(|_| store.add_meeting(MeetingStatus::Active))
            .collect();
        let (writer, _task) = ChunkWriter::spawn(store.clone(), config(4, 1_000, 16));
        let start = Instant::now();
        for (n, meeting) in meetings.iter().enumerate() {
            writer
                .try_submit(*meeting, handoff(lines(1, 2), None))
                .unwrap_or_else(|_| panic!("submission {n} queued"));
        }
        let commits = store
            .wait_for("two batches", |m| {
                (m.commits.len() >= 2).then(|| m.commits.clone())
            })
            .await;
        // Two submissions fill the first batch: it is written at once.
        assert_eq!(commits[0].0, 4);
        assert_eq!(commits[0].1, start, "no delay before a full batch");
        // The last one waits for the delay, then goes alone.
        assert_eq!(commits[1].0, 2);
        assert_eq!(commits[1].1 - start, Duration::from_secs(1));
        let stored = store.read(|m| m.meeting(meetings[2]).lines.len());
        assert_eq!(stored, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_line_waits_for_the_delay_then_is_written() {
        let store = MemoryStore::new();
        let meeting = store.add_meeting(MeetingStatus::Active);
        let (writer, _task) = ChunkWriter::spawn(store.clone(), config(500, 20, 16));
        writer
            .try_submit(meeting, handoff(lines(1, 1), Some(1)))
            .expect("queued");
        tokio::time::advance(Duration::from_millis(19)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            store.read(|m| m.commits.is_empty()),
            "nothing written before the delay"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        store
            .wait_for("the line", |m| (m.commits.len() == 1).then_some(()))
            .await;
        let (lines, high) = store.read(|m| {
            (
                m.meeting(meeting).lines.len(),
                m.meeting(meeting).top_number(),
            )
        });
        assert_eq!((lines, high), (1, 1));
    }

    /// Meetings of the two lanes: four whose uuid is even, four odd.
    fn meetings_of_two_lanes(store: &MemoryStore) -> Vec<MeetingId> {
        let (mut even, mut odd) = (Vec::new(), Vec::new());
        while even.len() < 4 || odd.len() < 4 {
            let id = store.add_meeting(MeetingStatus::Active);
            let lane = if id.as_uuid().as_u128().is_multiple_of(2) {
                &mut even
            } else {
                &mut odd
            };
            if lane.len() < 4 {
                lane.push(id);
            }
        }
        even.into_iter().chain(odd).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_as_two_transactions_by_meeting_and_a_late_one_whole() {
        let store = MemoryStore::new();
        let meetings = meetings_of_two_lanes(&store);
        let two_lanes = WriterConfig {
            lanes: 2,
            ..config(16, 1_000, 64)
        };
        let (writer, _task) = ChunkWriter::spawn(store.clone(), two_lanes);
        // Eight meetings of two lines fill the batch: it goes at once, in
        // two transactions of one lane's four meetings each.
        for meeting in &meetings {
            writer
                .try_submit(*meeting, handoff(lines(1, 2), Some(3)))
                .expect("queued");
        }
        let commits = store
            .wait_for("both lanes", |m| {
                (m.commits.len() == 2).then(|| m.commits.clone())
            })
            .await;
        assert_eq!(commits.iter().map(|c| c.0).collect::<Vec<_>>(), [8, 8]);
        // Each meeting's lines and its mark (ahead of them) are stored.
        for meeting in &meetings {
            let (lines, mark) = store.read(|m| {
                let meeting = m.meeting(*meeting);
                (meeting.lines.len(), meeting.high_water)
            });
            assert_eq!((lines, mark), (2, 3));
        }
        // Two meetings, one per lane, with one line each: the delay closes
        // the batch before it is full, and it goes whole.
        for meeting in [meetings[0], meetings[7]] {
            writer
                .try_submit(meeting, handoff(lines(3, 1), None))
                .expect("queued");
        }
        writer.flush().await.expect("flushed");
        let commits = store.read(|m| m.commits.clone());
        assert_eq!(commits.len(), 3, "the short batch is one transaction");
        assert_eq!(commits[2].0, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_mark_ahead_of_the_batchs_lines_is_written_as_a_mark() {
        let store = MemoryStore::new();
        let (covered, ahead, alone) = (
            store.add_meeting(MeetingStatus::Active),
            store.add_meeting(MeetingStatus::Active),
            store.add_meeting(MeetingStatus::Active),
        );
        let (writer, _task) = ChunkWriter::spawn(store.clone(), config(500, 20, 16));
        // Lines 1-3 with their numbers handed out one by one: the lines
        // store the top number themselves.
        for n in 1..=3 {
            writer
                .try_submit(covered, handoff(lines(n, 1), Some(n)))
                .expect("queued");
        }
        // Lines 1-2 while number 4 is already handed out (a turn being
        // spoken), and a number with no line at all.
        writer
            .try_submit(ahead, handoff(lines(1, 2), Some(4)))
            .expect("queued");
        writer
            .try_submit(alone, handoff(Vec::new(), Some(7)))
            .expect("queued");
        writer.flush().await.expect("flushed");
        let marks = store.read(|m| {
            [covered, ahead, alone].map(|id| {
                let meeting = m.meeting(id);
                (meeting.high_water, meeting.top_number())
            })
        });
        assert_eq!(marks, [(0, 3), (4, 4), (7, 7)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_hands_lines_back_and_loses_none_of_them() {
        let store = MemoryStore::new();
        let meeting = store.add_meeting(MeetingStatus::Active);
        store.hold_writes();
        let (writer, _task) = ChunkWriter::spawn(store.clone(), config(1, 1, 2));
        // The writer takes one submission into a batch (and waits on the
        // stalled store), the queue holds two more, the fourth comes back.
        let mut refused = None;
        for n in 0..10 {
            let sent = lines(n + 1, 1);
            if let Err(Rejected(back)) =
                writer.try_submit(meeting, handoff(sent.clone(), Some(n + 1)))
            {
                assert_eq!(
                    back,
                    handoff(sent, Some(n + 1)),
                    "the lines come back whole"
                );
                refused = Some((n + 1, back));
                break;
            }
            tokio::task::yield_now().await;
        }
        let (first_refused, back) = refused.expect("the queue filled up");
        assert_eq!(first_refused, 4, "one in the writer's hands, two queued");
        store.open_writes();
        writer.flush().await.expect("the queue drains");
        writer
            .try_submit(meeting, back)
            .unwrap_or_else(|_| panic!("room again"));
        writer.flush().await.expect("writer runs");
        let stored: Vec<i64> = store.read(|m| m.meeting(meeting).lines.keys().copied().collect());
        assert_eq!(stored, [1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_is_retried_with_backoff_until_it_lands() {
        let store = MemoryStore::new();
        let meeting = store.add_meeting(MeetingStatus::Active);
        store.fail_writes(3);
        let (writer, _task) = ChunkWriter::spawn(store.clone(), config(500, 20, 16));
        let start = Instant::now();
        writer
            .try_submit(meeting, handoff(lines(1, 3), None))
            .expect("queued");
        writer.flush().await.expect("writer runs");
        let (attempts, stored) = store.read(|m| (m.write_attempts, m.meeting(meeting).lines.len()));
        assert_eq!((attempts, stored), (4, 3), "three failures, then the write");
        // The flush closes the batch at once; then 50 + 100 + 200 ms of backoff.
        assert_eq!(Instant::now() - start, Duration::from_millis(350));
    }

    #[tokio::test(start_paused = true)]
    async fn event_log_entries_wait_for_room_without_blocking_the_caller() {
        let store = MemoryStore::new();
        let meeting = store.add_meeting(MeetingStatus::Active);
        store.hold_writes();
        let (writer, _task) = ChunkWriter::spawn(store.clone(), config(1, 1, 1));
        for n in 0..20 {
            writer.log(
                meeting,
                crate::call_log::CallEvent::RealtimeError(crate::call_log::RealtimeError {
                    error: Some(format!("error {n}")),
                    ..Default::default()
                }),
            );
        }
        store.open_writes();
        writer.flush().await.expect("writer runs");
        store
            .wait_for("every entry", |m| {
                (m.meeting(meeting).events.len() == 20).then_some(())
            })
            .await;
    }
}
