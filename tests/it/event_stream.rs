//! `GET /api/meetings/{id}/events`: a call followed from its first line to
//! its results, resumption without loss or repetition, bad requests; and
//! the page capability that lets the meeting page retry its analysis.

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::llm::LlmFault;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, each_backend, expect_error, expect_json, live_settings, spawn_app_with,
};
use crate::running::{
    DEADLINE, coach_with_plan, end_call, gated_call, meeting_with, one_turn, sim, start_call,
    wait_for_lines, wait_for_status,
};

/// One event as the wire carries it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ev {
    pub(crate) name: String,
    pub(crate) id: Option<String>,
    pub(crate) data: String,
}

impl Ev {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// A Server-Sent Events reader over a streaming response.
pub(crate) struct Sse {
    response: reqwest::Response,
    buf: String,
    comments: usize,
}

impl Sse {
    /// Opens the meeting's stream with its page key, as the page does.
    pub(crate) async fn open(app: &TestApp, meeting: &str, last_event_id: Option<&str>) -> Self {
        let key = app.page_key(meeting).await;
        let mut request = app
            .client
            .get(app.url(&format!("/api/meetings/{meeting}/events?key={key}")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().expect("ascii"),
            "text/event-stream"
        );
        Self {
            response,
            buf: String::new(),
            comments: 0,
        }
    }

    /// The next event; `None` when the server closed the stream.
    pub(crate) async fn next(&mut self) -> Option<Ev> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Ev {
                    name: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut fields = 0;
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some((field, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value);
                        fields += 1;
                        match field {
                            "event" => ev.name = value.into(),
                            "id" => ev.id = Some(value.into()),
                            "data" => ev.data.push_str(value),
                            _ => {}
                        }
                    }
                }
                if fields > 0 {
                    return Some(ev);
                }
                continue;
            }
            let chunk = tokio::time::timeout(DEADLINE, self.response.chunk())
                .await
                .expect("the stream went quiet past the deadline")
                .expect("stream read");
            self.buf
                .push_str(std::str::from_utf8(&chunk?).expect("utf-8"));
        }
    }

    /// Events up to and including the first one `stop` accepts.
    pub(crate) async fn until(&mut self, stop: impl Fn(&Ev) -> bool) -> Vec<Ev> {
        let mut seen = Vec::new();
        while let Some(ev) = self.next().await {
            let done = stop(&ev);
            seen.push(ev);
            if done {
                return seen;
            }
        }
        panic!("the stream closed before the awaited event; saw {seen:#?}");
    }

    /// Everything left, until the server closes the stream.
    pub(crate) async fn rest(&mut self) -> Vec<Ev> {
        let mut seen = Vec::new();
        while let Some(ev) = self.next().await {
            seen.push(ev);
        }
        seen
    }
}

async fn meeting(app: &TestApp) -> String {
    meeting_with(app, coach_with_plan(), "Intro").await
}

/// The status changes the log carried (status events with an id).
fn logged_statuses(events: &[Ev]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.name == "status" && e.id.is_some())
        .map(|e| e.json()["status"].as_str().expect("status").to_owned())
        .collect()
}

/// What a reader learned, whatever the interleaving of lines and log
/// entries: the lines in order, and the log entries (entry id, event,
/// data) in order.
fn story(events: &[Ev]) -> (Vec<String>, Vec<(String, String, String)>) {
    let mut lines = Vec::new();
    let mut entries: Vec<(String, String, String)> = Vec::new();
    for e in logged(events) {
        if e.name == "line" {
            lines.push(e.data.clone());
        } else {
            let id = e.id.clone().expect("id");
            let entry = id.split_once('-').expect("cursor").1.to_owned();
            entries.push((entry, e.name.clone(), e.data.clone()));
        }
    }
    (lines, entries)
}

fn logged(events: &[Ev]) -> Vec<Ev> {
    events.iter().filter(|e| e.id.is_some()).cloned().collect()
}

