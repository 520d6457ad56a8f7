-- The cache's shared tier on one machine (a sibling file of the job store:
-- <name>.cache.db, so cache writes never wait on the jobs' write lock).
-- Times are wall-clock milliseconds; expires_at NULL = never.

CREATE TABLE IF NOT EXISTS cache_entries (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS cache_entries_expiry ON cache_entries (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS cache_tags (
    tag TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tag, key)
) WITHOUT ROWID;

-- What changed, in order: every process reads the rows past the last seq it saw
-- (every sync_interval) and drops those keys from its local tier.
-- kind: 'k' (target = a key), 'p' (target = JSON [prefix, glob]), 'c' (target = a prefix).
CREATE TABLE IF NOT EXISTS cache_invalidations (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT    NOT NULL,
    kind   TEXT    NOT NULL,
    target TEXT    NOT NULL,
    at     INTEGER NOT NULL
);
