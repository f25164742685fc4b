//! The transcript model: turns realtime events into numbered lines in
//! conversation order.
//!
//! Each live message item gets a *slot* the moment its place in the
//! conversation is known (`input_audio_buffer.committed` or
//! `conversation.item.added`, which carry `previous_item_id`), and with the
//! slot its sequence number. Its text is filled in when it lands, however
//! late: a user line whose transcription completes after the agent's reply
//! keeps the number before the reply. A line becomes *ready* (to be written)
//! when its text is known; ready lines may therefore leave out of number
//! order, which the idempotent, numbered writes make harmless.
//!
//! Items that are not live turns (replayed history, system items, function
//! calls) join the chain, so that what follows them is placed right, but get
//! no slot: the server's echo of a replayed line is never stored twice.
//!
//! How a line ends:
//! - user: `completed` with the final transcription; `partial` with the
//!   transcription deltas received when the transcription fails or the
//!   session ends first; `transcription_failed` (empty) when nothing arrived;
//!   no line at all when the transcription completes empty (silence: see
//!   `silence`);
//! - agent: `completed` with the final transcript; `interrupted` when its
//!   response ends `cancelled`, `failed` or `incomplete` (the transcript in
//!   `response.done`'s output, else the deltas received) or when the user
//!   cut it off (`conversation.item.truncated`: the text is kept, even when
//!   the line was already written); `partial` when the session ends first.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

pub use crate::domain::Line;
use crate::domain::{ChunkStatus, Speaker};
use crate::voice::event::{ErrorInfo, ItemInfo, ServerEvent};

/// Longest text kept for one line; deltas past it are dropped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Slot {
    sequence_number: i64,
    speaker: Speaker,
    /// The final text once known; until then the deltas received.
    text: String,
    timestamp: DateTime<Utc>,
    /// The response an agent line belongs to, when known.
    response: Option<String>,
    /// The user cut this agent line off: it ends `interrupted`.
    truncated: bool,
}

/// Events held while a missed predecessor is fetched back, at most (past it the newest are dropped).
pub const MAX_HELD_EVENTS: usize = 10_000;

/// A predecessor being fetched back (see `recovery`), and the events held
/// meanwhile.
#[derive(Debug)]
struct Awaiting {
    item_id: String,
    held: Vec<ServerEvent>,
}

/// An agent line already closed: its number and the response it belongs to.
#[derive(Debug, Clone)]
struct AgentLine {
    sequence_number: i64,
    response: Option<String>,
}

/// What arrived for an item before its place in the conversation was known.
#[derive(Debug, Clone, Default)]
struct Early {
    deltas: String,
    outcome: Option<Result<String, ErrorInfo>>,
    /// In which order the items were first heard of.
    arrival: u64,
}

/// One call's conversation as scribe has seen it, across realtime sessions.
#[derive(Debug)]
pub struct Conversation {
    next_sequence: i64,
    /// The highest number handed out that the store has not been told of.
    unreported_high_water: Option<i64>,
    /// Item ids of the current session, in chain order's sense: known nodes.
    known: HashSet<String>,
    tail: Option<String>,
    slots: HashMap<String, Slot>,
    /// Every item given a line in this call, across sessions.
    numbered: HashSet<String>,
    /// What arrived for user items not placed yet.
    early_user: HashMap<String, Early>,
    /// Transcript deltas of agent items never seen added (a reply whose
    /// start scribe missed).
    early_agent: HashMap<String, Early>,
    active_responses: HashSet<String>,
    /// The user is speaking (`speech_started`, not yet stopped or committed).
    speaking: bool,
    /// Agent lines of this session already ready or handed over, by item,
    /// with the response each belongs to: a later truncation, or a
    /// `response.done` that says the reply did not complete, marks them.
    agent_lines: HashMap<String, AgentLine>,
    ready: Vec<Line>,
    /// Lines already handed to the writer that must become `interrupted`.
    interrupted: Vec<i64>,
    notices: Vec<Notice>,
    /// A sideband to a session someone else carries (see `recovery`).
    attached: bool,
    /// A missed predecessor being fetched back, and the events held.
    awaiting: Option<Awaiting>,
    /// When the sideband last went away.
    detached_at: Option<DateTime<Utc>>,
    /// GPT-Live: the current session's timeline (see `timed`).
    timed: timed::Timed,
    /// User items the service committed as silence (an idle timeout), and
    /// the next number when each took its place in the chain.
    silent: HashMap<String, Option<i64>>,
    /// The highest number of a line handed to the writer so far.
    handed_high: i64,
    /// User items heard of before their place was known, so far.
    early_seen: u64,
}

