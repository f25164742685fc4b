//! What a MeetingActor does with what its socket reader reports: session
//! confirmations, errors (a refused configuration, a provider's refusal,
//! anything else), and the transcript model's notices for the event log.

use ractor::ActorRef;

use super::actor_state::MeetingState;
use super::msg::{MeetingMsg, RealtimeNotice};
use super::rules::{self, Effect, When};
use crate::call_log::{CallEvent, Hole, Private, Problem, RealtimeError, ServiceError, Shown};
use crate::transcript::Notice;
use crate::voice::event::ErrorInfo;
use crate::voice::realtime::retrieve_item;

/// The `event_id` prefix of scribe's `conversation.item.retrieve`s: an
/// `error` that echoes it means the item cannot be given back.
const RETRIEVE_EVENT_PREFIX: &str = "scribe_retrieve:";

/// Realtime error codes that mean the configuration is wrong (as OpenAI
/// sends them before closing with 3000 or 4000): no retry loop.
const CONFIGURATION_ERROR_CODES: [&str; 4] = [
    "invalid_api_key",
    "invalid_model",
    "missing_model",
    "beta_api_shape_disabled",
];
/// Realtime `error` events logged per session; the rest are only counted.
const LOGGED_ERRORS_PER_SESSION: u32 = 20;

impl MeetingState {
    pub fn on_notice(&mut self, myself: &ActorRef<MeetingMsg>, notice: RealtimeNotice) {
        match notice {
            RealtimeNotice::Opened { expires_at } => self.schedule_rotation(myself, expires_at),
            RealtimeNotice::Configured {
                transcription_on,
                expires_at,
            } => {
                self.backoff = self.deps.reconnect_backoff();
                if let Some(session) = self.session.as_mut() {
                    session.configured = true;
                }
                self.clear_problem();
                if !transcription_on {
                    self.log(CallEvent::TranscriptionOff {
                        error: "session.updated shows input transcription off: user lines will have no text".into(),
                    });
                }
                self.schedule_rotation(myself, expires_at);
            }
            RealtimeNotice::Closed { reason } => {
                let effects = rules::session_closed(&self.path, reason);
                self.apply(myself, effects);
            }
            RealtimeNotice::Error(error) => self.on_error(myself, error),
            RealtimeNotice::Transcript(notice) => self.on_transcript_notice(myself, notice),
            RealtimeNotice::GarbageFrame(error) => {
                if self.count_error() {
                    self.log(CallEvent::RealtimeError(RealtimeError {
                        error: Some(format!("unparsable frame ignored: {error}")),
                        ..RealtimeError::default()
                    }));
                }
            }
        }
    }

    /// Counts an error of the current session; true while it is among the
    /// first few, which are logged.
    fn count_error(&mut self) -> bool {
        self.session.as_mut().is_some_and(|session| {
            session.errors += 1;
            session.errors <= LOGGED_ERRORS_PER_SESSION
        })
    }

    fn on_error(&mut self, myself: &ActorRef<MeetingMsg>, error: ErrorInfo) {
        let code = error.code.clone().unwrap_or_default();
        if let Some(item_id) = error
            .event_id
            .as_deref()
            .and_then(|id| id.strip_prefix(RETRIEVE_EVENT_PREFIX))
        {
            // The service cannot give the missed item back.
            self.log(CallEvent::RealtimeError(RealtimeError {
                code: Some(code),
                message: Some(Private(error.message.clone())),
                item_id: Some(Private(item_id.to_owned())),
                event: Some("conversation.item.retrieve".into()),
                ..RealtimeError::default()
            }));
            for notice in self.call.retrieve_failed(item_id, &self.deps.writer) {
                self.on_transcript_notice(myself, notice);
            }
            return;
        }
        let setup = self.protocol.setup();
        if error.event_id.as_deref() == Some(setup.event_id) {
            self.count_refusal();
            let (effects, refusal) =
                rules::setup_refused(setup, self.is_reattach(), &self.provider, &error);
            if let (Some(refusal), Some(session)) = (refusal, self.session.as_mut()) {
                session.refusal = Some(refusal);
            }
            self.apply(myself, effects);
            return;
        }
        if error.flat {
            // A provider's own refusal of the session (Stream's agent
            // endpoint): close it, and try again only after a long pause.
            self.count_refusal();
            let kind = error.kind.as_deref().unwrap_or("error");
            let shown = format!(
                "{} refused the session: {kind} {code} {}",
                self.provider, error.message
            )
            .trim_end()
            .to_owned();
            let retry = self.deps.config.refused_retry;
            let problem = Problem {
                error: shown,
                detail: Private(error.message.clone()),
                kind: Some(kind.to_owned()),
                code: Some(code),
                retry_in_ms: Some(retry.as_millis() as u64),
                ..Problem::default()
            };
            let shown = Effect::Show(Shown::SessionRefused, problem);
            self.apply(myself, vec![shown]);
            if let Some(session) = self.session.take() {
                tokio::spawn(session.close());
            }
            self.call.end_session(&self.deps.writer);
            let effects = vec![Effect::Connect {
                why: "the provider refused the session".into(),
                when: When::Backoff { floor: Some(retry) },
            }];
            self.apply(myself, effects);
            return;
        }
        if CONFIGURATION_ERROR_CODES.contains(&code.as_str())
            && let Some(session) = self.session.as_mut()
        {
            session.refusal = Some(format!("{code}: {}", error.message));
        }
        if self.count_error() {
            self.log(CallEvent::RealtimeError(RealtimeError {
                code: error.code,
                message: Some(Private(error.message)),
                kind: error.kind,
                param: error.param,
                ..RealtimeError::default()
            }));
        }
    }

