//! The one way from HTTP to the actors. Each entry point (Stream's
//! webhooks, OpenAI's incoming-call webhook, a meeting's call and hang-up
//! routes) records what happened in the store, then calls this service to
//! start, end or hang up the call; nothing else talks to the supervisor
//! about a call's life.
//!
//! The work that follows an answer (starting a call's actor once its
//! webhook is answered) runs in tasks this service owns; shutdown waits
//! for them ([`CallService::settle`]). Whether a call's socket is up is
//! told by its actor (a watch on its shared call), never read back from
//! the event log.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::{AgentId, MeetingId};
use scribe_actors::path::{CallPath, HangUp, Resume};
use scribe_actors::supervisor::handle::Calls;
use scribe_actors::supervisor::outcome::{CallsError, EndOutcome};
use secrecy::SecretString;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::domain::meeting::Meeting;
use crate::openai::rest::CallsApi;
use crate::store::{AgentDeletion, Deletion, EndRequest, Erased, Store, StoreError};

/// Why a call could not be ended.
#[derive(Debug, thiserror::Error)]
pub enum EndError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Calls(#[from] CallsError),
}

/// What ending a call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The first end of a live call: on its way.
    First,
    /// The end was already on its way (a retried or second event):
    /// dispatched again all the same, since ending is idempotent.
    Again,
    /// The call had already ended.
    NotActive,
}

/// Starts, ends and hangs up calls.
#[derive(Clone)]
pub struct CallService {
    store: Store,
    calls: Calls,
    /// OpenAI's calls API (`None` without `OPENAI_API_KEY`): hangs up a
    /// call no actor holds.
    rest: Option<CallsApi>,
    /// Where the started meetings' pages are, and the key of their links.
    page_base: Arc<str>,
    page_key: Arc<SecretString>,
    /// Starts under way, after their request was answered.
    starting: Arc<Mutex<JoinSet<()>>>,
}

impl CallService {
    pub fn new(
        store: Store,
        calls: Calls,
        rest: Option<CallsApi>,
        page_base: Arc<str>,
        page_key: Arc<SecretString>,
    ) -> Self {
        Self {
            store,
            calls,
            rest,
            page_base,
            page_key,
            starting: Arc::default(),
        }
    }

    /// The meeting's page link, with the key that opens it.
    pub fn page_url(&self, meeting: &Meeting) -> String {
        crate::http::auth::page_link(&self.page_base, &self.page_key, meeting)
    }

    /// A call that just became `active`: its actor is started after this
    /// request's answer, and its page link (with its key) printed.
    pub fn started(&self, meeting: MeetingId) {
        self.spawn_start(meeting, None);
    }

