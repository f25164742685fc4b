//! The contract every store behind the actors' ports keeps: SQLite and
//! PostgreSQL (the `scribe` crate's store suite runs it on both) and the
//! in-memory store the actor tests use (run here), so that what the actor
//! tests prove holds of the stores the service runs on.
//!
//! A store takes part through a [`Fixture`]: the store as the ports see it,
//! and the few things a test must set up or read back outside them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::domain::{ChunkStatus, Line, MeetingStatus, Speaker, Transport, VoiceApi};
use crate::ids::MeetingId;
use crate::path::{CallPath, Carrier};
use crate::ports::{
    AnalysisResult, AnalysisStore, CallStore, Finalized, LeaseStore, TranscriptSink, WriteBatch,
};

/// Every port a store implements.
pub trait Ports: CallStore + LeaseStore + AnalysisStore + TranscriptSink {}

impl<T: CallStore + LeaseStore + AnalysisStore + TranscriptSink> Ports for T {}

/// A store under the contract.
#[async_trait]
pub trait Fixture: Send + Sync {
    fn ports(&self) -> Arc<dyn Ports>;
    /// A new `active` meeting on `api`, attached to `call` (its carrier and
    /// the provider's call id) or owned.
    async fn active_meeting(&self, api: VoiceApi, call: Option<(Transport, &str)>) -> MeetingId;
    /// The meeting's stored lines: number, status, text, in order.
    async fn lines(&self, meeting: MeetingId) -> Vec<(i64, ChunkStatus, String)>;
    async fn status(&self, meeting: MeetingId) -> MeetingStatus;
}

fn line(n: i64, speaker: Speaker, text: &str, item: &str) -> Line {
    Line {
        sequence_number: n,
        speaker,
        text: text.to_owned(),
        status: ChunkStatus::Completed,
        item_id: Some(item.to_owned()),
        timestamp: Utc::now(),
        start_ms: None,
        end_ms: None,
        ready_at: std::time::Instant::now(),
    }
}

fn batch(meeting: MeetingId, lines: Vec<Line>, high_water: Option<i64>) -> WriteBatch {
    WriteBatch {
        lines: lines.into_iter().map(|l| (meeting, l)).collect(),
        high_water: high_water.map(|h| (meeting, h)).into_iter().collect(),
        ..WriteBatch::default()
    }
}

const TTL: Duration = Duration::from_secs(30);

/// Runs every clause of the contract on `fixture`'s store.
pub async fn run_all(fixture: &dyn Fixture) {
    lines_are_stored_once_per_number_and_replayed_in_order(fixture).await;
    the_next_number_follows_the_highest_line_and_the_high_water(fixture).await;
    an_attached_call_reads_back_its_path_and_where_it_resumes(fixture).await;
    finalize_fills_gaps_as_lost_lines_and_moves_to_processing_once(fixture).await;
    fail_ends_a_call_that_is_not_over(fixture).await;
    a_call_has_one_holder_and_an_end_reaches_it(fixture).await;
    a_dead_members_calls_are_taken_and_its_writes_refused(fixture).await;
    a_new_life_of_an_instance_frees_its_old_lifes_calls_in_batches(fixture).await;
    an_ended_call_is_analyzed_once(fixture).await;
}

async fn lines_are_stored_once_per_number_and_replayed_in_order(f: &dyn Fixture) {
    let store = f.ports();
    let m = f.active_meeting(VoiceApi::Realtime, None).await;
    let first = vec![
        line(1, Speaker::User, "one", "i1"),
        line(2, Speaker::Agent, "two", "i2"),
    ];
    store.write(&batch(m, first, Some(2))).await.expect("write");
    // A retried batch repeats a number: the first line stays.
    let mut silent = line(4, Speaker::User, "", "i4");
    silent.status = ChunkStatus::TranscriptionFailed;
    let again = vec![
        line(2, Speaker::Agent, "two, again", "i2"),
        line(3, Speaker::User, "three", "i3"),
        silent,
    ];
    store.write(&batch(m, again, Some(4))).await.expect("write");
    let texts: Vec<String> = f.lines(m).await.into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(texts, ["one", "two", "three", ""], "stored once per number");
    // A line without words is kept, never replayed.
    let replay = store.replay_lines(m, 5).await.expect("replay");
    assert_eq!(
        replay,
        [
            (Speaker::User, "one".to_owned()),
            (Speaker::Agent, "two".to_owned()),
            (Speaker::User, "three".to_owned())
        ],
        "replayed in order"
    );
    assert_eq!(store.replay_lines(m, 3).await.expect("replay").len(), 2);
}

