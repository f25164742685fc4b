-- Secrets every instance must agree on, generated once and kept here:
-- `page` keys the meeting pages' capabilities (unless SCRIBE_PAGE_SECRET
-- is set). Replacing a value revokes everything derived from it.
CREATE TABLE instance_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Why a meeting failed or was cancelled, as the provider put it (its raw
-- text can quote part of a key or name hosts): shown by `/admin` only.
-- `meetings.error` holds scribe's own short words, shown publicly.
ALTER TABLE meetings ADD COLUMN error_detail TEXT;
