-- scribe schema, PostgreSQL flavour. Mirrors migrations/sqlite/0001_schema.sql.

CREATE TABLE agents (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    instructions TEXT NOT NULL,
    blueprint    JSONB,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE meetings (
    id                    UUID PRIMARY KEY,
    name                  TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    agent_id              UUID NOT NULL REFERENCES agents (id),
    status                TEXT NOT NULL DEFAULT 'upcoming'
        CHECK (status IN ('upcoming', 'active', 'processing', 'completed', 'failed', 'cancelled')),
    prompt                TEXT,
    progress              JSONB,
    summary               TEXT,
    error                 TEXT,
    started_at            TIMESTAMPTZ,
    ended_at              TIMESTAMPTZ,
    processing_started_at TIMESTAMPTZ,
    completed_at          TIMESTAMPTZ,
    transcript_collected  BOOLEAN NOT NULL DEFAULT FALSE,
    -- a meeting creates at most one next meeting
    previous_meeting_id   UUID UNIQUE REFERENCES meetings (id),
    -- the Stream call that carries this meeting, once a session started
    call_cid              TEXT,
    -- durable transcript counter: the highest sequence number ever handed out
    sequence_high_water   BIGINT NOT NULL DEFAULT 0,
    -- ownership lease: which instance's actor runs the call, until when, and
    -- a fencing epoch bumped on every takeover
    lease_owner           TEXT,
    lease_expires_at      TIMESTAMPTZ,
    lease_epoch           BIGINT NOT NULL DEFAULT 0,
    -- set by an instance that received call.session_ended for a call another
    -- instance owns; the owner finalizes
    end_requested_at      TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

CREATE INDEX meetings_user_created ON meetings (user_id, created_at);
CREATE INDEX meetings_status_created ON meetings (status, created_at);
CREATE INDEX meetings_agent ON meetings (agent_id);
CREATE INDEX meetings_lease ON meetings (status, lease_owner);

CREATE TABLE transcript_chunks (
    id              BIGSERIAL PRIMARY KEY,
    meeting_id      UUID NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    -- NULL only for a `lost` line, whose speaker cannot be known
    speaker_type    TEXT CHECK ((speaker_type IS NOT NULL AND speaker_type IN ('user', 'agent'))
                                OR (speaker_type IS NULL AND status = 'lost')),
    text            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'completed'
        CHECK (status IN ('completed', 'partial', 'transcription_failed', 'lost')),
    item_id         TEXT,
    timestamp       TIMESTAMPTZ NOT NULL,
    sequence_number BIGINT NOT NULL CHECK (sequence_number > 0),
    created_at      TIMESTAMPTZ NOT NULL,
    -- also the (meeting_id, sequence_number) index of the original design
    UNIQUE (meeting_id, sequence_number)
);

CREATE INDEX transcript_chunks_meeting_timestamp ON transcript_chunks (meeting_id, timestamp);

CREATE TABLE analysis_jobs (
    meeting_id  UUID PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    state       TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'completed', 'failed')),
    attempt     INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX analysis_jobs_state ON analysis_jobs (state);

CREATE TABLE webhook_deliveries (
    id          BIGSERIAL PRIMARY KEY,
    webhook_id  TEXT UNIQUE,
    event_type  TEXT NOT NULL,
    call_cid    TEXT,
    session_id  TEXT,
    received_at TIMESTAMPTZ NOT NULL,
    UNIQUE (call_cid, session_id, event_type)
);

CREATE TABLE meeting_events (
    id         BIGSERIAL PRIMARY KEY,
    meeting_id UUID NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    detail     JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX meeting_events_meeting ON meeting_events (meeting_id, id);
