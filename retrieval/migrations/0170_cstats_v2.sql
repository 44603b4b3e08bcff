-- The default descriptor became cstats-v2 (retrieval.descriptors: the same
-- blocks, texture weighted above colour).  cstats-v1 vectors are never
-- searched again: drop them, and queue every annotation so that the
-- background indexer (or `microtome reindex`) describes it with v2.  Until
-- then each request describes up to 32 annotations of its scope itself.

DELETE FROM annotation_descriptors WHERE family = 'cstats-v1';

INSERT INTO retrieval_queue (annotation_id, updated_at)
SELECT id, updated_at FROM annotations
ON CONFLICT (annotation_id) DO UPDATE SET updated_at = EXCLUDED.updated_at,
                                          claimed_until = NULL;
