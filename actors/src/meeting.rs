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
//! - [`actor_state`]: what it holds, and how it carries out effects.
//! - [`rules`]: its decisions (rotation, re-attach, refusals, a socket's
//!   end) as functions from facts to effects.
//! - [`session`]: one socket's session, as a value.
//! - [`open`]: opening, replacing and ending sessions; finalizing.
//! - [`notices`]: what it does with what the reader reports.
//! - [`attach`]: the ends of an attached call (the provider's, scribe's hang-up).
//! - [`reader`]: the socket reader task.
//! - [`shared`]: `SharedCall`, the conversation that outlives actors.
//! - [`drain`]: the end of a call, written once.
//! - [`deps`]: what every call shares, and its timings.

pub mod actor_state;
pub mod attach;
pub mod deps;
pub mod drain;
pub mod msg;
pub mod notices;
pub mod open;
pub mod reader;
pub mod rules;
pub mod session;
pub mod shared;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use crate::call_log::CallEvent;
use crate::ports::CallContext;
use crate::snapshot::SocketState;
use actor_state::MeetingState;
use deps::CallDeps;
use msg::MeetingMsg;
use shared::SharedCall;

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
        let event = match &args.restart_reason {
            None => CallEvent::ActorStarted {
                incarnation: args.incarnation,
            },
            Some(reason) => CallEvent::ActorRestarted {
                incarnation: args.incarnation,
                reason: reason.clone(),
                next_sequence: args.call.next_sequence(),
            },
        };
        args.deps.log(meeting, event);
        let state = MeetingState::new(args.context, args.call, args.deps, args.incarnation);
        state.span.in_scope(|| {
            tracing::info!(%meeting, incarnation = args.incarnation, "meeting actor started");
        });
        myself.cast(MeetingMsg::Connect)?;
        Ok(state)
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
        let span = state.span.clone();
        handle(myself, message, state).instrument(span).await
    }
}

/// What [`MeetingActor::handle`] does, inside the call's log span.
async fn handle(
    myself: ActorRef<MeetingMsg>,
    message: MeetingMsg,
    state: &mut MeetingState,
) -> Result<(), ActorProcessingErr> {
    match message {
        MeetingMsg::Connect => {
            if !state.ending
                && state.session.is_none()
                && state.socket_state != SocketState::ConfigurationError
            {
                let span = state.opening_span();
                Box::pin(state.connect(&myself).instrument(span)).await;
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
            state.on_session_update_deadline(&myself, epoch);
        }
        MeetingMsg::Rotate { epoch } => {
            if !state.ending {
                Box::pin(state.on_rotate(&myself, epoch)).await;
            }
        }
        MeetingMsg::Finalize { ended_at } => {
            if !state.ending {
                // scribe was told to end the call (its hang-up): a call
                // it is attached to ends at the provider too.
                let done = Box::pin(state.finalize(ended_at, true)).await;
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
