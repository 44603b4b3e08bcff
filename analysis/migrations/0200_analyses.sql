-- Analyses: one run of an analysis app on one image (numbers 0200+ belong to
-- analysis; applied after the catalog's and the annotations' tables exist).
--
-- Results are annotations carrying analysis_id: deleting an analysis deletes
-- its results in the same statement (ON DELETE CASCADE), and deleting the
-- image deletes its analyses.

CREATE TABLE analyses (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id     bigint NOT NULL REFERENCES images ON DELETE CASCADE,
    user_id      bigint REFERENCES users ON DELETE SET NULL,
    app          text NOT NULL,
    version      text NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}',
    region       jsonb,                 -- {"x", "y", "w", "h"} level-0 pixels; NULL = whole image
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress     real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    log          text NOT NULL DEFAULT '',
    error        text,
    traceback    text,                  -- of a failed run: shown to the image's managers only
    attempts     integer NOT NULL DEFAULT 0,
    result_count integer,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    heartbeat_at timestamptz
);
CREATE INDEX analyses_image_idx ON analyses (image_id, id);
CREATE INDEX analyses_queued_idx ON analyses (id) WHERE status = 'queued';

ALTER TABLE annotations ADD COLUMN analysis_id bigint REFERENCES analyses ON DELETE CASCADE;
CREATE INDEX annotations_analysis_idx ON annotations (analysis_id) WHERE analysis_id IS NOT NULL;
-- A worker imports its results tagged producer = 'analysis:<id>/<attempt>' before they
-- are linked; removing the results of a run (all attempts) must not scan the table.
CREATE INDEX annotations_analysis_run_idx ON annotations (split_part(producer, '/', 1))
    WHERE producer LIKE 'analysis:%';
