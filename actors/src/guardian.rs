//! CallGuardian: the root of the actor tree. It runs the CallSupervisor and,
//! should the supervisor itself die (a bug, a panic in a handler, a chaos
//! kill), starts a new one at once that re-adopts every live call and
//! resumes every unfinished analysis. The supervisor's death takes its
//! children with it, but not what matters: the conversations live in the
//! [`CallRegistry`](crate::supervisor::CallRegistry) and the rest in the
//! store, so the new actors continue where the old ones stopped.

use std::sync::{OnceLock, PoisonError, RwLock};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::ids::MeetingId;
use crate::ports::CallStore;
use crate::supervisor::{CallSupervisor, Calls, SupervisorArgs, SupervisorMsg};

/// The live supervisor, as every handle and background task reaches it: it
/// changes when the guardian replaces a dead supervisor.
#[derive(Default)]
pub struct CurrentSupervisor {
    supervisor: RwLock<Option<ActorRef<SupervisorMsg>>>,
    guardian: OnceLock<ActorCell>,
}

impl CurrentSupervisor {
    pub fn get(&self) -> Option<ActorRef<SupervisorMsg>> {
        self.supervisor
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, supervisor: ActorRef<SupervisorMsg>) {
        *self
            .supervisor
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(supervisor);
    }

    /// Sends to the live supervisor; false when there is none.
    pub fn cast(&self, message: SupervisorMsg) -> bool {
        self.get().is_some_and(|s| s.cast(message).is_ok())
    }

    /// The guardian, the root of every actor of this process.
    pub fn guardian(&self) -> Option<&ActorCell> {
        self.guardian.get()
    }
}

pub struct CallGuardian;

pub struct GuardianState {
    args: SupervisorArgs,
    supervisor: ActorRef<SupervisorMsg>,
    replaced: u32,
}

/// What a recovery found to do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub adopted: usize,
    pub analyses: usize,
}

/// Starts an actor for every `active` call this process may run and every
/// analysis that has not finished (at startup, and after the supervisor was
/// replaced). Calls another instance holds are left to it.
pub async fn recover(calls: &Calls, store: &dyn CallStore, reason: &str) -> Recovered {
    let mut recovered = Recovered::default();
    match store.active_meetings().await {
        Ok(meetings) => {
            for meeting in meetings {
                match calls.adopt(meeting, reason).await {
                    Ok(outcome) => {
                        tracing::debug!(%meeting, ?outcome, "active call considered");
                        recovered.adopted += 1;
                    }
                    Err(error) => tracing::error!(%meeting, %error, "active meeting not adopted"),
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, "active meetings not listed; the lease tick takes them over")
        }
    }
    match store.unfinished_analyses().await {
        Ok(meetings) => {
            for meeting in meetings {
                resume(calls, meeting, &mut recovered).await;
            }
        }
        Err(error) => tracing::error!(%error, "unfinished analyses not listed"),
    }
    recovered
}

async fn resume(calls: &Calls, meeting: MeetingId, recovered: &mut Recovered) {
    match calls.analyze(meeting).await {
        Ok(_) => recovered.analyses += 1,
        Err(error) => tracing::error!(%meeting, %error, "unfinished analysis not resumed"),
    }
}

impl CallGuardian {
    async fn spawn_supervisor(
        myself: &ActorRef<()>,
        args: &SupervisorArgs,
    ) -> Result<ActorRef<SupervisorMsg>, ActorProcessingErr> {
        let (supervisor, _) =
            Actor::spawn_linked(None, CallSupervisor, args.clone(), myself.get_cell()).await?;
        args.current.set(supervisor.clone());
        Ok(supervisor)
    }
}

impl Actor for CallGuardian {
    type Msg = ();
    type State = GuardianState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: SupervisorArgs,
    ) -> Result<GuardianState, ActorProcessingErr> {
        let _ = args.current.guardian.set(myself.get_cell());
        let supervisor = Self::spawn_supervisor(&myself, &args).await?;
        Ok(GuardianState {
            args,
            supervisor,
            replaced: 0,
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut GuardianState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            SupervisionEvent::ActorFailed(cell, error) => (cell, format!("failed: {error}")),
            _ => return Ok(()),
        };
        if cell.get_id() != state.supervisor.get_id() {
            return Ok(());
        }
        state.replaced += 1;
        crate::metrics::restarted("supervisor");
        tracing::error!(reason = %why, replaced = state.replaced, "the call supervisor died; starting a new one");
        state.supervisor = Self::spawn_supervisor(&myself, &state.args).await?;
        let calls = Calls::new(state.args.current.clone());
        let store = state.args.deps.store.clone();
        let reason = format!("re-adopted: the call supervisor died ({why}) and was replaced");
        tokio::spawn(async move {
            let recovered = recover(&calls, store.as_ref(), &reason).await;
            tracing::info!(
                adopted = recovered.adopted,
                analyses = recovered.analyses,
                "calls recovered by the new supervisor"
            );
        });
        Ok(())
    }
}
