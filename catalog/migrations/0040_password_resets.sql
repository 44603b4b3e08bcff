-- Accounts a lab can run (issue 14): one-time password reset links, and a
-- forced password change after an administrator reset the account.
ALTER TABLE users ADD COLUMN must_change_password boolean NOT NULL DEFAULT false;
-- Only the SHA-256 of a link's token is stored.  A link works once, until it
-- expires, and only while it is the user's newest one: a newer link or a
-- password change sets revoked_at.
CREATE TABLE password_resets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    created_by  bigint REFERENCES users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);
