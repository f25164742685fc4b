-- Ownership by instance, not by call (issue 27); mirrors the PostgreSQL file. Each life of an instance
-- is a member: it renews its own heartbeat, one row whatever its calls. A
-- call names the member that holds it (lease_owner, owner_epoch), written
-- only when the call is taken or ends; lease_epoch, bumped whenever the
-- call changes hands, is the token its writes are fenced by. A member whose
-- heartbeat is older than the lease is declared dead; its calls are taken.
CREATE TABLE members (
    instance     TEXT NOT NULL,
    epoch        INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('live', 'released', 'dead')),
    heartbeat_at TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    PRIMARY KEY (instance, epoch)
);

ALTER TABLE meetings ADD COLUMN owner_epoch INTEGER;
-- Whether the last taking of the call found its holder gone without a
-- release (read back by the statement that took it).
ALTER TABLE meetings ADD COLUMN taken_after_crash INTEGER NOT NULL DEFAULT 0;

-- Calls held under the per-call leases: a released lease (its expiry set
-- to the epoch) becomes a released member's (epoch 0), any other a dead
-- member's (epoch -1). Both are taken at once by the next live member.
INSERT INTO members (instance, epoch, state, heartbeat_at, started_at)
SELECT DISTINCT lease_owner,
       CASE WHEN lease_expires_at LIKE '1970-01-01%' THEN 0 ELSE -1 END,
       CASE WHEN lease_expires_at LIKE '1970-01-01%' THEN 'released' ELSE 'dead' END,
       '1970-01-01T00:00:00+00:00', '1970-01-01T00:00:00+00:00'
FROM meetings WHERE status = 'active' AND lease_owner IS NOT NULL;
UPDATE meetings SET owner_epoch = CASE WHEN lease_expires_at LIKE '1970-01-01%' THEN 0 ELSE -1 END
WHERE status = 'active' AND lease_owner IS NOT NULL;

DROP INDEX meetings_lease;
ALTER TABLE meetings DROP COLUMN lease_expires_at;

-- Each periodic statement reads one of these, which hold live calls only.
-- A member's calls (takeover of a dead member's, recovery):
CREATE INDEX meetings_held ON meetings (lease_owner, owner_epoch) WHERE status = 'active';
-- Calls nobody took (a start whose instance died before taking it):
CREATE INDEX meetings_unheld ON meetings (updated_at) WHERE status = 'active' AND lease_owner IS NULL;
-- Calls that ended at another instance than their holder:
CREATE INDEX meetings_ended_elsewhere ON meetings (lease_owner, owner_epoch)
    WHERE status = 'active' AND end_requested_at IS NOT NULL;
