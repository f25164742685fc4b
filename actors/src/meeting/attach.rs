//! Attached sessions: scribe's sideband to a call that a browser (WebRTC)
//! or a phone (SIP) carries. The call does not depend on scribe: when the
//! sideband socket ends, scribe re-attaches to the same provider call at
//! once, then with backoff (nothing is replayed: the session has its conversation), and the
//! provider ends the call.
//!
//! OpenAI does not document what a re-attach to a call that has ended
//! answers. Every plausible answer is taken as the call being over:
//!
//! - the upgrade answered 404 (`ConnectError::Gone`): at once;
//! - a socket that ends within `attach_grace` without one event from the
//!   service (an `error` does not count), `attach_gone_after` times in a
//!   row (an error then a close, a bare close, a close frame);
//! - no socket alive for `reattach_window` since the sideband was lost
//!   (refused connections, timeouts, a key that no longer works).
//!
//! Then the actor finalizes the call itself (as `call.session_ended` would)
//! and stops with [`CALL_OVER`](crate::exit::CALL_OVER); its supervisor
//! hands the meeting to its analysis.

use chrono::Utc;
use ractor::ActorRef;
use serde_json::json;
use tokio::time::Instant;

use super::msg::MeetingMsg;
use super::shared::SharedCall;
use super::actor_state::MeetingState;
use crate::domain::{EventKind, Transport, VoiceApi};
use crate::ports::Finalized;
use crate::voice::gpt_live::session_close;

impl MeetingState {
    /// True when this call's session is a sideband to a call someone else
    /// carries.
    pub fn is_attached(&self) -> bool {
        self.context.attached_to().is_some()
    }

    /// A sideband to a call scribe was attached to before (an earlier
    /// socket of this actor, an earlier actor, process or instance): the
    /// call was configured then, so nothing about its settings is shown on
    /// the meeting now.
    pub(super) fn is_reattach(&self) -> bool {
        self.is_attached()
            && (self.sessions > 1 || self.incarnation > 0 || self.context.next_sequence > 1)
    }

    /// A sideband socket opened.
    pub(super) fn attach_opened(&mut self) {
        self.attach.opened = Some(Instant::now());
    }

    /// The sideband socket ended without scribe asking (read before the
    /// call is detached: it counts what the socket delivered). Returns why
    /// the call is over, when it is.
    pub(super) fn attach_lost(&mut self) -> Option<String> {
        let grace = self.deps.config.attach_grace;
        let heard = self.call.heard() > 0;
        let lasted = self
            .attach
            .opened
            .take()
            .is_some_and(|at| at.elapsed() >= grace);
        let now = Instant::now();
        if heard || lasted {
            self.attach.empty = 0;
            self.attach.lost_since = Some(now);
            self.attach.at_once = true;
        } else {
            self.attach.empty += 1;
            self.attach.lost_since.get_or_insert(now);
        }
        self.call_over_reason()
    }

    /// An attach could not even connect. Returns why the call is over,
    /// when it is.
    pub(super) fn attach_failed(&mut self) -> Option<String> {
        self.attach.lost_since.get_or_insert(Instant::now());
        self.call_over_reason()
    }

    fn call_over_reason(&self) -> Option<String> {
        let config = &self.deps.config;
        if self.attach.empty >= config.attach_gone_after {
            return Some(format!(
                "{} re-attaches in a row ended within {} s without a word from {}",
                self.attach.empty,
                config.attach_grace.as_secs(),
                self.provider
            ));
        }
        let window = config.reattach_window;
        self.attach
            .lost_since
            .filter(|since| since.elapsed() >= window)
            .map(|_| {
                format!(
                    "no sideband to the call stayed attached for {} s",
                    window.as_secs()
                )
            })
    }

    /// Tells the actor its call is over (from inside a handler); from now
    /// on a socket's end opens nothing.
    pub(super) fn declare_call_over(&mut self, myself: &ActorRef<MeetingMsg>, why: String) {
        self.over = true;
        let _ = myself.cast(MeetingMsg::CallOver { why });
    }

    /// The provider ended the call: log why, then finalize it as
    /// `call.session_ended` would. `None` when it is already ending.
    pub async fn call_over(&mut self, why: String) -> Option<Finalized> {
        if self.ending {
            return None;
        }
        tracing::info!(meeting = %self.meeting(), reason = %why, "the provider ended the call");
        self.log(EventKind::CallOver, json!({ "reason": why }));
        self.finalize(Utc::now(), false).await
    }

    /// scribe ends the provider's call it is attached to, the way the
    /// call's path ends: a GPT-Live WebRTC session with `session.close` on
    /// the sideband, read until `session.closed` (OpenAI documents its REST
    /// hang-up for SIP calls only); any other (Realtime, GPT-Live SIP) with
    /// the provider's REST hang-up. Bounded by `deadline`; the outcome goes
    /// to the event log. The actor is already ending: the sideband's close
    /// that follows re-attaches nothing.
    pub(super) async fn hang_up(&mut self, deadline: Instant) {
        let Some(call_id) = self.context.attached_to().map(str::to_owned) else {
            return;
        };
        let api = self.voice_api();
        if api == VoiceApi::Live && self.context.transport == Some(Transport::WebRtc) {
            let sent = match self.socket.as_mut() {
                Some(socket) => Self::send(socket, session_close()).await.is_ok(),
                None => false,
            };
            let confirmed = sent
                && self
                    .call
                    .wait_until(deadline, SharedCall::live_closed)
                    .await;
            let log = match (sent, confirmed) {
                (false, _) => {
                    json!({ "how": "session.close", "error": "no sideband was open to send it on" })
                }
                (true, confirmed) => json!({ "how": "session.close", "confirmed": confirmed }),
            };
            self.log(EventKind::HungUp, log);
            return;
        }
        let Some(control) = self.deps.control.clone() else {
            self.log(
                EventKind::HungUp,
                json!({ "how": "hangup", "error": "no OPENAI_API_KEY: the call was not hung up at OpenAI" }),
            );
            return;
        };
        let log = match tokio::time::timeout_at(deadline, control.hang_up(api, &call_id)).await {
            Ok(Ok(())) => json!({ "how": "hangup", "confirmed": true }),
            // A call OpenAI already ended is ended all the same.
            Ok(Err(error)) => {
                tracing::warn!(meeting = %self.meeting(), error = %crate::ports::error_chain(&error), "hangup not confirmed by the provider");
                json!({ "how": "hangup", "confirmed": false })
            }
            Err(_) => json!({ "how": "hangup", "confirmed": false, "error": "no answer in time" }),
        };
        self.log(EventKind::HungUp, log);
    }
}
