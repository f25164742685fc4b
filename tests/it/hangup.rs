//! `POST /api/meetings/{id}/hangup` on a phone call: OpenAI's REST hang-up,
//! on the API the call runs on, made by the call's actor once it stopped
//! listening for the sideband's end, so nothing re-attaches. (Browser calls:
//! `calls::a_browser_call_is_created_at_openai_attached_recorded_and_hung_up`
//! for Realtime, `voice_live::a_live_browser_call_re_attached_after_a_drop_records_the_gap`
//! for GPT-Live, which ends with `session.close`.)

use reqwest::StatusCode;
use scribe_actors::domain::{MeetingStatus, VoiceApi};
use scribe_sim::carried::{CallsConfig, EndedAnswer, StartOn};
use scribe_sim::openai_webhook::OpenAiWebhooks;
use scribe_sim::realtime::SimRealtimeConfig;
use scribe_sim::script::{Script, Step, Transcription, Turn};
use serde_json::json;

use crate::carried_calls::{OPENAI_KEY, WEBHOOK_SECRET};
use crate::helpers::{each_backend, expect_json, live_settings, spawn_app_with};
use crate::running::{
    DEADLINE, after_hang_up, ended_at_openai, hang_up, transcript, wait_for_lines, wait_for_status,
};

#[tokio::test]
async fn a_phone_call_is_hung_up_at_openai_on_its_api_and_nothing_re_attaches() {
    each_backend(|_, url| async move {
        for (api, number) in [
            (VoiceApi::Realtime, "+18005550101"),
            (VoiceApi::Live, "+18005550102"),
        ] {
            let app = spawn_app_with(&url, |s| {
                live_settings(s, "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime-2.1");
                s.voice_api = api;
                s.openai_api_key = Some(OPENAI_KEY.into());
                s.openai_webhook_secret = Some(WEBHOOK_SECRET.into());
            })
            .await;
            app.llm.calls().configure(CallsConfig {
                realtime: SimRealtimeConfig::scripted(|_| Script {
                    steps: vec![
                        Step::Turn(Turn::numbered("phone", 1, Transcription::Before)),
                        Step::Mark("spoken".into()),
                        Step::Hold,
                    ],
                }),
                start: StartOn::Attach,
                ended: EndedAnswer::NotFound,
                api_key: Some(OPENAI_KEY.into()),
            });
            app.create_agent(
                json!({"name":"Desk","instructions":"Answer kindly.","phone_numbers":[number]}),
            )
            .await;
            let key = scribe::openai::webhook::secret_key(WEBHOOK_SECRET).expect("secret");
            let hooks = OpenAiWebhooks::new(&app.url("/api/openai/webhook"), &key);
            let calls = app.llm.calls().clone();
            let (id, event) = match api {
                VoiceApi::Realtime => {
                    let id = calls.ring();
                    let event = OpenAiWebhooks::incoming_call(&id, "+14155550123", number);
                    (id, event)
                }
                VoiceApi::Live => {
                    let id = calls.ring_live();
                    let event = OpenAiWebhooks::incoming_live(&id, "+14155550123", number);
                    (id, event)
                }
            };
            let accepted =
                expect_json(hooks.send(&event).await.expect("sent"), StatusCode::OK).await;
            assert_eq!(accepted["status"], "accepted", "{api:?}");
            let meeting = accepted["meeting_id"].as_str().expect("meeting").to_owned();
            assert!(calls.wait_for_mark("spoken", DEADLINE).await);
            if api == VoiceApi::Realtime {
                wait_for_lines(&app.store, &meeting, 2).await;
            }

            let answer = expect_json(hang_up(&app, &meeting).await, StatusCode::ACCEPTED).await;
            assert_eq!(answer["ended"], "attached_call", "{api:?}");
            let call = calls.call(&id).expect("the call at OpenAI");
            assert_eq!(ended_at_openai(&call).await, "hangup", "{api:?}");
            wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
            // GPT-Live seals its last lines on `session.closed`.
            assert_eq!(transcript(&app.store, &meeting).await.len(), 2, "{api:?}");
            let (hung_up, after) = after_hang_up(&app.store, &meeting).await;
            assert_eq!(hung_up, json!({"how":"hangup","confirmed":true}), "{api:?}");
            assert!(
                !after.iter().any(|k| k == "socket_reconnecting"),
                "{api:?}: nothing re-attaches after scribe's hang-up: {after:?}"
            );
            assert_eq!(
                call.attaches.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "{api:?}"
            );
            app.stop().await.expect("clean stop");
        }
    })
    .await;
}
