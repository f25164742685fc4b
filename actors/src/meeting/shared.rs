//! The part of a call that outlives any one MeetingActor: its conversation
//! (slots, numbers, lines not yet handed to the writer). The supervisor's
//! registry holds it; each actor incarnation and its socket reader share it.
//! Killing an actor therefore loses nothing it had read: the heir finds
//! every line and the counter exactly where the dead one left them.

use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use tokio::sync::{Notify, watch};

use crate::call_log::{CallEvent, Dropped};
use crate::domain::VoiceApi;
use crate::ids::MeetingId;
use crate::path::CallPath;
use crate::ports::CallContext;
use crate::transcript::{Conversation, Notice};
use crate::voice::Pending;
use crate::voice::event::ServerEvent;
use crate::writer::{ChunkWriter, Handoff, Rejected};

pub struct SharedCall {
    meeting: MeetingId,
    /// The call's lease epoch when this instance took it: its writes carry it.
    lease: i64,
    inner: Mutex<Inner>,
    changed: Notify,
    /// Sessions opened for the call (configured and replayed), by every
    /// actor of it: whoever waits for the call's socket watches this.
    opened: watch::Sender<u32>,
}

struct Inner {
    conversation: Conversation,
    /// Bumped whenever a realtime session ends: events from an older
    /// session's reader are ignored.
    epoch: u64,
    /// Events the current session delivered (errors not counted): an
    /// attach that hears none may be to a call that no longer exists.
    heard: u64,
}

impl SharedCall {
    pub fn new(meeting: MeetingId, next_sequence: i64) -> Self {
        Self::with(meeting, 0, Conversation::new(next_sequence))
    }

    /// The shared call of `context`: an attached conversation (kept across
    /// sideband sockets, continuing after the last stored item) when the
    /// call is attached.
    pub fn for_call(context: &CallContext) -> Self {
        let conversation = match &context.path {
            CallPath::Attached { api, resume, .. } => {
                let mut conversation =
                    Conversation::attached(context.next_sequence, resume.last_item_id.clone());
                // A GPT-Live call recorded before (another process, another
                // instance): what was said since its last stored line is gone.
                if *api == VoiceApi::Live && context.next_sequence > 1 {
                    conversation.resumed_timed(resume.last_end_ms);
                }
                conversation
            }
            CallPath::Owned { .. } => Conversation::new(context.next_sequence),
        };
        Self::with(context.meeting_id, context.lease, conversation)
    }

    fn with(meeting: MeetingId, lease: i64, conversation: Conversation) -> Self {
        Self {
            meeting,
            lease,
            inner: Mutex::new(Inner {
                conversation,
                epoch: 0,
                heard: 0,
            }),
            changed: Notify::new(),
            opened: watch::Sender::new(0),
        }
    }

    /// The call's lease epoch when this instance took it.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// A session of the call is open and configured.
    pub fn session_opened(&self) {
        self.opened.send_modify(|n| *n += 1);
    }

    /// Sessions opened so far, and every one opened later.
    pub fn sessions_opened(&self) -> watch::Receiver<u32> {
        self.opened.subscribe()
    }

    /// A panic while the lock was held cannot leave the conversation half
    /// updated in a way that matters more than losing it would: keep going.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies an event of session `epoch` and hands ready lines to the
    /// writer (without waiting). Returns the notices worth logging, or
    /// `None` when the session is stale.
    pub fn apply(
        &self,
        epoch: u64,
        event: &ServerEvent,
        writer: &ChunkWriter,
    ) -> Option<Vec<Notice>> {
        let notices = {
            let mut inner = self.lock();
            if inner.epoch != epoch {
                return None;
            }
            if !matches!(event, ServerEvent::Error(_)) {
                inner.heard += 1;
            }
            inner.conversation.apply(event, Utc::now());
            submit(self.meeting, self.lease, &mut inner.conversation, writer);
            inner.conversation.take_notices()
        };
        self.changed.notify_waiters();
        Some(notices)
    }

    /// Ends the current realtime session: open slots become lines
    /// (`partial` / `transcription_failed`), later events of that session
    /// are ignored. Returns the new epoch.
    pub fn end_session(&self, writer: &ChunkWriter) -> u64 {
        let epoch = {
            let mut inner = self.lock();
            inner.epoch += 1;
            inner.heard = 0;
            inner.conversation.end_session();
            submit(self.meeting, self.lease, &mut inner.conversation, writer);
            inner.epoch
        };
        self.changed.notify_waiters();
        epoch
    }

