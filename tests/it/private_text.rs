//! What is for operators only (a provider's own words: `Private` in the
//! typed event log) reaches `/admin` and never a public answer or stream:
//! the meeting, its status, its transcript and its page for a page-link
//! holder, and the page's event stream.

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::script::{Script, Step, Transcription, Turn};

use crate::helpers::{ADMIN_TOKEN, each_backend, expect_json, spawn_app_with};
use crate::running::{DEADLINE, end_call, new_meeting, sim, start_call, wait_for_status};

/// The provider's words, in every place scribe keeps them.
const WORDS: &str = "provider-words-7f3a";

fn script() -> Script {
    let refused = format!(
        r#"{{"type":"error","event_id":"evt_1","error":{{"type":"invalid_request_error","code":"invalid_value","message":"{WORDS} in a refusal","param":"session.audio.input.transcription.model","event_id":"scribe_session_update"}}}}"#
    );
    Script {
        steps: vec![
            Step::Turn(Turn::numbered("call", 1, Transcription::Before)),
            Step::Raw(refused),
            Step::Error {
                code: "server_error".into(),
                message: format!("{WORDS} in an error"),
            },
            Step::Mark("said".into()),
            Step::Hold,
        ],
    }
}

#[tokio::test]
async fn the_providers_words_reach_admin_and_no_public_answer_or_stream() {
    each_backend(|_, url| async move {
        let peer = sim(|_| script()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| crate::helpers::live_settings(s, &realtime)).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("said", DEADLINE).await);
        // The refusal is on the meeting, in scribe's words.
        crate::running::eventually("the refusal shown", || async {
            let status = app
                .get_authed(&format!("/api/meetings/{meeting}/status"))
                .await
                .json::<serde_json::Value>()
                .await
                .ok()?;
            status["error"].is_string().then_some(())
        })
        .await;
        // Every log entry of the session is stored before anything is read.
        crate::running::eventually("the error logged", || async {
            let events = app.store.events(meeting.parse().ok()?).await.ok()?;
            events
                .iter()
                .any(|e| e.kind == scribe_actors::domain::EventKind::RealtimeError)
                .then_some(())
        })
        .await;

        let key = app.page_key(&meeting).await;
        // The meeting as the API token's holder reads it (an app shows it
        // to its users), then what a page link opens.
        let shown = app.get_authed(&format!("/api/meetings/{meeting}")).await;
        assert_eq!(shown.status(), StatusCode::OK);
        let mut public = vec![shown.text().await.expect("body")];
        for path in ["/status", "/transcript"] {
            let answer = app
                .client
                .get(app.url(&format!("/api/meetings/{meeting}{path}")))
                .header("x-meeting-token", &key)
                .send()
                .await
                .expect("sent");
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            public.push(answer.text().await.expect("body"));
        }
        public.push(app.page(&meeting).await.text().await.expect("page"));
        end_call(&app, &call).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let streamed = crate::security::stream_until(&app, &meeting, "event: end").await;
        public.push(streamed);
        for answer in &public {
            assert!(
                !answer.contains(WORDS),
                "a public answer carries the provider's words: {answer}"
            );
        }
        assert!(
            public
                .iter()
                .any(|a| a.contains("refused scribe's session settings")),
            "the public side says what happened, in scribe's words"
        );

        // `/admin` has all of it, for the operator.
        let admin = expect_json(
            app.client
                .get(app.url(&format!("/admin/meetings/{meeting}")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("sent"),
            StatusCode::OK,
        )
        .await
        .to_string();
        for said in ["in a refusal", "in an error"] {
            assert!(
                admin.contains(&format!("{WORDS} {said}")),
                "{said}: {admin}"
            );
        }
        app.stop().await.expect("clean stop");
    })
    .await;
}
