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
use crate::ports::{
    AnalysisStore, Analyzer, CallControl, CallStore, LeaseStore, RealtimeConnector, TranscriptSink,
    error_chain,
};
use crate::recovery::{Recovered, recover};
use crate::supervisor::actor::SupervisorArgs;
use crate::supervisor::budget::RestartBudget;
use crate::supervisor::current::CurrentSupervisor;
use crate::supervisor::handle::Calls;
use crate::supervisor::leases::LeaseConfig;
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
}

/// The running tree.
pub struct ActorTree {
    /// The handle every caller reaches the supervisor through.
    pub calls: Calls,
    pub writer: ChunkWriter,
    pub registry: Arc<CallRegistry>,
    writer_task: JoinHandle<()>,
    guardian: ActorRef<()>,
    guardian_task: JoinHandle<()>,
    leases: Arc<dyn LeaseStore>,
    lease_owner: String,
    backlog_retry: Duration,
    calls_store: Arc<dyn CallStore>,
    analyses_store: Arc<dyn AnalysisStore>,
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

impl ActorTree {
    /// Starts the writer and the guardian (which starts the supervisor).
    pub async fn start(ports: TreePorts, config: TreeConfig) -> Result<Self, SpawnErr> {
        let (writer, writer_task) = ChunkWriter::spawn(ports.sink, config.writer);
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
                current: current.clone(),
            },
        )
        .await?;
        Ok(Self {
            calls: Calls::new(current),
            writer,
            registry,
            writer_task,
            guardian,
            guardian_task,
            leases: ports.leases,
            lease_owner: config.lease.owner,
            backlog_retry: config.call.backlog_retry,
            calls_store: ports.calls,
            analyses_store: ports.analyses,
        })
    }

    /// Adopts the calls that were live when the last process stopped, and
    /// resumes the analyses that had not finished.
    pub async fn recover(&self, reason: &str) -> Recovered {
        recover(
            &self.calls,
            self.calls_store.as_ref(),
            self.analyses_store.as_ref(),
            reason,
        )
        .await
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
        if let Err(error) = self.leases.release_leases(&self.lease_owner).await {
            tracing::error!(error = %error_chain(&error), "leases not released; other instances wait for them to expire");
        }
    }
}
