-- Models trained by analyses (the pixel classifier's random forest): one per
-- analysis, uploaded by the worker of the running attempt, served once the
-- analysis is done. The bytes are the safe artifact of
-- analysis/classifier_model.py (an .npz without pickles, checked on upload and
-- on every load); meta is its JSON (classes, feature settings, provenance),
-- kept beside for listing. Deleting the analysis (or its image) deletes it.
CREATE TABLE analysis_models (
    analysis_id bigint PRIMARY KEY REFERENCES analyses ON DELETE CASCADE,
    attempt     integer NOT NULL,
    data        bytea NOT NULL,
    size        bigint NOT NULL,
    sha256      text NOT NULL,
    meta        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
