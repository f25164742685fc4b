-- Running notes of a call (issue 28): one current version a meeting, with
-- the last transcript line they cover. The analysis at the call's end reads
-- them and only the lines after `through_line`.
CREATE TABLE meeting_notes (
    meeting_id   BLOB PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    text         TEXT NOT NULL,
    through_line INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
);