#[tokio::test]
async fn the_stream_follows_a_call_from_its_lines_to_its_results_and_resumes_exactly() {
    each_backend(|_, url| async move {
        let peer = sim(|_| gated_call()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        let meeting = meeting(&app).await;

        let mut live = Sse::open(&app, &meeting, None).await;
        let first = live.next().await.expect("an event");
        assert_eq!(
            (first.name.as_str(), first.json()["status"].clone()),
            ("status", json!("upcoming"))
        );

        let call = start_call(&app, &meeting).await;
        // The first turn's two lines arrive while the call is live.
        let seen = live
            .until(|e| e.name == "line" && e.json()["sequence_number"] == 2)
            .await;
        assert!(
            seen.iter()
                .any(|e| e.name == "status" && e.json()["status"] == "active"),
            "{seen:#?}"
        );
        let lines: Vec<i64> = seen
            .iter()
            .filter(|e| e.name == "line")
            .map(|e| e.json()["sequence_number"].as_i64().expect("n"))
            .collect();
        assert_eq!(lines, [1, 2]);
        assert_eq!(status_now(&app, &meeting).await, "active");

        peer.open_gate("second");
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 4).await;
        end_call(&app, &call).await;
        let mut rest = live.rest().await;
        rest.splice(0..0, seen);
        let names: Vec<&str> = rest.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.last(), Some(&"end"), "{names:?}");
        let stages: Vec<String> = rest
            .iter()
            .filter(|e| e.name == "stage")
            .map(|e| e.json()["stage"].as_str().expect("stage").to_owned())
            .collect();
        for want in [
            "transcript_collected",
            "llm_attempt_started",
            "answer_received",
            "results_saved",
            "next_meeting_created",
        ] {
            assert!(
                stages.iter().any(|s| s == want),
                "{want} missing from {stages:?}"
            );
        }
        let statuses: Vec<String> = rest
            .iter()
            .filter(|e| e.name == "status")
            .map(|e| e.json()["status"].as_str().expect("s").to_owned())
            .collect();
        assert_eq!(statuses.last().map(String::as_str), Some("completed"));
        assert!(statuses.iter().any(|s| s == "processing"), "{statuses:?}");
        let done = rest
            .iter()
            .rev()
            .find(|e| e.name == "status")
            .expect("status")
            .json();
        assert!(
            done["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{done}"
        );
        // The next meeting as its page link, with its key; not its id.
        assert!(
            done["next_meeting_page"]
                .as_str()
                .is_some_and(|l| l.starts_with("/meetings/") && l.contains("?key=")),
            "{done}"
        );
        assert!(done.get("next_meeting_id").is_none(), "{done}");
        assert!(done["progress"].is_array(), "{done}");
        let all_lines: Vec<i64> = rest
            .iter()
            .filter(|e| e.name == "line")
            .map(|e| e.json()["sequence_number"].as_i64().expect("n"))
            .collect();
        assert_eq!(all_lines, [1, 2, 3, 4]);
        assert!(rest.iter().any(|e| e.name == "ended"));
        assert_eq!(
            logged_statuses(&rest),
            ["active", "processing", "completed"],
            "every change, in order, from the log"
        );

        // A completed meeting: its whole story at once, then the stream ends.
        let whole = Sse::open(&app, &meeting, None).await.rest().await;
        assert_eq!(
            story(&whole),
            story(&rest),
            "a fresh reader learns the same story"
        );
        assert_eq!(whole.last().map(|e| e.name.as_str()), Some("end"));

        // Resuming after any event gives exactly what followed it.
        let log = logged(&whole);
        for cut in [0, 1, 3, log.len() - 2, log.len() - 1] {
            let after = log[cut].id.clone().expect("id");
            let resumed = Sse::open(&app, &meeting, Some(&after)).await.rest().await;
            assert_eq!(
                logged(&resumed),
                log[cut + 1..].to_vec(),
                "resumed after {after}"
            );
            // The query form does the same (for a page that opens a new stream).
            let by_query = app
                .client
                .get(app.url(&format!(
                    "/api/meetings/{meeting}/events?last_event_id={after}"
                )))
                .bearer_auth(crate::helpers::API_TOKEN)
                .send()
                .await
                .expect("sent");
            let text = by_query.text().await.expect("body");
            let ids = text.lines().filter(|l| l.starts_with("id:")).count();
            assert_eq!(ids, log.len() - cut - 1, "{text}");
        }
    })
    .await;
}

async fn status_now(app: &TestApp, meeting: &str) -> String {
    let status = expect_json(
        app.get_authed(&format!("/api/meetings/{meeting}/status"))
            .await,
        StatusCode::OK,
    )
    .await;
    status["status"].as_str().expect("status").to_owned()
}

#[tokio::test]
async fn bad_stream_requests_get_a_clear_error() {
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |_| {}).await;
        let meeting = meeting(&app).await;
        let get = |path: String, last: Option<&'static str>| {
            let mut request = app
                .client
                .get(app.url(&path))
                .bearer_auth(crate::helpers::API_TOKEN);
            if let Some(id) = last {
                request = request.header("Last-Event-ID", id);
            }
            request.send()
        };
        let unknown = uuid::Uuid::new_v4();
        expect_error(
            get(format!("/api/meetings/{unknown}/events"), None)
                .await
                .expect("sent"),
            StatusCode::NOT_FOUND,
            "Meeting not found",
        )
        .await;
        expect_error(
            get("/api/meetings/not-a-uuid/events".into(), None)
                .await
                .expect("sent"),
            StatusCode::BAD_REQUEST,
            "",
        )
        .await;
        for bad in ["garbage", "1", "-1-2", "1-x"] {
            let answer = get(format!("/api/meetings/{meeting}/events"), Some(bad))
                .await
                .expect("sent");
            expect_error(answer, StatusCode::BAD_REQUEST, "Last-Event-ID").await;
        }
        expect_error(
            get(
                format!("/api/meetings/{meeting}/events?last_event_id=x"),
                None,
            )
            .await
            .expect("sent"),
            StatusCode::BAD_REQUEST,
            "Last-Event-ID",
        )
        .await;
        expect_error(
            get(format!("/api/meetings/{meeting}/events?since=1"), None)
                .await
                .expect("sent"),
            StatusCode::BAD_REQUEST,
            "since",
        )
        .await;
        // The page: unknown and malformed ids.
        let page = get(format!("/meetings/{unknown}"), None)
            .await
            .expect("sent");
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        let page = get("/meetings/nope".into(), None).await.expect("sent");
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        app.stop().await.expect("stopped");
    })
    .await;
}

