//! Running notes in memory, as the real store keeps them.

use async_trait::async_trait;

use super::MemoryStore;
use crate::call_log::{CallEvent, Notes};
use crate::domain::{ChunkStatus, MeetingStatus};
use crate::ids::MeetingId;
use crate::ports::{NotesInput, NotesStore, PortError};

#[async_trait]
impl NotesStore for MemoryStore {
    async fn notes_input(
        &self,
        meeting: MeetingId,
        max_lines: usize,
    ) -> Result<Option<NotesInput>, PortError> {
        Ok(self.read(|m| {
            let fake = m.meetings.get(&meeting)?;
            if fake.status != MeetingStatus::Active {
                return None;
            }
            let after = fake.notes.as_ref().map_or(0, |n| n.through_line);
            Some(NotesInput {
                meeting_id: meeting,
                meeting_name: "Intro".into(),
                agent_name: "Coach".into(),
                notes: fake.notes.clone(),
                // Up to the first number not stored yet, as the real store.
                lines: fake
                    .lines
                    .range(after + 1..)
                    .zip(after + 1..)
                    .take_while(|((n, _), expected)| **n == *expected)
                    .map(|(line, _)| line)
                    .take(max_lines)
                    .map(|(n, l)| {
                        let speaker = (l.status != ChunkStatus::Lost).then_some(l.speaker);
                        (*n, speaker, l.text.clone())
                    })
                    .collect(),
            })
        }))
    }

    async fn save_notes(
        &self,
        meeting: MeetingId,
        text: &str,
        through_line: i64,
    ) -> Result<Option<Notes>, PortError> {
        Ok(self.update(|m| {
            let fake = m.meetings.get_mut(&meeting)?;
            let behind = fake
                .notes
                .as_ref()
                .is_none_or(|n| n.through_line < through_line);
            if fake.status != MeetingStatus::Active || !behind {
                return None;
            }
            let notes = Notes {
                text: text.to_owned(),
                through_line,
                version: fake.notes.as_ref().map_or(1, |n| n.version + 1),
            };
            let event = CallEvent::NotesUpdated(notes.clone());
            fake.events.push((event.kind(), event.detail()));
            fake.notes = Some(notes.clone());
            Some(notes)
        }))
    }
}
