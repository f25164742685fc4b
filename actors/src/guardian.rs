//! CallGuardian: the root of the actor tree. It runs the CallSupervisor and,
//! should the supervisor itself die (a bug, a panic in a handler, a chaos
//! kill), starts a new one at once that re-adopts every live call and
//! resumes every unfinished analysis. The supervisor's death takes its
//! children with it, but not what matters: the conversations live in the
//! [`CallRegistry`](crate::supervisor::registry::CallRegistry) and the rest
//! in the store, so the new actors continue where the old ones stopped.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::task::JoinSet;

use crate::exit::ExitReason;
use crate::recovery::recover;
use crate::supervisor::actor::{CallSupervisor, SupervisorArgs};
use crate::supervisor::handle::Calls;
use crate::supervisor::msg::SupervisorMsg;

pub struct CallGuardian;

pub struct GuardianState {
    args: SupervisorArgs,
    supervisor: ActorRef<SupervisorMsg>,
    replaced: u32,
    /// Recoveries under way; aborted if the guardian itself ends.
    recoveries: JoinSet<()>,
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
        args.current.set_guardian(myself.get_cell());
        let supervisor = Self::spawn_supervisor(&myself, &args).await?;
        Ok(GuardianState {
            args,
            supervisor,
            replaced: 0,
            recoveries: JoinSet::new(),
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut GuardianState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((id, why)) = ExitReason::of(&event) else {
            return Ok(());
        };
        if id != state.supervisor.get_id() {
            return Ok(());
        }
        state.replaced += 1;
        crate::metrics::restarted("supervisor");
        tracing::error!(reason = %why, replaced = state.replaced, "the call supervisor died; starting a new one");
        state.supervisor = Self::spawn_supervisor(&myself, &state.args).await?;
        let calls = Calls::new(state.args.current.clone());
        let leases = state.args.leases.clone();
        let (membership, ttl) = (state.args.membership.clone(), state.args.lease.ttl);
        let analyses = state.args.analysis.store.clone();
        let reason = format!("re-adopted: the call supervisor died ({why}) and was replaced");
        while state.recoveries.try_join_next().is_some() {}
        state.recoveries.spawn(async move {
            let recovered = recover(
                &calls,
                leases.as_ref(),
                &membership,
                ttl,
                analyses.as_ref(),
                &reason,
            )
            .await;
            tracing::info!(
                adopted = recovered.adopted,
                analyses = recovered.analyses,
                "calls recovered by the new supervisor"
            );
        });
        Ok(())
    }
}
