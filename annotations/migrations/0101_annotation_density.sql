-- Counts of annotations per square cell of an image, at a few cell sizes, kept
-- in step by statement-level triggers (so COPY, INSERT, UPDATE, DELETE and
-- cascades all count).  Whole-slide overviews read these few thousand rows
-- instead of aggregating a million annotations.  A cell holds the number of
-- annotations whose bbox centre falls in it and the sums of those centres
-- (level-0 pixels), so cluster positions are true centroids.  Rows are never
-- deleted (n may drop to 0); readers skip n = 0.

CREATE TABLE annotation_density (
    image_id bigint NOT NULL REFERENCES images ON DELETE CASCADE,
    cell     integer NOT NULL,          -- cell side, px: 256, 1024 or 4096
    gx       integer NOT NULL,
    gy       integer NOT NULL,
    n        bigint NOT NULL,
    sx       double precision NOT NULL,
    sy       double precision NOT NULL,
    PRIMARY KEY (image_id, cell, gx, gy)
);

-- Add (sign > 0) or remove (sign < 0) annotations centred at (xs, ys).
-- Removal only updates existing rows: when an image is deleted its density
-- rows may already be gone, and nothing must be re-inserted for it.
CREATE FUNCTION annotation_density_apply(ids bigint[], xs float8[], ys float8[], sign integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ids IS NULL THEN
        RETURN;
    END IF;
    IF sign > 0 THEN
        INSERT INTO annotation_density AS d (image_id, cell, gx, gy, n, sx, sy)
        SELECT r.i, c.cell, floor(r.x / c.cell)::int, floor(r.y / c.cell)::int,
               count(*), sum(r.x), sum(r.y)
          FROM unnest(ids, xs, ys) AS r(i, x, y)
         CROSS JOIN (VALUES (256), (1024), (4096)) AS c(cell)
         GROUP BY 1, 2, 3, 4
        ON CONFLICT (image_id, cell, gx, gy) DO UPDATE
           SET n = d.n + EXCLUDED.n, sx = d.sx + EXCLUDED.sx, sy = d.sy + EXCLUDED.sy;
    ELSE
        UPDATE annotation_density d
           SET n = d.n - x.n, sx = d.sx - x.sx, sy = d.sy - x.sy
          FROM (SELECT r.i, c.cell, floor(r.x / c.cell)::int AS gx,
                       floor(r.y / c.cell)::int AS gy, count(*) AS n, sum(r.x) AS sx,
                       sum(r.y) AS sy
                  FROM unnest(ids, xs, ys) AS r(i, x, y)
                 CROSS JOIN (VALUES (256), (1024), (4096)) AS c(cell)
                 GROUP BY 1, 2, 3, 4) x
         WHERE d.image_id = x.i AND d.cell = x.cell AND d.gx = x.gx AND d.gy = x.gy;
    END IF;
END $$;

-- The bbox centre in image pixels (sbox is shifted by image_id * 2^26, see 0100).
CREATE FUNCTION annotation_center_x(image_id bigint, sbox box) RETURNS float8
    LANGUAGE sql IMMUTABLE AS
    $$ SELECT ((sbox[0])[0] + (sbox[1])[0]) / 2 - image_id * 67108864::float8 $$;
CREATE FUNCTION annotation_center_y(sbox box) RETURNS float8
    LANGUAGE sql IMMUTABLE AS $$ SELECT ((sbox[0])[1] + (sbox[1])[1]) / 2 $$;

CREATE FUNCTION annotation_density_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM annotation_density_apply(
            array_agg(image_id), array_agg(annotation_center_x(image_id, sbox)),
            array_agg(annotation_center_y(sbox)), 1) FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM annotation_density_apply(
            array_agg(image_id), array_agg(annotation_center_x(image_id, sbox)),
            array_agg(annotation_center_y(sbox)), -1) FROM old_rows;
    ELSE
        -- Only rows whose box moved (term or property edits change nothing here).
        PERFORM annotation_density_apply(
            array_agg(o.image_id), array_agg(annotation_center_x(o.image_id, o.sbox)),
            array_agg(annotation_center_y(o.sbox)), -1)
           FROM old_rows o JOIN new_rows w ON w.id = o.id WHERE NOT (o.sbox ~= w.sbox);
        PERFORM annotation_density_apply(
            array_agg(w.image_id), array_agg(annotation_center_x(w.image_id, w.sbox)),
            array_agg(annotation_center_y(w.sbox)), 1)
           FROM old_rows o JOIN new_rows w ON w.id = o.id WHERE NOT (o.sbox ~= w.sbox);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER annotation_density_insert AFTER INSERT ON annotations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION annotation_density_sync();
CREATE TRIGGER annotation_density_update AFTER UPDATE ON annotations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION annotation_density_sync();
CREATE TRIGGER annotation_density_delete AFTER DELETE ON annotations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION annotation_density_sync();
