//! How lines end: replies that end without a transcript `done`, truncation,
//! user transcription deltas, and the moments a rotation may happen.

use super::*;

// Point 1: replies that end without a transcript `done`.

#[test]
fn a_cancelled_response_closes_its_reply_at_once_with_the_text_received() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .heard("u1", "Wait")
        .reply("r1", "a1", "u1", &["Sure, ", "the "], false)
        .ev(done_response("r1", "cancelled", vec![]));
    assert_eq!(
        s.lines(),
        [
            (1, User, "Wait".into(), Completed),
            (2, Agent, "Sure, the ".into(), Interrupted)
        ]
    );
    assert_eq!(
        s.0.take_notices(),
        [Notice::ReplyInterrupted {
            response_id: "r1".into(),
            status: "cancelled".into(),
            reason: Some("turn_detected".into()),
            error: None,
            lines: vec![2],
        }]
    );
    assert!(s.0.is_idle(), "nothing is left open");
}

#[test]
fn a_cancelled_response_prefers_the_transcript_in_its_output() {
    let mut s = Script::new();
    let output = vec![OutputItem {
        id: "a1".into(),
        transcript: Some("Sure, the first".into()),
    }];
    s.user_turn("u1", None)
        .reply("r1", "a1", "u1", &["Sure, "], false)
        .ev(done_response("r1", "cancelled", output));
    assert_eq!(
        s.lines(),
        [(2, Agent, "Sure, the first".into(), Interrupted)]
    );
}

#[test]
fn failed_and_incomplete_responses_close_their_replies_too() {
    for status in ["failed", "incomplete"] {
        let mut s = Script::new();
        s.user_turn("u1", None)
            .heard("u1", "Go")
            .reply("r1", "a1", "u1", &["Half"], false)
            .ev(done_response("r1", status, vec![]));
        assert_eq!(
            s.lines(),
            [
                (1, User, "Go".into(), Completed),
                (2, Agent, "Half".into(), Interrupted)
            ],
            "{status}"
        );
    }
}

#[test]
fn a_response_named_by_its_output_closes_its_items_whichever_response_was_active() {
    let mut s = Script::new();
    s.user_turn("u1", None).heard("u1", "Hi");
    // Two responses at once: the item cannot be tied to one when added.
    s.ev(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    })
    .ev(ServerEvent::ResponseCreated {
        response_id: "r2".into(),
    })
    .ev(ServerEvent::ItemAdded {
        previous_item_id: Some("u1".into()),
        item: agent_item("a1"),
    });
    let output = vec![OutputItem {
        id: "a1".into(),
        transcript: None,
    }];
    s.ev(done_response("r2", "cancelled", output));
    assert_eq!(
        s.lines(),
        [
            (1, User, "Hi".into(), Completed),
            (2, Agent, String::new(), Interrupted)
        ]
    );
}

#[test]
fn an_agent_line_left_open_after_its_response_never_holds_up_a_rotation() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .heard("u1", "Hi")
        .reply("r1", "a1", "u1", &["Hel"], false)
        .ev(done_response("r1", "completed", vec![]));
    assert_eq!(s.0.unflushed(), 2, "the line waits for its transcript");
    assert!(s.0.is_idle());
    s.0.end_session();
    assert_eq!(
        s.lines(),
        [
            (1, User, "Hi".into(), Completed),
            (2, Agent, "Hel".into(), Partial)
        ]
    );
}

