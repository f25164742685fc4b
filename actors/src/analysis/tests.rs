//! The analysis actor under its supervisor, on in-memory ports, in paused
//! time: attempts across a kill, the bound on analyses at once, giving up.

use std::time::Duration;

use crate::domain::MeetingStatus;
use crate::fakes::store::JobState;
use crate::fakes::tree::{TestTree, budget};
use crate::snapshot::{ActorKind, ActorState, AnalysisPhase};

#[tokio::test(start_paused = true)]
async fn a_killed_analysis_is_restarted_and_its_job_resumes_as_the_next_attempt() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = tree.store.add_meeting(MeetingStatus::Processing);
    tree.analyzer.hold();
    assert!(tree.calls.analyze(meeting).await.expect("answers"));
    tree.analyzer.wait_for_calls(1).await;
    assert!(tree.calls.kill_analysis(meeting).await.expect("answers"));
    tree.analyzer.wait_for_calls(2).await;
    let attempt = tree
        .store
        .read(|m| m.meeting(meeting).job.as_ref().map(|j| j.attempt));
    assert_eq!(attempt, Some(2));
    tree.analyzer.release();
    tree.store
        .wait_for_status(meeting, MeetingStatus::Completed)
        .await;
    let stages: Vec<String> = tree.store.read(|m| {
        m.meeting(meeting)
            .logged(crate::domain::EventKind::AnalysisStage)
            .iter()
            .filter_map(|d| d["stage"].as_str().map(str::to_owned))
            .collect()
    });
    assert!(
        stages.contains(&"analysis_actor_restarted".to_owned()),
        "{stages:?}"
    );
    assert_eq!(tree.analyzer.calls(), 2);
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn analyses_wait_for_a_permit_and_never_run_past_the_bound() {
    let tree = TestTree::start(budget(5), 1).await;
    let first = tree.store.add_meeting(MeetingStatus::Processing);
    let second = tree.store.add_meeting(MeetingStatus::Processing);
    tree.analyzer.hold();
    assert!(tree.calls.analyze(first).await.expect("answers"));
    tree.analyzer.wait_for_calls(1).await;
    assert!(tree.calls.analyze(second).await.expect("answers"));
    // A little later the second still waits for the only permit.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let phase = |snapshot: Option<crate::snapshot::ActorSnapshot>| snapshot.map(|s| s.state);
    assert_eq!(
        phase(tree.actor(first, ActorKind::Analysis).await),
        Some(ActorState::Analysis(AnalysisPhase::Running))
    );
    assert_eq!(
        phase(tree.actor(second, ActorKind::Analysis).await),
        Some(ActorState::Analysis(AnalysisPhase::Waiting))
    );
    assert_eq!(tree.analyzer.calls(), 1);
    tree.analyzer.release();
    tree.store
        .wait_for("both results", |m| {
            [first, second]
                .iter()
                .all(|id| m.meeting(*id).status == MeetingStatus::Completed)
                .then_some(())
        })
        .await;
    assert_eq!(
        (tree.analyzer.calls(), tree.analyzer.most_at_once()),
        (2, 1)
    );
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn an_analysis_that_keeps_dying_is_given_up_on_and_its_meeting_fails() {
    let tree = TestTree::start(budget(1), 4).await;
    let meeting = tree.store.add_meeting(MeetingStatus::Processing);
    tree.analyzer.hold();
    assert!(tree.calls.analyze(meeting).await.expect("answers"));
    tree.analyzer.wait_for_calls(1).await;
    assert!(tree.calls.kill_analysis(meeting).await.expect("answers"));
    tree.analyzer.wait_for_calls(2).await;
    assert!(tree.calls.kill_analysis(meeting).await.expect("answers"));
    let error = tree
        .store
        .wait_for("the verdict", |m| m.meeting(meeting).error.clone())
        .await;
    assert_eq!(
        error,
        "the analysis actor died 2 times within 60 s (last: killed); gave up restarting it"
    );
    let job = tree
        .store
        .read(|m| m.meeting(meeting).job.as_ref().map(|j| j.state));
    assert_eq!(job, Some(JobState::Failed));
    assert!(tree.actor(meeting, ActorKind::Analysis).await.is_none());
    tree.stop();
}
