-- The default descriptor became cstats-v1 again (retrieval.descriptors; chosen on the
-- held-out halves of a hand-labelled set of real tissue, bench/retrieval_eval.py:
-- there cstats-v2 fell to the RGB histogram's level, cstats-v1 stayed a few points
-- above it).  The family is now a setting (MICROTOME_RETRIEVAL_DESCRIPTOR); vectors of
-- the old default are never searched under the new one: drop them, and queue every
-- annotation so that the background indexer (or `microtome reindex`) describes it
-- with the configured family.  Until then each request describes up to 32
-- annotations of its scope itself.

DELETE FROM annotation_descriptors WHERE family = 'cstats-v2';

INSERT INTO retrieval_queue (annotation_id, updated_at)
SELECT id, updated_at FROM annotations
ON CONFLICT (annotation_id) DO UPDATE SET updated_at = EXCLUDED.updated_at,
                                          claimed_until = NULL;
