//! The supervisor alone, on in-memory ports, in paused time: restarts,
//! giving up, the budget's window, lease loss, its own tasks, the hand-off.

use std::time::Duration;

use serde_json::Value;

use super::outcome::{EndOutcome, StartOutcome};
use crate::domain::{EventKind, MeetingStatus};
use crate::fakes::DEADLINE;
use crate::fakes::store::Memory;
use crate::fakes::tree::{OWNER, TestTree, budget};
use crate::ids::MeetingId;
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

#[tokio::test(start_paused = true)]
async fn a_call_whose_lease_passed_to_another_instance_is_stopped_here_and_not_restarted() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_call(&tree).await;
    tree.store.update(|m| {
        if let Some(fake) = m.meetings.get_mut(&meeting) {
            fake.lease_owner = Some("instance-b".into());
        }
    });
    let lost = tree
        .store
        .wait_for("the lease loss", |m| {
            nth_logged(m, meeting, EventKind::LeaseLost, 0)
        })
        .await;
    assert_eq!(lost["owner"], OWNER);
    eventually("the actor to stop", || async {
        tree.actor(meeting, ActorKind::Meeting).await.is_none()
    })
    .await;
    // A minute of renewals later: still stopped here, still the other's call.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(tree.actor(meeting, ActorKind::Meeting).await.is_none());
    let (restarts, status) = tree.store.read(|m| {
        let fake = m.meeting(meeting);
        (fake.logged(EventKind::ActorRestarted).len(), fake.status)
    });
    assert_eq!((restarts, status), (0, MeetingStatus::Active));
    assert_eq!(tree.connector.opened(), 1);
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn the_lease_renewal_task_stops_with_its_supervisor() {
    let tree = TestTree::start(budget(5), 4).await;
    let renewals = |m: &Memory| m.renewals.get(OWNER).copied().unwrap_or(0);
    tree.store
        .wait_for("the first renewal", |m| (renewals(m) == 1).then_some(()))
        .await;
    assert!(tree.calls.kill_supervisor());
    // The guardian's new supervisor renews every 10 s from its start; the
    // dead one's task would renew as often again.
    tokio::time::sleep(tree.lease.renew_every * 3 + Duration::from_secs(5)).await;
    assert_eq!(tree.store.read(renewals), 1 + 3);
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
