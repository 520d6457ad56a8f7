-- Schema version 3: what the management reads and operations need (listings by cursor,
-- index-backed search, job timelines, counts that are kept, history, audit, schedule
-- pause) and the rate limiter's states.

-- Ids compare by code point (COLLATE "C"), as every store orders them: a page's tie-break
-- on (created_at, id), an id-prefix search (id >= prefix AND id < prefix || U+10FFFF) and
-- the cursors Python builds all agree whatever the database's collation. Equality, which
-- is all the other uses of an id need, is the same under every deterministic collation.
ALTER TABLE {schema}.jobs ALTER COLUMN id TYPE text COLLATE "C";

-- Set once a job has rows in job_keys, so deleting the others touches nothing there.
ALTER TABLE {schema}.jobs ADD COLUMN keyed boolean NOT NULL DEFAULT false;

-- Listings page newest first by (created_at, id) from a cursor (pages.py); a listing of
-- every queue merges one seek per queue. Replaces jobs_listing, which ended in seq.
DROP INDEX {schema}.jobs_listing;
CREATE INDEX jobs_page ON {schema}.jobs (queue, state, created_at, id);
-- Searching by task; task and created_at never change, but every row version adds an
-- entry (no update of a job is HOT: its state is indexed).
CREATE INDEX jobs_task ON {schema}.jobs (task, created_at, id);

-- Index keys of a job (stores/search.py): its searchable payload fields ('f:name=value',
-- written with the job) and, while it is failed, its error type and message words ('e:',
-- 'w:'). Deleted with the job by the jobs_deleted trigger (counts.sql), for keyed jobs.
CREATE TABLE {schema}.job_keys (
    job_id     text   COLLATE "C" NOT NULL,
    key        text   COLLATE "C" NOT NULL,
    created_at bigint NOT NULL, -- the job's: a search by key pages like a listing
    PRIMARY KEY (job_id, key)
);
CREATE INDEX job_keys_seek ON {schema}.job_keys (key, created_at, job_id);

-- A job's timeline (events_of); progress events, the many, are left out of it.
CREATE INDEX job_events_job ON {schema}.job_events (job_id, seq) WHERE kind <> 'progress';

-- How many jobs each queue holds in each state. Statement triggers on jobs (counts.sql)
-- append each statement's moves to job_count_moves: an insert, never an update, so
-- concurrent workers never wait on a counter row. counts() and the maintenance sweep fold
-- the moves into job_counts (fold_counts).
CREATE TABLE {schema}.job_counts (
    queue text   NOT NULL,
    state text   NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, state)
);
CREATE TABLE {schema}.job_count_moves (
    queue text   NOT NULL,
    state text   NOT NULL,
    n     bigint NOT NULL
);
ALTER TABLE {schema}.job_count_moves SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
INSERT INTO {schema}.job_counts (queue, state, n)
    SELECT queue, state, count(*) FROM {schema}.jobs GROUP BY queue, state;

-- A paused schedule does not fire; pausing or resuming bumps its version.
ALTER TABLE {schema}.schedules ADD COLUMN paused boolean NOT NULL DEFAULT false;

-- Minute counts of the metrics history (history.py), added to by each process once per
-- flush; labels joined by U+001F. The same counts per hour, for windows of days.
CREATE TABLE {schema}.history (
    kind   text   NOT NULL,
    minute bigint NOT NULL,
    labels text   NOT NULL,
    value  bigint NOT NULL,
    PRIMARY KEY (kind, minute, labels)
);
CREATE INDEX history_minute ON {schema}.history (minute);
CREATE TABLE {schema}.history_hours (
    kind   text   NOT NULL,
    hour   bigint NOT NULL,
    labels text   NOT NULL,
    value  bigint NOT NULL,
    PRIMARY KEY (kind, hour, labels)
);
CREATE INDEX history_hours_hour ON {schema}.history_hours (hour);

-- Destructive actions (audit.py), trimmed by count and age on each append.
CREATE TABLE {schema}.audit (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         bigint NOT NULL,
    actor      text   NOT NULL,
    action     text   NOT NULL,
    target     text   NOT NULL,
    counts     bytea  NOT NULL,
    request_id text
);
CREATE INDEX audit_at ON {schema}.audit (at);

-- Rate-limit states (ratelimit.sql): one row per (policy, subject); what a, b and c hold
-- depends on the algorithm (stores/ratelimit.py): gcra a = arrival time (µs); fixed-window
-- a = window index, b = count; sliding-window also c = the previous count. Unlogged: a
-- check per request writes no WAL, and a crash or a failover only makes the limits forget
-- (as a Redis restart without persistence does).
CREATE UNLOGGED TABLE {schema}.rate_limits (
    policy     text   NOT NULL,
    subject    text   NOT NULL,
    algorithm  text   NOT NULL,
    a          bigint NOT NULL,
    b          bigint NOT NULL DEFAULT 0,
    c          bigint NOT NULL DEFAULT 0,
    expires_at bigint NOT NULL,
    PRIMARY KEY (policy, subject)
);
CREATE INDEX rate_limits_expiry ON {schema}.rate_limits (expires_at);

-- Concurrency policies: one row per slot held, until released or its lease ends.
CREATE UNLOGGED TABLE {schema}.rate_limit_leases (
    policy     text   NOT NULL,
    subject    text   NOT NULL,
    token      text   NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (policy, subject, token)
);
CREATE INDEX rate_limit_leases_expiry ON {schema}.rate_limit_leases (expires_at);
