-- What the receiver would have answered for an event no handler takes: an events table
-- made before this column gets it, each row as a receiver that acknowledged such events.
ALTER TABLE {events} ADD COLUMN IF NOT EXISTS retry_unhandled boolean NOT NULL DEFAULT false;
