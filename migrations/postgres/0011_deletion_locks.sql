-- The deletion guard of 0010 at the strength the foreign key already takes.
-- 0010 locked the meeting's row FOR SHARE for every event-log entry and
-- notes written: that lock waits for, and is waited on by, every ordinary
-- change of the row (an end, a lease renewal, a finalize), which cost a
-- call's end several times its time at load. FOR KEY SHARE is the lock the
-- foreign key to `meetings` takes for the same insert anyway, so it costs
-- nothing more. It waits only for FOR UPDATE, which a deletion (alone)
-- takes before it changes the row; after the wait it reads the row as the
-- deletion left it. So an insert racing a deletion still either commits
-- before it (and is deleted with the rest) or sees the tombstone.
CREATE OR REPLACE FUNCTION scribe_skip_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone TIMESTAMPTZ;
BEGIN
    SELECT deleted_at INTO gone FROM meetings WHERE id = NEW.meeting_id FOR KEY SHARE;
    IF gone IS NOT NULL THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
