//! User lines: their transcription deltas and final outcome, however
//! early (before the item's place is known) or late they arrive, and the
//! status a user line ends with.

use super::{ChunkStatus, Conversation, ErrorInfo, Notice, Slot, Speaker, push_bounded, truncate};

impl Conversation {
    pub(super) fn user_delta(&mut self, item_id: &str, delta: &str) {
        match self.slots.get_mut(item_id) {
            Some(slot) if slot.speaker == Speaker::User => push_bounded(&mut slot.text, delta),
            Some(_) => {}
            None if !self.known.contains(item_id) => {
                let early = self.early(item_id);
                push_bounded(&mut early.deltas, delta);
            }
            None => {}
        }
    }

    pub(super) fn settle_user(&mut self, item_id: &str, outcome: Result<String, ErrorInfo>) {
        match self.slots.get(item_id) {
            Some(slot) if slot.speaker == Speaker::User => {
                if let Some(slot) = self.slots.remove(item_id) {
                    self.emit_user(item_id, slot, outcome);
                }
            }
            Some(_) => {}
            // Announced as silence and placed: settled without a slot.
            None if self.silent.get(item_id).is_some_and(Option::is_some) => {
                self.settle_silent(item_id, outcome);
            }
            None if !self.known.contains(item_id) => {
                self.early(item_id).outcome = Some(outcome);
            }
            None => {}
        }
    }

    pub(super) fn emit_user(
        &mut self,
        item_id: &str,
        mut slot: Slot,
        outcome: Result<String, ErrorInfo>,
    ) {
        let status = match outcome {
            Ok(text) if text.trim().is_empty() => {
                if self.silence(item_id, slot.sequence_number) {
                    return;
                }
                // A later line already went out: the place keeps a line.
                slot.text.clear();
                ChunkStatus::TranscriptionFailed
            }
            Ok(text) => {
                slot.text = truncate(text.trim());
                ChunkStatus::Completed
            }
            Err(error) => {
                self.notices.push(Notice::TranscriptionFailed {
                    item_id: item_id.to_owned(),
                    sequence_number: slot.sequence_number,
                    error,
                });
                user_partial(&mut slot.text)
            }
        };
        self.emit(item_id, slot, status);
    }
}

/// The status of a user line whose transcription will not complete: the
/// deltas received (trimmed) as `partial`, or `transcription_failed` (empty)
/// when nothing arrived.
pub(super) fn user_partial(text: &mut String) -> ChunkStatus {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        text.clear();
        ChunkStatus::TranscriptionFailed
    } else {
        *text = trimmed.to_owned();
        ChunkStatus::Partial
    }
}
