-- A reviewer: between contributor and manager.  Reviewers annotate like
-- contributors and also accept or reject the annotations of others in
-- projects that require review (annotations/review.py).
ALTER TABLE project_members DROP CONSTRAINT IF EXISTS project_members_role_check;
ALTER TABLE project_members ADD CONSTRAINT project_members_role_check
    CHECK (role IN ('manager', 'reviewer', 'contributor', 'viewer'));
-- Set by managers: annotations by non-reviewers stay pending until reviewed.
ALTER TABLE projects ADD COLUMN requires_review boolean NOT NULL DEFAULT false;
