//! The transcript model's unit tests: orderings of realtime events and the
//! lines they must give.

use super::*;
use crate::voice::event::OutputItem;

fn user_item(id: &str) -> ItemInfo {
    ItemInfo {
        id: id.into(),
        kind: "message".into(),
        role: Some("user".into()),
        has_input_audio: true,
        has_text: false,
    }
}

fn agent_item(id: &str) -> ItemInfo {
    ItemInfo {
        id: id.into(),
        kind: "message".into(),
        role: Some("assistant".into()),
        has_input_audio: false,
        has_text: false,
    }
}

struct Script(Conversation);

impl Script {
    fn new() -> Self {
        Self(Conversation::new(1))
    }
    fn ev(&mut self, e: ServerEvent) -> &mut Self {
        self.0.apply(&e, Utc::now());
        self
    }
    fn user_turn(&mut self, id: &str, prev: Option<&str>) -> &mut Self {
        self.ev(ServerEvent::InputCommitted {
            item_id: id.into(),
            previous_item_id: prev.map(Into::into),
        })
        .ev(ServerEvent::ItemAdded {
            previous_item_id: prev.map(Into::into),
            item: user_item(id),
        })
    }
    fn heard(&mut self, id: &str, text: &str) -> &mut Self {
        self.ev(ServerEvent::UserTranscriptCompleted {
            item_id: id.into(),
            transcript: text.into(),
        })
    }
    fn reply(&mut self, resp: &str, id: &str, prev: &str, words: &[&str], done: bool) -> &mut Self {
        self.ev(ServerEvent::ResponseCreated {
            response_id: resp.into(),
        })
        .ev(ServerEvent::ItemAdded {
            previous_item_id: Some(prev.into()),
            item: agent_item(id),
        });
        for w in words {
            self.ev(ServerEvent::AgentTranscriptDelta {
                item_id: id.into(),
                delta: (*w).into(),
            });
        }
        if done {
            self.ev(ServerEvent::AgentTranscriptDone {
                item_id: id.into(),
                transcript: words.concat(),
            })
            .ev(done_response(resp, "completed", vec![]));
        }
        self
    }
    fn lines(&mut self) -> Vec<(i64, Speaker, String, ChunkStatus)> {
        self.0
            .take_ready()
            .into_iter()
            .map(|l| (l.sequence_number, l.speaker, l.text, l.status))
            .collect()
    }
}

use ChunkStatus::{Completed, Interrupted, Partial, TranscriptionFailed};

fn done_response(id: &str, status: &str, output: Vec<OutputItem>) -> ServerEvent {
    ServerEvent::ResponseDone {
        response_id: id.into(),
        status: Some(status.into()),
        reason: (status == "cancelled").then(|| "turn_detected".into()),
        error: (status == "failed").then(|| "The server had an error.".into()),
        output,
    }
}

fn transcription_failed(item: &str) -> ServerEvent {
    ServerEvent::UserTranscriptFailed {
        item_id: item.into(),
        error: ErrorInfo {
            kind: Some("transcription_error".into()),
            code: Some("audio_unintelligible".into()),
            message: "The audio could not be transcribed.".into(),
            ..ErrorInfo::default()
        },
    }
}

fn user_delta(item: &str, delta: &str) -> ServerEvent {
    ServerEvent::UserTranscriptDelta {
        item_id: item.into(),
        delta: delta.into(),
    }
}
use Speaker::{Agent, User};

#[test]
fn transcription_before_the_reply() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .heard("u1", "Hello")
        .reply("r1", "a1", "u1", &["Hi ", "there"], true);
    assert_eq!(
        s.lines(),
        [
            (1, User, "Hello".into(), Completed),
            (2, Agent, "Hi there".into(), Completed)
        ]
    );
}

#[test]
fn transcription_after_the_reply_keeps_its_place() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .reply("r1", "a1", "u1", &["Hi"], true);
    assert_eq!(
        s.lines(),
        [(2, Agent, "Hi".into(), Completed)],
        "reply is written first"
    );
    s.heard("u1", "Hello");
    assert_eq!(
        s.lines(),
        [(1, User, "Hello".into(), Completed)],
        "late user line keeps number 1"
    );
}

#[test]
fn transcription_during_the_reply() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .reply("r1", "a1", "u1", &["Hi "], false)
        .heard("u1", "Hello");
    s.ev(ServerEvent::AgentTranscriptDone {
        item_id: "a1".into(),
        transcript: "Hi you".into(),
    });
    assert_eq!(
        s.lines(),
        [
            (1, User, "Hello".into(), Completed),
            (2, Agent, "Hi you".into(), Completed)
        ]
    );
}

#[test]
fn failed_transcription_is_kept_as_such() {
    let mut s = Script::new();
    s.user_turn("u1", None).ev(transcription_failed("u1"));
    assert_eq!(s.lines(), [(1, User, String::new(), TranscriptionFailed)]);
}

