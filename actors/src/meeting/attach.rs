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
use super::state::MeetingState;
use crate::domain::EventKind;
use crate::ports::Finalized;

impl MeetingState {
    /// True when this call's session is a sideband to a call someone else
    /// carries.
    pub fn is_attached(&self) -> bool {
        self.context.attached_to().is_some()
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

    /// Tells the actor its call is over (from inside a handler).
    pub(super) fn declare_call_over(&self, myself: &ActorRef<MeetingMsg>, why: String) {
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
        self.finalize(Utc::now()).await
    }
}
