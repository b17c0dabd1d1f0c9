-- The done marks of transactional handlers were `<prefix>_inbox`; "inbox" now names only
-- the inbox (`<prefix>_inbox_events`), so the table becomes `<prefix>_handled`.
--
-- Replicas of an older version may still be running: the old name stays as a view of the
-- new table, through which their INSERT ... ON CONFLICT, SELECT and DELETE reach the same
-- rows and the same unique key, so a duplicate still waits on the other's uncommitted row.
-- A later version drops the view; the index keeps its name until then.
DO $$
BEGIN
    IF to_regclass('{handled}') IS NULL THEN
        ALTER TABLE {handled_before} RENAME TO {handled_name};
    END IF;
END
$$;
CREATE OR REPLACE VIEW {handled_before} AS SELECT key, expires_at FROM {handled};
