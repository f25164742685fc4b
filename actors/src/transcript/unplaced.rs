//! Transcripts for items whose place in the conversation never came: a
//! user transcription for an item scribe never saw committed (a sideband
//! that attached after it), a reply whose item was never added while
//! scribe listened. Nothing of them is dropped: a reply being spoken takes
//! its place at the end of the chain when its transcript is done; what is
//! left at the session's end becomes lines after the others. The log says
//! so (`Notice::Unplaced`).

use chrono::{DateTime, Utc};

use super::{ChunkStatus, Conversation, Early, Notice, Speaker, user_partial};

impl Conversation {
    /// An item this session never named: no slot, not in the chain, no
    /// line yet.
    pub(super) fn unseen(&self, item_id: &str) -> bool {
        !self.known.contains(item_id) && !self.numbered.contains(item_id)
    }

    /// The transcript of a reply whose start scribe missed (its item was
    /// never added while scribe listened): it is the reply being spoken, so
    /// it takes its place at the end of the chain now, and the log says so.
    pub(super) fn unseen_reply(
        &mut self,
        item_id: &str,
        text: String,
        status: ChunkStatus,
        now: DateTime<Utc>,
    ) {
        if text.trim().is_empty() {
            return;
        }
        self.place(item_id, None);
        if !self.numbered.insert(item_id.to_owned()) {
            return;
        }
        let slot = self.numbered_slot(Speaker::Agent, text, now);
        self.notices.push(Notice::Unplaced {
            item_id: item_id.to_owned(),
            sequence_number: slot.sequence_number,
        });
        self.emit(item_id, slot, status);
    }

    /// What arrived for a user item not placed yet.
    pub(super) fn early(&mut self, item_id: &str) -> &mut Early {
        let arrival = self.early_seen;
        let early = self
            .early_user
            .entry(item_id.to_owned())
            .or_insert_with(|| Early {
                arrival,
                ..Early::default()
            });
        if early.arrival == arrival {
            self.early_seen += 1;
        }
        early
    }

    /// A user item heard of whose place never came: its words become a line
    /// after the others (silence excepted), and the log says so.
    pub(super) fn unplaced(&mut self, item_id: &str, early: Early) {
        let words = match &early.outcome {
            Some(Ok(text)) => !text.trim().is_empty(),
            Some(Err(_)) => true,
            None => !early.deltas.trim().is_empty(),
        };
        if !words {
            if early.outcome.is_some() {
                self.unnumbered_silence(item_id);
            }
            return;
        }
        if !self.numbered.insert(item_id.to_owned()) {
            return;
        }
        let slot = self.numbered_slot(Speaker::User, early.deltas, Utc::now());
        self.notices.push(Notice::Unplaced {
            item_id: item_id.to_owned(),
            sequence_number: slot.sequence_number,
        });
        match early.outcome {
            Some(outcome) => self.emit_user(item_id, slot, outcome),
            None => {
                let mut slot = slot;
                let status = user_partial(&mut slot.text);
                self.emit(item_id, slot, status);
            }
        }
    }
}
