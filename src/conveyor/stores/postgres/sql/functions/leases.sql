-- Leases: giving jobs back, progress under a lease, and the stall sweep.
--
-- release(ids, tokens, now, keep_ms) -> integer: give held jobs back as if never claimed
-- (the attempt not counted, run_at kept); a job whose cancellation was asked for ends
-- cancelled, kept keep_ms. Returns how many tokens still held their job. Wakes the
-- queues that got a waiting job back.
--
-- progress(ids, tokens, progress, log_ids, log_ats, log_lines, max_lines, now)
-- -> (lost, cancel): write the progress of held jobs (a progress event each) and append
-- their new log lines, keeping the newest max_lines per job.
--
-- sweep_stalled(now, keep_failed_ms, stalled_error, stalled_keys) -> the jobs whose lease
-- expired: back to waiting (stalls + 1, the attempt not counted) or, past max_stalled,
-- failed with stalled_error (conveyor.stores.base.STALLED_ERROR: '{stalls}' is filled in
-- here) and indexed under stalled_keys (its error keys, one a line: the count is no word);
-- a job to cancel ends cancelled. Rows another sweep holds are skipped, not waited for.

CREATE FUNCTION {schema}.release(
    p_ids text[], p_tokens text[], p_now bigint, p_keep_ms bigint
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_released integer;
    v_cancelled text[];
    v_ready text[];
BEGIN
    WITH released AS (
        UPDATE {schema}.jobs j SET
            state = CASE WHEN j.cancel_requested THEN 'cancelled'
                WHEN j.run_at <= p_now THEN 'waiting' ELSE 'scheduled' END,
            finished_at = CASE WHEN j.cancel_requested THEN p_now END,
            expires_at = CASE WHEN j.cancel_requested THEN p_now + p_keep_ms END,
            attempts = greatest(j.attempts - 1, 0), token = NULL, lease_until = NULL,
            cancel_requested = false
        FROM unnest(p_ids, p_tokens) AS l (id, token)
        -- By primary key, never through jobs_leases: exchange.sql, note (1).
        WHERE j.id = l.id AND j.token = l.token AND j.state = (SELECT 'active')
        RETURNING j.id, j.queue, j.state
    ), events AS (
        INSERT INTO {schema}.job_events (queue, job_id, kind, at)
        SELECT r.queue, r.id, 'cancelled', p_now FROM released r WHERE r.state = 'cancelled'
    )
    SELECT count(*), array_agg(r.id) FILTER (WHERE r.state = 'cancelled'),
           array_agg(DISTINCT r.queue) FILTER (WHERE r.state = 'waiting')
        INTO v_released, v_cancelled, v_ready
        FROM released r;
    PERFORM {schema}.report_finished(v_cancelled, p_now);  -- a cancelled flow child
    IF v_ready IS NOT NULL THEN
        PERFORM {schema}.wake(v_ready);
    END IF;
    RETURN v_released;
END $$;

CREATE FUNCTION {schema}.progress(
    p_ids text[], p_tokens text[], p_progress bytea[],
    p_log_ids text[], p_log_ats bigint[], p_log_lines text[], p_max_lines integer,
    p_now bigint, OUT lost text[], OUT cancel text[]
) LANGUAGE plpgsql AS $$
DECLARE
    v_held text[];
BEGIN
    WITH u AS (
        SELECT * FROM unnest(p_ids, p_tokens, p_progress) AS u (id, token, progress)
    ), held AS (
        UPDATE {schema}.jobs j SET progress = coalesce(u.progress, j.progress)
        -- By primary key, never through jobs_leases: exchange.sql, note (1).
        FROM u WHERE j.id = u.id AND j.token = u.token AND j.state = (SELECT 'active')
        RETURNING j.id, j.queue, j.cancel_requested, u.progress
    ), events AS (
        INSERT INTO {schema}.job_events (queue, job_id, kind, at, data)
        SELECT h.queue, h.id, 'progress', p_now, h.progress FROM held h
        WHERE h.progress IS NOT NULL
    )
    SELECT array_agg(u.id) FILTER (WHERE h.id IS NULL),
           array_agg(u.id) FILTER (WHERE h.cancel_requested),
           array_agg(h.id)
        INTO lost, cancel, v_held
        FROM u LEFT JOIN held h ON h.id = u.id;
    IF cardinality(p_log_ids) > 0 AND v_held IS NOT NULL THEN
        WITH lines AS (
            SELECT l.id, l.at, l.line, l.ord FROM unnest(p_log_ids, p_log_ats, p_log_lines)
                WITH ORDINALITY AS l (id, at, line, ord)
            WHERE l.id = ANY (v_held)
        ), last AS (
            SELECT x.id, coalesce((SELECT max(g.n) FROM {schema}.job_logs g
                WHERE g.job_id = x.id), 0) AS n
            FROM (SELECT DISTINCT id FROM lines) x
        )
        INSERT INTO {schema}.job_logs (job_id, n, at, line)
        SELECT l.id, last.n + row_number() OVER (PARTITION BY l.id ORDER BY l.ord), l.at, l.line
        FROM lines l JOIN last ON last.id = l.id;
        DELETE FROM {schema}.job_logs g USING (
            SELECT k.job_id, max(k.n) AS top FROM {schema}.job_logs k
            WHERE k.job_id = ANY (v_held) GROUP BY k.job_id) m
        WHERE g.job_id = m.job_id AND g.n <= m.top - p_max_lines;
    END IF;
END $$;

CREATE FUNCTION {schema}.sweep_stalled(
    p_now bigint, p_keep_failed_ms bigint, p_stalled_error text, p_stalled_keys text
) RETURNS TABLE (id text, queue text, task text, failed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
    v_queues text[];
    v_tasks text[];
    v_states text[];
BEGIN
    WITH expired AS (
        SELECT e.id FROM {schema}.jobs e
        WHERE e.state = 'active' AND e.lease_until < p_now
        FOR UPDATE SKIP LOCKED
    ), stalled AS (
        UPDATE {schema}.jobs j SET
            stalls = j.stalls + 1, attempts = greatest(j.attempts - 1, 0), token = NULL,
            lease_until = NULL, cancel_requested = false,
            state = CASE WHEN j.cancel_requested THEN 'cancelled'
                WHEN j.stalls < j.max_stalled THEN 'waiting' ELSE 'failed' END,
            finished_at = CASE WHEN j.stalls < j.max_stalled AND NOT j.cancel_requested
                THEN NULL ELSE p_now END,
            expires_at = CASE WHEN j.stalls < j.max_stalled AND NOT j.cancel_requested
                THEN NULL ELSE p_now + p_keep_failed_ms END,
            error = CASE WHEN NOT j.cancel_requested AND j.stalls >= j.max_stalled
                THEN convert_to(replace(p_stalled_error, '{stalls}', (j.stalls + 1)::text),
                    'UTF8')
                ELSE j.error END,
            keyed = j.keyed OR (NOT j.cancel_requested AND j.stalls >= j.max_stalled
                AND p_stalled_keys <> '')
        FROM expired WHERE j.id = expired.id
        RETURNING j.id, j.queue, j.task, j.state, j.error, j.created_at
    ), indexed AS (
        INSERT INTO {schema}.job_keys (job_id, key, created_at)
        SELECT s.id, key, s.created_at FROM stalled s
        CROSS JOIN LATERAL unnest(string_to_array(p_stalled_keys, E'\n')) AS key
        WHERE s.state = 'failed' AND p_stalled_keys <> ''
        ON CONFLICT (job_id, key) DO NOTHING
    ), events AS (  -- 'stalled' for each, then 'failed' or 'cancelled' for those that ended
        INSERT INTO {schema}.job_events (queue, job_id, kind, at, data)
        SELECT s.queue, s.id, 'stalled', p_now, NULL::bytea FROM stalled s
        UNION ALL
        SELECT s.queue, s.id, s.state, p_now, CASE WHEN s.state = 'failed' THEN s.error END
        FROM stalled s WHERE s.state <> 'waiting'
    )
    SELECT array_agg(s.id), array_agg(s.queue), array_agg(s.task), array_agg(s.state)
        INTO v_ids, v_queues, v_tasks, v_states
        FROM stalled s;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM {schema}.report_finished(
        ARRAY(SELECT x.id FROM unnest(v_ids, v_states) AS x (id, state)
            WHERE x.state <> 'waiting'),
        p_now);
    RETURN QUERY SELECT x.id, x.queue, x.task, x.state = 'failed'
        FROM unnest(v_ids, v_queues, v_tasks, v_states) AS x (id, queue, task, state);
END $$;
