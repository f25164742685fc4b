//! The process stopping: gracefully (SIGTERM, or the in-process stop) and
//! abruptly (SIGKILL of the real binary). Live calls resume, analyses
//! complete, and any loss is recorded with its place in the numbering.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::llm::{LlmFault, SimLlm};
use scribe_sim::realtime::SimRealtime;
use scribe_sim::script::{Script, Step, Transcription, Turn};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::fleet::{
    Service, finish_chaotic_calls, fleet_meetings, fleet_peer, requests_mentioning, start_calls,
    webhooks,
};
use crate::helpers::{ADMIN_TOKEN, API_TOKEN, STREAM_SECRET, TestDb, each_backend, expect_json};
use crate::running::{
    DEADLINE, actor_where, assert_transcript, driver, end_call, event_count, events, eventually,
    live_app, new_meeting, sim, start_call, status_of, transcript, wait_for_lines, wait_for_status,
};

fn turn(n: usize, transcription: Transcription) -> Turn {
    Turn::numbered("call", n, transcription)
}

/// Invariant 2 across a process restart: the meeting stays `active`, the
/// next process adopts it at startup, opens a new session with the stored
/// lines replayed, and numbering continues after the highest number.
#[tokio::test]
async fn a_restarted_process_adopts_live_calls_and_numbering_continues() {
    each_backend(|_, url| async move {
        let script_for = |s: usize| Script {
            steps: vec![
                Step::Turn(turn(s, Transcription::Before)),
                // The second turn's transcription never comes: open at shutdown.
                Step::Turn(turn(s + 10, Transcription::Withheld)),
                Step::Mark(format!("s{s}")),
                Step::Hold,
            ],
        };
        let peer = sim(move |c| script_for(c.session)).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("s1", DEADLINE).await);
        actor_where(&app, &meeting, "the first session read", |a| {
            a["next_sequence"] == 5
        })
        .await;
        app.stop().await.expect("graceful stop");
        assert_eq!(
            crate::running::status_of(&crate::helpers::TestDb::store_at(&url).await, &meeting)
                .await,
            MeetingStatus::Active,
            "a live call stays active across a restart"
        );

        let app = live_app(&url, &peer).await;
        assert!(
            peer.wait_for_mark("s2", DEADLINE).await,
            "adopted and reconnected"
        );
        // The second session's withheld user line stays open until the end.
        wait_for_lines(&app.store, &meeting, 7).await;
        end_call(&app, &call).await;
        let mut expected = script_for(1).expected_lines();
        expected.extend(script_for(2).expected_lines());
        assert_transcript(&transcript(&app.store, &meeting).await, &expected);
        let restarted: Vec<Value> = events(&app.store, &meeting)
            .await
            .into_iter()
            .filter(|(k, _)| k == "actor_restarted")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(restarted.len(), 1, "{restarted:?}");
        assert!(
            restarted[0]["reason"]
                .as_str()
                .expect("reason")
                .contains("adopted")
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// A graceful stop while a call is being finalized (here: waiting out the
/// grace period for a transcription that never comes) finishes the job
/// first: the ended call is `processing`, never left `active` for the next
/// process to adopt.
#[tokio::test]
async fn a_graceful_stop_finishes_calls_that_are_ending() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Withheld)),
                Step::Mark("spoken".into()),
                Step::Hold,
            ],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        actor_where(&app, &meeting, "the turn read", |a| a["next_sequence"] == 3).await;
        let answer = driver(&app).session_ended(&call).await.expect("sent");
        expect_json(answer, StatusCode::OK).await;
        app.stop().await.expect("graceful stop");
        let reopened = crate::helpers::TestDb::store_at(&url).await;
        let status = crate::running::status_of(&reopened, &meeting).await;
        assert!(
            matches!(status, MeetingStatus::Processing | MeetingStatus::Completed),
            "ended, not left active: {status}"
        );
        let lines = transcript(&reopened, &meeting).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0].status,
            scribe_actors::domain::ChunkStatus::TranscriptionFailed
        );
    })
    .await;
}

/// `scribe serve`, the real binary, as a child process of the test: its
/// realtime peer and model are the test's simulated ones.
pub struct ChildScribe {
    child: tokio::process::Child,
    address: String,
    client: reqwest::Client,
    store: scribe::store::Store,
}

