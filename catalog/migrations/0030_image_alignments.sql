-- Manual alignment of two images for side-by-side viewing (serial sections):
-- image_b's level-0 pixel p maps to image_a's level-0 pixel
--   scale * R(rotation) * p + (tx, ty)
-- with R rotating clockwise on screen (y down), rotation in degrees.
-- One row per unordered pair, stored with image_a < image_b; the API answers
-- either direction (inverting when asked the other way round).
CREATE TABLE image_alignments (
    image_a    bigint NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    image_b    bigint NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tx         double precision NOT NULL,
    ty         double precision NOT NULL,
    rotation   double precision NOT NULL,
    scale      double precision NOT NULL CHECK (scale > 0),
    updated_by bigint REFERENCES users(id) ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_a, image_b),
    CHECK (image_a < image_b)
);
CREATE INDEX image_alignments_b ON image_alignments (image_b);