impl Conversation {
    /// A conversation whose next line gets `next_sequence` (one past the
    /// highest number ever handed out for the meeting).
    pub fn new(next_sequence: i64) -> Self {
        Self {
            next_sequence: next_sequence.max(1),
            unreported_high_water: None,
            known: HashSet::new(),
            tail: None,
            slots: HashMap::new(),
            numbered: HashSet::new(),
            early_user: HashMap::new(),
            early_agent: HashMap::new(),
            active_responses: HashSet::new(),
            speaking: false,
            agent_lines: HashMap::new(),
            ready: Vec::new(),
            interrupted: Vec::new(),
            notices: Vec::new(),
            attached: false,
            awaiting: None,
            detached_at: None,
            timed: timed::Timed::default(),
            silent: HashMap::new(),
            handed_high: 0,
            early_seen: 0,
        }
    }

    pub fn next_sequence(&self) -> i64 {
        self.next_sequence
    }

    /// What was read but not yet handed to the writer: pending slots, ready
    /// lines, GPT-Live fragments not sealed into lines yet.
    pub fn unflushed(&self) -> usize {
        self.slots.len() + self.ready.len() + self.pending_fragments()
    }

    /// User lines still waiting for their transcription.
    pub fn pending_user_lines(&self) -> usize {
        self.slots
            .values()
            .filter(|s| s.speaker == Speaker::User)
            .count()
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.interrupted.is_empty()
    }

    /// A good moment to replace the session: the user is not speaking, no
    /// reply is being generated, and no user line waits for its
    /// transcription. An agent line left open after its response ended
    /// does not hold a rotation up (it is closed as `partial`).
    pub fn is_idle(&self) -> bool {
        !self.speaking
            && self.active_responses.is_empty()
            && self.pending_user_lines() == 0
            && self.timed_quiet(Utc::now())
    }

    /// Applies one server event.
    pub fn apply(&mut self, event: &ServerEvent, now: DateTime<Utc>) {
        if self.hold(event) {
            return;
        }
        match event {
            ServerEvent::SpeechStarted => self.speaking = true,
            ServerEvent::SpeechStopped => self.speaking = false,
            ServerEvent::InputTimeout { item_id } => self.timed_out(item_id),
            ServerEvent::InputCommitted {
                item_id,
                previous_item_id,
            } => {
                self.speaking = false;
                if self.place(item_id, previous_item_id.as_deref()) {
                    self.open_user_slot(item_id, now);
                }
            }
            ServerEvent::ItemAdded {
                previous_item_id,
                item,
            }
            | ServerEvent::ItemDone {
                previous_item_id,
                item,
            } => {
                if self.place(&item.id, previous_item_id.as_deref()) {
                    match self.live_speaker(item) {
                        Some(Speaker::User) => self.open_user_slot(&item.id, now),
                        Some(Speaker::Agent) => self.open_slot(&item.id, Speaker::Agent, now),
                        None => {}
                    }
                }
            }
            ServerEvent::UserTranscriptDelta { item_id, delta } => self.user_delta(item_id, delta),
            ServerEvent::UserTranscriptCompleted {
                item_id,
                transcript,
            } => {
                self.settle_user(item_id, Ok(transcript.clone()));
            }
            ServerEvent::UserTranscriptFailed { item_id, error } => {
                self.settle_user(item_id, Err(error.clone()));
            }
            ServerEvent::ResponseCreated { response_id } => {
                self.active_responses.insert(response_id.clone());
            }
            ServerEvent::ResponseDone {
                response_id,
                status,
                reason,
                error,
                output,
            } => {
                self.active_responses.remove(response_id);
                if let Some(status) = status.as_deref()
                    && matches!(status, "cancelled" | "failed" | "incomplete")
                {
                    let lines = self.interrupt_response(response_id, output);
                    self.notices.push(Notice::ReplyInterrupted {
                        response_id: response_id.clone(),
                        status: status.to_owned(),
                        reason: reason.clone(),
                        error: error.clone(),
                        lines,
                    });
                }
            }
            ServerEvent::AgentTranscriptDelta { item_id, delta } => {
                let unseen = !self.slots.contains_key(item_id) && self.unseen(item_id);
                match self.slots.get_mut(item_id) {
                    Some(slot) if slot.speaker == Speaker::Agent => {
                        push_bounded(&mut slot.text, delta);
                    }
                    None if unseen => {
                        let arrival = self.early_seen;
                        let early =
                            self.early_agent
                                .entry(item_id.clone())
                                .or_insert_with(|| Early {
                                    arrival,
                                    ..Early::default()
                                });
                        if early.arrival == arrival {
                            self.early_seen += 1;
                        }
                        push_bounded(&mut early.deltas, delta);
                    }
                    _ => {}
                }
            }
            ServerEvent::AgentTranscriptDone {
                item_id,
                transcript,
            } => {
                if self
                    .slots
                    .get(item_id)
                    .is_some_and(|s| s.speaker == Speaker::Agent)
                    && let Some(mut slot) = self.slots.remove(item_id)
                {
                    slot.text = truncate(transcript);
                    let status = if slot.truncated {
                        ChunkStatus::Interrupted
                    } else {
                        ChunkStatus::Completed
                    };
                    self.emit(item_id, slot, status);
                } else if self.unseen(item_id) {
                    self.early_agent.remove(item_id);
                    self.unseen_reply(item_id, truncate(transcript), ChunkStatus::Completed, now);
                }
            }
            ServerEvent::ItemTruncated {
                item_id,
                audio_end_ms,
            } => self.truncate_reply(item_id, *audio_end_ms),
            ServerEvent::ItemRetrieved { item, text } => {
                self.recovered(item, text.as_deref(), now);
            }
            ServerEvent::LiveFragment { .. }
            | ServerEvent::LiveClosed { .. }
            | ServerEvent::LiveStarted { .. } => self.apply_timed(event, now),
            ServerEvent::SessionCreated { .. }
            | ServerEvent::SessionUpdated { .. }
            | ServerEvent::Error(_)
            | ServerEvent::Audio
            | ServerEvent::Other => {}
        }
    }

