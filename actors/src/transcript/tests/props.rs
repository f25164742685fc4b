//! The transcript model under arbitrary sequences of realtime events, with
//! garbage frames mixed in: it never panics, never numbers a line twice,
//! never stores an item twice, and never leaves a number without its line
//! (a line, once numbered, is never lost).
//!
//! Item ids come from one small pool for every session, so sessions name
//! the same items again: anything goes (repeats, unknown predecessors, any
//! order). An item keeps one line for the whole call.

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;

use super::*;
use crate::voice::event::{OutputItem, parse};

/// Item ids from a small pool, so that events meet the same items.
fn id() -> impl Strategy<Value = String> {
    (0..6u8).prop_map(|n| format!("item_{n}"))
}

fn prev() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), id().prop_map(Some)]
}

fn response() -> impl Strategy<Value = String> {
    (0..3u8).prop_map(|n| format!("resp_{n}"))
}

fn item(id: String, user: bool) -> ItemInfo {
    ItemInfo {
        id,
        kind: "message".into(),
        role: Some(if user { "user" } else { "assistant" }.into()),
        has_input_audio: user,
        has_text: false,
    }
}

/// One step: an event as the model gets it, or a frame off the socket
/// (well-formed or garbage) that goes through the parser first.
#[derive(Debug, Clone)]
enum Step {
    Event(ServerEvent),
    Frame(String),
    EndSession,
}

fn event() -> impl Strategy<Value = ServerEvent> {
    let text = "[a-z ]{0,12}";
    prop_oneof![
        (id(), prev()).prop_map(|(item_id, previous_item_id)| ServerEvent::InputCommitted {
            item_id,
            previous_item_id
        }),
        (id(), prev(), any::<bool>()).prop_map(|(i, p, user)| ServerEvent::ItemAdded {
            previous_item_id: p,
            item: item(i, user),
        }),
        (id(), prev(), any::<bool>()).prop_map(|(i, p, user)| ServerEvent::ItemDone {
            previous_item_id: p,
            item: item(i, user),
        }),
        (id(), text)
            .prop_map(|(item_id, delta)| ServerEvent::UserTranscriptDelta { item_id, delta }),
        (id(), text).prop_map(
            |(item_id, transcript)| ServerEvent::UserTranscriptCompleted {
                item_id,
                transcript
            }
        ),
        id().prop_map(|item_id| ServerEvent::UserTranscriptFailed {
            item_id,
            error: ErrorInfo::default(),
        }),
        response().prop_map(|response_id| ServerEvent::ResponseCreated { response_id }),
        (id(), text)
            .prop_map(|(item_id, delta)| ServerEvent::AgentTranscriptDelta { item_id, delta }),
        (id(), text).prop_map(|(item_id, transcript)| ServerEvent::AgentTranscriptDone {
            item_id,
            transcript
        }),
        (
            response(),
            prop_oneof![
                Just("completed"),
                Just("cancelled"),
                Just("failed"),
                Just("incomplete")
            ],
            proptest::collection::vec((id(), proptest::option::of(text)), 0..3)
        )
            .prop_map(|(response_id, status, output)| ServerEvent::ResponseDone {
                response_id,
                status: Some(status.into()),
                reason: None,
                error: None,
                output: output
                    .into_iter()
                    .map(|(id, transcript)| OutputItem { id, transcript })
                    .collect(),
            }),
        (id(), proptest::option::of(0..5_000u64)).prop_map(|(item_id, audio_end_ms)| {
            ServerEvent::ItemTruncated {
                item_id,
                audio_end_ms,
            }
        }),
        Just(ServerEvent::SpeechStarted),
        Just(ServerEvent::Audio),
    ]
}

/// Frames as the socket could carry them: documented ones with random
/// ids and text, truncated ones, and noise.
fn frame() -> impl Strategy<Value = String> {
    prop_oneof![
        (id(), "[a-z ]{0,8}").prop_map(|(i, t)| format!(
            r#"{{"type":"conversation.item.input_audio_transcription.completed","item_id":"{i}","content_index":0,"transcript":"{t}"}}"#
        )),
        (id(), "[a-z ]{0,8}").prop_map(|(i, t)| format!(
            r#"{{"type":"response.output_audio_transcript.delta","item_id":"{i}","delta":"{t}"}}"#
        )),
        (id(), prev()).prop_map(|(i, p)| format!(
            r#"{{"type":"conversation.item.added","previous_item_id":{},"item":{{"id":"{i}","type":"message","role":"user","content":[{{"type":"input_audio"}}]}}}}"#,
            p.map_or("null".to_owned(), |p| format!("\"{p}\""))
        )),
        any::<String>(),
        "\\{\"type\":\"[a-z._]{0,30}\"[^}]{0,40}\\}?",
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => event().prop_map(Step::Event),
        3 => frame().prop_map(Step::Frame),
        1 => Just(Step::EndSession),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_sequence_numbers_each_line_once_and_loses_none(
        steps in proptest::collection::vec(step(), 0..60)
    ) {
        let mut model = Conversation::new(1);
        let mut emitted: Vec<Line> = Vec::new();
        for step in steps {
            let event = match step {
                Step::Event(event) => Some(event),
                Step::Frame(frame) => parse(&frame).ok(),
                Step::EndSession => {
                    model.end_session();
                    None
                }
            };
            if let Some(event) = event {
                model.apply(&event, Utc::now());
            }
            emitted.extend(model.take_ready());
        }
        model.end_session();
        emitted.extend(model.take_ready());

        // Never numbered twice.
        let numbers: Vec<i64> = emitted.iter().map(|l| l.sequence_number).collect();
        let unique: BTreeSet<i64> = numbers.iter().copied().collect();
        prop_assert_eq!(unique.len(), numbers.len(), "a number given twice: {:?}", numbers);
        // Every number handed out has its line: 1..next, no hole.
        let expected: BTreeSet<i64> = (1..model.next_sequence()).collect();
        prop_assert_eq!(&unique, &expected);
        // A line is never emitted for an item twice.
        let items: Vec<&str> = emitted.iter().filter_map(|l| l.item_id.as_deref()).collect();
        let distinct: HashSet<&str> = items.iter().copied().collect();
        prop_assert_eq!(distinct.len(), items.len(), "an item stored twice: {:?}", items);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Both parsers take any frame: an event or an error, never a panic.
    #[test]
    fn both_parsers_take_any_frame(frame in prop_oneof![
        frame(),
        "\\{\"type\":\"session\\.(input|output)_transcript\\.delta\",\"delta\":\"[a-z]{0,5}\",\"start_ms\":-?[0-9]{0,20},\"end_ms\":-?[0-9]{0,20}\\}",
        "\\{\"type\":\"session\\.(closed|started)\"(,\"reason\":[a-z0-9\"]{0,10})?\\}",
    ]) {
        let _ = parse(&frame);
        let _ = crate::voice::gpt_live::parse_live(&frame);
    }
}
