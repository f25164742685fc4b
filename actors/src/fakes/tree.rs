//! The real actor tree (guardian, supervisor, meeting and analysis actors,
//! writer) on in-memory ports, for tests in paused time.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};

use super::analyzer::FakeAnalyzer;
use super::connector::FakeConnector;
use super::control::FakeControl;
use super::store::MemoryStore;
use crate::analysis::job::AnalysisDeps;
use crate::guardian::CallGuardian;
use crate::ids::MeetingId;
use crate::meeting::deps::{CallConfig, CallDeps};
use crate::snapshot::{ActorKind, ActorSnapshot};
use crate::supervisor::actor::SupervisorArgs;
use crate::supervisor::budget::RestartBudget;
use crate::supervisor::handle::Calls;
use crate::supervisor::current::CurrentSupervisor;
use crate::supervisor::leases::LeaseConfig;
use crate::supervisor::registry::CallRegistry;
use crate::writer::{ChunkWriter, WriterConfig};

/// This instance's name in the leases.
pub const OWNER: &str = "instance-a";

/// A budget of `max_restarts` restarts a minute.
pub fn budget(max_restarts: usize) -> RestartBudget {
    RestartBudget {
        max_restarts,
        window: Duration::from_secs(60),
    }
}

pub struct TestTree {
    pub store: Arc<MemoryStore>,
    pub connector: Arc<FakeConnector>,
    pub control: Arc<FakeControl>,
    pub analyzer: Arc<FakeAnalyzer>,
    pub calls: Calls,
    pub lease: LeaseConfig,
    guardian: ActorRef<()>,
}

impl TestTree {
    pub async fn start(budget: RestartBudget, permits: usize) -> Self {
        let store = MemoryStore::new();
        let connector = FakeConnector::new();
        let control = FakeControl::new();
        let analyzer = FakeAnalyzer::new();
        let (writer, _) = ChunkWriter::spawn(store.clone(), WriterConfig::default());
        let config = CallConfig {
            finalize_grace: Duration::from_millis(100),
            // In-memory sessions are quiet between frames: never "silent".
            silence_timeout: Duration::from_secs(24 * 3600),
            ..CallConfig::default()
        };
        let deps = Arc::new(CallDeps {
            store: store.clone(),
            writer: writer.clone(),
            connector: connector.clone(),
            control: Some(control.clone()),
            config,
        });
        let analysis = Arc::new(AnalysisDeps {
            store: store.clone(),
            analyzer: analyzer.clone(),
            writer,
            permits: Arc::new(tokio::sync::Semaphore::new(permits)),
        });
        let current = Arc::new(CurrentSupervisor::default());
        let lease = LeaseConfig::new(OWNER);
        let args = SupervisorArgs {
            deps,
            leases: store.clone(),
            analysis,
            registry: Arc::new(CallRegistry::default()),
            budget,
            lease: lease.clone(),
            current: current.clone(),
        };
        let (guardian, _) = Actor::spawn(None, CallGuardian, args)
            .await
            .expect("the tree starts");
        Self {
            store,
            connector,
            control,
            analyzer,
            calls: Calls::new(current),
            lease,
            guardian,
        }
    }

    /// The live actor of `kind` for `meeting`, as `/admin/actors` shows it.
    pub async fn actor(&self, meeting: MeetingId, kind: ActorKind) -> Option<ActorSnapshot> {
        self.calls
            .snapshots()
            .await
            .expect("the supervisor answers")
            .into_iter()
            .find(|s| s.meeting_id == meeting && s.kind == kind)
    }

    pub fn stop(&self) {
        self.guardian.stop(None);
    }
}
