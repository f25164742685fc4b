//! The ends of an attached call: the provider ended it (`call_over`), or
//! scribe ends the provider's call the way its path ends (`hang_up`). The
//! re-attach rule itself is in [`rules`](super::rules).

use chrono::Utc;
use tokio::time::Instant;

use super::actor_state::MeetingState;
use super::shared::SharedCall;
use crate::call_log::CallEvent;
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
        self.log(CallEvent::CallOver {
            reason: why.clone(),
        });
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
            let (confirmed, error) = match (sent, confirmed) {
                (false, _) => (None, Some("no sideband was open to send it on".to_owned())),
                (true, confirmed) => (Some(confirmed), None),
            };
            self.log(hung_up("session.close", confirmed, error));
            return;
        }
        let Some(control) = self.deps.control.clone() else {
            self.log(hung_up(
                "hangup",
                None,
                Some("no OPENAI_API_KEY: the call was not hung up at OpenAI".into()),
            ));
            return;
        };
        let api = self.context.path.api();
        let event = match tokio::time::timeout_at(deadline, control.hang_up(api, &call_id)).await {
            Ok(Ok(())) => hung_up("hangup", Some(true), None),
            // A call OpenAI already ended is ended all the same.
            Ok(Err(error)) => {
                tracing::warn!(meeting = %self.meeting(), error = %crate::ports::error_chain(&error), "hangup not confirmed by the provider");
                hung_up("hangup", Some(false), None)
            }
            Err(_) => hung_up("hangup", Some(false), Some("no answer in time".into())),
        };
        self.log(event);
    }
}

/// How scribe hung up an attached call, for the log.
fn hung_up(how: &str, confirmed: Option<bool>, error: Option<String>) -> CallEvent {
    CallEvent::HungUp {
        how: how.to_owned(),
        confirmed,
        error,
    }
}
