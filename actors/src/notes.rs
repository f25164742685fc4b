//! The NotesKeeper: running notes of every live call, so that the analysis
//! at the call's end reads a page of notes and the last few lines instead
//! of the whole transcript.
//!
//! One task for the whole instance. The ChunkWriter tells it, after each
//! commit, the highest line stored for each call ([`crate::writer::Committed`]);
//! a call's notes are updated once `every_lines` lines were stored since
//! the notes' last line, or `every` after the last update when any were.
//! An update reads only the notes and the lines after them
//! ([`NotesStore::notes_input`]), asks the model for the notes rewritten
//! ([`Analyzer::take_notes`]), and saves them with the line they end at
//! ([`NotesStore::save_notes`]: only while the call is active, only
//! forward). One update a call at a time, `max_at_once` in all.
//!
//! Notes are a help, never a dependency: an update that fails is logged
//! and counted and tried again at the next trigger; the call never waits
//! for one; the analysis reads whatever notes were saved, and the whole
//! transcript when there are none. After a restart the keeper starts
//! empty and learns the calls again from their next commit; what the
//! notes cover is read from the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::call_log::CallEvent;
use crate::ids::MeetingId;
use crate::ports::{Analyzer, NotesStore, error_chain};
use crate::writer::{ChunkWriter, Committed};

/// When notes are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotesConfig {
    /// After this many new lines (0: never by count).
    pub every_lines: usize,
    /// This long after the last update, when there are new lines (zero:
    /// never by time).
    pub every: Duration,
    /// Updates running at once, for all calls.
    pub max_at_once: usize,
    /// New lines one update reads at most (the rest wait for the next).
    pub max_lines: usize,
}

impl NotesConfig {
    /// Off: no notes are taken.
    pub const OFF: Self = Self {
        every_lines: 0,
        every: Duration::ZERO,
        max_at_once: 1,
        max_lines: 1,
    };

    pub fn is_on(&self) -> bool {
        self.every_lines > 0 || !self.every.is_zero()
    }
}

/// What the keeper uses.
pub struct NotesDeps {
    pub store: Arc<dyn NotesStore>,
    pub analyzer: Arc<dyn Analyzer>,
    /// For the model usage entries of each update.
    pub writer: ChunkWriter,
}

/// How often the keeper looks for calls due an update by time, and
/// forgets calls that went quiet.
const TICK: Duration = Duration::from_secs(1);

/// A call with no commit for this long is forgotten (its next commit
/// brings it back).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// How long after a failed update the next may start.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long after an update that found nothing to read (the next line
/// not stored yet) the next may start: a read of the store, no model.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// The news channel's room (batches of commit news).
pub const NEWS_CAPACITY: usize = 1024;

/// One call the keeper follows.
struct Tracked {
    /// The highest line stored.
    committed: i64,
    /// The last line the saved notes cover (as far as the keeper knows).
    covered: i64,
    /// When the notes were last updated (or the call first heard of).
    updated: Instant,
    /// When the last commit news came.
    heard: Instant,
    /// No update before this (after a failed one).
    not_before: Instant,
    running: bool,
}

/// What one update did.
enum Outcome {
    /// The notes now end at this line.
    Saved(i64),
    /// Nothing to do: no line after the notes (or the next one is not
    /// stored yet).
    Nothing,
    /// The call is not active any more: forget it.
    Over,
    Failed,
}

/// Starts the keeper on the writer's commit news (a channel of
/// [`NEWS_CAPACITY`]); it stops when the writer is gone, or when its
/// handle is aborted (its updates with it).
pub fn spawn(
    deps: NotesDeps,
    config: NotesConfig,
    news: mpsc::Receiver<Committed>,
) -> JoinHandle<()> {
    tokio::spawn(run(Arc::new(deps), config, news))
}