#[test]
fn session_end_keeps_partial_agent_text_and_fails_open_user_lines() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .reply("r1", "a1", "u1", &["Half ", "a "], false);
    assert_eq!(s.0.unflushed(), 2);
    s.0.end_session();
    assert_eq!(
        s.lines(),
        [
            (1, User, String::new(), TranscriptionFailed),
            (2, Agent, "Half a ".into(), Partial)
        ]
    );
    // Numbering continues in the next session.
    s.user_turn("u9", None).heard("u9", "Again");
    assert_eq!(s.lines(), [(3, User, "Again".into(), Completed)]);
}

#[test]
fn replayed_items_are_not_lines() {
    let mut s = Script::new();
    // Replay echo: text items outside any response.
    s.ev(ServerEvent::ItemAdded {
        previous_item_id: None,
        item: ItemInfo {
            id: "x1".into(),
            kind: "message".into(),
            role: Some("user".into()),
            has_input_audio: false,
            has_text: true,
        },
    })
    .ev(ServerEvent::ItemAdded {
        previous_item_id: Some("x1".into()),
        item: agent_item("x2"),
    })
    .ev(ServerEvent::AgentTranscriptDone {
        item_id: "x2".into(),
        transcript: "old".into(),
    });
    assert!(s.lines().is_empty());
    s.user_turn("u1", Some("x2")).heard("u1", "New");
    assert_eq!(s.lines(), [(1, User, "New".into(), Completed)]);
    assert!(s.0.take_notices().is_empty());
}

#[test]
fn a_replay_echo_during_a_live_reply_is_not_a_line() {
    let mut s = Script::new();
    s.user_turn("u1", None).ev(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    // The echo of a replayed agent line lands while the reply is live.
    s.ev(ServerEvent::ItemAdded {
        previous_item_id: Some("u1".into()),
        item: ItemInfo {
            has_text: true,
            ..agent_item("echo")
        },
    });
    s.ev(ServerEvent::ItemAdded {
        previous_item_id: Some("echo".into()),
        item: agent_item("a1"),
    })
    .ev(ServerEvent::AgentTranscriptDone {
        item_id: "a1".into(),
        transcript: "Live".into(),
    })
    .heard("u1", "Hi");
    assert_eq!(
        s.lines(),
        [
            (1, User, "Hi".into(), Completed),
            (2, Agent, "Live".into(), Completed)
        ]
    );
}

#[test]
fn duplicate_events_do_not_duplicate_lines() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .user_turn("u1", None)
        .heard("u1", "Hi")
        .heard("u1", "Hi");
    s.ev(ServerEvent::ItemDone {
        previous_item_id: None,
        item: user_item("u1"),
    });
    assert_eq!(s.lines(), [(1, User, "Hi".into(), Completed)]);
    assert_eq!(s.0.next_sequence(), 2);
}

#[test]
fn transcription_before_the_item_is_kept_until_it_is_placed() {
    let mut s = Script::new();
    s.heard("u1", "Early").user_turn("u1", None);
    assert_eq!(s.lines(), [(1, User, "Early".into(), Completed)]);
}

#[test]
fn a_backlog_over_its_bound_sheds_its_oldest_lines_and_keeps_their_numbers_reserved() {
    let mut c = Conversation::new(1);
    for n in 1..=4 {
        c.ready.push(crate::fakes::user_line(n, "x".repeat(10)));
    }
    let _ = c.take_high_water();
    assert_eq!(c.shed_backlog(40), Vec::<i64>::new(), "within the bound");
    assert_eq!(c.shed_backlog(25), vec![1, 2]);
    assert_eq!(c.backlog_bytes(), 20);
    let left: Vec<i64> = c.take_ready().iter().map(|l| l.sequence_number).collect();
    assert_eq!(left, vec![3, 4]);
    assert_eq!(c.take_high_water(), Some(2), "shed numbers stay reserved");
}

#[test]
fn numbering_starts_after_the_stored_high_water_and_is_reported() {
    let mut c = Conversation::new(41);
    c.apply(
        &ServerEvent::InputCommitted {
            item_id: "u".into(),
            previous_item_id: None,
        },
        Utc::now(),
    );
    assert_eq!(c.take_high_water(), Some(41));
    assert_eq!(c.take_high_water(), None);
    assert_eq!(c.next_sequence(), 42);
    assert_eq!(c.pending_user_lines(), 1);
}

#[test]
fn an_item_inserted_mid_conversation_is_noticed() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .heard("u1", "a")
        .user_turn("u2", Some("u1"))
        .user_turn("u3", Some("u1"));
    assert_eq!(
        s.0.take_notices(),
        [Notice::OutOfOrderItem {
            item_id: "u3".into(),
            previous_item_id: "u1".into()
        }]
    );
}

mod endings;
mod props;
