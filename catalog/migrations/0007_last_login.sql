-- Administrators see when each account last logged in (a stale account is a risk).
ALTER TABLE users ADD COLUMN last_login_at timestamptz;
