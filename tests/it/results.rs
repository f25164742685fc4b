//! Results at hang-up (issue 28), on both backends: running notes kept
//! during the call and read by the analysis instead of the lines they
//! cover; the summary streamed on the event stream as the model writes it
//! (a blueprint's `progressSummary` read out of its structured answer); a
//! stream cut off mid-answer retried, never saved; the tokens of every
//! request stored with the meeting and counted on `/metrics`.

use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_actors::notes::NotesConfig;
use scribe_sim::dialogues;
use scribe_sim::llm::{LatencyModel, LlmFault, Pace, SimLlm};
use scribe_sim::realtime::SimRealtime;
use scribe_sim::script::{Script, Step};
use scribe_sim::webhook::SimCall;
use serde_json::{Value, json};

use crate::event_stream::{Ev, Sse};
use crate::helpers::{TestApp, each_backend, expect_json, live_settings, spawn_app_with};
use crate::running::{
    DEADLINE, coach_with_plan, end_call, eventually, meeting_with, sim, start_call, wait_for_lines,
    wait_for_status,
};

/// Six exchanges of the tutoring dialogue, then `spoken`.
fn tutoring() -> Script {
    let mut script = Script::for_dialogue("tutoring", &dialogues::TUTORING, 6);
    // `for_dialogue` ends with its done mark and a hold: mark `spoken` too.
    script
        .steps
        .insert(script.steps.len() - 1, Step::Mark("spoken".into()));
    script
}

/// A model quick enough for tests that still streams in several chunks.
async fn quick_model() -> SimLlm {
    let model = LatencyModel {
        first_token: Duration::from_millis(20),
        prompt_tokens_per_sec: 200_000.0,
        output_tokens_per_sec: 2_000.0,
    };
    SimLlm::start_paced(([127, 0, 0, 1], 0).into(), Pace::Model(model))
        .await
        .expect("sim llm starts")
}

/// The `analysis_delta` events of `attempt`, joined, each at its offset.
fn written(events: &[Ev], attempt: u64) -> String {
    let mut text = String::new();
    for delta in events
        .iter()
        .filter(|e| e.name == "analysis_delta")
        .map(Ev::json)
        .filter(|d| d["attempt"] == attempt)
    {
        assert_eq!(
            delta["offset"].as_u64(),
            Some(text.chars().count() as u64),
            "each delta follows the text before it: {delta}"
        );
        text.push_str(delta["text"].as_str().expect("text"));
    }
    text
}

/// A server whose model is [`quick_model`] and whose peer plays
/// [`tutoring`], with notes as `notes` says, and a meeting `name` for
/// `agent`.
struct Rig {
    app: TestApp,
    llm: SimLlm,
    peer: SimRealtime,
    meeting: String,
}

async fn rig(url: &str, agent: Value, name: &str, notes: NotesConfig) -> Rig {
    let peer = sim(|_| tutoring()).await;
    let realtime = peer.url();
    let llm = quick_model().await;
    let base = llm.base_url();
    let app = spawn_app_with(url, |s| {
        live_settings(s, &realtime);
        s.openai_base_url = base;
        s.notes = notes;
    })
    .await;
    let meeting = meeting_with(&app, agent, name).await;
    Rig {
        app,
        llm,
        peer,
        meeting,
    }
}

impl Rig {
    /// Starts the call and waits until all of it is said and stored.
    async fn talk(&self) -> SimCall {
        let call = start_call(&self.app, &self.meeting).await;
        assert!(self.peer.wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&self.app.store, &self.meeting, 12).await;
        call
    }

    /// Hangs up and waits for the results; the whole event stream then.
    async fn hang_up(&self, call: &SimCall) -> (Vec<Ev>, Value) {
        end_call(&self.app, call).await;
        wait_for_status(&self.app.store, &self.meeting, MeetingStatus::Completed).await;
        let events = Sse::open(&self.app, &self.meeting, None).await.rest().await;
        let saved = expect_json(
            self.app
                .get_authed(&format!("/api/meetings/{}", self.meeting))
                .await,
            StatusCode::OK,
        )
        .await;
        (events, saved)
    }
}

fn maya() -> Value {
    json!({ "name": "Maya", "instructions": "Tutor." })
}

