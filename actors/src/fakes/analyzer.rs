//! [`FakeAnalyzer`]: answers a summary, or holds every analysis until released.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tokio::sync::watch;

use super::DEADLINE;
use crate::ports::{AnalysisError, AnalysisInput, AnalysisResult, Analyzer, LogFn, NotesInput};

/// An analyzer that answers a summary at once, or (held) waits for
/// [`FakeAnalyzer::release`]. It counts calls and the most that ran at once.
pub struct FakeAnalyzer {
    calls: watch::Sender<usize>,
    open: watch::Sender<bool>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl FakeAnalyzer {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            calls: watch::channel(0).0,
            open: watch::channel(true).0,
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
        })
    }

    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    pub fn release(&self) {
        self.open.send_replace(true);
    }

    pub fn calls(&self) -> usize {
        *self.calls.borrow()
    }

    pub fn most_at_once(&self) -> usize {
        self.most_at_once.load(Ordering::SeqCst)
    }

    /// Waits until the analyzer was called `n` times.
    pub async fn wait_for_calls(&self, n: usize) {
        let mut calls = self.calls.subscribe();
        tokio::time::timeout(DEADLINE, calls.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {n} analyzer calls"))
            .map(|_| ())
            .unwrap_or_else(|_| panic!("analyzer gone"));
    }
}

/// Counts a running analysis for as long as it lives (also when aborted).
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Analyzer for FakeAnalyzer {
    async fn analyze(
        &self,
        _input: &AnalysisInput,
        _log: &LogFn<'_>,
    ) -> Result<AnalysisResult, AnalysisError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = Running(&self.running);
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.calls.send_modify(|c| *c += 1);
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        Ok(AnalysisResult::Summary {
            summary: "They met.".into(),
        })
    }

    /// Notes naming the lines they cover: "lines 1-N noted".
    async fn take_notes(
        &self,
        input: &NotesInput,
        _log: &LogFn<'_>,
    ) -> Result<String, AnalysisError> {
        let last = input
            .lines
            .last()
            .map(|(n, _, _)| *n)
            .or(input.notes.as_ref().map(|n| n.through_line))
            .unwrap_or(0);
        Ok(format!("lines 1-{last} noted"))
    }
}
