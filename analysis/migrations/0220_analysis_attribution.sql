-- Who asked and who ran: an analysis' results belong to the person who pressed
-- Run (analyses.user_id, copied onto the result annotations when they are
-- linked), in the project the run was asked in; the worker that executed it is
-- recorded beside, as its account (the API key's user) and the name it gave.
ALTER TABLE analyses
    ADD COLUMN project_id  bigint REFERENCES projects ON DELETE SET NULL,
    ADD COLUMN executor_id bigint REFERENCES users ON DELETE SET NULL,
    ADD COLUMN executor    text;
