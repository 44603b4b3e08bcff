-- Viewer activity: opens, closes, sampled viewport positions and annotation actions.
-- Append-only and partitioned by day so retention drops whole partitions (no DELETE,
-- no vacuum debt) and inserts touch one small current partition.  Partitions are
-- created ahead and dropped past the retention by catalog/activity_store.py.
CREATE TABLE activity_events (
    at         timestamptz NOT NULL DEFAULT now(),
    user_id    bigint,                    -- no FK: the log outlives deleted users
    image_id   bigint,
    session_id bigint,                    -- one viewer session (open .. close) of a user
    kind       text NOT NULL,             -- open | view | close | annotation.<action>
    -- Viewport in level-0 pixels (view events): the rectangle the user saw.
    x real, y real, w real, h real,
    detail     jsonb
) PARTITION BY RANGE (at);

CREATE INDEX activity_events_image_at_idx ON activity_events (image_id, at);
CREATE INDEX activity_events_user_at_idx ON activity_events (user_id, at);
CREATE INDEX activity_events_session_idx ON activity_events (session_id, at);

CREATE FUNCTION activity_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'activity_events is append-only';
END $$;
CREATE TRIGGER activity_events_no_update BEFORE UPDATE OR DELETE ON activity_events
    FOR EACH ROW EXECUTE FUNCTION activity_events_append_only();

CREATE SEQUENCE activity_session_seq;
