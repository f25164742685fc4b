//! Call ownership across instances. This process is one member of the
//! deployment (its instance name and the epoch it took when it joined);
//! the member renews its own heartbeat, one row whatever its calls, and a
//! call names the member that holds it. The supervisor keeps the
//! membership in a task of its own (a slow database never blocks its
//! handlers): it renews the heartbeat, looks each second for calls nobody
//! live holds and takes them, and tells the supervisor what it found.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;

use super::msg::SupervisorMsg;
use super::state::SupervisorState;
use crate::call_log::CallEvent;
use crate::ids::MeetingId;
use crate::ports::{Claimed, LeaseNews, LeaseStore, Member, error_chain};
use crate::writer::FencedCalls;

/// How this instance holds calls: its name, how long its heartbeat lasts
/// unrenewed, and how often it is renewed.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub owner: String,
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            ttl: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
        }
    }
}

/// How often calls nobody holds are looked for (at most; never less often
/// than the heartbeat): a dead instance's calls are taken over within its
/// lease plus this.
pub const ORPHAN_SCAN: Duration = Duration::from_secs(1);

/// Calls taken in one statement; a look takes batches until none is left.
pub const TAKE_AT_ONCE: usize = 500;

/// This process's membership, shared by the supervisor (which takes calls
/// for it), the membership task (which renews it, and joins again when the
/// member was declared dead) and the tree (which releases it at shutdown).
#[derive(Debug)]
pub struct Membership {
    current: Mutex<Member>,
    /// Set once recovery has taken what nobody held (and logged why): the
    /// membership task takes calls only from then on.
    takes_open: std::sync::atomic::AtomicBool,
}