/// OpenAI sends an interrupted reply's transcript `done` too, and it may
/// come before `response.done` says `cancelled`: the line ends
/// `interrupted` in either order.
#[test]
fn a_reply_whose_transcript_was_done_before_its_response_was_cancelled_ends_interrupted() {
    for status in ["cancelled", "incomplete", "failed"] {
        // `done` first, the line still waiting to be written: changed in place.
        let mut s = Script::new();
        s.user_turn("u1", None)
            .heard("u1", "Wait")
            .reply("r1", "a1", "u1", &["Sure, ", "the "], false)
            .ev(ServerEvent::AgentTranscriptDone {
                item_id: "a1".into(),
                transcript: "Sure, the".into(),
            })
            .ev(done_response("r1", status, vec![]));
        assert_eq!(
            s.lines(),
            [
                (1, User, "Wait".into(), Completed),
                (2, Agent, "Sure, the".into(), Interrupted)
            ],
            "{status}: done, then response.done"
        );
        assert!(
            s.0.take_interrupted().is_empty(),
            "{status}: no second write"
        );
        let notices = s.0.take_notices();
        assert!(
            notices
                .iter()
                .any(|n| matches!(n, Notice::ReplyInterrupted { lines, .. } if lines == &[2])),
            "{status}: {notices:?}"
        );

        // `done` first and the line already handed to the writer: the
        // writer's in-place change, as a truncation does.
        let mut s = Script::new();
        s.user_turn("u1", None)
            .heard("u1", "Wait")
            .reply("r1", "a1", "u1", &["Sure"], false)
            .ev(ServerEvent::AgentTranscriptDone {
                item_id: "a1".into(),
                transcript: "Sure".into(),
            });
        assert_eq!(s.lines().len(), 2, "both lines went to the writer");
        s.ev(done_response("r1", status, vec![]));
        assert!(s.lines().is_empty(), "{status}: no second line");
        assert_eq!(s.0.take_interrupted(), [2], "{status}");

        // `response.done` first: closed at once as interrupted, and the
        // late `done` makes no second line.
        let mut s = Script::new();
        s.user_turn("u1", None)
            .heard("u1", "Wait")
            .reply("r1", "a1", "u1", &["Sure, ", "the "], false)
            .ev(done_response("r1", status, vec![]))
            .ev(ServerEvent::AgentTranscriptDone {
                item_id: "a1".into(),
                transcript: "Sure, the".into(),
            });
        assert_eq!(
            s.lines(),
            [
                (1, User, "Wait".into(), Completed),
                (2, Agent, "Sure, the ".into(), Interrupted)
            ],
            "{status}: response.done, then done"
        );
        assert!(s.0.take_interrupted().is_empty(), "{status}");
    }
}

/// A reply named only by `response.done`'s output (no response was known
/// when its item arrived) is marked the same way.
#[test]
fn a_done_reply_named_by_a_cancelled_responses_output_ends_interrupted() {
    let mut s = Script::new();
    s.user_turn("u1", None).heard("u1", "Hi");
    s.ev(ServerEvent::ResponseCreated {
        response_id: "r0".into(),
    })
    .ev(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    })
    .ev(ServerEvent::ItemAdded {
        previous_item_id: Some("u1".into()),
        item: agent_item("a1"),
    })
    .ev(ServerEvent::AgentTranscriptDone {
        item_id: "a1".into(),
        transcript: "Hello".into(),
    });
    assert_eq!(s.lines().len(), 2);
    let output = vec![OutputItem {
        id: "a1".into(),
        transcript: Some("Hello".into()),
    }];
    s.ev(done_response("r1", "cancelled", output));
    assert_eq!(s.0.take_interrupted(), [2]);
}

// Point 2: truncation.

#[test]
fn a_reply_cut_off_before_its_transcript_is_final_ends_interrupted_with_its_text() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .heard("u1", "Hi")
        .reply("r1", "a1", "u1", &["One ", "two "], false)
        .ev(ServerEvent::ItemTruncated {
            item_id: "a1".into(),
            audio_end_ms: Some(800),
        })
        .ev(ServerEvent::AgentTranscriptDone {
            item_id: "a1".into(),
            transcript: "One two three.".into(),
        });
    assert_eq!(
        s.lines(),
        [
            (1, User, "Hi".into(), Completed),
            (2, Agent, "One two three.".into(), Interrupted)
        ]
    );
    assert_eq!(
        s.0.take_notices(),
        [Notice::ReplyTruncated {
            item_id: "a1".into(),
            audio_end_ms: Some(800),
            sequence_number: Some(2),
        }]
    );
}

#[test]
fn a_truncation_after_the_line_was_handed_over_marks_it_interrupted() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .heard("u1", "Hi")
        .reply("r1", "a1", "u1", &["Long ", "answer."], true);
    assert_eq!(s.lines().len(), 2, "both lines went to the writer");
    s.ev(ServerEvent::ItemTruncated {
        item_id: "a1".into(),
        audio_end_ms: Some(1500),
    });
    assert!(s.lines().is_empty(), "no second line");
    assert_eq!(s.0.take_interrupted(), [2]);
    assert!(s.0.take_interrupted().is_empty());
}

#[test]
fn a_truncation_of_a_line_still_waiting_changes_it_in_place() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .heard("u1", "Hi")
        .reply("r1", "a1", "u1", &["Long ", "answer."], true)
        .ev(ServerEvent::ItemTruncated {
            item_id: "a1".into(),
            audio_end_ms: Some(1500),
        });
    assert_eq!(
        s.lines(),
        [
            (1, User, "Hi".into(), Completed),
            (2, Agent, "Long answer.".into(), Interrupted)
        ]
    );
    assert!(s.0.take_interrupted().is_empty());
}

// Point 3: user transcription deltas.

