//! The per-call state that must outlive actors, the supervisor included:
//! each live call's [`SharedCall`], by meeting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::MeetingId;
use crate::meeting::drain::drain;
use crate::meeting::shared::SharedCall;
use crate::ports::CallContext;
use crate::writer::ChunkWriter;

#[derive(Default)]
pub struct CallRegistry {
    calls: Mutex<HashMap<MeetingId, Arc<SharedCall>>>,
}

impl CallRegistry {
    /// The call's shared state, made for `context` when this process holds
    /// none yet.
    pub fn get_or_insert(&self, context: &CallContext) -> Arc<SharedCall> {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let call = calls
            .entry(context.meeting_id)
            .or_insert_with(|| Arc::new(SharedCall::for_call(context)));
        // Held under an older lease (lost, and taken back since): what it
        // held belongs to that lease; the call starts afresh from the store.
        if call.lease() != context.lease {
            *call = Arc::new(SharedCall::for_call(context));
        }
        call.clone()
    }

    pub fn get(&self, meeting: MeetingId) -> Option<Arc<SharedCall>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&meeting)
            .cloned()
    }

    pub fn remove(&self, meeting: MeetingId) -> Option<Arc<SharedCall>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&meeting)
    }

    fn all(&self) -> Vec<Arc<SharedCall>> {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.values().cloned().collect()
    }

    /// At shutdown, once the actors are gone: drains every call (open
    /// lines become `partial` / `transcription_failed`, every line goes to
    /// the writer), waiting up to `patience` for room. Returns how many
    /// lines the writer could not take.
    pub async fn end_all_sessions(
        &self,
        writer: &ChunkWriter,
        retry: Duration,
        patience: Duration,
    ) -> usize {
        drain(&self.all(), writer, retry, Some(Instant::now() + patience)).await
    }
}
