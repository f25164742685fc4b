//! MeetingActor: one per live call. It owns the call's realtime session
//! (connect, `session.update`, replay after a reconnect, reconnect with
//! backoff), logs what happens to the call, and on `Finalize` drains the
//! transcript and moves the meeting to `processing`.
//!
//! What must survive the actor (the conversation and its unwritten lines)
//! lives in [`shared::SharedCall`], owned by the supervisor's registry; the
//! socket and its reader die with the actor, and the heir opens a new
//! session.
//!
//! - [`msg`]: what the actor is told.
//! - [`state`]: what it holds, and the session logic.
//! - [`notices`]: what it does with what the reader reports.
//! - [`attach`]: attached sessions: re-attaching, recovery, the call's end.
//! - [`reader`]: the socket reader task.
//! - [`shared`]: `SharedCall`, the conversation that outlives actors.
//! - [`drain`]: the end of a call, written once.
//! - [`deps`]: what every call shares, and its timings.

pub mod attach;
pub mod deps;
pub mod drain;
pub mod msg;
pub mod notices;
pub mod open;
pub mod reader;
pub mod shared;
pub mod actor_state;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;

use crate::domain::EventKind;
use crate::ports::CallContext;
use crate::snapshot::SocketState;
use deps::CallDeps;
use msg::MeetingMsg;
use shared::SharedCall;
use actor_state::MeetingState;

pub struct MeetingActor;

pub struct MeetingArgs {
    pub context: CallContext,
    pub call: Arc<SharedCall>,
    pub deps: Arc<CallDeps>,
    /// 0 for the first actor of a call, n for its n-th restart.
    pub incarnation: u32,
    /// Why the previous incarnation ended, for the event log.
    pub restart_reason: Option<String>,
}

impl Actor for MeetingActor {
    type Msg = MeetingMsg;
    type State = MeetingState;
    type Arguments = MeetingArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MeetingMsg>,
        args: MeetingArgs,
    ) -> Result<MeetingState, ActorProcessingErr> {
        let meeting = args.context.meeting_id;
        match &args.restart_reason {
            None => args.deps.log(meeting, EventKind::ActorStarted, json!({ "incarnation": args.incarnation })),
            Some(reason) => args.deps.log(
                meeting,
                EventKind::ActorRestarted,
                json!({ "incarnation": args.incarnation, "reason": reason, "next_sequence": args.call.next_sequence() }),
            ),
        }
        tracing::info!(%meeting, incarnation = args.incarnation, "meeting actor started");
        myself.cast(MeetingMsg::Connect)?;
        Ok(MeetingState::new(
            args.context,
            args.call,
            args.deps,
            args.incarnation,
        ))
    }

    /// The long operations (connect, rotate, finalize) are boxed: ractor
    /// keeps this handler's future inside each actor's processing loop for
    /// the actor's whole life, so an inline connect (TCP, WebSocket
    /// handshake, session setup) made every live call about 25 KiB larger.
    async fn handle(
        &self,
        myself: ActorRef<MeetingMsg>,
        message: MeetingMsg,
        state: &mut MeetingState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MeetingMsg::Connect => {
                if !state.ending
                    && state.socket.is_none()
                    && state.socket_state != SocketState::ConfigurationError
                {
                    Box::pin(state.connect(&myself)).await;
                }
            }
            MeetingMsg::SocketEnded { epoch, end } => {
                if state.is_current(epoch) {
                    state.on_socket_end(&myself, end);
                }
            }
            MeetingMsg::Realtime { epoch, notice } => {
                if state.is_current(epoch) {
                    state.on_notice(&myself, notice);
                    state.flush_outgoing().await;
                }
            }
            MeetingMsg::RetrieveDeadline { epoch, item_id } => {
                state.on_retrieve_deadline(&myself, epoch, &item_id);
            }
            MeetingMsg::CallOver { why } => {
                if !state.ending {
                    let done = Box::pin(state.call_over(why)).await;
                    if let Some(done) = done {
                        tracing::info!(meeting = %state.meeting(), lines = done.lines, lost = done.lost.len(), "call finalized: the provider ended it");
                    }
                    myself.stop(Some(crate::exit::CALL_OVER.into()));
                }
            }
            MeetingMsg::SessionUpdateDeadline { epoch } => {
                state.on_session_update_deadline(epoch);
            }
            MeetingMsg::Rotate { epoch } => {
                if !state.ending && state.is_current(epoch) {
                    if state.call.is_idle() {
                        Box::pin(state.rotate(&myself, false)).await;
                    } else if state.must_rotate_now() {
                        Box::pin(state.rotate(&myself, true)).await;
                    } else {
                        myself.send_after(state.deps.config.rotate_retry, move || {
                            MeetingMsg::Rotate { epoch }
                        });
                    }
                }
            }
            MeetingMsg::Finalize { ended_at } => {
                if !state.ending {
                    // An attached call ends because scribe was told to
                    // end it (its hang-up): the provider's call ends too.
                    let hang_up = state.is_attached();
                    let done = Box::pin(state.finalize(ended_at, hang_up)).await;
                    if let Some(done) = done {
                        tracing::info!(meeting = %state.meeting(), lines = done.lines, lost = done.lost.len(), "call finalized");
                    }
                    myself.drain()?;
                }
            }
            MeetingMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            MeetingMsg::Panic => panic!("injected panic in meeting actor {}", state.meeting()),
        }
        Ok(())
    }
}
