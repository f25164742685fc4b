//! A meeting's downloads from its page, and the page of a meeting deleted
//! while it is open (issue 29).

use super::*;

#[tokio::test]
async fn the_page_offers_the_transcript_downloads_and_says_when_the_meeting_is_deleted() {
    use scribe_sim::script::{Script, Step, Transcription, Turn};
    let db = helpers::TestDb::create(helpers::Backend::Sqlite).await;
    let script = Script {
        steps: vec![
            Step::Turn(Turn::numbered("call", 1, Transcription::Before)),
            Step::Mark("spoken".into()),
            Step::Hold,
        ],
    };
    let peer = sim(move |_| script.clone()).await;
    let realtime = peer.url();
    let app = spawn_app_with(&db.url, |s| live_settings(s, &realtime)).await;
    let meeting = meeting(&app).await;
    let browser = Browser::start().await;
    browser.open(&app, &meeting).await;
    start_call(&app, &meeting).await;
    assert!(peer.wait_for_mark("spoken", DEADLINE).await);
    browser
        .until(
            "the call's lines",
            "document.getElementById('line-2') !== null",
        )
        .await;
    // Each download link fetches the transcript in its format with the
    // page's key (the browser, as a person clicking it would).
    let fetched = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const links = [...document.querySelectorAll('#downloads a')];
             Promise.all(links.map(async (a) => {
               const answer = await fetch(a.href);
               return [a.textContent, answer.status, answer.headers.get('content-type'), await answer.text()];
             })).then(done, (e) => done(String(e)));",
            Vec::new(),
        )
        .await
        .expect("fetched");
    let fetched = fetched.as_array().expect("answers").clone();
    let kinds: Vec<(String, i64, String)> = fetched
        .iter()
        .map(|f| {
            (
                f[0].as_str().expect("label").to_owned(),
                f[1].as_i64().expect("status"),
                f[2].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "Text".to_owned(),
                200,
                "text/plain; charset=utf-8".to_owned()
            ),
            (
                "Markdown".to_owned(),
                200,
                "text/markdown; charset=utf-8".to_owned()
            ),
            (
                "Subtitles (WebVTT)".to_owned(),
                200,
                "text/vtt; charset=utf-8".to_owned()
            ),
            ("JSON".to_owned(), 200, "application/json".to_owned()),
        ]
    );
    assert!(fetched[2][3].as_str().expect("vtt").starts_with("WEBVTT\n"));
    assert!(
        fetched[0][3]
            .as_str()
            .expect("text")
            .contains("User: call user line 1")
    );
    browser.assert_healthy().await;
    browser.screenshot("14-downloads.png").await;

    // Deleted while the page is open: the page says so and shows nothing of it.
    let answer = app
        .client
        .delete(app.url(&format!("/api/meetings/{meeting}")))
        .bearer_auth(helpers::API_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    browser
        .until(
            "the page to say deleted",
            "document.body.dataset.status === 'deleted'",
        )
        .await;
    assert!(
        browser
            .text("transcript-empty")
            .await
            .contains("was deleted")
    );
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#transcript li').length")
            .await,
        json!(0)
    );
    browser.assert_healthy().await;
    browser.screenshot("15-deleted.png").await;
    browser.close().await;
    app.stop().await.expect("clean stop");
    db.destroy().await;
}
