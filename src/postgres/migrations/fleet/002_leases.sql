-- The fleet's leases: which replica does the work only one should do, until when (on the
-- database's clock), and where that work stands so the next holder takes it over.
CREATE TABLE IF NOT EXISTS {leases} (
    namespace text NOT NULL,
    name text NOT NULL,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Raised on every acquisition: a fencing token; a renewal or a write of the state
    -- names the generation it holds, and does nothing once another has replaced it.
    generation bigint NOT NULL DEFAULT 1,
    -- What the holder hands on (the reconciler's cycle, say), as the text it wrote.
    state text,
    PRIMARY KEY (namespace, name)
);
