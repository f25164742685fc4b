-- scribe schema, SQLite flavour. Mirrors migrations/postgres/0001_schema.sql.
-- Ids are UUIDs stored as 16-byte BLOBs, timestamps as RFC 3339 TEXT, JSON as TEXT.

CREATE TABLE agents (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    instructions TEXT NOT NULL,
    blueprint    TEXT,
    created_at   TEXT NOT NULL
);

CREATE TABLE meetings (
    id                    BLOB PRIMARY KEY NOT NULL,
    name                  TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    agent_id              BLOB NOT NULL REFERENCES agents (id),
    status                TEXT NOT NULL DEFAULT 'upcoming'
        CHECK (status IN ('upcoming', 'active', 'processing', 'completed', 'failed', 'cancelled')),
    prompt                TEXT,
    progress              TEXT,
    summary               TEXT,
    error                 TEXT,
    started_at            TEXT,
    ended_at              TEXT,
    processing_started_at TEXT,
    completed_at          TEXT,
    transcript_collected  INTEGER NOT NULL DEFAULT 0,
    -- a meeting creates at most one next meeting
    previous_meeting_id   BLOB UNIQUE REFERENCES meetings (id),
    -- the Stream call that carries this meeting, once a session started
    call_cid              TEXT,
    -- durable transcript counter: the highest sequence number ever handed out
    sequence_high_water   INTEGER NOT NULL DEFAULT 0,
    -- ownership lease: which instance's actor runs the call, until when, and
    -- a fencing epoch bumped on every takeover
    lease_owner           TEXT,
    lease_expires_at      TEXT,
    lease_epoch           INTEGER NOT NULL DEFAULT 0,
    -- set by an instance that received call.session_ended for a call another
    -- instance owns; the owner finalizes
    end_requested_at      TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);

CREATE INDEX meetings_user_created ON meetings (user_id, created_at);
CREATE INDEX meetings_status_created ON meetings (status, created_at);
CREATE INDEX meetings_agent ON meetings (agent_id);
CREATE INDEX meetings_lease ON meetings (status, lease_owner);

CREATE TABLE transcript_chunks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id      BLOB NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    -- NULL only for a `lost` line, whose speaker cannot be known
    speaker_type    TEXT CHECK ((speaker_type IS NOT NULL AND speaker_type IN ('user', 'agent'))
                                OR (speaker_type IS NULL AND status = 'lost')),
    text            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'completed'
        CHECK (status IN ('completed', 'partial', 'transcription_failed', 'lost')),
    item_id         TEXT,
    timestamp       TEXT NOT NULL,
    sequence_number INTEGER NOT NULL CHECK (sequence_number > 0),
    created_at      TEXT NOT NULL,
    -- also the (meeting_id, sequence_number) index of the original design
    UNIQUE (meeting_id, sequence_number)
);

CREATE INDEX transcript_chunks_meeting_timestamp ON transcript_chunks (meeting_id, timestamp);

CREATE TABLE analysis_jobs (
    meeting_id  BLOB PRIMARY KEY NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    state       TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'completed', 'failed')),
    attempt     INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    updated_at  TEXT NOT NULL
);

CREATE INDEX analysis_jobs_state ON analysis_jobs (state);

CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id  TEXT UNIQUE,
    event_type  TEXT NOT NULL,
    call_cid    TEXT,
    session_id  TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (call_cid, session_id, event_type)
);

CREATE TABLE meeting_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id BLOB NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);

CREATE INDEX meeting_events_meeting ON meeting_events (meeting_id, id);