impl Service for ChildScribe {
    fn address(&self) -> &str {
        &self.address
    }
    fn store(&self) -> &scribe::store::Store {
        &self.store
    }
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl ChildScribe {
    async fn start(database_url: &str, peer: &SimRealtime, llm: &SimLlm) -> Self {
        Self::start_at(database_url, &peer.url(), llm).await
    }

    /// `scribe serve` whose OpenAI (model, calls, sidebands) is `llm` and
    /// whose owned sessions go to `realtime_url`.
    pub async fn start_at(database_url: &str, realtime_url: &str, llm: &SimLlm) -> Self {
        Self::start_with(database_url, realtime_url, llm, &[]).await
    }

    /// As [`Self::start_at`], with `env` set last (over the defaults).
    pub async fn start_with(
        database_url: &str,
        realtime_url: &str,
        llm: &SimLlm,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_scribe"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env("SCRIBE_API_TOKEN", API_TOKEN)
            .env("SCRIBE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("STREAM_API_SECRET", STREAM_SECRET)
            .env("SCRIBE_CHAOS", "1")
            .env("SCRIBE_REALTIME_URL", realtime_url)
            .env("SCRIBE_SIMULATED_PEER", "1")
            .env("OPENAI_BASE_URL", llm.base_url())
            .env("OPENAI_API_KEY", "sk-sim")
            // One name across restarts: the restarted process is the owner.
            .env("SCRIBE_INSTANCE_ID", "chaos-instance")
            .env("SCRIBE_FINALIZE_GRACE_MS", "500")
            .env("SCRIBE_ANALYSIS_CONCURRENCY", "16")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("scribe starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("stdout readable") {
                if let Some(address) = line.strip_prefix("scribe listening on ") {
                    return address.to_owned();
                }
            }
            panic!("scribe exited before listening");
        })
        .await
        .expect("scribe listens within 60 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            address,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            store: TestDb::store_at(database_url).await,
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let sent = tokio::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "SIG{signal} sent");
    }

    /// SIGKILL: no shutdown of any kind.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL sent");
        self.child.wait().await.expect("reaped");
    }

    /// SIGTERM; returns once the process exited, with its status.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("exits within 60 s of SIGTERM")
            .expect("reaped")
    }
}

/// Whether the member that holds the meeting stopped without releasing it.
async fn lease_unreleased(store: &scribe::store::Store, meeting: &str) -> bool {
    let (_, state) = store
        .holder(meeting.parse().expect("id"))
        .await
        .expect("query")
        .expect("held");
    state != "released"
}