async fn usage(app: &TestApp, meeting: &str) -> Value {
    expect_json(
        app.get_authed(&format!("/api/meetings/{meeting}/usage"))
            .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn notes_follow_the_call_and_the_analysis_reads_them_instead_of_the_lines_they_cover() {
    each_backend(|_, url| async move {
        let rig = rig(
            &url,
            maya(),
            "Fractions",
            scribe::config::notes_config(4, 1),
        )
        .await;
        let (app, llm, meeting) = (&rig.app, &rig.llm, rig.meeting.clone());
        let mut stream = Sse::open(app, &meeting, None).await;
        let call = start_call(app, &meeting).await;
        // Notes arrive on the stream while the call runs.
        let seen = stream.until(|e| e.name == "notes").await;
        let first = seen.last().expect("notes").json();
        assert_eq!(first["version"], 1);
        assert!(
            first["through_line"].as_i64().is_some_and(|n| n >= 4),
            "{first}"
        );
        assert!(
            first["text"].as_str().is_some_and(|t| t.contains("Maya")),
            "notes of the conversation: {first}"
        );
        assert!(rig.peer.wait_for_mark("spoken", DEADLINE).await);
        let lines = wait_for_lines(&app.store, &meeting, 12).await;
        // The notes catch up with the call (every 4 lines, or a second after
        // the last update for the lines left).
        let notes = eventually("the notes through line 12", || async {
            let view = expect_json(
                app.get_authed(&format!("/api/meetings/{meeting}/notes"))
                    .await,
                StatusCode::OK,
            )
            .await;
            (view["notes"]["through_line"] == 12).then_some(view["notes"].clone())
        })
        .await;
        assert!(notes["version"].as_i64().is_some_and(|v| v >= 2), "{notes}");
        end_call(app, &call).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;

        // Each notes update read the notes so far and only the lines after
        // them; the analysis read the notes and nothing they cover.
        let prompts: Vec<(String, String)> = llm
            .requests()
            .iter()
            .map(|r| {
                let system = r.body["messages"][0]["content"]
                    .as_str()
                    .unwrap_or_default();
                let user = r.body["messages"][1]["content"]
                    .as_str()
                    .unwrap_or_default();
                (system.to_owned(), user.to_owned())
            })
            .collect();
        let (notes_prompts, analysis): (Vec<_>, Vec<_>) = prompts
            .iter()
            .partition(|(system, _)| system.contains("running notes"));
        assert!(notes_prompts.len() >= 2, "{prompts:#?}");
        let first_line = &lines[0].text;
        assert!(notes_prompts[0].1.contains(first_line.as_str()));
        for (_, later) in &notes_prompts[1..] {
            assert!(later.contains("NOTES SO FAR (lines 1-"), "{later}");
            assert!(
                !later.contains(first_line.as_str()),
                "a later update re-read line 1: {later}"
            );
        }
        assert_eq!(analysis.len(), 1, "{prompts:#?}");
        let prompt = &analysis[0].1;
        assert!(prompt.contains("NOTES (lines 1-12):"), "{prompt}");
        assert!(prompt.contains("(nothing after the notes)"), "{prompt}");
        assert!(!prompt.contains(first_line.as_str()), "{prompt}");

        // The tokens of every request, with the meeting and on /metrics.
        let used = usage(app, &meeting).await;
        let by = |purpose: &str| {
            used["by_purpose"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["purpose"] == purpose))
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(by("analysis")["requests"], 1, "{used}");
        assert_eq!(
            by("notes")["requests"].as_u64(),
            Some(notes_prompts.len() as u64),
            "{used}"
        );
        assert_eq!(by("notes")["model"], "gpt-6-luna");
        for line in ["notes", "analysis"] {
            assert!(
                by(line)["prompt_tokens"].as_u64().is_some_and(|t| t > 50),
                "{used}"
            );
            assert!(
                by(line)["completion_tokens"]
                    .as_u64()
                    .is_some_and(|t| t > 10),
                "{used}"
            );
        }
        assert_eq!(
            used["prompt_tokens"].as_u64(),
            Some(
                by("notes")["prompt_tokens"].as_u64().unwrap_or(0)
                    + by("analysis")["prompt_tokens"].as_u64().unwrap_or(0)
            )
        );
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        for purpose in ["notes", "analysis"] {
            assert!(
                metrics
                    .lines()
                    .any(|l| l.starts_with("scribe_llm_tokens_total")
                        && l.contains(&format!("purpose=\"{purpose}\""))
                        && l.contains("kind=\"completion\"")),
                "{purpose} tokens on /metrics"
            );
        }
        // A page key does not open the costs.
        let key = app.page_key(&meeting).await;
        let answer = app
            .get(&format!("/api/meetings/{meeting}/usage?key={key}"))
            .await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn the_summary_streams_as_it_is_written_and_a_stream_cut_off_is_retried_never_saved() {
    each_backend(|_, url| async move {
        let rig = rig(&url, maya(), "Fractions", NotesConfig::OFF).await;
        let call = rig.talk().await;
        // Notes are off: the first request is the analysis; its stream
        // breaks off half way.
        rig.llm.push_faults([LlmFault::Severed]);
        let (events, saved) = rig.hang_up(&call).await;
        let summary = saved["summary"].as_str().expect("summary");
        let cut = written(&events, 1);
        let whole = written(&events, 2);
        assert!(!cut.is_empty() && cut.len() < summary.len(), "{cut:?}");
        assert_eq!(
            whole.trim(),
            summary,
            "the page saw the saved answer as it was written"
        );
        let deltas = events.iter().filter(|e| e.name == "analysis_delta").count();
        assert!(deltas >= 3, "the summary came in pieces: {deltas}");
        let failed: Vec<Value> = events
            .iter()
            .filter(|e| e.name == "stage")
            .map(Ev::json)
            .filter(|s| s["stage"] == "llm_attempt_failed")
            .collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0]["error"], "the answer's stream broke off");
        // Both attempts' tokens? The cut one reported none (no usage chunk).
        assert_eq!(usage(&rig.app, &rig.meeting).await["requests"], 1);
    })
    .await;
}

#[tokio::test]
async fn a_blueprint_analysis_streams_its_progress_summary_not_its_json() {
    each_backend(|_, url| async move {
        let rig = rig(&url, coach_with_plan(), "Intro", NotesConfig::OFF).await;
        let call = rig.talk().await;
        let (events, saved) = rig.hang_up(&call).await;
        let streamed = written(&events, 1);
        assert!(
            !streamed.contains("updatedProgress") && !streamed.starts_with('{'),
            "{streamed}"
        );
        assert_eq!(Some(streamed.as_str()), saved["summary"].as_str());
        assert_eq!(saved["progress"][0]["status"], "completed");
        // Structured Outputs, strict, streamed.
        let request = &rig.llm.requests()[0].body;
        assert_eq!(request["response_format"]["json_schema"]["strict"], true);
        assert_eq!(request["stream"], true);
    })
    .await;
}

#[tokio::test]
async fn notes_are_saved_only_forward_and_only_while_the_call_is_active() {
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |_| {}).await;
        let meeting = meeting_with(&app, maya(), "Fractions").await;
        let id: scribe_actors::ids::MeetingId = meeting.parse().expect("id");
        let store = &app.store;
        assert_eq!(
            store.save_notes(id, "early", 3).await.expect("store"),
            None,
            "an upcoming call has no notes"
        );
        crate::running::force_active(store, id).await;
        let first = store.save_notes(id, "a", 10).await.expect("store");
        assert_eq!(first.map(|n| n.version), Some(1));
        for (text, line) in [("again", 10), ("back", 5)] {
            assert_eq!(store.save_notes(id, text, line).await.expect("store"), None);
        }
        let second = store.save_notes(id, "b", 12).await.expect("store");
        assert_eq!(second.map(|n| (n.version, n.through_line)), Some((2, 12)));
        let view = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}/notes"))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            (&view["notes"]["text"], &view["notes"]["through_line"]),
            (&json!("b"), &json!(12))
        );
        let logged: Vec<Value> = store
            .events(id)
            .await
            .expect("store")
            .into_iter()
            .filter(|e| e.kind == scribe_actors::domain::EventKind::NotesUpdated)
            .map(|e| e.detail)
            .collect();
        assert_eq!(logged.len(), 2, "one log entry per save: {logged:?}");
    })
    .await;
}
