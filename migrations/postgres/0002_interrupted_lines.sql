-- A reply the agent did not finish (cancelled, failed or incomplete
-- response, or cut off by the user) is kept as an `interrupted` line.
ALTER TABLE transcript_chunks DROP CONSTRAINT transcript_chunks_status_check;
ALTER TABLE transcript_chunks ADD CONSTRAINT transcript_chunks_status_check
    CHECK (status IN ('completed', 'partial', 'interrupted', 'transcription_failed', 'lost'));
