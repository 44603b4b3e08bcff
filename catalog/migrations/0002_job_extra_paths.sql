-- Multi-file sources (a DICOM WSI series given as several .dcm files) are one
-- job: source_path is the first file, extra_paths the rest of the series.
ALTER TABLE jobs ADD COLUMN extra_paths text[] NOT NULL DEFAULT '{}';