async fn the_next_number_follows_the_highest_line_and_the_high_water(f: &dyn Fixture) {
    let store = f.ports();
    let m = f.active_meeting(VoiceApi::Realtime, None).await;
    let next = |store: Arc<dyn Ports>| async move {
        let context = store.call_context(m).await.expect("read").expect("found");
        context.next_sequence
    };
    assert_eq!(next(store.clone()).await, 1, "a new call starts at 1");
    store
        .write(&batch(m, vec![line(1, Speaker::User, "a", "i1")], Some(7)))
        .await
        .expect("write");
    assert_eq!(next(store.clone()).await, 8, "past the numbers handed out");
    // The mark only grows.
    store
        .write(&batch(m, Vec::new(), Some(5)))
        .await
        .expect("write");
    assert_eq!(
        next(store.clone()).await,
        8,
        "the high water never goes back"
    );
    assert!(
        store
            .call_context(MeetingId::new())
            .await
            .expect("read")
            .is_none(),
        "an unknown meeting has no context"
    );
}

async fn an_attached_call_reads_back_its_path_and_where_it_resumes(f: &dyn Fixture) {
    let store = f.ports();
    let call = format!("rtc_{}", MeetingId::new());
    let m = f
        .active_meeting(VoiceApi::Live, Some((Transport::Sip, &call)))
        .await;
    let lines = vec![
        line(1, Speaker::User, "hello", "item_a"),
        line(2, Speaker::Agent, "hi", "item_b"),
    ];
    store.write(&batch(m, lines, Some(2))).await.expect("write");
    let context = store.call_context(m).await.expect("read").expect("found");
    let CallPath::Attached {
        api,
        carrier,
        provider_call_id,
        resume,
    } = context.path
    else {
        panic!("an attached call reads back attached: {:?}", context.path);
    };
    assert_eq!(
        (api, carrier, provider_call_id.as_str()),
        (VoiceApi::Live, Carrier::Sip, call.as_str())
    );
    assert_eq!(resume.last_item_id.as_deref(), Some("item_b"));
    let owned = f.active_meeting(VoiceApi::Realtime, None).await;
    let context = store
        .call_context(owned)
        .await
        .expect("read")
        .expect("found");
    assert!(
        matches!(
            context.path,
            CallPath::Owned {
                api: VoiceApi::Realtime
            }
        ),
        "{:?}",
        context.path
    );
}

async fn finalize_fills_gaps_as_lost_lines_and_moves_to_processing_once(f: &dyn Fixture) {
    let store = f.ports();
    let m = f.active_meeting(VoiceApi::Realtime, None).await;
    let lines = vec![
        line(1, Speaker::User, "one", "i1"),
        line(3, Speaker::User, "three", "i3"),
    ];
    store.write(&batch(m, lines, Some(4))).await.expect("write");
    let done = store
        .finalize(m, Utc::now(), Some(4))
        .await
        .expect("finalize");
    assert_eq!(
        done,
        Finalized {
            lines: 4,
            lost: vec![2, 4],
            transitioned: true
        }
    );
    assert_eq!(f.status(m).await, MeetingStatus::Processing);
    let statuses: Vec<(i64, ChunkStatus)> = f
        .lines(m)
        .await
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect();
    assert_eq!(
        statuses,
        [
            (1, ChunkStatus::Completed),
            (2, ChunkStatus::Lost),
            (3, ChunkStatus::Completed),
            (4, ChunkStatus::Lost)
        ],
        "gapless, the holes recorded as lost"
    );
    let again = store
        .finalize(m, Utc::now(), Some(4))
        .await
        .expect("finalize");
    assert!(!again.transitioned, "finalized once");
    assert_eq!(f.lines(m).await.len(), 4, "nothing added the second time");
}

async fn fail_ends_a_call_that_is_not_over(f: &dyn Fixture) {
    let store = f.ports();
    let m = f.active_meeting(VoiceApi::Realtime, None).await;
    store.fail(m, "the actor kept dying").await.expect("fail");
    assert_eq!(f.status(m).await, MeetingStatus::Failed);
    // A failed call stays failed; an ended one is not failed by a late verdict.
    store.fail(m, "again").await.expect("fail");
    assert_eq!(f.status(m).await, MeetingStatus::Failed);
    let ended = f.active_meeting(VoiceApi::Realtime, None).await;
    store
        .finalize(ended, Utc::now(), None)
        .await
        .expect("finalize");
    let analysis = store.begin_analysis(ended).await.expect("begin");
    assert!(analysis.is_some(), "an ended call's analysis begins");
    let result = AnalysisResult::Summary {
        summary: "Short.".into(),
    };
    store
        .complete_analysis(ended, &result)
        .await
        .expect("complete");
    store.fail(ended, "late").await.expect("fail");
    assert_eq!(f.status(ended).await, MeetingStatus::Completed);
}

