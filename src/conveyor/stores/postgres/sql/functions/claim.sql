-- Claiming the ready jobs of one queue within its limits.
--
-- claim_gate(queue, want, now): what a claim of up to `want` jobs may take now. The same
-- rule as conveyor.stores.limits.open_gate (memory, SQLite) and limits.lua (Redis), pinned
-- by tests/conformance/test_queue_limits.py on every store. A queue without a row in
-- queue_limits costs one index probe. A limited queue's row is locked FOR UPDATE until the
-- claim commits, so the claims of a limited queue take turns: the active count and the rate
-- log each one reads include every claim committed before it, and two workers can never
-- both take the last slot. Returns the room, when a claim stopped by the rate or a back-off
-- may try again, per limited task its free slots, whether claims are logged (a rate), and
-- the time to log them at (never earlier than the newest logged claim, whose clock may be
-- ahead of ours, so the log never goes back in time).
--
-- claim_queue(queue, want, worker, lease_until, token, now): promote the queue's due
-- scheduled jobs, then claim up to `want` ready ones (priority, then run_at, then enqueue
-- order) FOR UPDATE SKIP LOCKED, so concurrent workers take different jobs without waiting
-- on each other. When a limited task has fewer free slots than the claim's room, it picks
-- per task instead (one seek per distinct waiting task on jobs_ready_task, an index made
-- once a task limit is set), so a blocked task's backlog is never stepped over job by job.
-- The plain pick checks the back-off again: a queue with no limits has no row for the
-- gate to lock, so a back-off may commit between the gate and the pick, and the job it
-- gave back is waiting again. Read in the pick's own snapshot, either that job is still
-- active or the back-off is seen (one primary-key probe). The per-task pick needs no such
-- check: it runs only under task limits, whose row the gate locked, and the back-off's
-- upsert of that row waits for this claim to commit.
-- Returns the claimed rows in claim order and the gate's wake-up time.

