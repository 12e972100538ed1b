-- 0001_init.sql: jobs and their metrics.
--
-- Applied by store.c inside one transaction, after which PRAGMA user_version
-- is 1. Times are Unix seconds (REAL, UTC); metric timestamps are Unix
-- milliseconds (INTEGER), MLflow's unit. Never edit a migration that has
-- shipped: add the next one.

CREATE TABLE jobs (
    -- AUTOINCREMENT: ids are never reused, so a job's checkpoint directory
    -- (<state-dir>/jobs/<id>) can never be inherited by a later job.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    spec        TEXT    NOT NULL,               -- the job spec JSON as accepted
    device      TEXT    NOT NULL,               -- resolved: "cpu", "cuda:0", ...
    status      TEXT    NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'paused',
                                  'succeeded', 'failed', 'cancelled')),
    created_at  REAL    NOT NULL,
    started_at  REAL,
    finished_at REAL,
    error       TEXT,
    progress    TEXT    NOT NULL DEFAULT '{}'   -- last progress JSON written
);

CREATE INDEX jobs_by_status ON jobs (status, id);

CREATE TABLE metrics (
    -- AUTOINCREMENT again: row ids are Server-Sent Event ids, and a row
    -- deleted after a crash must not have its id handed to a new row.
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,                 -- "loss", "train_acc", ...
    step      INTEGER NOT NULL,                 -- training iteration, 1-based
    value     REAL    NOT NULL,
    timestamp INTEGER NOT NULL,                 -- Unix ms
    UNIQUE (job_id, key, step)                  -- a double is an error, not a row
);
