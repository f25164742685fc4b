//! The page starting and hanging up calls (Realtime and GPT-Live), and the holes of a re-attach.

use super::*;

/// A call started from the page: Chromium's fake microphone, a real
/// WebRTC connection to the simulated OpenAI (whose conversation starts on
/// the first audio packet), live lines, Hang up, then the analysis.
#[tokio::test]
async fn start_call_from_the_page_connects_shows_live_lines_and_hang_up_completes_it() {
    page_call(VoiceApi::Realtime).await;
}

/// The same under GPT-Live: lines appear once sealed (a line's place is
/// final when the other side has spoken after it), the rest at Hang up.
#[tokio::test]
async fn start_call_from_the_page_works_the_same_under_gpt_live() {
    page_call(VoiceApi::Live).await;
}

async fn page_call(api: VoiceApi) {
    use scribe_sim::carried::{CallsConfig, EndedAnswer, StartOn};
    use scribe_sim::realtime::SimRealtimeConfig;
    use scribe_sim::script::{Script, Step, Transcription, Turn};
    let shot = |name: &str| match api {
        VoiceApi::Realtime => name.to_owned(),
        VoiceApi::Live => format!("live-{name}"),
    };
    // Realtime stores each line as it ends; GPT-Live seals the second turn
    // only when something follows it (here: Hang up).
    let live_lines = match api {
        VoiceApi::Realtime => 4,
        VoiceApi::Live => 2,
    };
    helpers::each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |s| {
            live_settings(s, "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime");
            s.openai_api_key = Some("sk-sim-browser".into());
            s.voice_api = api;
        })
        .await;
        app.llm.calls().configure(CallsConfig {
            realtime: SimRealtimeConfig::scripted(|_| Script {
                steps: (1..=2)
                    .map(|n| Step::Turn(Turn::numbered("call", n, Transcription::Before)))
                    .chain([Step::Mark("spoken".into()), Step::Hold])
                    .collect(),
            }),
            start: StartOn::Audio,
            ended: EndedAnswer::NotFound,
            api_key: Some("sk-sim-browser".into()),
        });
        app.llm
            .push_faults([LlmFault::Stall(Duration::from_millis(1500))]);
        let meeting = meeting(&app).await;
        let browser = Browser::start_with(&[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            "--allow-loopback-in-peer-connection",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .await;
        browser.open(&app, &meeting).await;
        browser
            .until("the Start call button", &VISIBLE("start-call"))
            .await;
        assert_eq!(browser.text("call-state").await, "Not started");
        browser.assert_healthy().await;
        browser.screenshot(&shot("7-start-call.png")).await;

        browser.click("start-call").await;
        browser
            .until(
                "connected (ICE over loopback)",
                "document.getElementById('call').dataset.state === 'connected'",
            )
            .await;
        browser
            .until(
                "the live lines",
                &format!("document.getElementById('line-{live_lines}') !== null"),
            )
            .await;
        assert!(browser.text("line-1").await.contains("call user line 1"));
        assert!(browser.text("line-2").await.contains("call agent reply 1"));
        assert_eq!(browser.text("call-state").await, "Connected");
        // The agent's audio plays: a live remote track on the audio element.
        let playing = browser
            .js("const s = document.getElementById('agent-audio').srcObject;
                 return s !== null && s.getAudioTracks().some(t => t.readyState === 'live')")
            .await;
        assert_eq!(playing, json!(true));
        let record = app.get_authed(&format!("/api/meetings/{meeting}")).await;
        let record: Value = record.json().await.expect("json");
        assert_eq!(record["transport"], "webrtc");
        assert_eq!(record["voice_api"], api.as_str());
        let call_id = record["provider_call_id"]
            .as_str()
            .expect("call id")
            .to_owned();
        let call = app.llm.calls().call(&call_id).expect("the call at OpenAI");
        assert!(
            call.media.borrow().received > 0,
            "OpenAI heard the microphone"
        );
        browser.assert_healthy().await;
        browser.screenshot(&shot("8-call-connected.png")).await;

        browser.click("hang-up").await;
        browser
            .until(
                "processing after Hang up",
                "document.body.dataset.status === 'processing'",
            )
            .await;
        // Realtime with OpenAI's REST hang-up; a GPT-Live WebRTC session
        // with `session.close` on the sideband.
        let how = match api {
            VoiceApi::Realtime => "hangup",
            VoiceApi::Live => "session.close",
        };
        assert_eq!(
            running::ended_at_openai(&call).await,
            how,
            "hung up at OpenAI"
        );
        assert_eq!(browser.text("call-state").await, "Ended");
        browser.screenshot(&shot("9-call-ended.png")).await;
        browser.until("the results", &VISIBLE("results")).await;
        assert_eq!(
            browser.js("return document.body.dataset.status").await,
            json!("completed")
        );
        browser
            .until(
                "all four lines",
                "document.getElementById('line-4') !== null",
            )
            .await;
        assert!(browser.text("line-4").await.contains("call agent reply 2"));
        browser.assert_healthy().await;
        browser.close().await;
        app.stop().await.expect("stopped");
    })
    .await;
}