async fn run(deps: Arc<NotesDeps>, config: NotesConfig, mut news: mpsc::Receiver<Committed>) {
    let permits = Arc::new(Semaphore::new(config.max_at_once.max(1)));
    let mut calls: HashMap<MeetingId, Tracked> = HashMap::new();
    let mut updates: JoinSet<(MeetingId, Outcome)> = JoinSet::new();
    // Which call each update is for, so that one that panicked is known.
    let mut running: HashMap<tokio::task::Id, MeetingId> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            heard = news.recv() => {
                let Some(heard) = heard else { break };
                let now = Instant::now();
                for (meeting, line) in heard {
                    let call = calls.entry(meeting).or_insert(Tracked {
                        committed: 0,
                        covered: 0,
                        updated: now,
                        heard: now,
                        not_before: now,
                        running: false,
                    });
                    call.committed = call.committed.max(line);
                    call.heard = now;
                    if due_by_lines(call, &config) {
                        start(&deps, &config, &permits, &mut updates, &mut running, meeting, call);
                    }
                }
            }
            Some(done) = updates.join_next_with_id(), if !updates.is_empty() => {
                let (meeting, outcome) = match done {
                    Ok((id, done)) => {
                        running.remove(&id);
                        done
                    }
                    // An update that panicked failed; its call goes on.
                    Err(error) => match running.remove(&error.id()) {
                        Some(meeting) => {
                            tracing::error!(%meeting, %error, "a notes update panicked");
                            (meeting, Outcome::Failed)
                        }
                        None => continue,
                    },
                };
                let Some(call) = calls.get_mut(&meeting) else { continue };
                call.running = false;
                call.updated = Instant::now();
                match outcome {
                    Outcome::Saved(line) => {
                        call.covered = call.covered.max(line);
                        metrics::counter!(crate::metrics::NOTES_UPDATES, "outcome" => "saved").increment(1);
                    }
                    // The next line is not stored yet (or none is new):
                    // look again a little later.
                    Outcome::Nothing => call.not_before = Instant::now() + LOOK_AGAIN,
                    Outcome::Over => {
                        calls.remove(&meeting);
                        continue;
                    }
                    Outcome::Failed => {
                        metrics::counter!(crate::metrics::NOTES_UPDATES, "outcome" => "failed").increment(1);
                        call.not_before = Instant::now() + RETRY_AFTER;
                    }
                }
                if due_by_lines(call, &config) {
                    start(&deps, &config, &permits, &mut updates, &mut running, meeting, call);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                calls.retain(|_, call| call.running || now.duration_since(call.heard) < FORGET_AFTER);
                for (meeting, call) in &mut calls {
                    let by_time = !config.every.is_zero()
                        && !call.running
                        && now >= call.not_before
                        && call.committed > call.covered
                        && now.duration_since(call.updated) >= config.every;
                    if by_time || due_by_lines(call, &config) {
                        start(&deps, &config, &permits, &mut updates, &mut running, *meeting, call);
                    }
                }
            }
        }
    }
}

fn due_by_lines(call: &Tracked, config: &NotesConfig) -> bool {
    !call.running
        && Instant::now() >= call.not_before
        && config.every_lines > 0
        && call.committed - call.covered >= config.every_lines as i64
}

fn start(
    deps: &Arc<NotesDeps>,
    config: &NotesConfig,
    permits: &Arc<Semaphore>,
    updates: &mut JoinSet<(MeetingId, Outcome)>,
    running: &mut HashMap<tokio::task::Id, MeetingId>,
    meeting: MeetingId,
    call: &mut Tracked,
) {
    call.running = true;
    let (deps, permits, max_lines) = (deps.clone(), permits.clone(), config.max_lines);
    let task = updates.spawn(async move {
        let Ok(_permit) = permits.acquire_owned().await else {
            return (meeting, Outcome::Failed);
        };
        let span = crate::meeting_span!(meeting, "notes.update");
        (
            meeting,
            tracing::Instrument::instrument(update(&deps, meeting, max_lines), span).await,
        )
    });
    running.insert(task.id(), meeting);
}

/// One update of one call's notes.
async fn update(deps: &NotesDeps, meeting: MeetingId, max_lines: usize) -> Outcome {
    let input = match deps.store.notes_input(meeting, max_lines.max(1)).await {
        Ok(Some(input)) => input,
        Ok(None) => return Outcome::Over,
        Err(error) => {
            tracing::warn!(%meeting, error = %error_chain(&error), "notes not updated: the store failed");
            return Outcome::Failed;
        }
    };
    let Some(last) = input.lines.last().map(|(n, _, _)| *n) else {
        return Outcome::Nothing;
    };
    let log = |event: CallEvent| deps.writer.log(meeting, event);
    let text = match deps.analyzer.take_notes(&input, &log).await {
        Ok(text) => text,
        Err(error) => {
            tracing::warn!(%meeting, %error, detail = error.detail(), "notes not updated: the model failed");
            return Outcome::Failed;
        }
    };
    match deps.store.save_notes(meeting, &text, last).await {
        Ok(Some(notes)) => Outcome::Saved(notes.through_line),
        Ok(None) => Outcome::Over,
        Err(error) => {
            tracing::warn!(%meeting, error = %error_chain(&error), "notes not saved: the store failed");
            Outcome::Failed
        }
    }
}

#[cfg(test)]
mod tests;
