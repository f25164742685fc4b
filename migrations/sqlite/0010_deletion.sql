-- Deletion and retention (issue 29). A deleted meeting stays as a
-- tombstone: its row keeps its id, agent, times, `deleted_at` and the
-- provider's ids of its call (so that a late webhook about the call is
-- recognised and dropped); everything it said, and everything said about
-- it, is gone. A deleted agent likewise keeps its id and times.
ALTER TABLE meetings ADD COLUMN deleted_at TEXT;
ALTER TABLE agents ADD COLUMN deleted_at TEXT;

-- The retention sweep reads ended meetings, oldest first.
CREATE INDEX meetings_retention ON meetings (COALESCE(ended_at, updated_at))
    WHERE deleted_at IS NULL AND status IN ('completed', 'failed', 'cancelled');
-- Meetings of a deleted agent not deleted yet (an agent's deletion cut short).
CREATE INDEX meetings_undeleted_agent ON meetings (agent_id) WHERE deleted_at IS NULL;

-- Nothing is written about a deleted meeting, whoever writes it: an
-- event-log entry or notes for a tombstone are skipped (SQLite writes one
-- transaction at a time: no race to close). Transcript lines are fenced
-- by the lease epoch the deletion bumps.
CREATE TRIGGER meeting_events_of_deleted BEFORE INSERT ON meeting_events
    WHEN EXISTS (SELECT 1 FROM meetings WHERE id = NEW.meeting_id AND deleted_at IS NOT NULL)
BEGIN
    SELECT RAISE(IGNORE);
END;
CREATE TRIGGER meeting_notes_of_deleted BEFORE INSERT ON meeting_notes
    WHEN EXISTS (SELECT 1 FROM meetings WHERE id = NEW.meeting_id AND deleted_at IS NOT NULL)
BEGIN
    SELECT RAISE(IGNORE);
END;

-- Background work one instance at a time (the retention sweep): who holds
-- it, until when.
CREATE TABLE upkeep (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);
