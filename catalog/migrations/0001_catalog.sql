-- Catalog schema: people, projects, images, uploads, jobs, share links, activity.
-- Secrets (session tokens, API keys) are stored as SHA-256 digests only.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL CHECK (length(username) BETWEEN 1 AND 64),
    password_hash text,                       -- argon2id; NULL = cannot log in
    is_admin      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE sessions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    csrf_token  text NOT NULL,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL,               -- first characters, to recognise a key in lists
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

CREATE TABLE projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    public      boolean NOT NULL DEFAULT false,   -- readable by anyone, incl. anonymous
    created_by  bigint REFERENCES users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX projects_name_key ON projects (lower(name));

CREATE TABLE project_members (
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('manager', 'contributor', 'viewer')),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id);

CREATE TABLE images (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    source_filename text NOT NULL DEFAULT '',
    format          text,
    width           bigint,
    height          bigint,
    levels          integer,
    pixel_size_um   double precision,
    channels        jsonb NOT NULL DEFAULT '[]',
    checksum        text,                     -- of the source file, "sha256:<hex>"
    storage_path    text,                     -- relative to settings.images_dir
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'converting', 'ready', 'failed')),
    version         text NOT NULL DEFAULT '0',  -- changes whenever the pixels change
    owner_id        bigint REFERENCES users ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_status_idx ON images (status);
CREATE INDEX images_name_idx ON images (lower(name));

CREATE TABLE project_images (
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    image_id   bigint NOT NULL REFERENCES images ON DELETE CASCADE,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, image_id)
);
CREATE INDEX project_images_image_idx ON project_images (image_id);

CREATE TABLE uploads (
    id           text PRIMARY KEY,            -- random, URL-safe
    user_id      bigint REFERENCES users ON DELETE CASCADE,
    project_id   bigint REFERENCES projects ON DELETE CASCADE,
    filename     text NOT NULL,
    length       bigint NOT NULL CHECK (length >= 0),
    "offset"     bigint NOT NULL DEFAULT 0 CHECK ("offset" >= 0 AND "offset" <= length),
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    completed_at timestamptz,
    image_id     bigint REFERENCES images ON DELETE SET NULL
);

CREATE TABLE jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL DEFAULT 'convert',
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    image_id     bigint REFERENCES images ON DELETE SET NULL,
    project_id   bigint REFERENCES projects ON DELETE SET NULL,
    user_id      bigint REFERENCES users ON DELETE SET NULL,
    upload_id    text REFERENCES uploads ON DELETE SET NULL,
    source_path  text NOT NULL,               -- absolute path of the input on this host
    delete_source boolean NOT NULL DEFAULT false,  -- uploads are removed, imports kept
    options      jsonb NOT NULL DEFAULT '{}',
    progress     real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    error        text,
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    run_after    timestamptz NOT NULL DEFAULT now(),
    worker       text,
    heartbeat_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX jobs_queue_idx ON jobs (run_after, id) WHERE status = 'queued';
CREATE INDEX jobs_image_idx ON jobs (image_id);

CREATE TABLE share_links (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id    bigint REFERENCES images ON DELETE CASCADE,
    project_id  bigint REFERENCES projects ON DELETE CASCADE,
    created_by  bigint REFERENCES users ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CHECK ((image_id IS NULL) <> (project_id IS NULL))
);

-- Append-only: the application only INSERTs here.
CREATE TABLE activity_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    user_id    bigint,                        -- no FK: the log outlives deleted users
    action     text NOT NULL,
    image_id   bigint,
    project_id bigint,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX activity_log_at_idx ON activity_log (at);

CREATE FUNCTION activity_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'activity_log is append-only';
END $$;
CREATE TRIGGER activity_log_no_update BEFORE UPDATE OR DELETE ON activity_log
    FOR EACH ROW EXECUTE FUNCTION activity_log_append_only();