async fn a_call_has_one_holder_and_an_end_reaches_it(f: &dyn Fixture) {
    let store = f.ports();
    let m = f.active_meeting(VoiceApi::Realtime, None).await;
    let a = store.join(&format!("a-{m}")).await.expect("join");
    let b = store.join(&format!("b-{m}")).await.expect("join");
    let taken = store.acquire_lease(m, &a).await.expect("take");
    assert_eq!(
        taken.map(|c| c.after_crash),
        Some(false),
        "a call nobody held is taken, and no crash left a hole in it"
    );
    let lease = context(&*store, m).await.lease;
    assert!(
        store.acquire_lease(m, &b).await.expect("take").is_none(),
        "a call a live member holds is not taken"
    );
    assert!(
        store.acquire_lease(m, &a).await.expect("take").is_some(),
        "its holder keeps it"
    );
    assert_eq!(
        context(&*store, m).await.lease,
        lease,
        "the lease epoch moves only when the call changes hands"
    );
    assert!(store.owned_calls(&a).await.expect("owned").contains(&m));
    assert!(store.heartbeat(&a).await.expect("beat").alive);
    // An end recorded by another instance reaches the holder; its own does not go round.
    assert!(!store.request_end(m, &a, Utc::now()).await.expect("end"));
    assert!(store.request_end(m, &b, Utc::now()).await.expect("end"));
    let beat = store.heartbeat(&a).await.expect("beat");
    assert!(
        beat.end_requested.iter().any(|(ended, _)| *ended == m),
        "the holder learns of the end"
    );
    assert!(context(&*store, m).await.end_requested_at.is_some());
    store.release(&a).await.expect("release");
    assert!(
        !store.heartbeat(&a).await.expect("beat").alive,
        "a released member is no longer live"
    );
    let taken = store.acquire_lease(m, &b).await.expect("take");
    assert_eq!(
        taken.map(|c| c.after_crash),
        Some(false),
        "a released member's call is free at once, and no crash cut it"
    );
    assert!(context(&*store, m).await.lease > lease, "it changed hands");
}

async fn context(store: &dyn Ports, m: MeetingId) -> crate::ports::CallContext {
    store.call_context(m).await.expect("read").expect("found")
}

fn fenced(meeting: MeetingId, lease: i64, lines: Vec<Line>) -> WriteBatch {
    WriteBatch {
        leases: vec![(meeting, lease)],
        ..batch(meeting, lines, None)
    }
}

