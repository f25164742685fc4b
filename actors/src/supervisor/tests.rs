//! The supervisor alone, on in-memory ports, in paused time: restarts,
//! giving up, the budget's window, lease loss, its own tasks, the hand-off.

use std::time::Duration;

use serde_json::Value;

use super::outcome::{EndOutcome, StartOutcome};
use crate::domain::{EventKind, MeetingStatus};
use crate::fakes::DEADLINE;
use crate::fakes::store::{MemberState, Memory};
use crate::fakes::tree::{OWNER, TestTree, budget};
use crate::ids::MeetingId;
use crate::ports::LeaseStore;
use crate::snapshot::{ActorKind, SocketState};

/// The `n`-th entry of `kind` in the meeting's log, once there is one.
fn nth_logged(m: &Memory, meeting: MeetingId, kind: EventKind, n: usize) -> Option<Value> {
    m.meeting(meeting).logged(kind).get(n).map(|d| (*d).clone())
}

/// A live call: an `active` meeting whose actor has opened its session.
async fn live_call(tree: &TestTree) -> MeetingId {
    let meeting = tree.store.add_meeting(MeetingStatus::Active);
    let sessions = tree.connector.opened();
    let started = tree
        .calls
        .start(meeting)
        .await
        .expect("the supervisor answers");
    assert_eq!(started, StartOutcome::Started);
    tree.connector.wait_for_sessions(sessions + 1).await;
    meeting
}

/// Kills the call's actor and waits for its `n`-th restart (from 0) and
/// the heir's new session.
async fn kill_and_await_restart(tree: &TestTree, meeting: MeetingId, n: usize) -> Value {
    let sessions = tree.connector.opened();
    assert!(
        tree.calls.kill(meeting).await.expect("answers"),
        "an actor was live"
    );
    let restarted = tree
        .store
        .wait_for("the restart", |m| {
            nth_logged(m, meeting, EventKind::ActorRestarted, n)
        })
        .await;
    tree.connector.wait_for_sessions(sessions + 1).await;
    restarted
}

