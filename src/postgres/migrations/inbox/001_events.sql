-- The inbox's tables, as releases before numbered migrations created them: a database
-- they made already holds them, and this changes nothing there (an older events table
-- gets its missing column and settings from migrations 2 and 3).
CREATE TABLE IF NOT EXISTS {events} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,
    namespace text NOT NULL,
    event_id text,
    subscription_id text,
    entity_id text,
    object_type text NOT NULL,
    event text NOT NULL,
    body bytea NOT NULL,
    headers jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    state text NOT NULL DEFAULT 'pending',
    priority smallint NOT NULL DEFAULT 0,
    attempt integer NOT NULL DEFAULT 0,
    attempt_base integer NOT NULL DEFAULT 0,
    lapses integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    locked_by text,
    last_error text,
    done_at timestamptz,
    retry_unhandled boolean NOT NULL DEFAULT false
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
CREATE INDEX IF NOT EXISTS {bare}_inbox_events_ready ON {events} (namespace, priority DESC, run_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS {bare}_inbox_events_leased ON {events} (namespace, locked_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS {bare}_inbox_events_dead ON {events} (namespace) WHERE state = 'dead';
CREATE INDEX IF NOT EXISTS {bare}_inbox_events_entity ON {events} (namespace, entity_id, id) WHERE state IN ('pending', 'running');
CREATE TABLE IF NOT EXISTS {attempts} (
    event_row bigint NOT NULL REFERENCES {events} (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    worker text,
    outcome text NOT NULL,
    error text,
    duration_ms bigint,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {bare}_inbox_attempts_event_row ON {attempts} (event_row);
CREATE TABLE IF NOT EXISTS {paused} (namespace text PRIMARY KEY);
