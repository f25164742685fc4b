//! The supervisor's meeting actors: start one per live call (after taking
//! the call's lease), restart one that dies while its call is still
//! `active` (after the old one's termination event, within the budget),
//! and give up with a verdict past the budget.
//!
//! The supervisor never waits on the store inside a handler: what a start
//! or a restart needs from it (the call's context, its lease, whether it
//! is still live) is read in a task ([`STORE_TASKS`] at most at once),
//! whose answer comes back as a message. Meanwhile the call is `waiting`:
//! a second start or an end for it waits with it.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use ractor::{Actor, ActorRef};

use super::budget::Restarts;
use super::msg::{Prepared, SupervisorMsg};
use super::outcome::{StartError, StartOutcome};
use super::state::{ChildKind, Heir, RunningCall, SupervisorState, Waiting};
use crate::call_log::{CallEvent, Hole};
use crate::domain::MeetingStatus;
use crate::exit::ExitReason;
use crate::ids::MeetingId;
use crate::meeting::drain::{Verdict, end_call};
use crate::meeting::{MeetingActor, MeetingArgs};
use crate::ports::{CallContext, Claimed, Member, PortError, error_chain};

/// A start's answer for every start request that waited on it: the first
/// gets it as it is; the others, which asked for a call being started,
/// find it running (or the same refusal).
type StartReply = ractor::RpcReplyPort<Result<StartOutcome, StartError>>;

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
            },
        );
        Ok(())
    }

    /// Starts the call's actor once the store says the meeting is `active`
    /// and this instance holds it (it took it now, or already did). `reply`
    /// (when someone asks) gets the outcome then.
    pub fn start(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        reason: Option<String>,
        reply: Option<StartReply>,
    ) {
        self.prepare(myself, meeting, None, reason, reply);
    }

    /// Starts a call the membership task already took for this instance.
    pub fn start_claimed(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        claim: Claimed,
        reason: Option<String>,
    ) {
        self.prepare(myself, claim.meeting, Some(claim), reason, None);
    }

    fn prepare(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        claimed: Option<Claimed>,
        reason: Option<String>,
        reply: Option<StartReply>,
    ) {
        if self.running.contains_key(&meeting) {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(StartOutcome::AlreadyRunning));
            }
            return;
        }
        let first = !self.waiting.contains_key(&meeting);
        let waiting = self.waiting.entry(meeting).or_default();
        waiting.starts.extend(reply);
        if !first {
            return;
        }
        self.prepare_task(myself, meeting, claimed, reason);
    }

    /// Reads what a start needs in a task: takes the call for this
    /// member (unless `claimed` says it was taken), then reads it. The
    /// actor writes under the lease epoch the taking returned, never one
    /// read later (another instance may have taken the call since).
    fn prepare_task(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        claimed: Option<Claimed>,
        reason: Option<String>,
    ) {
        let (store, leases, permits) = (
            self.deps.store.clone(),
            self.leases.clone(),
            self.store_work.clone(),
        );
        let (member, me) = (self.membership.get(), myself.clone());
        self.spawn_task(async move {
            let _permit = permits.acquire_owned().await;
            let prepared = AssertUnwindSafe(async {
                // The call is taken first and read after: its numbering is
                // read once no other instance can write for it.
                let claimed = match claimed {
                    Some(claimed) => Some(claimed),
                    None => leases.acquire_lease(meeting, &member).await?,
                };
                let Some(mut context) = store.call_context(meeting).await? else {
                    return Ok(Prepared::NotFound);
                };
                if context.status != MeetingStatus::Active {
                    return Ok(Prepared::NotActive(context.status));
                }
                let Some(claimed) = claimed else {
                    return Ok(Prepared::OwnedElsewhere);
                };
                context.lease = claimed.lease;
                Ok::<_, PortError>(Prepared::Ready {
                    context: Box::new(context),
                    after_crash: claimed.after_crash,
                    member,
                })
            })
            .catch_unwind()
            .await
            // A panic answers as a store failure: nobody waits forever.
            .unwrap_or_else(|_| {
                Err(PortError::store(std::io::Error::other(
                    "the store task panicked",
                )))
            })
            .map_err(StartError::from);
            let _ = me.cast(SupervisorMsg::Prepared {
                meeting,
                reason,
                prepared,
            });
        });
    }

    /// The store answered a start.
    pub async fn prepared(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        reason: Option<String>,
        prepared: Result<Prepared, StartError>,
    ) {
        if let Ok(Prepared::Ready { member, .. }) = &prepared
            && *member != self.membership.get()
        {
            // Taken by a life of this instance that is over (it was
            // declared dead meanwhile): take it again as the live one.
            self.prepare_task(myself, meeting, None, reason);
            return;
        }
        let waiting = self.waiting.remove(&meeting).unwrap_or_default();
        let outcome = match prepared {
            Ok(Prepared::NotFound) => Ok(StartOutcome::NotFound),
            Ok(Prepared::NotActive(status)) => Ok(StartOutcome::NotActive(status)),
            Ok(Prepared::OwnedElsewhere) => Ok(StartOutcome::OwnedElsewhere),
            Ok(Prepared::Ready {
                context,
                after_crash,
                ..
            }) => self.ready(myself, *context, after_crash, reason).await,
            Err(error) => Err(error),
        };
        self.answer(myself, meeting, waiting, outcome);
    }

    /// An active call whose lease this instance holds: its actor starts
    /// (unless its end came first).
    async fn ready(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        context: CallContext,
        after_crash: bool,
        reason: Option<String>,
    ) -> Result<StartOutcome, StartError> {
        let meeting = context.meeting_id;
        if self.finalizing.contains(&meeting) {
            return Ok(StartOutcome::Ending);
        }
        if after_crash && self.registry.get(meeting).is_none() {
            // The call's last holder let it go without a shutdown (it died,
            // or its heartbeat lapsed and it was declared dead), and
            // its unwritten lines died with it: numbers past the stored
            // high-water mark were never reported, so say where the hole is.
            let after = context.next_sequence - 1;
            self.deps.log(
                meeting,
                CallEvent::PossibleGap(Hole {
                    after: Some(after),
                    reason: format!("the instance that ran this call stopped without a shutdown (it died, or was declared dead when its heartbeat lapsed): lines it read after number {after} and had not committed may be missing"),
                    ..Hole::default()
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

    /// Answers everyone who waited on a call's start, then routes an end
    /// that arrived meanwhile.
    fn answer(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        waiting: Waiting,
        outcome: Result<StartOutcome, StartError>,
    ) {
        let mut starts = waiting.starts.into_iter();
        let others = match &outcome {
            Ok(StartOutcome::Started) => Ok(StartOutcome::AlreadyRunning),
            Ok(other) => Ok(*other),
            Err(error) => Err(error.to_string()),
        };
        if let Some(first) = starts.next() {
            let _ = first.send(outcome);
        } else if let Err(error) = &outcome {
            tracing::warn!(%meeting, error = %error_chain(error), "call not started");
        }
        for reply in starts {
            let again = others
                .clone()
                .map_err(|error| StartError::Store(PortError::store(std::io::Error::other(error))));
            let _ = reply.send(again);
        }
        if let Some((ended_at, replies)) = waiting.end {
            self.end(myself, meeting, ended_at, replies);
        }
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
            // Lost and taken back meanwhile (this instance joined again):
            // it starts afresh, from what the store holds.
            if let Some(claim) = self.taken_back.remove(&meeting) {
                let reason = Some(format!(
                    "taken back by {} after its membership lapsed",
                    self.membership.get()
                ));
                self.start_claimed(myself, claim, reason);
            }
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
                self.finalize_without_actor(myself, meeting, chrono::Utc::now());
            }
            return;
        }
        tracing::warn!(%meeting, reason = %why, "meeting actor died; considering a restart");
        if let Err(spent) = entry.restarts.spend(&self.budget, "the call's actor", &why) {
            let error = spent.to_string();
            self.deps.log(
                meeting,
                CallEvent::RestartBudgetExhausted {
                    error: error.clone(),
                    kind: None,
                },
            );
            let (deps, call) = (self.deps.clone(), self.registry.remove(meeting));
            self.spawn_task(async move {
                end_call(&deps, meeting, call, Verdict::Fail { error }).await;
            });
            return;
        }
        // Only a definite answer stops the restart: with the database out
        // of reach the call is still live and its lines wait in memory.
        self.waiting.entry(meeting).or_default();
        let heir = Heir {
            context: entry.context,
            incarnation: entry.incarnation + 1,
            restarts: entry.restarts,
            reason: why.to_string(),
        };
        self.decide_restart(myself, meeting, heir);
    }

    /// Asks the store, in a task, whether a call whose actor died is still
    /// live and still this member's (taken again if its holder is gone:
    /// the heir then starts from what the store holds, under the lease
    /// epoch the taking returned).
    fn decide_restart(&mut self, myself: &ActorRef<SupervisorMsg>, meeting: MeetingId, heir: Heir) {
        let (store, leases, permits, me) = (
            self.deps.store.clone(),
            self.leases.clone(),
            self.store_work.clone(),
            myself.clone(),
        );
        let member = self.membership.get();
        self.spawn_task(async move {
            let _permit = permits.acquire_owned().await;
            let mut heir = heir;
            let read = AssertUnwindSafe(async {
                let claimed = leases.acquire_lease(meeting, &member).await?;
                let context = store.call_context(meeting).await?;
                Ok::<_, PortError>((claimed, context))
            })
            .catch_unwind();
            let over = match read.await {
                Ok(Ok((_, None))) => true,
                Ok(Ok((_, Some(CallContext { status, .. })))) if status != MeetingStatus::Active => {
                    true
                }
                Ok(Ok((None, Some(_)))) => {
                    tracing::warn!(%meeting, "the call is held by another instance now; not restarted here");
                    true
                }
                Ok(Ok((Some(claimed), Some(mut context)))) => {
                    if claimed.lease != heir.context.lease {
                        // Taken back under a new lease: what this process
                        // held belongs to the old one.
                        context.lease = claimed.lease;
                        heir.context = context;
                    }
                    false
                }
                Ok(Err(error)) => {
                    tracing::warn!(%meeting, error = %error_chain(&error), "call state unknown; restarting its actor anyway");
                    false
                }
                Err(_) => {
                    tracing::error!(%meeting, "the store task panicked; restarting the call's actor anyway");
                    false
                }
            };
            let _ = me.cast(SupervisorMsg::RestartDecided {
                meeting,
                heir: Box::new(heir),
                over,
                member,
            });
        });
    }

    /// The store said whether a call whose actor died is still live.
    pub async fn restart_decided(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        heir: Box<Heir>,
        over: bool,
        member: Member,
    ) {
        let heir = *heir;
        if member != self.membership.get() {
            // Decided for a life of this instance that is over: again.
            self.decide_restart(myself, meeting, heir);
            return;
        }
        let waiting = self.waiting.remove(&meeting).unwrap_or_default();
        if over || self.finalizing.contains(&meeting) {
            if !self.finalizing.contains(&meeting) {
                self.registry.remove(meeting);
            }
            // Whoever asked to start it meanwhile gets what the store says
            // now; an end that came meanwhile is routed.
            for reply in waiting.starts {
                self.start(myself, meeting, None, Some(reply));
            }
            if let Some((ended_at, replies)) = waiting.end {
                self.end(myself, meeting, ended_at, replies);
            }
            return;
        }
        crate::metrics::restarted("meeting");
        let outcome = match self
            .spawn(
                myself,
                heir.context,
                heir.incarnation,
                heir.restarts,
                Some(heir.reason),
            )
            .await
        {
            // Whoever asked meanwhile finds it running.
            Ok(()) => Ok(StartOutcome::AlreadyRunning),
            Err(error) => {
                tracing::error!(%meeting, error = %error_chain(&error), "meeting actor could not be restarted");
                Err(error)
            }
        };
        self.answer(myself, meeting, waiting, outcome);
    }
}
