-- The voice API each meeting's call runs on: OpenAI Realtime (`realtime`)
-- or GPT-Live (`live`); NULL before a call started.
ALTER TABLE meetings ADD COLUMN voice_api TEXT
    CHECK (voice_api IS NULL OR voice_api IN ('realtime', 'live'));

-- Where a line sits on its session's clock, in milliseconds: GPT-Live's
-- transcript comes as timed fragments. NULL for Realtime lines.
ALTER TABLE transcript_chunks ADD COLUMN start_ms BIGINT;
ALTER TABLE transcript_chunks ADD COLUMN end_ms BIGINT;
