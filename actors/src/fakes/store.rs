//! [`MemoryStore`]: the store ports in memory, following the real state
//! machine.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::DEADLINE;
use crate::domain::{ChunkStatus, EventKind, MeetingStatus, Speaker, Transport, VoiceApi};
use crate::ids::MeetingId;
use crate::lifecycle::check;
use crate::path::{CallPath, Resume};
use crate::ports::{
    AnalysisInput, AnalysisResult, AnalysisStore, CallContext, CallStore, Finalized, Member,
    PortError, TranscriptSink, WriteBatch,
};
use crate::transcript::Line;

mod members;
mod notes;
pub use members::{FakeMember, MemberState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Clone)]
pub struct FakeJob {
    pub state: JobState,
    pub attempt: i32,
}

#[derive(Debug, Clone)]
pub struct FakeMeeting {
    pub status: MeetingStatus,
    pub error: Option<String>,
    pub lines: BTreeMap<i64, Line>,
    pub events: Vec<(EventKind, Value)>,
    pub high_water: i64,
    /// The member that holds the call.
    pub owner: Option<Member>,
    /// Bumped whenever the call changes hands: the writes' fencing token.
    pub lease_epoch: i64,
    pub end_requested_at: Option<DateTime<Utc>>,
    pub job: Option<FakeJob>,
    /// An attached call's transport and provider call id.
    pub attached: Option<(Transport, String)>,
    /// The voice API the meeting's call runs on.
    pub voice_api: Option<VoiceApi>,
    /// The call's running notes.
    pub notes: Option<crate::call_log::Notes>,
}

impl FakeMeeting {
    fn new(status: MeetingStatus) -> Self {
        Self {
            status,
            error: None,
            lines: BTreeMap::new(),
            events: Vec::new(),
            high_water: 0,
            notes: None,
            owner: None,
            lease_epoch: 0,
            end_requested_at: None,
            job: (status == MeetingStatus::Processing).then_some(FakeJob {
                state: JobState::Pending,
                attempt: 0,
            }),
            attached: None,
            voice_api: None,
        }
    }

    /// The highest number handed out that the store knows of: the stored
    /// mark or a stored line above it, as every reader of the real store
    /// takes it.
    pub fn top_number(&self) -> i64 {
        self.high_water
            .max(self.lines.keys().last().copied().unwrap_or(0))
    }

    /// The entries of one kind in the event log.
    pub fn logged(&self, kind: EventKind) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, d)| d)
            .collect()
    }

    /// Changes the status as the real store does: only when the state
    /// machine allows it, logging the change.
    fn change(&mut self, to: MeetingStatus) -> bool {
        if check(self.status, to).is_err() {
            return false;
        }
        let from = self.status;
        self.status = to;
        self.events.push((
            EventKind::StatusChanged,
            serde_json::json!({ "from": from, "to": to }),
        ));
        true
    }
}

/// What the store holds.
#[derive(Debug, Default)]
pub struct Memory {
    pub meetings: HashMap<MeetingId, FakeMeeting>,
    /// Every committed batch: its lines' count and when it was committed.
    pub commits: Vec<(usize, Instant)>,
    /// Write attempts, committed or not.
    pub write_attempts: usize,
    /// Heartbeats, by instance.
    pub heartbeats: HashMap<String, usize>,
    /// Every life of every instance that joined, and how it stands.
    pub members: HashMap<Member, FakeMember>,
}

impl Memory {
    pub fn meeting(&self, id: MeetingId) -> &FakeMeeting {
        &self.meetings[&id]
    }
}

pub struct MemoryStore {
    memory: Mutex<Memory>,
    changed: watch::Sender<u64>,
    /// While false, writes wait (a stalled database).
    writes_open: watch::Sender<bool>,
    /// The next writes that fail.
    failing_writes: AtomicUsize,
}

