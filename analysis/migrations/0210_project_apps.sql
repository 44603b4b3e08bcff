-- Per-project switches for analysis apps, and the queue's wake-up call.
--
-- An app is enabled everywhere unless a project's manager turns it off there;
-- only the exceptions are stored, so a newly installed app needs no rows.
CREATE TABLE project_apps_disabled (
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    app         text NOT NULL,
    disabled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, app)
);

-- Every analysis that becomes 'queued' (created, re-run or re-queued after a
-- dead worker) tells the listening servers at commit, so a worker waiting in
-- a long-poll claim starts at once instead of at its next poll.
CREATE FUNCTION analyses_queued_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('microtome_analysis_queue', NEW.app);
    RETURN NULL;
END $$;

CREATE TRIGGER analyses_queued_insert AFTER INSERT ON analyses
    FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION analyses_queued_notify();
CREATE TRIGGER analyses_queued_update AFTER UPDATE OF status ON analyses
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status IS DISTINCT FROM 'queued')
    EXECUTE FUNCTION analyses_queued_notify();
