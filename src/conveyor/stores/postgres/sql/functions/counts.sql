-- Job counts per queue and state, kept by statement triggers on jobs; a deleted job's
-- index keys. (Triggers are code: they are made again with the functions they call.)
--
-- Each statement that inserts, updates or deletes jobs appends its net moves per (queue,
-- state) to job_count_moves, one row per pair it changed, whatever the number of jobs:
-- every path counts the same way (the worker's functions, the admin steps, an
-- application's own transaction, a migration), and nothing is ever updated in place, so
-- concurrent transactions never wait on each other for a counter. fold_counts moves the
-- appended rows into job_counts; counts() reads job_counts plus what is not folded yet.
--
-- jobs_deleted also deletes what belongs to the deleted jobs: their job_keys rows (only
-- for jobs marked keyed), their log lines and their flow (whose children's rows go with
-- it by foreign key). One join per statement, where a foreign key from each of those
-- tables ran a query per deleted job, and retention deletes every job in the end.

CREATE FUNCTION {schema}.jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.job_count_moves (queue, state, n)
        SELECT queue, state, count(*) FROM new_jobs GROUP BY queue, state;
    RETURN NULL;
END $$;

CREATE FUNCTION {schema}.jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.job_count_moves (queue, state, n)
        SELECT m.queue, m.state, sum(m.n) FROM (
            SELECT queue, state, 1 AS n FROM new_jobs
            UNION ALL
            SELECT queue, state, -1 FROM old_jobs
        ) m
        GROUP BY m.queue, m.state HAVING sum(m.n) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION {schema}.jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.job_count_moves (queue, state, n)
        SELECT queue, state, -count(*) FROM old_jobs GROUP BY queue, state;
    DELETE FROM {schema}.job_keys k USING old_jobs o WHERE o.keyed AND k.job_id = o.id;
    DELETE FROM {schema}.job_logs l USING old_jobs o WHERE l.job_id = o.id;
    DELETE FROM {schema}.flows f USING old_jobs o WHERE f.parent_id = o.id;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_inserted AFTER INSERT ON {schema}.jobs
    REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT
    EXECUTE FUNCTION {schema}.jobs_inserted();
CREATE TRIGGER jobs_updated AFTER UPDATE ON {schema}.jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT
    EXECUTE FUNCTION {schema}.jobs_updated();
CREATE TRIGGER jobs_deleted AFTER DELETE ON {schema}.jobs
    REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT
    EXECUTE FUNCTION {schema}.jobs_deleted();

-- fold_counts(): add the appended moves to job_counts and delete them. Two folds at once
-- never count a move twice (the second skips the rows the first deleted).
CREATE FUNCTION {schema}.fold_counts() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        DELETE FROM {schema}.job_count_moves RETURNING queue, state, n
    )
    INSERT INTO {schema}.job_counts AS c (queue, state, n)
        SELECT queue, state, sum(n) FROM moved GROUP BY queue, state
        ORDER BY queue, state
        ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n;
END $$;

-- index_keys(ids, keys): add index keys to jobs (keys: per job, its keys one a line, as
-- stores/search.py joined_keys writes them; '' for none) and mark those jobs keyed.
CREATE FUNCTION {schema}.index_keys(p_ids text[], p_keys text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH keyed AS (
        UPDATE {schema}.jobs j SET keyed = true
        FROM unnest(p_ids, p_keys) AS k (id, keys)
        WHERE j.id = k.id AND k.keys <> '' AND NOT j.keyed
    )
    INSERT INTO {schema}.job_keys (job_id, key, created_at)
        SELECT j.id, key, j.created_at
        FROM unnest(p_ids, p_keys) AS k (id, keys)
        JOIN {schema}.jobs j ON j.id = k.id
        CROSS JOIN LATERAL unnest(string_to_array(k.keys, E'\n')) AS key
        WHERE k.keys <> ''
        ON CONFLICT (job_id, key) DO NOTHING;
END $$;

-- error_keys(error) -> text: the index keys of an error's JSON, one a line:
-- conveyor.stores.search.error_keys in SQL, for the one error made in SQL (a flow parent
-- failed by its child, report.sql; every other failure's keys are computed in Python and
-- passed in). The same rule: 'e:' || type, then the first 16 distinct words ('w:'), a
-- letter or _ then 2-39 letters, digits or _, of the first 2,000 characters of the
-- message, lowercased. A child's error, queue and id can hold any letters, so the message
-- is lowercased and split under ICU's root collation ("und-x-icu"), whatever the
-- database's own: Unicode letters and case as Python's str.lower and \w have them, where
-- a "C" database knows no letter beyond ASCII ('Überweisung' would give 'berweisung') and
-- libc's C.UTF-8 lowercases 'İ' to 'i', not Python's 'i' + U+0307. (Still apart: numbers
-- that are not digits, such as '²' or 'Ⅻ', are in Python's \w, not ICU's [[:alnum:]].)
-- A server built without ICU splits under the database's locale.
CREATE FUNCTION {schema}.error_keys(p_error bytea)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_decoded json;
    v_type text;
    v_message text;
    v_keys text[] := '{}';
    v_words text[] := '{}';
    v_found text[];
    v_word text;
BEGIN
    IF p_error IS NULL THEN
        RETURN '';
    END IF;
    BEGIN
        v_decoded := convert_from(p_error, 'UTF8')::json;
        IF json_typeof(v_decoded) <> 'object' THEN
            RETURN '';
        END IF;
        v_type := v_decoded ->> 'type';
        v_message := v_decoded ->> 'message';
    EXCEPTION WHEN others THEN
        RETURN '';
    END;
    IF v_type <> '' AND length(v_type) + 2 <= 256 AND strpos(v_type, E'\n') = 0 THEN
        v_keys := v_keys || ('e:' || v_type);
    END IF;
    IF v_message <> '' THEN
        v_message := left(v_message, 2000);
        BEGIN
            v_found := ARRAY(SELECT m.w[1] FROM regexp_matches(lower(v_message COLLATE "und-x-icu"),
                '([[:alpha:]_][[:alnum:]_]{2,39})', 'g') WITH ORDINALITY AS m (w, n) ORDER BY m.n);
        EXCEPTION WHEN undefined_object THEN  -- no ICU in this server
            v_found := ARRAY(SELECT m.w[1] FROM regexp_matches(lower(v_message),
                '([[:alpha:]_][[:alnum:]_]{2,39})', 'g') WITH ORDINALITY AS m (w, n) ORDER BY m.n);
        END;
        FOREACH v_word IN ARRAY v_found LOOP
            CONTINUE WHEN v_word = ANY (v_words);
            v_words := v_words || v_word;
            EXIT WHEN cardinality(v_words) >= 16;
        END LOOP;
        v_keys := v_keys || ARRAY(SELECT 'w:' || w FROM unnest(v_words) AS w);
    END IF;
    RETURN array_to_string(v_keys, E'\n');
END $$;

-- unindex_errors(ids): drop the error keys of jobs that left the failed state (a retry).
CREATE FUNCTION {schema}.unindex_errors(p_ids text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {schema}.job_keys
        WHERE job_id = ANY (p_ids) AND (key LIKE 'e:%' OR key LIKE 'w:%');
END $$;
