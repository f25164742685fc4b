//! A meeting's transcript as plain text, Markdown and WebVTT
//! (`GET /api/meetings/{id}/transcript?format=txt|md|vtt`). Every format
//! marks what the page marks: a line cut short or interrupted, a line lost
//! or not transcribed, and where lines may be missing.
//!
//! Times: text and Markdown give each line's time from the call's start
//! (the line's stored time). WebVTT cues of a GPT-Live call sit where its
//! transcript fragments say (`start_ms`/`end_ms`, the session's clock);
//! cues of a Realtime call start at the lines' stored times, since
//! Realtime's events carry audio offsets for the user's speech only (none
//! for the agent's replies), and two clocks in one file would misorder
//! the conversation. A cue lasts until the next line starts, at most as
//! long as its words take to say (0.4 s a word, 1 to 15 s).

use chrono::{DateTime, Utc};
use scribe_actors::domain::{ChunkStatus, Speaker, VoiceApi};

use crate::domain::meeting::Meeting;
use crate::store::{StoredChunk, TranscriptHole};

/// The formats a transcript is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Txt,
    Md,
    Vtt,
}

impl Format {
    /// The answer's `Content-Type`.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Txt => "text/plain; charset=utf-8",
            Self::Md => "text/markdown; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
        }
    }

    pub const fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Txt => "txt",
            Self::Md => "md",
            Self::Vtt => "vtt",
        }
    }
}

/// What a transcript is made of, in conversation order.
enum Item<'a> {
    Line(&'a StoredChunk),
    Hole(&'a TranscriptHole),
}

/// The lines in number order with the holes where the page puts them
/// (after line `after`, else before line `before`, else at the end).
fn items<'a>(lines: &'a [StoredChunk], holes: &'a [TranscriptHole]) -> Vec<Item<'a>> {
    let place = |hole: &TranscriptHole| match (hole.after, hole.before) {
        (Some(after), _) => after as f64 + 0.5,
        (None, Some(before)) => before as f64 - 0.5,
        (None, None) => f64::INFINITY,
    };
    let mut keyed: Vec<(f64, Item<'a>)> = lines
        .iter()
        .map(|l| (l.sequence_number as f64, Item::Line(l)))
        .chain(holes.iter().map(|h| (place(h), Item::Hole(h))))
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, item)| item).collect()
}

fn speaker(line: &StoredChunk) -> &'static str {
    match line.speaker {
        Some(Speaker::User) => "User",
        Some(Speaker::Agent) => "Agent",
        None => "…",
    }
}

/// A line's words as the page shows them, on one line.
fn said(line: &StoredChunk) -> String {
    let one_line = || line.text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.status {
        ChunkStatus::Lost => "(this line was lost)".into(),
        ChunkStatus::TranscriptionFailed => "(not transcribed)".into(),
        ChunkStatus::Partial => format!("{} (cut short)", one_line()),
        ChunkStatus::Interrupted => format!("{} (interrupted)", one_line()),
        ChunkStatus::Completed => one_line(),
    }
}

fn hole_text(hole: &TranscriptHole) -> String {
    let time =
        |t: Option<DateTime<Utc>>| t.map_or("?".into(), |t| t.format("%H:%M:%S").to_string());
    format!(
        "Lines may be missing here: scribe was reconnecting to the call ({}–{} UTC)",
        time(hole.from),
        time(hole.to)
    )
}

/// Where the call's clock starts: its start, else its first line.
fn zero(meeting: &Meeting, lines: &[StoredChunk]) -> DateTime<Utc> {
    meeting
        .started_at
        .or_else(|| lines.iter().map(|l| l.timestamp).min())
        .unwrap_or(meeting.created_at)
}

fn offset_ms(zero: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    (at - zero).num_milliseconds().max(0)
}

