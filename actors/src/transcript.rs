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

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::domain::{ChunkStatus, Speaker};
use crate::realtime::event::{ItemInfo, ServerEvent};

/// Longest text kept for one line; deltas past it are dropped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A line whose text is known, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sequence_number: i64,
    pub speaker: Speaker,
    pub text: String,
    pub status: ChunkStatus,
    pub item_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// When its final event was read (for the commit-lag metric).
    pub ready_at: std::time::Instant,
}

#[derive(Debug, Clone)]
struct Slot {
    sequence_number: i64,
    speaker: Speaker,
    text: String,
    timestamp: DateTime<Utc>,
}

/// Something worth a line in the meeting's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An item arrived whose predecessor is not the end of the conversation.
    OutOfOrderItem {
        item_id: String,
        previous_item_id: String,
    },
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
    /// Transcription outcomes that arrived before their item was placed.
    early_user_text: HashMap<String, Result<String, String>>,
    active_responses: HashSet<String>,
    ready: Vec<Line>,
    notices: Vec<Notice>,
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
            early_user_text: HashMap::new(),
            active_responses: HashSet::new(),
            ready: Vec::new(),
            notices: Vec::new(),
        }
    }

    pub fn next_sequence(&self) -> i64 {
        self.next_sequence
    }

    /// Lines read but not yet handed to the writer: pending slots and ready lines.
    pub fn unflushed(&self) -> usize {
        self.slots.len() + self.ready.len()
    }

    /// User lines still waiting for their transcription.
    pub fn pending_user_lines(&self) -> usize {
        self.slots
            .values()
            .filter(|s| s.speaker == Speaker::User)
            .count()
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Between turns: no line open and no reply in progress.
    pub fn is_idle(&self) -> bool {
        self.slots.is_empty() && self.active_responses.is_empty()
    }

    /// Applies one server event.
    pub fn apply(&mut self, event: &ServerEvent, now: DateTime<Utc>) {
        match event {
            ServerEvent::InputCommitted {
                item_id,
                previous_item_id,
            } => {
                if self.place(item_id, previous_item_id.as_deref()) {
                    self.open_slot(item_id, Speaker::User, now);
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
                if self.place(&item.id, previous_item_id.as_deref())
                    && let Some(speaker) = self.live_speaker(item)
                {
                    self.open_slot(&item.id, speaker, now);
                }
            }
            ServerEvent::UserTranscriptCompleted {
                item_id,
                transcript,
            } => {
                self.settle_user(item_id, Ok(transcript.clone()));
            }
            ServerEvent::UserTranscriptFailed { item_id, message } => {
                self.settle_user(item_id, Err(message.clone()));
            }
            ServerEvent::ResponseCreated { response_id } => {
                self.active_responses.insert(response_id.clone());
            }
            ServerEvent::ResponseDone { response_id, .. } => {
                self.active_responses.remove(response_id);
            }
            ServerEvent::AgentTranscriptDelta { item_id, delta } => {
                if let Some(slot) = self.slots.get_mut(item_id)
                    && slot.speaker == Speaker::Agent
                    && slot.text.len() + delta.len() <= MAX_LINE_BYTES
                {
                    slot.text.push_str(delta);
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
                    self.emit(item_id, slot, ChunkStatus::Completed);
                }
            }
            ServerEvent::SessionCreated { .. }
            | ServerEvent::SessionUpdated { .. }
            | ServerEvent::Error { .. }
            | ServerEvent::Audio
            | ServerEvent::Other => {}
        }
    }

    /// The realtime session is over (socket gone, call ended): nothing more
    /// will arrive for its items. Agent lines keep the deltas received
    /// (`partial`); user lines without a transcription are
    /// `transcription_failed`. The next session starts a new chain.
    pub fn end_session(&mut self) {
        let mut open: Vec<(String, Slot)> = self.slots.drain().collect();
        open.sort_by_key(|(_, s)| s.sequence_number);
        for (item_id, slot) in open {
            let status = match slot.speaker {
                Speaker::Agent => ChunkStatus::Partial,
                Speaker::User => ChunkStatus::TranscriptionFailed,
            };
            self.emit(&item_id, slot, status);
        }
        self.known.clear();
        self.tail = None;
        self.early_user_text.clear();
        self.active_responses.clear();
    }

    /// Takes the lines ready to be written, in sequence order.
    pub fn take_ready(&mut self) -> Vec<Line> {
        let mut lines = std::mem::take(&mut self.ready);
        lines.sort_by_key(|l| l.sequence_number);
        lines
    }

    /// Puts lines back (the writer could not take them now); they go out
    /// with the next flush.
    pub fn restore_ready(&mut self, lines: Vec<Line>) {
        self.ready.extend(lines);
    }

    /// Bytes of text in lines waiting for the writer.
    pub fn backlog_bytes(&self) -> usize {
        self.ready.iter().map(|l| l.text.len()).sum()
    }

    /// Drops the oldest waiting lines until at most `max_bytes` of text
    /// wait, and returns their numbers. The numbers stay reserved (the
    /// high-water mark covers them), so finalizing records them as `lost`.
    pub fn shed_backlog(&mut self, max_bytes: usize) -> Vec<i64> {
        let mut bytes = self.backlog_bytes();
        if bytes <= max_bytes {
            return Vec::new();
        }
        self.ready.sort_by_key(|l| l.sequence_number);
        let mut shed = Vec::new();
        let mut keep = 0;
        for (i, line) in self.ready.iter().enumerate() {
            if bytes <= max_bytes {
                keep = i;
                break;
            }
            bytes -= line.text.len();
            shed.push(line.sequence_number);
            keep = i + 1;
        }
        self.ready.drain(..keep);
        self.unreported_high_water = self.unreported_high_water.max(shed.last().copied());
        shed
    }

    /// Gives back a high-water mark the writer could not take.
    pub fn restore_high_water(&mut self, high_water: Option<i64>) {
        self.unreported_high_water = self.unreported_high_water.max(high_water);
    }

    /// The highest sequence number handed out since the last call, if any:
    /// the store must learn it so a restart never reuses it.
    pub fn take_high_water(&mut self) -> Option<i64> {
        self.unreported_high_water.take()
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

    fn open_slot(&mut self, item_id: &str, speaker: Speaker, now: DateTime<Utc>) {
        let sequence_number = self.next_sequence;
        self.next_sequence += 1;
        self.unreported_high_water = Some(sequence_number);
        let slot = Slot {
            sequence_number,
            speaker,
            text: String::new(),
            timestamp: now,
        };
        match (speaker, self.early_user_text.remove(item_id)) {
            (Speaker::User, Some(outcome)) => self.emit_user(item_id, slot, outcome),
            _ => {
                self.slots.insert(item_id.to_owned(), slot);
            }
        }
    }

    fn settle_user(&mut self, item_id: &str, outcome: Result<String, String>) {
        match self.slots.get(item_id) {
            Some(slot) if slot.speaker == Speaker::User => {
                if let Some(slot) = self.slots.remove(item_id) {
                    self.emit_user(item_id, slot, outcome);
                }
            }
            Some(_) => {}
            None if !self.known.contains(item_id) => {
                self.early_user_text.insert(item_id.to_owned(), outcome);
            }
            None => {}
        }
    }

    fn emit_user(&mut self, item_id: &str, mut slot: Slot, outcome: Result<String, String>) {
        let status = match outcome {
            Ok(text) => {
                slot.text = truncate(text.trim());
                ChunkStatus::Completed
            }
            Err(_) => ChunkStatus::TranscriptionFailed,
        };
        self.emit(item_id, slot, status);
    }

    fn emit(&mut self, item_id: &str, slot: Slot, status: ChunkStatus) {
        self.ready.push(Line {
            sequence_number: slot.sequence_number,
            speaker: slot.speaker,
            text: slot.text,
            status,
            item_id: Some(item_id.to_owned()),
            timestamp: slot.timestamp,
            ready_at: std::time::Instant::now(),
        });
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

#[cfg(test)]
mod tests;
