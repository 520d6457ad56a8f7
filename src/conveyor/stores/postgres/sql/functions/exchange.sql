-- The worker's round trip: record finished outcomes, then claim, in one statement.
--
-- exchange(o_*: the outcomes, one array per field, in order;
--          t_queues, t_states, t_keeps: the count trims the caller decided on;
--          p_queues, p_want, p_worker, p_lease_ms, p_token, p_now: the claim)
-- -> accepted: per outcome, whether its token still held the job;
--    c_*: the claimed jobs, in queue order, then priority, then FIFO;
--    next_due: when nothing was claimed, the earliest time a job of these queues becomes
--    due or a limit lets a claim through (the worker sleeps until then at most).
--
-- o_keys: per outcome, the index keys of its error (stores/search.py error_keys, one a
-- line), written for the jobs that end failed. A retry outcome (state waiting or scheduled)
-- of a job whose cancellation was asked for ends it cancelled instead. Each accepted
-- outcome writes its job event; finished flow children report to their parents
-- (report.sql) before anything is claimed, so a parent this made ready can be claimed by
-- the same call.
--
-- (1) A held job is found by its primary key, never through jobs_leases: with `state =
-- 'active'` written as a constant, the planner may read every entry of that partial
-- index (few live rows, but one dead entry per job finished since the last vacuum: 9,960
-- of them to find 10 jobs late in a drain, 0.3 ms of a 0.5 ms statement). Compared with
-- a value it cannot see when planning, the index does not apply. The lease steps
-- (leases.sql: release, progress; leases.py: renew) find held jobs the same way.

