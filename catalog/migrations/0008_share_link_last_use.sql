-- When a share link was last used (the links page shows it): set when a token is
-- checked against the database, i.e. at most every ~10 s per link and process.
ALTER TABLE share_links ADD COLUMN last_used_at timestamptz;
