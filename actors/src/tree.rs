//! The one builder of the actor tree: the writer, the registry, the
//! guardian (which starts the supervisor), and the order they stop in. The
//! service and the in-memory test tree both call [`ActorTree::start`];
//! neither wires the parts by hand.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef, SpawnErr};
use tokio::task::JoinHandle;

use crate::analysis::job::AnalysisDeps;
use crate::guardian::CallGuardian;
use crate::meeting::deps::{CallConfig, CallDeps};
use crate::notes::{NotesConfig, NotesDeps};
use crate::ports::{
    AnalysisStore, Analyzer, CallControl, CallStore, LeaseStore, NotesStore, RealtimeConnector,
    TranscriptSink, error_chain,
};
use crate::recovery::{Recovered, recover};
use crate::supervisor::actor::SupervisorArgs;
use crate::supervisor::budget::RestartBudget;
use crate::supervisor::current::CurrentSupervisor;
use crate::supervisor::handle::Calls;
use crate::supervisor::leases::{LeaseConfig, Membership};
use crate::supervisor::registry::CallRegistry;
use crate::writer::{ChunkWriter, WriterConfig};

/// What the tree uses from outside: the store's ports, the analyzer, the
/// realtime providers.
pub struct TreePorts {
    pub sink: Arc<dyn TranscriptSink>,
    pub calls: Arc<dyn CallStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub analyses: Arc<dyn AnalysisStore>,
    pub analyzer: Arc<dyn Analyzer>,
    /// Where running notes are kept (`None`: no notes, whatever the config).
    pub notes: Option<Arc<dyn NotesStore>>,
    pub connector: Arc<dyn RealtimeConnector>,
    /// Hangs up the calls scribe attaches to (`None`: no OpenAI key).
    pub control: Option<Arc<dyn CallControl>>,
}

/// How the tree runs.
#[derive(Debug, Clone)]
pub struct TreeConfig {
    pub call: CallConfig,
    pub writer: WriterConfig,
    pub budget: RestartBudget,
    pub lease: LeaseConfig,
    /// Analyses that run at once.
    pub analysis_permits: usize,
    pub notes: NotesConfig,
}

/// The running tree.
pub struct ActorTree {
    /// The handle every caller reaches the supervisor through.
    pub calls: Calls,
    pub writer: ChunkWriter,
    pub registry: Arc<CallRegistry>,
    writer_task: JoinHandle<()>,
    /// The NotesKeeper, when notes are on (it and the writer hold each
    /// other's channels, so it is stopped by hand: with the tree).
    notes_task: Option<AbortOnDrop>,
    guardian: ActorRef<()>,
    guardian_task: JoinHandle<()>,
    leases: Arc<dyn LeaseStore>,
    membership: Arc<Membership>,
    lease_ttl: Duration,
    backlog_retry: Duration,
    analyses_store: Arc<dyn AnalysisStore>,
}

/// A task stopped when this is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long shutdown waits for each step.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Calls that already ended, to be finalized.
    pub settle: Duration,
    /// Lines of live calls, to be handed to the writer.
    pub drain: Duration,
    /// The writer, to commit what it holds.
    pub flush: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(30),
            drain: Duration::from_secs(5),
            flush: Duration::from_secs(10),
        }
    }
}

