-- Releases before numbered migrations kept every prefix's checkpoints in one table,
-- `monite_webhooks_checkpoints`, which other prefixes (and replicas of an older release)
-- may still use: its rows are copied, never moved, and it is left as it is. Checkpoints
-- only move forward, so a later save there is at worst a window swept again.
DO $$
BEGIN
    IF to_regclass('monite_webhooks_checkpoints') IS NOT NULL THEN
        INSERT INTO {checkpoints} AS c (namespace, entity_id, checkpoint_us)
        SELECT namespace, entity_id, checkpoint_us FROM monite_webhooks_checkpoints
        ON CONFLICT (namespace, entity_id)
        DO UPDATE SET checkpoint_us = GREATEST(c.checkpoint_us, EXCLUDED.checkpoint_us);
    END IF;
END
$$;
