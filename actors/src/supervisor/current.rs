//! The live supervisor, as every handle reaches it: it changes when the
//! guardian replaces a dead supervisor. The guardian sets it; the `Calls`
//! handle reads it.

use std::sync::{OnceLock, PoisonError, RwLock};

use ractor::{ActorCell, ActorRef};

use super::msg::SupervisorMsg;

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

    /// The guardian names the supervisor it just started.
    pub fn set(&self, supervisor: ActorRef<SupervisorMsg>) {
        *self
            .supervisor
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(supervisor);
    }

    /// The guardian, the root of every actor of this process.
    pub fn guardian(&self) -> Option<&ActorCell> {
        self.guardian.get()
    }

    /// The guardian names itself, once.
    pub fn set_guardian(&self, guardian: ActorCell) {
        let _ = self.guardian.set(guardian);
    }
}
