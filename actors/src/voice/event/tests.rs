//! The parser against frames written from the documented shapes.

use super::*;

#[test]
fn audio_frames_are_skipped_whatever_they_carry() {
    let frame = r#"{"type":"response.output_audio.delta","event_id":"e1","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"AAAA////"}"#;
    assert_eq!(parse(frame).expect("parses"), ServerEvent::Audio);
    // Not leading with `type`: still recognised after a full parse.
    let frame = r#"{"event_id":"e1","type":"response.audio.delta","delta":"AAAA"}"#;
    assert_eq!(parse(frame).expect("parses"), ServerEvent::Audio);
}

#[test]
fn ga_and_beta_item_events_parse_alike() {
    for kind in ["conversation.item.added", "conversation.item.created"] {
        let frame = format!(
            r#"{{"type":"{kind}","event_id":"e","previous_item_id":"item_a","item":{{"id":"item_b","type":"message","role":"user","status":"completed","content":[{{"type":"input_audio","transcript":null}}],"extra":1}}}}"#
        );
        assert_eq!(
            parse(&frame).expect("parses"),
            ServerEvent::ItemAdded {
                previous_item_id: Some("item_a".into()),
                item: ItemInfo {
                    id: "item_b".into(),
                    kind: "message".into(),
                    role: Some("user".into()),
                    has_input_audio: true,
                    has_text: false,
                },
            }
        );
    }
}

#[test]
fn agent_transcripts_by_ga_and_beta_names() {
    for kind in [
        "response.output_audio_transcript.done",
        "response.audio_transcript.done",
    ] {
        let frame = format!(
            r#"{{"type":"{kind}","event_id":"e","response_id":"r1","item_id":"item_c","output_index":0,"content_index":0,"transcript":"Hello there."}}"#
        );
        assert_eq!(
            parse(&frame).expect("parses"),
            ServerEvent::AgentTranscriptDone {
                item_id: "item_c".into(),
                transcript: "Hello there.".into()
            }
        );
    }
    let text_done = r#"{"type":"response.output_text.done","item_id":"item_c","text":"Hi."}"#;
    assert_eq!(
        parse(text_done).expect("parses"),
        ServerEvent::AgentTranscriptDone {
            item_id: "item_c".into(),
            transcript: "Hi.".into()
        }
    );
}

#[test]
fn session_updated_reports_whether_transcription_is_on() {
    let on = r#"{"type":"session.updated","session":{"type":"realtime","audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}}}}"#;
    assert_eq!(
        parse(on).expect("parses"),
        ServerEvent::SessionUpdated {
            transcription_on: true
        }
    );
    let off = r#"{"type":"session.updated","session":{"audio":{"input":{"transcription":null}}}}"#;
    assert_eq!(
        parse(off).expect("parses"),
        ServerEvent::SessionUpdated {
            transcription_on: false
        }
    );
    let beta = r#"{"type":"session.updated","session":{"input_audio_transcription":{"model":"whisper-1"}}}"#;
    assert_eq!(
        parse(beta).expect("parses"),
        ServerEvent::SessionUpdated {
            transcription_on: true
        }
    );
    let created = r#"{"type":"session.created","session":{"expires_at":1760000000}}"#;
    assert_eq!(
        parse(created).expect("parses"),
        ServerEvent::SessionCreated {
            expires_at: Some(1_760_000_000)
        }
    );
}

#[test]
fn errors_and_unknown_types() {
    let err = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"session_expired","message":"Your session hit the maximum duration of 60 minutes.","param":null,"event_id":null}}"#;
    assert_eq!(
        parse(err).expect("parses"),
        ServerEvent::Error(ErrorInfo {
            kind: Some("invalid_request_error".into()),
            code: Some("session_expired".into()),
            message: "Your session hit the maximum duration of 60 minutes.".into(),
            param: None,
            event_id: None,
            flat: false,
        })
    );
    assert_eq!(
        parse(r#"{"type":"rate_limits.updated","rate_limits":[]}"#).expect("parses"),
        ServerEvent::Other
    );
    assert_eq!(
        parse(r#"{"type":"something.new","x":{"y":[1,2]}}"#).expect("parses"),
        ServerEvent::Other
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for frame in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"type":5}"#,
        "{\"type\":\"error\"}",
    ] {
        assert!(parse(frame).is_err(), "{frame:?} should not parse");
    }
}

// The fixtures below follow the `openai` package's generated types (3.57,
// `openai/types/realtime/`) and PROTOCOL's Stream section, not this parser.

#[test]
fn a_cancelled_response_done_carries_its_status_reason_and_output_transcripts() {
    let frame = r#"{"type":"response.done","event_id":"event_9","response":{"object":"realtime.response","id":"resp_1","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[{"id":"item_a","object":"realtime.item","type":"message","status":"incomplete","role":"assistant","content":[{"type":"output_audio","transcript":"Sure, the first step is"}]}],"conversation_id":"conv_1","output_modalities":["audio"],"max_output_tokens":"inf","usage":null}}"#;
    assert_eq!(
        parse(frame).expect("parses"),
        ServerEvent::ResponseDone {
            response_id: "resp_1".into(),
            status: Some("cancelled".into()),
            reason: Some("turn_detected".into()),
            error: None,
            output: vec![OutputItem {
                id: "item_a".into(),
                transcript: Some("Sure, the first step is".into()),
            }],
        }
    );
    let failed = r#"{"type":"response.done","event_id":"e","response":{"id":"resp_2","status":"failed","status_details":{"type":"failed","error":{"type":"server_error","code":"internal","message":"The server had an error."}},"output":[]}}"#;
    let ServerEvent::ResponseDone {
        status,
        error,
        output,
        ..
    } = parse(failed).expect("parses")
    else {
        panic!("response.done");
    };
    assert_eq!(status.as_deref(), Some("failed"));
    assert_eq!(error.as_deref(), Some("The server had an error."));
    assert!(output.is_empty());
}