impl Membership {
    pub fn new(member: Member) -> Self {
        Self {
            current: Mutex::new(member),
            takes_open: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Recovery has run: the membership task may take calls.
    pub fn open_takes(&self) {
        self.takes_open
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn takes_open(&self) -> bool {
        self.takes_open.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn get(&self) -> Member {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, member: Member) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = member;
    }
}

/// What the membership task needs.
pub struct Keeping {
    pub store: Arc<dyn LeaseStore>,
    pub config: LeaseConfig,
    pub membership: Arc<Membership>,
    pub supervisor: ActorRef<SupervisorMsg>,
    /// Asks for a heartbeat and a look at once.
    pub renew_now: Arc<Notify>,
    /// Calls whose writes the store refused (their lease passed on).
    pub fenced: Arc<FencedCalls>,
}

/// Renews the member's heartbeat every `renew_every`, from the first
/// moment, and looks for calls nobody live holds every [`ORPHAN_SCAN`]
/// once recovery has run (recovery takes them first, and logs why); one
/// query at a time; `renew_now` (or a fenced write) asks for both at
/// once. Reports to the supervisor. Ends when the supervisor does.
pub async fn keep_membership(k: Keeping) {
    let config = &k.config;
    let look = config.renew_every.min(ORPHAN_SCAN);
    let mut tick = tokio::time::interval(look);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Every so many looks is a heartbeat (counted in ticks: a beat a few
    // milliseconds late on its tick must not wait for the next one).
    let looks_per_beat = (config.renew_every.as_millis() / look.as_millis().max(1)).max(1);
    let mut looks = looks_per_beat;
    loop {
        let asked = tokio::select! {
            _ = tick.tick() => false,
            () = k.renew_now.notified() => true,
            () = k.fenced.notified() => true,
        };
        let fenced = k.fenced.take();
        if !fenced.is_empty() && k.supervisor.cast(SupervisorMsg::CallsLost(fenced)).is_err() {
            return;
        }
        looks += 1;
        if asked || looks >= looks_per_beat {
            let member = k.membership.get();
            match k.store.heartbeat(&member).await {
                Ok(beat) if beat.alive => {
                    looks = 0;
                    if !beat.end_requested.is_empty()
                        && k.supervisor
                            .cast(SupervisorMsg::EndedElsewhere(beat.end_requested))
                            .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {
                    tracing::error!(%member, "this instance was declared dead (its heartbeat lapsed): stopping its calls and joining again");
                    if k.supervisor
                        .cast(SupervisorMsg::MembershipLost(member.clone()))
                        .is_err()
                    {
                        return;
                    }
                    match k.store.join(&config.owner).await {
                        Ok(joined) => {
                            tracing::warn!(%joined, "joined again");
                            k.membership.set(joined);
                            looks = 0;
                        }
                        Err(error) => {
                            tracing::warn!(error = %error_chain(&error), "not joined again; trying at the next tick");
                            continue;
                        }
                    }
                }
                // The next tick tries again, well within the lease.
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "heartbeat not renewed");
                    continue;
                }
            }
        }
        if !k.membership.takes_open() {
            continue;
        }
        let member = k.membership.get();
        let mut gone = false;
        let took = take_all(k.store.as_ref(), &member, config.ttl, |claimed| {
            let taken = SupervisorMsg::Claimed {
                claimed,
                reason: None,
            };
            gone = k.supervisor.cast(taken).is_err();
            !gone
        })
        .await;
        if gone {
            return;
        }
        if let Err(error) = took {
            tracing::debug!(error = %error_chain(&error), "no look for calls nobody holds");
        }
    }
}

/// Takes for `member`, batch by batch, every call nobody live holds, and
/// hands each batch to `start` (which says whether to go on). Returns how
/// many were taken.
pub async fn take_all(
    store: &dyn LeaseStore,
    member: &Member,
    ttl: Duration,
    mut start: impl FnMut(Vec<Claimed>) -> bool,
) -> Result<usize, crate::ports::PortError> {
    let mut taken = 0;
    loop {
        let claimed = store.take_over(member, ttl, TAKE_AT_ONCE).await?;
        let (n, more) = (claimed.len(), claimed.len() >= TAKE_AT_ONCE);
        if n == 0 {
            return Ok(taken);
        }
        taken += n;
        metrics::counter!(crate::metrics::TAKEOVERS).increment(n as u64);
        if !start(claimed) || !more {
            return Ok(taken);
        }
    }
}

/// Passes what other instances tell this one to the supervisor, as it comes.
pub async fn forward_news(
    mut news: tokio::sync::mpsc::Receiver<LeaseNews>,
    supervisor: ActorRef<SupervisorMsg>,
) {
    while let Some(item) = news.recv().await {
        if supervisor.cast(SupervisorMsg::LeaseNews(item)).is_err() {
            return;
        }
    }
}

impl SupervisorState {
    /// Stops the actors of calls this instance no longer holds (another
    /// took them), without restarting them: every call of `meetings`, or
    /// only those whose actor runs under the lease epoch named.
    pub fn calls_lost(&mut self, meetings: Vec<(MeetingId, Option<i64>)>, reason: &str) {
        for (meeting, lease) in meetings {
            if let Some(entry) = self.running.get_mut(&meeting)
                && !entry.lease_lost
                // One finalizing its call ends it: the end is recorded,
                // and whoever holds the call next finds it processing.
                && !entry.ending
                // A refusal of writes made under an older lease is not this
                // actor's: it runs the call taken back since.
                && lease.is_none_or(|lease| lease == entry.context.lease)
            {
                tracing::warn!(%meeting, reason, "call held elsewhere now; stopping its actor here");
                metrics::counter!(crate::metrics::LEASES_LOST).increment(1);
                entry.lease_lost = true;
                entry.actor.kill();
                self.deps.log(
                    meeting,
                    CallEvent::LeaseLost {
                        owner: self.membership.get().instance,
                        reason: reason.into(),
                    },
                );
            }
        }
    }

    /// The meeting was deleted: its actor and its analysis stop here
    /// without a restart, a finalization or a log entry (the store keeps
    /// nothing of it, and refuses whatever they would write); a start on
    /// its way is dropped. True when something of it ran here.
    pub fn forget(&mut self, meeting: MeetingId) -> bool {
        let mut found = self.taken_back.remove(&meeting).is_some();
        if let Some(entry) = self.running.get_mut(&meeting) {
            tracing::info!(%meeting, "meeting deleted: its actor stops");
            entry.lease_lost = true;
            entry.actor.kill();
            found = true;
        }
        if let Some(analysis) = self.analyses.remove(&meeting) {
            tracing::info!(%meeting, "meeting deleted: its analysis stops");
            analysis.actor.kill();
            found = true;
        }
        found
    }

    /// The member was declared dead: every call it ran may be another's
    /// now. They stop here; the ones nobody took yet are taken again under
    /// the new membership, as any call nobody holds.
    pub fn membership_lost(&mut self, member: &Member) {
        let all = self.running.keys().map(|m| (*m, None)).collect();
        self.calls_lost(
            all,
            &format!("this instance ({member}) was declared dead: its heartbeat lapsed"),
        );
    }

    /// What another instance said, acted on at once.
    pub fn lease_news(&mut self, myself: &ActorRef<SupervisorMsg>, news: LeaseNews) {
        tracing::debug!(?news, "lease news");
        match news {
            LeaseNews::EndRequested { meeting, at } => self.ended_elsewhere(myself, meeting, at),
            LeaseNews::Deleted { meeting } => {
                self.forget(meeting);
            }
            LeaseNews::Released | LeaseNews::Missed => self.renew_now.notify_one(),
        }
    }

    /// Calls this instance took (nobody live held them): each starts here,
    /// its store work bounded with every other's. One whose old actor is
    /// still stopping (its lease was lost, and came back) starts once that
    /// actor is gone.
    pub fn take_over(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        claimed: Vec<Claimed>,
        reason: Option<String>,
    ) {
        for claim in claimed {
            let meeting = claim.meeting;
            let running = self
                .running
                .get(&meeting)
                .map(|e| (e.lease_lost, e.context.lease, e.ending));
            if let Some((lost, lease, ending)) = running {
                if lost {
                    self.taken_back.insert(meeting, claim);
                } else if lease != claim.lease && !ending {
                    // Running under a lease this member no longer has (it
                    // was started for a life that is over): replaced.
                    self.calls_lost(
                        vec![(meeting, Some(lease))],
                        "started under a lease this instance lost; taken again",
                    );
                    self.taken_back.insert(meeting, claim);
                }
                continue;
            }
            if self.finalizing.contains(&meeting) || self.waiting.contains_key(&meeting) {
                continue;
            }
            let reason = reason.clone().unwrap_or_else(|| {
                format!(
                    "taken over by {}: nobody live held the call",
                    self.membership.get()
                )
            });
            self.start_claimed(myself, claim, Some(reason));
        }
    }
}
