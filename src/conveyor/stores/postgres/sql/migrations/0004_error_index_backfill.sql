-- Schema version 4: jobs that failed before schema version 3 (which made the error index,
-- job_keys' 'e:' and 'w:' keys, written when a job fails) are put into it. The keys are
-- stores/search.py's error_keys, so the migration's step is Python: migrations.py
-- (_index_old_failures), run after the functions of this version exist.
COMMENT ON TABLE {schema}.job_keys IS
    'index keys of jobs: f:name=value (searchable fields), e:type and w:word (failed jobs)';