/// A call OpenAI carries, its sideband dropped while a turn is said: the
/// reply fetched back appears in its place and the page marks, between the
/// lines on either side, where lines may be missing.
#[tokio::test]
async fn a_possible_hole_after_a_re_attach_is_marked_between_its_lines() {
    use scribe_sim::carried::{CallsConfig, EndedAnswer, StartOn, media};
    use scribe_sim::realtime::SimRealtimeConfig;
    let db = helpers::TestDb::create(helpers::Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |s| {
        live_settings(s, "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime");
        s.openai_api_key = Some("sk-sim-browser".into());
    })
    .await;
    app.llm.calls().configure(CallsConfig {
        realtime: SimRealtimeConfig::scripted(|_| running::away_script()),
        start: StartOn::Attach,
        ended: EndedAnswer::NotFound,
        api_key: None,
    });
    let calls = app.llm.calls().clone();
    let meeting = meeting(&app).await;
    let browser = Browser::start().await;
    browser.open(&app, &meeting).await;
    let (offer, _caller) = media::offer().await.expect("an offer");
    let created = app
        .client
        .post(app.url(&format!("/api/meetings/{meeting}/call")))
        .bearer_auth(helpers::API_TOKEN)
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    assert!(calls.wait_for_mark("one", DEADLINE).await);
    browser
        .until("turn 1", "document.getElementById('line-2') !== null")
        .await;
    let call_id = calls.all().last().expect("the call").id.clone();
    calls.block_attaches(true);
    assert!(calls.drop_sidebands(&call_id));
    calls.open_gate("two");
    assert!(calls.wait_for_mark("two", DEADLINE).await);
    calls.block_attaches(false);
    let call = calls.call(&call_id).expect("the call");
    running::eventually("scribe to attach again", || async {
        (call.attaches.load(std::sync::atomic::Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    calls.open_gate("three");
    assert!(calls.wait_for_mark("three", DEADLINE).await);
    browser
        .until(
            "the hole between line 2 and the fetched line 3",
            "(() => { const h = document.querySelector('#transcript li.hole');
                      return h && h.previousElementSibling.id === 'line-2'
                               && h.nextElementSibling.id === 'line-3'; })()",
        )
        .await;
    assert!(
        browser.text("line-3").await.contains("call agent reply 2"),
        "the missed reply, fetched back, in its place"
    );
    let hole = browser
        .js("return document.querySelector('#transcript li.hole').textContent")
        .await;
    assert!(
        hole.as_str()
            .is_some_and(|t| t.starts_with("Lines may be missing here")),
        "{hole}"
    );
    browser
        .until("turn 3", "document.getElementById('line-5') !== null")
        .await;
    browser.assert_healthy().await;
    browser.screenshot("10-hole.png").await;
    browser.close().await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}
