-- The annotation tables sort by kind too, and the project-wide table by image
-- (its "Image" column): like the other sort keys (0110), an index range scan.
CREATE INDEX annotations_tbl_kind_idx ON annotations (image_id, kind, id);
CREATE INDEX annotations_project_image_idx ON annotations (project_id, image_id, id);