/// `mm:ss`, or `h:mm:ss` from an hour on.
fn clock(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

fn stamp(at: Option<DateTime<Utc>>) -> String {
    at.map_or("-".into(), |t| {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

/// Plain text: a head, then one line per line said.
pub fn text(meeting: &Meeting, lines: &[StoredChunk], holes: &[TranscriptHole]) -> String {
    let zero = zero(meeting, lines);
    let mut out = format!(
        "Transcript of \"{}\" (meeting {})\nStarted {}, ended {}; {}.\n\n",
        meeting
            .name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        meeting.id,
        stamp(meeting.started_at),
        stamp(meeting.ended_at),
        meeting.status
    );
    for item in items(lines, holes) {
        match item {
            Item::Line(line) => out.push_str(&format!(
                "[{}] {}: {}\n",
                clock(offset_ms(zero, line.timestamp)),
                speaker(line),
                said(line)
            )),
            Item::Hole(hole) => out.push_str(&format!("-- {} --\n", hole_text(hole))),
        }
    }
    out
}

/// Markdown's special characters, escaped.
fn md_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_[]<>|~#&!".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Markdown: a title, the call's times, one paragraph per line said.
pub fn markdown(meeting: &Meeting, lines: &[StoredChunk], holes: &[TranscriptHole]) -> String {
    let zero = zero(meeting, lines);
    let name = meeting
        .name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = format!(
        "# Transcript: {}\n\nMeeting `{}` · started {} · ended {} · {}\n\n",
        md_escape(&name),
        meeting.id,
        stamp(meeting.started_at),
        stamp(meeting.ended_at),
        meeting.status
    );
    for item in items(lines, holes) {
        match item {
            Item::Line(line) => {
                let words = match line.status {
                    ChunkStatus::Lost | ChunkStatus::TranscriptionFailed => {
                        format!("*{}*", said(line))
                    }
                    ChunkStatus::Partial | ChunkStatus::Interrupted => {
                        let (text, mark) = said(line)
                            .rsplit_once(" (")
                            .map(|(t, m)| (t.to_owned(), format!("({m}")))
                            .unwrap_or_default();
                        format!("{} *{mark}*", md_escape(&text))
                    }
                    ChunkStatus::Completed => md_escape(&said(line)),
                };
                out.push_str(&format!(
                    "**{}** \\[{}\\]: {}\n\n",
                    speaker(line),
                    clock(offset_ms(zero, line.timestamp)),
                    words
                ));
            }
            Item::Hole(hole) => out.push_str(&format!("> *{}*\n\n", md_escape(&hole_text(hole)))),
        }
    }
    out
}

/// `hh:mm:ss.ttt`.
fn vtt_time(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text: one line, `&`, `<` and `>` as entities (so no `-->` either).
fn vtt_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// How long `text` takes to say: 0.4 s a word, 1 to 15 s.
fn saying_ms(text: &str) -> i64 {
    (text.split_whitespace().count() as i64 * 400).clamp(1000, 15_000)
}

/// WebVTT: one cue per line said (a voice span names the speaker) and
/// per stretch where lines may be missing.
pub fn webvtt(meeting: &Meeting, lines: &[StoredChunk], holes: &[TranscriptHole]) -> String {
    let fragments = meeting.voice_api == Some(VoiceApi::Live);
    let zero = zero(meeting, lines);
    let items = items(lines, holes);
    // Where each line starts on the file's clock, before ordering.
    let starts: Vec<Option<i64>> = items
        .iter()
        .map(|item| match item {
            Item::Line(line) if fragments => line.start_ms,
            Item::Line(line) => Some(offset_ms(zero, line.timestamp)),
            Item::Hole(_) => None,
        })
        .collect();
    let mut out = format!(
        "WEBVTT\n\nNOTE\nscribe: the transcript of meeting {}. Cue times: {}.\n\n",
        meeting.id,
        if fragments {
            "GPT-Live's transcript fragments (start_ms, end_ms)"
        } else {
            "each line's stored time from the call's start, until the next line"
        }
    );
    let (mut last_start, mut last_end) = (0_i64, 0_i64);
    for (i, item) in items.iter().enumerate() {
        let next_start = starts[i + 1..].iter().flatten().next().copied();
        let (start, end, text) = match item {
            Item::Line(line) => {
                let start = starts[i].unwrap_or(last_end);
                let said_for = saying_ms(&line.text);
                let end = match (fragments, line.end_ms) {
                    (true, Some(end)) if end > start => end,
                    _ => match next_start {
                        Some(next) if next > start => next.min(start + said_for),
                        _ => start + said_for,
                    },
                };
                let who = match line.speaker {
                    Some(_) if line.status != ChunkStatus::Lost => {
                        format!("<v {}>", speaker(line))
                    }
                    _ => String::new(),
                };
                (start, end, format!("{who}{}", vtt_escape(&said(line))))
            }
            Item::Hole(hole) => {
                let start = last_end;
                (
                    start,
                    start + 1000,
                    format!("({})", vtt_escape(&hole_text(hole))),
                )
            }
        };
        // Cues in start order, each at least a millisecond long.
        let start = start.max(last_start);
        let end = end.max(start + 1);
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            vtt_time(start),
            vtt_time(end),
            text
        ));
        (last_start, last_end) = (start, end);
    }
    out
}

#[cfg(test)]
mod tests;
