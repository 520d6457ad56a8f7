-- Schema version 1: every table of the PostgreSQL store, in the schema named by the URL
-- ({schema}, "conveyor" by default). Times are integer milliseconds since the Unix epoch,
-- always from conveyor's clock, never from now(). JSON values are bytea (msgspec's bytes,
-- which may hold \u0000, which jsonb refuses). Partial indexes keep each hot query an index
-- seek over only the rows it needs: claim (jobs_ready), promote (jobs_scheduled), stall
-- sweep (jobs_leases), expiry (jobs_expiry), count trim (jobs_finished).

CREATE TABLE {schema}.jobs (
    id               text    PRIMARY KEY,
    seq              bigint  GENERATED ALWAYS AS IDENTITY, -- enqueue order: FIFO within a priority
    queue            text    NOT NULL,
    task             text    NOT NULL,
    state            text    NOT NULL,
    priority         integer NOT NULL,
    run_at           bigint  NOT NULL,
    created_at       bigint  NOT NULL,
    payload          bytea   NOT NULL,
    options          bytea   NOT NULL,
    max_stalled      integer NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    stalls           integer NOT NULL DEFAULT 0,
    token            text,
    worker           text,
    lease_until      bigint,
    cancel_requested boolean NOT NULL DEFAULT false,
    fence            integer NOT NULL DEFAULT 0, -- claims so far: the fencing token
    started_at       bigint,
    finished_at      bigint,
    expires_at       bigint,
    progress         bytea,
    result           bytea,
    error            bytea
);

CREATE INDEX jobs_ready ON {schema}.jobs (queue, priority DESC, run_at, seq)
    WHERE state = 'waiting';
