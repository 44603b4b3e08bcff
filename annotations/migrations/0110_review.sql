-- Review of annotations (annotations/review.py) and the indexes of the
-- annotation table's sort keys (annotations/table.py).
--
-- review_status NULL means "not reviewed yet" (pending where the project
-- requires review).  Adding nullable columns without a default rewrites
-- nothing, so this is quick on big tables.
ALTER TABLE annotations
    ADD COLUMN review_status text CHECK (review_status IN ('accepted', 'rejected')),
    ADD COLUMN reviewed_by   bigint REFERENCES users ON DELETE SET NULL,
    ADD COLUMN reviewed_at   timestamptz,
    ADD COLUMN review_reason text CHECK (length(review_reason) <= 2000);

-- Every review action, append-only: who reviewed what, when, and what changed.
CREATE TABLE annotation_reviews (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    annotation_id bigint NOT NULL REFERENCES annotations ON DELETE CASCADE,
    image_id      bigint NOT NULL REFERENCES images ON DELETE CASCADE,
    project_id    bigint REFERENCES projects ON DELETE CASCADE,
    reviewer_id   bigint REFERENCES users ON DELETE SET NULL,
    action        text NOT NULL CHECK (action IN ('accept', 'reject')),
    terms_before  bigint[] NOT NULL,
    terms_after   bigint[] NOT NULL,
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX annotation_reviews_annotation_idx ON annotation_reviews (annotation_id, id);
CREATE INDEX annotation_reviews_image_idx ON annotation_reviews (image_id, id);

-- Keyset pagination of the table: one btree per sort key, (image, key, id), so
-- the first page of any sort is an index range scan whatever the image's size.
-- Nullable keys are indexed through the same COALESCE the queries use.
CREATE INDEX annotations_tbl_created_idx ON annotations (image_id, created_at, id);
CREATE INDEX annotations_tbl_area_idx ON annotations (image_id, area_px, id);
CREATE INDEX annotations_tbl_perimeter_idx ON annotations (image_id, perimeter_px, id);
CREATE INDEX annotations_tbl_author_idx ON annotations (image_id, (COALESCE(user_id, 0)), id);
CREATE INDEX annotations_tbl_term_idx ON annotations (image_id, (COALESCE(term_ids[1], 0)), id);
CREATE INDEX annotations_tbl_status_idx
    ON annotations (image_id, (COALESCE(review_status, 'pending')), id);
-- The project-wide table and statistics.
CREATE INDEX annotations_project_idx ON annotations (project_id, id);
