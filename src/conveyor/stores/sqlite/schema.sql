-- The embedded store's schema. One row per job; `seq` is the enqueue order
-- that breaks ties within a priority (FIFO). Partial indexes keep each hot
-- query (claim, promote, sweep, expire) an index seek over the rows it needs.

CREATE TABLE IF NOT EXISTS jobs (
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    queue            TEXT    NOT NULL,
    task             TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    payload          BLOB    NOT NULL,
    options          BLOB    NOT NULL,
    max_stalled      INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    stalls           INTEGER NOT NULL DEFAULT 0,
    token            TEXT,
    worker           TEXT,
    lease_until      INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    fence            INTEGER NOT NULL DEFAULT 0, -- claims so far: the fencing token
    keyed            INTEGER NOT NULL DEFAULT 0, -- 1 once it has rows in job_keys
    started_at       INTEGER,
    finished_at      INTEGER,
    expires_at       INTEGER,
    progress         BLOB,
    result           BLOB,
    error            BLOB
);

CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, priority DESC, run_at, seq)
    WHERE state = 'waiting';
CREATE INDEX IF NOT EXISTS jobs_scheduled ON jobs (queue, run_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (lease_until) WHERE state = 'active';
-- Listings page by (created_at, id), newest first, from a cursor (stores/sqlite/pages.py);
-- a listing of every queue merges a seek per queue. (Replaces jobs_listing and
-- jobs_listing_all, which ended in seq: id is the tie-break every store shares. One index
-- where there were two: every state change rewrites each entry.)
DROP INDEX IF EXISTS jobs_listing;
DROP INDEX IF EXISTS jobs_listing_all;
CREATE INDEX IF NOT EXISTS jobs_page ON jobs (queue, state, created_at, id);
-- Searching by task; task and created_at never change, so only inserts and deletes touch it.
CREATE INDEX IF NOT EXISTS jobs_task ON jobs (task, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (queue, state, finished_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;

-- Index keys of a job (stores/search.py): its searchable payload fields ('f:name=value',
-- written with the job) and, while it is failed, its error type and message words ('e:',
-- 'w:'). A queue whose tasks declare no search field and whose jobs do not fail writes
-- none; a deleted job takes its keys with it (job_keys_deleted, only for a job marked
-- keyed: a foreign key would probe this table for every deleted job).
CREATE TABLE IF NOT EXISTS job_keys (
    job_id     TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    created_at INTEGER NOT NULL, -- the job's: a search by key pages like a listing
    PRIMARY KEY (job_id, key)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS job_keys_seek ON job_keys (key, created_at, job_id);

CREATE TABLE IF NOT EXISTS job_logs (
    job_id TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    n      INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    line   TEXT    NOT NULL,
    PRIMARY KEY (job_id, n)
) WITHOUT ROWID;

-- How many jobs each queue holds in each state, kept by every step (stores/sqlite/counts.py).
CREATE TABLE IF NOT EXISTS job_counts (
    queue TEXT    NOT NULL,
    state TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS queues (
    name   TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Queue-level controls (stores/sqlite/limits.py), read by every claim of the queue.
CREATE TABLE IF NOT EXISTS queue_limits (
    queue         TEXT    PRIMARY KEY,
    concurrency   INTEGER,
    rate          INTEGER,
    period_ms     INTEGER NOT NULL DEFAULT 1000,
    backoff_until INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS task_limits (
    queue       TEXT    NOT NULL,
    task        TEXT    NOT NULL,
    concurrency INTEGER NOT NULL,
    PRIMARY KEY (queue, task)
) WITHOUT ROWID;

-- The sliding log of a rate-limited queue's claims: one row per claim step (n jobs).
CREATE TABLE IF NOT EXISTS queue_claims (
    queue TEXT    NOT NULL,
    at    INTEGER NOT NULL,
    n     INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS queue_claims_at ON queue_claims (queue, at);

CREATE TABLE IF NOT EXISTS workers (
    id         TEXT PRIMARY KEY,
    info       BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Schedules (stores/sqlite/schedules.py): one row each, fired by compare-and-set
-- on (version, next_fire) in the transaction that inserts the tick's jobs.
CREATE TABLE IF NOT EXISTS schedules (
    name        TEXT    PRIMARY KEY,
    queue       TEXT    NOT NULL,
    task        TEXT    NOT NULL,
    timing      TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    options     BLOB    NOT NULL,
    priority    INTEGER NOT NULL,
    max_stalled INTEGER NOT NULL,
    missed      TEXT    NOT NULL,
    grace_ms    INTEGER NOT NULL,
    next_fire   INTEGER NOT NULL,
    last_fire   INTEGER,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS schedules_due ON schedules (queue, next_fire);

-- Debounce and throttle keys (stores/sqlite/dedupe.py): the job a key points to, until when.
CREATE TABLE IF NOT EXISTS dedupe_keys (
    queue      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    job_id     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS dedupe_expiry ON dedupe_keys (expires_at);

-- What happened to jobs, written in the same transaction as the change itself.
-- Readers keep the last seq they saw as their cursor; the sweep keeps the newest rows.
CREATE TABLE IF NOT EXISTS job_events (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    queue  TEXT    NOT NULL,
    job_id TEXT    NOT NULL,
    kind   TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    data   BLOB
);

-- A job's timeline (events_of); progress events, the many, are left out of it.
CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, seq) WHERE kind != 'progress';

-- Minute counts of the metrics history (stores/sqlite/history.py), added to by each
-- process once per flush; labels joined by \x1f.
CREATE TABLE IF NOT EXISTS history (
    kind   TEXT    NOT NULL,
    minute INTEGER NOT NULL,
    labels TEXT    NOT NULL,
    value  INTEGER NOT NULL,
    PRIMARY KEY (kind, minute, labels)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS history_minute ON history (minute);

-- The same counts per hour, for windows of days (read at step 60, and the totals' whole hours).
CREATE TABLE IF NOT EXISTS history_hours (
    kind   TEXT    NOT NULL,
    hour   INTEGER NOT NULL,
    labels TEXT    NOT NULL,
    value  INTEGER NOT NULL,
    PRIMARY KEY (kind, hour, labels)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS history_hours_hour ON history_hours (hour);

-- Destructive actions (stores/sqlite/audit.py), trimmed by count and age on each append.
CREATE TABLE IF NOT EXISTS audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    counts     BLOB    NOT NULL,
    request_id TEXT
);

-- Flows (stores/sqlite/flows.py, flow_reports.py): a parent waits in 'waiting-children'
-- until each of its children has reported, which happens in the transaction that gives the
-- child its final state (whatever path does: an outcome, a stall, a release, a cancel).
CREATE TABLE IF NOT EXISTS flows (
    parent_id TEXT    PRIMARY KEY,
    policy    TEXT    NOT NULL, -- 'fail' | 'ignore': what a failed or cancelled child does
    pending   INTEGER NOT NULL, -- children that have not reported yet
    keep_ms   INTEGER NOT NULL  -- how long a parent failed by a child is kept
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS flow_children (
    child_id  TEXT    PRIMARY KEY,
    parent_id TEXT    NOT NULL,
    position  INTEGER NOT NULL,
    queue     TEXT    NOT NULL,
    state     TEXT,             -- NULL until the child reported
    value     BLOB              -- its result if completed, else its error
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS flow_children_order ON flow_children (parent_id, position);
-- Finishing a batch first asks whether any child is pending at all: one probe of this index.
CREATE INDEX IF NOT EXISTS flow_children_pending ON flow_children (child_id) WHERE state IS NULL;

-- A deleted parent (trimmed, purged, removed) takes its flow's rows with it.
CREATE TRIGGER IF NOT EXISTS flow_parent_deleted AFTER DELETE ON jobs
WHEN EXISTS (SELECT 1 FROM flows WHERE parent_id = OLD.id)
BEGIN
    DELETE FROM flow_children WHERE parent_id = OLD.id;
    DELETE FROM flows WHERE parent_id = OLD.id;
END;

CREATE TRIGGER IF NOT EXISTS job_keys_deleted AFTER DELETE ON jobs
WHEN OLD.keyed
BEGIN
    DELETE FROM job_keys WHERE job_id = OLD.id;
END;
