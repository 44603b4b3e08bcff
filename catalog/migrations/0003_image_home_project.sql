-- An image's home project: the one it was uploaded or imported into.  Owner-level
-- actions on the image (rename, delete, share links, signed URLs) are decided
-- there (or by its uploader / an admin), never in a project it was later linked
-- into.  Existing images get their earliest project link.
ALTER TABLE images ADD COLUMN home_project_id bigint REFERENCES projects ON DELETE SET NULL;
UPDATE images i SET home_project_id = (
    SELECT pi.project_id FROM project_images pi WHERE pi.image_id = i.id
    ORDER BY pi.added_at, pi.project_id LIMIT 1);
CREATE INDEX images_home_project_idx ON images (home_project_id);

-- Signed tile URLs and share links are only as good as their creator's access:
-- remember who made a share link (created_by already exists) and let managers
-- find the links of their projects' images.
CREATE INDEX share_links_image_idx ON share_links (image_id);
CREATE INDEX share_links_project_idx ON share_links (project_id);
CREATE INDEX share_links_creator_idx ON share_links (created_by);