    /// The realtime session is over (socket gone, call ended): nothing more
    /// will arrive for its items. Agent lines keep the deltas received
    /// (`partial`, or `interrupted` when the user had cut them off); user
    /// lines keep the transcription deltas received (`partial`), or are
    /// `transcription_failed` when nothing arrived. A user transcription for
    /// an item whose place never came (a sideband attached after its commit)
    /// is not dropped: it becomes a line after the others, and the log says
    /// so. The next session starts a new chain.
    pub fn end_session(&mut self) {
        self.end_timed();
        let mut open: Vec<(String, Slot)> = self.slots.drain().collect();
        open.sort_by_key(|(_, s)| s.sequence_number);
        for (item_id, mut slot) in open {
            let status = match slot.speaker {
                Speaker::Agent if slot.truncated => ChunkStatus::Interrupted,
                Speaker::Agent => ChunkStatus::Partial,
                Speaker::User => user_partial(&mut slot.text),
            };
            self.emit(&item_id, slot, status);
        }
        let mut unplaced: Vec<(Speaker, String, Early)> = self
            .early_user
            .drain()
            .map(|(id, early)| (Speaker::User, id, early))
            .chain(
                self.early_agent
                    .drain()
                    .map(|(id, early)| (Speaker::Agent, id, early)),
            )
            .collect();
        unplaced.sort_by_key(|(_, _, early)| early.arrival);
        for (speaker, item_id, early) in unplaced {
            match speaker {
                Speaker::User => self.unplaced(&item_id, early),
                Speaker::Agent => {
                    let text = early.deltas;
                    self.unseen_reply(&item_id, text, ChunkStatus::Partial, Utc::now());
                }
            }
        }
        self.known.clear();
        self.tail = None;
        self.silent.clear();
        self.active_responses.clear();
        self.agent_lines.clear();
        self.speaking = false;
    }

    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Joins `item_id` to the chain; false when it was already placed.
    fn place(&mut self, item_id: &str, previous: Option<&str>) -> bool {
        if self.known.contains(item_id) {
            return false;
        }
        if let Some(previous) = previous
            && self.known.contains(previous)
            && self.tail.as_deref() != Some(previous)
        {
            // Numbers already handed out are never moved: the item gets the
            // next number, and the event log says so.
            self.notices.push(Notice::OutOfOrderItem {
                item_id: item_id.to_owned(),
                previous_item_id: previous.to_owned(),
            });
        }
        self.known.insert(item_id.to_owned());
        self.tail = Some(item_id.to_owned());
        true
    }

