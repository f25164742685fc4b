use chrono::TimeZone;
use scribe_actors::domain::{MeetingStatus, Transport};
use scribe_actors::ids::{AgentId, MeetingId};

use super::*;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0)
        .single()
        .expect("time")
        + chrono::Duration::milliseconds(secs)
}

fn meeting(voice_api: VoiceApi) -> Meeting {
    Meeting {
        id: MeetingId::new(),
        name: "Fractions <week 2>\nagain".into(),
        user_id: "u".into(),
        agent_id: AgentId::new(),
        status: MeetingStatus::Completed,
        prompt: None,
        progress: None,
        summary: None,
        error: None,
        started_at: Some(at(0)),
        ended_at: Some(at(60_000)),
        processing_started_at: None,
        completed_at: None,
        transcript_collected: true,
        previous_meeting_id: None,
        next_meeting_id: None,
        transport: Some(Transport::OpenAi),
        provider_call_id: None,
        voice_api: Some(voice_api),
        created_at: at(0),
        updated_at: at(0),
        page_url: None,
        page_generation: 0,
        deleted_at: None,
    }
}

fn line(n: i64, speaker: Option<Speaker>, text: &str, status: ChunkStatus, ms: i64) -> StoredChunk {
    StoredChunk {
        sequence_number: n,
        speaker,
        text: text.into(),
        status,
        item_id: None,
        timestamp: at(ms),
        start_ms: None,
        end_ms: None,
    }
}

fn conversation() -> (Vec<StoredChunk>, Vec<TranscriptHole>) {
    let lines = vec![
        line(
            1,
            Some(Speaker::User),
            "Hi, I'm <stuck> on 1/2 & 1/3 --> help",
            ChunkStatus::Completed,
            2_000,
        ),
        line(
            2,
            Some(Speaker::Agent),
            "Let's find a common",
            ChunkStatus::Interrupted,
            5_000,
        ),
        line(3, None, "", ChunkStatus::Lost, 9_000),
        line(4, Some(Speaker::User), "six", ChunkStatus::Partial, 70_000),
        line(
            5,
            Some(Speaker::User),
            "",
            ChunkStatus::TranscriptionFailed,
            71_000,
        ),
    ];
    let holes = vec![TranscriptHole {
        after: Some(3),
        before: Some(4),
        from: Some(at(10_000)),
        to: Some(at(65_000)),
        reason: "re-attached".into(),
    }];
    (lines, holes)
}

#[test]
fn text_marks_what_the_page_marks_in_order() {
    let (lines, holes) = conversation();
    let out = text(&meeting(VoiceApi::Realtime), &lines, &holes);
    let body: Vec<&str> = out.lines().skip(3).collect();
    assert_eq!(
        body,
        [
            "[00:02] User: Hi, I'm <stuck> on 1/2 & 1/3 --> help",
            "[00:05] Agent: Let's find a common (interrupted)",
            "[00:09] …: (this line was lost)",
            "-- Lines may be missing here: scribe was reconnecting to the call (10:00:10–10:01:05 UTC) --",
            "[01:10] User: six (cut short)",
            "[01:11] User: (not transcribed)",
        ]
    );
    assert!(
        out.starts_with("Transcript of \"Fractions <week 2> again\""),
        "{out}"
    );
}

#[test]
fn markdown_escapes_what_would_be_markup() {
    let (lines, holes) = conversation();
    let out = markdown(&meeting(VoiceApi::Realtime), &lines, &holes);
    assert!(
        out.starts_with("# Transcript: Fractions \\<week 2\\> again\n"),
        "{out}"
    );
    assert!(
        out.contains("**User** \\[00:02\\]: Hi, I'm \\<stuck\\> on 1/2 \\& 1/3 --\\> help\n"),
        "{out}"
    );
    assert!(
        out.contains("**Agent** \\[00:05\\]: Let's find a common *(interrupted)*\n"),
        "{out}"
    );
    assert!(
        out.contains("**…** \\[00:09\\]: *(this line was lost)*\n"),
        "{out}"
    );
    assert!(out.contains("> *Lines may be missing here"), "{out}");
    assert!(
        out.contains("**User** \\[01:10\\]: six *(cut short)*\n"),
        "{out}"
    );
}

/// The cues' times, in order.
fn cue_times(vtt: &str) -> Vec<(String, String)> {
    vtt.lines()
        .filter_map(|l| l.split_once(" --> "))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

#[test]
fn realtime_cues_start_at_the_lines_times_in_order() {
    let (lines, holes) = conversation();
    let out = webvtt(&meeting(VoiceApi::Realtime), &lines, &holes);
    assert!(out.starts_with("WEBVTT\n\n"));
    assert!(out.contains("each line's stored time"));
    assert_eq!(
        cue_times(&out),
        [
            ("00:00:02.000".into(), "00:00:05.000".into()),
            ("00:00:05.000".into(), "00:00:06.600".into()),
            ("00:00:09.000".into(), "00:00:10.000".into()),
            ("00:00:10.000".into(), "00:00:11.000".into()),
            ("00:01:10.000".into(), "00:01:11.000".into()),
            ("00:01:11.000".into(), "00:01:12.000".into()),
        ]
    );
    assert!(
        out.contains("<v User>Hi, I'm &lt;stuck&gt; on 1/2 &amp; 1/3 --&gt; help\n"),
        "{out}"
    );
    assert!(out.contains("<v Agent>Let's find a common (interrupted)\n"));
    assert!(
        out.contains("\n(this line was lost)\n"),
        "a lost line names no speaker"
    );
    assert!(
        !out.lines()
            .skip(1)
            .any(|l| l.contains("-->") && !l.contains(" --> "))
    );
}

#[test]
fn gpt_live_cues_sit_where_the_fragments_say() {
    let (mut lines, _) = conversation();
    lines.truncate(2);
    lines[0].start_ms = Some(1_200);
    lines[0].end_ms = Some(3_400);
    lines[1].start_ms = Some(3_000);
    lines[1].end_ms = Some(4_000);
    let out = webvtt(&meeting(VoiceApi::Live), &lines, &[]);
    assert!(out.contains("fragments"));
    assert_eq!(
        cue_times(&out),
        [
            ("00:00:01.200".into(), "00:00:03.400".into()),
            ("00:00:03.000".into(), "00:00:04.000".into()),
        ]
    );
}

#[test]
fn cues_never_start_before_the_one_before_them() {
    let mut lines: Vec<StoredChunk> = (1..=4)
        .map(|n| line(n, Some(Speaker::User), "a b c", ChunkStatus::Completed, 0))
        .collect();
    lines[1].start_ms = Some(5_000);
    lines[2].start_ms = Some(2_000);
    lines[3].start_ms = None;
    let out = webvtt(&meeting(VoiceApi::Live), &lines, &[]);
    let starts: Vec<String> = cue_times(&out).into_iter().map(|(s, _)| s).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    for (start, end) in cue_times(&out) {
        assert!(end > start, "{start} --> {end}");
    }
}

#[test]
fn an_hour_long_call_keeps_its_hours() {
    assert_eq!(vtt_time(3_723_004), "01:02:03.004");
    assert_eq!(clock(3_723_004), "1:02:03");
    assert_eq!(clock(83_000), "01:23");
}
