-- Viewport geometry precomputed at import (migration 0130): the GeoJSON text of the
-- geometry simplified for the working zoom band (see annotations.render.LOD_SCALE:
-- Douglas-Peucker at half a screen pixel for 2 image px per screen px, coordinates
-- rounded to 1/100 px), exactly what the viewport would compute at that scale.
-- NULL = not precomputed (rows written one by one): the viewport computes it.
ALTER TABLE annotations ADD COLUMN lod2 bytea;

-- A new geometry makes the stored text stale: drop it unless the same statement
-- sets a new one.
CREATE FUNCTION annotation_lod_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.lod2 := NULL;
    RETURN NEW;
END $$;

CREATE TRIGGER annotation_lod_reset BEFORE UPDATE OF geom ON annotations
    FOR EACH ROW WHEN (OLD.geom IS DISTINCT FROM NEW.geom
                       AND OLD.lod2 IS NOT DISTINCT FROM NEW.lod2)
    EXECUTE FUNCTION annotation_lod_reset();