#[test]
fn truncation_names_the_item_and_where_the_audio_stopped() {
    let frame = r#"{"type":"conversation.item.truncated","event_id":"event_2","item_id":"item_a","content_index":0,"audio_end_ms":1500}"#;
    assert_eq!(
        parse(frame).expect("parses"),
        ServerEvent::ItemTruncated {
            item_id: "item_a".into(),
            audio_end_ms: Some(1500),
        }
    );
}

#[test]
fn user_transcription_deltas_and_failures_keep_what_they_say() {
    let delta = r#"{"type":"conversation.item.input_audio_transcription.delta","event_id":"e","item_id":"item_u","content_index":0,"delta":"Hello, ","logprobs":null}"#;
    assert_eq!(
        parse(delta).expect("parses"),
        ServerEvent::UserTranscriptDelta {
            item_id: "item_u".into(),
            delta: "Hello, ".into(),
        }
    );
    let failed = r#"{"type":"conversation.item.input_audio_transcription.failed","event_id":"e","item_id":"item_u","content_index":0,"error":{"type":"transcription_error","code":"audio_unintelligible","message":"The audio could not be transcribed.","param":null}}"#;
    assert_eq!(
        parse(failed).expect("parses"),
        ServerEvent::UserTranscriptFailed {
            item_id: "item_u".into(),
            error: ErrorInfo {
                kind: Some("transcription_error".into()),
                code: Some("audio_unintelligible".into()),
                message: "The audio could not be transcribed.".into(),
                param: None,
                event_id: None,
                flat: false,
            },
        }
    );
}

#[test]
fn speech_start_and_stop_are_recognised() {
    let started = r#"{"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":1000,"item_id":"item_u"}"#;
    let stopped = r#"{"type":"input_audio_buffer.speech_stopped","event_id":"e","audio_end_ms":2000,"item_id":"item_u"}"#;
    assert_eq!(parse(started).expect("parses"), ServerEvent::SpeechStarted);
    assert_eq!(parse(stopped).expect("parses"), ServerEvent::SpeechStopped);
}

/// The GA shape (`InputAudioBufferTimeoutTriggered` in OpenAI's types).
#[test]
fn an_idle_timeout_names_the_silence_item() {
    let frame = r#"{"type":"input_audio_buffer.timeout_triggered","event_id":"event_9","audio_start_ms":13216,"audio_end_ms":19232,"item_id":"item_silence"}"#;
    assert_eq!(
        parse(frame).expect("parses"),
        ServerEvent::InputTimeout {
            item_id: "item_silence".into()
        }
    );
}

#[test]
fn a_refused_session_update_names_its_field_and_client_event() {
    let frame = r#"{"type":"error","event_id":"event_5","error":{"type":"invalid_request_error","code":"invalid_value","message":"Invalid value: 'gpt-4o-transcribe-x'. Supported values are: 'whisper-1', 'gpt-4o-transcribe'.","param":"session.audio.input.transcription.model","event_id":"scribe_session_update"}}"#;
    let ServerEvent::Error(error) = parse(frame).expect("parses") else {
        panic!("an error");
    };
    assert_eq!(
        error.param.as_deref(),
        Some("session.audio.input.transcription.model")
    );
    assert_eq!(error.event_id.as_deref(), Some("scribe_session_update"));
    assert!(!error.flat);
}

#[test]
fn streams_flat_server_error_is_an_error_with_its_code() {
    // Stream's agent endpoint answers GA clients with exactly this.
    let frame = r#"{"type":"server_error","code":"42","message":"Error:  code "}"#;
    assert_eq!(
        parse(frame).expect("parses"),
        ServerEvent::Error(ErrorInfo {
            kind: Some("server_error".into()),
            code: Some("42".into()),
            message: "Error:  code ".into(),
            param: None,
            event_id: None,
            flat: true,
        })
    );
    // A numeric code is taken as its digits.
    let numeric = r#"{"type":"server_error","code":42,"message":"x"}"#;
    let ServerEvent::Error(error) = parse(numeric).expect("parses") else {
        panic!("an error");
    };
    assert_eq!(error.code.as_deref(), Some("42"));
}

#[test]
fn a_retrieved_item_carries_its_transcript_and_no_predecessor() {
    let frame = r#"{"type":"conversation.item.retrieved","event_id":"event_3","item":{"id":"item_u7","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":"Can we move it to Friday?","audio":"AAAA"}]}}"#;
    assert_eq!(
        parse(frame).expect("parses"),
        ServerEvent::ItemRetrieved {
            item: ItemInfo {
                id: "item_u7".into(),
                kind: "message".into(),
                role: Some("user".into()),
                has_input_audio: true,
                has_text: false,
            },
            text: Some("Can we move it to Friday?".into()),
        }
    );
}
