-- Counts any replica adds and the lease's holder takes: the receiver's failures for the
-- watchdog, deep sweeps asked of the reconciler.
CREATE TABLE IF NOT EXISTS {tallies} (
    namespace text NOT NULL,
    name text NOT NULL,
    key text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (namespace, name, key)
);