    /// Starts the call's actor (as [`Self::started`]) and waits, `patience`
    /// at most in all, until its socket is up. False when it was not up in
    /// time: the call goes on, and its first events may be missed.
    pub async fn started_and_attached(&self, meeting: MeetingId, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        let (done, started) = oneshot::channel();
        self.spawn_start(meeting, Some(done));
        if tokio::time::timeout_at(deadline, started).await.is_err() {
            return false;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.calls.socket_up(meeting, left).await
    }

    /// Starts the call's actor in a task this service owns; `done` hears
    /// when the supervisor answered.
    fn spawn_start(&self, meeting: MeetingId, done: Option<oneshot::Sender<()>>) {
        let service = self.clone();
        let mut starting = self.starting.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(finished) = starting.try_join_next() {
            if let Err(error) = finished {
                tracing::error!(%meeting, %error, "a call start failed");
            }
        }
        starting.spawn(async move {
            if let Err(error) = service.calls.start(meeting).await {
                tracing::error!(%meeting, %error, "call not started");
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
            if let Ok(Some(stored)) = service.store.meeting(meeting).await {
                println!("meeting {meeting} started: {}", service.page_url(&stored));
            }
        });
    }

    /// Ends the meeting's call at `ended_at`: records the end (the record
    /// other instances act on), then routes it to the call's actor, its
    /// instance, or finalizes it from the store.
    pub async fn end(
        &self,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
    ) -> Result<Ending, EndError> {
        let request = self.store.mark_end_requested(meeting, ended_at).await?;
        let ending = match request {
            EndRequest::NotActive => return Ok(Ending::NotActive),
            EndRequest::First => Ending::First,
            _ => Ending::Again,
        };
        self.calls.end(meeting, ended_at).await?;
        Ok(ending)
    }

    /// scribe was told to end `meeting`'s call (it is `active`): as
    /// [`Self::end`], and a call scribe is attached to ends at OpenAI too,
    /// by its actor (here or on the instance that owns it) or, when no
    /// actor holds it anywhere, here.
    pub async fn hang_up(&self, meeting: &Meeting) -> Result<(), EndError> {
        debug_assert_eq!(meeting.status, MeetingStatus::Active);
        let ended_at = crate::domain::now();
        // Dispatched whatever the record says: a hang-up racing the call's
        // own end still reaches the provider's call.
        self.store.mark_end_requested(meeting.id, ended_at).await?;
        let outcome = self.calls.end(meeting.id, ended_at).await?;
        if outcome == EndOutcome::FinalizingFromStore {
            self.hang_up_without_actor(meeting).await;
        }
        Ok(())
    }

    /// An attached call no actor holds anywhere (none runs it, no instance
    /// owns it): OpenAI's REST hang-up, best effort. A GPT-Live WebRTC
    /// session ends only with `session.close` on a sideband, which nobody
    /// holds: it ends when its caller leaves.
    async fn hang_up_without_actor(&self, meeting: &Meeting) {
        let path = CallPath::recorded(
            meeting.transport,
            meeting.provider_call_id.clone(),
            meeting.voice_api,
            Resume::default(),
        );
        self.hang_up_path(meeting.id, &path).await;
    }

    /// OpenAI's REST hang-up of an attached call, best effort.
    async fn hang_up_path(&self, meeting: MeetingId, path: &CallPath) {
        let (Some(how), Some(call_id)) = (path.hang_up(), path.attached_to()) else {
            return;
        };
        if how == HangUp::SessionClose {
            tracing::warn!(%meeting, "no sideband holds this GPT-Live WebRTC session: it ends when its caller leaves");
            return;
        }
        let Some(rest) = &self.rest else {
            tracing::warn!(%meeting, "no OPENAI_API_KEY: the call is not hung up at OpenAI");
            return;
        };
        if let Err(error) = rest.clone().on(path.api()).hangup(call_id).await {
            tracing::warn!(%meeting, %error, "hangup not confirmed by OpenAI");
        }
    }

    /// Deletes the meeting (the store's one transaction), then ends what
    /// of its call still runs: its actor and analysis here stop (the
    /// instance that holds it elsewhere is told by the deletion itself),
    /// and a call a browser or a phone carries is hung up at OpenAI.
    pub async fn delete(&self, meeting: MeetingId) -> Result<Deletion, StoreError> {
        let deletion = self.store.delete_meeting(meeting).await?;
        if let Deletion::Deleted(erased) = &deletion {
            self.cut_off(std::slice::from_ref(erased)).await;
        }
        Ok(deletion)
    }

    /// Deletes the agent and then every meeting of it, a batch a
    /// transaction, each batch's calls ended as soon as it commits (so a
    /// failure part way leaves no deleted call running); a repeated
    /// deletion finishes what one cut short.
    pub async fn delete_agent(&self, agent: AgentId) -> Result<AgentDeletion, StoreError> {
        let Some(first) = self.store.tombstone_agent(agent).await? else {
            return Ok(AgentDeletion::NotFound);
        };
        let mut erased = Vec::new();
        loop {
            let batch = self.store.undeleted_meetings_of(agent).await?;
            if batch.is_empty() {
                break;
            }
            let gone = self.store.erase(&batch).await?;
            self.cut_off(&gone).await;
            erased.extend(gone);
        }
        Ok(if first {
            AgentDeletion::Deleted(erased)
        } else {
            AgentDeletion::AlreadyDeleted(erased)
        })
    }

    /// Ends what still runs of meetings just deleted: every one's actor and
    /// analysis here, and each live attached call at OpenAI.
    pub async fn cut_off(&self, erased: &[Erased]) {
        for gone in erased {
            match self.calls.forget(gone.meeting).await {
                Ok(true) => {
                    tracing::info!(meeting = %gone.meeting, "deleted: its actors here stopped")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(meeting = %gone.meeting, %error, "deleted; its actor here not told (its writes are refused)");
                }
            }
            if gone.was_live() {
                let path = CallPath::recorded(
                    gone.transport,
                    gone.provider_call_id.clone(),
                    gone.voice_api,
                    Resume::default(),
                );
                self.hang_up_path(gone.meeting, &path).await;
            }
        }
    }

    /// Waits (up to `patience`) for the starts under way.
    pub async fn settle(&self, patience: Duration) {
        let mut starting =
            std::mem::take(&mut *self.starting.lock().unwrap_or_else(PoisonError::into_inner));
        let all = async { while starting.join_next().await.is_some() {} };
        if tokio::time::timeout(patience, all).await.is_err() {
            tracing::warn!("call starts still under way at shutdown");
        }
    }
}