/// Why the tree did not start.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("this instance could not join the deployment: {0}")]
    Join(#[source] crate::ports::PortError),
    #[error("an actor could not be started: {0}")]
    Spawn(#[from] SpawnErr),
}

impl ActorTree {
    /// Joins the deployment (a new life of this instance: calls held by
    /// its older lives are free for the taking), then starts the writer and
    /// the guardian (which starts the supervisor). Call [`Self::recover`]
    /// once after: until it has run, this instance takes no call that
    /// nobody holds (recovery takes them first, and logs why).
    pub async fn start(ports: TreePorts, config: TreeConfig) -> Result<Self, TreeError> {
        let member = ports
            .leases
            .join(&config.lease.owner)
            .await
            .map_err(TreeError::Join)?;
        tracing::info!(%member, "joined");
        let membership = Arc::new(Membership::new(member));
        let notes_store = ports.notes.filter(|_| config.notes.is_on());
        let (news_tx, news_rx) = match notes_store {
            Some(_) => {
                let (tx, rx) = tokio::sync::mpsc::channel(crate::notes::NEWS_CAPACITY);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let (writer, writer_task) = ChunkWriter::spawn_told(ports.sink, config.writer, news_tx);
        let notes_task = notes_store.zip(news_rx).map(|(store, news)| {
            let deps = NotesDeps {
                store,
                analyzer: ports.analyzer.clone(),
                writer: writer.clone(),
            };
            AbortOnDrop(crate::notes::spawn(deps, config.notes, news))
        });
        let deps = Arc::new(CallDeps {
            store: ports.calls.clone(),
            writer: writer.clone(),
            connector: ports.connector,
            control: ports.control,
            config: config.call.clone(),
        });
        let analysis = Arc::new(AnalysisDeps {
            store: ports.analyses.clone(),
            analyzer: ports.analyzer,
            writer: writer.clone(),
            permits: Arc::new(tokio::sync::Semaphore::new(config.analysis_permits)),
        });
        let registry = Arc::new(CallRegistry::default());
        let current = Arc::new(CurrentSupervisor::default());
        let (guardian, guardian_task) = Actor::spawn(
            None,
            CallGuardian,
            SupervisorArgs {
                deps,
                leases: ports.leases.clone(),
                analysis,
                registry: registry.clone(),
                budget: config.budget,
                lease: config.lease.clone(),
                membership: membership.clone(),
                current: current.clone(),
            },
        )
        .await?;
        Ok(Self {
            calls: Calls::new(current),
            writer,
            registry,
            writer_task,
            notes_task,
            guardian,
            guardian_task,
            leases: ports.leases,
            membership,
            lease_ttl: config.lease.ttl,
            backlog_retry: config.call.backlog_retry,
            analyses_store: ports.analyses,
        })
    }

    /// Adopts the calls this member holds with no actor, and resumes the
    /// analyses that had not finished, and takes the calls nobody live
    /// holds (an earlier life of this instance's, a dead instance's).
    pub async fn recover(&self, reason: &str) -> Recovered {
        recover(
            &self.calls,
            self.leases.as_ref(),
            &self.membership,
            self.lease_ttl,
            self.analyses_store.as_ref(),
            reason,
        )
        .await
    }

    /// This process's member: its instance name and epoch.
    pub fn member(&self) -> crate::ports::Member {
        self.membership.get()
    }

    /// The root actor.
    pub fn guardian(&self) -> &ActorRef<()> {
        &self.guardian
    }

    /// Stops the tree in its one order: calls that already ended are
    /// finalized; the tree stops (live calls stay `active` in the store for
    /// the next start to adopt, and nothing restarts); what live calls
    /// hold goes to the writer; the writer commits; the leases are
    /// released so that another instance may take the calls over at once.
    pub async fn shutdown(self, patience: Patience) {
        if let Err(error) = self.calls.settled(patience.settle).await {
            tracing::error!(%error, "shutting down with calls still being finalized");
        }
        self.calls.stop_all();
        drop(self.notes_task);
        let _ = self.guardian_task.await;
        let left = self
            .registry
            .end_all_sessions(&self.writer, self.backlog_retry, patience.drain)
            .await;
        if left > 0 {
            tracing::error!(
                left,
                "transcript lines not handed to the writer at shutdown"
            );
        }
        if tokio::time::timeout(patience.flush, self.writer.flush())
            .await
            .is_err()
        {
            tracing::error!(
                "transcript writer did not drain within {} s",
                patience.flush.as_secs()
            );
        }
        drop(self.writer);
        self.writer_task.abort();
        let member = self.membership.get();
        if let Err(error) = self.leases.release(&member).await {
            tracing::error!(%member, error = %error_chain(&error), "membership not released; other instances take its calls over once its heartbeat lapses");
        }
    }
}
