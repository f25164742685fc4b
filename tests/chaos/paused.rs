//! Fencing: an instance that stops answering for longer than its lease
//! (SIGSTOP: a long GC pause, a frozen VM) loses its calls to another
//! instance, and when it wakes up it cannot write for them: the lines it
//! reads after waking are refused by the database, it stops its actors and
//! joins again as a new member, and every transcript holds only what the
//! new holder stored.

use std::time::Duration;

use futures::future::join_all;
use scribe_sim::llm::SimLlm;
use scribe_sim::script::{Script, Step, Transcription, Turn};

use crate::fleet::{Service, fleet_meetings, peer_playing, start_calls, webhooks};
use crate::helpers::{Backend, TestDb, backends, expect_json, init_test_log};
use crate::process::ChildScribe;
use crate::running::{eventually, transcript, wait_for_lines, wait_until_ended};

const CALLS: usize = 10;
const LEASE_MS: u64 = 3_000;
const RENEW_MS: u64 = 1_000;

/// Session 1 (at the instance that will be paused): a turn, then, once the
/// gate `stale` opens, a turn the paused instance reads when it wakes.
/// Session 2 (at the instance that took the call): a turn once the gate
/// `fresh` opens, which comes after the paused one woke.
fn script(meeting: &str, session: usize) -> Script {
    let tag = format!("{} s{session}", &meeting[..8]);
    let turn = |n| Step::Turn(Turn::numbered(&tag, n, Transcription::Before));
    let steps = match session {
        1 => vec![
            turn(1),
            Step::Mark(format!("{meeting} said")),
            Step::Gate("stale".into()),
            turn(2),
            Step::Hold,
        ],
        _ => vec![
            Step::Mark(format!("{meeting} taken")),
            Step::Gate("fresh".into()),
            turn(1),
            Step::Mark(format!("{meeting} fresh")),
            Step::Hold,
        ],
    };
    Script { steps }
}

#[tokio::test]
async fn a_paused_instance_that_wakes_cannot_write_for_the_calls_it_lost() {
    init_test_log();
    if !backends().contains(&Backend::Postgres) {
        eprintln!("no PostgreSQL configured: several instances share a PostgreSQL database");
        return;
    }
    let db = TestDb::create(Backend::Postgres).await;
    let peer = peer_playing(0.05, script).await;
    let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::ZERO)
        .await
        .expect("sim llm starts");
    let (lease, renew) = (LEASE_MS.to_string(), RENEW_MS.to_string());
    let start = |name: &'static str| {
        let (db, peer, llm, lease, renew) = (&db, &peer, &llm, &lease, &renew);
        async move {
            let env = [
                ("SCRIBE_INSTANCE_ID", name),
                ("SCRIBE_LEASE_MS", lease.as_str()),
                ("SCRIBE_LEASE_RENEW_MS", renew.as_str()),
                ("SCRIBE_DATABASE_POOL_SIZE", "8"),
            ];
            ChildScribe::start_with(&db.url, &peer.url(), llm, &env).await
        }
    };
    let paused = start("paused").await;
    let meetings = fleet_meetings(&paused, CALLS).await;
    let calls = start_calls(&paused, &meetings).await;
    join_all(
        meetings
            .iter()
            .map(|m| wait_for_lines(paused.store(), m, 2)),
    )
    .await;
    let other = start("other").await;

    paused.signal("STOP").await;
    // The other instance declares it dead once its heartbeat is older than
    // the lease, and takes every call (a second session each).
    for meeting in &meetings {
        assert!(
            peer.wait_for_mark(&format!("{meeting} taken"), Duration::from_secs(60))
                .await,
            "{meeting} taken over"
        );
    }
    // The paused instance's sockets now carry a turn it will read on waking.
    peer.open_gate("stale");
    paused.signal("CONT").await;
    // It learns that it lost every call: each actor stops, and says why.
    for meeting in &meetings {
        eventually("the paused instance to let the call go", || async {
            let log = other.store().events(meeting.parse().ok()?).await.ok()?;
            log.iter()
                .any(|e| e.kind == scribe_actors::domain::EventKind::LeaseLost)
                .then_some(())
        })
        .await;
    }
    peer.open_gate("fresh");
    for meeting in &meetings {
        assert!(
            peer.wait_for_mark(&format!("{meeting} fresh"), Duration::from_secs(60))
                .await
        );
        wait_for_lines(other.store(), meeting, 4).await;
    }
    for call in &calls {
        let answer = webhooks(&other).session_ended(call).await.expect("sent");
        expect_json(answer, reqwest::StatusCode::OK).await;
        wait_until_ended(other.store(), &call.meeting_id).await;
    }
    // Each transcript: the first session's turn, then the new holder's,
    // numbered 1 to 4; nothing the paused instance read after waking.
    let mut fenced = 0;
    for meeting in &meetings {
        let stored = transcript(other.store(), meeting).await;
        let texts: Vec<String> = stored.iter().map(|l| l.text.clone()).collect();
        let numbers: Vec<i64> = stored.iter().map(|l| l.sequence_number).collect();
        assert_eq!(numbers, [1, 2, 3, 4], "{meeting}: {texts:?}");
        let tag = &meeting[..8];
        assert!(
            texts[..2].iter().all(|t| t.contains(&format!("{tag} s1"))),
            "{texts:?}"
        );
        assert!(
            texts[2..].iter().all(|t| t.contains(&format!("{tag} s2"))),
            "the new holder's lines, not the woken instance's: {texts:?}"
        );
        let log = other
            .store()
            .events(meeting.parse().expect("id"))
            .await
            .expect("log");
        fenced += log
            .iter()
            .filter(|e| {
                e.kind == scribe_actors::domain::EventKind::LeaseLost
                    && e.detail["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("refused its writes"))
            })
            .count();
    }
    println!(
        "{CALLS} calls of a paused instance: every one taken, none written by it after waking ({fenced} stopped by a refused write, the others by its failed heartbeat)"
    );
    other.kill().await;
    paused.kill().await;
    db.destroy().await;
}