CREATE FUNCTION {schema}.exchange(
    o_ids text[], o_tokens text[], o_states text[], o_finished bigint[], o_results bytea[],
    o_errors bytea[], o_run_ats bigint[], o_expires bigint[], o_progress bytea[],
    o_keys text[], t_queues text[], t_states text[], t_keeps integer[],
    p_queues text[], p_want integer, p_worker text, p_lease_ms bigint, p_token text,
    p_now bigint,
    OUT accepted boolean[], OUT c_ids text[], OUT c_queues text[], OUT c_tasks text[],
    OUT c_payloads bytea[], OUT c_options bytea[], OUT c_attempts integer[],
    OUT c_run_ats bigint[], OUT c_created bigint[], OUT c_started bigint[],
    OUT c_priorities integer[], OUT c_fences integer[], OUT next_due bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_done text[];
    v_queue text;
    v_claimed integer := 0;
    v_paused text[];
    r record;
BEGIN
    accepted := '{}';
    IF cardinality(o_ids) > 0 THEN
        WITH o AS (
            SELECT * FROM unnest(o_ids, o_tokens, o_states, o_finished, o_results, o_errors,
                    o_run_ats, o_expires, o_progress, o_keys)
                WITH ORDINALITY AS o (id, token, state, finished_at, result, error, run_at,
                    expires_at, progress, keys, ord)
        ), finished AS (
            UPDATE {schema}.jobs j SET
                state = CASE WHEN o.state NOT IN ('waiting', 'scheduled') THEN o.state
                    WHEN j.cancel_requested THEN 'cancelled'
                    WHEN o.run_at <= p_now THEN 'waiting' ELSE 'scheduled' END,
                finished_at = CASE WHEN o.state NOT IN ('waiting', 'scheduled')
                    THEN o.finished_at WHEN j.cancel_requested THEN p_now END,
                expires_at = CASE WHEN o.state NOT IN ('waiting', 'scheduled')
                    OR j.cancel_requested THEN o.expires_at END,
                run_at = CASE WHEN o.state IN ('waiting', 'scheduled') THEN o.run_at
                    ELSE j.run_at END,
                result = CASE WHEN o.state IN ('waiting', 'scheduled') THEN j.result
                    ELSE o.result END,
                error = o.error,
                progress = coalesce(o.progress, j.progress),
                token = NULL, lease_until = NULL, cancel_requested = false,
                keyed = j.keyed OR (o.state = 'failed' AND o.keys <> '')
            FROM o
            -- By primary key, never through jobs_leases: note (1) above.
            WHERE j.id = o.id AND j.token = o.token AND j.state = (SELECT 'active')
            RETURNING j.id, j.queue, j.state, o.error, o.keys, j.created_at
        ), indexed AS (
            INSERT INTO {schema}.job_keys (job_id, key, created_at)
            SELECT f.id, key, f.created_at FROM finished f
            CROSS JOIN LATERAL unnest(string_to_array(f.keys, E'\n')) AS key
            WHERE f.state = 'failed' AND f.keys <> ''
            ON CONFLICT (job_id, key) DO NOTHING
        ), events AS (
            INSERT INTO {schema}.job_events (queue, job_id, kind, at, data)
            SELECT f.queue, f.id,
                CASE WHEN f.state IN ('waiting', 'scheduled') THEN 'retrying' ELSE f.state END,
                p_now, f.error
            FROM finished f
        )
        SELECT array_agg(f.id IS NOT NULL ORDER BY o.ord),
               array_agg(f.id) FILTER (WHERE f.state IN ('completed', 'failed', 'cancelled'))
            INTO accepted, v_done
            FROM o LEFT JOIN finished f ON f.id = o.id;
        PERFORM {schema}.report_finished(v_done, p_now);
        FOR i IN 1 .. coalesce(cardinality(t_queues), 0) LOOP
            PERFORM {schema}.trim_finished(t_queues[i], t_states[i], t_keeps[i]);
        END LOOP;
    END IF;
    IF p_want <= 0 THEN
        RETURN;
    END IF;
    -- Few queues are ever paused: the guard has no parameter, so it keeps one plan, where
    -- the array lookup was planned again on every call (its custom plan looked cheaper);
    -- it reads the index of paused queues (queues_paused), not a row per queue.
    IF EXISTS (SELECT 1 FROM {schema}.queues WHERE paused) THEN
        SELECT array_agg(name) INTO v_paused FROM {schema}.queues
            WHERE paused AND name = ANY (p_queues);
    END IF;
    FOREACH v_queue IN ARRAY p_queues LOOP
        CONTINUE WHEN v_queue = ANY (coalesce(v_paused, '{}'));
        FOR r IN SELECT * FROM {schema}.claim_queue(v_queue, p_want - v_claimed, p_worker,
                p_lease_ms, p_token, p_now) c ORDER BY c.priority DESC, c.run_at, c.seq LOOP
            IF r.id IS NULL THEN
                next_due := least(next_due, r.wake_at);
                CONTINUE;
            END IF;
            v_claimed := v_claimed + 1;
            c_ids := c_ids || r.id;
            c_queues := c_queues || r.queue;
            c_tasks := c_tasks || r.task;
            c_payloads := c_payloads || r.payload;
            c_options := c_options || r.options;
            c_attempts := c_attempts || r.attempts;
            c_run_ats := c_run_ats || r.run_at;
            c_created := c_created || r.created_at;
            c_started := c_started || r.started_at;
            c_priorities := c_priorities || r.priority;
            c_fences := c_fences || r.fence;
        END LOOP;
        EXIT WHEN v_claimed >= p_want;
    END LOOP;
    IF v_claimed > 0 THEN
        next_due := NULL;
    ELSE
        next_due := least(next_due, (SELECT min(d.run_at) FROM unnest(p_queues) AS q (name)
            CROSS JOIN LATERAL (SELECT s.run_at FROM {schema}.jobs s
                WHERE s.queue = q.name AND s.state = 'scheduled'
                ORDER BY s.run_at LIMIT 1) d
            WHERE q.name <> ALL (coalesce(v_paused, '{}'))));
    END IF;
END $$;

-- trim_finished(queue, state, keep) -> integer: delete the queue's finished jobs in that
-- state but the newest `keep` (count retention), in the finishing transaction, so a
-- finish that makes a job one too many has removed the oldest when it commits; how many
-- it deleted. It reads the kept rows in order from jobs_finished (no sort).
CREATE FUNCTION {schema}.trim_finished(p_queue text, p_state text, p_keep integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_deleted integer;
BEGIN
    DELETE FROM {schema}.jobs WHERE id IN (
        SELECT d.id FROM {schema}.jobs d
        WHERE d.queue = p_queue AND d.state = p_state AND d.finished_at IS NOT NULL
        ORDER BY d.finished_at DESC, d.seq DESC OFFSET p_keep);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END $$;
