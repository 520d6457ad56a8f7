-- Schema version 2: vacuum the queue's hot tables promptly and without throttling, and
-- let the count trim read its rows in order.
--
-- Every job writes 3 row versions at least (insert, claim, finish) and a job event, and
-- retention deletes what it keeps no more, so `jobs` holds few live rows and many dead
-- ones. With the server's defaults, autovacuum waits for 20 % of a table to be dead and
-- then sleeps between pages (cost-based delay): a queue that holds a large backlog is
-- vacuumed late and slowly while its dead rows pile up. Here a vacuum starts after 2 %
-- (at least 1,000 rows) and runs at full speed. Under steady load on a small queue these
-- settings change nothing: every autovacuum wake-up (autovacuum_naptime, server-wide)
-- finds the tables over any threshold. docs/architecture.md ("PostgreSQL: bloat and
-- vacuum") has the measurements and what does bound the bloat.

ALTER TABLE {schema}.jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

ALTER TABLE {schema}.job_events SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0
);

ALTER TABLE {schema}.queue_claims SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

ALTER TABLE {schema}.cache_entries SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0
);

-- The count trim keeps the newest finished jobs of a queue in a state, newest by
-- (finished_at, seq): with seq in the index the trim reads the rows in that order
-- instead of sorting every row it keeps (a trim of 1,000 kept rows cost 1-2 ms, mostly
-- that sort).
CREATE INDEX jobs_finished_order ON {schema}.jobs (queue, state, finished_at, seq)
    WHERE finished_at IS NOT NULL;
DROP INDEX {schema}.jobs_finished;
ALTER INDEX {schema}.jobs_finished_order RENAME TO jobs_finished;

-- Every version of a job row (enqueue, claim, finish: the state is indexed, so none is a
-- HOT update) adds an entry to each index: one index fewer is a fifth less index work per
-- transition. Listing a state across every queue merges the per-queue listing index
-- (admin.py) instead of keeping an index of its own; seq joins the listing index so a
-- page comes out of it in order.
DROP INDEX {schema}.jobs_listing_all;
CREATE INDEX jobs_listing_order ON {schema}.jobs (queue, state, created_at, seq);
DROP INDEX {schema}.jobs_listing;
ALTER INDEX {schema}.jobs_listing_order RENAME TO jobs_listing;
