-- Failure counters of the login and member-lookup throttles, shared by every
-- `serve` process (catalog/ratelimit.py).  One row per (kind, key) and window;
-- rows whose window has closed are deleted by a periodic cleanup.
CREATE TABLE throttle_counters (
    kind text NOT NULL,            -- 'user', 'client', 'member'
    key text NOT NULL,             -- lower-cased user name, client address, user id
    failures integer NOT NULL CHECK (failures >= 0),
    window_end timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX throttle_counters_window_end ON throttle_counters (window_end);
