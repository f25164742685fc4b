//! The real actor tree (guardian, supervisor, meeting and analysis actors,
//! writer) on in-memory ports, for tests in paused time.

use std::sync::Arc;
use std::time::Duration;

use super::analyzer::FakeAnalyzer;
use super::connector::FakeConnector;
use super::control::FakeControl;
use super::store::MemoryStore;
use crate::ids::MeetingId;
use crate::meeting::deps::CallConfig;
use crate::snapshot::{ActorKind, ActorSnapshot};
use crate::supervisor::budget::RestartBudget;
use crate::supervisor::handle::Calls;
use crate::supervisor::leases::LeaseConfig;
use crate::tree::{ActorTree, TreeConfig, TreePorts};
use crate::writer::WriterConfig;

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
    tree: ActorTree,
}

impl TestTree {
    pub async fn start(budget: RestartBudget, permits: usize) -> Self {
        Self::start_noting(budget, permits, crate::notes::NotesConfig::OFF).await
    }

    /// A tree taking running notes as `notes` says.
    pub async fn start_noting(
        budget: RestartBudget,
        permits: usize,
        notes: crate::notes::NotesConfig,
    ) -> Self {
        let store = MemoryStore::new();
        let connector = FakeConnector::new();
        let control = FakeControl::new();
        let analyzer = FakeAnalyzer::new();
        let config = CallConfig {
            finalize_grace: Duration::from_millis(100),
            // In-memory sessions are quiet between frames: never "silent".
            silence_timeout: Duration::from_secs(24 * 3600),
            ..CallConfig::default()
        };
        let lease = LeaseConfig::new(OWNER);
        let tree = ActorTree::start(
            TreePorts {
                sink: store.clone(),
                calls: store.clone(),
                leases: store.clone(),
                analyses: store.clone(),
                analyzer: analyzer.clone(),
                notes: Some(store.clone()),
                connector: connector.clone(),
                control: Some(control.clone()),
            },
            TreeConfig {
                call: config,
                writer: WriterConfig::default(),
                budget,
                lease: lease.clone(),
                analysis_permits: permits,
                notes,
            },
        )
        .await
        .expect("the tree starts");
        // As the service does: recovery first (nothing to recover here),
        // then the membership task takes what nobody holds.
        tree.recover("adopted at the test tree's start").await;
        Self {
            store,
            connector,
            control,
            analyzer,
            calls: tree.calls.clone(),
            lease,
            tree,
        }
    }

    /// This tree's member as it stands (it changes when it joins again).
    pub fn tree_member(&self) -> crate::ports::Member {
        self.tree.member()
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
        self.tree.guardian().stop(None);
    }
}