async fn a_dead_members_calls_are_taken_and_its_writes_refused(f: &dyn Fixture) {
    let store = f.ports();
    let m = f.active_meeting(VoiceApi::Realtime, None).await;
    let a = store.join(&format!("a-{m}")).await.expect("join");
    store
        .acquire_lease(m, &a)
        .await
        .expect("take")
        .expect("free");
    let old = context(&*store, m).await.lease;
    let refused = store
        .write(&fenced(m, old, vec![line(1, Speaker::User, "one", "i1")]))
        .await
        .expect("write");
    assert!(refused.is_empty(), "the holder writes");
    let b = store.join(&format!("b-{m}")).await.expect("join");
    // `a` stops renewing; `b` renews and looks until `a`'s heartbeat is
    // older than the lease.
    let ttl = Duration::from_millis(300);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let claim = loop {
        assert!(store.heartbeat(&b).await.expect("beat").alive);
        let claimed = store.take_over(&b, ttl, 100).await.expect("take over");
        if let Some(claim) = claimed.into_iter().find(|c| c.meeting == m) {
            break claim;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead member's call was never taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(claim.after_crash, "its holder died without releasing it");
    assert!(
        !store.heartbeat(&a).await.expect("beat").alive,
        "a member declared dead learns it at its next heartbeat"
    );
    assert!(store.acquire_lease(m, &a).await.expect("take").is_none());
    // `a` wakes up and writes: refused, nothing of it stored.
    let refused = store
        .write(&fenced(
            m,
            old,
            vec![line(2, Speaker::Agent, "stale", "i2")],
        ))
        .await
        .expect("write");
    assert_eq!(refused, [m], "a call's old holder cannot write for it");
    let new = context(&*store, m).await.lease;
    assert!(new > old);
    let refused = store
        .write(&fenced(m, new, vec![line(2, Speaker::Agent, "two", "i2")]))
        .await
        .expect("write");
    assert!(refused.is_empty(), "the new holder writes");
    let stored: Vec<String> = f.lines(m).await.into_iter().map(|l| l.2).collect();
    assert_eq!(stored, ["one", "two"]);
}

async fn a_new_life_of_an_instance_frees_its_old_lifes_calls_in_batches(f: &dyn Fixture) {
    let store = f.ports();
    let mut calls = Vec::new();
    for _ in 0..3 {
        calls.push(f.active_meeting(VoiceApi::Realtime, None).await);
    }
    let name = format!("x-{}", calls[0]);
    let first = store.join(&name).await.expect("join");
    for m in &calls {
        store
            .acquire_lease(*m, &first)
            .await
            .expect("take")
            .expect("free");
    }
    let second = store.join(&name).await.expect("join");
    assert!(second.epoch > first.epoch, "a new life, a new epoch");
    assert!(!store.heartbeat(&first).await.expect("beat").alive);
    // Other tests' dead members may hold calls in the same database: take
    // until none is left, two at most at a time, and find ours among them.
    let mut taken = Vec::new();
    loop {
        let claimed = store.take_over(&second, TTL, 2).await.expect("take over");
        assert!(
            claimed.len() <= 2,
            "a batch holds at most its limit: {claimed:?}"
        );
        if claimed.is_empty() {
            break;
        }
        taken.extend(claimed);
    }
    for m in &calls {
        let claim = taken.iter().find(|c| c.meeting == *m).expect("taken");
        assert!(claim.after_crash, "the old life stopped without a release");
    }
    let mut owned = store.owned_calls(&second).await.expect("owned");
    owned.sort();
    let mut expected = calls.clone();
    expected.sort();
    assert!(expected.iter().all(|m| owned.contains(m)));
    assert!(
        store.owned_calls(&first).await.expect("owned").is_empty(),
        "the old life holds nothing"
    );
}

async fn an_ended_call_is_analyzed_once(f: &dyn Fixture) {
    let store = f.ports();
    let m = f.active_meeting(VoiceApi::Realtime, None).await;
    let lines = vec![line(1, Speaker::User, "hello", "i1")];
    store.write(&batch(m, lines, Some(1))).await.expect("write");
    store
        .finalize(m, Utc::now(), Some(1))
        .await
        .expect("finalize");
    assert!(store.analysis_pending(m).await.expect("pending"));
    assert!(
        store
            .unfinished_analyses()
            .await
            .expect("list")
            .contains(&m)
    );
    let input = store
        .begin_analysis(m)
        .await
        .expect("begin")
        .expect("an input");
    assert_eq!(input.lines, [(Some(Speaker::User), "hello".to_owned())]);
    assert_eq!(input.run, 1);
    let result = AnalysisResult::Summary {
        summary: "Hello.".into(),
    };
    store.complete_analysis(m, &result).await.expect("complete");
    assert_eq!(f.status(m).await, MeetingStatus::Completed);
    assert!(!store.analysis_pending(m).await.expect("pending"));
    assert!(
        !store
            .unfinished_analyses()
            .await
            .expect("list")
            .contains(&m)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::store::MemoryStore;

    struct Memory(Arc<MemoryStore>);

    #[async_trait]
    impl Fixture for Memory {
        fn ports(&self) -> Arc<dyn Ports> {
            self.0.clone()
        }

        async fn active_meeting(
            &self,
            api: VoiceApi,
            call: Option<(Transport, &str)>,
        ) -> MeetingId {
            match call {
                Some((transport, id)) => self.0.add_attached_on(api, transport, id),
                None => {
                    let m = self.0.add_meeting(MeetingStatus::Active);
                    self.0.update(|memory| {
                        if let Some(fake) = memory.meetings.get_mut(&m) {
                            fake.voice_api = Some(api);
                        }
                    });
                    m
                }
            }
        }

        async fn lines(&self, meeting: MeetingId) -> Vec<(i64, ChunkStatus, String)> {
            self.0.read(|m| {
                m.meeting(meeting)
                    .lines
                    .values()
                    .map(|l| (l.sequence_number, l.status, l.text.clone()))
                    .collect()
            })
        }

        async fn status(&self, meeting: MeetingId) -> MeetingStatus {
            self.0.read(|m| m.meeting(meeting).status)
        }
    }

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_contract() {
        run_all(&Memory(MemoryStore::new())).await;
    }
}
