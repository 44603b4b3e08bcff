-- Colours a user gave to the viewer's annotation layers (one per author or
-- analysis run: 'user:ID' / 'analysis:ID'), per project, so a reload keeps them.
-- Personal: nobody else sees or changes them; they go with the user or project.
CREATE TABLE layer_colors (
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    layer_key  text NOT NULL CHECK (layer_key ~ '^(user|analysis):[0-9]{1,18}$'),
    color      text NOT NULL CHECK (color ~ '^#[0-9a-f]{6}$'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, project_id, layer_key)
);
CREATE INDEX layer_colors_project_idx ON layer_colors (project_id);
