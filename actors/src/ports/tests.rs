use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::fakes::user_line;

fn line(n: i64) -> crate::transcript::Line {
    user_line(n, format!("line {n}"))
}

#[test]
fn a_batch_splits_by_meeting_keeping_each_meetings_order() {
    let (a, b, c) = (
        MeetingId::from_uuid(Uuid::from_u128(10)),
        MeetingId::from_uuid(Uuid::from_u128(11)),
        MeetingId::from_uuid(Uuid::from_u128(12)),
    );
    let event = |meeting, n| LoggedEvent {
        meeting,
        kind: EventKind::Gap,
        detail: json!({ "n": n }),
        at: Utc::now(),
    };
    let batch = WriteBatch {
        lines: vec![
            (a, line(1)),
            (b, line(1)),
            (a, line(2)),
            (c, line(1)),
            (a, line(3)),
        ],
        high_water: vec![(a, 4), (b, 2)],
        interrupted: vec![(c, 1)],
        events: vec![event(a, 1), event(b, 1), event(a, 2)],
        errors: vec![(b, Some("no socket".into()))],
        leases: vec![(a, 1), (b, 2), (c, 3)],
    };
    let parts = batch.clone().split(2);
    assert_eq!(parts.len(), 2);
    // Lane 0: the even ids (a and c), in their order; lane 1: b.
    let numbers = |part: &WriteBatch, m| -> Vec<i64> {
        part.lines
            .iter()
            .filter(|(id, _)| *id == m)
            .map(|(_, l)| l.sequence_number)
            .collect()
    };
    assert_eq!(numbers(&parts[0], a), [1, 2, 3]);
    assert_eq!(numbers(&parts[0], c), [1]);
    assert_eq!(parts[0].high_water, [(a, 4)]);
    assert_eq!(parts[0].interrupted, [(c, 1)]);
    assert_eq!(parts[0].leases, [(a, 1), (c, 3)]);
    assert_eq!(parts[1].leases, [(b, 2)]);
    assert_eq!(
        parts[0]
            .events
            .iter()
            .map(|e| e.detail["n"].clone())
            .collect::<Vec<_>>(),
        [json!(1), json!(2)]
    );
    assert!(parts[0].errors.is_empty());
    assert_eq!(numbers(&parts[1], b), [1]);
    assert_eq!(parts[1].high_water, [(b, 2)]);
    assert_eq!(parts[1].errors, [(b, Some("no socket".into()))]);
    // Nothing lost or added; one lane gives the batch back whole.
    let total = |parts: &[WriteBatch]| parts.iter().map(|p| p.lines.len()).sum::<usize>();
    assert_eq!(total(&parts), 5);
    assert_eq!(batch.clone().split(1), std::slice::from_ref(&batch));
    // A lane with nothing in it is left out.
    let only_b = WriteBatch {
        lines: vec![(b, line(1))],
        ..WriteBatch::default()
    };
    assert_eq!(only_b.clone().split(2), [only_b]);
}
