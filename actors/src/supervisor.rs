//! CallSupervisor: starts one MeetingActor per live meeting and one
//! AnalysisActor per ended one, restarts one that dies (after the old
//! instance's termination event, within a restart budget), and routes the
//! end of a call to its actor, or finalizes from stored state when no actor
//! is live. The rooms:
//!
//! - [`actor`]: the actor itself: its message loop and supervision events.
//! - [`state`]: what it holds; the background tasks it owns stop with it.
//! - [`meetings`]: meeting actors: start, end, restart, give up.
//! - [`analyses`]: analysis actors: start, restart, give up.
//! - [`budget`]: the restart budget, on a clock tests can pause.
//! - [`leases`]: call ownership across instances: renewal and its report.
//! - [`registry`]: each call's `SharedCall`, which outlives every actor.
//! - [`msg`]: what the supervisor is told.
//! - [`calls`]: `Calls`, the handle everyone else uses; [`outcome`]: what it answers.
//! - [`current`]: where the handle finds the live supervisor.

pub mod actor;
pub mod analyses;
pub mod budget;
pub mod current;
pub mod ends;
pub mod handle;
pub mod leases;
pub mod meetings;
pub mod msg;
pub mod outcome;
pub mod registry;
pub mod state;

#[cfg(test)]
mod tests;
