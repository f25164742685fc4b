//! What every call shares: the ports it uses, the writer, its timings.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::call_log::CallEvent;
use crate::domain::VoiceApi;
use crate::ids::MeetingId;
use crate::ports::{CallControl, CallStore, RealtimeConnector};
use crate::writer::ChunkWriter;

/// Timings of a call; the defaults suit production.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// How long `Finalize` waits for outstanding user transcriptions.
    pub finalize_grace: Duration,
    pub connect_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// A socket that delivers nothing (not even a ping) this long is dead.
    pub silence_timeout: Duration,
    /// How soon refused lines are offered to the writer again.
    pub backlog_retry: Duration,
    /// Replace a realtime session this long before its `expires_at`, at
    /// the first moment between turns.
    pub rotate_before_expiry: Duration,
    /// While a turn is in progress, how soon to look again for a moment
    /// between turns to rotate the session.
    pub rotate_retry: Duration,
    /// A session this close to its expiry is rotated even mid-turn.
    pub rotate_force_before: Duration,
    /// How long `session.updated` may take to confirm scribe's settings
    /// before the session counts as misconfigured.
    pub session_update_timeout: Duration,
    /// After a provider refused the session, the next attempt waits at
    /// least this long (never a storm of retries).
    pub refused_retry: Duration,
    /// An attached socket that lasts this long counts as alive, even
    /// without an event.
    pub attach_grace: Duration,
    /// Attached sockets in a row that end within `attach_grace` without
    /// one event before the call counts as over.
    pub attach_gone_after: u32,
    /// No attached socket alive for this long: the call is over.
    pub reattach_window: Duration,
    /// How long the service may take to give back a missed item.
    pub retrieve_timeout: Duration,
    /// The voice scribe asks for.
    pub voice: String,
    /// The model a GPT-Live session starts with (`session.start`).
    pub live_model: String,
    /// The model that transcribes the user in a Realtime session.
    pub transcription_model: String,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            finalize_grace: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
            silence_timeout: Duration::from_secs(90),
            backlog_retry: Duration::from_millis(50),
            rotate_before_expiry: Duration::from_secs(5 * 60),
            rotate_retry: Duration::from_secs(2),
            rotate_force_before: Duration::from_secs(30),
            session_update_timeout: Duration::from_secs(10),
            refused_retry: Duration::from_secs(60),
            attach_grace: Duration::from_secs(10),
            attach_gone_after: 3,
            reattach_window: Duration::from_secs(60),
            retrieve_timeout: Duration::from_secs(5),
            voice: "marin".into(),
            live_model: VoiceApi::Live.default_model().into(),
            transcription_model: crate::voice::realtime::DEFAULT_TRANSCRIPTION_MODEL.into(),
        }
    }
}

/// What every call needs, shared.
pub struct CallDeps {
    pub store: Arc<dyn CallStore>,
    pub writer: ChunkWriter,
    pub connector: Arc<dyn RealtimeConnector>,
    /// Hangs up the calls scribe attaches to (`None`: no OpenAI key).
    pub control: Option<Arc<dyn CallControl>>,
    pub config: CallConfig,
}

impl CallDeps {
    /// Appends to the meeting's event log, in order with its lines, without
    /// holding up the caller.
    pub fn log(&self, meeting: MeetingId, event: CallEvent) {
        self.writer.log(meeting, event);
    }

    pub fn reconnect_backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.config.reconnect_min)
            .with_max_delay(self.config.reconnect_max)
            .with_jitter()
            .without_max_times()
            .build()
    }
}