/// SIGKILL of `scribe serve` with 20 calls talking and 10 analyses waiting
/// on the model; the same binary started again on the same database:
/// every call resumes (a new realtime session, the stored lines replayed,
/// numbering continued), every analysis completes, nothing is duplicated,
/// and the possible loss (lines read but not committed when the process
/// died) is recorded as a `possible_gap` naming the number it follows.
#[tokio::test]
async fn sigkill_mid_call_and_mid_analysis_resumes_everything_and_records_any_loss() {
    each_backend(|_, url| async move {
        const LIVE: usize = 20;
        const ANALYSING: usize = 10;
        let peer = fleet_peer(0.1).await;
        let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::ZERO)
            .await
            .expect("sim llm starts");
        llm.push_faults((0..ANALYSING).map(|_| LlmFault::Stall(Duration::from_secs(300))));
        let scribe = ChildScribe::start(&url, &peer, &llm).await;
        let meetings = fleet_meetings(&scribe, LIVE + ANALYSING).await;
        let (analysing, live) = meetings.split_at(ANALYSING);
        let ended = start_calls(&scribe, analysing).await;
        finish_chaotic_calls(&scribe, &peer, &ended, false).await;
        eventually("every analysis waiting on the model", || async {
            (llm.requests().len() == ANALYSING).then_some(())
        })
        .await;
        let calls = start_calls(&scribe, live).await;
        for meeting in live {
            wait_for_lines(&scribe.store, meeting, 2).await;
        }

        // `SCRIBE_CHAOS=1` arms the kill endpoint of the real binary.
        let blow = scribe
            .client
            .post(format!(
                "{}/admin/actors/{}/kill?kind=meeting",
                scribe.address, live[0]
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("sent");
        expect_json(blow, StatusCode::ACCEPTED).await;

        scribe.kill().await;
        let store = TestDb::store_at(&url).await;
        for meeting in live {
            assert_eq!(status_of(&store, meeting).await, MeetingStatus::Active);
        }

        let scribe = ChildScribe::start(&url, &peer, &llm).await;
        for meeting in live {
            eventually("a new session after the restart", || async {
                (peer.connections_for(meeting).len() >= 2).then_some(())
            })
            .await;
        }
        finish_chaotic_calls(&scribe, &peer, &calls, true).await;
        for meeting in &meetings {
            wait_for_status(&scribe.store, meeting, MeetingStatus::Completed).await;
        }
        for meeting in live {
            let log = events(&scribe.store, meeting).await;
            let gaps: Vec<&Value> = log
                .iter()
                .filter(|(k, _)| k == "possible_gap")
                .map(|(_, d)| d)
                .collect();
            assert_eq!(gaps.len(), 1, "the crash is on record: {log:?}");
            let after = gaps[0]["after"].as_i64().expect("after");
            assert!(after >= 2, "at least the lines waited for were committed");
            let adopted = log.iter().any(|(k, d)| {
                k == "actor_restarted"
                    && d["reason"].as_str().is_some_and(|r| r.contains("adopted"))
            });
            assert!(adopted, "{log:?}");
            // The new session was given the stored conversation.
            let replayed = log
                .iter()
                .filter(|(k, d)| k == "socket_connected" && d["replayed_lines"].as_i64() > Some(0))
                .count();
            assert!(replayed >= 1, "{log:?}");
        }
        for meeting in analysing {
            assert_eq!(
                requests_mentioning(&llm, meeting),
                2,
                "one hung request, one after the restart"
            );
        }
        scribe.terminate().await;
    })
    .await;
}

/// SIGTERM while 10 calls talk and 5 more are ending (inside the finalize
/// grace period): the process exits 0; the ended calls are finalized
/// before it goes; the live ones stay `active` with their leases released
/// (so nothing waits for a lease to expire) and every line they read is
/// stored. Started again, it resumes them with nothing lost.
#[tokio::test]
async fn sigterm_is_graceful_loses_nothing_and_leaves_nothing_active_without_an_owner() {
    each_backend(|_, url| async move {
        const LIVE: usize = 10;
        const ENDING: usize = 5;
        let peer = fleet_peer(0.1).await;
        let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::ZERO)
            .await
            .expect("sim llm starts");
        let scribe = ChildScribe::start(&url, &peer, &llm).await;
        let meetings = fleet_meetings(&scribe, LIVE + ENDING).await;
        let (ending, live) = meetings.split_at(ENDING);
        let calls = start_calls(&scribe, &meetings).await;
        for meeting in &meetings {
            wait_for_lines(&scribe.store, meeting, 2).await;
        }
        let driver = webhooks(&scribe);
        for call in &calls[..ENDING] {
            let answer = driver.session_ended(call).await.expect("sent");
            expect_json(answer, StatusCode::OK).await;
        }
        let status = scribe.terminate().await;
        assert!(status.success(), "{status:?}");

        let store = TestDb::store_at(&url).await;
        for meeting in ending {
            let status = status_of(&store, meeting).await;
            assert!(
                matches!(status, MeetingStatus::Processing | MeetingStatus::Completed),
                "an ended call is finalized before the process goes: {status}"
            );
            assert_eq!(event_count(&store, meeting, "gap").await, 0);
        }
        for meeting in live {
            assert_eq!(status_of(&store, meeting).await, MeetingStatus::Active);
            assert!(!lease_unreleased(&store, meeting).await, "lease released");
        }

        let scribe = ChildScribe::start(&url, &peer, &llm).await;
        finish_chaotic_calls(&scribe, &peer, &calls[ENDING..], false).await;
        for meeting in &meetings {
            wait_for_status(&scribe.store, meeting, MeetingStatus::Completed).await;
            assert_eq!(event_count(&scribe.store, meeting, "possible_gap").await, 0);
        }
        assert!(scribe.terminate().await.success());
    })
    .await;
}
