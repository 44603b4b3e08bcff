-- Finding an earlier copy of the same file (same checksum) in a project is an
-- index lookup, not a scan of every image (catalog/images.py, duplicate_of).
CREATE INDEX images_checksum_idx ON images (checksum) WHERE checksum IS NOT NULL;
