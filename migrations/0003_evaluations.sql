-- 0003_evaluations.sql: a model's evaluation on its data set's test split
-- (or, when the data set has none, its validation split): accuracy,
-- per-class accuracy and the confusion matrix.
--
-- One row per job (a model's id is its job's id): a newer evaluation, of a
-- newer checkpoint, replaces the older. The worker computes it once per
-- checkpoint (GET /v1/models/{id}/evaluation, and after a job succeeds) and
-- writes it here; the API reads it from here.

CREATE TABLE evaluations (
    job_id      INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    iteration   INTEGER NOT NULL,              -- of the checkpoint evaluated
    epoch       INTEGER NOT NULL,
    split       TEXT    NOT NULL CHECK (split IN ('test', 'validation')),
    num_samples INTEGER NOT NULL CHECK (num_samples >= 1),
    correct     INTEGER NOT NULL CHECK (correct >= 0 AND correct <= num_samples),
    accuracy    REAL    NOT NULL,              -- correct / num_samples
    result      TEXT    NOT NULL,              -- JSON: class_names, per_class_accuracy,
                                               -- confusion_matrix (rows: true class)
    duration_s  REAL    NOT NULL,
    created_at  REAL    NOT NULL
);
