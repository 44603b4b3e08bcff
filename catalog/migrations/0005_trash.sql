-- The trash: a deleted project, image or set of annotations is kept here, row
-- for row, until it is restored or purged (by hand or by the purge job once
-- purge_after has passed).  The live tables hold no trace of it, so nothing
-- (lists, tiles, annotations, share links, retrieval) can show it by mistake.
CREATE TABLE trash (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('project', 'image', 'annotations')),
    name        text NOT NULL,                -- what the list shows
    root_table  text NOT NULL,
    root_ids    bigint[] NOT NULL,
    project_id  bigint,                       -- the project whose managers may restore it
    image_id    bigint,                       -- the image (kind image / annotations)
    managers    bigint[] NOT NULL DEFAULT '{}',  -- that project's managers at deletion
    summary     jsonb NOT NULL DEFAULT '{}',  -- counts: images, annotations, authors...
    files       text[] NOT NULL DEFAULT '{}', -- kept originals removed at purge
    deleted_by  bigint REFERENCES users ON DELETE SET NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    purge_after timestamptz NOT NULL
);
CREATE INDEX trash_purge_idx ON trash (purge_after);
CREATE INDEX trash_project_idx ON trash (project_id);

-- The rows that went, as jsonb (to_jsonb of the row), keyed by their primary key.
CREATE TABLE trash_rows (
    trash_id bigint NOT NULL REFERENCES trash ON DELETE CASCADE,
    tbl      text NOT NULL,
    pk       text NOT NULL,
    data     jsonb NOT NULL,
    PRIMARY KEY (trash_id, tbl, pk)
);

-- References that ON DELETE SET NULL cleared (an image's home project...),
-- put back on restore when the referencing row still exists.
CREATE TABLE trash_nulls (
    trash_id bigint NOT NULL REFERENCES trash ON DELETE CASCADE,
    tbl      text NOT NULL,
    pk       text NOT NULL,
    col      text NOT NULL,
    val      text NOT NULL
);
CREATE INDEX trash_nulls_idx ON trash_nulls (trash_id);
