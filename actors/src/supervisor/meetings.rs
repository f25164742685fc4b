//! The supervisor's meeting actors: start one per live call (after taking
//! the call's lease), route the end of a call to it (or finalize from the
//! stored state when none is live), restart one that dies while its call is
//! still `active` (after the old one's termination event, within the
//! budget), and give up with a verdict past the budget.

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorRef};
use serde_json::json;
use tokio::time::Instant;

use super::budget::Restarts;
use super::msg::SupervisorMsg;
use super::outcome::{EndOutcome, StartError, StartOutcome};
use super::state::{ChildKind, RunningCall, SupervisorState};
use crate::domain::{EventKind, MeetingStatus};
use crate::exit::ExitReason;
use crate::ids::MeetingId;
use crate::meeting::drain::{Verdict, end_call};
use crate::meeting::msg::MeetingMsg;
use crate::meeting::{MeetingActor, MeetingArgs};
use crate::ports::{CallContext, error_chain};

impl SupervisorState {
    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        context: CallContext,
        incarnation: u32,
        restarts: Restarts,
        restart_reason: Option<String>,
    ) -> Result<(), StartError> {
        let meeting = context.meeting_id;
        let call = self.registry.get_or_insert(&context);
        let args = MeetingArgs {
            context: context.clone(),
            call,
            deps: self.deps.clone(),
            incarnation,
            restart_reason,
        };
        let (actor, _) = Actor::spawn_linked(None, MeetingActor, args, myself.get_cell())
            .await
            .map_err(StartError::Spawn)?;
        self.by_actor
            .insert(actor.get_id(), (meeting, ChildKind::Meeting));
        self.running.insert(
            meeting,
            RunningCall {
                actor,
                context,
                incarnation,
                restarts,
                ending: false,
                lease_lost: false,
                since: Instant::now(),
            },
        );
        Ok(())
    }

    /// Starts the call's actor: the meeting must be `active` and its lease
    /// free (or this instance's).
    pub async fn start(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        reason: Option<String>,
    ) -> Result<StartOutcome, StartError> {
        if self.running.contains_key(&meeting) {
            return Ok(StartOutcome::AlreadyRunning);
        }
        let Some(context) = self.deps.store.call_context(meeting).await? else {
            return Ok(StartOutcome::NotFound);
        };
        if context.status != MeetingStatus::Active {
            return Ok(StartOutcome::NotActive(context.status));
        }
        let leased = self
            .leases
            .acquire_lease(meeting, &self.owner, self.lease_ttl)
            .await?;
        if !leased {
            return Ok(StartOutcome::OwnedElsewhere);
        }
        if context.lease_unreleased && self.registry.get(meeting).is_none() {
            // The process that ran the call died without a shutdown, and
            // its unwritten lines died with it: numbers past the stored
            // high-water mark were never reported, so say where the hole is.
            let after = context.next_sequence - 1;
            self.deps.log(
                meeting,
                EventKind::PossibleGap,
                json!({
                    "after": after,
                    "reason": format!("the process that ran this call stopped without a shutdown: lines it read after number {after} and had not committed may be missing"),
                }),
            );
        }
        if let Some(ended_at) = context.end_requested_at {
            self.finalize_without_actor(myself, meeting, ended_at);
            return Ok(StartOutcome::Ending);
        }
        self.spawn(myself, context, 0, Restarts::default(), reason)
            .await?;
        Ok(StartOutcome::Started)
    }

    /// Routes the end of a call: to its live actor, else to the instance
    /// that owns it (through the database), else finalizes it here from
    /// the stored state.
    pub async fn end(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
    ) -> EndOutcome {
        match self.running.get(&meeting).map(|entry| entry.ending) {
            Some(true) => return EndOutcome::Finalizing,
            Some(false) if self.end_live(meeting, ended_at) => return EndOutcome::Finalizing,
            _ => {}
        }
        if self.finalizing.contains(&meeting) {
            return EndOutcome::FinalizingFromStore;
        }
        let forwarded = self
            .deps
            .store
            .request_end(meeting, &self.owner, ended_at)
            .await;
        if matches!(forwarded, Ok(true)) {
            return EndOutcome::Forwarded;
        }
        self.finalize_without_actor(myself, meeting, ended_at);
        EndOutcome::FinalizingFromStore
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

    pub async fn on_meeting_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        why: ExitReason,
    ) {
        let Some(mut entry) = self.running.remove(&meeting) else {
            return;
        };
        if entry.lease_lost {
            self.registry.remove(meeting);
            return;
        }
        // An actor that finalized its call because the provider ended it
        // hands over exactly as one told to finalize.
        if entry.ending || why == ExitReason::CallOver {
            if why.is_clean() {
                self.registry.remove(meeting);
                self.finalized(meeting);
                // The hand-off: analysis starts now, no queue in between.
                self.start_analysis(myself, meeting, 0, Restarts::default(), None)
                    .await;
            } else {
                // Died while finalizing: finish the job from what is stored and shared.
                self.finalize_without_actor(myself, meeting, Utc::now());
            }
            return;
        }
        tracing::warn!(%meeting, reason = %why, "meeting actor died; considering a restart");
        if let Err(spent) = entry.restarts.spend(&self.budget, "the call's actor", &why) {
            let error = spent.to_string();
            self.deps.log(
                meeting,
                EventKind::RestartBudgetExhausted,
                json!({ "error": error }),
            );
            let (deps, call) = (self.deps.clone(), self.registry.remove(meeting));
            self.spawn_task(async move {
                end_call(&deps, meeting, call, Verdict::Fail { error }).await;
            });
            return;
        }
        // Only a definite answer stops the restart: with the database out
        // of reach the call is still live and its lines wait in memory.
        let over = match self.deps.store.call_context(meeting).await {
            Ok(Some(CallContext { status, .. })) => status != MeetingStatus::Active,
            Ok(None) => true,
            Err(error) => {
                tracing::warn!(%meeting, error = %error_chain(&error), "call state unknown; restarting its actor anyway");
                false
            }
        };
        if over {
            self.registry.remove(meeting);
            return;
        }
        crate::metrics::restarted("meeting");
        let reason = Some(why.to_string());
        if let Err(error) = self
            .spawn(
                myself,
                entry.context,
                entry.incarnation + 1,
                entry.restarts,
                reason,
            )
            .await
        {
            tracing::error!(%meeting, error = %error_chain(&error), "meeting actor could not be restarted");
        }
    }
}
