-- Background indexing (retrieval.indexer): queue rows are leased in batches.
--
-- Several indexers may drain the queue at once (every `serve` process, and
-- `microtome reindex`): each claims a batch by setting `claimed_until`, with
-- FOR UPDATE SKIP LOCKED, so none describes rows another holds; the lease of
-- a process that died expires and its rows are claimed again.  A row whose
-- annotation changes while leased is released (the new version must be
-- described; the old lease's store removes only the version it described).

ALTER TABLE retrieval_queue ADD COLUMN claimed_until timestamptz;

CREATE OR REPLACE FUNCTION retrieval_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO retrieval_queue (annotation_id, updated_at)
    SELECT id, updated_at FROM changed_rows
    ON CONFLICT (annotation_id) DO UPDATE
        SET updated_at = EXCLUDED.updated_at, claimed_until = NULL;
    RETURN NULL;
END
$$;
