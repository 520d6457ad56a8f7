-- Flow children report to their parents inside the transaction that finishes them.
--
-- report_finished(p_ids, p_now): every transition that can give a job a final state (an
-- outcome, a stall, a release, a cancel) calls it with the ids it touched. Those that are
-- finished, unreported flow children record their result (or error) on their parent; the
-- last one makes the parent waiting; under 'fail' a failed or cancelled child fails the
-- parent at once, which in a nested flow reports that parent to its own parent in turn.
-- A call with no pending child anywhere costs one probe of flow_children_pending. A
-- parent failed here is indexed under its error's keys (error_keys, counts.sql).
-- Parents are updated in parent id order, so two transactions never wait on each other's.

CREATE FUNCTION {schema}.child_failed_error(
    p_child text, p_queue text, p_state text, p_error bytea
) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
-- The error recorded on a parent that a child failed; conveyor.stores.flows.child_failed_error
-- in SQL (the flow conformance tests hold both to the same text).
DECLARE
    cause text := '';
    decoded json;
BEGIN
    IF p_error IS NOT NULL THEN
        BEGIN
            decoded := convert_from(p_error, 'UTF8')::json;
            IF json_typeof(decoded) = 'object' THEN
                cause := ': ' || coalesce(decoded ->> 'type', 'None') || ': '
                    || coalesce(decoded ->> 'message', 'None');
            END IF;
        EXCEPTION WHEN others THEN
            cause := '';
        END;
    END IF;
    RETURN convert_to(json_build_object(
        'type', 'ChildFailedError',
        'message', format('child job %s (queue %s) %s%s', p_child, p_queue,
            CASE WHEN p_state = 'cancelled' THEN 'was cancelled' ELSE 'failed' END, cause),
        'traceback', NULL
    )::text, 'UTF8');
END $$;

CREATE FUNCTION {schema}.report_finished(p_ids text[], p_now bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_pending text[] := p_ids;
    v_failed text[];
    r record;
    v_flow record;
    v_at bigint;
    v_queue text;
    v_error bytea;
BEGIN
    IF coalesce(cardinality(p_ids), 0) = 0
        OR NOT EXISTS (SELECT 1 FROM {schema}.flow_children WHERE state IS NULL) THEN
        RETURN;
    END IF;
    WHILE cardinality(v_pending) > 0 LOOP
        v_failed := '{}';
        FOR r IN
            SELECT c.child_id, c.parent_id, j.state, j.queue, j.result, j.error, j.finished_at
            FROM {schema}.flow_children c JOIN {schema}.jobs j ON j.id = c.child_id
            WHERE c.child_id = ANY (v_pending) AND c.state IS NULL
                AND j.state IN ('completed', 'failed', 'cancelled')
            ORDER BY c.parent_id, c.child_id
        LOOP
            UPDATE {schema}.flow_children
                SET state = r.state,
                    value = CASE WHEN r.state = 'completed' THEN r.result ELSE r.error END
                WHERE child_id = r.child_id;
            UPDATE {schema}.flows SET pending = pending - 1 WHERE parent_id = r.parent_id
                RETURNING pending, policy, keep_ms INTO v_flow;
            CONTINUE WHEN NOT FOUND;
            v_at := coalesce(r.finished_at, p_now);
            IF r.state <> 'completed' AND v_flow.policy = 'fail' THEN
                v_error := {schema}.child_failed_error(r.child_id, r.queue, r.state, r.error);
                UPDATE {schema}.jobs SET state = 'failed', finished_at = v_at,
                        expires_at = v_at + v_flow.keep_ms, error = v_error
                    WHERE id = r.parent_id AND state = 'waiting-children'
                    RETURNING queue INTO v_queue;
                IF FOUND THEN
                    INSERT INTO {schema}.job_events (queue, job_id, kind, at, data)
                        VALUES (v_queue, r.parent_id, 'failed', v_at, v_error);
                    PERFORM {schema}.index_keys(ARRAY[r.parent_id],
                        ARRAY[{schema}.error_keys(v_error)]);
                    v_failed := v_failed || r.parent_id;
                END IF;
            ELSIF v_flow.pending <= 0 THEN
                UPDATE {schema}.jobs SET state = 'waiting', run_at = v_at
                    WHERE id = r.parent_id AND state = 'waiting-children';
            END IF;
        END LOOP;
        v_pending := v_failed;
    END LOOP;
END $$;
