-- How each meeting's call reaches OpenAI: owned sessions (`openai`,
-- `stream`) or attached ones (`webrtc`, `sip`), and OpenAI's own call id
-- for an attached call. One meeting per provider call, however often a
-- webhook is delivered.
ALTER TABLE meetings ADD COLUMN transport TEXT
    CHECK (transport IS NULL OR transport IN ('openai', 'stream', 'webrtc', 'sip'));
ALTER TABLE meetings ADD COLUMN provider_call_id TEXT;
CREATE UNIQUE INDEX meetings_provider_call ON meetings (provider_call_id);

-- The phone numbers (E.164) that reach each agent; a number reaches one agent.
CREATE TABLE agent_phone_numbers (
    number   TEXT PRIMARY KEY NOT NULL,
    agent_id UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE
);
CREATE INDEX agent_phone_numbers_agent ON agent_phone_numbers (agent_id);