#[tokio::test]
async fn the_page_capability_retries_its_own_meeting_and_nothing_else() {
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.analysis_policy.attempts = 1;
        })
        .await;
        app.llm.push_faults([LlmFault::ServerError]);
        let failing = meeting(&app).await;
        let other = meeting(&app).await;
        let call = start_call(&app, &failing).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &failing, 2).await;
        end_call(&app, &call).await;
        wait_for_status(&app.store, &failing, MeetingStatus::Failed).await;

        let page = app.page(&failing).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.expect("html");
        assert!(
            !html.contains(crate::helpers::API_TOKEN),
            "the API token never reaches a page"
        );
        let token = crate::running::page_capability(&html);
        let other_html = app.page(&other).await.text().await.expect("html");
        assert_ne!(
            crate::running::page_capability(&other_html),
            token,
            "each meeting has its own capability"
        );

        let retry = |meeting: String, token: String| {
            app.client
                .post(app.url(&format!("/api/meetings/{meeting}/retry")))
                .header("X-Meeting-Token", token)
                .send()
        };
        // Another meeting's key, garbage, nothing: refused, nothing changes.
        for bad in [
            crate::running::page_capability(&other_html),
            "zz".into(),
            "00".repeat(32),
            String::new(),
        ] {
            let answer = retry(failing.clone(), bad).await.expect("sent");
            // The same answer as for no meeting at all.
            assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        }
        assert_eq!(status_now(&app, &failing).await, "failed");
        let answer = retry(other.clone(), token.clone()).await.expect("sent");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        // Its own capability works.
        let answer = retry(failing.clone(), token).await.expect("sent");
        assert_eq!(
            expect_json(answer, StatusCode::ACCEPTED).await,
            json!({ "status": "processing" })
        );
        wait_for_status(&app.store, &failing, MeetingStatus::Completed).await;
        // The stream tells the whole story, the failure and the retry included.
        let story = Sse::open(&app, &failing, None).await.rest().await;
        assert_eq!(
            logged_statuses(&story),
            ["active", "processing", "failed", "processing", "completed"]
        );
    })
    .await;
}

#[tokio::test]
async fn a_problem_with_the_session_is_streamed_in_scribes_words_only() {
    use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
    use scribe_sim::script::Script;
    each_backend(|_, url| async move {
        let peer = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig {
                reject_session_update: Some("session.audio.input.transcription.model".into()),
                ..SimRealtimeConfig::scripted(|_| Script::hold())
            },
        )
        .await
        .expect("sim starts");
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        let meeting = meeting(&app).await;
        let mut stream = Sse::open(&app, &meeting, None).await;
        start_call(&app, &meeting).await;
        let seen = stream.until(|e| e.name == "problem").await;
        let problem = seen.last().expect("a problem").json();
        assert_eq!(
            problem["error"],
            "OpenAI Realtime refused scribe's session settings (session.update): invalid_value for `session.audio.input.transcription.model`"
        );
        assert!(
            !problem.to_string().contains("Invalid value for"),
            "the provider's own words stay in the log and /admin: {problem}"
        );
        drop(stream);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_line_cut_off_after_it_was_streamed_is_streamed_again_as_interrupted() {
    use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
    use scribe_sim::script::{Reply, Script, Step, Transcription, Turn};
    each_backend(|_, url| async move {
        let turn = Turn::numbered("call", 1, Transcription::Before)
            .ending(Reply::Truncated { audio_end_ms: 900 });
        let peer = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig::scripted(move |_| Script {
                steps: vec![Step::Turn(turn.clone()), Step::Hold],
            }),
        )
        .await
        .expect("sim starts");
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        let meeting = meeting(&app).await;
        let mut stream = Sse::open(&app, &meeting, None).await;
        start_call(&app, &meeting).await;
        let seen = stream.until(|e| e.name == "line_status").await;
        let change = seen.last().expect("a change").json();
        assert_eq!(change["sequence_number"], 2);
        assert_eq!(change["status"], "interrupted");
        assert_eq!(change["audio_end_ms"], 900);
        assert!(seen.last().expect("a change").id.is_some(), "resumable");
        drop(stream);
        app.stop().await.expect("clean stop");
    })
    .await;
}
