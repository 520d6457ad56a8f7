-- The cache's shared tier (stores/postgres/cache.py): one function per write, so each write
-- and the message that tells the other processes what it changed are one round trip, and
-- the message is sent only if the write commits.
--
-- cache_notify(origin, kind, items): NOTIFY {channel}_cache with [origin, [[kind, items]]]
-- (kind 'k': keys changed, 'p': [prefix, glob] pairs, 'u': keys unlocked), split into
-- messages under NOTIFY's 8000-byte payload limit. A key too long for any message makes
-- the others drop everything ('p', ['', '*']) instead.

CREATE FUNCTION {schema}.cache_notify(p_origin text, p_kind text, p_items text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_chunk text[] := '{}';
    v_size integer := 0;
    v_step integer := CASE WHEN p_kind = 'p' THEN 2 ELSE 1 END;
    v_part text[];
    v_part_size integer;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_items), 0) BY v_step LOOP
        v_part := p_items[i : i + v_step - 1];
        v_part_size := octet_length(to_json(v_part)::text) + 2;
        IF v_part_size > 7000 THEN
            IF p_kind <> 'u' THEN
                PERFORM pg_notify('{channel}_cache', json_build_array(p_origin,
                    json_build_array(json_build_array('p', json_build_array('', '*'))))::text);
            END IF;
            CONTINUE;
        END IF;
        IF v_size + v_part_size > 7000 THEN
            PERFORM pg_notify('{channel}_cache', json_build_array(p_origin,
                json_build_array(json_build_array(p_kind, v_chunk)))::text);
            v_chunk := '{}';
            v_size := 0;
        END IF;
        v_chunk := v_chunk || v_part;
        v_size := v_size + v_part_size;
    END LOOP;
    IF cardinality(v_chunk) > 0 THEN
        PERFORM pg_notify('{channel}_cache', json_build_array(p_origin,
            json_build_array(json_build_array(p_kind, v_chunk)))::text);
    END IF;
END $$;

CREATE FUNCTION {schema}.cache_set(
    p_keys text[], p_values bytea[], p_expires bigint[], p_tags text[], p_origin text
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.cache_entries AS e (key, value, expires_at)
        SELECT * FROM unnest(p_keys, p_values, p_expires)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at;
    IF cardinality(p_tags) > 0 THEN
        INSERT INTO {schema}.cache_tags (tag, key)
            SELECT t, k FROM unnest(p_tags) AS t CROSS JOIN unnest(p_keys) AS k
            ON CONFLICT DO NOTHING;
    END IF;
    PERFORM {schema}.cache_notify(p_origin, 'k', p_keys);
END $$;

CREATE FUNCTION {schema}.cache_delete(p_keys text[], p_now bigint, p_origin text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_live integer;
BEGIN
    WITH gone AS (
        DELETE FROM {schema}.cache_entries e WHERE e.key = ANY (p_keys) RETURNING e.expires_at
    )
    SELECT count(*) FILTER (WHERE g.expires_at IS NULL OR g.expires_at > p_now) INTO v_live
        FROM gone g;
    IF p_origin IS NOT NULL THEN
        PERFORM {schema}.cache_notify(p_origin, 'k', p_keys);
    END IF;
    RETURN v_live;
END $$;

CREATE FUNCTION {schema}.cache_incr(p_key text, p_by bigint, p_now bigint, p_origin text)
RETURNS bigint LANGUAGE plpgsql AS $$
-- A counter is a plain JSON integer (what incr writes); anything else is refused.
DECLARE
    v_row record;
    v_text text;
    v_value bigint := 0;
    v_expires bigint;
BEGIN
    SELECT e.value, e.expires_at INTO v_row FROM {schema}.cache_entries e
        WHERE e.key = p_key FOR UPDATE;
    IF FOUND AND (v_row.expires_at IS NULL OR v_row.expires_at > p_now) THEN
        v_text := btrim(encode(v_row.value, 'escape'), E' \t\r\n');
        IF v_text !~ '^-?(0|[1-9][0-9]{0,18})$' THEN
            RAISE EXCEPTION 'not a counter' USING ERRCODE = 'CV001';
        END IF;
        v_value := v_text::bigint;
        v_expires := v_row.expires_at;
    END IF;
    v_value := v_value + p_by;
    INSERT INTO {schema}.cache_entries AS e (key, value, expires_at)
        VALUES (p_key, convert_to(v_value::text, 'UTF8'), v_expires)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at;
    PERFORM {schema}.cache_notify(p_origin, 'k', ARRAY[p_key]);
    RETURN v_value;
END $$;

CREATE FUNCTION {schema}.cache_expire(p_key text, p_expires bigint, p_now bigint, p_origin text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_changed boolean;
BEGIN
    UPDATE {schema}.cache_entries e SET expires_at = p_expires
        WHERE e.key = p_key AND (e.expires_at IS NULL OR e.expires_at > p_now);
    v_changed := FOUND;
    PERFORM {schema}.cache_notify(p_origin, 'k', ARRAY[p_key]);
    RETURN v_changed;
END $$;

CREATE FUNCTION {schema}.cache_invalidate_tags(p_tags text[], p_origin text)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    v_keys text[];
BEGIN
    WITH members AS (
        DELETE FROM {schema}.cache_tags t WHERE t.tag = ANY (p_tags) RETURNING t.key
    )
    SELECT array_agg(DISTINCT m.key ORDER BY m.key) INTO v_keys FROM members m;
    v_keys := coalesce(v_keys, '{}');
    DELETE FROM {schema}.cache_entries e WHERE e.key = ANY (v_keys);
    PERFORM {schema}.cache_notify(p_origin, 'k', v_keys);
    RETURN v_keys;
END $$;

CREATE FUNCTION {schema}.cache_unlock(p_key text, p_token text, p_origin text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {schema}.cache_locks l WHERE l.key = p_key AND l.token = p_token;
    IF FOUND THEN
        PERFORM {schema}.cache_notify(p_origin, 'u', ARRAY[p_key]);
    END IF;
END $$;
