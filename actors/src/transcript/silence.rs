//! Silence is not a line. A user turn whose transcription completes empty
//! (an idle-timeout nudge's empty audio, a noise the service's VAD took for
//! speech) is logged, not stored as an empty user line:
//!
//! - an item the service announced as silence
//!   (`input_audio_buffer.timeout_triggered` names it before committing
//!   it) joins the chain without a number; should its transcription bring
//!   words after all, it becomes a line then, after what was numbered
//!   meanwhile (logged as out of order);
//! - any other user line that completes empty gives its number back when
//!   no later line went to the writer yet: the open lines after it move
//!   down by one, so the transcript stays gapless. When a later line is
//!   already out, the place keeps an empty `transcription_failed` line.

use chrono::Utc;

use super::{ChunkStatus, Conversation, ErrorInfo, Notice, Speaker, truncate};

impl Conversation {
    /// `input_audio_buffer.timeout_triggered`: the item it names is silence.
    pub(super) fn timed_out(&mut self, item_id: &str) {
        self.silent.entry(item_id.to_owned()).or_insert(None);
    }

    /// A user item takes its place: a slot with a number, unless the
    /// service announced it as silence.
    pub(super) fn open_user_slot(&mut self, item_id: &str, now: chrono::DateTime<Utc>) {
        match self.silent.get_mut(item_id) {
            Some(placed) => {
                placed.get_or_insert(self.next_sequence);
                // What arrived before its place was known settles it now.
                if let Some(outcome) = self
                    .early_user
                    .remove(item_id)
                    .and_then(|early| early.outcome)
                {
                    self.settle_silent(item_id, outcome);
                }
            }
            None => self.open_slot(item_id, Speaker::User, now),
        }
    }

    /// The transcription of an item announced as silence: words make a
    /// line (numbered now), anything else is logged.
    pub(super) fn settle_silent(&mut self, item_id: &str, outcome: Result<String, ErrorInfo>) {
        let Some(placed) = self.silent.remove(item_id) else {
            return;
        };
        let text = match outcome {
            Ok(text) if !text.trim().is_empty() => truncate(text.trim()),
            _ => {
                self.unnumbered_silence(item_id);
                return;
            }
        };
        if !self.numbered.insert(item_id.to_owned()) {
            return;
        }
        if placed.is_some_and(|at| at != self.next_sequence)
            && let Some(previous) = self.tail.clone()
        {
            self.notices.push(Notice::OutOfOrderItem {
                item_id: item_id.to_owned(),
                previous_item_id: previous,
            });
        }
        let slot = self.numbered_slot(Speaker::User, text, Utc::now());
        self.emit(item_id, slot, ChunkStatus::Completed);
    }

    /// A user item without a number turned out silent: logged only.
    pub(super) fn unnumbered_silence(&mut self, item_id: &str) {
        self.notices.push(Notice::Silence {
            item_id: item_id.to_owned(),
            sequence_number: None,
            given_back: false,
        });
    }

    /// A numbered user line completed empty. Gives the number back when no
    /// later line has gone to the writer (open lines after it move down by
    /// one) and returns true; false when the place must keep a line.
    pub(super) fn silence(&mut self, item_id: &str, sequence_number: i64) -> bool {
        let later_out = self.handed_high > sequence_number
            || self
                .ready
                .iter()
                .any(|l| l.sequence_number > sequence_number);
        if !later_out {
            for slot in self.slots.values_mut() {
                if slot.sequence_number > sequence_number {
                    slot.sequence_number -= 1;
                }
            }
            self.next_sequence -= 1;
            let top = self.next_sequence - 1;
            self.unreported_high_water = self
                .unreported_high_water
                .map(|h| h.min(top))
                .filter(|h| *h > 0);
        }
        self.notices.push(Notice::Silence {
            item_id: item_id.to_owned(),
            sequence_number: Some(sequence_number),
            given_back: !later_out,
        });
        !later_out
    }
}
