-- The fleet's rate budget: one row per budget, read and written in one statement on the
-- database's clock, so no replica's clock is trusted.
CREATE TABLE IF NOT EXISTS {budget} (
    namespace text NOT NULL,
    name text NOT NULL,
    -- When the next request may go (the theoretical arrival time of a cell-rate schedule).
    next_at timestamptz NOT NULL,
    -- No request goes before this: a 429's Retry-After, for every replica.
    hold_until timestamptz NOT NULL DEFAULT '-infinity',
    -- The slot the last reservation was given, NULL if it was told to come back: how the
    -- one statement hands its decision to RETURNING, which sees only the row it wrote.
    last_slot timestamptz,
    PRIMARY KEY (namespace, name)
);
