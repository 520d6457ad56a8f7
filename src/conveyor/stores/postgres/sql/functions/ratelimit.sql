-- Rate-limit checks: every policy of one request in one call, all or nothing.
-- The same rule as conveyor.stores.ratelimit (RULES, which memory and SQLite run) and
-- redis/lua/ratelimit.lua; tests/conformance/test_ratelimit.py holds all of them to it.
-- Times are the caller's clock (p_now, ms), never now().
--
-- rate_check(charge, now, token, sweep, subjects, policies, codes, limits, windows,
--            intervals, bursts, costs)
-- -> admitted, and per hit: allowed, value, extra (stores/ratelimit.py HitState).
-- One hit per array position; codes: g (gcra), f (fixed window), s (sliding window),
-- c (concurrency; window = the lease). With charge, each (policy, subject) is locked for
-- the transaction first (an advisory lock on its hash, taken in one order, so two checks
-- never wait on each other in a circle), so the checks of one key are decided one after
-- the other, exactly; every hit is charged if all admit. Without charge (a peek), nothing
-- is locked or written. With sweep, states and leases whose time has passed are deleted
-- (the caller asks every few seconds).
--
-- rate_release(token, subjects, policies): drop the token's concurrency slots.
-- rate_reset(subjects, policies): forget those states, whatever their algorithm.

CREATE FUNCTION {schema}.rate_check(
    p_charge boolean, p_now bigint, p_token text, p_sweep boolean,
    p_subjects text[], p_policies text[], p_codes text[], p_limits bigint[],
    p_windows bigint[], p_intervals bigint[], p_bursts bigint[], p_costs bigint[],
    OUT admitted boolean, OUT allowed boolean[], OUT vals bigint[], OUT extras bigint[]
) LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(cardinality(p_codes), 0);
    sa bigint[]; sb bigint[]; sc bigint[];  -- the charged state
    cv bigint[]; ce bigint[];               -- value, extra once charged
    v_row record;
    v_code text;
    v_window bigint;
    v_cost bigint;
    v_index bigint;
    v_current bigint;
    v_previous bigint;
    v_base bigint;
    v_after bigint;
    v_count bigint;
    v_holds boolean;
    v_soonest bigint;
    v_others bigint;
    v_ok boolean;