    /// Ends the current sideband socket of an attached call: open lines
    /// end, the conversation's chain is kept for the next attach. Returns
    /// the new epoch.
    pub fn detach(&self, writer: &ChunkWriter) -> u64 {
        let epoch = {
            let mut inner = self.lock();
            inner.epoch += 1;
            inner.heard = 0;
            inner.conversation.detach(Utc::now());
            submit(self.meeting, self.lease, &mut inner.conversation, writer);
            inner.epoch
        };
        self.changed.notify_waiters();
        epoch
    }

    /// Events the current session delivered so far (errors not counted).
    pub fn heard(&self) -> u64 {
        self.lock().heard
    }

    /// The service could not give back `item_id`: the conversation goes
    /// on without it. Returns the notices worth logging.
    pub fn retrieve_failed(&self, item_id: &str, writer: &ChunkWriter) -> Vec<Notice> {
        let notices = {
            let mut inner = self.lock();
            inner.conversation.retrieve_failed(item_id, Utc::now());
            submit(self.meeting, self.lease, &mut inner.conversation, writer);
            inner.conversation.take_notices()
        };
        self.changed.notify_waiters();
        notices
    }

    /// True while a missed item is being fetched back.
    pub fn is_recovering(&self) -> bool {
        self.lock().conversation.is_recovering()
    }

    /// Retries handing over lines the writer refused. True while some remain.
    pub fn flush_backlog(&self, writer: &ChunkWriter) -> bool {
        let mut inner = self.lock();
        submit(self.meeting, self.lease, &mut inner.conversation, writer);
        inner.conversation.has_ready()
    }

    pub fn has_backlog(&self) -> bool {
        self.lock().conversation.has_ready()
    }

    pub fn next_sequence(&self) -> i64 {
        self.lock().conversation.next_sequence()
    }

    pub fn unflushed(&self) -> usize {
        self.lock().conversation.unflushed()
    }

    /// Between turns: a good moment to replace the realtime session.
    pub fn is_idle(&self) -> bool {
        self.lock().conversation.is_idle()
    }

    pub fn pending_user_lines(&self) -> usize {
        self.lock().conversation.pending_user_lines()
    }

    /// What the service still holds that the end of a call waits for.
    pub fn pending(&self, what: Pending) -> usize {
        match what {
            Pending::UserTranscriptions => self.pending_user_lines(),
            Pending::Fragments => self.pending_fragments(),
        }
    }

    /// GPT-Live: the session sent `session.closed`.
    pub fn live_closed(&self) -> bool {
        self.lock().conversation.live_closed()
    }

    /// GPT-Live fragments not sealed into lines yet.
    pub fn pending_fragments(&self) -> usize {
        self.lock().conversation.pending_fragments()
    }

    /// Waits until `predicate` holds or `deadline` passes; true if it held.
    pub async fn wait_until(
        &self,
        deadline: tokio::time::Instant,
        predicate: impl Fn(&Self) -> bool,
    ) -> bool {
        loop {
            let changed = self.changed.notified();
            if predicate(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return predicate(self);
            }
        }
    }
}

/// Text one call may hold for the writer while the database does not take
/// it (a stall or an outage). Speech is about 15 bytes of text a second per
/// side, so this covers many hours of conversation; past it the oldest
/// waiting lines are dropped as recorded `lost` lines rather than letting
/// one call's memory grow without end.
pub const MAX_BACKLOG_BYTES: usize = 1024 * 1024;

fn submit(meeting: MeetingId, lease: i64, conversation: &mut Conversation, writer: &ChunkWriter) {
    let handoff = Handoff {
        lines: conversation.take_ready(),
        high_water: conversation.take_high_water(),
        interrupted: conversation.take_interrupted(),
        lease,
    };
    if let Err(Rejected(back)) = writer.try_submit(meeting, handoff) {
        conversation.restore_ready(back.lines, back.interrupted);
        conversation.restore_high_water(back.high_water);
        let shed = conversation.shed_backlog(MAX_BACKLOG_BYTES);
        if let (Some(from), Some(to)) = (shed.first(), shed.last()) {
            tracing::error!(%meeting, from, to, "transcript backlog over its bound: oldest lines dropped");
            writer.log(
                meeting,
                CallEvent::Gap(Dropped {
                    from: *from,
                    to: *to,
                    count: Some(shed.len()),
                    reason: format!("the database did not take lines for so long that the call's backlog passed {MAX_BACKLOG_BYTES} bytes"),
                }),
            );
        }
    }
}
