//! A call that OpenAI carries (here a WebRTC call the simulated OpenAI
//! holds), with scribe attached as its sideband, through each kind of
//! interruption: the sideband dropped, the MeetingActor killed, the whole
//! process SIGKILLed and started again. The call goes on without scribe;
//! the turn said meanwhile is what a re-attach can and cannot recover.
//!
//! What each run reports (printed, and asserted):
//! - lines the live stream delivered: every one stored, none twice;
//! - lines recovered: the agent's reply said while scribe was away, fetched
//!   with `conversation.item.retrieve` and stored in its place;
//! - holes marked: before that fetched line (its predecessor cannot be
//!   known), with the lines on either side; never a made-up line.

use std::sync::atomic::Ordering;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::carried::{CallsConfig, EndedAnswer, StartOn};
use scribe_sim::llm::SimLlm;
use scribe_sim::realtime::SimRealtimeConfig;
use serde_json::Value;

use crate::fleet::{Service, fleet_meetings, start_browser_call};
use crate::helpers::{ADMIN_TOKEN, API_TOKEN, each_backend, expect_json};
use crate::process::ChildScribe;
use crate::running::{DEADLINE, events, eventually, transcript, wait_for_lines, wait_for_status};

#[derive(Clone, Copy, Debug)]
enum Interruption {
    DroppedSideband,
    ActorKill,
    ProcessSigkill,
}

async fn post(app: &impl Service, path: &str, auth: &str) -> reqwest::Response {
    app.client()
        .post(format!("{}{path}", app.address()))
        .bearer_auth(auth)
        .send()
        .await
        .expect("sent")
}

async fn run(url: &str, interruption: Interruption) {
    let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), std::time::Duration::ZERO)
        .await
        .expect("sim llm");
    let calls = llm.calls().clone();
    calls.configure(CallsConfig {
        realtime: SimRealtimeConfig::scripted(|_| crate::running::away_script()),
        start: StartOn::Attach,
        ended: EndedAnswer::NotFound,
        api_key: None,
    });
    let unused_realtime = "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime";
    let scribe = ChildScribe::start_at(url, unused_realtime, &llm).await;
    let meeting = fleet_meetings(&scribe, 1).await.remove(0);
    let _caller = start_browser_call(&scribe, &meeting).await;
    assert!(calls.wait_for_mark("one", DEADLINE).await);
    wait_for_lines(scribe.store(), &meeting, 2).await;
    let call_id = calls.all().last().expect("the call").id.clone();

    // scribe goes away; turn 2 is said without it.
    calls.block_attaches(true);
    let alive = match interruption {
        Interruption::DroppedSideband => {
            assert!(calls.drop_sidebands(&call_id));
            Some(scribe)
        }
        Interruption::ActorKill => {
            calls.drop_sidebands(&call_id);
            let path = format!("/admin/actors/{meeting}/kill?kind=meeting");
            assert_eq!(
                post(&scribe, &path, ADMIN_TOKEN).await.status(),
                StatusCode::ACCEPTED
            );
            Some(scribe)
        }
        Interruption::ProcessSigkill => {
            scribe.kill().await;
            None
        }
    };
    calls.open_gate("two");
    assert!(calls.wait_for_mark("two", DEADLINE).await);
    calls.block_attaches(false);
    // The same binary started again adopts the active call and re-attaches.
    let scribe = match alive {
        Some(scribe) => scribe,
        None => ChildScribe::start_at(url, unused_realtime, &llm).await,
    };
    eventually("scribe to attach again", || async {
        let attaches = calls
            .call(&call_id)
            .map(|c| c.attaches.load(Ordering::SeqCst));
        (attaches >= Some(2)).then_some(())
    })
    .await;
    calls.open_gate("three");
    assert!(calls.wait_for_mark("three", DEADLINE).await);
    let lines = wait_for_lines(scribe.store(), &meeting, 5).await;

    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, crate::running::AWAY_LINES, "{interruption:?}");
    let numbers: Vec<i64> = lines.iter().map(|l| l.sequence_number).collect();
    assert_eq!(
        numbers,
        [1, 2, 3, 4, 5],
        "{interruption:?}: none duplicated"
    );
    let log = events(scribe.store(), &meeting).await;
    let recovered = log.iter().filter(|(k, _)| k == "item_recovered").count();
    let holes: Vec<&Value> = log
        .iter()
        .filter(|(k, _)| k == "possible_gap")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        recovered, 1,
        "{interruption:?}: the missed reply fetched back"
    );
    assert!(
        holes.iter().any(|h| h["after"] == 2 && h["before"] == 3),
        "{interruption:?}: the hole before the fetched line: {holes:?}"
    );
    // Turns 1 and 3, both sides, came over the live stream.
    const LIVE_SENT: usize = 4;
    let live = lines.len() - recovered;
    assert_eq!(live, LIVE_SENT, "{interruption:?}");
    println!(
        "re-attach after {interruption:?}: {live} of {LIVE_SENT} live lines stored, {recovered} line recovered, {} hole(s) marked, 0 duplicated; turn 2's user line missed (marked, not invented)",
        holes.len()
    );

    // Hang up: the call ends at OpenAI and the meeting completes.
    let hung = post(
        &scribe,
        &format!("/api/meetings/{meeting}/hangup"),
        API_TOKEN,
    )
    .await;
    expect_json(hung, StatusCode::ACCEPTED).await;
    wait_for_status(scribe.store(), &meeting, MeetingStatus::Completed).await;
    assert_eq!(transcript(scribe.store(), &meeting).await.len(), 5);
    scribe.kill().await;
}

#[tokio::test]
async fn an_attached_call_recovers_what_it_can_after_each_interruption_and_marks_the_rest() {
    each_backend(|_, url| async move {
        for interruption in [
            Interruption::DroppedSideband,
            Interruption::ActorKill,
            Interruption::ProcessSigkill,
        ] {
            run(&url, interruption).await;
        }
    })
    .await;
}
