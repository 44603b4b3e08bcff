-- Image and project properties (key-value), image description and tags, attached files.
-- Keys are short identifiers (no markup); values are plain text shown as text, never HTML.

CREATE TABLE image_properties (
    image_id   bigint NOT NULL REFERENCES images ON DELETE CASCADE,
    key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
    value      text NOT NULL CHECK (length(value) <= 2000),
    source     text NOT NULL DEFAULT 'user' CHECK (source IN ('user', 'scanner', 'csv')),
    updated_by bigint REFERENCES users ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, key)
);
-- Grid filters look images up by (key, value); sorts read one key per image.
CREATE INDEX image_properties_key_value_idx ON image_properties (key, lower(value));

CREATE TABLE project_properties (
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
    value      text NOT NULL CHECK (length(value) <= 2000),
    source     text NOT NULL DEFAULT 'user' CHECK (source IN ('user', 'scanner', 'csv')),
    updated_by bigint REFERENCES users ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, key)
);

-- Markdown source; the HTML shown is rendered and sanitised on the server.
ALTER TABLE images ADD COLUMN description text NOT NULL DEFAULT ''
    CHECK (length(description) <= 20000);
ALTER TABLE images ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
CREATE INDEX images_tags_idx ON images USING gin (tags);

-- Files attached to an image (reports, tables), stored beside the image (catalog/storage.py).
CREATE TABLE image_attachments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id     bigint NOT NULL REFERENCES images ON DELETE CASCADE,
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type text NOT NULL,               -- sniffed from the bytes, not the client's word
    size         bigint NOT NULL CHECK (size >= 0),
    sha256       text NOT NULL,
    uploaded_by  bigint REFERENCES users ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX image_attachments_image_idx ON image_attachments (image_id);