/// Polls `probe` until it holds, within [`DEADLINE`] of virtual time.
async fn eventually<F, Fut>(what: &str, probe: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let polled = tokio::time::timeout(DEADLINE, async {
        while !probe().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    polled
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(start_paused = true)]
async fn a_killed_or_panicking_meeting_actor_is_restarted_with_its_reason_logged() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_call(&tree).await;

    let restarted = kill_and_await_restart(&tree, meeting, 0).await;
    assert_eq!(restarted["reason"], "killed");
    assert_eq!(restarted["incarnation"], 1);

    assert!(tree.calls.panic(meeting).await.expect("answers"));
    let restarted = tree
        .store
        .wait_for("the second restart", |m| {
            nth_logged(m, meeting, EventKind::ActorRestarted, 1)
        })
        .await;
    assert!(
        restarted["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("failed: ") && r.contains("injected panic")),
        "{restarted}"
    );
    tree.connector.wait_for_sessions(3).await;
    let actor = tree
        .actor(meeting, ActorKind::Meeting)
        .await
        .expect("the heir is live");
    assert_eq!((actor.restarts, actor.socket), (2, SocketState::Open));
    let status = tree.store.read(|m| m.meeting(meeting).status);
    assert_eq!(status, MeetingStatus::Active);
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn an_actor_that_keeps_dying_is_given_up_on_and_its_meeting_fails_with_the_reason() {
    let tree = TestTree::start(budget(2), 4).await;
    let meeting = live_call(&tree).await;
    for n in 0..2 {
        kill_and_await_restart(&tree, meeting, n).await;
    }
    assert!(tree.calls.kill(meeting).await.expect("answers"));
    let error = tree
        .store
        .wait_for("the verdict", |m| m.meeting(meeting).error.clone())
        .await;
    assert_eq!(
        error,
        "the call's actor died 3 times within 60 s (last: killed); gave up restarting it"
    );
    let (status, exhausted) = tree.store.read(|m| {
        let fake = m.meeting(meeting);
        (
            fake.status,
            fake.logged(EventKind::RestartBudgetExhausted).len(),
        )
    });
    assert_eq!((status, exhausted), (MeetingStatus::Failed, 1));
    assert!(tree.actor(meeting, ActorKind::Meeting).await.is_none());
    assert_eq!(tree.connector.opened(), 3, "no fourth session");
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn deaths_further_apart_than_the_window_are_always_restarted() {
    let tree = TestTree::start(budget(1), 4).await;
    let meeting = live_call(&tree).await;
    for n in 0..3 {
        kill_and_await_restart(&tree, meeting, n).await;
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
    // Two deaths within the window: the budget of one restart is spent.
    kill_and_await_restart(&tree, meeting, 3).await;
    assert!(tree.calls.kill(meeting).await.expect("answers"));
    let error = tree
        .store
        .wait_for("the verdict", |m| m.meeting(meeting).error.clone())
        .await;
    assert!(error.contains("died 2 times within 60 s"), "{error}");
    tree.stop();
}

/// Another live member, holding `meeting` from now on, that keeps its
/// heartbeat for the rest of the test.
async fn held_elsewhere(tree: &TestTree, meeting: MeetingId) {
    let other = tree.store.join("instance-b").await.expect("join");
    tree.store.update(|m| {
        if let Some(fake) = m.meetings.get_mut(&meeting) {
            fake.owner = Some(other.clone());
            fake.lease_epoch += 1;
        }
    });
    let store = tree.store.clone();
    tokio::spawn(async move {
        let mut beat = tokio::time::interval(Duration::from_secs(5));
        loop {
            beat.tick().await;
            let _ = store.heartbeat(&other).await;
        }
    });
}

async fn stopped_here_and_still_the_others(tree: &TestTree, meeting: MeetingId, reason: &str) {
    let lost = tree
        .store
        .wait_for("the lease loss", |m| {
            nth_logged(m, meeting, EventKind::LeaseLost, 0)
        })
        .await;
    assert_eq!(lost["owner"], OWNER);
    assert!(
        lost["reason"].as_str().is_some_and(|r| r.contains(reason)),
        "{lost}"
    );
    eventually("the actor to stop", || async {
        tree.actor(meeting, ActorKind::Meeting).await.is_none()
    })
    .await;
    // A minute of heartbeats and looks later: still stopped here, still the other's call.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(tree.actor(meeting, ActorKind::Meeting).await.is_none());
    let (restarts, status, holder) = tree.store.read(|m| {
        let fake = m.meeting(meeting);
        (
            fake.logged(EventKind::ActorRestarted).len(),
            fake.status,
            fake.owner.as_ref().map(|o| o.instance.clone()),
        )
    });
    assert_eq!((restarts, status), (0, MeetingStatus::Active));
    assert_eq!(holder.as_deref(), Some("instance-b"));
}

#[tokio::test(start_paused = true)]
async fn a_member_declared_dead_stops_its_calls_and_takes_back_only_those_nobody_took() {
    let tree = TestTree::start(budget(5), 4).await;
    let taken = live_call(&tree).await;
    let kept = live_call(&tree).await;
    let before = tree.tree_member();
    held_elsewhere(&tree, taken).await;
    // Declared dead, as another instance does when the heartbeat lapsed.
    tree.store.update(|m| {
        if let Some(fake) = m.members.get_mut(&before) {
            fake.state = MemberState::Dead;
        }
    });
    stopped_here_and_still_the_others(&tree, taken, "declared dead").await;
    // It joined again, and took back the call nobody took, in a new session.
    let after = tree.tree_member();
    assert_eq!(after.epoch, before.epoch + 1);
    let holder = tree.store.read(|m| m.meeting(kept).owner.clone());
    assert_eq!(holder, Some(after));
    let log = tree.store.read(|m| m.meeting(kept).events.clone());
    let actor = tree
        .actor(kept, ActorKind::Meeting)
        .await
        .unwrap_or_else(|| panic!("running: {log:?}"));
    assert_eq!(actor.socket, SocketState::Open);
    assert_eq!(
        tree.connector.opened(),
        3,
        "one new session: the call taken back"
    );
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_writes_are_refused_is_stopped_here_and_not_restarted() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_call(&tree).await;
    // Taken by another while this member still lives (its writes are the
    // first to know).
    held_elsewhere(&tree, meeting).await;
    for frame in [
        r#"{"type":"input_audio_buffer.committed","event_id":"e1","item_id":"u1","previous_item_id":null}"#,
        r#"{"type":"conversation.item.added","event_id":"e2","previous_item_id":null,"item":{"id":"u1","type":"message","role":"user","status":"completed","content":[{"type":"input_audio","transcript":null}]}}"#,
        r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"e3","item_id":"u1","content_index":0,"transcript":"Hi."}"#,
    ] {
        tree.connector.send(0, frame);
    }
    stopped_here_and_still_the_others(&tree, meeting, "refused its writes").await;
    assert_eq!(tree.connector.opened(), 1);
    assert!(
        tree.store.read(|m| m.meeting(meeting).lines.is_empty()),
        "nothing written for a call held elsewhere"
    );
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn the_membership_task_stops_with_its_supervisor() {
    let tree = TestTree::start(budget(5), 4).await;
    let heartbeats = |m: &Memory| m.heartbeats.get(OWNER).copied().unwrap_or(0);
    tree.store
        .wait_for("the first heartbeat", |m| {
            (heartbeats(m) == 1).then_some(())
        })
        .await;
    assert!(tree.calls.kill_supervisor());
    // The guardian's new supervisor beats at its start and every 10 s
    // after; the dead one's task would beat as often again.
    tokio::time::sleep(tree.lease.renew_every * 3 + Duration::from_secs(5)).await;
    assert_eq!(tree.store.read(heartbeats), 1 + 4);
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn an_ended_call_is_finalized_and_handed_to_its_analysis_at_once() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_call(&tree).await;
    let outcome = tree
        .calls
        .end(meeting, chrono::Utc::now())
        .await
        .expect("answers");
    assert_eq!(outcome, EndOutcome::Finalizing);
    tree.store
        .wait_for_status(meeting, MeetingStatus::Completed)
        .await;
    let statuses: Vec<Value> = tree.store.read(|m| {
        m.meeting(meeting)
            .logged(EventKind::StatusChanged)
            .into_iter()
            .map(|d| d["to"].clone())
            .collect()
    });
    assert_eq!(statuses, ["processing", "completed"]);
    assert_eq!(tree.analyzer.calls(), 1);
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn an_ended_call_without_an_actor_is_finalized_from_the_store() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = tree.store.add_meeting(MeetingStatus::Active);
    let outcome = tree
        .calls
        .end(meeting, chrono::Utc::now())
        .await
        .expect("answers");
    assert_eq!(outcome, EndOutcome::FinalizingFromStore);
    tree.calls
        .settled(Duration::from_secs(30))
        .await
        .expect("the finalization ends");
    tree.store
        .wait_for_status(meeting, MeetingStatus::Completed)
        .await;
    assert_eq!(tree.connector.opened(), 0, "no session for an ended call");
    tree.stop();
}