    /// Whose line an item is, when it is a live turn of this call.
    fn live_speaker(&self, item: &ItemInfo) -> Option<Speaker> {
        if item.kind != "message" || item.has_text {
            return None;
        }
        match item.role.as_deref() {
            Some("user") if item.has_input_audio => Some(Speaker::User),
            Some("assistant") if !self.active_responses.is_empty() => Some(Speaker::Agent),
            _ => None,
        }
    }

    /// A slot with the next number, its text known already (a line made
    /// outside the chain's own events).
    fn numbered_slot(&mut self, speaker: Speaker, text: String, now: DateTime<Utc>) -> Slot {
        Slot {
            sequence_number: self.reserve(),
            speaker,
            text,
            timestamp: now,
            response: None,
            truncated: false,
        }
    }

    /// Hands out the next number.
    fn reserve(&mut self) -> i64 {
        let sequence_number = self.next_sequence;
        self.next_sequence += 1;
        self.unreported_high_water = Some(sequence_number);
        sequence_number
    }

    /// A line fetched back whole (a recovered item).
    fn emit_recovered(
        &mut self,
        item_id: &str,
        sequence_number: i64,
        speaker: Speaker,
        text: &str,
        now: DateTime<Utc>,
    ) {
        let mut text = truncate(text.trim());
        let status = match speaker {
            Speaker::User => user_partial(&mut text),
            Speaker::Agent => ChunkStatus::Partial,
        };
        let status = if text.is_empty() {
            status
        } else {
            ChunkStatus::Completed
        };
        let slot = Slot {
            sequence_number,
            speaker,
            text,
            timestamp: now,
            response: None,
            truncated: false,
        };
        self.emit(item_id, slot, status);
    }

    fn open_slot(&mut self, item_id: &str, speaker: Speaker, now: DateTime<Utc>) {
        // An item has one line for the whole call: a session that names an
        // item again (a duplicate after a new session) never gets a second.
        if !self.numbered.insert(item_id.to_owned()) {
            return;
        }
        let sequence_number = self.reserve();
        // An agent line belongs to the response being generated (one at a
        // time in practice; `response.done`'s output names it otherwise).
        let response = match (speaker, self.active_responses.len()) {
            (Speaker::Agent, 1) => self.active_responses.iter().next().cloned(),
            _ => None,
        };
        let mut slot = Slot {
            sequence_number,
            speaker,
            text: String::new(),
            timestamp: now,
            response,
            truncated: false,
        };
        if speaker == Speaker::User
            && let Some(early) = self.early_user.remove(item_id)
        {
            slot.text = early.deltas;
            if let Some(outcome) = early.outcome {
                self.emit_user(item_id, slot, outcome);
                return;
            }
        }
        self.slots.insert(item_id.to_owned(), slot);
    }

    fn emit(&mut self, item_id: &str, slot: Slot, status: ChunkStatus) {
        if slot.speaker == Speaker::Agent {
            self.agent_lines.insert(
                item_id.to_owned(),
                AgentLine {
                    sequence_number: slot.sequence_number,
                    response: slot.response.clone(),
                },
            );
        }
        self.ready.push(Line {
            sequence_number: slot.sequence_number,
            speaker: slot.speaker,
            text: slot.text,
            status,
            item_id: Some(item_id.to_owned()),
            timestamp: slot.timestamp,
            start_ms: None,
            end_ms: None,
            ready_at: std::time::Instant::now(),
        });
    }
}

/// Appends a delta unless the line would pass [`MAX_LINE_BYTES`].
fn push_bounded(text: &mut String, delta: &str) {
    if text.len() + delta.len() <= MAX_LINE_BYTES {
        text.push_str(delta);
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_LINE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

mod backlog;
mod cutoff;
mod notice;
mod recovery;
mod silence;
mod timed;
pub mod timeline;
mod unplaced;
mod user;

use user::user_partial;

pub use notice::Notice;

#[cfg(test)]
mod tests;
