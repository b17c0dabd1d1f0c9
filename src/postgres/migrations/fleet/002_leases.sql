-- The fleet's leases: which replica does the work only one should do, until when, and
-- where that work stands so the next holder takes it over.
CREATE TABLE IF NOT EXISTS {leases} (
    namespace text NOT NULL,
    name text NOT NULL,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Raised on every change of holder: a fencing token.
    generation bigint NOT NULL DEFAULT 1,
    -- What the holder hands on (the reconciler's cycle, say), as JSON.
    state jsonb,
    PRIMARY KEY (namespace, name)
);