#[test]
fn transcription_deltas_are_kept_when_the_transcription_fails() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .ev(user_delta("u1", "I want "))
        .ev(user_delta("u1", "to plan"))
        .ev(transcription_failed("u1"));
    assert_eq!(s.lines(), [(1, User, "I want to plan".into(), Partial)]);
    let notices = s.0.take_notices();
    let [
        Notice::TranscriptionFailed {
            sequence_number,
            error,
            ..
        },
    ] = notices.as_slice()
    else {
        panic!("one failure notice: {notices:?}");
    };
    assert_eq!(*sequence_number, 1);
    assert_eq!(error.code.as_deref(), Some("audio_unintelligible"));
}

#[test]
fn deltas_cut_off_by_the_end_of_the_session_are_a_partial_line() {
    let mut s = Script::new();
    s.user_turn("u1", None).ev(user_delta("u1", "Half a sen"));
    s.0.end_session();
    assert_eq!(s.lines(), [(1, User, "Half a sen".into(), Partial)]);
}

#[test]
fn a_line_is_transcription_failed_only_when_nothing_arrived() {
    let mut s = Script::new();
    s.user_turn("u1", None).ev(user_delta("u1", "  "));
    s.0.end_session();
    assert_eq!(s.lines(), [(1, User, String::new(), TranscriptionFailed)]);
}

#[test]
fn deltas_before_the_item_is_placed_are_kept_for_it() {
    let mut s = Script::new();
    s.ev(user_delta("u1", "Early "))
        .ev(user_delta("u1", "words"))
        .ev(transcription_failed("u1"))
        .user_turn("u1", None);
    assert_eq!(s.lines(), [(1, User, "Early words".into(), Partial)]);
    assert_eq!(s.0.take_notices().len(), 1, "the failure is logged once");
}

#[test]
fn the_final_transcription_replaces_the_deltas() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .ev(user_delta("u1", "I wan"))
        .heard("u1", "I want to plan.");
    assert_eq!(s.lines(), [(1, User, "I want to plan.".into(), Completed)]);
}

// Point 7: rotation mid-speech.

#[test]
fn the_user_speaking_holds_up_a_rotation_until_speech_stops_or_is_committed() {
    let mut s = Script::new();
    assert!(s.0.is_idle());
    s.ev(ServerEvent::SpeechStarted);
    assert!(!s.0.is_idle(), "speaking");
    s.ev(ServerEvent::SpeechStopped);
    assert!(s.0.is_idle());
    s.ev(ServerEvent::SpeechStarted).user_turn("u1", None);
    assert!(
        !s.0.is_idle(),
        "committed, but its transcription is pending"
    );
    s.heard("u1", "Hi");
    assert!(s.0.is_idle(), "the commit ended the speech");
}

#[test]
fn a_reply_being_generated_holds_up_a_rotation() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .heard("u1", "Hi")
        .ev(ServerEvent::ResponseCreated {
            response_id: "r1".into(),
        });
    assert!(!s.0.is_idle());
    s.ev(done_response("r1", "completed", vec![]));
    assert!(s.0.is_idle());
}

#[test]
fn the_end_of_a_session_stops_the_speech_it_heard() {
    let mut s = Script::new();
    s.ev(ServerEvent::SpeechStarted);
    s.0.end_session();
    assert!(s.0.is_idle());
}

// Silence is not a line.

fn timeout(item: &str) -> ServerEvent {
    ServerEvent::InputTimeout {
        item_id: item.into(),
    }
}

/// An idle-timeout nudge: the service announces the silence, commits it
/// and answers it. Its empty transcription makes no line and no gap.
#[test]
fn an_idle_timeouts_silence_is_logged_not_stored() {
    let mut s = Script::new();
    s.user_turn("u1", None).heard("u1", "Hello");
    s.reply("r1", "a1", "u1", &["Hi."], true);
    assert_eq!(s.lines().len(), 2);
    s.ev(timeout("u2"))
        .user_turn("u2", Some("a1"))
        .reply("r2", "a2", "u2", &["Are you ", "still there?"], false)
        .heard("u2", "")
        .ev(ServerEvent::AgentTranscriptDone {
            item_id: "a2".into(),
            transcript: "Are you still there?".into(),
        })
        .ev(done_response("r2", "completed", vec![]))
        .user_turn("u3", Some("a2"))
        .heard("u3", "Yes.");
    assert_eq!(
        s.lines(),
        [
            (3, Agent, "Are you still there?".into(), Completed),
            (4, User, "Yes.".into(), Completed)
        ]
    );
    assert!(s.0.take_notices().contains(&Notice::Silence {
        item_id: "u2".into(),
        sequence_number: None,
        given_back: false,
    }));
    assert_eq!(s.0.next_sequence(), 5);
}

