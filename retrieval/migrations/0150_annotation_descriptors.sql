-- Retrieval: one descriptor per (annotation, descriptor family).
--
-- `vec` is the unit-length descriptor (retrieval.descriptors); a dot product
-- is the cosine similarity.  NULL: the annotation cannot be described (too
-- small or too large at the normalised scale), recorded so that it is not
-- retried on every query.  `source_updated_at` is the annotation's
-- updated_at when the descriptor was computed: a descriptor whose annotation
-- changed since is stale and never used (queries compare the two).  Deleting
-- an annotation deletes its descriptors (cascade).
--
-- With the pgvector extension available (the embedded PostgreSQL ships it)
-- `embedding` mirrors `vec` as vector(100) with an HNSW index for cosine
-- distance.  Without it (e.g. Debian's PostgreSQL 15) the column does not
-- exist and searches are exact sequential scans over `vec`
-- (retrieval.index decides at start-up).  100 = retrieval.descriptors.DIM.

CREATE TABLE annotation_descriptors (
    annotation_id     bigint NOT NULL REFERENCES annotations ON DELETE CASCADE,
    family            text NOT NULL,
    vec               real[],
    source_updated_at timestamptz NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (annotation_id, family)
);

-- Work to do: annotations created or changed since their descriptor was
-- computed (filled by triggers, emptied as descriptors are stored), so that
-- finding them never scans every annotation.  `updated_at` is the version
-- queued: a row is removed only when that very version has been described.
CREATE TABLE retrieval_queue (
    annotation_id bigint PRIMARY KEY REFERENCES annotations ON DELETE CASCADE,
    updated_at    timestamptz NOT NULL
);

CREATE FUNCTION retrieval_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO retrieval_queue (annotation_id, updated_at)
    SELECT id, updated_at FROM changed_rows
    ON CONFLICT (annotation_id) DO UPDATE SET updated_at = EXCLUDED.updated_at;
    RETURN NULL;
END
$$;

-- Statement-level (one INSERT ... SELECT per COPY or batch, not one per row).
CREATE TRIGGER annotations_retrieval_insert AFTER INSERT ON annotations
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION retrieval_enqueue();
CREATE TRIGGER annotations_retrieval_update AFTER UPDATE ON annotations
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION retrieval_enqueue();

INSERT INTO retrieval_queue (annotation_id, updated_at) SELECT id, updated_at FROM annotations;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS vector;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pgvector is available but this role may not create it: '
                         'retrieval uses exact search';
            RETURN;
        END;
        EXECUTE 'ALTER TABLE annotation_descriptors ADD COLUMN embedding vector(100) '
                'GENERATED ALWAYS AS (vec::vector(100)) STORED';
        EXECUTE 'CREATE INDEX annotation_descriptors_hnsw_idx ON annotation_descriptors '
                'USING hnsw (embedding vector_cosine_ops)';
    END IF;
END
$$;
