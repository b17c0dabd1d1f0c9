-- Autovacuum after 1,000 dead tuples whatever the table's size: the done rows kept as
-- dedup keys would otherwise delay it (the guide's "The table's upkeep"). An events table
-- made before these settings gets them here.
ALTER TABLE {events} SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
