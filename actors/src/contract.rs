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
    a_lease_has_one_owner_and_an_end_reaches_it(fixture).await;
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

async fn a_lease_has_one_owner_and_an_end_reaches_it(f: &dyn Fixture) {
    let store = f.ports();
    let m = f.active_meeting(VoiceApi::Realtime, None).await;
    let (a, b) = (format!("a-{m}"), format!("b-{m}"));
    assert!(
        store.acquire_lease(m, &a, TTL).await.expect("lease"),
        "a free lease is taken"
    );
    assert!(
        !store.acquire_lease(m, &b, TTL).await.expect("lease"),
        "a held lease is not"
    );
    assert!(
        store.acquire_lease(m, &a, TTL).await.expect("lease"),
        "its owner keeps it"
    );
    let report = store.renew_leases(&a, TTL).await.expect("renew");
    assert!(report.owned.contains(&m), "the owner renews it");
    assert!(!report.orphaned.contains(&m), "a held lease is no orphan");
    // An end recorded by another instance reaches the owner; its own does not go round.
    assert!(!store.request_end(m, &a, Utc::now()).await.expect("end"));
    assert!(store.request_end(m, &b, Utc::now()).await.expect("end"));
    let report = store.renew_leases(&a, TTL).await.expect("renew");
    assert!(
        report.end_requested.iter().any(|(ended, _)| *ended == m),
        "the owner learns of the end"
    );
    let context = store.call_context(m).await.expect("read").expect("found");
    assert!(context.end_requested_at.is_some(), "the end is recorded");
    store.release_leases(&a).await.expect("release");
    assert!(
        store.acquire_lease(m, &b, TTL).await.expect("lease"),
        "a released lease is free at once"
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
