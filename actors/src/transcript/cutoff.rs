//! Agent lines cut off: a response that ended without completing makes
//! its lines `interrupted`, open or already closed (OpenAI sends an
//! interrupted reply's transcript `done` too, and it may come before
//! `response.done`); a truncation (the user cut the reply off) marks the
//! line wherever it is.

use super::{ChunkStatus, Conversation, Notice, Speaker, truncate};
use crate::voice::event::OutputItem;

impl Conversation {
    /// Closes the open agent lines of a response that ended without
    /// completing as `interrupted`, and marks those already closed as
    /// `interrupted` in place. Returns their numbers.
    pub(super) fn interrupt_response(
        &mut self,
        response_id: &str,
        output: &[OutputItem],
    ) -> Vec<i64> {
        let mut items: Vec<String> = self
            .slots
            .iter()
            .filter(|(id, s)| {
                s.speaker == Speaker::Agent
                    && (s.response.as_deref() == Some(response_id)
                        || output.iter().any(|o| &o.id == *id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        items.sort_by_key(|id| self.slots.get(id).map(|s| s.sequence_number));
        let mut closed = Vec::new();
        for item_id in items {
            if let Some(mut slot) = self.slots.remove(&item_id) {
                if let Some(transcript) = output
                    .iter()
                    .find(|o| o.id == item_id)
                    .and_then(|o| o.transcript.as_deref())
                    .filter(|t| !t.is_empty())
                {
                    slot.text = truncate(transcript);
                }
                closed.push(slot.sequence_number);
                self.emit(&item_id, slot, ChunkStatus::Interrupted);
            }
        }
        // Lines whose transcript `done` came before this `response.done`.
        let mut done: Vec<i64> = self
            .agent_lines
            .iter()
            .filter(|(id, line)| {
                !closed.contains(&line.sequence_number)
                    && (line.response.as_deref() == Some(response_id)
                        || output.iter().any(|o| &o.id == *id))
            })
            .map(|(_, line)| line.sequence_number)
            .collect();
        done.sort_unstable();
        for n in done {
            self.mark_interrupted(n);
            closed.push(n);
        }
        closed.sort_unstable();
        closed
    }

    /// A line already closed becomes `interrupted`: in place while it waits
    /// to be written, else by the writer's in-place change.
    fn mark_interrupted(&mut self, sequence_number: i64) {
        match self
            .ready
            .iter_mut()
            .find(|l| l.sequence_number == sequence_number)
        {
            Some(line) => line.status = ChunkStatus::Interrupted,
            None => self.interrupted.push(sequence_number),
        }
    }

    /// The user cut an agent line off: it becomes `interrupted`, wherever
    /// it is (open, ready, or already handed to the writer).
    pub(super) fn truncate_reply(&mut self, item_id: &str, audio_end_ms: Option<u64>) {
        let sequence_number = if let Some(slot) = self.slots.get_mut(item_id) {
            slot.truncated = slot.speaker == Speaker::Agent;
            slot.truncated.then_some(slot.sequence_number)
        } else if let Some(n) = self.agent_lines.get(item_id).map(|l| l.sequence_number) {
            self.mark_interrupted(n);
            Some(n)
        } else {
            None
        };
        self.notices.push(Notice::ReplyTruncated {
            item_id: item_id.to_owned(),
            audio_end_ms,
            sequence_number,
        });
    }
}
