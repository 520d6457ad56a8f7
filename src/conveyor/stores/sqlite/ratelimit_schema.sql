-- Rate-limit states (stores/sqlite/ratelimit.py), in a sibling of the job store's file,
-- <name>.ratelimit.db: a check runs on every limited request, and in a file of its own
-- it never waits on the jobs' write lock (nor they on it).
-- Times are the app clock's milliseconds. One row per (policy, subject); what a, b and c
-- hold depends on the algorithm (stores/ratelimit.py): gcra a = arrival time (µs);
-- fixed-window a = window index, b = count; sliding-window also c = the previous count.

CREATE TABLE IF NOT EXISTS rate_limits (
    policy     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    algorithm  TEXT    NOT NULL,
    a          INTEGER NOT NULL,
    b          INTEGER NOT NULL DEFAULT 0,
    c          INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (policy, subject)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS rate_limits_expiry ON rate_limits (expires_at);

-- Concurrency policies: one row per slot held, until released or its lease ends.
CREATE TABLE IF NOT EXISTS rate_limit_leases (
    policy     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    token      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (policy, subject, token)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS rate_limit_leases_expiry ON rate_limit_leases (expires_at);
