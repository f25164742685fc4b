//! The transcript as a download: plain text, Markdown and WebVTT, with
//! speakers and times and the page's marks. The WebVTT files written here
//! (`$CARGO_TARGET_TMPDIR/export-samples`) are parsed by `webvtt-py` in CI
//! (`scripts/check_vtt.py`), a parser nobody here wrote.

use scribe::http::export;
use scribe_actors::domain::{ChunkStatus, VoiceApi};
use scribe_sim::carried::StartOn;

use super::*;

/// Where the WebVTT samples go for the CI check.
pub fn samples() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-samples");
    std::fs::create_dir_all(&dir).expect("samples folder");
    dir
}

async fn download(app: &TestApp, meeting: &str, query: &str) -> (String, String, String) {
    let response = app
        .get(&format!("/api/meetings/{meeting}/transcript?{query}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (kind, disposition) = (header("content-type"), header("content-disposition"));
    (kind, disposition, response.text().await.expect("body"))
}

fn cues(vtt: &str) -> usize {
    vtt.lines().filter(|l| l.contains(" --> ")).count()
}

#[tokio::test]
async fn a_realtime_calls_transcript_downloads_as_text_markdown_and_webvtt() {
    each_backend(|backend, url| async move {
        let script = Script {
            steps: vec![Step::Turn(turn(1)), Step::Turn(turn(2))],
        };
        let expected = script.expected_lines();
        let peer = sim(move |_| script.clone()).await;
        let app = crate::running::live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let key = app.page_key(&meeting).await;
        let call = start_call(&app, &meeting).await;
        wait_for_lines(&app.store, &meeting, 4).await;
        crate::running::end_call(&app, &call).await;

        let (kind, disposition, text) =
            download(&app, &meeting, &format!("format=txt&key={key}")).await;
        assert_eq!(kind, "text/plain; charset=utf-8");
        assert_eq!(
            disposition,
            format!("attachment; filename=\"transcript-{meeting}.txt\"")
        );
        let said: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(said.len(), 4, "{text}");
        for (line, sent) in said.iter().zip(&expected) {
            let who = if sent.speaker.as_str() == "user" {
                "User"
            } else {
                "Agent"
            };
            assert!(line.ends_with(&format!("] {who}: {}", sent.text)), "{line}");
        }
        let (kind, _, md) = download(&app, &meeting, &format!("format=md&key={key}")).await;
        assert_eq!(kind, "text/markdown; charset=utf-8");
        assert!(md.starts_with("# Transcript: Call\n"), "{md}");
        assert_eq!(
            md.matches("**User**").count() + md.matches("**Agent**").count(),
            4
        );
        let (kind, _, vtt) = download(&app, &meeting, &format!("format=vtt&key={key}")).await;
        assert_eq!(kind, "text/vtt; charset=utf-8");
        assert!(vtt.starts_with("WEBVTT\n"));
        assert_eq!(cues(&vtt), 4);
        assert!(vtt.contains("each line's stored time"));
        std::fs::write(samples().join(format!("realtime-{backend:?}.vtt")), &vtt).expect("sample");
        // JSON stays the default, and `format=json` says the same.
        let default = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}/transcript"))
                .await,
            StatusCode::OK,
        )
        .await;
        let json = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}/transcript?format=json"))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(default, json);
        assert_eq!(default["chunks"].as_array().expect("chunks").len(), 4);
        // A format it does not serve, or an unknown parameter: 400.
        expect_error(
            app.get_authed(&format!("/api/meetings/{meeting}/transcript?format=srt"))
                .await,
            StatusCode::BAD_REQUEST,
            "format",
        )
        .await;
        expect_error(
            app.get_authed(&format!("/api/meetings/{meeting}/transcript?as=vtt"))
                .await,
            StatusCode::BAD_REQUEST,
            "",
        )
        .await;
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_gpt_live_calls_webvtt_cues_sit_where_its_fragments_say() {
    each_backend(|backend, url| async move {
        let script = Script {
            steps: vec![
                Step::Turn(Turn::numbered("live", 1, Transcription::Before)),
                Step::Turn(Turn::numbered("live", 2, Transcription::Before)),
                Step::Mark("spoken".into()),
                Step::Hold,
            ],
        };
        let app =
            crate::gpt_live::live_app(&url, move |_| script.clone(), StartOn::Attach, None).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        assert!(app.llm.calls().wait_for_mark("spoken", DEADLINE).await);
        // The last run of words is sealed by the call's end.
        wait_for_lines(&app.store, &meeting, 2).await;
        crate::running::end_call(&app, &call).await;
        let id: MeetingId = meeting.parse().expect("id");
        let lines = app.store.transcript(id).await.expect("lines");
        assert_eq!(lines.len(), 4);
        let (_, _, vtt) = download(
            &app,
            &meeting,
            &format!("format=vtt&key={}", app.page_key(&meeting).await),
        )
        .await;
        assert!(vtt.contains("fragments"));
        let times: Vec<&str> = vtt.lines().filter(|l| l.contains(" --> ")).collect();
        assert_eq!(times.len(), lines.len());
        for (cue, line) in times.iter().zip(&lines) {
            let start = line.start_ms.expect("a GPT-Live line has its time");
            let at = format!(
                "{:02}:{:02}:{:02}.{:03} -->",
                start / 3_600_000,
                start / 60_000 % 60,
                start / 1000 % 60,
                start % 1000
            );
            assert!(cue.starts_with(&at), "{cue} for {start} ms");
        }
        std::fs::write(samples().join(format!("gpt-live-{backend:?}.vtt")), &vtt).expect("sample");
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// Every mark the page shows, in a WebVTT sample for the parser in CI.
#[tokio::test]
async fn every_mark_is_written_as_a_cue() {
    use chrono::Utc;
    use scribe::store::{StoredChunk, TranscriptHole};
    use scribe_actors::domain::Speaker;
    let t0 = Utc::now();
    let at = |ms| t0 + chrono::Duration::milliseconds(ms);
    let line = |n, speaker, text: &str, status, ms| StoredChunk {
        sequence_number: n,
        speaker,
        text: text.into(),
        status,
        item_id: None,
        timestamp: at(ms),
        start_ms: None,
        end_ms: None,
    };
    let lines = vec![
        line(
            1,
            Some(Speaker::User),
            "Is 3 > 2 & <b>bold</b>? --> yes",
            ChunkStatus::Completed,
            500,
        ),
        line(
            2,
            Some(Speaker::Agent),
            "Yes, and",
            ChunkStatus::Interrupted,
            2_000,
        ),
        line(3, None, "", ChunkStatus::Lost, 4_000),
        line(4, Some(Speaker::User), "so", ChunkStatus::Partial, 90_000),
        line(
            5,
            Some(Speaker::Agent),
            "",
            ChunkStatus::TranscriptionFailed,
            3_700_000,
        ),
    ];
    let holes = vec![TranscriptHole {
        after: Some(3),
        before: Some(4),
        from: Some(at(5_000)),
        to: Some(at(80_000)),
        reason: "re-attached".into(),
    }];
    // A real meeting row, as the route reads it.
    let db = crate::helpers::TestDb::create(crate::helpers::Backend::Sqlite).await;
    let store = crate::helpers::TestDb::store_at(&db.url).await;
    let agent = super::retention::agent(&store).await;
    let new = scribe::domain::meeting::NewMeeting::parse("Marks", "u", agent, None).expect("valid");
    let mut meeting = store.insert_meeting(new).await.expect("stored");
    meeting.started_at = Some(t0);
    meeting.voice_api = Some(VoiceApi::Realtime);
    let vtt = export::webvtt(&meeting, &lines, &holes);
    assert_eq!(cues(&vtt), 6);
    for mark in [
        "(interrupted)",
        "(this line was lost)",
        "(cut short)",
        "(not transcribed)",
        "Lines may be missing here",
    ] {
        assert!(vtt.contains(mark), "{mark}");
    }
    std::fs::write(samples().join("marks.vtt"), &vtt).expect("sample");
    db.destroy().await;
}