impl MemoryStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            memory: Mutex::new(Memory::default()),
            changed: watch::channel(0).0,
            writes_open: watch::channel(true).0,
            failing_writes: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the memory and wakes every waiter.
    pub fn update<T>(&self, change: impl FnOnce(&mut Memory) -> T) -> T {
        let out = change(&mut self.lock());
        self.changed.send_modify(|n| *n += 1);
        out
    }

    /// Reads the memory.
    pub fn read<T>(&self, read: impl FnOnce(&Memory) -> T) -> T {
        read(&self.lock())
    }

    /// A new meeting in `status`.
    pub fn add_meeting(&self, status: MeetingStatus) -> MeetingId {
        let id = MeetingId::new();
        self.update(|m| m.meetings.insert(id, FakeMeeting::new(status)));
        id
    }

    /// Waits (up to [`DEADLINE`] of virtual time) until `probe` finds what
    /// it looks for.
    pub async fn wait_for<T>(&self, what: &str, probe: impl Fn(&Memory) -> Option<T>) -> T {
        let mut changed = self.changed.subscribe();
        let found = tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(found) = self.read(&probe) {
                    return found;
                }
                if changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            let state = self.read(|m| format!("{:#?}", m.meetings));
            panic!("timed out waiting for {what}; the store holds {state}")
        })
    }

    /// A new `active` meeting whose call a browser carries: its session is
    /// a sideband attached to provider call `call_id`.
    pub fn add_attached_meeting(&self, call_id: &str) -> MeetingId {
        let id = MeetingId::new();
        let mut fake = FakeMeeting::new(MeetingStatus::Active);
        fake.attached = Some((Transport::WebRtc, call_id.to_owned()));
        self.update(|m| m.meetings.insert(id, fake));
        id
    }

    /// An active meeting on voice API `api` whose call `transport` carries:
    /// its session is a sideband attached to provider call `call_id`.
    pub fn add_attached_on(&self, api: VoiceApi, transport: Transport, call_id: &str) -> MeetingId {
        let id = MeetingId::new();
        let mut fake = FakeMeeting::new(MeetingStatus::Active);
        fake.attached = Some((transport, call_id.to_owned()));
        fake.voice_api = Some(api);
        self.update(|m| m.meetings.insert(id, fake));
        id
    }

    /// An active meeting whose call runs on GPT-Live: owned, or attached to
    /// `call_id`.
    pub fn add_live_meeting(&self, call_id: Option<&str>) -> MeetingId {
        let id = MeetingId::new();
        let mut fake = FakeMeeting::new(MeetingStatus::Active);
        fake.attached = call_id.map(|c| (Transport::WebRtc, c.to_owned()));
        fake.voice_api = Some(VoiceApi::Live);
        self.update(|m| m.meetings.insert(id, fake));
        id
    }

    /// Waits until `meeting` is in `status`.
    pub async fn wait_for_status(&self, meeting: MeetingId, status: MeetingStatus) {
        self.wait_for(&format!("the meeting to be {status}"), |m| {
            (m.meeting(meeting).status == status).then_some(())
        })
        .await;
    }

    /// Holds every write until [`Self::open_writes`].
    pub fn hold_writes(&self) {
        self.writes_open.send_replace(false);
    }

    pub fn open_writes(&self) {
        self.writes_open.send_replace(true);
    }

    /// Makes the next `n` writes fail.
    pub fn fail_writes(&self, n: usize) {
        self.failing_writes.store(n, Ordering::SeqCst);
    }

    fn refused(what: &str) -> PortError {
        PortError::store(std::io::Error::other(what.to_owned()))
    }
}