CREATE INDEX jobs_scheduled ON {schema}.jobs (queue, run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_leases ON {schema}.jobs (lease_until) WHERE state = 'active';
CREATE INDEX jobs_listing ON {schema}.jobs (queue, state, created_at);
CREATE INDEX jobs_listing_all ON {schema}.jobs (state, created_at);
CREATE INDEX jobs_finished ON {schema}.jobs (queue, state, finished_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_expiry ON {schema}.jobs (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE {schema}.job_logs (
    job_id text    NOT NULL REFERENCES {schema}.jobs (id) ON DELETE CASCADE,
    n      integer NOT NULL,
    at     bigint  NOT NULL,
    line   text    NOT NULL,
    PRIMARY KEY (job_id, n)
);

CREATE TABLE {schema}.queues (
    name   text    PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);

-- Queue-level controls (limits.sql), read by every claim of the queue. A queue with any
-- limit (task limits included) has a row here: a claim locks it, so the claims of a
-- limited queue take turns and two workers can never both take its last slot.
CREATE TABLE {schema}.queue_limits (
    queue         text    PRIMARY KEY,
    concurrency   integer,
    rate          integer,
    period_ms     bigint  NOT NULL DEFAULT 1000,
    backoff_until bigint  NOT NULL DEFAULT 0
);

CREATE TABLE {schema}.task_limits (
    queue       text    NOT NULL,
    task        text    NOT NULL,
    concurrency integer NOT NULL,
    PRIMARY KEY (queue, task)
);

-- The sliding log of a rate-limited queue's claims: one row per claim step (n jobs).
CREATE TABLE {schema}.queue_claims (
    queue text   NOT NULL,
    at    bigint NOT NULL,
    n     integer NOT NULL
);
CREATE INDEX queue_claims_at ON {schema}.queue_claims (queue, at);

CREATE TABLE {schema}.workers (
    id         text   PRIMARY KEY,
    info       bytea  NOT NULL,
    expires_at bigint NOT NULL
);

-- Schedules: fired by compare-and-set on (version, next_fire) in the transaction that
-- inserts the tick's jobs.
CREATE TABLE {schema}.schedules (
    name        text    PRIMARY KEY,
    queue       text    NOT NULL,
    task        text    NOT NULL,
    timing      text    NOT NULL,
    payload     bytea   NOT NULL,
    options     bytea   NOT NULL,
    priority    integer NOT NULL,
    max_stalled integer NOT NULL,
    missed      text    NOT NULL,
    grace_ms    bigint  NOT NULL,
    next_fire   bigint  NOT NULL,
    last_fire   bigint,
    version     integer NOT NULL,
    updated_at  bigint  NOT NULL
);
CREATE INDEX schedules_due ON {schema}.schedules (queue, next_fire);

-- Debounce and throttle keys: the job a key points to, until when.
CREATE TABLE {schema}.dedupe_keys (
    queue      text   NOT NULL,
    key        text   NOT NULL,
    job_id     text   NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (queue, key)
);
CREATE INDEX dedupe_expiry ON {schema}.dedupe_keys (expires_at);

-- What happened to jobs, written in the same transaction as the change itself. A reader's
-- cursor is (xid, seq): it reads only rows of transactions older than every transaction
-- still running (pg_snapshot_xmin), so a row committed late, under a lower seq than rows
-- it already read, is never skipped (job_events.py).
CREATE TABLE {schema}.job_events (
    seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid    xid8   NOT NULL DEFAULT pg_current_xact_id(),
    queue  text   NOT NULL,
    job_id text   NOT NULL,
    kind   text   NOT NULL,
    at     bigint NOT NULL,
    data   bytea
);
CREATE INDEX job_events_cursor ON {schema}.job_events (xid, seq);

-- Flows: a parent waits in 'waiting-children' until each child has reported, which
-- happens in the transaction that gives the child its final state (report.sql).
-- Deleting a parent job (trimmed, purged, removed) deletes its flow's rows.
CREATE TABLE {schema}.flows (
    parent_id text    PRIMARY KEY REFERENCES {schema}.jobs (id) ON DELETE CASCADE,
    policy    text    NOT NULL, -- 'fail' | 'ignore': what a failed or cancelled child does
    pending   integer NOT NULL, -- children that have not reported yet
    keep_ms   bigint  NOT NULL  -- how long a parent failed by a child is kept
);

CREATE TABLE {schema}.flow_children (
    child_id  text    PRIMARY KEY,
    parent_id text    NOT NULL REFERENCES {schema}.flows (parent_id) ON DELETE CASCADE,
    position  integer NOT NULL,
    queue     text    NOT NULL,
    state     text,            -- NULL until the child reported
    value     bytea            -- its result if completed, else its error
);
CREATE INDEX flow_children_order ON {schema}.flow_children (parent_id, position);
CREATE INDEX flow_children_pending ON {schema}.flow_children (child_id) WHERE state IS NULL;

-- The event bus: which groups subscribe to what, and the ids an idempotent group processed.
CREATE TABLE {schema}.event_groups (
    grp        text   PRIMARY KEY,
    spec       bytea  NOT NULL,
    updated_at bigint NOT NULL
);

CREATE TABLE {schema}.event_processed (
    grp        text   NOT NULL,
    event_id   text   NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (grp, event_id)
);
CREATE INDEX event_processed_expiry ON {schema}.event_processed (expires_at);

-- The cache's shared tier (cache.py). Invalidations travel by NOTIFY, not through a table.
-- Keys sort bytewise (COLLATE "C"), so a prefix is one index range (delete_matching).
CREATE TABLE {schema}.cache_entries (
    key        text COLLATE "C" PRIMARY KEY,
    value      bytea NOT NULL,
    expires_at bigint
);
CREATE INDEX cache_entries_expiry ON {schema}.cache_entries (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE {schema}.cache_tags (
    tag text NOT NULL,
    key text COLLATE "C" NOT NULL,
    PRIMARY KEY (tag, key)
);

-- Stampede locks: one row per key being computed, until its holder unlocks or it expires.
CREATE TABLE {schema}.cache_locks (
    key        text COLLATE "C" PRIMARY KEY,
    token      text   NOT NULL,
    expires_at bigint NOT NULL
);
