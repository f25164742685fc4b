//! Results at hang-up on the page: the running notes during the call, the
//! summary as the model writes it, then the results with the plan's
//! progress in words.

use super::*;

/// Eight exchanges of the tutoring dialogue, then `spoken`.
fn tutoring() -> scribe_sim::script::Script {
    use scribe_sim::script::{Script, Step};
    let mut script = Script::for_dialogue("tutoring", &scribe_sim::dialogues::TUTORING, 8);
    script
        .steps
        .insert(script.steps.len() - 1, Step::Mark("spoken".into()));
    script
}

#[tokio::test]
async fn the_page_shows_notes_during_the_call_then_the_summary_as_it_is_written_then_the_results() {
    use scribe_sim::llm::{LatencyModel, Pace, SimLlm};
    let db = helpers::TestDb::create(helpers::Backend::Sqlite).await;
    let peer = sim(|_| tutoring()).await;
    let realtime = peer.url();
    // A model slow enough to watch it write (about 40 tokens a second).
    let llm = SimLlm::start_paced(
        ([127, 0, 0, 1], 0).into(),
        Pace::Model(LatencyModel {
            first_token: Duration::from_millis(300),
            prompt_tokens_per_sec: 50_000.0,
            output_tokens_per_sec: 40.0,
        }),
    )
    .await
    .expect("sim llm starts");
    let base = llm.base_url();
    let app = spawn_app_with(&db.url, |s| {
        live_settings(s, &realtime);
        s.openai_base_url = base;
        s.notes = scribe::config::notes_config(6, 1);
    })
    .await;
    let plan = json!({
        "name": "Maya",
        "instructions": "Tutor the student, one step at a time.",
        "blueprint": { "sessions": [
            { "session_name": "Fractions", "goals": ["Add fractions"] },
            { "session_name": "Ratios", "goals": ["Scale a recipe"] }
        ]}
    });
    let meeting = meeting_with(&app, plan, "Fractions").await;
    let browser = Browser::start().await;
    browser.open(&app, &meeting).await;
    let call = start_call(&app, &meeting).await;
    browser
        .until(
            "the notes during the call",
            "!document.getElementById('notes').hidden && document.getElementById('notes-text').textContent.includes('Maya')",
        )
        .await;
    assert_eq!(
        browser.js("return document.body.dataset.status").await,
        json!("active")
    );
    assert!(
        browser
            .text("notes-covers")
            .await
            .starts_with("Covers the conversation up to line ")
    );
    browser.assert_healthy().await;
    browser.screenshot("11-notes-during-call.png").await;

    assert!(peer.wait_for_mark("spoken", DEADLINE).await);
    wait_for_lines(&app.store, &meeting, 16).await;
    end_call(&app, &call).await;
    browser
        .until(
            "the summary being written",
            "document.body.dataset.status === 'processing' && !document.getElementById('draft').hidden \
             && document.getElementById('draft-text').textContent.length > 120",
        )
        .await;
    let draft = browser.text("draft-text").await;
    browser.assert_healthy().await;
    browser.screenshot("12-summary-streaming.png").await;

    browser.until("the results", &VISIBLE("results")).await;
    let summary = browser.text("summary").await;
    assert!(
        summary.starts_with(draft.trim_end()),
        "the saved summary is what was being written: {draft:?} / {summary:?}"
    );
    let sessions = browser
        .js("return [...document.querySelectorAll('#plan-sessions li')].map(li => li.textContent)")
        .await;
    let sessions: Vec<&str> = sessions
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        sessions[0].starts_with("Fractions \u{2014} done."),
        "{sessions:?}"
    );
    assert!(
        sessions[1].starts_with("Ratios \u{2014} not started yet"),
        "{sessions:?}"
    );
    assert!(
        sessions.iter().all(|s| !s.contains('_')),
        "no machine words: {sessions:?}"
    );
    for hidden in ["progress", "notes"] {
        assert_eq!(
            browser
                .js(&format!(
                    "return document.getElementById('{hidden}').hidden"
                ))
                .await,
            json!(true),
            "{hidden} gives way to the results"
        );
    }
    browser.assert_healthy().await;
    browser.screenshot("13-results-after-notes.png").await;
    browser.close().await;
}
