-- The claims and the transactional handlers' done marks, as versions before numbered
-- migrations created them: a database they made already holds both, and this changes
-- nothing there. Run again after migration 2, it finds the renamed table and leaves the
-- old name, a view by then, alone.
CREATE TABLE IF NOT EXISTS {claims} (
    key text PRIMARY KEY,
    token text,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {bare}_claims_expires_at ON {claims} (expires_at);
DO $$
BEGIN
    IF to_regclass('{handled}') IS NULL THEN
        CREATE TABLE IF NOT EXISTS {handled_before} (
            key text PRIMARY KEY,
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS {bare}_inbox_expires_at ON {handled_before} (expires_at);
    END IF;
END
$$;