#[async_trait]
impl TranscriptSink for MemoryStore {
    async fn write(&self, batch: &WriteBatch) -> Result<Vec<MeetingId>, PortError> {
        let mut open = self.writes_open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        self.update(|m| m.write_attempts += 1);
        let failing = self.failing_writes.load(Ordering::SeqCst);
        if failing > 0 {
            self.failing_writes.store(failing - 1, Ordering::SeqCst);
            return Err(Self::refused("injected write failure"));
        }
        Ok(self.update(|m| {
            // Fenced as the real store fences: nothing but event-log
            // entries for a call whose lease epoch moved on.
            let refused: Vec<MeetingId> = batch
                .leases
                .iter()
                .filter(|(meeting, epoch)| {
                    m.meetings
                        .get(meeting)
                        .is_some_and(|fake| fake.lease_epoch != *epoch)
                })
                .map(|(meeting, _)| *meeting)
                .collect();
            let kept = |meeting: &MeetingId| !refused.contains(meeting);
            for (meeting, line) in batch.lines.iter().filter(|(m, _)| kept(m)) {
                if let Some(fake) = m.meetings.get_mut(meeting) {
                    fake.lines
                        .entry(line.sequence_number)
                        .or_insert_with(|| line.clone());
                }
            }
            for (meeting, high) in batch.high_water.iter().filter(|(m, _)| kept(m)) {
                if let Some(fake) = m.meetings.get_mut(meeting) {
                    fake.high_water = fake.high_water.max(*high);
                }
            }
            for event in &batch.events {
                if let Some(fake) = m.meetings.get_mut(&event.meeting) {
                    fake.events.push((event.kind, event.detail.clone()));
                }
            }
            for (meeting, error) in batch.errors.iter().filter(|(m, _)| kept(m)) {
                if let Some(fake) = m.meetings.get_mut(meeting)
                    && fake.status == MeetingStatus::Active
                {
                    fake.error.clone_from(error);
                }
            }
            m.commits.push((batch.lines.len(), Instant::now()));
            refused
        }))
    }
}

#[async_trait]
impl CallStore for MemoryStore {
    async fn call_context(&self, meeting: MeetingId) -> Result<Option<CallContext>, PortError> {
        Ok(self.read(|m| {
            m.meetings.get(&meeting).map(|fake| CallContext {
                meeting_id: meeting,
                status: fake.status,
                instructions: "Be brief.".into(),
                call_id: None,
                call_type: None,
                next_sequence: fake.top_number() + 1,
                end_requested_at: fake.end_requested_at,
                lease: fake.lease_epoch,
                path: CallPath::recorded(
                    fake.attached.as_ref().map(|(t, _)| *t),
                    fake.attached.as_ref().map(|(_, id)| id.clone()),
                    fake.voice_api,
                    Resume {
                        // As the store reads it: the last line that is not lost.
                        last_item_id: fake
                            .lines
                            .values()
                            .rev()
                            .find(|l| l.status != ChunkStatus::Lost)
                            .and_then(|l| l.item_id.clone()),
                        last_end_ms: fake.lines.values().last().and_then(|l| l.end_ms),
                    },
                ),
            })
        }))
    }

    async fn replay_lines(
        &self,
        meeting: MeetingId,
        before: i64,
    ) -> Result<Vec<(Speaker, String)>, PortError> {
        Ok(self.read(|m| {
            m.meeting(meeting)
                .lines
                .range(..before)
                // As the store replays: lines with words, never a lost one.
                .filter(|(_, l)| l.status != ChunkStatus::Lost && !l.text.is_empty())
                .map(|(_, l)| (l.speaker, l.text.clone()))
                .collect()
        }))
    }

    async fn finalize(
        &self,
        meeting: MeetingId,
        _ended_at: DateTime<Utc>,
        handed_out: Option<i64>,
    ) -> Result<Finalized, PortError> {
        self.update(|m| {
            let fake = m
                .meetings
                .get_mut(&meeting)
                .ok_or_else(|| Self::refused("no such meeting"))?;
            let mark = handed_out.map_or(fake.high_water, |h| h.min(fake.high_water));
            let top = mark.max(fake.lines.keys().last().copied().unwrap_or(0));
            let lost: Vec<i64> = (1..=top).filter(|n| !fake.lines.contains_key(n)).collect();
            let transitioned = fake.change(MeetingStatus::Processing);
            // As the store does: each hole is a `lost` line, without a speaker.
            for &n in &lost {
                let mut hole = crate::fakes::user_line(n, "");
                hole.status = ChunkStatus::Lost;
                hole.item_id = None;
                fake.lines.insert(n, hole);
            }
            if transitioned {
                fake.job = Some(FakeJob {
                    state: JobState::Pending,
                    attempt: 0,
                });
                fake.events.push((EventKind::CallEnded, Value::Null));
            }
            Ok(Finalized {
                lines: top,
                lost,
                transitioned,
            })
        })
    }