BEGIN
    IF p_charge THEN
        PERFORM pg_advisory_xact_lock(1131376247, k) FROM (  -- 'Conw'
            SELECT DISTINCT hashtext(x.p || chr(31) || x.s) AS k
            FROM unnest(p_policies, p_subjects) AS x (p, s) ORDER BY 1) keys;
    END IF;
    IF p_sweep THEN
        DELETE FROM {schema}.rate_limits WHERE expires_at <= p_now;
        DELETE FROM {schema}.rate_limit_leases WHERE expires_at <= p_now;
    END IF;
    admitted := true;
    allowed := '{}';
    vals := '{}';
    extras := '{}';
    FOR i IN 1 .. n LOOP
        v_code := p_codes[i];
        v_window := p_windows[i];
        v_cost := p_costs[i];
        IF v_code = 'c' THEN
            SELECT count(*), coalesce(bool_or(l.token = p_token), false), min(l.expires_at),
                    min(l.expires_at) FILTER (WHERE l.token <> p_token)
                INTO v_count, v_holds, v_soonest, v_others
                FROM {schema}.rate_limit_leases l
                WHERE l.policy = p_policies[i] AND l.subject = p_subjects[i]
                    AND l.expires_at > p_now;
            v_ok := v_count < p_limits[i] OR v_holds;
            sa[i] := p_now + v_window;
            cv[i] := CASE WHEN v_holds THEN v_count ELSE v_count + 1 END;
            ce[i] := least(v_others, sa[i]);
            vals[i] := v_count;
            extras[i] := coalesce(v_soonest, 0);
        ELSE
            SELECT r.a, r.b, r.c INTO v_row FROM {schema}.rate_limits r
                WHERE r.policy = p_policies[i] AND r.subject = p_subjects[i]
                    AND r.algorithm = v_code;  -- a state left by another algorithm: none
            IF v_code = 'g' THEN
                v_base := greatest(coalesce(v_row.a, 0), p_now * 1000);
                v_after := v_base + v_cost * p_intervals[i];
                v_ok := v_after - p_now * 1000 <= p_bursts[i] * p_intervals[i];
                sa[i] := v_after;
                cv[i] := v_after;
                ce[i] := 0;
                vals[i] := v_base;
                extras[i] := 0;
            ELSE
                v_index := p_now / v_window;
                v_current := 0;
                v_previous := 0;
                IF v_code = 'f' THEN
                    IF v_row.a >= v_index THEN  -- a later window's state wins
                        v_index := v_row.a;
                        v_current := v_row.b;
                    END IF;
                    v_ok := v_current + v_cost <= p_limits[i];
                    ce[i] := 0;
                    extras[i] := 0;
                ELSE
                    IF v_row.a = v_index - 1 THEN
                        v_previous := v_row.b;
                    ELSIF v_row.a >= v_index THEN
                        v_index := v_row.a;
                        v_current := v_row.b;
                        v_previous := v_row.c;
                    END IF;
                    v_ok := v_previous * (v_window - greatest(0, p_now - v_index * v_window))
                        + (v_current + v_cost) * v_window <= p_limits[i] * v_window;
                    ce[i] := v_previous;
                    extras[i] := v_previous;
                END IF;
                sa[i] := v_index;
                sb[i] := v_current + v_cost;
                sc[i] := v_previous;
                cv[i] := v_current + v_cost;
                vals[i] := v_current;
            END IF;
        END IF;
        allowed[i] := v_ok;
        admitted := admitted AND v_ok;
    END LOOP;
    IF NOT (admitted AND p_charge) THEN
        RETURN;
    END IF;
    FOR i IN 1 .. n LOOP
        v_code := p_codes[i];
        IF v_code = 'c' THEN
            DELETE FROM {schema}.rate_limit_leases
                WHERE policy = p_policies[i] AND subject = p_subjects[i]
                    AND expires_at <= p_now;
            INSERT INTO {schema}.rate_limit_leases (policy, subject, token, expires_at)
                VALUES (p_policies[i], p_subjects[i], p_token, sa[i])
                ON CONFLICT (policy, subject, token) DO UPDATE
                    SET expires_at = excluded.expires_at;
        ELSE
            INSERT INTO {schema}.rate_limits AS r
                    (policy, subject, algorithm, a, b, c, expires_at)
                VALUES (p_policies[i], p_subjects[i], v_code, sa[i], coalesce(sb[i], 0),
                    coalesce(sc[i], 0),
                    CASE v_code WHEN 'g' THEN (sa[i] + 999) / 1000  -- µs, rounded up to ms
                        WHEN 'f' THEN (sa[i] + 1) * p_windows[i]
                        ELSE (sa[i] + 2) * p_windows[i] END)
                ON CONFLICT (policy, subject) DO UPDATE SET algorithm = excluded.algorithm,
                    a = excluded.a, b = excluded.b, c = excluded.c,
                    expires_at = excluded.expires_at;
        END IF;
        vals[i] := cv[i];
        extras[i] := ce[i];
    END LOOP;
END $$;

CREATE FUNCTION {schema}.rate_release(p_token text, p_subjects text[], p_policies text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {schema}.rate_limit_leases l
        USING unnest(p_policies, p_subjects) AS x (p, s)
        WHERE l.policy = x.p AND l.subject = x.s AND l.token = p_token;
END $$;

CREATE FUNCTION {schema}.rate_reset(p_subjects text[], p_policies text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {schema}.rate_limits r USING unnest(p_policies, p_subjects) AS x (p, s)
        WHERE r.policy = x.p AND r.subject = x.s;
    DELETE FROM {schema}.rate_limit_leases l USING unnest(p_policies, p_subjects) AS x (p, s)
        WHERE l.policy = x.p AND l.subject = x.s;
END $$;
