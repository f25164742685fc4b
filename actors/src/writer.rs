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
    /// The call's lease epoch when this instance took it: the store writes
    /// all this only while the call's epoch is still that.
    pub lease: i64,
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
        lease: i64,
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
    fenced: Arc<FencedCalls>,
}

/// Calls whose writes the store refused (another instance holds them
/// now), kept for whoever stops their actors.
#[derive(Debug, Default)]
pub struct FencedCalls {
    /// Each call with the lease epoch its refused writes carried.
    calls: std::sync::Mutex<Vec<(MeetingId, i64)>>,
    added: tokio::sync::Notify,
}

impl FencedCalls {
    fn add(&self, refused: Vec<MeetingId>, batch: &WriteBatch) {
        if refused.is_empty() {
            return;
        }
        let meetings: Vec<(MeetingId, i64)> = batch
            .leases
            .iter()
            .filter(|(meeting, _)| refused.contains(meeting))
            .copied()
            .collect();
        if meetings.is_empty() {
            return;
        }
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(meetings);
        self.added.notify_one();
    }

    /// The calls fenced since the last take, with the lease epoch their
    /// refused writes carried.
    pub fn take(&self) -> Vec<(MeetingId, i64)> {
        std::mem::take(
            &mut *self
                .calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Resolves when a call was fenced (at once if one was since the last wait).
    pub async fn notified(&self) {
        self.added.notified().await;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the chunk writer has stopped")]
pub struct WriterStopped;

impl ChunkWriter {
    pub fn spawn(store: Arc<dyn TranscriptSink>, config: WriterConfig) -> (Self, JoinHandle<()>) {
        Self::spawn_told(store, config, None)
    }

    /// A writer that, after each commit, tells `committed` the highest line
    /// now stored for every call with lines in it (without waiting: news
    /// that find the channel full are dropped, the next commit carries
    /// them again).
    pub fn spawn_told(
        store: Arc<dyn TranscriptSink>,
        config: WriterConfig,
        committed: Option<mpsc::Sender<Committed>>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let fenced = Arc::new(FencedCalls::default());
        let task = tokio::spawn(run(store, config, rx, fenced.clone(), committed));
        let writer = Self {
            tx,
            waiting_events: Arc::new(AtomicUsize::new(0)),
            fenced,
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
        let lines = handoff.lines.len();
        self.tx
            .try_send(Submission::Lines { meeting, handoff })
            .map_err(|e| match e.into_inner() {
                Submission::Lines { handoff, .. } => Rejected(handoff),
                _ => Rejected(Handoff::default()),
            })?;
        metrics::gauge!(crate::metrics::TRANSCRIPT_BACKLOG).increment(lines as f64);
        Ok(())
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
    /// in order with its event log, without blocking the caller; `lease`
    /// is the call's lease epoch, as for its lines.
    pub fn set_error(&self, meeting: MeetingId, lease: i64, error: Option<String>) {
        self.send_soon(
            meeting,
            "meeting error",
            Submission::Error {
                meeting,
                lease,
                error,
            },
        );
    }

    /// The calls whose writes the store refused.
    pub fn fenced(&self) -> Arc<FencedCalls> {
        self.fenced.clone()
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
    fenced: Arc<FencedCalls>,
    committed: Option<mpsc::Sender<Committed>>,
) {
    // A submission made under another lease epoch of a call than the one
    // the open batch holds for it (the call was lost and taken back)
    // closes the batch and opens the next.
    let mut carried: Option<Submission> = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match rx.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = WriteBatch::default();
        let mut marks = Marks::default();
        let mut leases: HashMap<MeetingId, i64> = HashMap::new();
        let mut barriers = Vec::new();
        // Takes a submission into the batch: `Some(urgent)`, or `None` when
        // it must wait for the next batch.
        let mut take = |s: Submission, batch: &mut WriteBatch| -> Result<bool, Submission> {
            let lease_of =
                |meeting: MeetingId, lease: i64, leases: &mut HashMap<MeetingId, i64>| {
                    *leases.entry(meeting).or_insert(lease) == lease
                };
            match s {
                Submission::Lines { meeting, handoff } => {
                    if !lease_of(meeting, handoff.lease, &mut leases) {
                        return Err(Submission::Lines { meeting, handoff });
                    }
                    marks.note(meeting, &handoff);
                    batch
                        .lines
                        .extend(handoff.lines.into_iter().map(|l| (meeting, l)));
                    batch
                        .interrupted
                        .extend(handoff.interrupted.into_iter().map(|n| (meeting, n)));
                    Ok(false)
                }
                Submission::Event(event) => {
                    batch.events.push(event);
                    Ok(false)
                }
                Submission::Error {
                    meeting,
                    lease,
                    error,
                } => {
                    if !lease_of(meeting, lease, &mut leases) {
                        return Err(Submission::Error {
                            meeting,
                            lease,
                            error,
                        });
                    }
                    batch.errors.push((meeting, error));
                    Ok(false)
                }
                Submission::Barrier(done) => {
                    barriers.push(done);
                    Ok(true)
                }
            }
        };
        let mut urgent = match take(first, &mut batch) {
            Ok(urgent) => urgent,
            Err(_) => unreachable!("an empty batch takes any submission"),
        };
        let deadline = tokio::time::Instant::now() + config.max_delay;
        // A barrier closes the batch at once: someone waits on it (a call
        // being finalized), so what is queued goes now, not after the delay.
        while batch.lines.len() < config.max_batch_lines && !urgent && carried.is_none() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => match take(s, &mut batch) {
                    Ok(closes) => urgent = closes,
                    Err(next) => carried = Some(next),
                },
                Ok(None) | Err(_) => break,
            }
        }
        // Whatever is already queued joins it, without waiting.
        while batch.lines.len() < config.max_batch_lines && carried.is_none() {
            match rx.try_recv() {
                Ok(s) => {
                    if let Err(next) = take(s, &mut batch) {
                        carried = Some(next);
                    }
                }
                Err(_) => break,
            }
        }
        batch.high_water = marks.uncovered();
        batch.leases = leases.into_iter().collect();
        let mut refused_here = Vec::new();
        if config.lanes > 1 && batch.lines.len() >= config.max_batch_lines {
            let parts = batch.split(config.lanes);
            let refused =
                futures::future::join_all(parts.iter().map(|part| commit(store.as_ref(), part)))
                    .await;
            for (refused, part) in refused.into_iter().zip(&parts) {
                refused_here.extend(refused.iter().copied());
                fenced.add(refused, part);
            }
            if let Some(tx) = &committed {
                for part in &parts {
                    tell(tx, part, &refused_here);
                }
            }
        } else {
            let refused = commit(store.as_ref(), &batch).await;
            if let Some(tx) = &committed {
                tell(tx, &batch, &refused);
            }
            fenced.add(refused, &batch);
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

/// Per call, the highest line a commit stored.
pub type Committed = Vec<(MeetingId, i64)>;

/// Tells the listener which calls' lines a batch stored.
fn tell(tx: &mpsc::Sender<Committed>, batch: &WriteBatch, refused: &[MeetingId]) {
    let mut top: HashMap<MeetingId, i64> = HashMap::new();
    for (meeting, line) in &batch.lines {
        if !refused.contains(meeting) {
            let t = top.entry(*meeting).or_insert(0);
            *t = (*t).max(line.sequence_number);
        }
    }
    if !top.is_empty() {
        let _ = tx.try_send(top.into_iter().collect());
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

fn record_commit(batch: &WriteBatch, refused: &[MeetingId]) {
    if batch.lines.is_empty() {
        return;
    }
    let lag = metrics::histogram!(crate::metrics::COMMIT_LAG);
    let mut committed = 0;
    for (meeting, line) in &batch.lines {
        if !refused.contains(meeting) {
            lag.record(line.ready_at.elapsed().as_secs_f64());
            committed += 1;
        }
    }
    metrics::counter!(crate::metrics::LINES_COMMITTED).increment(committed);
    metrics::histogram!(crate::metrics::BATCH_LINES).record(batch.lines.len() as f64);
}

/// One `transcript.commit` span per call in the batch, in the call's trace,
/// open until the batch is committed; none unless a subscriber wants them
/// (OpenTelemetry export on).
fn commit_spans(batch: &WriteBatch) -> Vec<tracing::Span> {
    if !tracing::enabled!(target: "otel::scribe", tracing::Level::INFO) {
        return Vec::new();
    }
    let mut lines: std::collections::BTreeMap<MeetingId, usize> = Default::default();
    for (meeting, _) in &batch.lines {
        *lines.entry(*meeting).or_default() += 1;
    }
    lines
        .into_iter()
        .map(|(meeting, lines)| {
            let span = tracing::info_span!(
                target: "otel::scribe",
                "transcript.commit",
                meeting.id = %meeting,
                lines,
                batch_lines = batch.lines.len()
            );
            crate::trace::join(&span, meeting);
            span
        })
        .collect()
}

/// How long one write may take before it is abandoned and tried again
/// (a stalled connection can otherwise hang for as long as TCP lets it).
/// Writes are idempotent, so a write that did land is harmless to repeat.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes the batch, retrying with capped exponential backoff until it
/// lands; returns the calls whose writes the store refused (fenced).
async fn commit(store: &dyn TranscriptSink, batch: &WriteBatch) -> Vec<MeetingId> {
    if batch.is_empty() {
        return Vec::new();
    }
    let _spans = commit_spans(batch);
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1u32;
    loop {
        let outcome = tokio::time::timeout(WRITE_TIMEOUT, store.write(batch))
            .await
            .unwrap_or(Err(PortError::Timeout(WRITE_TIMEOUT)));
        match outcome {
            Ok(refused) => {
                record_commit(batch, &refused);
                metrics::gauge!(crate::metrics::TRANSCRIPT_BACKLOG)
                    .decrement(batch.lines.len() as f64);
                if !refused.is_empty() {
                    metrics::counter!(crate::metrics::FENCED_WRITES)
                        .increment(refused.len() as u64);
                    tracing::warn!(calls = ?refused, "writes refused: another instance holds these calls now");
                }
                return refused;
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
mod tests;