    pub(super) fn on_transcript_notice(&mut self, myself: &ActorRef<MeetingMsg>, notice: Notice) {
        let event = match notice {
            Notice::RetrieveItem { item_id } => {
                let event_id = format!("{RETRIEVE_EVENT_PREFIX}{item_id}");
                if let Some(session) = self.session.as_mut() {
                    session.outgoing.push(retrieve_item(&event_id, &item_id));
                    let epoch = session.epoch;
                    myself.send_after(self.deps.config.retrieve_timeout, move || {
                        MeetingMsg::RetrieveDeadline { epoch, item_id }
                    });
                }
                return;
            }
            Notice::ItemRecovered {
                item_id,
                sequence_number,
            } => CallEvent::ItemRecovered {
                item_id: Private(item_id),
                sequence_number,
            },
            Notice::PossibleHole {
                after,
                before,
                from,
                to,
            } => CallEvent::PossibleGap(Hole {
                after,
                before: Some(before),
                from,
                to: Some(to),
                reason: "scribe's sideband was away: items the call made meanwhile may be missing here (a retrieved item does not name its predecessor)".into(),
                ..Hole::default()
            }),
            Notice::TimedGap {
                after,
                before,
                from,
                to,
                from_ms,
                to_ms,
            } => CallEvent::PossibleGap(Hole {
                after,
                before: Some(before),
                from,
                to: Some(to),
                from_ms,
                to_ms: Some(to_ms),
                reason: "scribe's sideband was away: what was said meanwhile is not recorded (GPT-Live cannot give fragments back)".into(),
            }),
            Notice::LateFragment {
                speaker,
                start_ms,
                placed_at_ms,
            } => CallEvent::LateFragment {
                speaker,
                start_ms,
                placed_at_ms,
            },
            Notice::OutOfOrderItem {
                item_id,
                previous_item_id,
            } => CallEvent::OutOfOrderItem {
                item_id: Private(item_id),
                sequence_number: None,
                previous_item_id: Some(Private(previous_item_id)),
                reason: None,
            },
            Notice::ReplyInterrupted {
                response_id,
                status,
                reason,
                error,
                lines,
            } => CallEvent::ReplyInterrupted {
                response_id: Private(response_id),
                status,
                reason,
                error: error.map(Private),
                lines,
            },
            Notice::ReplyTruncated {
                item_id,
                audio_end_ms,
                sequence_number,
            } => CallEvent::ReplyTruncated {
                item_id: Private(item_id),
                audio_end_ms,
                sequence_number,
            },
            Notice::Unplaced {
                item_id,
                sequence_number,
            } => CallEvent::OutOfOrderItem {
                item_id: Private(item_id),
                sequence_number: Some(sequence_number),
                previous_item_id: None,
                reason: Some("a transcript for an item whose place in the conversation never came: stored after the lines before it".into()),
            },
            Notice::Silence {
                item_id,
                sequence_number,
                given_back,
            } => CallEvent::Silence {
                reason: if given_back || sequence_number.is_none() {
                    "the user turn's transcription completed empty: no line was stored"
                } else {
                    "the user turn's transcription completed empty after a later line was stored: its place is kept as an empty transcription_failed line"
                }
                .into(),
                item_id: Private(item_id),
                sequence_number,
                given_back,
            },
            Notice::TranscriptionFailed {
                item_id,
                sequence_number,
                error,
            } => CallEvent::TranscriptionFailed {
                item_id: Private(item_id),
                sequence_number,
                error: ServiceError {
                    kind: error.kind,
                    code: error.code,
                    message: Private(error.message),
                },
            },
        };
        self.log(event);
    }

    /// A missed item asked for on session `epoch` did not come back in time.
    pub fn on_retrieve_deadline(
        &mut self,
        myself: &ActorRef<MeetingMsg>,
        epoch: u64,
        item_id: &str,
    ) {
        if !self.is_current(epoch) {
            return;
        }
        for notice in self.call.retrieve_failed(item_id, &self.deps.writer) {
            self.on_transcript_notice(myself, notice);
        }
    }
}
