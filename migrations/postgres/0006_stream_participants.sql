-- Who is in each Stream call session, from `call.session_participant_joined`
-- and `call.session_participant_left` (keyed by the participant's
-- `user_session_id`: one user can be in a session from several devices or
-- after a rejoin). Kept in the database so that a restart or another
-- instance knows who is still in the call. A `left` may arrive before its
-- `joined`: the row then keeps `left_at`, and the late `joined` changes
-- nothing.
CREATE TABLE stream_participants (
    call_cid        TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    user_session_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    joined_at       TIMESTAMPTZ,
    left_at         TIMESTAMPTZ,
    PRIMARY KEY (call_cid, session_id, user_session_id)
);

-- Participant events name their call by `call_cid` only: its meeting is
-- found by it.
CREATE INDEX meetings_call_cid ON meetings (call_cid);
