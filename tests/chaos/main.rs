//! The chaos suite: the promise that nothing is lost and nothing is stuck,
//! whatever dies. Each test names its promise and states it in its doc
//! comment; each runs on SQLite and, when `SCRIBE_TEST_POSTGRES_URL` is set,
//! on PostgreSQL, is bounded by deadlines, and waits on events or polled
//! predicates, never on the clock.
//!
//! - [`actors`]: killed and panicking MeetingActors, AnalysisActors and the
//!   CallSupervisor, one call at a time and 50 at once.
//! - [`process`]: SIGKILL and SIGTERM of the real `scribe serve`.
//! - [`instances`]: three instances of the binary on one PostgreSQL
//!   database, one SIGKILLed with 100 calls: the others take them over.
//! - [`paused`]: an instance SIGSTOPped past its lease and woken: the
//!   calls it lost are another's, and its writes for them are refused.
//! - [`attached`]: a call OpenAI carries (WebRTC), its sideband dropped,
//!   its actor killed, the process SIGKILLed: what the re-attach recovers
//!   and the holes it marks.
//! - [`database`]: the database link refused, stalled and reset through a
//!   fault-injecting proxy; SQLite locked by another writer.
//! - [`socket`]: the realtime socket closed, broken, silent, flooded.
//! - [`llm`]: the model failing, rate limiting, stalling and slow under a
//!   queue of analyses.

#[path = "../support/harness.rs"]
mod helpers;
#[path = "../support/running.rs"]
mod running;

mod actors;
mod attached;
mod database;
mod fleet;
mod instances;
mod llm;
mod paused;
mod process;
mod proxy;
mod socket;
mod stall;
