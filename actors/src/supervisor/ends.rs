//! The end of a call, routed: to its live actor; else, when the store says
//! another instance owns it, to that instance (through the database);
//! else finalized here from the stored state, in a task the supervisor
//! owns. The store is asked in a task; its answer comes back as a message.

use std::panic::AssertUnwindSafe;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use ractor::{ActorRef, RpcReplyPort};

use super::msg::SupervisorMsg;
use super::outcome::EndOutcome;
use super::state::SupervisorState;
use crate::ids::MeetingId;
use crate::meeting::drain::{Verdict, end_call};
use crate::meeting::msg::MeetingMsg;

/// Gives every asker the same answer.
fn answer(replies: Vec<RpcReplyPort<EndOutcome>>, outcome: EndOutcome) {
    for reply in replies {
        let _ = reply.send(outcome);
    }
}

impl SupervisorState {
    /// Routes the end of a call; `replies` (whoever asks) get where it went.
    pub fn end(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        replies: Vec<RpcReplyPort<EndOutcome>>,
    ) {
        if self.running.get(&meeting).is_some_and(|e| e.lease_lost) {
            // Its actor here is stopping: another holds the call, or will
            // (its end is recorded, and whoever takes it finalizes it).
            return answer(replies, EndOutcome::Forwarded);
        }
        match self.running.get(&meeting).map(|entry| entry.ending) {
            Some(true) => return answer(replies, EndOutcome::Finalizing),
            Some(false) if self.end_live(meeting, ended_at) => {
                return answer(replies, EndOutcome::Finalizing);
            }
            _ => {}
        }
        if self.finalizing.contains(&meeting) {
            return answer(replies, EndOutcome::FinalizingFromStore);
        }
        if let Some(waiting) = self.waiting.get_mut(&meeting) {
            // Its actor is about to start (or restart): the end follows it,
            // and every asker hears where it went then.
            waiting
                .end
                .get_or_insert_with(|| (ended_at, Vec::new()))
                .1
                .extend(replies);
            return;
        }
        if !self.routing.insert(meeting) {
            // Already being routed: the first end's answer is this one's.
            return answer(replies, EndOutcome::Finalizing);
        }
        let (store, owner, permits, me) = (
            self.deps.store.clone(),
            self.membership.get(),
            self.store_work.clone(),
            myself.clone(),
        );
        self.spawn_task(async move {
            let _permit = permits.acquire_owned().await;
            let asked = AssertUnwindSafe(store.request_end(meeting, &owner, ended_at));
            // A failure (or a panic) routes the end here: finalizing twice
            // is harmless, an end nobody finalizes is not.
            let forwarded = matches!(asked.catch_unwind().await, Ok(Ok(true)));
            let _ = me.cast(SupervisorMsg::EndRouted {
                meeting,
                ended_at,
                forwarded,
                replies,
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
        replies: Vec<RpcReplyPort<EndOutcome>>,
    ) {
        self.routing.remove(&meeting);
        if forwarded {
            return answer(replies, EndOutcome::Forwarded);
        }
        // Nobody else has it: here (the actor may have started meanwhile).
        if self.running.contains_key(&meeting)
            || self.waiting.contains_key(&meeting)
            || self.finalizing.contains(&meeting)
        {
            return self.end(myself, meeting, ended_at, replies);
        }
        self.finalize_without_actor(myself, meeting, ended_at);
        answer(replies, EndOutcome::FinalizingFromStore);
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
                waiting.end.get_or_insert_with(|| (ended_at, Vec::new()));
            }
            None if self.routing.contains(&meeting) => {}
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
