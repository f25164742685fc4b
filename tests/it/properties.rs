//! Parsers and checks under property tests (`proptest`): webhook
//! signatures (Stream's and OpenAI's Standard Webhooks), webhook parsing,
//! and the event stream's cursor. Arbitrary input never panics; only the
//! exact signature of the exact body verifies. (The transcript model and
//! the SDP offer check have theirs beside them:
//! `scribe_actors::transcript::tests::props`, `scribe::http::calls::tests`.)

use proptest::prelude::*;
use scribe::openai::webhook::{self, OpenAiEvent};
use scribe::store::FeedCursor;
use scribe::stream::event::WebhookEvent;
use scribe::stream::signature;

const NOW: i64 = 1_780_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_stream_signature_verifies_its_own_body_only(
        secret in proptest::collection::vec(any::<u8>(), 1..48),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        flip in any::<prop::sample::Index>(),
        bit in 0..8u8,
        noise in "[ -~]{0,80}",
    ) {
        let signed = signature::sign(&secret, &body);
        prop_assert!(signature::verify(&secret, &body, &signed));
        prop_assert!(signature::verify(&secret, &body, &signed.to_uppercase()));
        // One bit of the body changed: refused.
        if !body.is_empty() {
            let mut other = body.clone();
            other[flip.index(body.len())] ^= 1 << bit;
            prop_assert!(!signature::verify(&secret, &other, &signed));
        }
        // Any other text as the signature: refused, never a panic.
        prop_assume!(noise.trim().to_lowercase() != signed);
        prop_assert!(!signature::verify(&secret, &body, &noise));
    }

    #[test]
    fn an_openai_signature_verifies_its_own_delivery_only(
        key in proptest::collection::vec(any::<u8>(), 1..48),
        id in "[a-z0-9_]{1,20}",
        skew in -300i64..=300,
        body in proptest::collection::vec(any::<u8>(), 0..256),
        flip in any::<prop::sample::Index>(),
        noise in "[ -~]{0,80}",
        stale in 301i64..100_000,
    ) {
        let at = NOW + skew;
        let signed = webhook::sign(&key, &id, at, &body);
        let stamp = at.to_string();
        let check = |id: &str, stamp: &str, signatures: &str, body: &[u8]| {
            webhook::verify(&key, Some(id), Some(stamp), Some(signatures), body, NOW)
        };
        prop_assert!(check(&id, &stamp, &signed, &body).is_ok());
        // Among other signatures (key rotation), in any position.
        let rotated = format!("v1,AAAA {signed}");
        prop_assert!(check(&id, &stamp, &rotated, &body).is_ok());
        // Another body, id or time: refused.
        if !body.is_empty() {
            let mut other = body.clone();
            other[flip.index(body.len())] ^= 0x01;
            prop_assert!(check(&id, &stamp, &signed, &other).is_err());
        }
        let other_id = format!("{id}x");
        prop_assert!(check(&other_id, &stamp, &signed, &body).is_err());
        let late = (NOW - stale).to_string();
        prop_assert!(check(&id, &late, &webhook::sign(&key, &id, NOW - stale, &body), &body).is_err());
        // Garbage anywhere: an error, never a panic.
        prop_assert!(
            check(&id, &noise, &signed, &body).is_err()
                || noise.trim().parse::<i64>().ok() == Some(at)
        );
        prop_assert!(check(&id, &stamp, &noise, &body).is_err());
        prop_assert!(webhook::verify(&key, None, Some(&stamp), Some(&signed), &body, NOW).is_err());
    }

    #[test]
    fn webhook_parsers_take_any_bytes_without_panicking(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "\\{\"(id|type|call_cid|data|call)\":(\"[a-z._]{0,20}\"|[0-9]{1,5}|null|\\{\\}|\\[\\]),?\"?[a-z_]{0,10}\"?:?[a-z0-9\"]{0,10}\\}"
                .prop_map(String::into_bytes),
        ]
    ) {
        let _ = WebhookEvent::parse(&body);
        if let Ok(event) = OpenAiEvent::parse(&body) {
            let _ = event.sip_header("To");
        }
    }

    #[test]
    fn an_openai_event_keeps_its_ids_opaque(
        id in "[ -~]{1,40}",
        call in "[ -~]{1,40}",
        live in any::<bool>(),
    ) {
        // Each API names its call in its own field.
        let (kind, field) = if live {
            ("live.transport.incoming", "session_id")
        } else {
            ("realtime.call.incoming", "call_id")
        };
        let body = serde_json::json!({
            "id": id, "type": kind, "data": { field: call }
        });
        let event = OpenAiEvent::parse(body.to_string().as_bytes()).expect("a documented shape");
        prop_assert_eq!(event.id, id);
        prop_assert_eq!(event.call_id, Some(call));
    }

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused(
        line in 0i64..1_000_000_000_000_000_000,
        event in 0i64..1_000_000_000_000_000_000,
        text in "[ -~]{0,40}",
    ) {
        let cursor = FeedCursor { line, event };
        prop_assert_eq!(cursor.to_string().parse::<FeedCursor>().ok(), Some(cursor));
        // Anything: refused unless it is exactly what the OpenAPI document's
        // pattern allows, and then a cursor that reads back the same.
        let pattern = text.split_once('-').is_some_and(|(a, b)| {
            [a, b].iter().all(|n| (1..=18).contains(&n.len()) && n.bytes().all(|c| c.is_ascii_digit()))
        });
        match text.parse::<FeedCursor>() {
            Ok(parsed) => {
                prop_assert!(pattern, "{text:?} is outside the pattern yet accepted");
                prop_assert_eq!(parsed.to_string().parse::<FeedCursor>().ok(), Some(parsed));
            }
            Err(_) => prop_assert!(!pattern, "{text:?} fits the pattern yet is refused"),
        }
    }
}
