-- A reply the agent did not finish (cancelled, failed or incomplete
-- response, or cut off by the user) is kept as an `interrupted` line.
-- SQLite cannot change a CHECK constraint: the table is rebuilt.
CREATE TABLE transcript_chunks_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id      BLOB NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    -- NULL only for a `lost` line, whose speaker cannot be known
    speaker_type    TEXT CHECK ((speaker_type IS NOT NULL AND speaker_type IN ('user', 'agent'))
                                OR (speaker_type IS NULL AND status = 'lost')),
    text            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'completed'
        CHECK (status IN ('completed', 'partial', 'interrupted', 'transcription_failed', 'lost')),
    item_id         TEXT,
    timestamp       TEXT NOT NULL,
    sequence_number INTEGER NOT NULL CHECK (sequence_number > 0),
    created_at      TEXT NOT NULL,
    UNIQUE (meeting_id, sequence_number)
);

INSERT INTO transcript_chunks_new
    (id, meeting_id, speaker_type, text, status, item_id, timestamp, sequence_number, created_at)
SELECT id, meeting_id, speaker_type, text, status, item_id, timestamp, sequence_number, created_at
FROM transcript_chunks;

DROP TABLE transcript_chunks;
ALTER TABLE transcript_chunks_new RENAME TO transcript_chunks;
CREATE INDEX transcript_chunks_meeting_timestamp ON transcript_chunks (meeting_id, timestamp);