/// An empty transcription of a turn the service did not announce (noise
/// taken for speech) gives its number back while the reply after it is
/// still open: the reply takes it.
#[test]
fn an_empty_transcription_gives_its_number_to_the_open_reply_after_it() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .reply("r1", "a1", "u1", &["Sorry, ", "I missed that."], false)
        .heard("u1", "  ")
        .ev(ServerEvent::AgentTranscriptDone {
            item_id: "a1".into(),
            transcript: "Sorry, I missed that.".into(),
        })
        .ev(done_response("r1", "completed", vec![]));
    assert_eq!(
        s.lines(),
        [(1, Agent, "Sorry, I missed that.".into(), Completed)]
    );
    assert_eq!(s.0.next_sequence(), 2, "number 2 is free again");
    assert_eq!(s.0.take_high_water(), Some(1), "the mark follows");
    assert!(s.0.take_notices().contains(&Notice::Silence {
        item_id: "u1".into(),
        sequence_number: Some(1),
        given_back: true,
    }));
}

/// When the reply after it already went to the writer, the number cannot
/// move: its place keeps an empty `transcription_failed` line (gapless).
#[test]
fn an_empty_transcription_after_a_later_line_went_out_keeps_its_place() {
    let mut s = Script::new();
    s.user_turn("u1", None)
        .reply("r1", "a1", "u1", &["Hm?"], true);
    assert_eq!(s.lines(), [(2, Agent, "Hm?".into(), Completed)]);
    s.heard("u1", "");
    assert_eq!(s.lines(), [(1, User, String::new(), TranscriptionFailed)]);
    assert!(s.0.take_notices().contains(&Notice::Silence {
        item_id: "u1".into(),
        sequence_number: Some(1),
        given_back: false,
    }));
}

/// The service may hear words in an announced silence after all: they
/// become a line, after what was numbered meanwhile.
#[test]
fn words_in_an_announced_silence_become_a_line_after_the_reply() {
    let mut s = Script::new();
    s.ev(timeout("u1"))
        .user_turn("u1", None)
        .reply("r1", "a1", "u1", &["Still there?"], true)
        .heard("u1", "mm yes");
    assert_eq!(
        s.lines(),
        [
            (1, Agent, "Still there?".into(), Completed),
            (2, User, "mm yes".into(), Completed)
        ]
    );
    assert!(
        s.0.take_notices()
            .iter()
            .any(|n| matches!(n, Notice::OutOfOrderItem { item_id, .. } if item_id == "u1"))
    );
}

/// A transcription for an item whose place never came (a sideband that
/// attached after its commit) is not dropped: it becomes a line after the
/// others when the session ends, in the order the items were heard of.
#[test]
fn a_transcription_for_an_item_never_placed_is_kept_at_the_end() {
    let mut s = Script::new();
    s.ev(user_delta("u0", "Are "))
        .heard("u9", "Before that.")
        .ev(user_delta("u0", "you there"));
    s.user_turn("u1", None)
        .heard("u1", "Hello")
        .ev(transcription_failed("u8"));
    assert_eq!(s.lines(), [(1, User, "Hello".into(), Completed)]);
    s.0.end_session();
    assert_eq!(
        s.lines(),
        [
            (2, User, "Are you there".into(), Partial),
            (3, User, "Before that.".into(), Completed),
            (4, User, String::new(), TranscriptionFailed),
        ]
    );
    let unplaced: Vec<i64> =
        s.0.take_notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Unplaced {
                    sequence_number, ..
                } => Some(sequence_number),
                _ => None,
            })
            .collect();
    assert_eq!(unplaced, [2, 3, 4]);
}

/// A reply whose start scribe missed (its item was never added while
/// scribe listened) keeps its transcript: it is the reply being spoken, so
/// it takes its place at the end, and what follows it chains on.
#[test]
fn a_reply_whose_start_was_missed_keeps_its_transcript() {
    let mut s = Script::new();
    s.ev(ServerEvent::AgentTranscriptDelta {
        item_id: "a0".into(),
        delta: " busy".into(),
    })
    .ev(ServerEvent::AgentTranscriptDone {
        item_id: "a0".into(),
        transcript: "Keeping busy? ".into(),
    })
    .user_turn("u1", Some("a0"))
    .heard("u1", "Chilling.");
    assert_eq!(
        s.lines(),
        [
            (1, Agent, "Keeping busy? ".into(), Completed),
            (2, User, "Chilling.".into(), Completed)
        ]
    );
    assert!(
        !s.0.take_notices()
            .iter()
            .any(|n| matches!(n, Notice::OutOfOrderItem { .. })),
        "the next turn chains on it"
    );
    // Deltas alone, the session ending first: a partial line at the end.
    s.ev(ServerEvent::AgentTranscriptDelta {
        item_id: "a9".into(),
        delta: "Half a".into(),
    });
    s.0.end_session();
    assert_eq!(s.lines(), [(3, Agent, "Half a".into(), Partial)]);
}
