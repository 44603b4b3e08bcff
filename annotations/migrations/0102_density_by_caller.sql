-- Bulk imports keep `annotation_density` in step themselves: they know the
-- boxes of the rows they COPY, add them up per cell in numpy and write the
-- sums once per import.  The trigger's aggregation (array_agg + unnest +
-- GROUP BY over three cell sizes per COPY) cost ~7 µs of server CPU per row,
-- a quarter of the server's share of an import.  An import says so with the
-- transaction-local setting microtome.density_by_caller = 'on' (SET LOCAL,
-- so it ends with the import's transaction); every other write, and an
-- import's deletes or updates, if any, go through the trigger as before.
CREATE OR REPLACE FUNCTION annotation_density_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF current_setting('microtome.density_by_caller', true) = 'on' THEN
            RETURN NULL;
        END IF;
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
