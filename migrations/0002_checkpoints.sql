-- 0002_checkpoints.sql: the checkpoints a job has written, and an index for
-- reading metrics incrementally by row id (Server-Sent Events, ?since=).
--
-- One row per checkpoint write (epoch end, pause, shutdown, end of
-- training). The file itself is <state-dir>/jobs/<id>/checkpoint.ckpt and
-- holds only the latest: the rows are the history of when it was written.

CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    iteration  INTEGER NOT NULL,
    path       TEXT    NOT NULL,
    reason     TEXT    NOT NULL
               CHECK (reason IN ('epoch', 'pause', 'shutdown', 'final')),
    created_at REAL    NOT NULL
);

CREATE INDEX checkpoints_by_job ON checkpoints (job_id, id);

CREATE INDEX metrics_by_job_id ON metrics (job_id, id);
