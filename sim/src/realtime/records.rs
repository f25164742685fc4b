//! What the simulated peer remembers: every connection's record, the marks
//! scripts reached, the gates opened, and a signal on every change.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use serde_json::Value;
use tokio::sync::Notify;

use super::config::ConnectionInfo;

/// What one connection saw and did.
#[derive(Debug, Clone, Default)]
pub struct ConnectionRecord {
    pub info: Option<ConnectionInfo>,
    pub authorization: Option<String>,
    pub beta_header: bool,
    /// Every client event, parsed, in arrival order.
    pub client_events: Vec<Value>,
    /// Pongs the client sent in answer to pings.
    pub pongs: usize,
    pub closed_by_peer: bool,
    /// The connection is over (closed by either side).
    pub ended: bool,
}

#[derive(Default)]
pub struct Shared {
    pub connections: Mutex<Vec<ConnectionRecord>>,
    pub per_meeting: Mutex<HashMap<String, usize>>,
    pub marks: Mutex<Vec<String>>,
    pub gates: Mutex<HashSet<String>>,
    pub changed: Notify,
    pub accepted: AtomicUsize,
    /// Upgrades answered with an HTTP error instead of 101.
    pub refused_upgrades: AtomicUsize,
    /// Item ids handed out by every session of this peer: ids are unique
    /// across sessions, as the service's are.
    pub item_ids: std::sync::Arc<AtomicUsize>,
}

impl Shared {
    /// A script reached `Mark(name)`.
    pub fn mark(&self, name: &str) {
        if let Ok(mut marks) = self.marks.lock() {
            marks.push(name.to_owned());
        }
        self.changed.notify_waiters();
    }

    /// Waits until the gate `name` is open.
    pub async fn pass_gate(&self, name: &str) {
        loop {
            let notified = self.changed.notified();
            if self.gates.lock().is_ok_and(|g| g.contains(name)) {
                return;
            }
            notified.await;
        }
    }
}

/// Changes one connection's record and wakes waiters.
pub fn update_record(shared: &Shared, index: usize, f: impl FnOnce(&mut ConnectionRecord)) {
    if let Ok(mut all) = shared.connections.lock()
        && let Some(record) = all.get_mut(index)
    {
        f(record);
    }
    shared.changed.notify_waiters();
}