CREATE FUNCTION {schema}.claim_gate(
    p_queue text, p_want integer, p_now bigint,
    OUT room integer, OUT wake_at bigint, OUT task_names text[], OUT task_free integer[],
    OUT rated boolean, OUT log_at bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_limits record;
    v_active integer := 0;
    v_used integer := 0;
    v_oldest bigint;
    v_newest bigint;
BEGIN
    room := p_want;
    rated := false;
    log_at := p_now;
    SELECT * INTO v_limits FROM {schema}.queue_limits l WHERE l.queue = p_queue
        AND (l.concurrency IS NOT NULL OR l.rate IS NOT NULL OR l.backoff_until > p_now
            OR EXISTS (SELECT 1 FROM {schema}.task_limits t WHERE t.queue = p_queue))
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_limits.backoff_until > p_now THEN
        room := 0;
        wake_at := v_limits.backoff_until;
        RETURN;
    END IF;
    IF v_limits.concurrency IS NOT NULL THEN
        SELECT count(*) INTO v_active FROM {schema}.jobs
            WHERE queue = p_queue AND state = 'active';
        room := least(room, v_limits.concurrency - v_active);
    END IF;
    IF v_limits.rate IS NOT NULL THEN
        rated := true;
        DELETE FROM {schema}.queue_claims
            WHERE queue = p_queue AND at <= p_now - v_limits.period_ms;
        SELECT coalesce(sum(n), 0), min(at), max(at) INTO v_used, v_oldest, v_newest
            FROM {schema}.queue_claims WHERE queue = p_queue;
        IF v_limits.rate - v_used <= 0 AND v_oldest IS NOT NULL THEN
            wake_at := v_oldest + v_limits.period_ms;
        END IF;
        room := least(room, v_limits.rate - v_used);
        log_at := greatest(p_now, v_newest);
    END IF;
    SELECT array_agg(t.task ORDER BY t.task),
           array_agg(t.concurrency - coalesce(a.n, 0) ORDER BY t.task)
        INTO task_names, task_free
        FROM {schema}.task_limits t
        LEFT JOIN (SELECT task, count(*) AS n FROM {schema}.jobs
                WHERE queue = p_queue AND state = 'active' GROUP BY task) a USING (task)
        WHERE t.queue = p_queue;
    room := greatest(room, 0);
END $$;

CREATE FUNCTION {schema}.claim_queue(
    p_queue text, p_want integer, p_worker text, p_lease_ms bigint, p_token text, p_now bigint
) RETURNS TABLE (
    id text, queue text, task text, payload bytea, options bytea, attempts integer,
    run_at bigint, created_at bigint, started_at bigint, priority integer, fence integer,
    seq bigint, wake_at bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_gate record;
    v_pick text[];
    v_claimed integer;
BEGIN
    -- Probed first: an UPDATE of no rows still fires the count trigger (counts.sql).
    IF EXISTS (SELECT 1 FROM {schema}.jobs s
            WHERE s.queue = p_queue AND s.state = 'scheduled' AND s.run_at <= p_now) THEN
        UPDATE {schema}.jobs j SET state = 'waiting'
            WHERE j.id IN (SELECT s.id FROM {schema}.jobs s
                WHERE s.queue = p_queue AND s.state = 'scheduled' AND s.run_at <= p_now
                FOR UPDATE SKIP LOCKED);
    END IF;
    SELECT * INTO v_gate FROM {schema}.claim_gate(p_queue, p_want, p_now);
    IF v_gate.room > 0 THEN
        IF v_gate.task_names IS NOT NULL
            AND EXISTS (SELECT 1 FROM unnest(v_gate.task_free) f WHERE f < v_gate.room) THEN
            v_pick := {schema}.pick_per_task(p_queue, v_gate.room, v_gate.task_names,
                v_gate.task_free);
            SELECT array_agg(l.id) INTO v_pick FROM (
                SELECT w.id FROM {schema}.jobs w
                WHERE w.id = ANY (v_pick) AND w.state = 'waiting'
                FOR UPDATE SKIP LOCKED) l;
        ELSE
            SELECT array_agg(s.id) INTO v_pick FROM (
                SELECT r.id FROM {schema}.jobs r
                WHERE r.queue = p_queue AND r.state = 'waiting' AND NOT EXISTS (
                    SELECT 1 FROM {schema}.queue_limits b
                    WHERE b.queue = p_queue AND b.backoff_until > p_now)
                ORDER BY r.priority DESC, r.run_at, r.seq LIMIT v_gate.room
                FOR UPDATE SKIP LOCKED) s;
        END IF;
        IF v_pick IS NOT NULL THEN
            -- The picked rows are locked and waiting: update them by primary key alone (a
            -- state condition here tempts the planner into scanning the whole ready index).
            RETURN QUERY
            UPDATE {schema}.jobs j SET state = 'active', token = p_token, worker = p_worker,
                    lease_until = p_now + p_lease_ms, started_at = v_gate.log_at,
                    attempts = j.attempts + 1, fence = j.fence + 1, cancel_requested = false
                WHERE j.id = ANY (v_pick)
                RETURNING j.id, j.queue, j.task, j.payload, j.options, j.attempts, j.run_at,
                    j.created_at, j.started_at, j.priority, j.fence, j.seq, v_gate.wake_at;
            GET DIAGNOSTICS v_claimed = ROW_COUNT;
            IF v_gate.rated AND v_claimed > 0 THEN
                INSERT INTO {schema}.queue_claims (queue, at, n)
                    VALUES (p_queue, v_gate.log_at, v_claimed);
            END IF;
            RETURN;
        END IF;
    END IF;
    IF v_gate.wake_at IS NOT NULL THEN  -- nothing claimed: say when a slot opens
        RETURN QUERY SELECT NULL::text, p_queue, NULL::text, NULL::bytea, NULL::bytea,
            NULL::integer, NULL::bigint, NULL::bigint, NULL::bigint, NULL::integer,
            NULL::integer, NULL::bigint, v_gate.wake_at;
    END IF;
END $$;

CREATE FUNCTION {schema}.pick_per_task(
    p_queue text, p_room integer, p_tasks text[], p_free integer[]
) RETURNS text[] LANGUAGE plpgsql AS $$
-- The ids of up to p_room ready jobs in claim order, at most each limited task's free slots.
DECLARE
    v_pick text[];
BEGIN
    WITH RECURSIVE waiting_tasks (task) AS (
        SELECT (SELECT min(w.task) FROM {schema}.jobs w
                WHERE w.queue = p_queue AND w.state = 'waiting')
        UNION ALL
        SELECT (SELECT min(w.task) FROM {schema}.jobs w
                WHERE w.queue = p_queue AND w.state = 'waiting' AND w.task > t.task)
            FROM waiting_tasks t WHERE t.task IS NOT NULL
    ), caps AS (
        SELECT t.task, greatest(least(p_room, coalesce(l.free, p_room)), 0) AS cap
        FROM waiting_tasks t
        LEFT JOIN unnest(p_tasks, p_free) AS l (task, free) ON l.task = t.task
        WHERE t.task IS NOT NULL
    )
    SELECT array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.seq) INTO v_pick FROM (
        SELECT r.id, r.priority, r.run_at, r.seq FROM caps
        CROSS JOIN LATERAL (
            SELECT j.id, j.priority, j.run_at, j.seq FROM {schema}.jobs j
            WHERE j.queue = p_queue AND j.state = 'waiting' AND j.task = caps.task
            ORDER BY j.priority DESC, j.run_at, j.seq LIMIT caps.cap
        ) r
        ORDER BY r.priority DESC, r.run_at, r.seq LIMIT p_room
    ) c;
    RETURN v_pick;
END $$;
