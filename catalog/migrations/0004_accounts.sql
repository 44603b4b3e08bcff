-- Disabled accounts (kept, but nobody can act as them) and idle timeouts of
-- sessions (last_seen_at moves whenever the session is looked up).
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
ALTER TABLE sessions ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
