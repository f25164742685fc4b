//! What an *attached* conversation does when its sideband comes back (after
//! a dropped socket, a killed actor, a restart or a takeover). The
//! provider's session kept the conversation, but the events sent while
//! scribe was away are gone:
//!
//! - the chain of items is kept across sockets (`detach`, not a new chain);
//! - when an arriving item names a predecessor scribe has not seen, every
//!   event is held back, the predecessor is fetched
//!   (`conversation.item.retrieve`) and stored in its place, before the new
//!   item; then the held events are applied in order;
//! - a retrieved item does not name its own predecessor, so scribe cannot
//!   know whether more items came before it: that possible hole is
//!   recorded (the lines on either side, the time range), never filled
//!   with a made-up line or count.

use chrono::{DateTime, Utc};

use super::{Awaiting, Conversation, MAX_HELD_EVENTS, Notice};
use crate::domain::Speaker;
use crate::voice::event::{ItemInfo, ServerEvent};

impl Conversation {
    /// An attached conversation that continues after the line whose item
    /// is `last_item_id` (the highest-numbered one stored), if any.
    pub fn attached(next_sequence: i64, last_item_id: Option<String>) -> Self {
        let mut conversation = Self::new(next_sequence);
        conversation.attached = true;
        if let Some(item) = last_item_id {
            conversation.known.insert(item.clone());
            conversation.tail = Some(item);
        }
        conversation
    }

    /// The sideband went away; the provider's session did not. Open lines
    /// end as [`Conversation::end_session`] ends them, the chain is kept,
    /// and the moment is remembered for a possible hole.
    pub fn detach(&mut self, now: DateTime<Utc>) {
        let (known, tail) = (std::mem::take(&mut self.known), self.tail.take());
        // GPT-Live: the session clock goes on; remember where it was.
        self.timed.away_from(self.timeline_reached());
        self.end_session();
        self.known = known;
        self.tail = tail;
        self.detached_at = Some(now);
        // A retrieval in flight died with the socket: give it up now.
        if let Some(awaiting) = self.awaiting.take() {
            self.give_up(awaiting, now);
        }
    }

    /// For an attached conversation: true when `event` must wait (a
    /// predecessor is being fetched, or it names one scribe never saw,
    /// which is then asked for).
    pub(super) fn hold(&mut self, event: &ServerEvent) -> bool {
        if !self.attached || matches!(event, ServerEvent::Audio | ServerEvent::Other) {
            return false;
        }
        if let Some(awaiting) = &mut self.awaiting {
            if matches!(event, ServerEvent::ItemRetrieved { item, .. } if item.id == awaiting.item_id)
            {
                return false;
            }
            if awaiting.held.len() < MAX_HELD_EVENTS {
                awaiting.held.push(event.clone());
            }
            return true;
        }
        let previous = match event {
            ServerEvent::InputCommitted {
                item_id,
                previous_item_id,
            } => (!self.known.contains(item_id)).then_some(previous_item_id),
            ServerEvent::ItemAdded {
                previous_item_id,
                item,
            }
            | ServerEvent::ItemDone {
                previous_item_id,
                item,
            } => (!self.known.contains(&item.id)).then_some(previous_item_id),
            _ => None,
        };
        let Some(Some(previous)) = previous else {
            return false;
        };
        if self.known.contains(previous) {
            return false;
        }
        self.awaiting = Some(Awaiting {
            item_id: previous.clone(),
            held: vec![event.clone()],
        });
        self.notices.push(Notice::RetrieveItem {
            item_id: previous.clone(),
        });
        true
    }

    /// The awaited predecessor came back: it takes its place (a line, when
    /// it is a user or agent message), the possible hole before it is
    /// recorded, and the held events are applied.
    pub(super) fn recovered(&mut self, item: &ItemInfo, text: Option<&str>, now: DateTime<Utc>) {
        let Some(awaiting) = self.awaiting.take_if(|a| a.item_id == item.id) else {
            return;
        };
        let after = self.last_number();
        self.join(&item.id);
        let speaker = match (item.kind.as_str(), item.role.as_deref()) {
            ("message", Some("user")) => Some(Speaker::User),
            ("message", Some("assistant")) => Some(Speaker::Agent),
            _ => None,
        };
        // An item already given a line keeps that one.
        let speaker = speaker.filter(|_| self.numbered.insert(item.id.clone()));
        let sequence_number = speaker.map(|speaker| {
            let n = self.reserve();
            self.emit_recovered(&item.id, n, speaker, text.unwrap_or_default(), now);
            n
        });
        self.notices.push(Notice::ItemRecovered {
            item_id: item.id.clone(),
            sequence_number,
        });
        self.hole(after, sequence_number.unwrap_or(self.next_sequence), now);
        self.release(awaiting.held, now);
    }

    /// The awaited predecessor could not be fetched (the service does not
    /// know it, or did not answer): it joins the chain without a line, the
    /// possible hole is recorded, and the held events are applied.
    pub fn retrieve_failed(&mut self, item_id: &str, now: DateTime<Utc>) {
        if let Some(awaiting) = self.awaiting.take_if(|a| a.item_id == item_id) {
            self.give_up(awaiting, now);
        }
    }

    /// True while a predecessor is being fetched back.
    pub fn is_recovering(&self) -> bool {
        self.awaiting.is_some()
    }

    fn give_up(&mut self, awaiting: Awaiting, now: DateTime<Utc>) {
        let after = self.last_number();
        self.join(&awaiting.item_id);
        self.hole(after, self.next_sequence, now);
        self.release(awaiting.held, now);
    }

    fn release(&mut self, held: Vec<ServerEvent>, now: DateTime<Utc>) {
        for event in held {
            self.apply(&event, now);
        }
    }

    /// The item joins the chain as its newest known node.
    fn join(&mut self, item_id: &str) {
        self.known.insert(item_id.to_owned());
        self.tail = Some(item_id.to_owned());
    }

    /// The highest number handed out so far, if any.
    fn last_number(&self) -> Option<i64> {
        (self.next_sequence > 1).then_some(self.next_sequence - 1)
    }

    /// Records that lines may be missing between `after` and `before`,
    /// from when the sideband went away (when known) until `now`.
    fn hole(&mut self, after: Option<i64>, before: i64, now: DateTime<Utc>) {
        self.notices.push(Notice::PossibleHole {
            after,
            before,
            from: self.detached_at,
            to: now,
        });
    }
}
