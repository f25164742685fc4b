//! The end of a call, routed: to its live actor; else, when the store says
//! another instance owns it, to that instance (through the database);
//! else finalized here from the stored state, in a task the supervisor
//! owns. The store is asked in a task; its answer comes back as a message.

use chrono::{DateTime, Utc};
use ractor::{ActorRef, RpcReplyPort};

use super::msg::SupervisorMsg;
use super::outcome::EndOutcome;
use super::state::SupervisorState;
use crate::ids::MeetingId;
use crate::meeting::drain::{Verdict, end_call};
use crate::meeting::msg::MeetingMsg;

impl SupervisorState {
    /// Routes the end of a call; `reply` (when someone asks) gets where it
    /// went.
    pub fn end(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        reply: Option<RpcReplyPort<EndOutcome>>,
    ) {
        let answer = |reply: Option<RpcReplyPort<EndOutcome>>, outcome| {
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        };
        match self.running.get(&meeting).map(|entry| entry.ending) {
            Some(true) => return answer(reply, EndOutcome::Finalizing),
            Some(false) if self.end_live(meeting, ended_at) => {
                return answer(reply, EndOutcome::Finalizing);
            }
            _ => {}
        }
        if self.finalizing.contains(&meeting) {
            return answer(reply, EndOutcome::FinalizingFromStore);
        }
        if let Some(waiting) = self.waiting.get_mut(&meeting) {
            // Its actor is about to start (or restart): the end follows it.
            match &waiting.end {
                Some(_) => answer(reply, EndOutcome::Finalizing),
                None => waiting.end = Some((ended_at, reply)),
            }
            return;
        }
        let (store, owner, permits, me) = (
            self.deps.store.clone(),
            self.owner.clone(),
            self.store_work.clone(),
            myself.clone(),
        );
        self.spawn_task(async move {
            let _permit = permits.acquire_owned().await;
            let forwarded = matches!(store.request_end(meeting, &owner, ended_at).await, Ok(true));
            let _ = me.cast(SupervisorMsg::EndRouted {
                meeting,
                ended_at,
                forwarded,
                reply,
            });
        });
    }

    /// The store said whether another instance owns a call to end.
    pub fn end_routed(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        forwarded: bool,
        reply: Option<RpcReplyPort<EndOutcome>>,
    ) {
        if forwarded {
            if let Some(reply) = reply {
                let _ = reply.send(EndOutcome::Forwarded);
            }
            return;
        }
        // Nobody else has it: here (the actor may have started meanwhile).
        if self.running.contains_key(&meeting)
            || self.waiting.contains_key(&meeting)
            || self.finalizing.contains(&meeting)
        {
            return self.end(myself, meeting, ended_at, reply);
        }
        self.finalize_without_actor(myself, meeting, ended_at);
        if let Some(reply) = reply {
            let _ = reply.send(EndOutcome::FinalizingFromStore);
        }
    }

    /// Tells the call's live actor to finalize; false when none took it.
    pub fn end_live(&mut self, meeting: MeetingId, ended_at: DateTime<Utc>) -> bool {
        match self.running.get_mut(&meeting) {
            Some(entry)
                if !entry.ending && entry.actor.cast(MeetingMsg::Finalize { ended_at }).is_ok() =>
            {
                entry.ending = true;
                self.finalizing.insert(meeting);
                true
            }
            _ => false,
        }
    }

    /// Another instance recorded the end of a call this one holds.
    pub fn ended_elsewhere(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
    ) {
        if self.end_live(meeting, ended_at)
            || self.running.contains_key(&meeting)
            || self.finalizing.contains(&meeting)
        {
            return;
        }
        match self.waiting.get_mut(&meeting) {
            Some(waiting) => {
                waiting.end.get_or_insert((ended_at, None));
            }
            None => self.finalize_without_actor(myself, meeting, ended_at),
        }
    }

    /// Ends a call no actor runs: drains what this process holds of it,
    /// then finalizes it from the store, in a task the supervisor owns.
    pub fn finalize_without_actor(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
    ) {
        self.finalizing.insert(meeting);
        let (deps, registry, me) = (self.deps.clone(), self.registry.clone(), myself.clone());
        self.spawn_task(async move {
            let call = registry.get(meeting);
            let done = end_call(&deps, meeting, call, Verdict::Finalize { ended_at }).await;
            registry.remove(meeting);
            let _ = me.cast(SupervisorMsg::Finalized { meeting });
            if let Some(done) = done {
                tracing::info!(%meeting, lines = done.lines, lost = done.lost.len(), "call finalized without a live actor");
            }
        });
    }
}
