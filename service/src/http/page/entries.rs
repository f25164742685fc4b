//! What the public stream shows of a meeting's event log: only scribe's
//! own words, never the provider's.

use scribe_actors::domain::EventKind;
use serde_json::{Value, json};

use crate::store::FeedEvent;

/// A log entry as the stream shows it: its event name and data.
pub(super) fn entry_event(entry: FeedEvent) -> (&'static str, Value) {
    let (name, mut data) = match entry.kind {
        // Only scribe's own words: the provider's go to the log and /admin.
        EventKind::ConfigurationError | EventKind::SessionRefused => {
            let problem = json!({ "error": entry.detail["error"], "at": entry.created_at });
            return ("problem", problem);
        }
        EventKind::ReplyTruncated => {
            let change = json!({
                "sequence_number": entry.detail["sequence_number"],
                "status": "interrupted",
                "audio_end_ms": entry.detail["audio_end_ms"],
                "at": entry.created_at,
            });
            return ("line_status", change);
        }
        EventKind::CallEnded => ("ended", json!({ "lost_lines": entry.lost_lines })),
        // Where lines may be missing (a re-attach could not know): the
        // lines on either side and the time range, never a made-up count.
        EventKind::PossibleGap => {
            let hole = json!({
                "after": entry.detail["after"],
                "before": entry.detail["before"],
                "from": entry.detail["from"],
                "to": entry.detail["to"],
                "at": entry.created_at,
            });
            return ("hole", hole);
        }
        EventKind::StatusChanged => {
            let to = entry.detail["to"].clone();
            let mut change = json!({ "status": to });
            if to == "processing" {
                change["processing_started_at"] = json!(entry.created_at);
            }
            ("status", change)
        }
        _ => ("stage", json!({})),
    };
    if let (Value::Object(data), Value::Object(detail)) = (&mut data, entry.detail) {
        data.extend(detail);
        scrub(data);
        data.insert("at".into(), json!(entry.created_at));
    }
    (name, data)
}

/// Removes the provider's own text from what the public stream shows: its
/// error `message`s (which can quote part of a key, or name hosts), at any
/// depth. `/admin/meetings/{id}` keeps them.
fn scrub(data: &mut serde_json::Map<String, Value>) {
    data.remove("message");
    for value in data.values_mut() {
        match value {
            Value::Object(inner) => scrub(inner),
            Value::Array(items) => items.iter_mut().for_each(|item| {
                if let Value::Object(inner) = item {
                    scrub(inner);
                }
            }),
            _ => {}
        }
    }
}
