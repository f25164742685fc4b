//! Wake-ups for readers of one meeting (the SSE stream): every commit that
//! touches a meeting's lines, log or status pokes that meeting's channel.
//! A wake-up carries no data: the reader reads the database, which stays
//! the one source of truth. Channels exist only while someone listens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use scribe_actors::ids::MeetingId;
use tokio::sync::watch;

#[derive(Clone, Debug, Default)]
pub struct Changes {
    listeners: Arc<Mutex<HashMap<MeetingId, watch::Sender<u64>>>>,
}

impl Changes {
    /// A receiver that changes whenever the meeting does.
    pub fn subscribe(&self, meeting: MeetingId) -> watch::Receiver<u64> {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        listeners.retain(|_, tx| tx.receiver_count() > 0);
        listeners
            .entry(meeting)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the meeting's readers, if it has any.
    pub fn touch(&self, meeting: MeetingId) {
        self.touch_all([meeting]);
    }

    /// Wakes the readers of each of `meetings`.
    pub fn touch_all(&self, meetings: impl IntoIterator<Item = MeetingId>) {
        let listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if listeners.is_empty() {
            return;
        }
        for meeting in meetings {
            if let Some(tx) = listeners.get(&meeting) {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}
