-- Inserting jobs, and waking the workers of their queues.
--
-- wake(p_queues): NOTIFY {channel}_work once per queue (delivered when the transaction
-- commits, never if it rolls back); idle workers LISTEN on it (claims.py).
--
-- enqueue(ids, queues, tasks, payloads, options, priorities, run_ats, created_ats,
--         max_stalled, keys, now) -> text[]: inserts the jobs in the given order (seq, so
-- FIFO follows it), each waiting, or scheduled when its run_at is later than now, with its
-- index keys (keys: per job, its searchable fields' keys one a line, '' for none);
-- records their queues; wakes the queues that got a waiting job. Returns the ids it
-- inserted: an id that existed is not among them (idempotent enqueue), and an id given
-- twice is inserted once.
-- This is also the statement conveyor runs on an application's own connection
-- (transactional enqueue), so it takes only arrays of plain types that every driver binds.

CREATE FUNCTION {schema}.wake(p_queues text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{channel}_work', q) FROM (SELECT DISTINCT unnest(p_queues) AS q) d;
END $$;

CREATE FUNCTION {schema}.enqueue(
    p_ids text[], p_queues text[], p_tasks text[], p_payloads bytea[], p_options bytea[],
    p_priorities integer[], p_run_ats bigint[], p_created bigint[], p_max_stalled integer[],
    p_keys text[], p_now bigint
) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_inserted text[];
    v_ready text[];
    v_keyed boolean;
BEGIN
    INSERT INTO {schema}.queues (name)
        SELECT DISTINCT q FROM unnest(p_queues) AS q
        ON CONFLICT (name) DO NOTHING;
    WITH inserted AS (
        INSERT INTO {schema}.jobs (id, queue, task, state, priority, run_at, created_at,
                payload, options, max_stalled, keyed)
        SELECT n.id, n.queue, n.task,
                CASE WHEN n.run_at <= p_now THEN 'waiting' ELSE 'scheduled' END,
                n.priority, n.run_at, n.created_at, n.payload, n.options, n.max_stalled,
                coalesce(n.keys, '') <> ''
            FROM unnest(p_ids, p_queues, p_tasks, p_payloads, p_options, p_priorities,
                p_run_ats, p_created, p_max_stalled, p_keys)
                WITH ORDINALITY AS n (id, queue, task, payload, options, priority, run_at,
                    created_at, max_stalled, keys, ord)
            ORDER BY n.ord
        ON CONFLICT (id) DO NOTHING
        RETURNING id, queue, state, keyed
    )
    SELECT array_agg(i.id), array_agg(DISTINCT i.queue) FILTER (WHERE i.state = 'waiting'),
            bool_or(i.keyed)
        INTO v_inserted, v_ready, v_keyed
        FROM inserted i;
    IF v_keyed THEN  -- the fields' keys of the jobs this call inserted (not those that existed)
        INSERT INTO {schema}.job_keys (job_id, key, created_at)
            SELECT k.id, key, k.created_at
            FROM unnest(p_ids, p_keys, p_created) AS k (id, keys, created_at)
            CROSS JOIN LATERAL unnest(string_to_array(k.keys, E'\n')) AS key
            WHERE k.keys <> '' AND k.id = ANY (v_inserted)
            ON CONFLICT (job_id, key) DO NOTHING;
    END IF;
    IF v_ready IS NOT NULL THEN
        PERFORM {schema}.wake(v_ready);
    END IF;
    RETURN coalesce(v_inserted, '{}');
END $$;
