//! The ends of an attached call: the provider ended it (`call_over`), or
//! scribe ends the provider's call the way its path ends (`hang_up`). The
//! re-attach rule itself is in [`rules`](super::rules).

use chrono::Utc;
use serde_json::json;
use tokio::time::Instant;

use super::actor_state::MeetingState;
use super::shared::SharedCall;
use crate::domain::EventKind;
use crate::path::HangUp;
use crate::ports::Finalized;
use crate::voice::gpt_live::session_close;

impl MeetingState {
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

    /// scribe ends the provider's call it is attached to, `how` its path
    /// ends: `session.close` on the sideband, read until `session.closed`;
    /// or the provider's REST hang-up. Bounded by `deadline`; the outcome
    /// goes to the event log. The actor is already ending: the sideband's
    /// close that follows re-attaches nothing.
    pub(super) async fn hang_up(&mut self, how: HangUp, deadline: Instant) {
        let Some(call_id) = self.context.attached_to().map(str::to_owned) else {
            return;
        };
        if how == HangUp::SessionClose {
            let sent = match self.session.as_mut() {
                Some(session) => session.send(session_close()).await.is_ok(),
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
        let api = self.context.path.api();
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
