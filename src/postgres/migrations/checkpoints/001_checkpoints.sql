-- Each entity's checkpoint, per namespace: an id and 8 bytes.
CREATE TABLE IF NOT EXISTS {checkpoints} (
    namespace text NOT NULL,
    entity_id text NOT NULL,
    checkpoint_us bigint NOT NULL,
    PRIMARY KEY (namespace, entity_id)
);