    async fn fail(&self, meeting: MeetingId, error: &str) -> Result<(), PortError> {
        self.update(|m| {
            if let Some(fake) = m.meetings.get_mut(&meeting)
                && fake.change(MeetingStatus::Failed)
            {
                fake.error = Some(error.to_owned());
            }
        });
        Ok(())
    }

    async fn request_end(
        &self,
        meeting: MeetingId,
        me: &Member,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        Ok(self.update(|m| {
            let held_by_other = m
                .meetings
                .get(&meeting)
                .and_then(|f| f.owner.clone())
                .is_some_and(|h| &h != me && m.is_live(&h));
            match m.meetings.get_mut(&meeting) {
                Some(fake) if fake.status == MeetingStatus::Active && held_by_other => {
                    fake.end_requested_at.get_or_insert(at);
                    true
                }
                _ => false,
            }
        }))
    }
}

#[async_trait]
impl AnalysisStore for MemoryStore {
    async fn begin_analysis(&self, meeting: MeetingId) -> Result<Option<AnalysisInput>, PortError> {
        Ok(self.update(|m| {
            let fake = m.meetings.get_mut(&meeting)?;
            let job = fake.job.as_mut()?;
            if fake.status != MeetingStatus::Processing
                || !matches!(job.state, JobState::Pending | JobState::Running)
            {
                return None;
            }
            job.state = JobState::Running;
            job.attempt += 1;
            Some(AnalysisInput {
                meeting_id: meeting,
                meeting_name: "Intro".into(),
                agent_name: "Coach".into(),
                blueprint: None,
                progress: None,
                notes: fake.notes.clone(),
                lines: fake
                    .lines
                    .values()
                    .filter(|l| {
                        fake.notes
                            .as_ref()
                            .is_none_or(|n| l.sequence_number > n.through_line)
                    })
                    .map(|l| {
                        (
                            (l.status != ChunkStatus::Lost).then_some(l.speaker),
                            l.text.clone(),
                        )
                    })
                    .collect(),
                run: job.attempt,
            })
        }))
    }

    async fn complete_analysis(
        &self,
        meeting: MeetingId,
        _result: &AnalysisResult,
    ) -> Result<Option<MeetingId>, PortError> {
        self.update(|m| {
            if let Some(fake) = m.meetings.get_mut(&meeting) {
                fake.change(MeetingStatus::Completed);
                if let Some(job) = fake.job.as_mut() {
                    job.state = JobState::Completed;
                }
            }
        });
        Ok(None)
    }

    async fn fail_analysis(
        &self,
        meeting: MeetingId,
        error: &str,
        _detail: Option<&str>,
    ) -> Result<(), PortError> {
        self.update(|m| {
            if let Some(fake) = m.meetings.get_mut(&meeting) {
                if fake.change(MeetingStatus::Failed) {
                    fake.error = Some(error.to_owned());
                }
                if let Some(job) = fake.job.as_mut() {
                    job.state = JobState::Failed;
                }
            }
        });
        Ok(())
    }

    async fn analysis_pending(&self, meeting: MeetingId) -> Result<bool, PortError> {
        Ok(self.read(|m| {
            let fake = m.meeting(meeting);
            fake.status == MeetingStatus::Processing
                && fake
                    .job
                    .as_ref()
                    .is_some_and(|j| j.state == JobState::Pending)
        }))
    }

    async fn unfinished_analyses(&self) -> Result<Vec<MeetingId>, PortError> {
        Ok(self.read(|m| {
            m.meetings
                .iter()
                .filter(|(_, f)| {
                    f.status == MeetingStatus::Processing
                        && f.job.as_ref().is_some_and(|j| {
                            matches!(j.state, JobState::Pending | JobState::Running)
                        })
                })
                .map(|(id, _)| *id)
                .collect()
        }))
    }
}
