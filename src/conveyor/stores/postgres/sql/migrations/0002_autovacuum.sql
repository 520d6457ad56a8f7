-- Schema version 2: vacuum the queue's hot tables promptly and without throttling.
--
-- Every job writes 3 row versions at least (insert, claim, finish) and a job event, and
-- retention deletes what it keeps no more, so `jobs` holds few live rows and many dead
-- ones. With the server's defaults, autovacuum waits for 20 % of the table to be dead
-- and then sleeps between pages (cost-based delay), so on a busy queue a vacuum runs
-- long and dead rows pile up meanwhile. Here it starts after 2 % (at least 1,000 rows)
-- and runs at full speed: these tables are small (their live rows), so an unthrottled
-- vacuum is short. fillfactor 80 leaves room in each page for the updates that change no
-- indexed column (progress), which can then stay in the page (HOT) and need no vacuum.
-- docs/architecture.md ("PostgreSQL: bloat and vacuum") has the measurements.

ALTER TABLE {schema}.jobs SET (
    fillfactor = 80,
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
